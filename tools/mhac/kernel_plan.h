// A kernel set's plan: every kernel (name, generator, parameters) and the
// registry source, from a configuration table. The C++ twin of
// cmake/MhacKernels.cmake, used by `mhac generate` for builds without CMake;
// tests/generate_test checks both expand the default table identically.
#pragma once

#include <string>
#include <vector>

namespace mhac::cli {

struct PlanConfig {
    std::string name;
    int num_heads = 0, key_dim = 0, value_dim = 0;
    int query_features = 0, key_features = 0, value_features = 0, output_features = 0;
    bool use_bias = true;
    std::vector<std::string> masks;  // of none, causal, dense
};

struct PlannedKernel {
    std::string name;                 // library and function name
    std::string generator;            // registered generator name
    std::vector<std::string> params;  // key=value GeneratorParams
};

struct KernelPlan {
    std::string set_name;
    std::vector<std::string> targets;
    std::string device;  // cpu | cuda
    int cuda_capability = 0;
    std::vector<PlannedKernel> kernels;  // each once
    std::string registry_source;         // <set>_registry.cpp
    std::string header;                  // mhac/kernel_set_<set>.h
};

// `configs` excludes the generic row, which every plan gets first.
KernelPlan plan_kernel_set(const std::string &set_name, const std::vector<std::string> &targets,
                           const std::vector<PlanConfig> &configs);

}  // namespace mhac::cli
