// Opening the files mhac reads: only regular files (following symlinks), so a
// directory, device, FIFO or socket given where a file belongs is an Error
// naming it, never a hang (/dev/zero, a FIFO) or a library's message without
// the path. Sizes are read from the open file and every read is bounded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mhac::io::detail {

// What a path names, following symlinks (stat, which never blocks).
struct PathInfo {
    bool exists = false;   // false: no such file, or it cannot be examined
    bool regular = false;  // a regular file (`size` bytes)
    bool directory = false;
    uint64_t size = 0;
    // What it is when not a regular file ("a directory", "a character
    // device", "a FIFO (named pipe)", ...), or why it cannot be examined
    // ("no such file", the system's reason).
    std::string kind;
};
PathInfo examine(const std::string &path);

// A regular file open for reading; `what` names its expected content in
// errors ("a .npy file"). Refuses anything else as "<path>: is a directory,
// not a .npy file" (opened non-blocking, then checked on the descriptor, so
// a FIFO swapped in after a check cannot block).
class InputFile {
public:
    InputFile(const std::string &path, const std::string &what);
    ~InputFile();
    InputFile(const InputFile &) = delete;
    InputFile &operator=(const InputFile &) = delete;

    uint64_t size() const { return size_; }
    const std::string &path() const { return path_; }
    // Exactly `n` bytes at the current position; an Error when the file ends
    // first ("truncated", naming `part`).
    void read(void *out, size_t n, const std::string &part);
    // The rest of the file, at most `max_bytes` (a larger file is an Error
    // naming the limit).
    std::vector<char> read_rest(uint64_t max_bytes);

private:
    std::string path_, what_;
    int fd_ = -1;
    uint64_t size_ = 0;
    uint64_t pos_ = 0;
};

// A whole regular file, at most `max_bytes`.
std::vector<char> read_whole_file(const std::string &path, const std::string &what,
                                  uint64_t max_bytes);

// The most bytes a JSON document (config.json, a --config file) may have:
// Keras configs are kilobytes; a DOM of this much text already takes a few
// hundred MB.
constexpr uint64_t kMaxJsonBytes = uint64_t{16} << 20;

// `text` made safe to quote in a one-line message: control and non-ASCII
// bytes as \xNN, cut after `max` characters with "...".
std::string printable(const std::string &text, size_t max = 80);

}  // namespace mhac::io::detail
