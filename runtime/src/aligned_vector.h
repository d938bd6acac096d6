// std::vector storage aligned for the kernels' vector loads.
//
// The packed weights were plain std::vector<float>: glibc returns large
// blocks 16 bytes past a page boundary, so every 64-byte AVX-512 load of a
// weight panel (and every other 32-byte AVX2 load) straddled two cache
// lines. 2-core Xeon (AVX-512), `mhac bench`, bert_base row, 3 interleaved
// runs, 1 thread: B=1 T=128 1.02x, B=8 1.02x, T=S=512 1.03x, vit 1.06x,
// decode S=2048 1.02x; the AVX2 kernels (MHAC_ISA=avx2) 1.02-1.05x; 2
// threads 1.01-1.05x; the generic long_4096 (attention-bound) within noise
// on AVX2, 1.04x on AVX-512 at 2 threads.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace mhac::detail {

// Cache-line pairs, as the kernels' own buffers (halide_glue.cpp).
constexpr std::size_t kKernelDataAlignment = 128;

template <typename T, std::size_t Alignment>
struct AlignedAllocator {
    using value_type = T;
    template <typename U>
    struct rebind {
        using other = AlignedAllocator<U, Alignment>;
    };

    AlignedAllocator() = default;
    template <typename U>
    AlignedAllocator(const AlignedAllocator<U, Alignment> &) noexcept {}

    T *allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
        return static_cast<T *>(::operator new (n * sizeof(T), std::align_val_t{Alignment}));
    }
    void deallocate(T *p, std::size_t) noexcept {
        ::operator delete (p, std::align_val_t{Alignment});
    }

    friend bool operator==(const AlignedAllocator &, const AlignedAllocator &) { return true; }
    friend bool operator!=(const AlignedAllocator &, const AlignedAllocator &) { return false; }
};

// Float data a kernel reads with vector loads.
using KernelFloats = std::vector<float, AlignedAllocator<float, kKernelDataAlignment>>;

}  // namespace mhac::detail
