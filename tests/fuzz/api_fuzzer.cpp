// libFuzzer target: the C++ API boundary. Each input picks a layer config
// (heads, key/value dims, bias, gate, attention axes, output shape,
// dropout, sliding window), tiny input ranks and shapes, optional key,
// attention and padding masks of random ranks and shapes, and call options
// (causal mask, scores, training, a forced configuration), then runs
// MultiHeadAttention::call on the fuzz kernel set (the `tiny` row and the
// generic kernels). A mhac::Error is the expected answer to a bad request;
// anything else (a crash, a sanitizer report, another exception) is a
// finding. Weights are sometimes given a wrong shape.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mhac/kernel_set_fuzz_set.h"
#include "mhac/mha.h"

namespace {

mhac::Shape pick_shape(FuzzedDataProvider &in, int rank, int64_t max_dim) {
    mhac::Shape s;
    for (int i = 0; i < rank; i++) s.push_back(in.ConsumeIntegralInRange<int64_t>(0, max_dim));
    return s;
}

int64_t elements(const mhac::Shape &s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

mhac::Tensor pick_tensor(FuzzedDataProvider &in, mhac::Shape shape) {
    mhac::Tensor t{std::move(shape), {}};
    t.data.resize(static_cast<size_t>(elements(t.shape)));
    for (float &v : t.data) v = in.ConsumeFloatingPointInRange<float>(-2.0f, 2.0f);
    return t;
}

struct Mask {
    mhac::Shape shape;
    std::vector<uint8_t> data;
    mhac::MaskView view() const { return {data.data(), shape}; }
};

Mask pick_mask(FuzzedDataProvider &in, const mhac::Shape &like) {
    Mask m;
    const int rank = in.ConsumeIntegralInRange<int>(0, 5);
    for (int i = 0; i < rank; i++) {
        // Mostly the matching dim (or 1, broadcast), sometimes any.
        const size_t from_end = static_cast<size_t>(rank - i);
        const int64_t want = from_end <= like.size() ? like[like.size() - from_end] : 1;
        switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: m.shape.push_back(1); break;
        case 1: m.shape.push_back(in.ConsumeIntegralInRange<int64_t>(0, 5)); break;
        default: m.shape.push_back(want);
        }
    }
    m.data.resize(static_cast<size_t>(elements(m.shape)));
    for (uint8_t &v : m.data) v = in.ConsumeBool();
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzedDataProvider in(data, size);
    const bool tiny = in.ConsumeBool();  // the `tiny` row's sizes
    mhac::LayerConfig cfg;
    cfg.num_heads = tiny ? 4 : in.ConsumeIntegralInRange<int>(-1, 4);
    cfg.key_dim = tiny ? 16 : in.ConsumeIntegralInRange<int>(-1, 8);
    cfg.value_dim = tiny ? 0 : in.ConsumeIntegralInRange<int>(-1, 8);
    cfg.use_bias = tiny || in.ConsumeBool();
    cfg.use_gate = in.ConsumeIntegralInRange<int>(0, 7) == 0;
    const int rank = in.ConsumeIntegralInRange<int>(1, 5);
    const int axes = in.ConsumeIntegralInRange<int>(0, 3);
    for (int i = 0; i < axes; i++)
        cfg.attention_axes.push_back(in.ConsumeIntegralInRange<int>(-6, 5));
    const int out_rank = in.ConsumeIntegralInRange<int>(0, 2);
    for (int i = 0; i < out_rank; i++)
        cfg.output_shape.push_back(in.ConsumeIntegralInRange<int64_t>(-1, 6));
    if (in.ConsumeIntegralInRange<int>(0, 3) == 0)
        cfg.dropout = in.ConsumeFloatingPointInRange<float>(-0.5f, 1.5f);
    if (in.ConsumeIntegralInRange<int>(0, 3) == 0)
        cfg.sliding_window = in.ConsumeIntegralInRange<int>(-1, 4);
    cfg.flash_attention = in.ConsumeIntegralInRange<int>(0, 7) == 0;
    cfg.seed = 1;

    // Inputs: [batch..., seq..., features], every dim tiny.
    mhac::Shape q = pick_shape(in, rank - 1, 3), v = pick_shape(in, rank - 1, 3);
    const int64_t eq = tiny ? 64 : in.ConsumeIntegralInRange<int64_t>(0, 6);
    const int64_t ev = tiny ? 64 : in.ConsumeIntegralInRange<int64_t>(0, 6);
    const bool with_key = in.ConsumeBool();
    const int64_t ek = tiny ? 64 : in.ConsumeIntegralInRange<int64_t>(0, 6);
    if (in.ConsumeIntegralInRange<int>(0, 3) != 0 && !q.empty() && !v.empty()) v[0] = q[0];
    mhac::Shape k = v;
    q.push_back(eq);
    v.push_back(ev);
    k.push_back(with_key ? ek : ev);

    try {
        mhac::MultiHeadAttention layer(cfg, mhac::kernel_sets::fuzz_set());
        std::vector<mhac::Tensor> w = mhac::initialize_weights(cfg, eq, ev, k.back(), 7);
        if (!w.empty() && in.ConsumeIntegralInRange<int>(0, 7) == 0) {
            mhac::Tensor &bad = w[in.ConsumeIntegralInRange<size_t>(0, w.size() - 1)];
            if (!bad.shape.empty()) {
                bad.shape[in.ConsumeIntegralInRange<size_t>(0, bad.shape.size() - 1)] += 1;
                bad.data.resize(static_cast<size_t>(elements(bad.shape)));
            }
        }
        layer.set_weights(mhac::keras_weights_from(w, cfg.use_bias, cfg.use_gate));

        const mhac::Tensor query = pick_tensor(in, q), value = pick_tensor(in, v);
        const mhac::Tensor key = pick_tensor(in, with_key ? k : mhac::Shape{0});
        const mhac::TensorView key_view = key.view();
        mhac::CallOptions opts;
        if (with_key) opts.key = &key_view;
        mhac::Shape scores_like = q;
        scores_like.back() = v.size() >= 2 ? v[v.size() - 2] : 1;
        const Mask attention = pick_mask(in, scores_like);
        const Mask query_mask = pick_mask(in, mhac::Shape(q.begin(), q.end() - 1));
        const Mask value_mask = pick_mask(in, mhac::Shape(v.begin(), v.end() - 1));
        const mhac::MaskView attention_view = attention.view(), query_view = query_mask.view(),
                             value_view = value_mask.view();
        if (in.ConsumeBool()) opts.attention_mask = &attention_view;
        if (in.ConsumeIntegralInRange<int>(0, 3) == 0) opts.query_mask = &query_view;
        if (in.ConsumeIntegralInRange<int>(0, 3) == 0) opts.value_mask = &value_view;
        opts.use_causal_mask = in.ConsumeBool();
        opts.return_attention_scores = in.ConsumeBool();
        opts.training = in.ConsumeBool();
        switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0: opts.force_config = "generic"; break;
        case 1: opts.force_config = "tiny"; break;
        case 2: opts.force_config = in.ConsumeRandomLengthString(8); break;
        default: break;
        }
        const mhac::CallResult r = layer.call(query.view(), value.view(), opts);
        (void)r;
    } catch (const mhac::Error &) {
    }
    return 0;
}
