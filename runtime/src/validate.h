// Validation at the boundary: every argument checked once, against the
// config and the weights, into one plain CallPlan the executors read.
#pragma once

#include <cstddef>

#include "halide_glue.h"
#include "layer.h"
#include "masks.h"

namespace mhac::detail {

// Throws Error(message): the runtime's one way to refuse an argument.
[[noreturn]] void fail(const std::string &message);

// The element count of `shape` (non-negative dims); an Error naming `what`
// when it does not fit an int64.
int64_t checked_element_count(const std::string &what, const Shape &shape);

// A tensor argument: rank == min_rank (or >= when !exact), positive dims,
// non-null data. Errors name the argument, the layout and the shape.
void require_tensor(const char *name, const TensorView &t, size_t min_rank, const char *layout,
                    bool exact = true);
void require_shape(const char *name, const TensorView &t, const Shape &expected);

// The inputs' shapes against the weights; fills `axes`.
void validate_inputs(const LayerConfig &config, const LayerWeights &weights,
                     const TensorView &query, const TensorView &value, const TensorView *key,
                     AxesPlan &axes);

// Keras's output and scores shapes for validated inputs.
Shape output_shape(const LayerWeights &weights, const Shape &query);
void scores_shape(const AxesPlan &axes, int num_heads, const Shape &query, const Shape &value,
                  Shape &scores);

// One validated call: sizes for dispatch, the data as [B, T|S, E] rows, the
// outputs and the combined mask.
struct CallPlan {
    Problem problem;
    const AxesPlan *axes = nullptr;
    const float *query_rows = nullptr, *key_rows = nullptr, *value_rows = nullptr;
    float *output_rows = nullptr;  // [B, T, O]: `output`, or scratch scattered into it
    float *output = nullptr;       // the caller's, in Keras's layout
    float *scores = nullptr;       // [B, N, T, S] for the probabilities, or null
    MaskPlan mask;                 // dense strides inside
    bool dropout = false;          // training with a dropout rate
    float scale = 1.0f;            // float32(1 / sqrt(key_dim)), as Keras rounds it
    CallShapes shapes;             // the caller's shapes, for kernel errors
};

// Checks every argument of a call (throws Error naming it) and plans it:
// axes, masks, the Keras path. Inputs whose attention axes interleave are
// gathered into `scratch` rows. Allocates nothing once `scratch` is warm.
CallPlan validate_call(const LayerConfig &config, const LayerWeights &weights,
                       const TensorView &query, const TensorView &value, const CallOptions &options,
                       float *output, float *scores, Scratch &scratch);

}  // namespace mhac::detail
