// Replaces the global operator new/delete of mhac_bench only. The array
// and nothrow forms are left to the standard library, which routes
// them through these.
#include "alloc_counter.h"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<uint64_t> g_allocations{0};

void *counted_alloc(std::size_t size, std::size_t align) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (size == 0) size = 1;
    void *p = nullptr;
    if (align <= alignof(std::max_align_t)) {
        p = std::malloc(size);
    } else {
        size = (size + align - 1) / align * align;  // aligned_alloc wants a multiple
        p = std::aligned_alloc(align, size);
    }
    if (!p) throw std::bad_alloc();
    return p;
}
}  // namespace

namespace mhac::bench {
uint64_t heap_allocations() {
    return g_allocations.load(std::memory_order_relaxed);
}
}  // namespace mhac::bench

void *operator new(std::size_t size) {
    return counted_alloc(size, 0);
}
void *operator new(std::size_t size, std::align_val_t align) {
    return counted_alloc(size, static_cast<std::size_t>(align));
}
void operator delete(void *p) noexcept {
    std::free(p);
}
void operator delete(void *p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void *p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void *p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
