// Overflow-checked sizes. Every element count or byte size computed from
// dimensions that came from outside (a file, a caller's shape) goes through
// these: they report overflow instead of wrapping, so a hostile shape becomes
// an Error, never a short allocation followed by an out-of-bounds access.
// Header-only; the Keras readers (runtime/io) use it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace mhac::detail {

// a * b, a + b; nullopt on overflow.
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}
inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}
inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

// The number of elements of a row-major array with these dims: nullopt when a
// dim is negative or the product does not fit an int64.
inline std::optional<int64_t> element_count(const std::vector<int64_t> &dims) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0) return std::nullopt;
        const auto next = checked_mul(n, d);
        if (!next) return std::nullopt;
        n = *next;
    }
    return n;
}

// count * width bytes as a size_t that a std::vector of that many bytes can
// hold (at most PTRDIFF_MAX); nullopt when negative or larger.
inline std::optional<size_t> byte_size(int64_t count, size_t width) {
    if (count < 0) return std::nullopt;
    const auto bytes = checked_mul(static_cast<uint64_t>(count), static_cast<uint64_t>(width));
    if (!bytes || *bytes > static_cast<uint64_t>(PTRDIFF_MAX)) return std::nullopt;
    return static_cast<size_t>(*bytes);
}

}  // namespace mhac::detail
