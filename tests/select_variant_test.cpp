// select_variant: the one dispatch decision, explainable and overridable.
#include <gtest/gtest.h>

#include <string>

#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"

namespace mhac {
namespace {

Problem bert_problem() {
    Problem p;
    p.batch = 1;
    p.queries = p.keys = 128;
    p.query_features = p.key_features = p.value_features = p.output_features = 768;
    p.num_heads = 12;
    p.key_dim = p.value_dim = 64;
    return p;
}

TEST(SelectVariant, PrefersTheSpecializedConfiguration) {
    Selection s = select_variant(kernel_sets::default_set(), bert_problem());
    EXPECT_STREQ(s.config->name, "bert_base");
    EXPECT_EQ(s.path, Path::fused);
    EXPECT_NE(s.describe().find("mha_fused_f32_bert_base_none"), std::string::npos);
}

TEST(SelectVariant, FallsBackToGenericForOtherSizes) {
    Problem p = bert_problem();
    p.num_heads = 8;
    Selection s = select_variant(kernel_sets::default_set(), p);
    EXPECT_STREQ(s.config->name, "generic");
    EXPECT_NE(std::string(s.reason).find("generic"), std::string::npos);
}

TEST(SelectVariant, ScoresTakeTheStagedPath) {
    Problem p = bert_problem();
    p.keras_path = KerasPath::explicit_scores;
    p.mask = MaskKind::dense;
    Selection s = select_variant(kernel_sets::default_set(), p);
    EXPECT_EQ(s.path, Path::staged);
    EXPECT_NE(s.describe().find("mha_scores_f32_n12_h64"), std::string::npos);
}

TEST(SelectVariant, ForcedChoiceIsHonouredOrRefused) {
    Selection s = select_variant(kernel_sets::default_set(), bert_problem(), "generic");
    EXPECT_STREQ(s.config->name, "generic");
    EXPECT_THROW(select_variant(kernel_sets::default_set(), bert_problem(), "tiny"), Error);
    EXPECT_THROW(select_variant(kernel_sets::default_set(), bert_problem(), "nonexistent"), Error);
}

// A configuration with a kernel tuned for one shape bucket: calls inside its
// ranges (and of its mask kind) take it, all others the kernel for all shapes.
TEST(SelectVariant, BucketKernelRunsTheCallsInsideItsRanges) {
    const KernelSet &set = kernel_sets::default_set();
    const ConfigKernels *bert = nullptr;
    for (size_t i = 0; i < set.num_configs; i++) {
        if (std::string(set.configs[i].name) == "bert_base") bert = &set.configs[i];
    }
    ASSERT_NE(bert, nullptr);
    // The causal kernel's entry point stands in for a decode kernel: only
    // its name and pointer matter to dispatch.
    const NamedKernel<FusedFn> stand_in{"decode_stand_in", bert->fused[1].fn, "test"};
    const FusedBucket decode[] = {{MaskKind::none, "decode", 1, 1, 1, 0, stand_in}};
    ConfigKernels config = *bert;
    config.fused_buckets = decode;
    config.num_fused_buckets = 1;
    const KernelSet one{"bucket_test", set.targets, "cpu", 0, &config, 1, set.softmax};

    Problem p = bert_problem();
    p.queries = 1;
    EXPECT_STREQ(select_variant(one, p).fused.name, "decode_stand_in");
    p.keys = 4096;  // S is unbounded above
    EXPECT_STREQ(select_variant(one, p).fused.name, "decode_stand_in");
    p.queries = 2;
    EXPECT_STREQ(select_variant(one, p).fused.name, "mha_fused_f32_bert_base_none");
    p.queries = 1;
    p.mask = MaskKind::causal;  // another mask kind
    EXPECT_STREQ(select_variant(one, p).fused.name, "mha_fused_f32_bert_base_causal");
}

}  // namespace
}  // namespace mhac
