// attention_axes: mapping Keras's N-D attention onto the 3-D kernels.
//
// Keras attends over the query/key positions on `attention_axes` and treats
// every other non-feature axis as a batch axis (spec 3.2). Flattening the
// batch-like axes into B and the attention axes into T (S for the key side)
// gives exactly the 3-D problem, with the joint softmax over all key
// attention axes becoming a softmax over S. The scores layout Keras returns,
// [B, other axes..., N, query attention axes..., key attention axes...], is
// then the kernels' [B, N, T, S] row-major order, so scores need no copy.
#pragma once

#include <vector>

#include "mhac/mha.h"

namespace mhac::detail {

struct AxesPlan {
    int rank = 0;                              // input rank (features included)
    std::vector<int> batch_axes;               // 0 and every non-attention axis, ascending
    std::vector<int> attention_axes;           // ascending
    int64_t batch = 1, queries = 1, keys = 1;  // flattened sizes
    // True when the inputs are not already [batch axes..., attention axes...,
    // features] in memory and must be gathered (and the output scattered).
    bool needs_transpose = false;
};

// Resolves Keras's attention_axes (empty = default; negatives count from the
// input rank) for inputs of `query`'s and `value`'s shapes, and checks that
// their batch-like axes agree. Errors name the axes and shapes.
// Fills `plan` (its vectors keep their capacity, so a layer reusing one plan
// allocates nothing here once warm).
void plan_axes(const std::vector<int> &attention_axes, const Shape &query, const Shape &value,
               AxesPlan &plan);

// Copies rows of `src` (shape `shape`, features last) into
// [batch axes..., attention axes..., features] order.
void gather_rows(const float *src, const Shape &shape, const AxesPlan &plan, float *dst);

// The inverse for the output: `src` is [batch axes..., attention axes...,
// features] rows; `shape` is the output's Keras shape (query axes, then
// `features` values per position).
void scatter_rows(const float *src, const Shape &shape, int64_t features, const AxesPlan &plan,
                  float *dst);

}  // namespace mhac::detail
