// MultiHeadAttention: validation at the boundary, weight packing, scratch
// reuse and the two execution paths over the generated kernels.
#include "mhac/mha.h"

#include "halide_glue.h"
#include "packed_weights.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <sstream>

namespace mhac {

std::string shape_to_string(const Shape &shape) {
    std::ostringstream s;
    s << "[";
    for (size_t i = 0; i < shape.size(); i++) s << (i ? ", " : "") << shape[i];
    s << "]";
    return s.str();
}

namespace {

using detail::BufferRef;
using detail::dense;
using detail::invoke;

int64_t product(const Shape &shape) {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

[[noreturn]] void fail(const std::string &message) { throw Error(message); }

void require_tensor(const char *name, const TensorView &t, size_t rank, const char *layout) {
    if (t.shape.size() != rank) {
        fail(std::string(name) + " must have rank " + std::to_string(rank) + " " + layout +
             ", got shape " + shape_to_string(t.shape));
    }
    for (int64_t d : t.shape) {
        if (d <= 0) {
            fail(std::string(name) + " has a zero or negative dimension: shape " +
                 shape_to_string(t.shape));
        }
    }
    if (!t.data) fail(std::string(name) + " has null data (shape " + shape_to_string(t.shape) + ")");
}

void require_shape(const char *name, const TensorView &t, const Shape &expected) {
    require_tensor(name, t, expected.size(), "");
    if (t.shape != expected) {
        fail(std::string(name) + " has shape " + shape_to_string(t.shape) + ", expected " +
             shape_to_string(expected));
    }
}

// Keras's mask alignment (spec section 2): insert length-1 axes in the head
// slot until the mask has the scores' rank, then every axis must be 1 or
// equal to the scores' extent.
Shape align_mask_shape(const Shape &mask, const Shape &scores) {
    if (mask.size() < 2 || mask.size() > scores.size()) {
        fail("attention_mask shape " + shape_to_string(mask) +
             " cannot be broadcast to the attention scores shape " + shape_to_string(scores) +
             " (rank must be 2 to " + std::to_string(scores.size()) + ")");
    }
    Shape aligned = mask;
    while (aligned.size() < scores.size()) aligned.insert(aligned.end() - 2, 1);
    for (size_t i = 0; i < scores.size(); i++) {
        if (aligned[i] != 1 && aligned[i] != scores[i]) {
            fail("attention_mask shape " + shape_to_string(mask) +
                 " cannot be broadcast to the attention scores shape " + shape_to_string(scores) +
                 " [B, N, T, S]");
        }
    }
    return aligned;
}

}  // namespace

struct MultiHeadAttention::Impl {
    LayerConfig config;
    const KernelSet *kernels = nullptr;
    bool has_weights = false;
    bool log = false;

    int64_t eq = 0, ek = 0, ev = 0, out_features = 0;
    Shape out_tail;  // output_shape, resolved
    detail::PackedKernel wq, wk, wv, wo;
    std::vector<float> bq, bk, bv, bo;  // zeros when use_bias is false

    // Per-call scratch, grown to the largest call seen and then reused.
    std::vector<float> q, k, v, logits, probs, context;
    std::vector<uint8_t> mask;
    Selection last;

