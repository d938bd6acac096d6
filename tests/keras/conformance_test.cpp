// Every fixture made by real Keras 3.15.1 (tests/keras/fixtures), run three
// ways: through the C++ API, through `mhac run` with every weight file format
// the case has, and through the float64 reference (which is itself held to
// Keras here). Tolerances: docs/tolerance.md.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "fixture.h"
#include "mha_reference.h"
#include "mhac/keras_io.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"

namespace mhac::testing {
namespace {

using ::testing::HasSubstr;

// Keras computed in the layer's dtype; mhac computes in float32. For a
// float16/bfloat16 layer Keras's own rounding (2^-11, 2^-8 relative per op)
// dominates the difference.
double tolerance_for(const std::string &dtype) {
    if (dtype == "float16") return 5e-3;
    if (dtype == "bfloat16") return 4e-2;
    return 1e-4;
}

struct Diff {
    double max_abs = 0, scale = 0;
};

Diff diff(const std::vector<float> &got, const std::vector<float> &want) {
    Diff d;
    for (size_t i = 0; i < want.size(); i++) {
        d.scale = std::max(d.scale, double(std::abs(want[i])));
        double e = i < got.size() ? std::abs(double(got[i]) - want[i]) : INFINITY;
        d.max_abs = std::isnan(e) ? INFINITY : std::max(d.max_abs, e);
    }
    return d;
}

// "within 1e-4 of the output's scale" (issue acceptance), with a floor so an
// all-zero output still allows float32 rounding.
void expect_matches_keras(const Tensor &got, const Tensor &keras, const std::string &dtype,
                          const std::string &what) {
    ASSERT_EQ(got.shape, keras.shape) << what;
    Diff d = diff(got.data, keras.data);
    double bound = tolerance_for(dtype) * std::max(d.scale, 1e-2);
    char rel[32];
    std::snprintf(rel, sizeof rel, "%.3g", d.max_abs / std::max(d.scale, 1e-2));
    ::testing::Test::RecordProperty(what.substr(0, what.find(' ')) + "_error_over_scale", rel);
    EXPECT_LE(d.max_abs, bound) << what << ": max |mhac - keras| " << d.max_abs
                                << " over output scale " << d.scale << " (dtype " << dtype << ")";
}

LayerConfig config_of(const Fixture &f) {
    return io::parse_layer_config(f.config_text);
}

// Layers for error cases carry no weights: fresh ones of the right shapes.
std::vector<Tensor> weights_of(const Fixture &f, const LayerConfig &c) {
    if (!f.weights.empty()) return f.weights;
    return initialize_weights(c, f.query.shape.back(), f.value.shape.back(),
                              f.key ? f.key->shape.back() : 0, 1);
}

CallResult run_api(const Fixture &f, MultiHeadAttention &layer) {
    std::vector<MaskView> masks;
    CallOptions o = f.options(masks);
    TensorView key;
    if (f.key) {
        key = f.key->view();
        o.key = &key;
    }
    return layer.call(f.query.view(), f.value.view(), o);
}

bool is_statistics_case(const Fixture &f) {
    return f.json["outputs"].contains("train_mean");
}

class KerasConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasConformance, CppApi) {
    Fixture f = load_fixture(GetParam());
    SCOPED_TRACE(f.description);
    if (!f.error_stage.empty()) {
        // Keras raised; mhac must raise too (at construction or at the call),
        // without crashing. flash_attention on TensorFlow is a refusal of that
        // backend, not of the layer: mhac runs it (docs/keras-semantics.md).
        const bool backend_refusal = f.name == "c33j_err_flash_on_tensorflow";
        try {
            LayerConfig c = config_of(f);
            MultiHeadAttention layer(c, kernel_sets::default_set());
            std::vector<Tensor> w = weights_of(f, c);
            layer.set_weights(keras_weights_from(w, c.use_bias, c.use_gate));
            run_api(f, layer);
            EXPECT_TRUE(backend_refusal)
                << "Keras raised '" << f.error_message << "', mhac did not";
        } catch (const Error &e) {
            EXPECT_FALSE(backend_refusal) << e.what();
            std::cout << "  keras: " << f.error_message << "\n  mhac:  " << e.what() << "\n";
        }
        return;
    }
    LayerConfig c = config_of(f);
    MultiHeadAttention layer(c, kernel_sets::default_set());
    layer.set_weights(keras_weights_from(f.weights, c.use_bias, c.use_gate));

