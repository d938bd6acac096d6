// MultiHeadAttention: validation at the boundary, weight packing, scratch
// reuse and the two execution paths over the generated kernels.
#include "mhac/mha.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>

#include "cuda_device.h"
#include "dropout.h"
#include "halide_glue.h"
#include "layout.h"
#include "masks.h"
#include "packed_weights.h"

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

[[noreturn]] void fail(const std::string &message) {
    throw Error(message);
}

// A tensor argument: min_rank <= rank (or exactly `rank`), positive dims,
// non-null data.
void require_tensor(const char *name, const TensorView &t, size_t min_rank, const char *layout,
                    bool exact = true) {
    if (exact ? t.shape.size() != min_rank : t.shape.size() < min_rank) {
        fail(std::string(name) + " must have rank " + (exact ? "" : ">= ") +
             std::to_string(min_rank) + " " + layout + ", got shape " + shape_to_string(t.shape));
    }
    for (int64_t d : t.shape) {
        if (d <= 0) {
            fail(std::string(name) + " has a zero or negative dimension: shape " +
                 shape_to_string(t.shape));
        }
    }
    if (!t.data)
        fail(std::string(name) + " has null data (shape " + shape_to_string(t.shape) + ")");
}

void require_shape(const char *name, const TensorView &t, const Shape &expected) {
    require_tensor(name, t, expected.size(), "");
    if (t.shape != expected) {
        fail(std::string(name) + " has shape " + shape_to_string(t.shape) + ", expected " +
             shape_to_string(expected));
    }
}

template <typename T>
T *scratch(std::vector<T> &v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
}

std::vector<float> bias_or_zeros(const TensorView &bias, bool use_bias, int64_t n) {
    if (!use_bias) return std::vector<float>(static_cast<size_t>(n), 0.0f);
    return std::vector<float>(bias.data, bias.data + n);
}

uint64_t fresh_seed() {
    return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
}

}  // namespace

struct MultiHeadAttention::Impl {
    LayerConfig config;
    const KernelSet *kernels = nullptr;
    std::vector<const KernelSet *> device_kernels;
    bool has_weights = false;
    bool log = false;

    int64_t eq = 0, ek = 0, ev = 0, out_features = 0;
    Shape out_tail;  // output_shape, resolved
    detail::PackedKernel wq, wk, wv, wo, wg;
    std::vector<float> bq, bk, bv, bo, bg;  // zeros when use_bias is false

    // Dropout RNG state: Keras's SeedGenerator [seed, counter].
    uint64_t seed = 0;
    uint64_t dropout_calls = 0;

    // Per-call scratch, grown to the largest call seen and then reused.
    std::vector<float> q, k, v, logits, probs, dropped, context, gate;
    std::vector<float> query_rows, key_rows, value_rows, output_rows;
    std::vector<uint8_t> mask;
    Selection last;

    int heads() const { return config.num_heads; }
    int key_dim() const { return config.key_dim; }
    int value_dim() const { return config.value_dim; }

    // Validates the inputs' shapes against the weights; returns the plan.
    void plan(const TensorView &query, const TensorView &value, const TensorView *key,
              detail::AxesPlan &out) const;
    detail::AxesPlan axes;  // the current call's plan, reused
    Shape scores;           // the current call's scores shape, reused
    Shape output_shape(const Shape &query) const {
        Shape s(query.begin(), query.end() - 1);
        s.insert(s.end(), out_tail.begin(), out_tail.end());
        return s;
    }
    void scores_shape(const detail::AxesPlan &p, const Shape &query, const Shape &value,
                      Shape &s) const {
        s.clear();
        for (int a : p.batch_axes) s.push_back(query[a]);
        s.push_back(heads());
        for (int a : p.attention_axes) s.push_back(query[a]);
        for (int a : p.attention_axes) s.push_back(value[a]);
    }
};

