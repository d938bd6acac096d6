// Keras MultiHeadAttention in plain double-precision loops, following
// ../shared/design/keras-mha-semantics.md line by line: N-D inputs and
// attention_axes (section 3.2), every mask (section 2), both compute paths
// (section 2.1), dropout with an injected keep decision (section 5). No
// Halide, no tiling, no shared code with the runtime's flattening: this is
// what every kernel is checked against, and it is itself checked against
// fixtures produced by real Keras (tests/keras/).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace mhac::reference {

using Shape = std::vector<int64_t>;

// Keras 3.15's two compute paths (spec section 2.1).
enum class Path {
    fused,            // ops.dot_product_attention: no dropout, no scores, 3-D inputs
    explicit_scores,  // einsum + Softmax layer: everything else
};

// Keras-layout weights (row-major), biases empty when use_bias is false.
struct Weights {
    std::vector<float> query_kernel, query_bias;    // [Eq, N, H], [N, H]
    std::vector<float> key_kernel, key_bias;        // [Ek, N, H], [N, H]
    std::vector<float> value_kernel, value_bias;    // [Ev, N, Hv], [N, Hv]
    std::vector<float> output_kernel, output_bias;  // [N, Hv, O...], [O...]
    std::vector<float> gate_kernel, gate_bias;      // use_gate: [Eq, N, Hv], [N, Hv]
};

struct Layer {
    int64_t num_heads, key_dim, value_dim;
    Shape output_shape;  // resolved O... (Keras's default: the query's last dim)
    Weights weights;
    bool use_gate = false;
    int64_t sliding_window = 0;  // 0: none
};

struct Call {
    Shape query_shape, value_shape, key_shape;  // key_shape empty: key = value
    const float *query = nullptr, *value = nullptr, *key = nullptr;
    std::vector<int> attention_axes;  // empty: Keras's default
    // Non-zero = may attend. Combined as Keras 3.15 does (spec 2): the
    // padding masks (query [.., T] -> [.., T, 1], value/key [.., S] ->
    // [.., 1, S]) and the causal/window patterns first, then attention_mask &
    // that by trailing-axis broadcasting, then aligned to the scores. Where
    // Keras raises, multi_head_attention throws std::invalid_argument.
    const uint8_t *attention_mask = nullptr;
    Shape attention_mask_shape;
    const uint8_t *query_mask = nullptr, *value_mask = nullptr, *key_mask = nullptr;
    // Empty: [B, T] for query_mask, [B, S] for value_mask and key_mask.
    Shape query_mask_shape, value_mask_shape, key_mask_shape;
    bool causal = false;
    // Dropout: keep(i) for flat index i of the scores tensor; null = none.
    std::function<bool(int64_t)> keep;
    double rate = 0.0;
};

struct Result {
    Shape output_shape, scores_shape;
    std::vector<double> output;  // Keras's output shape
    std::vector<double> scores;  // probabilities before dropout, Keras's scores shape
};

Result multi_head_attention(const Layer &layer, const Call &call, Path path);

}  // namespace mhac::reference
