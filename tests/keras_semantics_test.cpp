// Keras semantics beyond the 3-D sweep (spec sections 2-6, 9): N-D inputs
// and attention_axes, mask broadcasting, padding masks, causal T != S, the
// two paths' fully masked rows, dropout, value_dim/output_shape/use_bias.
// Each case runs the layer as a user would (select_variant decides) and
// compares with the float64 reference.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "dropout.h"
#include "mha_reference.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "tolerance.h"

namespace mhac::testing {
namespace {

using ::testing::HasSubstr;

std::vector<float> random_floats(int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v) x = d(rng);
    return v;
}

std::vector<uint8_t> random_mask(int64_t n, uint64_t seed, double p_visible = 0.7) {
    std::mt19937_64 rng(seed);
    std::bernoulli_distribution d(p_visible);
    std::vector<uint8_t> v(static_cast<size_t>(n));
    for (auto &x : v) x = d(rng) ? 1 : 0;
    return v;
}

int64_t count(const Shape &s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

// A layer with random (non-zero) weights, and helpers to call it and the
// reference the same way.
struct Harness {
    LayerConfig config;
    std::vector<Tensor> weights;
    MultiHeadAttention layer;

    Harness(LayerConfig c, int64_t eq, int64_t ev, int64_t ek = 0, uint64_t seed = 11)
        : config(c), layer(c, kernel_sets::default_set()) {
        weights = initialize_weights(c, eq, ev, ek, seed);
        // Non-zero biases so that bias handling is visible.
        uint64_t s = seed;
        for (Tensor &t : weights) {
            if (t.shape.size() <= 2 && c.use_bias) t.data = random_floats(count(t.shape), ++s);
        }
        layer.set_weights(keras_weights_from(weights, c.use_bias, c.use_gate));
    }

    reference::Layer reference_layer() const {
        reference::Layer l;
        l.num_heads = config.num_heads;
        l.key_dim = config.key_dim;
        l.value_dim = config.value_dim ? config.value_dim : config.key_dim;
        l.use_gate = config.use_gate;
        l.sliding_window = config.sliding_window;
        // get_weights() order: query, key, [gate], value, output.
        size_t i = 0;
        auto take = [&](std::vector<float> &kernel, std::vector<float> &bias) {
            kernel = weights[i++].data;
            if (config.use_bias) bias = weights[i++].data;
        };
        auto &w = l.weights;
        take(w.query_kernel, w.query_bias);
        take(w.key_kernel, w.key_bias);
        if (config.use_gate) take(w.gate_kernel, w.gate_bias);
        take(w.value_kernel, w.value_bias);
        const Shape &wo = weights[i].shape;
        take(w.output_kernel, w.output_bias);
        l.output_shape.assign(wo.begin() + 2, wo.end());
        return l;
    }
};

struct Inputs {
    Tensor query, value, key;  // key empty: omitted
    Inputs(Shape q, Shape v, Shape k = {}, uint64_t seed = 5) {
        query = {q, random_floats(count(q), seed)};
        value = {v, random_floats(count(v), seed + 1)};
        if (!k.empty()) key = {k, random_floats(count(k), seed + 2)};
    }
    reference::Call call() const {
        reference::Call c;
        c.query_shape = query.shape;
        c.value_shape = value.shape;
        c.query = query.data.data();
        c.value = value.data.data();
        if (!key.shape.empty()) {
            c.key_shape = key.shape;
            c.key = key.data.data();
        }
        return c;
    }
};

void expect_close(const Tensor &got, const std::vector<double> &want, const Shape &want_shape,
                  bool probabilities, const std::string &what) {
    ASSERT_EQ(got.shape, want_shape) << what;
    Comparison c = compare(got.data, want, probabilities);
    EXPECT_TRUE(c.ok()) << c.describe(what);
}

// Runs layer and reference; checks output (and scores when requested).
void check(Harness &h, const Inputs &in, CallOptions opts, reference::Call rc,
           reference::Path path) {
    TensorView key = in.key.view();
    if (!in.key.shape.empty()) opts.key = &key;
    CallResult got = h.layer.call(in.query.view(), in.value.view(), opts);
    reference::Result want = reference::multi_head_attention(h.reference_layer(), rc, path);
    expect_close(got.output, want.output, want.output_shape, false,
                 "output via " + h.layer.last_selection().describe());
    if (opts.return_attention_scores) {
        expect_close(got.scores, want.scores, want.scores_shape, true, "scores");
    }
}

LayerConfig config(int heads, int key_dim, std::vector<int> axes = {}) {
    LayerConfig c;
    c.num_heads = heads;
    c.key_dim = key_dim;
    c.attention_axes = std::move(axes);
    return c;
}

TEST(NdAttention, FourDDefaultAxesJointSoftmax) {
    Harness h(config(2, 4), 16, 16);
    Inputs in({2, 3, 4, 16}, {2, 3, 4, 16});
    CallOptions o;
    o.return_attention_scores = true;
    check(h, in, o, in.call(), reference::Path::explicit_scores);
    EXPECT_EQ(h.layer.call(in.query.view(), in.value.view(), o).scores.shape,
              (Shape{2, 2, 3, 4, 3, 4}));
    // Without scores the inputs are still 4-D: Keras stays on the explicit path.
    check(h, in, {}, in.call(), reference::Path::explicit_scores);
    EXPECT_EQ(h.layer.last_selection().path, Path::staged);
}

TEST(NdAttention, AxisTwoAndMinusTwoAreIdentical) {
    Inputs in({2, 3, 4, 16}, {2, 3, 5, 16});
    Harness pos(config(2, 4, {2}), 16, 16), neg(config(2, 4, {-2}), 16, 16);
    CallOptions o;
    o.return_attention_scores = true;
    reference::Call rc = in.call();
    rc.attention_axes = {2};
    check(pos, in, o, rc, reference::Path::explicit_scores);
    CallResult a = pos.layer.call(in.query.view(), in.value.view(), o);
    CallResult b = neg.layer.call(in.query.view(), in.value.view(), o);
    EXPECT_EQ(a.scores.shape, (Shape{2, 3, 2, 4, 5}));
    EXPECT_EQ(a.output.data, b.output.data);
    EXPECT_EQ(a.scores.data, b.scores.data);
}

TEST(NdAttention, AxisOneOfFourDNeedsATranspose) {
    Harness h(config(3, 4, {1}), 12, 8);
    Inputs in({2, 5, 3, 12}, {2, 6, 3, 8});
    CallOptions o;
    o.return_attention_scores = true;
    reference::Call rc = in.call();
    rc.attention_axes = {1};
    check(h, in, o, rc, reference::Path::explicit_scores);
    // Causal is meaningful on axis 1 (Keras builds it from axis-1 lengths).
    o.use_causal_mask = true;
    rc.causal = true;
    check(h, in, o, rc, reference::Path::explicit_scores);
}

TEST(NdAttention, FiveDTwoAxesWithMasks) {
    Harness h(config(2, 4, {2, 3}), 16, 16);
    Inputs in({2, 5, 3, 4, 16}, {2, 5, 3, 4, 16});
    reference::Call rc = in.call();
    rc.attention_axes = {2, 3};
    CallOptions o;
    o.return_attention_scores = true;
    check(h, in, o, rc, reference::Path::explicit_scores);
    for (Shape ms : {Shape{2, 3, 4, 3, 4}, Shape{2, 5, 3, 4, 3, 4}, Shape{2, 5, 1, 3, 4, 3, 4}}) {
        std::vector<uint8_t> m = random_mask(count(ms), 3);
        MaskView mv{m.data(), ms};
        o.attention_mask = &mv;
        rc.attention_mask = m.data();
        rc.attention_mask_shape = ms;
        SCOPED_TRACE(shape_to_string(ms));
        check(h, in, o, rc, reference::Path::explicit_scores);
    }
}

TEST(NdAttention, FiveDDifferentKeyExtents) {
    Harness h(config(2, 4, {2, 3}), 16, 16);
    Inputs in({2, 5, 3, 4, 16}, {2, 5, 3, 2, 16});
    reference::Call rc = in.call();
    rc.attention_axes = {2, 3};
    CallOptions o;
    o.return_attention_scores = true;
    check(h, in, o, rc, reference::Path::explicit_scores);
}

// Found by tests/keras/random_models.py: tiny head sizes with two attention axes.
TEST(NdAttention, FiveDTwoAxesUnitHeadSizes) {
    LayerConfig c = config(2, 1, {2, 3});
    c.value_dim = 1;
    Harness h(c, 12, 4);
    Inputs in({2, 2, 3, 2, 12}, {2, 2, 2, 3, 4});
    reference::Call rc = in.call();
    rc.attention_axes = {2, 3};
    for (bool scores : {false, true}) {
        CallOptions o;
        o.return_attention_scores = scores;
        check(h, in, o, rc, reference::Path::explicit_scores);
    }
}

TEST(NdAttention, BadAxesAreErrors) {
    Harness h(config(2, 4, {3}), 16, 16);
    Inputs in({2, 3, 4, 16}, {2, 3, 4, 16});
    EXPECT_THAT([&] { h.layer.call(in.query.view(), in.value.view()); },
                ::testing::ThrowsMessage<Error>(HasSubstr("attention_axes (3,)")));
    Harness d(config(2, 4), 16, 16);
    CallOptions o;
    o.use_causal_mask = true;
    EXPECT_THAT([&] { d.layer.call(in.query.view(), in.value.view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("use_causal_mask")));
}

class MaskForms : public ::testing::TestWithParam<Shape> {};

TEST_P(MaskForms, BroadcastLikeKeras) {
    const Shape ms = GetParam();
    Harness h(config(2, 4), 16, 16);
    Inputs in({2, 5, 16}, {2, 6, 16});
    std::vector<uint8_t> m = random_mask(count(ms), 9);
    MaskView mv{m.data(), ms};
    reference::Call rc = in.call();
    rc.attention_mask = m.data();
    rc.attention_mask_shape = ms;
    for (bool scores : {false, true}) {
        CallOptions o;
        o.attention_mask = &mv;
        o.return_attention_scores = scores;
        check(h, in, o, rc, scores ? reference::Path::explicit_scores : reference::Path::fused);
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MaskForms,
                         ::testing::Values(Shape{5, 6}, Shape{2, 5, 6}, Shape{2, 2, 5, 6},
                                           Shape{1, 5, 6}, Shape{2, 1, 6}, Shape{2, 5, 1},
                                           Shape{1, 2, 5, 6}, Shape{2, 1, 1, 6}),
                         [](const auto &info) {
                             std::string s;
                             for (int64_t d : info.param) s += "x" + std::to_string(d);
                             return "mask" + s;
                         });

TEST(Masks, NonBoolValuesAreTrue) {
    Harness h(config(2, 4), 16, 16);
    Inputs in({1, 3, 16}, {1, 4, 16});
    std::vector<uint8_t> m = {0, 2, 7, 0, 255, 0, 0, 1, 0, 0, 3, 0};
    std::vector<uint8_t> as_bool(m.size());
    for (size_t i = 0; i < m.size(); i++) as_bool[i] = m[i] != 0;
    MaskView mv{m.data(), {1, 3, 4}};
    CallOptions o;
    o.attention_mask = &mv;
    reference::Call rc = in.call();
    rc.attention_mask = as_bool.data();
    rc.attention_mask_shape = {1, 3, 4};
    check(h, in, o, rc, reference::Path::fused);
}

TEST(Masks, PaddingMasksAndCausalCombine) {
    Harness h(config(2, 4), 16, 12, 10);
    Inputs in({2, 6, 16}, {2, 4, 12}, {2, 4, 10});
    std::vector<uint8_t> qm = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0};
    std::vector<uint8_t> vm = {1, 1, 0, 1, 1, 1, 1, 0};
    std::vector<uint8_t> km = {1, 0, 1, 1, 1, 1, 1, 1};
    MaskView qv{qm.data(), {2, 6}}, vv{vm.data(), {2, 4}}, kv{km.data(), {2, 4}};
    std::vector<uint8_t> am = random_mask(2 * 6 * 4, 4, 0.8);
    MaskView av{am.data(), {2, 6, 4}};
    for (bool scores : {false, true}) {
        for (bool causal : {false, true}) {
            CallOptions o;
            o.query_mask = &qv;
            o.value_mask = &vv;
            o.key_mask = &kv;
            o.attention_mask = &av;
            o.use_causal_mask = causal;  // T=6 > S=4: rows >= 3 see every key
            o.return_attention_scores = scores;
            reference::Call rc = in.call();
            rc.query_mask = qm.data();
            rc.value_mask = vm.data();
            rc.key_mask = km.data();
            rc.attention_mask = am.data();
            rc.attention_mask_shape = {2, 6, 4};
            rc.causal = causal;
            SCOPED_TRACE(std::string(scores ? "scores" : "fused") + (causal ? " causal" : ""));
            check(h, in, o, rc, scores ? reference::Path::explicit_scores : reference::Path::fused);
        }
    }
}

// Keras ANDs the padding masks into [B, T, 1] / [B, 1, S] (and causal into
// [1, T, S]) before attention_mask, with trailing-axis broadcasting: against
// a [B, N, T, S] attention_mask the padding masks' batch axis meets the head
// axis. With B == N, batch b's padding lands on head b of every batch.
TEST(Masks, PaddingMasksMeetTheHeadAxisOfARank4AttentionMask) {
    const int64_t B = 2, N = 2, T = 5, S = 6;
    Harness h(config(N, 4), 16, 16);
    Inputs in({B, T, 16}, {B, S, 16});
    std::vector<uint8_t> am = random_mask(B * N * T * S, 21, 0.8);
    std::vector<uint8_t> qm = {1, 1, 1, 1, 0, 1, 1, 0, 0, 0};
    std::vector<uint8_t> vm = {1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0};
    MaskView av{am.data(), {B, N, T, S}}, qv{qm.data(), {B, T}}, vv{vm.data(), {B, S}};
    for (int which = 0; which < 4; which++) {  // value, query, both, value + causal
        const bool use_q = which == 1 || which == 2, use_v = which != 1, causal = which == 3;
        // Keras's result, written out: head n takes batch n's padding masks.
        std::vector<uint8_t> keras(am.size());
        for (int64_t b = 0; b < B; b++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t s = 0; s < S; s++) {
                        const int64_t i = ((b * N + n) * T + t) * S + s;
                        keras[i] = am[i] && (!use_q || qm[n * T + t]) &&
                                   (!use_v || vm[n * S + s]) && (!causal || s <= t);
                    }
        MaskView kv{keras.data(), {B, N, T, S}};
        for (bool scores : {false, true}) {
            SCOPED_TRACE(std::to_string(which) + (scores ? " scores" : " fused"));
            CallOptions o;
            o.attention_mask = &av;
            o.query_mask = use_q ? &qv : nullptr;
            o.value_mask = use_v ? &vv : nullptr;
            o.use_causal_mask = causal;
            o.return_attention_scores = scores;
            reference::Call rc = in.call();
            rc.attention_mask = am.data();
            rc.attention_mask_shape = {B, N, T, S};
            rc.query_mask = use_q ? qm.data() : nullptr;
            rc.value_mask = use_v ? vm.data() : nullptr;
            rc.causal = causal;
            const auto path = scores ? reference::Path::explicit_scores : reference::Path::fused;
            check(h, in, o, rc, path);
            // The same as passing Keras's combined mask alone.
            CallOptions alone;
            alone.attention_mask = &kv;
            alone.return_attention_scores = scores;
            CallResult a = h.layer.call(in.query.view(), in.value.view(), o);
            CallResult b = h.layer.call(in.query.view(), in.value.view(), alone);
            EXPECT_EQ(a.output.data, b.output.data);
            EXPECT_EQ(a.scores.data, b.scores.data);
        }
    }
}

TEST(Masks, PaddingMasksBroadcastOverHeadsAtBatchOne) {
    Harness h(config(3, 4), 16, 16);
    Inputs in({1, 4, 16}, {1, 5, 16});
    std::vector<uint8_t> am = random_mask(3 * 4 * 5, 22, 0.8);
    std::vector<uint8_t> qm = {1, 1, 0, 1}, vm = {1, 0, 1, 1, 0};
    MaskView av{am.data(), {1, 3, 4, 5}}, qv{qm.data(), {1, 4}}, vv{vm.data(), {1, 5}};
    for (bool scores : {false, true}) {
        CallOptions o;
        o.attention_mask = &av;
        o.query_mask = &qv;
        o.value_mask = &vv;
        o.use_causal_mask = true;
        o.return_attention_scores = scores;
        reference::Call rc = in.call();
        rc.attention_mask = am.data();
        rc.attention_mask_shape = {1, 3, 4, 5};
        rc.query_mask = qm.data();
        rc.value_mask = vm.data();
        rc.causal = true;
        check(h, in, o, rc, scores ? reference::Path::explicit_scores : reference::Path::fused);
    }
}

// Where Keras's broadcast fails (B != N, neither 1), Keras raises: so does mhac.
TEST(Masks, PaddingMaskBatchAgainstOtherHeadCountIsAnError) {
    Harness h(config(2, 4), 16, 16);
    Inputs in({3, 4, 16}, {3, 5, 16});
    std::vector<uint8_t> am(3 * 2 * 4 * 5, 1), vm(3 * 5, 1), qm(3 * 4, 1);
    MaskView av{am.data(), {3, 2, 4, 5}}, vv{vm.data(), {3, 5}}, qv{qm.data(), {3, 4}};
    for (bool query : {false, true}) {
        CallOptions o;
        o.attention_mask = &av;
        (query ? o.query_mask : o.value_mask) = query ? &qv : &vv;
        EXPECT_THAT([&] { h.layer.call(in.query.view(), in.value.view(), o); },
                    ::testing::ThrowsMessage<Error>(
                        ::testing::AllOf(HasSubstr("attention_mask shape [3, 2, 4, 5]"),
                                         HasSubstr(query ? "query_mask [3, 4] as [3, 4, 1]"
                                                         : "value_mask [3, 5] as [3, 1, 5]"),
                                         HasSubstr("Keras"))));
        reference::Call rc = in.call();
        rc.attention_mask = am.data();
        rc.attention_mask_shape = {3, 2, 4, 5};
        (query ? rc.query_mask : rc.value_mask) = query ? qm.data() : vm.data();
        EXPECT_THROW(
            reference::multi_head_attention(h.reference_layer(), rc, reference::Path::fused),
            std::invalid_argument);
    }
    // Padding masks that disagree among themselves: named too.
    std::vector<uint8_t> other(2 * 5, 1);
    MaskView ov{other.data(), {2, 5}};
    CallOptions o;
    o.query_mask = &qv;
    o.value_mask = &ov;
    EXPECT_THAT([&] { h.layer.call(in.query.view(), in.value.view(), o); },
                ::testing::ThrowsMessage<Error>(::testing::AllOf(HasSubstr("value_mask [2, 5]"),
                                                                 HasSubstr("query_mask [3, 4]"))));
}

// N-D inputs: the tensors' Keras masks (shape = input shape without features)
// combine by the same rule; with attention over axis 2 they mask per (b, x).
TEST(Masks, PaddingMasksOfFourDInputs) {
    Harness h(config(2, 4, {2}), 16, 16);
    Inputs in({2, 3, 4, 16}, {2, 3, 5, 16});
    std::vector<uint8_t> qm = random_mask(2 * 3 * 4, 31, 0.8), vm = random_mask(2 * 3 * 5, 32);
    for (int64_t bx = 0; bx < 6; bx++) vm[bx * 5] = 1;
    MaskView qv{qm.data(), {2, 3, 4}}, vv{vm.data(), {2, 3, 5}};
    for (bool scores : {false, true}) {
        CallOptions o;
        o.query_mask = &qv;
        o.value_mask = &vv;
        o.return_attention_scores = scores;
        reference::Call rc = in.call();
        rc.attention_axes = {2};
        rc.query_mask = qm.data();
        rc.query_mask_shape = {2, 3, 4};
        rc.value_mask = vm.data();
        rc.value_mask_shape = {2, 3, 5};
        check(h, in, o, rc, reference::Path::explicit_scores);
    }
    // Causal builds [1, 3, 3] from axis-1 lengths; against scores [B, X, N, T, S]
    // with X = 3 it lands on (T, S) only where T = S = 3, else Keras raises.
    Inputs square({2, 3, 3, 16}, {2, 3, 3, 16});
    CallOptions o;
    o.use_causal_mask = true;
    o.return_attention_scores = true;
    reference::Call rc = square.call();
    rc.attention_axes = {2};
    rc.causal = true;
    check(h, square, o, rc, reference::Path::explicit_scores);
    EXPECT_THAT([&] { h.layer.call(in.query.view(), in.value.view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("use_causal_mask [1, 3, 3]")));
}

TEST(Masks, CausalShortQueries) {
    Harness h(config(2, 4), 16, 16);
    Inputs in({2, 3, 16}, {2, 7, 16});  // T=3 < S=7: row i sees keys 0..i
    reference::Call rc = in.call();
    rc.causal = true;
    for (bool scores : {false, true}) {
        CallOptions o;
        o.use_causal_mask = true;
        o.return_attention_scores = scores;
        check(h, in, o, rc, scores ? reference::Path::explicit_scores : reference::Path::fused);
    }
}

// Spec 2.1 and cases 16-18: a fully masked row is uniform on the fused path
// and zero on the explicit path, which dropout > 0 selects even in inference.
TEST(FullyMaskedRows, DependOnThePathKerasTakes) {
    Inputs in({1, 3, 16}, {1, 4, 16});
    std::vector<uint8_t> m = {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0};  // row 1 fully masked
    MaskView mv{m.data(), {1, 3, 4}};
    reference::Call rc = in.call();
    rc.attention_mask = m.data();
    rc.attention_mask_shape = {1, 3, 4};

    Harness fused(config(2, 4), 16, 16);
    CallOptions o;
    o.attention_mask = &mv;
    check(fused, in, o, rc, reference::Path::fused);
    CallResult uniform = fused.layer.call(in.query.view(), in.value.view(), o);

    o.return_attention_scores = true;
    check(fused, in, o, rc, reference::Path::explicit_scores);
    CallResult zeroed = fused.layer.call(in.query.view(), in.value.view(), o);
    // The zeroed row's output is exactly the output bias.
    const Tensor &bo = fused.weights[7];
    for (int64_t j = 0; j < 16; j++) EXPECT_FLOAT_EQ(zeroed.output.data[16 + j], bo.data[j]);
    EXPECT_NE(uniform.output.data[16], zeroed.output.data[16]);

    LayerConfig c = config(2, 4);
    c.dropout = 0.1f;
    Harness with_dropout(c, 16, 16);
    CallOptions inference;
    inference.attention_mask = &mv;
    check(with_dropout, in, inference, rc, reference::Path::explicit_scores);
}

TEST(Dropout, RateOneGivesTheOutputBias) {
    LayerConfig c = config(2, 4);
    c.dropout = 1.0f;
    Harness h(c, 16, 16);
    Inputs in({2, 3, 16}, {2, 4, 16});
    CallOptions o;
    o.training = true;
    o.return_attention_scores = true;
    CallResult r = h.layer.call(in.query.view(), in.value.view(), o);
    for (size_t i = 0; i < r.output.data.size(); i++) {
        EXPECT_FLOAT_EQ(r.output.data[i], h.weights[7].data[i % 16]);
    }
    // Returned scores are the probabilities before dropout.
    reference::Result want = reference::multi_head_attention(h.reference_layer(), in.call(),
                                                             reference::Path::explicit_scores);
    expect_close(r.scores, want.scores, want.scores_shape, true, "pre-dropout scores");
}

TEST(Dropout, SeededAndMatchesTheReferenceWithTheSameKeepDecisions) {
    LayerConfig c = config(2, 4);
    c.dropout = 0.5f;
    c.seed = 1234;
    Harness a(c, 16, 16), b(c, 16, 16);
    Inputs in({2, 8, 16}, {2, 9, 16});
    CallOptions o;
    o.training = true;
    CallResult ra = a.layer.call(in.query.view(), in.value.view(), o);
    CallResult rb = b.layer.call(in.query.view(), in.value.view(), o);
    EXPECT_EQ(ra.output.data, rb.output.data);  // same seed, same call sequence
    CallResult ra2 = a.layer.call(in.query.view(), in.value.view(), o);
    EXPECT_NE(ra.output.data, ra2.output.data);  // the counter advanced

    // Call 0 of seed 1234 drops exactly the reference's decisions.
    reference::Call rc = in.call();
    rc.rate = 0.5;
    rc.keep = [](int64_t i) { return detail::dropout_uniform(1234, 0, uint64_t(i)) >= 0.5; };
    reference::Result want =
        reference::multi_head_attention(a.reference_layer(), rc, reference::Path::explicit_scores);
    expect_close(ra.output, want.output, want.output_shape, false, "dropout output");

    int64_t kept = 0, n = 100000;
    for (int64_t i = 0; i < n; i++) kept += detail::dropout_uniform(99, 3, uint64_t(i)) >= 0.5;
    EXPECT_NEAR(double(kept) / n, 0.5, 0.01);
}

TEST(Arguments, ValueDimKeyFeaturesNoBiasAndTupleOutput) {
    LayerConfig c = config(3, 4);
    c.value_dim = 6;
    c.use_bias = false;
    c.output_shape = {2, 5};
    Harness h(c, 16, 12, 7);
    Inputs in({2, 5, 16}, {2, 6, 12}, {2, 6, 7});
    for (bool scores : {false, true}) {
        CallOptions o;
        o.return_attention_scores = scores;
        check(h, in, o, in.call(),
              scores ? reference::Path::explicit_scores : reference::Path::fused);
    }
    TensorView key = in.key.view();
    CallOptions o;
    o.key = &key;
    EXPECT_EQ(h.layer.call(in.query.view(), in.value.view(), o).output.shape, (Shape{2, 5, 2, 5}));
}

TEST(Arguments, SlidingWindowAloneAndWithCausal) {
    LayerConfig c = config(2, 4);
    c.sliding_window = 3;
    Harness h(c, 16, 16);
    for (Shape v : {Shape{2, 8, 16}, Shape{2, 5, 16}}) {  // T == S and T > S
        Inputs in({2, 8, 16}, v);
        for (bool causal : {false, true}) {
            for (bool scores : {false, true}) {
                CallOptions o;
                o.use_causal_mask = causal;
                o.return_attention_scores = scores;
                reference::Call rc = in.call();
                rc.causal = causal;
                SCOPED_TRACE(shape_to_string(v) + (causal ? " causal" : "") +
                             (scores ? " scores" : ""));
                check(h, in, o, rc,
                      scores ? reference::Path::explicit_scores : reference::Path::fused);
            }
        }
    }
}

TEST(Arguments, GateOnBothPaths) {
    LayerConfig c = config(2, 4);
    c.value_dim = 6;
    c.use_gate = true;
    Harness h(c, 16, 12);
    Inputs in({2, 5, 16}, {2, 7, 12});
    std::vector<uint8_t> m = random_mask(2 * 5 * 7, 2);
    m[7 * 2] = m[7 * 2 + 1] = m[7 * 2 + 2] = m[7 * 2 + 3] = m[7 * 2 + 4] = m[7 * 2 + 5] =
        m[7 * 2 + 6] = 0;  // a fully masked row: the paths differ there
    MaskView mv{m.data(), {2, 5, 7}};
    reference::Call rc = in.call();
    rc.attention_mask = m.data();
    rc.attention_mask_shape = {2, 5, 7};
    for (bool scores : {false, true}) {
        CallOptions o;
        o.attention_mask = &mv;
        o.return_attention_scores = scores;
        check(h, in, o, rc, scores ? reference::Path::explicit_scores : reference::Path::fused);
        EXPECT_EQ(h.layer.last_selection().path, Path::staged);
        EXPECT_EQ(h.layer.last_selection().keras_path,
                  scores ? KerasPath::explicit_scores : KerasPath::fused);
    }
    // get_weights() order with the gate: Q, K, G, V, O.
    EXPECT_EQ(h.weights[4].shape, (Shape{16, 2, 6}));
    EXPECT_EQ(h.weights[6].shape, (Shape{12, 2, 6}));
}

TEST(Arguments, KeyOmittedUsesValueThroughTheKeyProjection) {
    Harness h(config(2, 4), 16, 12);
    Inputs in({2, 5, 16}, {2, 6, 12});
    check(h, in, {}, in.call(), reference::Path::fused);
}

TEST(Initializers, GlorotFansAndZeroBiases) {
    LayerConfig c = config(4, 8);
    c.output_shape = {10};
    std::vector<Tensor> w = initialize_weights(c, 32, 24, 0, 7);
    ASSERT_EQ(w.size(), 8u);
    EXPECT_EQ(w[0].shape, (Shape{32, 4, 8}));
    EXPECT_EQ(w[2].shape, (Shape{24, 4, 8}));  // key omitted: Ek = Ev
    EXPECT_EQ(w[6].shape, (Shape{4, 8, 10}));
    auto limit = [](double fan_in, double fan_out) { return std::sqrt(6.0 / (fan_in + fan_out)); };
    auto max_abs = [](const Tensor &t) {
        double m = 0;
        for (float x : t.data) m = std::max(m, double(std::abs(x)));
        return m;
    };
    EXPECT_LE(max_abs(w[0]), limit(32, 32));
    EXPECT_GT(max_abs(w[0]), 0.9 * limit(32, 32));
    EXPECT_LE(max_abs(w[6]), limit(32, 10));
    EXPECT_GT(max_abs(w[6]), 0.9 * limit(32, 10));
    for (int i : {1, 3, 5, 7}) EXPECT_EQ(max_abs(w[i]), 0.0);
    EXPECT_EQ(initialize_weights(c, 32, 24, 0, 7)[0].data, w[0].data);
    EXPECT_NE(initialize_weights(c, 32, 24, 0, 8)[0].data, w[0].data);
}

}  // namespace
}  // namespace mhac::testing