    int heads() const { return config.num_heads; }
    int key_dim() const { return config.key_dim; }
    int value_dim() const { return config.value_dim; }
};

namespace {

template <typename T>
T *scratch(std::vector<T> &v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
}

std::vector<float> bias_or_zeros(const TensorView &bias, bool use_bias, int64_t n) {
    if (!use_bias) return std::vector<float>(static_cast<size_t>(n), 0.0f);
    return std::vector<float>(bias.data, bias.data + n);
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(const LayerConfig &config, const KernelSet &kernels)
    : impl_(std::make_unique<Impl>()) {
    detail::install_halide_hooks();
    LayerConfig c = config;
    if (c.num_heads <= 0) fail("num_heads must be a positive int, got " + std::to_string(c.num_heads));
    if (c.key_dim <= 0) fail("key_dim must be a positive int, got " + std::to_string(c.key_dim));
    if (c.value_dim < 0) fail("value_dim must be a positive int, got " + std::to_string(c.value_dim));
    if (c.value_dim == 0) c.value_dim = c.key_dim;
    for (int64_t d : c.output_shape) {
        if (d <= 0) fail("output_shape must hold positive ints, got " + shape_to_string(c.output_shape));
    }
    if (!(c.dropout >= 0.0f && c.dropout <= 1.0f)) {
        fail("dropout must be in [0, 1], got " + std::to_string(c.dropout));
    }
    if (!c.attention_axes.empty()) {
        // Default axes for 3-D inputs are (1,): accept that spelling.
        bool default_axes = c.attention_axes.size() == 1 &&
                            (c.attention_axes[0] == 1 || c.attention_axes[0] == -2);
        if (!default_axes) {
            fail("attention_axes other than the default (1,) are not supported by this build");
        }
    }
    impl_->config = c;
    impl_->kernels = &kernels;
    const char *log = std::getenv("MHAC_LOG");
    impl_->log = log && *log && std::string(log) != "0";
}

MultiHeadAttention::~MultiHeadAttention() = default;
MultiHeadAttention::MultiHeadAttention(MultiHeadAttention &&) noexcept = default;
MultiHeadAttention &MultiHeadAttention::operator=(MultiHeadAttention &&) noexcept = default;

const LayerConfig &MultiHeadAttention::config() const { return impl_->config; }
const Selection &MultiHeadAttention::last_selection() const { return impl_->last; }

void MultiHeadAttention::set_weights(const KerasWeights &w) {
    Impl &m = *impl_;
    const int64_t n = m.heads(), h = m.key_dim(), hv = m.value_dim();
    require_tensor("query_kernel", w.query_kernel, 3, "[Eq, num_heads, key_dim]");
    require_tensor("key_kernel", w.key_kernel, 3, "[Ek, num_heads, key_dim]");
    require_tensor("value_kernel", w.value_kernel, 3, "[Ev, num_heads, value_dim]");
    const int64_t eq = w.query_kernel.shape[0], ek = w.key_kernel.shape[0],
                  ev = w.value_kernel.shape[0];
    require_shape("query_kernel", w.query_kernel, {eq, n, h});
    require_shape("key_kernel", w.key_kernel, {ek, n, h});
    require_shape("value_kernel", w.value_kernel, {ev, n, hv});
    Shape tail = m.config.output_shape.empty() ? Shape{eq} : m.config.output_shape;
    Shape wo_shape{n, hv};
    wo_shape.insert(wo_shape.end(), tail.begin(), tail.end());
    require_shape("output_kernel", w.output_kernel, wo_shape);
    if (m.config.use_bias) {
        require_shape("query_bias", w.query_bias, {n, h});
        require_shape("key_bias", w.key_bias, {n, h});
        require_shape("value_bias", w.value_bias, {n, hv});
        require_shape("output_bias", w.output_bias, tail);
    }
    const int64_t o = product(tail);
    m.eq = eq;
    m.ek = ek;
    m.ev = ev;
    m.out_features = o;
    m.out_tail = tail;
    m.wq = detail::pack_kernel(w.query_kernel.data, eq, n * h);
    m.wk = detail::pack_kernel(w.key_kernel.data, ek, n * h);
    m.wv = detail::pack_kernel(w.value_kernel.data, ev, n * hv);
    m.wo = detail::pack_kernel(w.output_kernel.data, n * hv, o);
    m.bq = bias_or_zeros(w.query_bias, m.config.use_bias, n * h);
    m.bk = bias_or_zeros(w.key_bias, m.config.use_bias, n * h);
    m.bv = bias_or_zeros(w.value_bias, m.config.use_bias, n * hv);
    m.bo = bias_or_zeros(w.output_bias, m.config.use_bias, o);
    m.has_weights = true;
}

Shape MultiHeadAttention::output_shape(const TensorView &query) const {
    Shape s{query.shape.at(0), query.shape.at(1)};
    s.insert(s.end(), impl_->out_tail.begin(), impl_->out_tail.end());
    return s;
}

CallResult MultiHeadAttention::call(const TensorView &query, const TensorView &value,
                                    const CallOptions &options) {
    if (!impl_->has_weights) fail("call() before set_weights()");
    if (query.shape.size() != 3) {
        require_tensor("query", query, 3, "[batch, query length, query features]");
    }
    CallResult r;
    r.output.shape = output_shape(query);
    r.output.data.resize(static_cast<size_t>(product(r.output.shape)));
    if (options.return_attention_scores) {
        if (value.shape.size() != 3) {
            require_tensor("value", value, 3, "[batch, key length, value features]");
        }
        r.scores.shape = {query.shape[0], impl_->heads(), query.shape[1], value.shape[1]};
        r.scores.data.resize(static_cast<size_t>(product(r.scores.shape)));
    }
    call_into(query, value, options, r.output.data.data(),
              options.return_attention_scores ? r.scores.data.data() : nullptr);
    return r;
}

void MultiHeadAttention::call_into(const TensorView &query, const TensorView &value,
                                   const CallOptions &options, float *output, float *scores) {
    Impl &m = *impl_;
    if (!m.has_weights) fail("call() before set_weights()");
    // ---- Validate once, at the boundary.
    require_tensor("query", query, 3, "[batch, query length, query features]");
    require_tensor("value", value, 3, "[batch, key length, value features]");
    const TensorView &key = options.key ? *options.key : value;
    if (options.key) require_tensor("key", key, 3, "[batch, key length, key features]");
    if (!std::equal(value.shape.begin(), value.shape.end() - 1, key.shape.begin())) {
        fail("All dimensions of `value` and `key`, except the last one, must be equal. Received: "
             "value shape " + shape_to_string(value.shape) + " and key shape " +
             shape_to_string(key.shape));
    }
    if (query.shape[0] != value.shape[0]) {
        fail("query and value must have the same batch size. Received: query shape " +
             shape_to_string(query.shape) + " and value shape " + shape_to_string(value.shape));
    }
    if (query.shape[2] != m.eq) {
        fail("query's last dimension must match query_kernel [Eq, N, H] with Eq=" +
             std::to_string(m.eq) + "; got query shape " + shape_to_string(query.shape));
    }
    if (value.shape[2] != m.ev) {
        fail("value's last dimension must match value_kernel [Ev, N, Hv] with Ev=" +
             std::to_string(m.ev) + "; got value shape " + shape_to_string(value.shape));
    }
    if (key.shape[2] != m.ek) {
        fail(std::string(options.key ? "key" : "value (used as key, since key was omitted)") +
             "'s last dimension must match key_kernel [Ek, N, H] with Ek=" +
             std::to_string(m.ek) + "; got shape " + shape_to_string(key.shape));
    }
    if (!output) fail("output pointer is null");
    if (options.training && m.config.dropout > 0.0f) {
        fail("dropout in training mode is not supported by this build yet");
    }
    if (options.return_attention_scores && !scores) {
        fail("return_attention_scores is set but the scores pointer is null");
    }

    const int64_t B = query.shape[0], T = query.shape[1], S = value.shape[1];
    const int64_t N = m.heads(), H = m.key_dim(), Hv = m.value_dim(), O = m.out_features;
    const Shape scores_shape{B, N, T, S};

    // ---- Masks: the kernels take none, causal, or one dense uint8 mask.
    Problem p;
    p.batch = B;
    p.queries = T;
    p.keys = S;
    p.query_features = m.eq;
    p.key_features = m.ek;
    p.value_features = m.ev;
    p.num_heads = m.heads();
    p.key_dim = m.key_dim();
    p.value_dim = m.value_dim();
    p.output_features = O;
    p.use_bias = m.config.use_bias;
    p.need_probabilities = options.return_attention_scores;

    // Kernels without a dense mask still take one: a single "visible" byte.
    static const uint8_t kVisible = 1;
    std::optional<BufferRef<uint8_t, 4>> mask_buf;
    if (options.attention_mask) {
        const MaskView &am = *options.attention_mask;
        if (!am.data) fail("attention_mask has null data (shape " + shape_to_string(am.shape) + ")");
        Shape a = align_mask_shape(am.shape, scores_shape);  // [Bm, Nm, Tm, Sm]
        p.mask = MaskKind::dense;
        if (!options.use_causal_mask && a[2] == T && a[3] == S) {
            // Zero copy: broadcast axes have extent 1.
            mask_buf.emplace(am.data, std::initializer_list<std::array<int64_t, 2>>{
                                          {S, 1}, {T, S}, {a[1], T * S}, {a[0], a[1] * T * S}});
        } else {
            // Keras ANDs the causal mask in; also expand broadcast T/S axes.
            uint8_t *dst = scratch(m.mask, a[0] * a[1] * T * S);
            for (int64_t b = 0; b < a[0]; b++)
                for (int64_t n = 0; n < a[1]; n++)
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t s = 0; s < S; s++) {
                            int64_t src = ((b * a[1] + n) * a[2] + (a[2] == 1 ? 0 : t)) * a[3] +
                                          (a[3] == 1 ? 0 : s);
                            bool ok = am.data[src] != 0 && (!options.use_causal_mask || s <= t);
                            dst[((b * a[1] + n) * T + t) * S + s] = ok ? 1 : 0;
                        }
            mask_buf.emplace(dst, std::initializer_list<std::array<int64_t, 2>>{
                                      {S, 1}, {T, S}, {a[1], T * S}, {a[0], a[1] * T * S}});
        }
    } else if (options.use_causal_mask) {
        p.mask = MaskKind::causal;
    }
    if (!mask_buf) {
        mask_buf.emplace(&kVisible,
                         std::initializer_list<std::array<int64_t, 2>>{{1, 1}, {1, 1}, {1, 1}, {1, 1}});
    }

    m.last = select_variant(*m.kernels, p, options.force_config);
    const ConfigKernels &cfg = *m.last.config;
    if (m.log) std::fprintf(stderr, "[mhac] %s: %s\n", m.last.reason.c_str(), m.last.describe().c_str());

    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)));
    std::ostringstream shapes_os;
    shapes_os << "query " << shape_to_string(query.shape) << ", value "
              << shape_to_string(value.shape) << ", key " << shape_to_string(key.shape);
    const std::string shapes = shapes_os.str();

