#include "random_layer.h"

#include <cmath>
#include <random>

namespace mhac::testing {

namespace {
std::vector<float> uniform(std::mt19937_64 &rng, int64_t n, float limit) {
    std::uniform_real_distribution<float> dist(-limit, limit);
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v) x = dist(rng);
    return v;
}
}  // namespace

LayerConfig RandomLayer::config() const {
    LayerConfig c;
    c.num_heads = static_cast<int>(sizes.num_heads);
    c.key_dim = static_cast<int>(sizes.key_dim);
    c.value_dim = static_cast<int>(sizes.value_dim);
    c.use_bias = use_bias;
    c.output_shape = {sizes.output_features};
    return c;
}

KerasWeights RandomLayer::keras_weights() const {
    const auto &s = sizes;
    KerasWeights w;
    w.query_kernel = {weights.query_kernel.data(), {s.query_features, s.num_heads, s.key_dim}};
    w.key_kernel = {weights.key_kernel.data(), {s.key_features, s.num_heads, s.key_dim}};
    w.value_kernel = {weights.value_kernel.data(), {s.value_features, s.num_heads, s.value_dim}};
    w.output_kernel = {weights.output_kernel.data(), {s.num_heads, s.value_dim, s.output_features}};
    if (use_bias) {
        w.query_bias = {weights.query_bias.data(), {s.num_heads, s.key_dim}};
        w.key_bias = {weights.key_bias.data(), {s.num_heads, s.key_dim}};
        w.value_bias = {weights.value_bias.data(), {s.num_heads, s.value_dim}};
        w.output_bias = {weights.output_bias.data(), {s.output_features}};
    }
    return w;
}

TensorView RandomLayer::query_view() const {
    return {query.data(), {sizes.batch, sizes.queries, sizes.query_features}};
}
TensorView RandomLayer::key_view() const {
    return {key.data(), {sizes.batch, sizes.keys, sizes.key_features}};
}
TensorView RandomLayer::value_view() const {
    return {value.data(), {sizes.batch, sizes.keys, sizes.value_features}};
}

reference::Layer RandomLayer::reference_layer() const {
    return {sizes.num_heads, sizes.key_dim, sizes.value_dim, {sizes.output_features}, weights};
}

reference::Call RandomLayer::reference_call(bool causal) const {
    reference::Call c;
    c.query_shape = query_view().shape;
    c.value_shape = value_view().shape;
    c.key_shape = key_view().shape;
    c.query = query.data();
    c.value = value.data();
    c.key = key.data();
    if (!mask.empty()) {
        c.attention_mask = mask.data();
        c.attention_mask_shape = {sizes.batch, sizes.queries, sizes.keys};
    }
    c.causal = causal;
    return c;
}

RandomLayer make_random_layer(const Sizes &s, bool use_bias, uint64_t seed, RandomMask mask) {
    std::mt19937_64 rng(seed);
    RandomLayer l;
    l.sizes = s;
    l.use_bias = use_bias;
    // glorot_uniform with Keras 3.15's fans: fan_in = contracted axes,
    // fan_out = output axes.
    auto glorot = [&](int64_t fan_in, int64_t fan_out) {
        return uniform(rng, fan_in * fan_out, std::sqrt(6.0f / float(fan_in + fan_out)));
    };
    l.weights.query_kernel = glorot(s.query_features, s.num_heads * s.key_dim);
    l.weights.key_kernel = glorot(s.key_features, s.num_heads * s.key_dim);
    l.weights.value_kernel = glorot(s.value_features, s.num_heads * s.value_dim);
    l.weights.output_kernel = glorot(s.num_heads * s.value_dim, s.output_features);
    if (use_bias) {
        l.weights.query_bias = uniform(rng, s.num_heads * s.key_dim, 0.5f);
        l.weights.key_bias = uniform(rng, s.num_heads * s.key_dim, 0.5f);
        l.weights.value_bias = uniform(rng, s.num_heads * s.value_dim, 0.5f);
        l.weights.output_bias = uniform(rng, s.output_features, 0.5f);
    }
    l.query = uniform(rng, s.batch * s.queries * s.query_features, 1.0f);
    l.key = uniform(rng, s.batch * s.keys * s.key_features, 1.0f);
    l.value = uniform(rng, s.batch * s.keys * s.value_features, 1.0f);
    if (mask != RandomMask::none) {
        std::bernoulli_distribution visible(0.7);
        l.mask.resize(static_cast<size_t>(s.batch * s.queries * s.keys));
        for (int64_t bt = 0; bt < s.batch * s.queries; bt++) {
            // Fully masked rows: every third query row of every batch.
            bool blank = mask == RandomMask::fully_masked_rows && (bt % s.queries) % 3 == 1;
            bool any = false;
            for (int64_t k = 0; k < s.keys; k++) {
                bool v = !blank && visible(rng);
                l.mask[bt * s.keys + k] = v ? 1 : 0;
                any = any || v;
            }
            // A random mask keeps at least one visible key per row.
            if (!any && !blank) l.mask[bt * s.keys + (bt % s.keys)] = 1;
        }
    }
    return l;
}

}  // namespace mhac::testing
