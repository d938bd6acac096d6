// parse_layer_config: every form of every field, and Keras's validation
// errors (spec section 1) as mhac::Error naming the field and value.
#include <gtest/gtest.h>

#include <string>

#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

// A get_config() dict with `extra` fields spliced in (later keys win).
std::string config(const std::string &extra = "") {
    return R"({"name": "mha", "trainable": true, "dtype": "float32", "num_heads": 2,
               "key_dim": 4, "kernel_initializer": {"class_name": "GlorotUniform",
               "config": {"seed": null}}, "bias_initializer": "zeros", "seed": null)" +
           (extra.empty() ? "" : ", " + extra) + "}";
}

// The Error text parse_layer_config throws for `json`, or "" when none.
std::string error_of(const std::string &json) {
    try {
        parse_layer_config(json);
    } catch (const Error &e) {
        return e.what();
    }
    return "";
}

TEST(KerasConfig, Defaults) {
    const LayerConfig c = parse_layer_config(config());
    EXPECT_EQ(c.num_heads, 2);
    EXPECT_EQ(c.key_dim, 4);
    EXPECT_EQ(c.value_dim, 4);  // None -> key_dim
    EXPECT_TRUE(c.use_bias);
    EXPECT_TRUE(c.output_shape.empty());
    EXPECT_TRUE(c.attention_axes.empty());
    EXPECT_EQ(c.dropout, 0.0f);
}

TEST(KerasConfig, ExplicitNullsAreDefaults) {
    const LayerConfig c = parse_layer_config(
        config(R"("value_dim": null, "output_shape": null, "attention_axes": null,
                  "sliding_window": null, "use_gate": false)"));
    EXPECT_EQ(c.value_dim, 4);
    EXPECT_TRUE(c.output_shape.empty());
    EXPECT_TRUE(c.attention_axes.empty());
}

TEST(KerasConfig, EveryFieldSet) {
    const LayerConfig c =
        parse_layer_config(config(R"("value_dim": 6, "use_bias": false, "output_shape": [3, 5],
                  "attention_axes": [1, -2], "dropout": 0.25)"));
    EXPECT_EQ(c.value_dim, 6);
    EXPECT_FALSE(c.use_bias);
    EXPECT_EQ(c.output_shape, (Shape{3, 5}));
    EXPECT_EQ(c.attention_axes, (std::vector<int>{1, -2}));
    EXPECT_FLOAT_EQ(c.dropout, 0.25f);
}

TEST(KerasConfig, IntFormsBecomeOneElementLists) {
    const LayerConfig c = parse_layer_config(config(R"("output_shape": 8, "attention_axes": 2)"));
    EXPECT_EQ(c.output_shape, (Shape{8}));
    EXPECT_EQ(c.attention_axes, (std::vector<int>{2}));
}

TEST(KerasConfig, FalsyOutputShapeIsDefault) {
    // Keras: `if output_shape:` -- 0 and () mean "the query's last dim".
    EXPECT_TRUE(parse_layer_config(config(R"("output_shape": 0)")).output_shape.empty());
    EXPECT_TRUE(parse_layer_config(config(R"("output_shape": [])")).output_shape.empty());
}

TEST(KerasConfig, DropoutBoundsAreInclusive) {
    EXPECT_EQ(parse_layer_config(config(R"("dropout": 0)")).dropout, 0.0f);
    EXPECT_EQ(parse_layer_config(config(R"("dropout": 1.0)")).dropout, 1.0f);
}

TEST(KerasConfig, WrapperForm) {
    const LayerConfig c = parse_layer_config(
        R"({"module": "keras.layers", "class_name": "MultiHeadAttention",
            "config": )" +
        config(R"("value_dim": 3)") + R"(, "registered_name": null,
            "build_config": {"shapes_dict": {"query_shape": [null, 4, 8],
                                             "value_shape": [null, 5, 8]}}})");
    EXPECT_EQ(c.num_heads, 2);
    EXPECT_EQ(c.value_dim, 3);
}

TEST(KerasConfig, UnknownClassIsAnError) {
    const std::string e = error_of(R"({"class_name": "Dense", "config": {"units": 3}})");
    EXPECT_NE(e.find("MultiHeadAttention"), std::string::npos) << e;
    EXPECT_NE(e.find("Dense"), std::string::npos) << e;
}

TEST(KerasConfig, NotJsonIsAnError) {
    EXPECT_NE(error_of("{num_heads: 2").find("not valid JSON"), std::string::npos);
    EXPECT_NE(error_of("[1, 2]").find("JSON object"), std::string::npos);
}

// A number past double's range was nlohmann's out_of_range, not a
// parse_error, and escaped parse_json (found by the keras_config fuzzer:
// tests/fuzz/regressions/keras_config/number_overflow.json).
TEST(KerasConfig, NumberOutOfRangeIsAnError) {
    EXPECT_NE(error_of(R"({"num_heads": 2, "key_dim": 1E400})").find("not valid JSON"),
              std::string::npos);
    EXPECT_NE(error_of("33333338E333393333330").find("number overflow"), std::string::npos);
}

