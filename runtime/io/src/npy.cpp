// .npy files (numpy's format 1.0/2.0/3.0): reading floats and masks of any
// common dtype, writing float32 (format 1.0). The header is parsed as
// strictly as numpy parses it (a Python dict literal with exactly the keys
// 'descr', 'fortran_order' and 'shape', the shape a tuple of non-negative
// ints); the data is read in bounded chunks straight into the result, after
// its size has been checked against the file's.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <regex>

#include "checked_math.h"
#include "input_file.h"
#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

using detail::printable;

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// numpy.load refuses longer headers unless allow_pickle=True
// (numpy.lib.format._MAX_HEADER_SIZE).
constexpr size_t kMaxHeaderLen = 10000;

struct Array {
    char kind = 0;      // 'f', 'i', 'u', 'b'
    size_t width = 0;   // bytes per element
    bool swap = false;  // big-endian data
    std::string descr;
    Shape shape;
    size_t count = 0;
};

// The subset of Python literal syntax numpy's header uses, parsed the way
// ast.literal_eval + numpy.lib.format._read_array_header accept it.
class HeaderParser {
public:
    HeaderParser(const std::string &path, const std::string &text, bool python2_longs)
        : path_(path), s_(text), longs_(python2_longs) {}

    Array parse() {
        Array a;
        bool has_descr = false, has_fortran = false, has_shape = false;
        // literal_eval strips leading spaces and tabs.
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) pos_++;
        expect('{', "the header must be a dict");
        skip_ws();
        while (peek() != '}') {
            const std::string key = string_literal("a dict key");
            skip_ws();
            expect(':', "':' after a key");
            skip_ws();
            if (key == "descr") {
                if (peek() == '[') fail("'descr' is a list: structured dtypes are not supported");
                a.descr = string_literal("'descr' (a dtype string such as '<f4')");
                has_descr = true;
            } else if (key == "fortran_order") {
                const std::string word = identifier();
                if (word != "True" && word != "False")
                    fail("'fortran_order' must be True or False, got " +
                         (word.empty() ? "'" + printable(s_.substr(pos_, 1)) + "'" : word));
                if (word == "True")
                    throw Error(path_ +
                                ": array is stored in Fortran order; save it C-contiguous " +
                                "(np.ascontiguousarray) instead");
                has_fortran = true;
            } else if (key == "shape") {
                a.shape = shape();
                has_shape = true;
            } else {
                fail("unexpected key '" + printable(key) +
                     "' (numpy writes exactly 'descr', 'fortran_order' and 'shape')");
            }
            skip_ws();
            if (peek() == ',') {
                pos_++;
                skip_ws();
            } else if (peek() != '}') {
                fail("expected ',' or '}' after the value of '" + key + "'");
            }
        }
        pos_++;  // '}'
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the dict");
        if (!has_descr)
            throw Error(path_ +
                        ": .npy header has no 'descr' (structured dtypes are not supported)");
        if (!has_fortran) throw Error(path_ + ": .npy header has no 'fortran_order'");
        if (!has_shape) throw Error(path_ + ": .npy header has no 'shape'");
        return a;
    }