    if (is_statistics_case(f)) {
        // Dropout 0.5 in training: Keras's stream cannot be reproduced (spec
        // 5); its mean over 400 calls must agree with ours statistically.
        Tensor mean = io::read_npy_floats(f.dir + "/train_mean.npy");
        Tensor std_dev = io::read_npy_floats(f.dir + "/train_std.npy");
        Tensor inference = io::read_npy_floats(f.dir + "/output_inference.npy");
        Fixture eval = f;
        eval.training = false;
        expect_matches_keras(run_api(eval, layer).output, inference, f.dtype, "training=False");
        const int calls = 400;
        std::vector<double> sum(mean.data.size(), 0.0);
        for (int i = 0; i < calls; i++) {
            CallResult r = run_api(f, layer);
            for (size_t k = 0; k < sum.size(); k++) sum[k] += r.output.data[k];
        }
        int outliers = 0;
        for (size_t k = 0; k < sum.size(); k++) {
            // Two independent means of 400 draws: |difference| <= 5 sigma.
            double sigma = std_dev.data[k] * std::sqrt(2.0 / calls) + 1e-6;
            outliers += std::abs(sum[k] / calls - mean.data[k]) > 5 * sigma;
        }
        EXPECT_EQ(outliers, 0) << "training-mode means disagree with Keras's";
        return;
    }
    CallResult r = run_api(f, layer);
    ASSERT_TRUE(f.output.has_value());
    expect_matches_keras(r.output, *f.output, f.dtype,
                         "output via " + layer.last_selection().describe());
    if (f.keras_scores) expect_matches_keras(r.scores, *f.keras_scores, f.dtype, "scores");
}

// The float64 reference against Keras: the reference is what every kernel
// test trusts, so it answers to Keras too.
class KerasReference : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasReference, MatchesKeras) {
    Fixture f = load_fixture(GetParam());
    SCOPED_TRACE(f.description);
    LayerConfig c = config_of(f);
    KerasWeights kw = keras_weights_from(f.weights, c.use_bias, c.use_gate);
    auto vec = [](const TensorView &t) {
        size_t n = 1;
        for (int64_t d : t.shape) n *= size_t(d);
        return t.data ? std::vector<float>(t.data, t.data + n) : std::vector<float>();
    };
    reference::Layer l;
    l.num_heads = c.num_heads;
    l.key_dim = c.key_dim;
    l.value_dim = c.value_dim ? c.value_dim : c.key_dim;
    l.output_shape.assign(kw.output_kernel.shape.begin() + 2, kw.output_kernel.shape.end());
    l.use_gate = c.use_gate;
    l.sliding_window = c.sliding_window;
    l.weights = {vec(kw.query_kernel),  vec(kw.query_bias),   vec(kw.key_kernel),
                 vec(kw.key_bias),      vec(kw.value_kernel), vec(kw.value_bias),
                 vec(kw.output_kernel), vec(kw.output_bias),  vec(kw.gate_kernel),
                 vec(kw.gate_bias)};
    std::vector<MaskView> masks;
    CallOptions o = f.options(masks);
    reference::Call rc;
    rc.query_shape = f.query.shape;
    rc.value_shape = f.value.shape;
    rc.query = f.query.data.data();
    rc.value = f.value.data.data();
    if (f.key) {
        rc.key_shape = f.key->shape;
        rc.key = f.key->data.data();
    }
    rc.attention_axes = c.attention_axes;
    // The reference takes masks as bytes already cast to bool.
    std::vector<std::vector<uint8_t>> bools;
    auto as_bool = [&](const MaskView *m) -> const uint8_t * {
        if (!m) return nullptr;
        size_t n = 1;
        for (int64_t d : m->shape) n *= size_t(d);
        bools.emplace_back(n);
        for (size_t i = 0; i < n; i++) bools.back()[i] = m->data[i] != 0;
        return bools.back().data();
    };
    bools.reserve(4);
    if (o.attention_mask) {
        rc.attention_mask = as_bool(o.attention_mask);
        rc.attention_mask_shape = o.attention_mask->shape;
    }
    rc.query_mask = as_bool(o.query_mask);
    rc.value_mask = as_bool(o.value_mask);
    rc.key_mask = as_bool(o.key_mask);
    if (o.query_mask) rc.query_mask_shape = o.query_mask->shape;
    if (o.value_mask) rc.value_mask_shape = o.value_mask->shape;
    if (o.key_mask) rc.key_mask_shape = o.key_mask->shape;
    rc.causal = f.causal;
    if (f.training && c.dropout > 0) {
        rc.rate = c.dropout;
        rc.keep = [](int64_t) { return false; };  // only rate 1 has recorded outputs
        ASSERT_EQ(c.dropout, 1.0f);
    }
    const bool explicit_path = f.scores || c.dropout > 0 || f.query.shape.size() != 3;
    reference::Result want = reference::multi_head_attention(
        l, rc, explicit_path ? reference::Path::explicit_scores : reference::Path::fused);
    Tensor got{want.output_shape, std::vector<float>(want.output.begin(), want.output.end())};
    expect_matches_keras(got, *f.output, f.dtype, "reference output");
}