struct BadField {
    const char *field;  // spliced into the config
    const char *expect_in_message;
};

class KerasConfigErrors : public testing::TestWithParam<BadField> {};

TEST_P(KerasConfigErrors, NameTheFieldAndValue) {
    const std::string e = error_of(config(GetParam().field));
    ASSERT_FALSE(e.empty()) << "accepted: " << GetParam().field;
    EXPECT_NE(e.find(GetParam().expect_in_message), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(
    Keras, KerasConfigErrors,
    testing::Values(BadField{R"("num_heads": 0)", "num_heads=0"},
                    BadField{R"("num_heads": -2)", "num_heads=-2"},
                    BadField{R"("num_heads": 2.0)", "num_heads=2.0"},
                    BadField{R"("num_heads": "2")", "num_heads=\"2\""},
                    BadField{R"("num_heads": null)", "num_heads=null"},
                    BadField{R"("key_dim": 0)", "key_dim=0"},
                    BadField{R"("key_dim": 1.5)", "key_dim=1.5"},
                    BadField{R"("value_dim": 0)", "value_dim=0"},
                    BadField{R"("value_dim": -1)", "value_dim=-1"},
                    BadField{R"("value_dim": 2.5)", "value_dim=2.5"},
                    BadField{R"("output_shape": 8.0)", "output_shape=8.0"},
                    BadField{R"("output_shape": "8")", "output_shape=\"8\""},
                    BadField{R"("output_shape": [4, 2.0])", "output_shape=[4,2.0]"},
                    BadField{R"("output_shape": -3)", "output_shape=-3"},
                    BadField{R"("attention_axes": "1")", "attention_axes=\"1\""},
                    BadField{R"("attention_axes": 1.0)", "attention_axes=1.0"},
                    BadField{R"("attention_axes": [1, "2"])", "attention_axes=[1,\"2\"]"},
                    BadField{R"("attention_axes": [])", "attention_axes=[]"},
                    BadField{R"("dropout": 1.5)", "dropout=1.5"},
                    BadField{R"("dropout": -0.1)", "dropout=-0.1"},
                    BadField{R"("dropout": "0.1")", "dropout=\"0.1\""},
                    BadField{R"("use_bias": "yes")", "use_bias=\"yes\""},
                    BadField{R"("sliding_window": 0)", "sliding_window=0"},
                    BadField{R"("sliding_window": -1)", "sliding_window=-1"},
                    BadField{R"("sliding_window": 2.0)", "sliding_window=2.0"},
                    BadField{R"("use_gate": "no")", "use_gate=\"no\""},
                    BadField{R"("dropout": 0.1, "seed": "x")", "seed=\"x\""},
                    BadField{R"("dropout": 0.1, "flash_attention": true)",
                             "flash_attention=true"}));

TEST(KerasConfig, SlidingWindowGateSeedFlash) {
    const LayerConfig c = parse_layer_config(
        config(R"("sliding_window": 3, "use_gate": true, "seed": 7, "flash_attention": true)"));
    EXPECT_EQ(c.sliding_window, 3);
    EXPECT_TRUE(c.use_gate);
    EXPECT_EQ(c.seed, std::optional<uint64_t>(7));
    EXPECT_TRUE(c.flash_attention);
    const LayerConfig d = parse_layer_config(config());
    EXPECT_EQ(d.sliding_window, 0);
    EXPECT_FALSE(d.use_gate);
    EXPECT_FALSE(d.seed.has_value());
    EXPECT_FALSE(d.flash_attention);
}

TEST(KerasConfig, SeedAndFlashAttentionMatterOnlyWithDropout) {
    // Keras checks them only when dropout is active.
    const LayerConfig c = parse_layer_config(config(R"("seed": "x", "flash_attention": true)"));
    EXPECT_FALSE(c.seed.has_value());
    EXPECT_EQ(parse_layer_config(config(R"("dropout": 0.1, "seed": 7)")).seed,
              std::optional<uint64_t>(7));
}

TEST(KerasConfig, MissingRequiredField) {
    const std::string e = error_of(R"({"key_dim": 4})");
    EXPECT_NE(e.find("num_heads"), std::string::npos) << e;
}

// Nesting is bounded before any value is built (walking, copying and
// printing a JSON value recurse): 100000 levels are refused, not a stack
// overflow; a few hundred are fine.
TEST(KerasConfig, DeepNestingIsRefusedNotRecursedInto) {
    auto nested = [](int depth) {
        return config("\"attention_axes\": " + std::string(depth, '[') + std::string(depth, ']'));
    };
    EXPECT_NE(error_of(nested(100000)).find("nested deeper than 512 levels"), std::string::npos)
        << error_of(nested(100000));
    const std::string e = error_of(nested(500));
    EXPECT_EQ(e.find("nested deeper"), std::string::npos) << e;
    EXPECT_NE(e.find("attention_axes"), std::string::npos) << e;
    EXPECT_LT(e.size(), 400u) << "a value is quoted in full: " << e;
}

}  // namespace
}  // namespace mhac::io
