// `mhac generate` expands a configuration table in C++
// (tools/mhac/kernel_plan.cpp); CMake expands the same table for the build
// (cmake/MhacKernels.cmake). Both must name the same kernels.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "../tools/mhac/kernel_plan.h"
#include "mhac/kernel_set_default_set.h"

namespace mhac::cli {
namespace {

TEST(KernelPlan, MatchesTheCMakeExpansionOfTheDefaultTable) {
    const KernelSet &set = kernel_sets::default_set();
    std::vector<PlanConfig> rows;
    std::set<std::string> registry;
    auto note = [&](const char *name) {
        if (name) registry.insert(name);
    };
    for (size_t i = 0; i < set.num_configs; i++) {
        const ConfigKernels &c = set.configs[i];
        for (const auto &k : c.fused) note(k.name);
        for (const auto &k : c.projection) note(k.name);
        for (const auto &k : c.scores) note(k.name);
        note(c.combine.name);
        if (c.is_generic()) continue;
        const ConfigSizes &z = c.sizes;
        PlanConfig row{
            c.name,         z.num_heads,      z.key_dim,         z.value_dim, z.query_features,
            z.key_features, z.value_features, z.output_features, z.use_bias,  {}};
        const char *masks[] = {"none", "causal", "dense"};
        for (int m = 0; m < kMaskKinds; m++) {
            if (c.fused[m]) row.masks.push_back(masks[m]);
        }
        rows.push_back(row);
    }
    for (const auto &by_mask : set.softmax.by_path_mask) {
        for (const auto &k : by_mask) note(k.name);
    }
    std::vector<std::string> targets;
    std::stringstream ss(set.targets);
    for (std::string t; ss >> t;) targets.push_back(t);

    KernelPlan plan = plan_kernel_set(set.name, targets, rows);
    std::set<std::string> planned;
    for (const auto &k : plan.kernels) planned.insert(k.name);
    EXPECT_EQ(planned, registry);
    EXPECT_EQ(plan.device, "cpu");
}

TEST(KernelPlan, CudaSetsCarryTheirCapability) {
    KernelPlan plan = plan_kernel_set("g", {"x86-64-linux-cuda-cuda_capability_86"}, {});
    EXPECT_EQ(plan.device, "cuda");
    EXPECT_EQ(plan.cuda_capability, 86);
    for (const auto &k : plan.kernels) EXPECT_NE(k.name.find("__cuda86"), std::string::npos);
}

}  // namespace
}  // namespace mhac::cli
