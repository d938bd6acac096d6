// Regular-file checks and bounded reads for every file the readers open.
#include "input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mhac/mha.h"

namespace mhac::io::detail {
namespace {

std::string kind_of(mode_t mode) {
    if (S_ISREG(mode)) return {};
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

std::string system_reason(int err) {
    if (err == ENOENT) return "no such file";
    if (err == ENOTDIR) return "no such file (a parent is not a directory)";
    return std::strerror(err);
}

}  // namespace

PathInfo examine(const std::string &path) {
    PathInfo info;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        info.kind = system_reason(errno);
        return info;
    }
    info.exists = true;
    info.regular = S_ISREG(st.st_mode);
    info.directory = S_ISDIR(st.st_mode);
    info.kind = kind_of(st.st_mode);
    if (info.regular) info.size = static_cast<uint64_t>(st.st_size);
    return info;
}

InputFile::InputFile(const std::string &path, const std::string &what) : path_(path), what_(what) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            throw Error(path + ": " + system_reason(err) + " (expected " + what + ")");
        throw Error(path + ": cannot open " + what + ": " + std::strerror(err));
    }
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
        const int err = errno;
        ::close(fd_);
        throw Error(path + ": cannot examine " + what + ": " + std::strerror(err));
    }
    const std::string kind = kind_of(st.st_mode);
    if (!kind.empty()) {
        ::close(fd_);
        throw Error(path + ": is " + kind + ", not " + what);
    }
    // Back to blocking reads for the regular file.
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
    if (fd_ >= 0) ::close(fd_);
}

void InputFile::read(void *out, size_t n, const std::string &part) {
    char *p = static_cast<char *>(out);
    size_t done = 0;
    while (done < n) {
        const ssize_t got = ::read(fd_, p + done, n - done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw Error(path_ + ": read failed (" + std::strerror(errno) + ")");
        if (got == 0)
            throw Error(path_ + ": truncated: " + part + " needs " + std::to_string(n) +
                        " bytes, the file has " + std::to_string(done) + " left");
        done += static_cast<size_t>(got);
    }
    pos_ += n;
}

std::vector<char> InputFile::read_rest(uint64_t max_bytes) {
    const uint64_t left = size_ > pos_ ? size_ - pos_ : 0;
    if (left > max_bytes)
        throw Error(path_ + ": " + std::to_string(left) + " bytes is too large for " + what_ +
                    " (at most " + std::to_string(max_bytes) + " bytes)");
    std::vector<char> bytes(static_cast<size_t>(left));
    read(bytes.data(), bytes.size(), "its contents");
    // The file grew after fstat (or lied about its size): refuse rather than
    // read an unbounded stream.
    char extra;
    ssize_t got;
    do {
        got = ::read(fd_, &extra, 1);
    } while (got < 0 && errno == EINTR);
    if (got > 0) throw Error(path_ + ": the file changed while it was read");
    return bytes;
}

std::vector<char> read_whole_file(const std::string &path, const std::string &what,
                                  uint64_t max_bytes) {
    InputFile f(path, what);
    return f.read_rest(max_bytes);
}

std::string printable(const std::string &text, size_t max) {
    static const char *hex = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < text.size(); i++) {
        if (out.size() >= max) return out + "...";
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace mhac::io::detail