MultiHeadAttention::MultiHeadAttention(const LayerConfig &config, const KernelSet &kernels)
    : impl_(std::make_unique<Impl>()) {
    detail::install_halide_hooks();
    LayerConfig c = config;
    if (c.num_heads <= 0)
        fail("num_heads must be a positive int, got " + std::to_string(c.num_heads));
    if (c.key_dim <= 0) fail("key_dim must be a positive int, got " + std::to_string(c.key_dim));
    if (c.value_dim < 0)
        fail("value_dim must be a positive int, got " + std::to_string(c.value_dim));
    if (c.value_dim == 0) c.value_dim = c.key_dim;
    for (int64_t d : c.output_shape) {
        if (d <= 0)
            fail("output_shape must hold positive ints, got " + shape_to_string(c.output_shape));
    }
    if (!(c.dropout >= 0.0f && c.dropout <= 1.0f)) {
        fail("dropout must be in [0, 1], got " + std::to_string(c.dropout));
    }
    if (c.flash_attention && c.dropout > 0.0f) {
        fail("Dropout is not supported when flash attention is enabled. Received: dropout=" +
             std::to_string(c.dropout) + " with flash_attention=True");
    }
    if (c.sliding_window < 0) {
        fail("sliding_window must be a positive int (or 0 for None), got " +
             std::to_string(c.sliding_window));
    }
    impl_->config = c;
    impl_->kernels = &kernels;
    impl_->seed = c.seed ? *c.seed : fresh_seed();
    const char *log = std::getenv("MHAC_LOG");
    impl_->log = log && *log && std::string(log) != "0";
}

MultiHeadAttention::~MultiHeadAttention() = default;
MultiHeadAttention::MultiHeadAttention(MultiHeadAttention &&) noexcept = default;
MultiHeadAttention &MultiHeadAttention::operator=(MultiHeadAttention &&) noexcept = default;

const char *device_name(Device device) {
    switch (device) {
    case Device::cpu: return "cpu";
    case Device::cuda: return "cuda";
    case Device::automatic: return "automatic";
    }
    return "?";
}

CudaDeviceInfo cuda_device_info() {
    const detail::CudaDevice &d = detail::cuda_device();
    return {d.usable, d.reason, d.name, d.capability};
}

void MultiHeadAttention::add_device_kernels(const KernelSet &kernels) {
    if (std::string(kernels.device) == "cpu") {
        fail(std::string("kernel set '") + kernels.name + "' is a CPU set, not a device set");
    }
    impl_->device_kernels.push_back(&kernels);
}

namespace {

// The kernel set a call runs on: the CPU set, or the CUDA set with the
// highest compute capability the device runs.
const KernelSet &kernels_for(Device device, const KernelSet &cpu,
                             const std::vector<const KernelSet *> &cuda_sets) {
    if (device == Device::cpu) return cpu;
    const detail::CudaDevice &gpu = detail::cuda_device();
    const KernelSet *best = nullptr;
    std::string compiled;
    for (const KernelSet *k : cuda_sets) {
        compiled += (compiled.empty() ? "" : ", ") + std::to_string(k->cuda_capability);
        if (gpu.usable && k->cuda_capability <= gpu.capability &&
            (!best || k->cuda_capability > best->cuda_capability)) {
            best = k;
        }
    }
    if (best) return *best;
    if (device == Device::automatic) return cpu;
    if (cuda_sets.empty()) {
        fail("device cuda requested, but the layer has no CUDA kernel set (add_device_kernels)");
    }
    if (!gpu.usable)
        fail("device cuda requested, but there is no usable CUDA device: " + gpu.reason);
    fail("device cuda requested, but no CUDA kernel set runs on " + gpu.name +
         " (compute capability " + std::to_string(gpu.capability) + "; compiled: " + compiled +
         ")");
}

}  // namespace

