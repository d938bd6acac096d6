// Whether a usable CUDA device exists, found out without linking CUDA: the
// driver library is loaded at run time, as Halide's own CUDA runtime does.
#pragma once

#include <string>

namespace mhac::detail {

struct CudaDevice {
    bool usable = false;
    std::string reason;  // why not, when not usable
    std::string name;
    int capability = 0;  // major * 10 + minor, e.g. 90 for an H100
};

// Probed once per process (thread safe).
const CudaDevice &cuda_device();

}  // namespace mhac::detail
