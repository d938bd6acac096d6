// Whether a usable CUDA device exists, found out without linking CUDA: the
// driver library is loaded at run time, as Halide's own CUDA runtime does.
#pragma once

#include "mhac/mha.h"

namespace mhac::detail {

// capability: major * 10 + minor, e.g. 90 for an H100.
using CudaDevice = CudaDeviceInfo;

// Probed once per process (thread safe).
const CudaDevice &cuda_device();

}  // namespace mhac::detail
