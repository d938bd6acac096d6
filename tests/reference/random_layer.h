// Seeded random layers and inputs, shared by the tests, the demo and the
// benchmarks so they all exercise the same data.
#pragma once

#include <cstdint>
#include <vector>

#include "mha_reference.h"
#include "mhac/mha.h"

namespace mhac::testing {

// The 3-D sizes of a layer and one call of it.
struct Sizes {
    int64_t batch, queries, keys;
    int64_t query_features, key_features, value_features;
    int64_t num_heads, key_dim, value_dim, output_features;
};

struct RandomLayer {
    Sizes sizes;
    bool use_bias = true;
    reference::Weights weights;
    std::vector<float> query, key, value;
    std::vector<uint8_t> mask;  // [B, T, S], empty unless requested

    LayerConfig config() const;
    KerasWeights keras_weights() const;  // views into `weights`
    TensorView query_view() const;
    TensorView key_view() const;
    TensorView value_view() const;

    // The same layer and call for the float64 reference (3-D, key given,
    // the [B, T, S] mask when present).
    reference::Layer reference_layer() const;
    reference::Call reference_call(bool causal) const;
};

enum class RandomMask { none, random, fully_masked_rows };

// Kernels glorot_uniform-like, biases and inputs uniform in [-1, 1].
RandomLayer make_random_layer(const Sizes &sizes, bool use_bias, uint64_t seed,
                              RandomMask mask = RandomMask::none);

}  // namespace mhac::testing