const LayerConfig &MultiHeadAttention::config() const {
    return impl_->config;
}
const Selection &MultiHeadAttention::last_selection() const {
    return impl_->last;
}

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
    if (m.config.use_gate) require_shape("gate_kernel", w.gate_kernel, {eq, n, hv});
    if (m.config.use_bias) {
        if (m.config.use_gate) require_shape("gate_bias", w.gate_bias, {n, hv});
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
    if (m.config.use_gate) {
        m.wg = detail::pack_kernel(w.gate_kernel.data, eq, n * hv);
        m.bg = bias_or_zeros(w.gate_bias, m.config.use_bias, n * hv);
    }
    m.has_weights = true;
}

void MultiHeadAttention::Impl::plan(const TensorView &query, const TensorView &value,
                                    const TensorView *key, detail::AxesPlan &out) const {
    if (!has_weights) fail("call() before set_weights()");
    require_tensor("query", query, 3, "[batch, positions..., query features]", false);
    require_tensor("value", value, 3, "[batch, positions..., value features]", false);
    if (key) {
        require_tensor("key", *key, 3, "[batch, positions..., key features]", false);
        if (key->shape.size() != value.shape.size() ||
            !std::equal(value.shape.begin(), value.shape.end() - 1, key->shape.begin())) {
            fail(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                "Received: value shape " +
                shape_to_string(value.shape) + " and key shape " + shape_to_string(key->shape));
        }
    }
    if (query.shape[0] != value.shape[0]) {
        fail("query and value must have the same batch size. Received: query shape " +
             shape_to_string(query.shape) + " and value shape " + shape_to_string(value.shape));
    }
    if (query.shape.back() != eq) {
        fail("query's last dimension must match query_kernel [Eq, N, H] with Eq=" +
             std::to_string(eq) + "; got query shape " + shape_to_string(query.shape));
    }
    if (value.shape.back() != ev) {
        fail("value's last dimension must match value_kernel [Ev, N, Hv] with Ev=" +
             std::to_string(ev) + "; got value shape " + shape_to_string(value.shape));
    }
    const Shape &kshape = key ? key->shape : value.shape;
    if (kshape.back() != ek) {
        fail(std::string(key ? "key" : "value (used as key, since key was omitted)") +
             "'s last dimension must match key_kernel [Ek, N, H] with Ek=" + std::to_string(ek) +
             "; got shape " + shape_to_string(kshape));
    }
    detail::plan_axes(config.attention_axes, query.shape, value.shape, out);
}

Shape MultiHeadAttention::output_shape(const TensorView &query) const {
    return impl_->output_shape(query.shape);
}

Shape MultiHeadAttention::scores_shape(const TensorView &query, const TensorView &value) const {
    detail::AxesPlan p;
    impl_->plan(query, value, nullptr, p);
    Shape s;
    impl_->scores_shape(p, query.shape, value.shape, s);
    return s;
}

CallResult MultiHeadAttention::call(const TensorView &query, const TensorView &value,
                                    const CallOptions &options) {
    detail::AxesPlan p;
    impl_->plan(query, value, options.key, p);
    CallResult r;
    r.output.shape = impl_->output_shape(query.shape);
    r.output.data.resize(static_cast<size_t>(product(r.output.shape)));
    if (options.return_attention_scores) {
        impl_->scores_shape(p, query.shape, value.shape, r.scores.shape);
        r.scores.data.resize(static_cast<size_t>(product(r.scores.shape)));
    }
    call_into(query, value, options, r.output.data.data(),
              options.return_attention_scores ? r.scores.data.data() : nullptr);
    return r;
}

