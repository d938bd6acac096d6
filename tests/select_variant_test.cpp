// select_variant: the one dispatch decision, explainable and overridable.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mhac
