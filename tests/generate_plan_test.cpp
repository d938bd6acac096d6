// The kernel planner (tools/plan): the one expansion of a configuration
// table, which mhac_add_kernel_set() and `mhac generate` both run. Here: it
// plans exactly the kernels the build's registry holds, carries per-stage
// knobs, and refuses malformed tables. (tests/check_generate_plan.cmake
// compares `mhac generate`'s plan of the default table with the build's,
// parameter by parameter.)
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "kernel_plan.h"
#include "mhac/kernel_set_default_set.h"
#include "tuned_db.h"

namespace mhac::plan {
namespace {

std::vector<std::string> targets_of(const KernelSet &set) {
    std::vector<std::string> targets;
    std::stringstream ss(set.targets);
    for (std::string t; ss >> t;) targets.push_back(t);
    return targets;
}

TEST(KernelPlan, MatchesTheCMakeExpansionOfTheDefaultTable) {
    const KernelSet &set = kernel_sets::default_set();
    std::vector<ConfigRow> rows;
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
        // Bucket kernels a plan without the database has: those of buckets
        // with default knobs (tuned::kBuckets).
        for (size_t b = 0; b < c.num_fused_buckets; b++) {
            const tuned::Bucket *bucket = tuned::find_bucket(c.fused_buckets[b].bucket);
            if (bucket && *bucket->cpu_default_knobs) note(c.fused_buckets[b].kernel.name);
        }
        if (c.is_generic()) continue;
        const ConfigSizes &z = c.sizes;
        ConfigRow row;
        row.name = c.name;
        row.num_heads = z.num_heads;
        row.key_dim = z.key_dim;
        row.value_dim = z.value_dim;
        row.query_features = z.query_features;
        row.key_features = z.key_features;
        row.value_features = z.value_features;
        row.output_features = z.output_features;
        row.use_bias = z.use_bias;
        for (int m = 0; m < kMaskKinds; m++) {
            if (c.fused[m]) row.masks.push_back(kMaskKindNames[m]);
        }
        rows.push_back(row);
    }
    for (const auto &by_mask : set.softmax.by_path_mask) {
        for (const auto &k : by_mask) note(k.name);
    }

    KernelPlan plan = plan_kernel_set(set.name, targets_of(set), rows);
    std::set<std::string> planned;
    for (const auto &k : plan.kernels) planned.insert(k.name);
    EXPECT_EQ(planned, registry);
    EXPECT_EQ(plan.device, "cpu");
}

TEST(KernelPlan, CudaSetsCarryTheirCapability) {
    // The target parser, on a capability the default table does not build.
    KernelPlan plan = plan_kernel_set("g", {"x86-64-linux-cuda-cuda_capability_75"}, {});
    EXPECT_EQ(plan.device, "cuda");
    EXPECT_EQ(plan.compute_capability, 75);
    EXPECT_EQ(plan.runtime_target, "x86-64-linux-cuda");
    for (const auto &k : plan.kernels) EXPECT_NE(k.name.find("__cuda75"), std::string::npos);
}

TEST(KernelPlan, RowsCarryPerStageGeneratorParameters) {
    ConfigRow row = parse_row("small 2 8 8 16 16 16 16 1 none,causal fused:tile=4 scores:unroll=2");
    ASSERT_EQ(row.params.size(), 2u);
    KernelPlan plan = plan_kernel_set("s", {"x86-64-linux-avx2"}, {row});
    int fused = 0, scores = 0;
    for (const auto &k : plan.kernels) {
        const bool has_tile =
            std::find(k.params.begin(), k.params.end(), "tile=4") != k.params.end();
        const bool has_unroll =
            std::find(k.params.begin(), k.params.end(), "unroll=2") != k.params.end();
        const bool small_row = k.name.find("generic") == std::string::npos;
        if (k.generator == "mhac_fused" && small_row) {
            EXPECT_TRUE(has_tile) << k.name;
            fused++;
        } else {
            EXPECT_FALSE(has_tile) << k.name;  // other stages, and the generic row
        }
        if (k.generator == "mhac_scores" && small_row) {
            EXPECT_TRUE(has_unroll) << k.name;
            scores++;
        } else {
            EXPECT_FALSE(has_unroll) << k.name;
        }
    }
    // none, causal, their decode-bucket kernels and none's few-bucket kernel
    // (the few bucket has no causal kernels).
    EXPECT_EQ(fused, 5);
    EXPECT_EQ(scores, 2);  // both Keras paths
}

TEST(KernelPlan, RefusesMalformedTables) {
    EXPECT_THROW(parse_row("short 2 8 8 16 16 16 16 1"), PlanError);
    EXPECT_THROW(parse_row("bad 2 x 8 16 16 16 16 1 none"), PlanError);
    EXPECT_THROW(parse_row("bad 2 8 8 16 16 16 16 2 none"), PlanError);
    EXPECT_THROW(parse_row("bad 2 8 8 16 16 16 16 1 none knob=3"), PlanError);
    EXPECT_THROW(parse_row("bad 2 8 8 16 16 16 16 1 none softmax:knob=3"), PlanError);
    EXPECT_THROW(parse_row("bad 2 8 8 16 16 16 16 1 none fused:num_heads=3"), PlanError);
    const std::vector<std::string> cpu{"x86-64-linux-avx2"};
    EXPECT_THROW(plan_kernel_set("s", cpu, {parse_row("bad 2 8 8 16 16 16 16 1 none,diag")}),
                 PlanError);
    EXPECT_THROW(plan_kernel_set("s", cpu, {parse_row("bad 0 8 8 16 16 16 16 1 none")}), PlanError);
    const ConfigRow a = parse_row("a 2 8 8 16 16 16 16 1 none");
    EXPECT_THROW(plan_kernel_set("s", cpu, {a, a}), PlanError);
    EXPECT_THROW(plan_kernel_set("s", {"x86-64"}, {a}), PlanError);
    // Two rows sharing a projection kernel but giving it different knobs.
    const ConfigRow b = parse_row("b 2 8 8 16 16 16 16 1 none projection:tile=2");
    EXPECT_THROW(plan_kernel_set("s", cpu, {a, b}), PlanError);
}

}  // namespace
}  // namespace mhac::plan
