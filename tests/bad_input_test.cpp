// Bad input gets an mhac::Error naming the argument and shapes; the process
// keeps running and the caller's data is untouched.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "halide_glue.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "random_layer.h"

namespace mhac::testing {
namespace {

using ::testing::HasSubstr;

class BadInput : public ::testing::Test {
protected:
    BadInput()
        : data(make_random_layer({2, 5, 6, 16, 12, 10, 2, 4, 4, 16}, true, 7)),
          layer(data.config(), kernel_sets::default_set()) {
        layer.set_weights(data.keras_weights());
    }

    // Runs the call, expects an Error whose text contains every fragment.
    void expect_error(const TensorView &q, const TensorView &v, const CallOptions &opts,
                      std::initializer_list<std::string> fragments) {
        std::vector<float> q_before(data.query), v_before(data.value), k_before(data.key);
        try {
            layer.call(q, v, opts);
            ADD_FAILURE() << "no error";
        } catch (const Error &e) {
            for (const auto &f : fragments) EXPECT_THAT(e.what(), HasSubstr(f));
        }
        EXPECT_EQ(data.query, q_before);
        EXPECT_EQ(data.value, v_before);
        EXPECT_EQ(data.key, k_before);
    }

    // Options carrying the fixture's key (its Ek differs from Ev).
    CallOptions with_key() {
        CallOptions o;
        o.key = &key;
        return o;
    }

    RandomLayer data;
    MultiHeadAttention layer;
    TensorView key = data.key_view();
};

TEST_F(BadInput, KeyAndValueDisagreeOutsideFeatureDim) {
    TensorView k{data.key.data(), {2, 5, 12}};  // value is [2, 6, 10]
    CallOptions opts;
    opts.key = &k;
    expect_error(data.query_view(), data.value_view(), opts,
                 {"value shape [2, 6, 10]", "key shape [2, 5, 12]", "except the last"});
    // The layer still works afterwards.
    CallOptions ok;
    TensorView good_k = data.key_view();
    ok.key = &good_k;
    EXPECT_EQ(layer.call(data.query_view(), data.value_view(), ok).output.shape, (Shape{2, 5, 16}));
}

TEST_F(BadInput, WrongRank) {
    TensorView q{data.query.data(), {10, 16}};
    expect_error(q, data.value_view(), with_key(), {"query", "rank >= 3", "[10, 16]"});
}

TEST_F(BadInput, QueryFeatureMismatch) {
    TensorView q{data.query.data(), {2, 10, 8}};
    expect_error(q, data.value_view(), with_key(), {"query", "Eq=16", "[2, 10, 8]"});
}

TEST_F(BadInput, BatchMismatch) {
    TensorView q{data.query.data(), {1, 10, 16}};
    expect_error(q, data.value_view(), with_key(), {"batch", "[1, 10, 16]", "[2, 6, 10]"});
}

TEST_F(BadInput, NullData) {
    TensorView v{nullptr, {2, 6, 10}};
    expect_error(data.query_view(), v, with_key(), {"value", "null"});
}

TEST_F(BadInput, ZeroSizeDim) {
    TensorView q{data.query.data(), {2, 0, 16}};
    expect_error(q, data.value_view(), with_key(), {"query", "zero", "[2, 0, 16]"});
}

TEST_F(BadInput, MaskOfWrongShape) {
    std::vector<uint8_t> m(2 * 5 * 5, 1);
    MaskView mask{m.data(), {2, 5, 5}};
    CallOptions opts = with_key();
    opts.attention_mask = &mask;
    expect_error(data.query_view(), data.value_view(), opts,
                 {"attention_mask shape [2, 5, 5]", "[2, 2, 5, 6]"});
}

TEST_F(BadInput, ForcedConfigurationThatCannotRun) {
    CallOptions opts = with_key();
    opts.force_config = "bert_base";
    expect_error(data.query_view(), data.value_view(), opts, {"bert_base", "num_heads 2"});
}

TEST_F(BadInput, WeightsOfWrongShape) {
    KerasWeights w = data.keras_weights();
    w.key_kernel.shape = {12, 3, 4};
    try {
        layer.set_weights(w);
        ADD_FAILURE() << "no error";
    } catch (const Error &e) {
        EXPECT_THAT(e.what(), HasSubstr("key_kernel has shape [12, 3, 4], expected [12, 2, 4]"));
    }
}

TEST(LayerConfigErrors, NonPositiveSizes) {
    LayerConfig c;
    c.num_heads = 0;
    c.key_dim = 4;
    EXPECT_THROW(MultiHeadAttention(c, kernel_sets::default_set()), Error);
    c.num_heads = 2;
    c.key_dim = -1;
    EXPECT_THROW(MultiHeadAttention(c, kernel_sets::default_set()), Error);
    c.key_dim = 4;
    c.dropout = 1.5f;
    EXPECT_THROW(MultiHeadAttention(c, kernel_sets::default_set()), Error);
}

// A kernel-level failure (here a buffer too small for the shapes the kernel
// was compiled for) is reported through the installed Halide error handler
// as an Error naming the kernel, instead of Halide's default abort().
TEST(HalideErrors, BecomeMhacErrorsNotAborts) {
    detail::install_halide_hooks();
    const ConfigKernels *bert = nullptr;
    const KernelSet &set = kernel_sets::default_set();
    for (size_t i = 0; i < set.num_configs; i++) {
        if (std::string(set.configs[i].name) == "bert_base") bert = &set.configs[i];
    }
    ASSERT_NE(bert, nullptr);
    std::vector<float> in(10 * 8), w(16 * 8 * 1), b(16), out(16 * 10);
    auto in_b = detail::dense<float, 2>(in.data(), {10, 8});  // bert wants 768 features
    auto w_b = detail::dense<float, 3>(w.data(), {1, 8, 16});
    auto b_b = detail::dense<float, 1>(b.data(), {16});
    auto o_b = detail::dense<float, 2>(out.data(), {10, 16});
    const auto &k = bert->projection[kQueryProjection];
    try {
        const Shape input{10, 8};
        detail::invoke(k.name, detail::CallShapes{&input}, k.fn, in_b.get(), w_b.get(), b_b.get(),
                       o_b.get());
        ADD_FAILURE() << "no error";
    } catch (const Error &e) {
        EXPECT_THAT(e.what(), HasSubstr(k.name));
        EXPECT_THAT(e.what(), HasSubstr("query [10, 8]"));
        EXPECT_THAT(e.what(), HasSubstr("768"));
    }
}

}  // namespace
}  // namespace mhac::testing
