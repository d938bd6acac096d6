#include "packed_weights.h"

namespace mhac::detail {

PackedKernel pack_kernel(const float *kernel, int64_t in_features, int64_t out_features) {
    PackedKernel p;
    p.in_features = in_features;
    p.out_features = out_features;
    p.panels = (out_features + kPanelWidth - 1) / kPanelWidth;
    p.data.assign(static_cast<size_t>(p.panels * in_features * kPanelWidth), 0.0f);
    for (int64_t e = 0; e < in_features; e++) {
        for (int64_t j = 0; j < out_features; j++) {
            int64_t jo = j / kPanelWidth, ji = j % kPanelWidth;
            p.data[static_cast<size_t>((jo * in_features + e) * kPanelWidth + ji)] =
                kernel[e * out_features + j];
        }
    }
    return p;
}

}  // namespace mhac::detail
