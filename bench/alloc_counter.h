// Counts C++ heap allocations (operator new) made by this process, so the
// benchmarks can report how many a timed call makes. malloc calls made
// directly (Halide's runtime, halide_malloc) are not counted.
#pragma once

#include <cstdint>

namespace mhac::bench {

uint64_t heap_allocations();

}  // namespace mhac::bench
