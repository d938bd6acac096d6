// The tuned-schedule database (tools/plan/tuned_db.h) and the planner's use
// of it: file round trip and order, target spelling, merge and upsert,
// malformed files, and which entries a planned kernel takes.
#include "tuned_db.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernel_plan.h"

namespace mhac::tuned {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const char *const kAvx2 = "x86-64-linux-avx2-f16c-fma";
const char *const kSse41 = "x86-64-linux-sse41";
const std::vector<std::string> kLadder = {"x86-64-linux-avx2-fma-f16c", kSse41};
const char *const kHash = "0123456789abcdef";
const char *const kHalide = "21.0.0";

// The fused kernel of the tiny row below, as the planner plans it.
const char *const kTinyRow = "tiny 4 16 16 64 64 64 64 1 none";
std::vector<std::string> tiny_params() {
    return {"key_dim=16",    "key_features=64",    "mask_kind=none",
            "num_heads=4",   "output_features=64", "query_features=64",
            "use_bias=true", "value_dim=16",       "value_features=64"};
}

Entry tiny_entry(const std::string &target, std::vector<std::string> knobs) {
    Entry e;
    e.generator = "mhac_fused";
    e.config = "tiny";
    e.kernel_params = tiny_params();
    e.target = target;
    e.source_hash = kHash;
    e.halide_version = kHalide;
    e.knobs = std::move(knobs);
    e.found_by = "knob search";
    e.timings = {{1, 128, 128, 2, 1.0, 1.25, 0.02, 0.03}};
    e.cpu = "AMD EPYC 7B13";
    e.cores = 2;
    e.date = "2026-05-01T10:00:00Z";
    e.budget_s = 120;
    e.spent_s = 118.5;
    e.candidates = 40;
    e.rejected = 1;
    return e;
}

// A fresh directory per test.
class TempDir {
public:
    TempDir() {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = fs::temp_directory_path() /
                ("mhac_tuned_" + std::string(info->name()) + "_" + std::to_string(getpid()));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() { fs::remove_all(path_); }
    const fs::path &path() const { return path_; }
    void write(const std::string &name, const std::string &text) const {
        std::ofstream(path_ / name) << text;
    }

private:
    fs::path path_;
};

std::string read(const fs::path &p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST(TunedDb, CanonicalTargetSortsFeaturesAndDropsNoRuntime) {
    EXPECT_EQ(canonical_target("x86-64-linux-fma-avx2-no_runtime-f16c"), kAvx2);
    EXPECT_EQ(canonical_target("x86-64-linux"), "x86-64-linux");
    EXPECT_EQ(canonical_target("arm-64-linux-arm_fp16-arm_dot_prod"),
              "arm-64-linux-arm_dot_prod-arm_fp16");
    EXPECT_THROW(canonical_target("x86-64"), TunedParamError);
}

TEST(TunedDb, RoundTripKeepsEveryFieldSortedAndIndented) {
    TempDir dir;
    Database db;
    Entry b = tiny_entry(kAvx2, {"key_block=64"});
    b.config = "zeta";
    Entry a = tiny_entry(kAvx2, {"query_block=32"});
    a.generator = "mhac_projection";
    a.kernel_params = {"in_features=64", "out_features=64", "use_bias=true"};
    Entry c = tiny_entry(kSse41, {});
    db.entries = {b, a, c};
    save_dir(db, dir.path().string());

    const std::string text = read(dir.path() / (std::string(kAvx2) + ".json"));
    EXPECT_THAT(text, HasSubstr("{\n  \"format\": 1,\n  \"target\": \"" + std::string(kAvx2)));
    // Sorted by generator first: mhac_fused before mhac_projection.
    EXPECT_LT(text.find("mhac_fused"), text.find("mhac_projection"));
    EXPECT_TRUE(fs::exists(dir.path() / (std::string(kSse41) + ".json")));

    Database back = load_dir(dir.path().string());
    ASSERT_EQ(back.entries.size(), 3u);
    const Entry &r = back.entries[0];  // files in name order, entries sorted
    EXPECT_EQ(r.generator, "mhac_fused");
    EXPECT_EQ(r.config, "zeta");
    EXPECT_EQ(r.kernel_params, tiny_params());
    EXPECT_EQ(r.knobs, std::vector<std::string>{"key_block=64"});
    EXPECT_EQ(r.bucket, "all");
    EXPECT_EQ(r.found_by, "knob search");
    EXPECT_EQ(r.cpu, "AMD EPYC 7B13");
    EXPECT_EQ(r.cores, 2);
    EXPECT_EQ(r.date, "2026-05-01T10:00:00Z");
    EXPECT_EQ(r.budget_s, 120);
    EXPECT_EQ(r.spent_s, 118.5);
    EXPECT_EQ(r.candidates, 40);
    EXPECT_EQ(r.rejected, 1);
    ASSERT_EQ(r.timings.size(), 1u);
    EXPECT_EQ(r.timings[0].queries, 128);
    EXPECT_EQ(r.timings[0].threads, 2);
    EXPECT_EQ(r.timings[0].default_ms, 1.25);
    EXPECT_EQ(r.timings[0].default_spread, 0.03);
    EXPECT_EQ(r.file, (dir.path() / (std::string(kAvx2) + ".json")).string());

    // Saving what was loaded changes no byte.
    save_dir(back, dir.path().string());
    EXPECT_EQ(read(dir.path() / (std::string(kAvx2) + ".json")), text);
}

TEST(TunedDb, MissingDirectoryIsEmpty) {
    EXPECT_TRUE(load_dir("/nonexistent/mhac/tuned").entries.empty());
}

// Each malformed file fails with an error naming the file and what is wrong.
TEST(TunedDb, MalformedFilesNameTheFileAndField) {
    TempDir dir;
    Database db;
    db.entries = {tiny_entry(kAvx2, {"key_block=64"})};
    save_dir(db, dir.path().string());
    const fs::path good = dir.path() / (std::string(kAvx2) + ".json");
    const std::string text = read(good);
    auto replaced = [&](const std::string &from, const std::string &to) {
        std::string t = text;
        const size_t at = t.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return t.replace(at, from.size(), to);
    };
    const struct {
        std::string text, expected;
    } cases[] = {
        {"{", "not JSON"},
        {"[]", "is not a JSON object"},
        {"", "not JSON"},
        {std::string(100000, '['), "not JSON"},
        {replaced("\"format\": 1", "\"format\": 2"), "'format' must be 1"},
        {replaced("\"cores\": 2", "\"cores\": \"two\""), "'cores' must be a non-negative integer"},
        {replaced("\"cores\": 2", "\"cores\": -2"), "'cores' must be a non-negative integer"},
        {replaced("\"generator\": \"mhac_fused\",", ""), "'generator' is missing"},
        {replaced("\"knobs\": [", "\"knobs\": [\"bogus=1\", "), "'knobs'"},
        {replaced("key_block=64", "key_block=big"), "'knobs'"},
        {replaced("\"cpu\"", "\"cpus\": \"x\", \"cpu\""), "'cpus' is not a field"},
        {replaced("\"date\": \"2026-05-01T10:00:00Z\"", "\"date\": \"yesterday\""), "'date'"},
        {replaced("\"tuned_ms\": 1.0", "\"tuned_ms\": null"), "timings[0]: field 'tuned_ms'"},
        {replaced("\"key_dim=16\"", "\"zz_dim=16\""), "'kernel_params' must be sorted"},
        {replaced("\"key_dim=16\"", "\"key_block=16\""), "hold no knob"},
        {replaced("\"key_dim=16\"", "\"key_dim\""), "not key=value"},
        {replaced("\"entries\": [", "\"entries\": [1, "), "entries[0] is not a JSON object"},
    };
    for (const auto &c : cases) {
        TempDir bad;
        bad.write(std::string(kAvx2) + ".json", c.text);
        try {
            load_dir(bad.path().string());
            ADD_FAILURE() << "no error for: " << c.text.substr(0, 200);
        } catch (const DbError &e) {
            EXPECT_THAT(e.what(), HasSubstr(std::string(kAvx2) + ".json")) << c.expected;
            EXPECT_THAT(e.what(), HasSubstr(c.expected));
        }
    }
}

TEST(TunedDb, EntryTargetMustBeCanonicalAndTheFiles) {
    TempDir dir;
    Database db;
    db.entries = {tiny_entry(kAvx2, {})};
    save_dir(db, dir.path().string());
    std::string text = read(dir.path() / (std::string(kAvx2) + ".json"));
    const std::string from = "\"target\": \"x86-64-linux-avx2-f16c-fma\",\n      \"bucket\"";
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos);
    TempDir bad;
    bad.write("a.json", std::string(text).replace(
                            at, from.size(), "\"target\": \"x86-64-linux-sse41\",\n \"bucket\""));
    EXPECT_THROW(
        {
            try {
                load_dir(bad.path().string());
            } catch (const DbError &e) {
                EXPECT_THAT(e.what(), HasSubstr("is not the file's target"));
                throw;
            }
        },
        DbError);
    TempDir odd;
    odd.write("b.json",
              std::string(text).replace(
                  at, from.size(), "\"target\": \"x86-64-linux-fma-avx2-f16c\",\n \"bucket\""));
    EXPECT_THROW(load_dir(odd.path().string()), DbError);
    Database traversal;
    traversal.entries = {tiny_entry("x86-64-linux-../../x", {})};
    EXPECT_THROW(save_dir(traversal, dir.path().string()), DbError);
}

TEST(TunedDb, OneKeyInTwoFilesIsAnError) {
    TempDir a, both;
    Database db;
    db.entries = {tiny_entry(kAvx2, {})};
    save_dir(db, a.path().string());
    const std::string text = read(a.path() / (std::string(kAvx2) + ".json"));
    both.write("one.json", text);
    both.write("two.json", text);
    EXPECT_THROW(load_dir(both.path().string()), DbError);
}

TEST(TunedDb, UpsertReplacesTheSameKeyOnly) {
    Database db;
    upsert(db, tiny_entry(kAvx2, {"key_block=64"}));
    upsert(db, tiny_entry(kSse41, {"key_block=64"}));
    upsert(db, tiny_entry(kAvx2, {"key_block=256"}));
    Entry other_hash = tiny_entry(kAvx2, {"key_block=32"});
    other_hash.source_hash = "ffffffffffffffff";
    upsert(db, other_hash);
    ASSERT_EQ(db.entries.size(), 3u);
    EXPECT_EQ(db.entries[0].knobs, std::vector<std::string>{"key_block=256"});
    EXPECT_TRUE(same_key(db.entries[0], tiny_entry(kAvx2, {})));
    EXPECT_FALSE(same_key(db.entries[0], db.entries[2]));
}

TEST(TunedDb, MergeKeepsTheNewestOfEqualKeys) {
    Database shard1, shard2;
    Entry old_avx2 = tiny_entry(kAvx2, {"key_block=64"});
    old_avx2.date = "2026-04-01T00:00:00Z";
    Entry new_avx2 = tiny_entry(kAvx2, {"key_block=256"});
    new_avx2.date = "2026-05-02T00:00:00Z";
    shard1.entries = {new_avx2, tiny_entry(kSse41, {})};
    shard2.entries = {old_avx2};
    for (const auto &order : {std::vector<Database>{shard1, shard2}, {shard2, shard1}}) {
        Database m = merge(order);
        ASSERT_EQ(m.entries.size(), 2u);
        for (const Entry &e : m.entries) {
            if (e.target == kAvx2) {
                EXPECT_EQ(e.knobs, std::vector<std::string>{"key_block=256"});
            }
        }
    }
}

TEST(TunedDb, KernelKeyParamsDropKnobsAndSort) {
    EXPECT_EQ(kernel_key_params(
                  {"use_bias=true", "key_block=64", "in_features=8", "tuned=x", "gemm_k_block=0"}),
              (std::vector<std::string>{"in_features=8", "use_bias=true"}));
}

TEST(TunedParam, EncodesAndDecodesPerTargetKnobs) {
    const std::string text =
        encode_tuned_param({{"x86-64-linux-fma-avx2-f16c", {"gemm_rows=4", "key_block=256"}},
                            {kSse41, {"query_block=64"}}});
    EXPECT_EQ(text,
              std::string(kAvx2) + ":gemm_rows:4,key_block:256/" + kSse41 + ":query_block:64");
    sched::KnobOverrides k = knobs_for_target(text, "x86-64-linux-avx2-fma-f16c-no_runtime", {});
    EXPECT_EQ(k.gemm_rows, 4);
    EXPECT_EQ(k.key_block, 256);
    EXPECT_EQ(k.query_block, 0);
    EXPECT_EQ(knobs_for_target(text, "x86-64-linux-avx512_skylake", {}).key_block, 0);
    EXPECT_THROW(decode_tuned_param("x86-64-linux-sse41:unknown_knob:1"), TunedParamError);
    EXPECT_THROW(decode_tuned_param("x86-64-linux-sse41"), TunedParamError);
    EXPECT_THROW(decode_tuned_param(std::string(kSse41) + ":key_block:1/" + kSse41 + ":"),
                 TunedParamError);
}

// --- the planner with a small database ---

plan::KernelPlan plan_tiny(const Database &db, const std::string &hash = kHash,
                           const std::string &halide = kHalide) {
    return plan::plan_kernel_set("tuned_test", kLadder, {plan::parse_row(kTinyRow)},
                                 {&db, hash, halide});
}

const plan::PlannedKernel &fused_tiny(const plan::KernelPlan &p) {
    for (const auto &k : p.kernels) {
        if (k.name == "mha_fused_f32_tiny_none") return k;
    }
    throw std::runtime_error("no mha_fused_f32_tiny_none in the plan");
}

std::string tuned_param_of(const plan::PlannedKernel &k) {
    for (const auto &p : k.params) {
        if (p.rfind("tuned=", 0) == 0) return p;
    }
    return "";
}

TEST(TunedPlan, MatchingEntryGivesTheKernelItsKnobs) {
    Database db;
    db.entries = {tiny_entry(kAvx2, {"key_block=64", "query_block=32"})};
    const plan::KernelPlan p = plan_tiny(db);
    EXPECT_TRUE(p.warnings.empty()) << p.warnings[0];
    const plan::PlannedKernel &k = fused_tiny(p);
    EXPECT_EQ(tuned_param_of(k), "tuned=" + std::string(kAvx2) + ":key_block:64,query_block:32");
    EXPECT_EQ(
        k.tuning,
        "avx2-f16c-fma: key_block=64,query_block=32 (2026-05-01, 1.25x); sse41: hand defaults");
    EXPECT_THAT(p.registry_source,
                HasSubstr("mha_fused_f32_tiny_none, \"avx2-f16c-fma: key_block"));
    // No other kernel is touched, but for the kernels of buckets with default
    // knobs (decode, few: they take the all entry where they have none of
    // their own).
    auto default_bucket_kernel = [&](const std::string &name) {
        for (const tuned::Bucket &b : tuned::kBuckets) {
            if (*b.cpu_default_knobs && name == k.name + "_" + b.name) return true;
        }
        return false;
    };
    for (const auto &other : p.kernels) {
        if (default_bucket_kernel(other.name)) {
            EXPECT_EQ(tuned_param_of(other), tuned_param_of(k));
        } else if (other.name != k.name) {
            EXPECT_EQ(tuned_param_of(other), "") << other.name;
        }
    }
}

TEST(TunedPlan, StaleSourceHashWarnsAndKeepsTheDefaults) {
    Database db;
    Entry stale = tiny_entry(kAvx2, {"key_block=64"});
    stale.source_hash = "ffffffffffffffff";
    stale.file = "schedules/tuned/x86-64-linux-avx2-f16c-fma.json";
    db.entries = {stale};
    const plan::KernelPlan p = plan_tiny(db);
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_THAT(p.warnings[0], HasSubstr("schedules/tuned/x86-64-linux-avx2-f16c-fma.json"));
    EXPECT_THAT(p.warnings[0], HasSubstr("mhac_fused tiny x86-64-linux-avx2-f16c-fma"));
    EXPECT_THAT(p.warnings[0],
                HasSubstr("source hash ffffffffffffffff (this build: " + std::string(kHash) + ")"));
    EXPECT_EQ(tuned_param_of(fused_tiny(p)), "");
    EXPECT_EQ(fused_tiny(p).tuning, "hand defaults");
}

TEST(TunedPlan, OtherHalideVersionWarnsAndKeepsTheDefaults) {
    Database db;
    db.entries = {tiny_entry(kAvx2, {"key_block=64"})};
    const plan::KernelPlan p = plan_tiny(db, kHash, "22.0.0");
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_THAT(p.warnings[0], HasSubstr("Halide 21.0.0 (this build: 22.0.0)"));
    EXPECT_EQ(tuned_param_of(fused_tiny(p)), "");
}

TEST(TunedPlan, TargetOutsideTheLadderIsNotUsed) {
    Database db;
    db.entries = {tiny_entry("x86-64-linux-avx512_skylake", {"key_block=64"}),
                  tiny_entry("arm-64-linux", {"key_block=64"}),
                  tiny_entry("x86-64-linux-cuda-cuda_capability_80", {"key_block=64"})};
    const plan::KernelPlan p = plan_tiny(db);
    // Same arch-bits-os: a warning; another architecture or device: silence.
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_THAT(p.warnings[0], HasSubstr("x86-64-linux-avx512_skylake"));
    EXPECT_THAT(p.warnings[0], HasSubstr("not in the ladder"));
    EXPECT_EQ(tuned_param_of(fused_tiny(p)), "");
}

const plan::PlannedKernel *kernel_named(const plan::KernelPlan &p, const std::string &name) {
    for (const auto &k : p.kernels) {
        if (k.name == name) return &k;
    }
    return nullptr;
}

Entry in_bucket(Entry e, const std::string &bucket) {
    e.bucket = bucket;
    return e;
}

TEST(TunedPlan, BucketWithOtherKnobsGetsAKernelOfItsOwn) {
    Database db;
    db.entries = {tiny_entry(kAvx2, {"key_block=64"}),
                  in_bucket(tiny_entry(kAvx2, {"key_block=128", "query_block=32"}), "decode")};
    const plan::KernelPlan p = plan_tiny(db);
    EXPECT_TRUE(p.warnings.empty()) << p.warnings[0];
    EXPECT_EQ(tuned_param_of(fused_tiny(p)), "tuned=" + std::string(kAvx2) + ":key_block:64");
    const plan::PlannedKernel *decode = kernel_named(p, "mha_fused_f32_tiny_none_decode");
    ASSERT_NE(decode, nullptr);
    EXPECT_EQ(tuned_param_of(*decode),
              "tuned=" + std::string(kAvx2) + ":key_block:128,query_block:32");
    // The registry carries the bucket's ranges (tuned::kBuckets) with its kernel.
    EXPECT_THAT(p.registry_source, HasSubstr("const FusedBucket kBuckets_tiny[] = {"));
    EXPECT_THAT(p.registry_source, HasSubstr("{MaskKind::none, \"decode\", 1, 1, 1, 0, "
                                             "{\"mha_fused_f32_tiny_none_decode\", "
                                             "mha_fused_f32_tiny_none_decode, "));
    // Beside it the few bucket's (its default knobs, the all entry's over them).
    EXPECT_THAT(p.registry_source, HasSubstr("{MaskKind::none, \"few\", 2, 8, 256, 0, "
                                             "{\"mha_fused_f32_tiny_none_few\", "));
    EXPECT_THAT(p.registry_source, HasSubstr("\"hand defaults\"}, \n     kBuckets_tiny, 2},"));
    // No other bucket, mask or level got one; the few bucket has no causal
    // kernels (the generic row compiles every mask kind).
    EXPECT_EQ(kernel_named(p, "mha_fused_f32_tiny_none_short"), nullptr);
    EXPECT_EQ(kernel_named(p, "mha_fused_f32_tiny_causal_decode"), nullptr);
    EXPECT_NE(kernel_named(p, "mha_fused_f32_generic_dense_few"), nullptr);
    EXPECT_EQ(kernel_named(p, "mha_fused_f32_generic_causal_few"), nullptr);
}

bool has_param(const plan::PlannedKernel &k, const std::string &param) {
    return std::find(k.params.begin(), k.params.end(), param) != k.params.end();
}

TEST(TunedPlan, DecodeBucketFoldsKAndVByDefaultOnCpus) {
    // Without any entry, a CPU set's fused kernels get a decode-bucket kernel
    // with the bucket's default knobs (tuned::kBuckets); other buckets none.
    Database db;
    const plan::KernelPlan p = plan_tiny(db);
    const plan::PlannedKernel *decode = kernel_named(p, "mha_fused_f32_tiny_none_decode");
    ASSERT_NE(decode, nullptr);
    EXPECT_TRUE(has_param(*decode, "absorb_kv=1"));
    EXPECT_EQ(tuned_param_of(*decode), "");
    EXPECT_FALSE(has_param(fused_tiny(p), "absorb_kv=1"));
    EXPECT_EQ(kernel_named(p, "mha_fused_f32_tiny_none_short"), nullptr);
    EXPECT_THAT(p.registry_source, HasSubstr("{MaskKind::none, \"decode\", 1, 1, 1, 0, "
                                             "{\"mha_fused_f32_tiny_none_decode\", "));
    // A decode entry's knobs apply over the default (an entry may turn it off).
    db.entries = {in_bucket(tiny_entry(kAvx2, {"absorb_kv=0", "key_block=64"}), "decode")};
    const plan::KernelPlan tuned = plan_tiny(db);
    decode = kernel_named(tuned, "mha_fused_f32_tiny_none_decode");
    ASSERT_NE(decode, nullptr);
    EXPECT_TRUE(has_param(*decode, "absorb_kv=1"));
    EXPECT_EQ(tuned_param_of(*decode), "tuned=" + std::string(kAvx2) + ":absorb_kv:0,key_block:64");
    // CUDA sets have no folded schedule: no default bucket kernel.
    const plan::KernelPlan cuda = plan::plan_kernel_set(
        "cuda_test", {"x86-64-linux-cuda-cuda_capability_80"}, {plan::parse_row(kTinyRow)});
    for (const auto &k : cuda.kernels)
        EXPECT_EQ(k.name.find("_decode"), std::string::npos) << k.name;
}

TEST(TunedPlan, BucketWithTheSameKnobsAsAllGetsNoKernel) {
    // (short: a bucket without default knobs)
    Database db;
    db.entries = {tiny_entry(kAvx2, {"key_block=64"}),
                  in_bucket(tiny_entry(kAvx2, {"key_block=64"}), "short")};
    const plan::KernelPlan p = plan_tiny(db);
    EXPECT_TRUE(p.warnings.empty());
    EXPECT_EQ(kernel_named(p, "mha_fused_f32_tiny_none_short"), nullptr);
    EXPECT_THAT(p.registry_source, Not(HasSubstr("\"short\"")));
}

TEST(TunedPlan, BucketKernelFallsBackToAllPerLevel) {
    // Tuned for decode at sse41 only: its avx2 level keeps the all entry.
    Database db;
    db.entries = {tiny_entry(kAvx2, {"key_block=64"}),
                  in_bucket(tiny_entry(kSse41, {"query_block=48"}), "decode")};
    const plan::KernelPlan p = plan_tiny(db);
    const plan::PlannedKernel *decode = kernel_named(p, "mha_fused_f32_tiny_none_decode");
    ASSERT_NE(decode, nullptr);
    EXPECT_EQ(tuned_param_of(*decode),
              "tuned=" + std::string(kAvx2) + ":key_block:64/" + kSse41 + ":query_block:48");
}

TEST(TunedPlan, UnknownOrStaleBucketWarnsOnce) {
    Database db;
    Entry stale = in_bucket(tiny_entry(kAvx2, {"key_block=128"}), "short");
    stale.source_hash = "ffffffffffffffff";
    db.entries = {in_bucket(tiny_entry(kAvx2, {"key_block=64"}), "sideways"), stale};
    const plan::KernelPlan p = plan_tiny(db);
    ASSERT_EQ(p.warnings.size(), 2u);
    EXPECT_THAT(p.warnings[0] + p.warnings[1], HasSubstr("unknown bucket"));
    EXPECT_THAT(p.warnings[0] + p.warnings[1], HasSubstr("stale"));
    EXPECT_EQ(tuned_param_of(fused_tiny(p)), "");
    EXPECT_EQ(kernel_named(p, "mha_fused_f32_tiny_none_short"), nullptr);
}

TEST(TunedPlan, DefaultsWinningIsRecordedWithoutKnobs) {
    Database db;
    db.entries = {tiny_entry(kSse41, {})};
    const plan::PlannedKernel k = fused_tiny(plan_tiny(db));
    EXPECT_EQ(tuned_param_of(k), "");
    EXPECT_EQ(k.tuning,
              "avx2-f16c-fma: hand defaults; sse41: hand defaults won (2026-05-01, 1.25x)");
}

}  // namespace
}  // namespace mhac::tuned