// `mhac run` with each weight file format of the case; bad input exits
// non-zero with one line on stderr and leaves no output file.
TEST_P(KerasConformance, MhacRun) {
    Fixture f = load_fixture(GetParam());
    if (is_statistics_case(f)) {
        // Keras's training stream is not reproducible (CppApi compares the
        // statistics); the CLI is held to the inference output.
        f.training = false;
        f.output = io::read_npy_floats(f.dir + "/output_inference.npy");
    }
    SCOPED_TRACE(f.description);
    const std::string tmp = ::testing::TempDir() + "mhac_run_" + f.name;
    const std::string out = tmp + "_out.npy", scores_out = tmp + "_scores.npy",
                      err = tmp + "_err.txt";

    std::vector<std::pair<std::string, std::string>> runs;  // format, weight args
    std::string config_path = f.dir + "/config.json";
    if (f.weight_files.empty()) {
        // Error cases without files: their constructor kwargs as the config,
        // next to any valid weights file (the config must be refused first).
        config_path = tmp + "_config.json";
        std::ofstream(config_path) << f.config_text;
        runs.push_back({"config", "--weights " + fixtures_dir() +
                                      "/c01_self_attention/layer.weights.h5 --config " +
                                      config_path});
    }
    for (const auto &[format, path] : f.weight_files) {
        if (format == "keras") {
            runs.push_back({format, "--model " + path});
        } else if (format == "weights_h5" || format == "tf_keras_h5") {
            runs.push_back({format, "--weights " + path + " --config " + config_path});
        }
    }
    std::string inputs = " --query " + f.dir + "/query.npy --value " + f.dir + "/value.npy";
    if (f.key) inputs += " --key " + f.dir + "/key.npy";
    std::vector<MaskView> masks;
    CallOptions o = f.options(masks);
    auto mask_arg = [&](const char *flag, const char *name, const MaskView *used) {
        if (used)
            inputs += std::string(" ") + flag + " " + f.dir + "/" +
                      f.json["masks"][name]["file"].get<std::string>();
    };
    mask_arg("--attention-mask", "attention_mask", o.attention_mask);
    mask_arg("--query-mask", "query_mask", o.query_mask);
    if (o.value_mask) {
        inputs += " --value-mask " + f.dir + "/" +
                  f.json["masks"][f.masks.count("value_mask") ? "value_mask" : "query_mask"]["file"]
                      .get<std::string>();
    }
    mask_arg("--key-mask", "key_mask", o.key_mask);
    if (f.causal) inputs += " --causal";
    if (f.training) inputs += " --training --seed 1";
    if (f.scores) inputs += " --scores-out " + scores_out;

    for (const auto &[format, weight_args] : runs) {
        SCOPED_TRACE(format);
        std::remove(out.c_str());
        std::remove(scores_out.c_str());
        std::string cmd = std::string(MHAC_EXECUTABLE) + " run " + weight_args + inputs +
                          " --out " + out + " 2>" + err;
        int status = std::system(cmd.c_str());
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        std::ifstream e(err);
        std::string stderr_text((std::istreambuf_iterator<char>(e)),
                                std::istreambuf_iterator<char>());
        if (!f.error_stage.empty() && f.name != "c33j_err_flash_on_tensorflow") {
            EXPECT_NE(code, 0) << cmd;
            EXPECT_FALSE(std::ifstream(out).good()) << "an output file appeared";
            EXPECT_FALSE(std::ifstream(scores_out).good()) << "a scores file appeared";
            EXPECT_THAT(stderr_text, HasSubstr("mhac run: error: "));
            EXPECT_EQ(std::count(stderr_text.begin(), stderr_text.end(), '\n'), 1) << stderr_text;
            continue;
        }
        ASSERT_EQ(code, 0) << cmd << "\n" << stderr_text;
        if (!f.output) continue;
        expect_matches_keras(io::read_npy_floats(out), *f.output, f.dtype, "mhac run output");
        if (f.keras_scores) {
            expect_matches_keras(io::read_npy_floats(scores_out), *f.keras_scores, f.dtype,
                                 "mhac run scores");
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Keras3_15, KerasConformance, ::testing::ValuesIn(fixture_names()),
                         [](const auto &info) { return info.param; });
// Cases where Keras recorded an output (not errors, not dropout statistics).
INSTANTIATE_TEST_SUITE_P(Keras3_15, KerasReference,
                         ::testing::ValuesIn(fixture_names(/*with_output_only=*/true)),
                         [](const auto &info) { return info.param; });

}  // namespace
}  // namespace mhac::testing

