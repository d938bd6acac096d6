#include "dropout.h"

namespace mhac::detail {

namespace {
// SplitMix64's finalizer: a bijective mix with full avalanche.
uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
}  // namespace

double dropout_uniform(uint64_t seed, uint64_t call_counter, uint64_t index) {
    uint64_t stream = mix(seed ^ mix(call_counter + 0x9e3779b97f4a7c15ULL));
    return static_cast<double>(mix(stream + index * 0x9e3779b97f4a7c15ULL) >> 11) * 0x1.0p-53;
}

void apply_dropout(const float *src, float *dst, int64_t n, float rate, uint64_t seed,
                   uint64_t call_counter) {
    if (rate >= 1.0f) {
        for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
        return;
    }
    const float scale = 1.0f / (1.0f - rate);
    for (int64_t i = 0; i < n; i++) {
        bool keep = dropout_uniform(seed, call_counter, static_cast<uint64_t>(i)) >= rate;
        dst[i] = keep ? src[i] * scale : 0.0f;
    }
}

}  // namespace mhac::detail
