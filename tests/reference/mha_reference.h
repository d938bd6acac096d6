// Keras MultiHeadAttention in plain double-precision loops, following
// ../shared/design/keras-mha-semantics.md line by line. No Halide, no
// tiling: this is what every kernel is checked against.
#pragma once

#include <cstdint>
#include <vector>

namespace mhac::reference {

// Keras 3.15's two compute paths (spec section 2.1).
enum class Path {
    fused,            // ops.dot_product_attention: no dropout, no scores returned
    explicit_scores,  // einsum + Softmax layer: scores returned or dropout
};

struct Sizes {
    int64_t batch, queries, keys;
    int64_t query_features, key_features, value_features;
    int64_t num_heads, key_dim, value_dim, output_features;
};

// Keras-layout weights (row-major), biases empty when use_bias is false.
struct Weights {
    std::vector<float> query_kernel, query_bias;    // [Eq, N, H], [N, H]
    std::vector<float> key_kernel, key_bias;        // [Ek, N, H], [N, H]
    std::vector<float> value_kernel, value_bias;    // [Ev, N, Hv], [N, Hv]
    std::vector<float> output_kernel, output_bias;  // [N, Hv, O], [O]
};

struct Result {
    std::vector<double> output;  // [B, T, O]
    std::vector<double> scores;  // [B, N, T, S] (probabilities, before dropout)
};

// `mask` is null or a combined [B, T, S] boolean mask (non-zero = may
// attend); `causal` ANDs in Keras's top-left causal mask.
Result multi_head_attention(const Sizes &sz, const Weights &w, const float *query,
                            const float *key, const float *value, const uint8_t *mask,
                            bool causal, Path path);

}  // namespace mhac::reference