namespace mhac::testing {
namespace {

// `mhac run` refuses bad input with one line on stderr, exit 1, no output.
struct CliCase {
    const char *name;
    std::string args;      // after "mhac run"
    const char *expected;  // in the error line
};

class MhacRunErrors : public ::testing::TestWithParam<CliCase> {};

TEST_P(MhacRunErrors, OneLineNoOutputFile) {
    const CliCase &c = GetParam();
    const std::string tmp = ::testing::TempDir() + "mhac_run_err_" + c.name;
    const std::string out = tmp + "_out.npy", err = tmp + "_err.txt";
    std::remove(out.c_str());
    std::string cmd =
        std::string(MHAC_EXECUTABLE) + " run " + c.args + " --out " + out + " 2>" + err;
    int status = std::system(cmd.c_str());
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1) << cmd;
    std::ifstream e(err);
    std::string text((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_THAT(text, HasSubstr("mhac run: error: "));
    EXPECT_THAT(text, HasSubstr(c.expected));
    EXPECT_FALSE(std::ifstream(out).good()) << "an output file appeared";
}

std::vector<CliCase> cli_cases() {
    const std::string d = fixtures_dir() + "/";
    const std::string c01 = d + "c01_self_attention/", c03 = d + "c03_explicit_key_ek_ne_ev/";
    const std::string io = std::string(MHAC_FIXTURES_DIR) + "/../../io/data/";
    const std::string ok_inputs = " --query " + c01 + "query.npy --value " + c01 + "value.npy";
    return {
        {"missing_model", "--model /nonexistent/x.keras" + ok_inputs, "/nonexistent/x.keras"},
        {"not_a_zip", "--model " + c01 + "config.json" + ok_inputs, "config.json"},
        {"not_hdf5", "--weights " + c01 + "config.json --config " + c01 + "config.json" + ok_inputs,
         "config.json"},
        {"unknown_layer", "--model " + c01 + "layer.keras --layer nope" + ok_inputs, "nope"},
        {"weights_disagree_with_config",
         "--weights " + c03 + "layer.weights.h5 --config " + c01 + "config.json" + ok_inputs,
         "layer.weights.h5"},
        {"missing_query", "--model " + c01 + "layer.keras --value " + c01 + "value.npy", "--query"},
        {"unknown_flag", "--model " + c01 + "layer.keras --bogus" + ok_inputs, "--bogus"},
        {"query_not_npy",
         "--model " + c01 + "layer.keras --query " + c01 + "case.json --value " + c01 + "value.npy",
         "case.json"},
        {"mask_wrong_shape",
         "--model " + c01 + "layer.keras" + ok_inputs + " --attention-mask " + d +
             "c14_causal_t_lt_s/query.npy",
         "attention_mask"},
        {"key_value_mismatch",
         "--model " + c01 + "layer.keras" + ok_inputs + " --key " + c03 + "key.npy", "value"},
        {"seed_without_training", "--model " + c01 + "layer.keras" + ok_inputs + " --seed 3",
         "--training"},
    };
}

INSTANTIATE_TEST_SUITE_P(BadInput, MhacRunErrors, ::testing::ValuesIn(cli_cases()),
                         [](const auto &info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mhac::testing
