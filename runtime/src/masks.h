// Keras's mask combination (spec section 2), in Keras's order: the padding,
// causal and sliding-window masks ANDed into an auto mask first, then ANDed
// with attention_mask by trailing-axis broadcasting, then aligned to the
// scores at the head slot. Reduced to what the kernels take: nothing, the
// causal pattern, or one dense uint8 mask (s, t, n|1, b|1).
#pragma once

#include <vector>

#include "layout.h"
#include "mhac/mha.h"

namespace mhac::detail {

struct MaskPlan {
    MaskKind kind = MaskKind::none;
    const uint8_t *data = nullptr;              // dense only: caller's mask or `storage`
    int64_t heads = 1, batch = 1;               // dense extents over n and b (1 = broadcast)
    int64_t head_stride = 0, batch_stride = 0;  // in elements
};

// Validates the masks in `options` against the call's shapes and combines
// them exactly as Keras 3.15 does, also where Keras's broadcasting mixes
// batch and head axes; where Keras raises, throws an Error naming the shapes.
// `scores_shape` is Keras's scores shape for the call. Uses `storage`
// (grown, never shrunk) when the combination must be materialized.
// `sliding_window` > 0 adds Keras's |i - j| < w band (3.15+).
MaskPlan plan_masks(const CallOptions &options, const AxesPlan &axes, const Shape &query,
                    const Shape &value, const Shape &scores_shape, int num_heads,
                    int sliding_window, std::vector<uint8_t> &storage);

}  // namespace mhac::detail
