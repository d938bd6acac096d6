// .npy files (numpy's format 1.0/2.0/3.0): reading floats and masks of any
// common dtype, writing float32 (format 1.0).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>

#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

struct Array {
    char kind = 0;      // 'f', 'i', 'u', 'b'
    size_t width = 0;   // bytes per element
    bool swap = false;  // big-endian data
    std::string descr;
    Shape shape;
    size_t count = 0;
    const unsigned char *data = nullptr;
};

std::vector<unsigned char> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open the .npy file");
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

// Parses the header dict {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
Array parse(const std::string &path, const std::vector<unsigned char> &bytes) {
    if (bytes.size() < kMagicLen + 4 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
        throw Error(path + ": not a .npy file (bad magic)");
    const int major = bytes[6];
    size_t header_len, offset;
    if (major == 1) {
        header_len = bytes[8] | (size_t{bytes[9]} << 8);
        offset = 10;
    } else if (major == 2 || major == 3) {
        if (bytes.size() < 12) throw Error(path + ": truncated .npy header");
        header_len = bytes[8] | (size_t{bytes[9]} << 8) | (size_t{bytes[10]} << 16) |
                     (size_t{bytes[11]} << 24);
        offset = 12;
    } else {
        throw Error(path + ": unsupported .npy format version " + std::to_string(major));
    }
    if (bytes.size() < offset + header_len) throw Error(path + ": truncated .npy header");
    const std::string header(bytes.begin() + offset, bytes.begin() + offset + header_len);

    static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
    static const std::regex fortran_re(R"('fortran_order'\s*:\s*(True|False))");
    static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
    std::smatch m;
    Array a;
    if (!std::regex_search(header, m, descr_re))
        throw Error(path + ": .npy header has no 'descr' (structured dtypes are not supported)");
    a.descr = m[1];
    if (!std::regex_search(header, m, fortran_re))
        throw Error(path + ": .npy header has no 'fortran_order'");
    if (m[1] == "True")
        throw Error(path + ": array is stored in Fortran order; save it C-contiguous " +
                    "(np.ascontiguousarray) instead");
    if (!std::regex_search(header, m, shape_re)) throw Error(path + ": .npy header has no 'shape'");
    const std::string dims = m[1];
    static const std::regex dim_re(R"(\s*(\d+)\s*(,|$))");
    for (auto it = std::sregex_iterator(dims.begin(), dims.end(), dim_re);
         it != std::sregex_iterator(); ++it)
        a.shape.push_back(std::stoll((*it)[1]));

    static const std::regex type_re(R"(^([<>|=])([fiub])(\d+)$)");
    if (!std::regex_match(a.descr, m, type_re))
        throw Error(path + ": unsupported .npy dtype '" + a.descr + "'");
    a.kind = m[2].str()[0];
    a.width = std::stoul(m[3]);
    const bool little = [] {
        const uint16_t one = 1;
        unsigned char b;
        std::memcpy(&b, &one, 1);
        return b == 1;
    }();
    a.swap = a.width > 1 && ((m[1] == ">" && little) || (m[1] == "<" && !little));

    a.count = 1;
    for (int64_t d : a.shape) {
        if (d != 0 && a.count > std::numeric_limits<size_t>::max() / static_cast<size_t>(d))
            throw Error(path + ": .npy shape " + shape_to_string(a.shape) + " is too large");
        a.count *= static_cast<size_t>(d);
    }
    const size_t data_offset = offset + header_len;
    if (a.width && a.count > (bytes.size() - data_offset) / a.width)
        throw Error(path + ": .npy data truncated: shape " + shape_to_string(a.shape) + " of '" +
                    a.descr + "' needs " + std::to_string(a.count * a.width) + " bytes, file has " +
                    std::to_string(bytes.size() - data_offset));
    a.data = bytes.data() + data_offset;
    return a;
}

template <typename T>
T load(const Array &a, size_t i) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, a.data + i * sizeof(T), sizeof(T));
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