    auto packed = [](const detail::PackedKernel &k) {
        return dense<float, 3>(k.data.data(), {k.panels, k.in_features, detail::kPanelWidth});
    };

    if (m.last.path == Path::fused) {
        auto q_in = dense<float, 3>(query.data, {B, T, m.eq});
        auto k_in = dense<float, 3>(key.data, {B, S, m.ek});
        auto v_in = dense<float, 3>(value.data, {B, S, m.ev});
        auto wq = packed(m.wq), wk = packed(m.wk), wv = packed(m.wv), wo = packed(m.wo);
        auto bq = dense<float, 2>(m.bq.data(), {N, H});
        auto bk = dense<float, 2>(m.bk.data(), {N, H});
        auto bv = dense<float, 2>(m.bv.data(), {N, Hv});
        auto bo = dense<float, 1>(m.bo.data(), {O});
        auto out = dense<float, 3>(output, {B, T, O});
        const auto &kernel = cfg.fused[static_cast<int>(p.mask)];
        invoke(kernel.name, shapes, kernel.fn, q_in.get(), k_in.get(), v_in.get(), wq.get(),
               bq.get(), wk.get(), bk.get(), wv.get(), bv.get(), wo.get(), bo.get(),
               mask_buf->get(), scale, out.get());
        return;
    }

