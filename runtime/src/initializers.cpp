// Fresh-layer weights and get_weights()-order views (mha.h).
#include <cmath>
#include <random>

#include "mhac/mha.h"
#include "validate.h"

namespace mhac {

namespace {
int64_t product(const Shape &s) {
    return detail::checked_element_count("weight", s);
}
}  // namespace

KerasWeights keras_weights_from(const std::vector<Tensor> &w, bool use_bias, bool use_gate) {
    const size_t per = use_bias ? 2 : 1;
    const size_t expected = per * (use_gate ? 5 : 4);
    if (w.size() != expected) {
        throw Error("expected " + std::to_string(expected) + " weight arrays (use_bias=" +
                    (use_bias ? "True" : "False") + ", use_gate=" + (use_gate ? "True" : "False") +
                    "), got " + std::to_string(w.size()));
    }
    // Keras builds query, key, [gate], value, output; kernel before bias.
    KerasWeights k;
    size_t i = 0;
    auto take = [&](TensorView &kernel, TensorView &bias) {
        kernel = w[i++].view();
        if (use_bias) bias = w[i++].view();
    };
    take(k.query_kernel, k.query_bias);
    take(k.key_kernel, k.key_bias);
    if (use_gate) take(k.gate_kernel, k.gate_bias);
    take(k.value_kernel, k.value_bias);
    take(k.output_kernel, k.output_bias);
    return k;
}

std::vector<Tensor> initialize_weights(const LayerConfig &config, int64_t query_features,
                                       int64_t value_features, int64_t key_features,
                                       uint64_t seed) {
    const int64_t n = config.num_heads, h = config.key_dim,
                  hv = config.value_dim > 0 ? config.value_dim : config.key_dim;
    if (n <= 0 || h <= 0) throw Error("initialize_weights: num_heads and key_dim must be positive");
    if (key_features <= 0) key_features = value_features;
    Shape out = config.output_shape.empty() ? Shape{query_features} : config.output_shape;
    std::mt19937_64 rng(seed);
    // glorot_uniform, Keras 3.15 fans: limit = sqrt(6 / (fan_in + fan_out)).
    auto kernel = [&](Shape shape, int64_t fan_in, int64_t fan_out) {
        Tensor t{shape, std::vector<float>(static_cast<size_t>(product(shape)))};
        std::uniform_real_distribution<float> d(-std::sqrt(6.0f / float(fan_in + fan_out)),
                                                std::sqrt(6.0f / float(fan_in + fan_out)));
        for (float &x : t.data) x = d(rng);
        return t;
    };
    auto zeros = [](Shape shape) {
        return Tensor{shape, std::vector<float>(static_cast<size_t>(product(shape)), 0.0f)};
    };
    Shape wo{n, hv};
    wo.insert(wo.end(), out.begin(), out.end());
    std::vector<Tensor> w;
    auto add = [&](Tensor k, Shape bias) {
        w.push_back(std::move(k));
        if (config.use_bias) w.push_back(zeros(std::move(bias)));
    };
    add(kernel({query_features, n, h}, query_features, n * h), {n, h});
    add(kernel({key_features, n, h}, key_features, n * h), {n, h});
    if (config.use_gate) add(kernel({query_features, n, hv}, query_features, n * hv), {n, hv});
    add(kernel({value_features, n, hv}, value_features, n * hv), {n, hv});
    add(kernel(wo, n * hv, product(out)), out);
    return w;
}

}  // namespace mhac
