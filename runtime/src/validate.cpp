#include "validate.h"

#include <algorithm>
#include <cmath>

#include "checked_math.h"

namespace mhac::detail {

void fail(const std::string &message) {
    throw Error(message);
}

namespace {

void check_key_like_value(const TensorView &key, const TensorView &value) {
    require_tensor("key", key, 3, "[batch, positions..., key features]", false);
    if (key.shape.size() != value.shape.size() ||
        !std::equal(value.shape.begin(), value.shape.end() - 1, key.shape.begin())) {
        fail(
            "All dimensions of `value` and `key`, except the last one, must be equal. "
            "Received: value shape " +
            shape_to_string(value.shape) + " and key shape " + shape_to_string(key.shape));
    }
}

// Rows of an input in [batch axes..., attention axes..., features] order:
// the caller's data, or a gathered copy when the attention axes interleave.
const float *rows_of(const TensorView &t, const AxesPlan &axes, int64_t rows,
                     KernelFloats &storage) {
    if (!axes.needs_transpose) return t.data;
    float *dst = grow(storage, rows * t.shape.back());
    gather_rows(t.data, t.shape, axes, dst);
    return dst;
}

}  // namespace

int64_t checked_element_count(const std::string &what, const Shape &shape) {
    const std::optional<int64_t> n = element_count(shape);
    if (!n) fail(what + " of shape " + shape_to_string(shape) + " has too many elements");
    return *n;
}

void require_tensor(const char *name, const TensorView &t, size_t min_rank, const char *layout,
                    bool exact) {
    if (exact ? t.shape.size() != min_rank : t.shape.size() < min_rank) {
        fail(std::string(name) + " must have rank " + (exact ? "" : ">= ") +
             std::to_string(min_rank) + " " + layout + ", got shape " + shape_to_string(t.shape));
    }
    for (int64_t d : t.shape) {
        if (d <= 0) {
            fail(std::string(name) + " has a zero or negative dimension: shape " +
                 shape_to_string(t.shape));
        }
    }
    if (!t.data)
        fail(std::string(name) + " has null data (shape " + shape_to_string(t.shape) + ")");
    checked_element_count(name, t.shape);
}

void require_shape(const char *name, const TensorView &t, const Shape &expected) {
    require_tensor(name, t, expected.size(), "");
    if (t.shape != expected) {
        fail(std::string(name) + " has shape " + shape_to_string(t.shape) + ", expected " +
             shape_to_string(expected));
    }
}

void validate_inputs(const LayerConfig &config, const LayerWeights &w, const TensorView &query,
                     const TensorView &value, const TensorView *key, AxesPlan &axes) {
    if (!w.set) fail("call() before set_weights()");
    require_tensor("query", query, 3, "[batch, positions..., query features]", false);
    require_tensor("value", value, 3, "[batch, positions..., value features]", false);
    if (key) check_key_like_value(*key, value);
    if (query.shape[0] != value.shape[0]) {
        fail("query and value must have the same batch size. Received: query shape " +
             shape_to_string(query.shape) + " and value shape " + shape_to_string(value.shape));
    }
    if (query.shape.back() != w.query_features) {
        fail("query's last dimension must match query_kernel [Eq, N, H] with Eq=" +
             std::to_string(w.query_features) + "; got query shape " +
             shape_to_string(query.shape));
    }
    if (value.shape.back() != w.value_features) {
        fail("value's last dimension must match value_kernel [Ev, N, Hv] with Ev=" +
             std::to_string(w.value_features) + "; got value shape " +
             shape_to_string(value.shape));
    }
    const Shape &kshape = key ? key->shape : value.shape;
    if (kshape.back() != w.key_features) {
        fail(std::string(key ? "key" : "value (used as key, since key was omitted)") +
             "'s last dimension must match key_kernel [Ek, N, H] with Ek=" +
             std::to_string(w.key_features) + "; got shape " + shape_to_string(kshape));
    }
    plan_axes(config.attention_axes, query.shape, value.shape, axes);
}

Shape output_shape(const LayerWeights &weights, const Shape &query) {
    Shape s(query.begin(), query.end() - 1);
    s.insert(s.end(), weights.output_tail.begin(), weights.output_tail.end());
    return s;
}

void scores_shape(const AxesPlan &axes, int num_heads, const Shape &query, const Shape &value,
                  Shape &s) {
    s.clear();
    for (int a : axes.batch_axes) s.push_back(query[a]);
    s.push_back(num_heads);
    for (int a : axes.attention_axes) s.push_back(query[a]);
    for (int a : axes.attention_axes) s.push_back(value[a]);
}

CallPlan validate_call(const LayerConfig &config, const LayerWeights &w, const TensorView &query,
                       const TensorView &value, const CallOptions &options, float *output,
                       float *scores, Scratch &scratch) {
    AxesPlan &axes = scratch.axes;
    validate_inputs(config, w, query, value, options.key, axes);
    if (!output) fail("output pointer is null");
    if (options.return_attention_scores && config.flash_attention) {
        fail(
            "Returning attention scores is not supported when flash attention is enabled "
            "(flash_attention=True).");
    }
    if (options.return_attention_scores && !scores) {
        fail("return_attention_scores is set but the scores pointer is null");
    }
    scores_shape(axes, config.num_heads, query.shape, value.shape, scratch.scores);

    CallPlan plan;
    plan.axes = &axes;
    plan.mask = plan_masks(options, axes, query.shape, value.shape, scratch.scores,
                           config.num_heads, config.sliding_window, scratch.mask);
    Problem &p = plan.problem;
    p.batch = axes.batch;
    p.queries = axes.queries;
    p.keys = axes.keys;
    p.query_features = w.query_features;
    p.key_features = w.key_features;
    p.value_features = w.value_features;
    p.num_heads = config.num_heads;
    p.key_dim = config.key_dim;
    p.value_dim = config.value_dim;
    p.output_features = w.output_features;
    p.use_bias = config.use_bias;
    p.mask = plan.mask.kind;
    const bool explicit_path =
        options.return_attention_scores || config.dropout > 0.0f || axes.rank != 3;
    p.keras_path = explicit_path ? KerasPath::explicit_scores : KerasPath::fused;
    p.use_gate = config.use_gate;
    plan.dropout = options.training && config.dropout > 0.0f;
    plan.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config.key_dim)));

    const TensorView &key = options.key ? *options.key : value;
    const int64_t query_rows = axes.batch * axes.queries, key_rows = axes.batch * axes.keys;
    plan.query_rows = rows_of(query, axes, query_rows, scratch.query_rows);
    plan.value_rows = rows_of(value, axes, key_rows, scratch.value_rows);
    plan.key_rows = options.key ? rows_of(key, axes, key_rows, scratch.key_rows) : plan.value_rows;
    plan.output = output;
    plan.output_rows =
        axes.needs_transpose ? grow(scratch.output_rows, query_rows * w.output_features) : output;
    plan.scores = scores;
    plan.shapes = CallShapes{&query.shape, &value.shape, &key.shape};
    return plan;
}

}  // namespace mhac::detail
