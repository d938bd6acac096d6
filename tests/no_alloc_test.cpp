// call_into allocates nothing once the layer has seen a call of the same
// sizes (mha.h's promise): C++ heap allocations are counted by replacing the
// global operator new in this binary (bench/alloc_counter.cpp); Halide's own
// scratch goes through the runtime's recycling halide_malloc.
#include <gtest/gtest.h>

#include "../bench/alloc_counter.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "random_layer.h"

namespace mhac::testing {
namespace {

struct Case {
    const char *name;
    bool scores;
    bool mask;
    bool causal;
    Sizes sizes;
};

class NoAllocation : public ::testing::TestWithParam<Case> {};

TEST_P(NoAllocation, OnceWarm) {
    const Case &c = GetParam();
    RandomLayer data =
        make_random_layer(c.sizes, true, 3, c.mask ? RandomMask::random : RandomMask::none);
    MultiHeadAttention layer(data.config(), kernel_sets::default_set());
    layer.set_weights(data.keras_weights());
    TensorView q = data.query_view(), k = data.key_view(), v = data.value_view();
    MaskView mask{data.mask.data(), {c.sizes.batch, c.sizes.queries, c.sizes.keys}};
    CallOptions o;
    o.key = &k;
    o.return_attention_scores = c.scores;
    o.use_causal_mask = c.causal;
    if (c.mask) o.attention_mask = &mask;
    std::vector<float> out(size_t(c.sizes.batch * c.sizes.queries * c.sizes.output_features));
    std::vector<float> scores(
        size_t(c.sizes.batch * c.sizes.num_heads * c.sizes.queries * c.sizes.keys));
    layer.call_into(q, v, o, out.data(), scores.data());  // warm: scratch sized here
    const uint64_t before = bench::heap_allocations();
    for (int i = 0; i < 3; i++) layer.call_into(q, v, o, out.data(), scores.data());
    EXPECT_EQ(bench::heap_allocations() - before, 0u) << layer.last_selection().describe();
}

INSTANTIATE_TEST_SUITE_P(
    Calls, NoAllocation,
    ::testing::Values(
        Case{"bert_fused", false, false, false, {1, 32, 32, 768, 768, 768, 12, 64, 64, 768}},
        Case{"bert_fused_mask", false, true, true, {2, 16, 24, 768, 768, 768, 12, 64, 64, 768}},
        Case{"generic_staged", true, true, false, {2, 9, 7, 24, 20, 12, 2, 16, 16, 24}},
        Case{"generic_fused_causal", false, false, true, {1, 5, 5, 24, 20, 12, 3, 8, 8, 24}}),
    [](const auto &info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mhac::testing
