// Every compiled configuration of the kernel set, forced in turn, on both
// Keras paths and every mask kind, over tile-boundary shapes, against the
// float64 reference. The cases come from the registry: a new row in
// kernels/CMakeLists.txt is tested without touching this file.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "mha_reference.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "random_layer.h"
#include "tolerance.h"

namespace mhac::testing {
namespace {

enum class MaskCase { none, random, causal, fully_masked_rows };
const char *name_of(MaskCase m) {
    switch (m) {
    case MaskCase::none: return "nomask";
    case MaskCase::random: return "random";
    case MaskCase::causal: return "causal";
    case MaskCase::fully_masked_rows: return "fullymasked";
    }
    return "?";
}

struct SweepCase {
    std::string config;  // forced configuration
    bool staged;         // return_attention_scores -> Keras's explicit path
    MaskCase mask;
    Sizes sizes;
};

MaskKind kind_for(MaskCase m);

// The variant's name (mhac::variant_name), then the mask case and sizes.
std::string describe(const SweepCase &c) {
    const auto &s = c.sizes;
    const std::string variant =
        variant_name(c.config, c.staged ? Path::staged : Path::fused, kind_for(c.mask),
                     c.staged ? KerasPath::explicit_scores : KerasPath::fused, 0);
    return identifier(variant) + "_" + name_of(c.mask) + "_b" + std::to_string(s.batch) + "_t" +
           std::to_string(s.queries) + "_s" + std::to_string(s.keys) + "_n" +
           std::to_string(s.num_heads) + "_h" + std::to_string(s.key_dim);
}

std::string case_name(const ::testing::TestParamInfo<SweepCase> &info) {
    return describe(info.param);
}

// Keeps gtest from dumping the parameter's bytes.
void PrintTo(const SweepCase &c, std::ostream *os) {
    *os << describe(c);
}

MaskKind kind_for(MaskCase m) {
    switch (m) {
    case MaskCase::none: return MaskKind::none;
    case MaskCase::causal: return MaskKind::causal;
    default: return MaskKind::dense;
    }
}

// Longest sequence swept on BERT-sized configurations. Emulated builds
// (qemu, ~10x slower) stop at 64; generic sizes still reach 257 there.
#ifndef MHAC_SWEEP_LARGE_MAX_LENGTH
#define MHAC_SWEEP_LARGE_MAX_LENGTH 97
#endif
constexpr int64_t kLargeMaxLength = MHAC_SWEEP_LARGE_MAX_LENGTH;

std::vector<SweepCase> all_cases() {
    // Sequence lengths around the register tiles (1, 7) and vector widths
    // (64, 97, 257), with T != S both ways.
    const std::vector<std::pair<int64_t, int64_t>> lengths = {
        {1, 1},   {7, 7},  {64, 64}, {97, 97},  {257, 257},
        {1, 257}, {7, 97}, {97, 7},  {257, 64}, {64, 1}};
    const MaskCase masks[] = {MaskCase::none, MaskCase::random, MaskCase::causal,
                              MaskCase::fully_masked_rows};
    std::vector<SweepCase> cases;
    const KernelSet &set = kernel_sets::default_set();
    for (size_t ci = 0; ci < set.num_configs; ci++) {
        const ConfigKernels &cfg = set.configs[ci];
        // Kernels tuned per shape bucket (FusedBucket): select_variant takes
        // them for calls inside their ranges, so one call per bucket kernel
        // at sizes inside it (and unlike the lengths below).
        for (size_t bi = 0; bi < cfg.num_fused_buckets; bi++) {
            const FusedBucket &b = cfg.fused_buckets[bi];
            const int64_t t = b.max_queries ? std::min<int64_t>(b.max_queries, 5) : b.min_queries;
            const int64_t s = std::max<int64_t>(b.min_keys + 1, 130);
            const ConfigSizes &z = cfg.sizes;
            const MaskCase m = b.mask == MaskKind::none     ? MaskCase::none
                               : b.mask == MaskKind::causal ? MaskCase::causal
                                                            : MaskCase::random;
            if (cfg.is_generic()) {
                // BERT's head dim (64) and a small one (16).
                for (int64_t h : {16, 64})
                    cases.push_back({cfg.name, false, m, {1, t, s, 24, 20, 12, 2, h, h, 24}});
                continue;
            }
            cases.push_back({cfg.name,
                             false,
                             m,
                             {1, t, s, z.query_features, z.key_features, z.value_features,
                              z.num_heads, z.key_dim, z.value_dim, z.output_features}});
        }
        for (bool staged : {false, true}) {
            if (cfg.is_generic()) {
                // Sizes known only at run time: sweep heads and head dims.
                // Feature dims differ between query, key and value.
                int i = 0;
                for (int64_t n : {1, 2, 12}) {
                    for (int64_t h : {16, 64}) {
                        for (auto [t, s] : lengths) {
                            int64_t b = (i % 2 == 0) ? 1 : 3;
                            if (n == 12 && h == 64 && t * s > 64 * 64) b = 1;
                            MaskCase m = masks[(i + staged) % 4];
                            cases.push_back(
                                {cfg.name, staged, m, {b, t, s, 24, 20, 12, n, h, h, 24}});
                            i++;
                        }
                    }
                }
                continue;
            }
            const ConfigSizes &z = cfg.sizes;
            const bool large = int64_t(z.query_features) * z.num_heads * z.key_dim > 100000;
            for (auto [t, s] : lengths) {
                // The float64 reference is slow on BERT-sized layers: skip
                // the longest sequences there (generic covers them).
                if (large && (t > kLargeMaxLength || s > kLargeMaxLength)) continue;
                for (MaskCase m : masks) {
                    if (staged == false && !cfg.fused[static_cast<int>(kind_for(m))]) continue;
                    int64_t b = (t * s <= 64 && !large) || (t == 7 && s == 7) ? 3 : 1;
                    cases.push_back({cfg.name,
                                     staged,
                                     m,
                                     {b, t, s, z.query_features, z.key_features, z.value_features,
                                      z.num_heads, z.key_dim, z.value_dim, z.output_features}});
                }
            }
        }
    }
    return cases;
}

class KernelSweep : public ::testing::TestWithParam<SweepCase> {};

TEST_P(KernelSweep, MatchesFloat64Reference) {
    const SweepCase &c = GetParam();
    const auto &sz = c.sizes;
    RandomMask rm = c.mask == MaskCase::random              ? RandomMask::random
                    : c.mask == MaskCase::fully_masked_rows ? RandomMask::fully_masked_rows
                                                            : RandomMask::none;
    RandomLayer data = make_random_layer(sz, true, 1234 + sz.queries * 31 + sz.keys, rm);
    MultiHeadAttention layer(data.config(), kernel_sets::default_set());
    layer.set_weights(data.keras_weights());

    TensorView q = data.query_view(), k = data.key_view(), v = data.value_view();
    MaskView mask{data.mask.data(), {sz.batch, sz.queries, sz.keys}};
    CallOptions opts;
    opts.key = &k;
    opts.force_config = c.config;
    opts.return_attention_scores = c.staged;
    opts.use_causal_mask = c.mask == MaskCase::causal;
    if (!data.mask.empty()) opts.attention_mask = &mask;

    CallResult got = layer.call(q, v, opts);
    EXPECT_EQ(layer.last_selection().config->name, c.config);
    EXPECT_EQ(layer.last_selection().path == Path::staged, c.staged);

    reference::Result want = reference::multi_head_attention(
        data.reference_layer(), data.reference_call(opts.use_causal_mask),
        c.staged ? reference::Path::explicit_scores : reference::Path::fused);

    ASSERT_EQ(got.output.shape, (Shape{sz.batch, sz.queries, sz.output_features}));
    Comparison out = compare(got.output.data, want.output, false);
    // Recorded for docs/tolerance.md (--gtest_output=json:FILE collects them).
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", out.max_abs_error / (out.bound / kOutputRelTol));
    RecordProperty("output_error_over_scale", buf);
    EXPECT_TRUE(out.ok()) << out.describe("output [B, T, O] via " +
                                          layer.last_selection().describe());
    if (c.staged) {
        ASSERT_EQ(got.scores.shape, (Shape{sz.batch, sz.num_heads, sz.queries, sz.keys}));
        Comparison sc = compare(got.scores.data, want.scores, true);
        std::snprintf(buf, sizeof buf, "%.3g", sc.max_abs_error);
        RecordProperty("scores_error", buf);
        EXPECT_TRUE(sc.ok()) << sc.describe("scores [B, N, T, S]");
    }

    // A second call on the same layer reuses its scratch and must agree.
    CallResult again = layer.call(q, v, opts);
    EXPECT_EQ(again.output.data, got.output.data);
}

INSTANTIATE_TEST_SUITE_P(DefaultSet, KernelSweep, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace mhac::testing
