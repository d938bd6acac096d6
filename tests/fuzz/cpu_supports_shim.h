// Force-included into runtime/src/isa.cpp in the fuzz build only: clang 14
// rejects __builtin_cpu_supports("f16c") ("invalid cpu feature string"), so
// the builtin is routed through a function that reads F16C from cpuid and
// passes every other feature isa.cpp asks about to the builtin.
#pragma once

#include <cpuid.h>

#include <cstring>

static inline bool mhac_fuzz_cpu_supports(const char *feature) {
    if (std::strcmp(feature, "f16c") == 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
    }
#define MHAC_FUZZ_FEATURE(name) \
    if (std::strcmp(feature, name) == 0) return __builtin_cpu_supports(name);
    MHAC_FUZZ_FEATURE("avx512f")
    MHAC_FUZZ_FEATURE("avx512bw")
    MHAC_FUZZ_FEATURE("avx512dq")
    MHAC_FUZZ_FEATURE("avx512vl")
    MHAC_FUZZ_FEATURE("avx2")
    MHAC_FUZZ_FEATURE("fma")
    MHAC_FUZZ_FEATURE("sse4.1")
#undef MHAC_FUZZ_FEATURE
    return false;
}
#define __builtin_cpu_supports(feature) mhac_fuzz_cpu_supports(feature)