void MultiHeadAttention::call_into(const TensorView &query, const TensorView &value,
                                   const CallOptions &options, float *output, float *scores) {
    Impl &m = *impl_;
    // ---- Validate once, at the boundary.
    m.plan(query, value, options.key, m.axes);
    const detail::AxesPlan &axes = m.axes;
    const TensorView &key = options.key ? *options.key : value;
    if (!output) fail("output pointer is null");
    if (options.return_attention_scores && m.config.flash_attention) {
        fail(
            "Returning attention scores is not supported when flash attention is enabled "
            "(flash_attention=True).");
    }
    if (options.return_attention_scores && !scores) {
        fail("return_attention_scores is set but the scores pointer is null");
    }
    const int64_t B = axes.batch, T = axes.queries, S = axes.keys;
    const int64_t N = m.heads(), H = m.key_dim(), Hv = m.value_dim(), O = m.out_features;
    m.scores_shape(axes, query.shape, value.shape, m.scores);
    const Shape &scores_shape = m.scores;
    const detail::MaskPlan masks =
        detail::plan_masks(options, axes, query.shape, value.shape, scores_shape, m.heads(),
                           m.config.sliding_window, m.mask);
    const bool dropout = options.training && m.config.dropout > 0.0f;

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
    p.mask = masks.kind;
    const bool explicit_path =
        options.return_attention_scores || m.config.dropout > 0.0f || axes.rank != 3;
    p.keras_path = explicit_path ? KerasPath::explicit_scores : KerasPath::fused;
    p.needs_stages = m.config.use_gate;

    const KernelSet &set = kernels_for(options.device, *m.kernels, m.device_kernels);
    m.last = select_variant(set, p, options.force_config);
    const bool on_gpu = std::string(set.device) != "cpu";
    const ConfigKernels &cfg = *m.last.config;

    // ---- Inputs as [B, T|S, E] rows (a copy only for interleaved axes).
    const float *q_rows = query.data, *k_rows = key.data, *v_rows = value.data;
    float *out_rows = output;
    if (axes.needs_transpose) {
        q_rows = scratch(m.query_rows, B * T * m.eq);
        detail::gather_rows(query.data, query.shape, axes, const_cast<float *>(q_rows));
        v_rows = scratch(m.value_rows, B * S * m.ev);
        detail::gather_rows(value.data, value.shape, axes, const_cast<float *>(v_rows));
        k_rows = v_rows;
        if (options.key) {
            k_rows = scratch(m.key_rows, B * S * m.ek);
            detail::gather_rows(key.data, key.shape, axes, const_cast<float *>(k_rows));
        }
        out_rows = scratch(m.output_rows, B * T * O);
    }

    // Kernels without a dense mask still take one: a single "visible" byte.
    static const uint8_t kVisible = 1;
    std::optional<BufferRef<uint8_t, 4>> mask_buf;
    using Dims = std::initializer_list<std::array<int64_t, 2>>;
    if (masks.kind == MaskKind::dense) {
        mask_buf.emplace(masks.data, Dims{{S, 1},
                                          {T, S},
                                          {masks.heads, masks.head_stride},
                                          {masks.batch, masks.batch_stride}});
    } else {
        mask_buf.emplace(&kVisible, Dims{{1, 1}, {1, 1}, {1, 1}, {1, 1}});
    }

    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)));
    const detail::CallShapes shapes{&query.shape, &value.shape, &key.shape};

    auto run = [&](const char *name, auto fn, auto... args) {
        if (on_gpu) {
            detail::invoke_on_device(name, shapes, fn, args...);
        } else {
            invoke(name, shapes, fn, args...);
        }
    };

    auto packed = [](const detail::PackedKernel &k) {
        return dense<float, 3>(k.data.data(), {k.panels, k.in_features, detail::kPanelWidth});
    };

    if (m.last.path == Path::fused) {
        auto q_in = dense<float, 3>(q_rows, {B, T, m.eq});
        auto k_in = dense<float, 3>(k_rows, {B, S, m.ek});
        auto v_in = dense<float, 3>(v_rows, {B, S, m.ev});
        auto wq = packed(m.wq), wk = packed(m.wk), wv = packed(m.wv), wo = packed(m.wo);
        auto bq = dense<float, 2>(m.bq.data(), {N, H});
        auto bk = dense<float, 2>(m.bk.data(), {N, H});
        auto bv = dense<float, 2>(m.bv.data(), {N, Hv});
        auto bo = dense<float, 1>(m.bo.data(), {O});
        auto out = dense<float, 3>(out_rows, {B, T, O});
        const auto &kernel = cfg.fused[static_cast<int>(p.mask)];
        run(kernel.name, kernel.fn, q_in.get(), k_in.get(), v_in.get(), wq.get(), bq.get(),
            wk.get(), bk.get(), wv.get(), bv.get(), wo.get(), bo.get(), mask_buf->get(), scale,
            out.get());
    } else {
        // ---- Explicit path: every intermediate in layer scratch.
        float *qs = scratch(m.q, B * T * N * H);
        float *ks = scratch(m.k, B * S * N * H);
        float *vs = scratch(m.v, B * S * N * Hv);
        float *ls = scratch(m.logits, B * N * T * S);
        float *ps = scores ? scores : scratch(m.probs, B * N * T * S);
        float *cs = scratch(m.context, B * T * N * Hv);

        auto project = [&](ProjectionSlot slot, const float *in, int64_t rows, int64_t in_features,
                           const detail::PackedKernel &w, const std::vector<float> &bias,
                           float *dst) {
            auto in_b = dense<float, 2>(in, {rows, in_features});
            auto w_b = packed(w);
            auto bias_b = dense<float, 1>(bias.data(), {w.out_features});
            auto out_b = dense<float, 2>(dst, {rows, w.out_features});
            const auto &kernel = cfg.projection[slot];
            run(kernel.name, kernel.fn, in_b.get(), w_b.get(), bias_b.get(), out_b.get());
        };
        project(kQueryProjection, q_rows, B * T, m.eq, m.wq, m.bq, qs);
        project(kKeyProjection, k_rows, B * S, m.ek, m.wk, m.bk, ks);
        project(kValueProjection, v_rows, B * S, m.ev, m.wv, m.bv, vs);

        auto q_b = dense<float, 4>(qs, {B, T, N, H});
        auto k_b = dense<float, 4>(ks, {B, S, N, H});
        auto l_b = dense<float, 4>(ls, {B, N, T, S});
        const auto &scores_kernel = cfg.scores[static_cast<int>(p.keras_path)];
        run(scores_kernel.name, scores_kernel.fn, q_b.get(), k_b.get(), scale, l_b.get());

        auto p_b = dense<float, 4>(ps, {B, N, T, S});
        const auto &softmax =
            m.kernels->softmax
                .by_path_mask[static_cast<int>(p.keras_path)][static_cast<int>(p.mask)];
        run(softmax.name, softmax.fn, l_b.get(), mask_buf->get(), p_b.get());

        // Returned scores are the probabilities before dropout (Keras).
        const float *combine_probs = ps;
        if (dropout) {
            float *ds = scratch(m.dropped, B * N * T * S);
            detail::apply_dropout(ps, ds, B * N * T * S, m.config.dropout, m.seed,
                                  m.dropout_calls++);
            combine_probs = ds;
        }
        auto pd_b = dense<float, 4>(combine_probs, {B, N, T, S});
        auto v_b = dense<float, 4>(vs, {B, S, N, Hv});
        auto c_b = dense<float, 4>(cs, {B, T, N, Hv});
        run(cfg.combine.name, cfg.combine.fn, pd_b.get(), v_b.get(), c_b.get());

        if (m.config.use_gate) {
            // Keras 3.14+: context *= sigmoid(query . Wg + bg) before the
            // output projection.
            float *gs = scratch(m.gate, B * T * N * Hv);
            project(kGateProjection, q_rows, B * T, m.eq, m.wg, m.bg, gs);
            for (int64_t i = 0; i < B * T * N * Hv; i++) {
                cs[i] *= 1.0f / (1.0f + std::exp(-gs[i]));
            }
        }

        project(kOutputProjection, cs, B * T, N * Hv, m.wo, m.bo, out_rows);
    }
    if (axes.needs_transpose) {
        detail::scatter_rows(out_rows, m.output_shape(query.shape), O, axes, output);
    }
    if (m.log) {
        std::fprintf(stderr, "[mhac] %s on %s (MHAC_ISA=%s): %s\n", m.last.describe().c_str(),
                     isa_level_in_use().c_str(), forced_isa_level().c_str(), m.last.reason);
    }
}

}  // namespace mhac
