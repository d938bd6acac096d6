#include "packed_weights.h"

#include <string>

#include "checked_math.h"
#include "mhac/mha.h"

namespace mhac::detail {

PackedKernel pack_kernel(const float *kernel, int64_t in_features, int64_t out_features) {
    // Every index below is < in_features * out_features or < the packed size:
    // both are checked once here, so the loops cannot overflow.
    const auto size = [&]() -> std::optional<int64_t> {
        if (in_features < 0 || out_features < 0) return std::nullopt;
        // packed_panels() rounds out_features up to whole panel groups: safe
        // once that sum fits.
        const auto rounded = checked_add(out_features, int64_t{kPanelWidth} * kPanelGroup - 1);
        if (!rounded || !checked_mul(in_features, out_features)) return std::nullopt;
        const auto packed = checked_mul(int64_t{packed_panels(out_features)}, in_features);
        if (!packed) return std::nullopt;
        const auto elements = checked_mul(*packed, int64_t{kPanelWidth});
        if (!elements || !byte_size(*elements, sizeof(float))) return std::nullopt;
        return elements;
    }();
    if (!size)
        throw Error("weights too large to pack: a [" + std::to_string(in_features) + ", " +
                    std::to_string(out_features) + "] projection kernel overflows memory sizes");
    PackedKernel p;
    p.in_features = in_features;
    p.out_features = out_features;
    p.panels = packed_panels(out_features);
    p.data.assign(static_cast<size_t>(*size), 0.0f);
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
