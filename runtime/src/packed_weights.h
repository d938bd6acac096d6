// Projection kernels in the layout the generated kernels read (see
// mhac/kernel_abi.h, kPanelWidth): packed once when weights are set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "aligned_vector.h"
#include "mhac/kernel_abi.h"

namespace mhac::detail {

struct PackedKernel {
    KernelFloats data;  // (ji, e, jo): panels of kPanelWidth output columns
    int64_t in_features = 0;
    int64_t out_features = 0;
    int64_t panels = 0;  // packed_panels(out_features)
};

// Packs a row-major [in_features, out_features] matrix (a Keras EinsumDense
// kernel with its output axes flattened), zero padding to whole groups of
// kPanelGroup panels.
PackedKernel pack_kernel(const float *kernel, int64_t in_features, int64_t out_features);

}  // namespace mhac::detail
