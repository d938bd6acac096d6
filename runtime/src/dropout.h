// Dropout on the attention probabilities (training mode), with a
// counter-based RNG: element i of call c under seed k keeps or drops by a
// hash of (k, c, i) alone, so results are deterministic for a seed and the
// same on every thread count. Keras's own streams are backend specific and
// cannot be matched bit for bit (spec section 5).
#pragma once

#include <cstdint>

namespace mhac::detail {

// dst[i] = keep(i) ? src[i] / (1 - rate) : 0; rate 1 drops everything.
void apply_dropout(const float *src, float *dst, int64_t n, float rate, uint64_t seed,
                   uint64_t call_counter);

// The uniform [0, 1) draw for element `index`, exposed for the tests.
double dropout_uniform(uint64_t seed, uint64_t call_counter, uint64_t index);

}  // namespace mhac::detail