// Element i as a double (floats) or its truth value (everything), by dtype.
double as_double(const Array &a, size_t i) {
    switch (a.kind) {
    case 'f':
        if (a.width == 2) return half_to_float(load<uint16_t>(a, i));
        if (a.width == 4) return load<float>(a, i);
        return load<double>(a, i);
    case 'i':
        if (a.width == 1) return load<int8_t>(a, i);
        if (a.width == 2) return load<int16_t>(a, i);
        if (a.width == 4) return load<int32_t>(a, i);
        return static_cast<double>(load<int64_t>(a, i));
    default:  // 'u', 'b'
        if (a.width == 1) return load<uint8_t>(a, i);
        if (a.width == 2) return load<uint16_t>(a, i);
        if (a.width == 4) return load<uint32_t>(a, i);
        return static_cast<double>(load<uint64_t>(a, i));
    }
}

bool supported_width(const Array &a) {
    if (a.kind == 'f') return a.width == 2 || a.width == 4 || a.width == 8;
    if (a.kind == 'b') return a.width == 1;
    return a.width == 1 || a.width == 2 || a.width == 4 || a.width == 8;
}

}  // namespace

Tensor read_npy_floats(const std::string &path) {
    const std::vector<unsigned char> bytes = read_file(path);
    const Array a = parse(path, bytes);
    if (a.kind != 'f' || !supported_width(a))
        throw Error(path + ": dtype '" + a.descr +
                    "' is not a float array; expected float16, float32 or float64 (<f2, <f4, <f8)");
    Tensor t;
    t.shape = a.shape;
    t.data.resize(a.count);
    for (size_t i = 0; i < a.count; i++) t.data[i] = static_cast<float>(as_double(a, i));
    return t;
}

Mask read_npy_mask(const std::string &path) {
    const std::vector<unsigned char> bytes = read_file(path);
    const Array a = parse(path, bytes);
    if (!supported_width(a))
        throw Error(path + ": unsupported mask dtype '" + a.descr +
                    "'; expected bool, an integer or a float type");
    Mask mask;
    mask.shape = a.shape;
    mask.data.resize(a.count);
    for (size_t i = 0; i < a.count; i++) {
        const double v = as_double(a, i);
        mask.data[i] = (v != 0.0 || v != v) ? 1 : 0;  // NaN is True, as bool(nan)
    }
    return mask;
}

void write_npy(const std::string &path, const Tensor &tensor) {
    size_t count = 1;
    std::string dims;
    for (int64_t d : tensor.shape) {
        if (d < 0)
            throw Error(path + ": cannot write a tensor of shape " + shape_to_string(tensor.shape));
        count *= static_cast<size_t>(d);
        dims += std::to_string(d) + ", ";
    }
    if (count != tensor.data.size())
        throw Error(path + ": tensor shape " + shape_to_string(tensor.shape) + " holds " +
                    std::to_string(count) + " values but its data has " +
                    std::to_string(tensor.data.size()));
    if (tensor.shape.size() != 1 && !dims.empty()) dims.resize(dims.size() - 2);  // "(2, 3)"
    if (tensor.shape.size() == 1) dims.resize(dims.size() - 1);                   // "(5,)"
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    // numpy pads magic + length + header to a multiple of 64 and ends it with '\n'.
    const size_t total = kMagicLen + 4 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    if (header.size() > 65535) throw Error(path + ": shape too long for a .npy 1.0 header");

    const std::string tmp = path + ".tmp";
    std::FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(path + ": cannot create " + tmp);
    const unsigned char prefix[4] = {1, 0, static_cast<unsigned char>(header.size() & 0xff),
                                     static_cast<unsigned char>(header.size() >> 8)};
    bool ok = std::fwrite(kMagic, 1, kMagicLen, f) == kMagicLen &&
              std::fwrite(prefix, 1, 4, f) == 4 &&
              std::fwrite(header.data(), 1, header.size(), f) == header.size();
    // Little-endian float32 data.
    std::vector<unsigned char> buf(count * 4);
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        std::memcpy(&bits, &tensor.data[i], 4);
        for (int k = 0; k < 4; k++) buf[i * 4 + k] = static_cast<unsigned char>(bits >> (8 * k));
    }
    ok = ok && (buf.empty() || std::fwrite(buf.data(), 1, buf.size(), f) == buf.size());
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error(path + ": write failed");
    }
}

}  // namespace mhac::io