private:
    [[noreturn]] void fail(const std::string &what) const {
        throw Error(path_ + ": invalid .npy header: " + what + " (at byte " + std::to_string(pos_) +
                    " of the header)");
    }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void skip_ws() {
        // Inside brackets Python ignores newlines too.
        while (pos_ < s_.size() && std::strchr(" \t\n\r\f", s_[pos_]) && s_[pos_] != '\0') pos_++;
    }
    void expect(char c, const std::string &what) {
        if (peek() != c) fail("expected " + what);
        pos_++;
    }
    std::string identifier() {
        const size_t start = pos_;
        while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_') pos_++;
        return s_.substr(start, pos_ - start);
    }
    // '...' or "..." without escapes (numpy writes none; a dtype string
    // never needs one).
    std::string string_literal(const std::string &what) {
        const char quote = peek();
        if (quote != '\'' && quote != '"') fail("expected a string for " + what);
        const size_t start = ++pos_;
        while (pos_ < s_.size() && s_[pos_] != quote) {
            if (s_[pos_] == '\\' || s_[pos_] == '\n')
                fail("unsupported character in a string for " + what);
            pos_++;
        }
        if (pos_ >= s_.size()) fail("unterminated string for " + what);
        return s_.substr(start, pos_++ - start);
    }
    // A Python int literal as a dimension: non-negative and an int64 (numpy
    // refuses negative dims when it shapes the array, and computes the count
    // in int64).
    int64_t dimension(const std::string &shape_text) {
        bool negative = false;
        if (peek() == '+' || peek() == '-') {
            negative = peek() == '-';
            pos_++;
            skip_ws();
        }
        const size_t start = pos_;
        while (std::isdigit(static_cast<unsigned char>(peek()))) pos_++;
        const std::string digits = s_.substr(start, pos_ - start);
        if (digits.empty()) {
            pos_ = start;
            fail("the shape must be a tuple of ints, got " + shape_text);
        }
        if (digits.size() > 1 && digits[0] == '0') fail("invalid int literal '" + digits + "'");
        if (longs_ && (peek() == 'L' || peek() == 'l')) pos_++;  // Python 2's 2L
        if (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_' || peek() == '.')
            fail("the shape must be a tuple of ints, got " + shape_text);
        uint64_t v = 0;
        for (char c : digits) {
            const auto next = mhac::detail::checked_mul(v, uint64_t{10});
            const auto sum =
                next ? mhac::detail::checked_add(*next, uint64_t(c - '0')) : std::nullopt;
            if (!sum || *sum > uint64_t(std::numeric_limits<int64_t>::max()))
                throw Error(path_ + ": .npy shape " + shape_text + ": dimension " +
                            printable(digits, 40) + " does not fit a 64-bit integer");
            v = *sum;
        }
        if (negative && v != 0)
            throw Error(path_ + ": .npy shape " + shape_text + " has a negative dimension -" +
                        digits);
        return static_cast<int64_t>(v);
    }
    // (), (d,), (d, d[, ...][,]) -- a bare (d) is an int, not a tuple.
    Shape shape() {
        const size_t close = s_.find(')', pos_);
        const std::string shape_text =
            printable(s_.substr(pos_, close == std::string::npos ? 40 : close - pos_ + 1), 60);
        if (peek() != '(') fail("the shape must be a tuple, got " + shape_text);
        pos_++;
        skip_ws();
        Shape shape;
        bool comma = false;
        while (peek() != ')') {
            shape.push_back(dimension(shape_text));
            skip_ws();
            comma = false;
            if (peek() == ',') {
                comma = true;
                pos_++;
                skip_ws();
            } else if (peek() != ')') {
                fail("the shape must be a tuple of ints, got " + shape_text);
            }
        }
        pos_++;
        if (shape.size() == 1 && !comma)
            fail("the shape must be a tuple, got " + shape_text + " (an int)");
        return shape;
    }

    const std::string &path_;
    const std::string &s_;
    bool longs_;
    size_t pos_ = 0;
};

bool little_endian() {
    const uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}

// Reads and checks the magic, version and header; leaves `f` at the data,
// which the file is known to hold.
Array read_header(detail::InputFile &f) {
    const std::string &path = f.path();
    unsigned char prefix[12];
    if (f.size() < kMagicLen + 4) throw Error(path + ": not a .npy file (bad magic)");
    f.read(prefix, kMagicLen + 4, "the .npy magic");
    if (std::memcmp(prefix, kMagic, kMagicLen) != 0)
        throw Error(path + ": not a .npy file (bad magic)");
    const int major = prefix[6], minor = prefix[7];
    size_t header_len, offset;
    if (major == 1 && minor == 0) {
        header_len = prefix[8] | (size_t{prefix[9]} << 8);
        offset = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (f.size() < 12) throw Error(path + ": truncated .npy header");
        f.read(prefix + 10, 2, "the .npy header length");
        header_len = prefix[8] | (size_t{prefix[9]} << 8) | (size_t{prefix[10]} << 16) |
                     (size_t{prefix[11]} << 24);
        offset = 12;
    } else {
        throw Error(path + ": unsupported .npy format version " + std::to_string(major) + "." +
                    std::to_string(minor) + " (numpy writes 1.0, 2.0 and 3.0)");
    }
    if (header_len > kMaxHeaderLen)
        throw Error(path + ": .npy header of " + std::to_string(header_len) +
                    " bytes is longer than numpy.load accepts (" + std::to_string(kMaxHeaderLen) +
                    ")");
    if (f.size() < offset + header_len) throw Error(path + ": truncated .npy header");
    std::string header(header_len, '\0');
    f.read(header.data(), header_len, "the .npy header");

    Array a = HeaderParser(path, header, major <= 2).parse();
    static const std::regex type_re(R"(^([<>|=])([fiub])(\d{1,2})$)");
    std::smatch m;
    if (!std::regex_match(a.descr, m, type_re))
        throw Error(path + ": unsupported .npy dtype '" + printable(a.descr) + "'");
    a.kind = m[2].str()[0];
    a.width = static_cast<size_t>(std::stoi(m[3]));
    a.swap = a.width > 1 && ((m[1] == ">" && little_endian()) || (m[1] == "<" && !little_endian()));

    const auto count = mhac::detail::element_count(a.shape);
    const auto bytes = count ? mhac::detail::byte_size(*count, a.width) : std::nullopt;
    if (!bytes)
        throw Error(path + ": .npy shape " + shape_to_string(a.shape) + " of '" + a.descr +
                    "' is too large (its byte size overflows)");
    a.count = static_cast<size_t>(*count);
    const uint64_t data_offset = offset + header_len;
    if (*bytes > f.size() - data_offset)
        throw Error(path + ": .npy data truncated: shape " + shape_to_string(a.shape) + " of '" +
                    a.descr + "' needs " + std::to_string(*bytes) + " bytes, file has " +
                    std::to_string(f.size() - data_offset));
    return a;
}