    // ---- Staged (explicit) path: every intermediate in layer scratch.
    float *qs = scratch(m.q, B * T * N * H);
    float *ks = scratch(m.k, B * S * N * H);
    float *vs = scratch(m.v, B * S * N * Hv);
    float *ls = scratch(m.logits, B * N * T * S);
    float *ps = scores ? scores : scratch(m.probs, B * N * T * S);
    float *cs = scratch(m.context, B * T * N * Hv);

    auto project = [&](ProjectionSlot slot, const float *in, int64_t rows, int64_t in_features,
                       const detail::PackedKernel &w, const std::vector<float> &bias, float *dst) {
        auto in_b = dense<float, 2>(in, {rows, in_features});
        auto w_b = packed(w);
        auto bias_b = dense<float, 1>(bias.data(), {w.out_features});
        auto out_b = dense<float, 2>(dst, {rows, w.out_features});
        const auto &kernel = cfg.projection[slot];
        invoke(kernel.name, shapes, kernel.fn, in_b.get(), w_b.get(), bias_b.get(), out_b.get());
    };
    project(kQueryProjection, query.data, B * T, m.eq, m.wq, m.bq, qs);
    project(kKeyProjection, key.data, B * S, m.ek, m.wk, m.bk, ks);
    project(kValueProjection, value.data, B * S, m.ev, m.wv, m.bv, vs);

    auto q_b = dense<float, 4>(qs, {B, T, N, H});
    auto k_b = dense<float, 4>(ks, {B, S, N, H});
    auto l_b = dense<float, 4>(ls, {B, N, T, S});
    invoke(cfg.scores.name, shapes, cfg.scores.fn, q_b.get(), k_b.get(), scale, l_b.get());

    auto p_b = dense<float, 4>(ps, {B, N, T, S});
    const auto &softmax = m.kernels->softmax.by_mask[static_cast<int>(p.mask)];
    invoke(softmax.name, shapes, softmax.fn, l_b.get(), mask_buf->get(), p_b.get());

    auto v_b = dense<float, 4>(vs, {B, S, N, Hv});
    auto c_b = dense<float, 4>(cs, {B, T, N, Hv});
    invoke(cfg.combine.name, shapes, cfg.combine.fn, p_b.get(), v_b.get(), c_b.get());

    project(kOutputProjection, cs, B * T, N * Hv, m.wo, m.bo, output);
}

}  // namespace mhac
