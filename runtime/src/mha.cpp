// MultiHeadAttention: construction, weight packing, and a call's sequence:
// validate (validate.cpp), select (select_variant.cpp), execute
// (execute_*.cpp), scatter.
#include "mhac/mha.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "cuda_device.h"
#include "execute.h"
#include "halide_glue.h"
#include "layer.h"
#include "validate.h"

namespace mhac {

namespace {

using detail::fail;
using detail::require_shape;
using detail::require_tensor;

detail::KernelFloats bias_or_zeros(const TensorView &bias, bool use_bias, int64_t n) {
    if (!use_bias) return detail::KernelFloats(static_cast<size_t>(n), 0.0f);
    return detail::KernelFloats(bias.data, bias.data + n);
}

uint64_t fresh_seed() {
    return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
}

LayerConfig validated(const LayerConfig &config) {
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
    return c;
}

// One call at a time per layer (mha.h's thread contract): a second thread
// entering while the layer is busy gets an Error instead of sharing scratch.
class ExclusiveUse {
public:
    ExclusiveUse(std::atomic<bool> &busy, const char *what) : busy_(busy) {
        if (busy_.exchange(true, std::memory_order_acquire)) {
            fail(std::string("MultiHeadAttention::") + what +
                 " while another thread is using the same layer: a layer runs one call at a "
                 "time (use one layer per thread; layers may share weights' source arrays)");
        }
    }
    ~ExclusiveUse() { busy_.store(false, std::memory_order_release); }
    ExclusiveUse(const ExclusiveUse &) = delete;
    ExclusiveUse &operator=(const ExclusiveUse &) = delete;

private:
    std::atomic<bool> &busy_;
};

const KernelSet &first_cpu_set(const std::vector<const KernelSet *> &sets) {
    for (const KernelSet *k : sets) {
        if (std::strcmp(k->device, "cpu") == 0) return *k;
    }
    fail("the kernel set list holds no CPU kernel set");
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(const LayerConfig &config, const KernelSet &kernels)
    : impl_(std::make_unique<Impl>()) {
    detail::install_halide_hooks();
    impl_->config = validated(config);
    impl_->kernels = &kernels;
    impl_->dropout.seed = impl_->config.seed ? *impl_->config.seed : fresh_seed();
    const char *log = std::getenv("MHAC_LOG");
    impl_->log = log && *log && std::string(log) != "0";
}

MultiHeadAttention::MultiHeadAttention(const LayerConfig &config,
                                       const std::vector<const KernelSet *> &sets)
    : MultiHeadAttention(config, first_cpu_set(sets)) {
    for (const KernelSet *k : sets) {
        if (k != impl_->kernels) add_device_kernels(*k);
    }
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
    return detail::cuda_device();
}

void MultiHeadAttention::add_device_kernels(const KernelSet &kernels) {
    ExclusiveUse use(impl_->busy, "add_device_kernels()");
    if (std::string(kernels.device) == "cpu") {
        fail(std::string("kernel set '") + kernels.name + "' is a CPU set, not a device set");
    }
    impl_->device_kernels.push_back(&kernels);
}

const LayerConfig &MultiHeadAttention::config() const {
    return impl_->config;
}
const Selection &MultiHeadAttention::last_selection() const {
    return impl_->last;
}

void MultiHeadAttention::set_weights(const KerasWeights &w) {
    ExclusiveUse use(impl_->busy, "set_weights()");
    const LayerConfig &c = impl_->config;
    const int64_t n = c.num_heads, h = c.key_dim, hv = c.value_dim;
    require_tensor("query_kernel", w.query_kernel, 3, "[Eq, num_heads, key_dim]");
    require_tensor("key_kernel", w.key_kernel, 3, "[Ek, num_heads, key_dim]");
    require_tensor("value_kernel", w.value_kernel, 3, "[Ev, num_heads, value_dim]");
    const int64_t eq = w.query_kernel.shape[0], ek = w.key_kernel.shape[0],
                  ev = w.value_kernel.shape[0];
    require_shape("query_kernel", w.query_kernel, {eq, n, h});
    require_shape("key_kernel", w.key_kernel, {ek, n, h});
    require_shape("value_kernel", w.value_kernel, {ev, n, hv});
    Shape tail = c.output_shape.empty() ? Shape{eq} : c.output_shape;
    Shape wo_shape{n, hv};
    wo_shape.insert(wo_shape.end(), tail.begin(), tail.end());
    require_shape("output_kernel", w.output_kernel, wo_shape);
    if (c.use_gate) require_shape("gate_kernel", w.gate_kernel, {eq, n, hv});
    if (c.use_bias) {
        if (c.use_gate) require_shape("gate_bias", w.gate_bias, {n, hv});
        require_shape("query_bias", w.query_bias, {n, h});
        require_shape("key_bias", w.key_bias, {n, h});
        require_shape("value_bias", w.value_bias, {n, hv});
        require_shape("output_bias", w.output_bias, tail);
    }
    const int64_t o = detail::checked_element_count("output_shape", tail);
    // The old weights' descriptors (and device copies) go before their memory.
    impl_->weight_buffers.clear();
    detail::LayerWeights &m = impl_->weights;
    m.query_features = eq;
    m.key_features = ek;
    m.value_features = ev;
    m.output_features = o;
    m.output_tail = tail;
    m.query = detail::pack_kernel(w.query_kernel.data, eq, n * h);
    m.key = detail::pack_kernel(w.key_kernel.data, ek, n * h);
    m.value = detail::pack_kernel(w.value_kernel.data, ev, n * hv);
    m.output = detail::pack_kernel(w.output_kernel.data, n * hv, o);
    m.query_bias = bias_or_zeros(w.query_bias, c.use_bias, n * h);
    m.key_bias = bias_or_zeros(w.key_bias, c.use_bias, n * h);
    m.value_bias = bias_or_zeros(w.value_bias, c.use_bias, n * hv);
    m.output_bias = bias_or_zeros(w.output_bias, c.use_bias, o);
    if (c.use_gate) {
        m.gate = detail::pack_kernel(w.gate_kernel.data, eq, n * hv);
        m.gate_bias = bias_or_zeros(w.gate_bias, c.use_bias, n * hv);
    }
    m.set = true;
}

Shape MultiHeadAttention::output_shape(const TensorView &query) const {
    return detail::output_shape(impl_->weights, query.shape);
}

Shape MultiHeadAttention::scores_shape(const TensorView &query, const TensorView &value) const {
    detail::AxesPlan axes;
    detail::validate_inputs(impl_->config, impl_->weights, query, value, nullptr, axes);
    Shape s;
    detail::scores_shape(axes, impl_->config.num_heads, query.shape, value.shape, s);
    return s;
}

CallResult MultiHeadAttention::call(const TensorView &query, const TensorView &value,
                                    const CallOptions &options) {
    Impl &m = *impl_;
    ExclusiveUse use(m.busy, "call()");
    detail::AxesPlan axes;
    detail::validate_inputs(m.config, m.weights, query, value, options.key, axes);
    CallResult r;
    r.output.shape = detail::output_shape(m.weights, query.shape);
    r.output.data.resize(
        static_cast<size_t>(detail::checked_element_count("output", r.output.shape)));
    if (options.return_attention_scores) {
        detail::scores_shape(axes, m.config.num_heads, query.shape, value.shape, r.scores.shape);
        r.scores.data.resize(
            static_cast<size_t>(detail::checked_element_count("scores", r.scores.shape)));
    }
    run_call(m, query, value, options, r.output.data.data(),
             options.return_attention_scores ? r.scores.data.data() : nullptr);
    return r;
}

void MultiHeadAttention::call_into(const TensorView &query, const TensorView &value,
                                   const CallOptions &options, float *output, float *scores) {
    ExclusiveUse use(impl_->busy, "call_into()");
    run_call(*impl_, query, value, options, output, scores);
}

void MultiHeadAttention::run_call(Impl &m, const TensorView &query, const TensorView &value,
                                  const CallOptions &options, float *output, float *scores) {
    const detail::CallPlan plan = detail::validate_call(m.config, m.weights, query, value, options,
                                                        output, scores, m.scratch);
    DispatchRequest request;
    request.device = options.device;
    request.force_config = options.force_config;
    request.force_kernel_set = options.force_kernel_set;
    const CudaDeviceInfo &gpu = detail::cuda_device();
    m.last = select_variant(*m.kernels, m.device_kernels, plan.problem, request, gpu);
    if (m.last.on_device() && !gpu.usable) {
        fail(std::string("kernel set '") + m.last.kernel_set->name +
             "' needs a CUDA device, but there is no usable one: " + gpu.reason);
    }
    if (m.last.path == Path::fused) {
        detail::execute_fused(plan, m.last, m.weights, m.weight_buffers);
    } else {
        detail::execute_staged(plan, m.last, m.config, m.weights, m.weight_buffers, m.scratch,
                               m.dropout);
    }
    if (plan.axes->needs_transpose) {
        detail::scatter_rows(plan.output_rows, detail::output_shape(m.weights, query.shape),
                             plan.problem.output_features, *plan.axes, output);
    }
    if (m.log) {
        std::fprintf(stderr, "[mhac] %s on %s (MHAC_ISA=%s): %s\n", m.last.describe().c_str(),
                     isa_level_in_use().c_str(), forced_isa_level().c_str(), m.last.reason);
    }
}

}  // namespace mhac