template <typename T>
T load(const Array &a, const unsigned char *p) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, p, sizeof(T));
    if (a.swap)
        for (size_t k = 0; k < sizeof(T) / 2; k++) std::swap(b[k], b[sizeof(T) - 1 - k]);
    T v;
    std::memcpy(&v, b, sizeof(T));
    return v;
}

float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {  // inf / nan
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal: normalise
        exp = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// One element as a double (floats) or its truth value (everything), by dtype.
double as_double(const Array &a, const unsigned char *p) {
    switch (a.kind) {
    case 'f':
        if (a.width == 2) return half_to_float(load<uint16_t>(a, p));
        if (a.width == 4) return load<float>(a, p);
        return load<double>(a, p);
    case 'i':
        if (a.width == 1) return load<int8_t>(a, p);
        if (a.width == 2) return load<int16_t>(a, p);
        if (a.width == 4) return load<int32_t>(a, p);
        return static_cast<double>(load<int64_t>(a, p));
    default:  // 'u', 'b'
        if (a.width == 1) return load<uint8_t>(a, p);
        if (a.width == 2) return load<uint16_t>(a, p);
        if (a.width == 4) return load<uint32_t>(a, p);
        return static_cast<double>(load<uint64_t>(a, p));
    }
}

bool supported_width(const Array &a) {
    if (a.kind == 'f') return a.width == 2 || a.width == 4 || a.width == 8;
    if (a.kind == 'b') return a.width == 1;
    return a.width == 1 || a.width == 2 || a.width == 4 || a.width == 8;
}

// Reads the data in chunks of at most 64 KiB, converting each element.
template <typename T, typename Convert>
void read_data(detail::InputFile &f, const Array &a, std::vector<T> &out, Convert convert) {
    out.resize(a.count);
    const size_t per_chunk = std::max<size_t>(1, (size_t{1} << 16) / a.width);
    std::vector<unsigned char> buf(std::min(a.count, per_chunk) * a.width);
    for (size_t i = 0; i < a.count;) {
        const size_t n = std::min(per_chunk, a.count - i);
        f.read(buf.data(), n * a.width, "the .npy data");
        for (size_t k = 0; k < n; k++) out[i + k] = convert(as_double(a, buf.data() + k * a.width));
        i += n;
    }
}

}  // namespace

Tensor read_npy_floats(const std::string &path) {
    detail::InputFile f(path, "a .npy file");
    const Array a = read_header(f);
    if (a.kind != 'f' || !supported_width(a))
        throw Error(path + ": dtype '" + a.descr +
                    "' is not a float array; expected float16, float32 or float64 (<f2, <f4, <f8)");
    Tensor t;
    t.shape = a.shape;
    read_data(f, a, t.data, [](double v) { return static_cast<float>(v); });
    return t;
}

Mask read_npy_mask(const std::string &path) {
    detail::InputFile f(path, "a .npy file");
    const Array a = read_header(f);
    if (!supported_width(a))
        throw Error(path + ": unsupported mask dtype '" + a.descr +
                    "'; expected bool, an integer or a float type");
    Mask mask;
    mask.shape = a.shape;
    // NaN is True, as bool(nan).
    read_data(f, a, mask.data,
              [](double v) { return static_cast<uint8_t>((v != 0.0 || v != v) ? 1 : 0); });
    return mask;
}

// ---- Writing ----------------------------------------------------------------

namespace {

std::string describe_target(const struct stat &st) {
    if (S_ISLNK(st.st_mode)) return "a symbolic link";
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISCHR(st.st_mode)) return "a character device";
    if (S_ISBLK(st.st_mode)) return "a block device";
    if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    return "not a regular file";
}

// The target may be absent or a regular file; anything else is refused, not
// replaced. Returns whether it exists (its mode in *mode).
bool check_target(const std::string &path, mode_t *mode) {
    if (path.empty()) throw Error("an output path is empty");
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT)
            throw Error(path + ": cannot examine the output path: " + std::strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode))
        throw Error(path + ": is " + describe_target(st) +
                    "; refusing to replace it with the output (name a regular file)");
    *mode = st.st_mode & 07777;
    return true;
}

