// The readers under test take paths: each input is written to a file of its
// own in a private temporary directory (under /dev/shm when there is one)
// made once per process and removed at exit.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mhac::fuzz {

class FuzzFile {
public:
    explicit FuzzFile(const char *name) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string dir = std::string(base) + "/mhac-fuzz-XXXXXX";
        if (!mkdtemp(dir.data())) abort();
        dir_ = dir;
        path_ = dir_ + "/" + name;
    }
    ~FuzzFile() {
        unlink(path_.c_str());
        rmdir(dir_.c_str());
    }
    FuzzFile(const FuzzFile &) = delete;
    FuzzFile &operator=(const FuzzFile &) = delete;

    // Replaces the file's content with `data`.
    const std::string &write(const uint8_t *data, size_t size) {
        const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) abort();
        size_t done = 0;
        while (done < size) {
            const ssize_t n = ::write(fd, data + done, size - done);
            if (n <= 0) abort();
            done += static_cast<size_t>(n);
        }
        close(fd);
        return path_;
    }

private:
    std::string dir_, path_;
};

}  // namespace mhac::fuzz