std::string directory_of(const std::string &path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

NpyOutput::NpyOutput(std::string path) : path_(std::move(path)) {
    mode_t mode = 0;
    check_target(path_, &mode);
    const std::string dir = directory_of(path_);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw Error(path_ + ": cannot create the output: no directory " + dir);
}

NpyOutput::~NpyOutput() {
    if (!temp_.empty()) ::unlink(temp_.c_str());
}

void NpyOutput::write(const Tensor &tensor) {
    const auto count = mhac::detail::element_count(tensor.shape);
    std::string dims;
    if (!count || !mhac::detail::byte_size(*count, 4))
        throw Error(path_ + ": cannot write a tensor of shape " + shape_to_string(tensor.shape));
    for (int64_t d : tensor.shape) dims += std::to_string(d) + ", ";
    if (static_cast<size_t>(*count) != tensor.data.size())
        throw Error(path_ + ": tensor shape " + shape_to_string(tensor.shape) + " holds " +
                    std::to_string(*count) + " values but its data has " +
                    std::to_string(tensor.data.size()));
    if (tensor.shape.size() != 1 && !dims.empty()) dims.resize(dims.size() - 2);  // "(2, 3)"
    if (tensor.shape.size() == 1) dims.resize(dims.size() - 1);                   // "(5,)"
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    // numpy pads magic + length + header to a multiple of 64 and ends it with '\n'.
    const size_t total = kMagicLen + 4 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    if (header.size() > 65535) throw Error(path_ + ": shape too long for a .npy 1.0 header");

    mode_t mode = 0;
    const bool exists = check_target(path_, &mode);
    if (!temp_.empty()) {
        ::unlink(temp_.c_str());
        temp_.clear();
    }
    // A new file of our own next to the target (O_EXCL: never one that exists).
    const size_t slash = path_.rfind('/');
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    const std::string prefix =
        (slash == std::string::npos ? std::string() : path_.substr(0, slash + 1)) + "." + base +
        ".";
    static std::atomic<uint32_t> counter{0};
    const uint64_t salt =
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    int fd = -1;
    std::string temp;
    for (int attempt = 0; attempt < 32 && fd < 0; attempt++) {
        char suffix[64];
        std::snprintf(suffix, sizeof suffix, "%d-%u-%llx.tmp", static_cast<int>(::getpid()),
                      counter++, static_cast<unsigned long long>(salt) ^ (attempt * 0x9e3779b9u));
        temp = prefix + suffix;
        fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0)
        throw Error(path_ + ": cannot create a temporary file in " + directory_of(path_) + ": " +
                    std::strerror(errno));
    temp_ = temp;
    if (exists) ::fchmod(fd, mode);  // keep the replaced file's permissions

    auto put = [&](const void *p, size_t n) {
        const char *c = static_cast<const char *>(p);
        while (n > 0) {
            const ssize_t w = ::write(fd, c, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return false;
            c += w;
            n -= static_cast<size_t>(w);
        }
        return true;
    };
    const unsigned char prefix_bytes[4] = {1, 0, static_cast<unsigned char>(header.size() & 0xff),
                                           static_cast<unsigned char>(header.size() >> 8)};
    bool ok = put(kMagic, kMagicLen) && put(prefix_bytes, 4) && put(header.data(), header.size());
    // Little-endian float32 data, in chunks.
    std::vector<unsigned char> buf;
    const size_t chunk = size_t{1} << 14;
    for (size_t i = 0; ok && i < tensor.data.size(); i += chunk) {
        const size_t n = std::min(chunk, tensor.data.size() - i);
        buf.resize(n * 4);
        for (size_t k = 0; k < n; k++) {
            uint32_t bits;
            std::memcpy(&bits, &tensor.data[i + k], 4);
            for (int b = 0; b < 4; b++)
                buf[k * 4 + b] = static_cast<unsigned char>(bits >> (8 * b));
        }
        ok = put(buf.data(), buf.size());
    }
    const int err = ok ? 0 : errno;
    ok = (::fsync(fd) == 0) && ok;
    ok = (::close(fd) == 0) && ok;
    if (!ok) {
        ::unlink(temp_.c_str());
        temp_.clear();
        throw Error(path_ + ": write failed: " + std::strerror(err ? err : errno));
    }
}

void NpyOutput::commit() {
    if (temp_.empty()) throw Error(path_ + ": nothing written to commit");
    mode_t mode = 0;
    check_target(path_, &mode);  // still absent or a regular file
    if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
        const int err = errno;
        ::unlink(temp_.c_str());
        temp_.clear();
        throw Error(path_ + ": cannot move the output into place: " + std::strerror(err));
    }
    temp_.clear();
}

void write_npy(const std::string &path, const Tensor &tensor) {
    NpyOutput out(path);
    out.write(tensor);
    out.commit();
}

}  // namespace mhac::io
