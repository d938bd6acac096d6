// mhac: Keras MultiHeadAttention, compiled ahead of time.
//
// Shapes and weights follow Keras 3 (row-major float32):
//   query [B, T, Eq], value [B, S, Ev], key [B, S, Ek] (defaults to value)
//   query/key kernels [E, N, H] + biases [N, H]; value kernel [Ev, N, Hv] +
//   bias [N, Hv]; output kernel [N, Hv, O...] + bias [O...]
//   output [B, T, O...]; attention scores [B, N, T, S]
// Inputs of higher rank attend over `attention_axes` exactly as Keras does
// (docs/keras-semantics.md): scores are then [B, other axes..., N,
// query attention axes..., key attention axes...].
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mhac/kernel_set.h"

namespace mhac {

// Every failure (bad shapes, kernel errors, missing variants) is an Error
// whose message names the argument or kernel and the shapes involved.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape &shape);

// A read-only view of a row-major tensor the caller owns. Never modified.
template <typename T>
struct View {
    const T *data = nullptr;
    Shape shape;
};
using TensorView = View<float>;
using MaskView = View<uint8_t>;  // non-zero = may attend (Keras casts masks to bool)

// An owned row-major float32 tensor.
struct Tensor {
    Shape shape;
    std::vector<float> data;
    TensorView view() const { return {data.data(), shape}; }
};

// Mirrors keras.layers.MultiHeadAttention's constructor.
struct LayerConfig {
    int num_heads = 0;
    int key_dim = 0;
    int value_dim = 0;  // 0: same as key_dim (Keras's None)
    bool use_bias = true;
    Shape output_shape;               // empty: the query's last dim (Keras's None)
    std::vector<int> attention_axes;  // empty: Keras's default; negatives count from the input rank
    float dropout = 0.0f;
    int sliding_window = 0;  // 0: none (Keras's None); w: key j visible from query i iff |i-j| < w
    bool use_gate = false;   // Keras 3.14+: sigmoid gate on the attention output
    // Keras's flash_attention: true refuses dropout and returned scores, as
    // Keras does; mhac's fused kernel serves it (unset/false: automatic).
    bool flash_attention = false;
    // Seed of the dropout RNG (Keras's `seed`); unset: drawn at construction.
    std::optional<uint64_t> seed;
};

// Weights in Keras layout (layer.get_weights() order: query, key, [gate],
// value, output). Biases are ignored (and may be empty) when use_bias is
// false; the gate only with use_gate.
struct KerasWeights {
    TensorView query_kernel, query_bias;
    TensorView key_kernel, key_bias;
    TensorView value_kernel, value_bias;
    TensorView output_kernel, output_bias;
    TensorView gate_kernel, gate_bias;  // [Eq, N, Hv], [N, Hv]
};

// Where a call runs. CUDA needs a CUDA kernel set (add_device_kernels) and a
// usable device; `automatic` uses CUDA when both exist, else the CPU.
enum class Device { cpu, cuda, automatic };
const char *device_name(Device device);

// The CUDA device this process would use (probed once, by loading the
// driver library; no CUDA toolkit needed).
struct CudaDeviceInfo {
    bool usable = false;
    std::string reason;  // why not usable
    std::string name;
    int capability = 0;  // e.g. 90 for compute capability 9.0
};
CudaDeviceInfo cuda_device_info();

struct CallOptions {
    const TensorView *key = nullptr;  // Keras's key=None
    // Broadcast against the scores shape as Keras does: [T, S], [B, T, S],
    // [B, N, T, S], and the N-D forms for higher-rank inputs; 1s broadcast.
    const MaskView *attention_mask = nullptr;
    // Padding masks, as the Keras masks the tensors carry: query_mask [B, T]
    // (e.g. from Embedding(mask_zero=True) on the query), value_mask [B, S],
    // key_mask [B, S] (N-D inputs: the input shape without features). As in
    // Keras they are ANDed with the causal mask first, then with
    // attention_mask by trailing-axis broadcasting: against a [B, N, T, S]
    // attention_mask their batch axis meets the head axis
    // (docs/keras-semantics.md).
    const MaskView *query_mask = nullptr;
    const MaskView *value_mask = nullptr;
    const MaskView *key_mask = nullptr;
    bool use_causal_mask = false;
    bool return_attention_scores = false;
    bool training = false;  // applies dropout (when the layer has a rate)
    Device device = Device::cpu;
    // Testing and benchmarking: run this configuration of the kernel set
    // ("generic" or a row name) instead of select_variant's choice.
    std::string force_config;
    // Testing and benchmarking: run on this kernel set (a KernelSet::name
    // given to the layer, e.g. a CUDA set of kernel_sets::all()) instead of the one the
    // device would pick.
    std::string force_kernel_set;
};

struct CallResult {
    Tensor output;  // [B, T, O...]
    Tensor scores;  // [B, N, T, S] when return_attention_scores, else empty
};

// Keras's get_weights() order (query, key, [gate], value, output; kernel
// before bias; no biases when use_bias is false) to the runtime's weight
// views. Views point into `w`.
KerasWeights keras_weights_from(const std::vector<Tensor> &w, bool use_bias, bool use_gate = false);

// A fresh layer's weights, as Keras 3.15 initializes them: glorot_uniform
// kernels (fan_in = contracted axes, fan_out = output axes) and zero biases,
// from `seed`. In get_weights() order. (Same distribution as Keras, not the
// same numbers: Keras's RNG streams are backend specific.)
std::vector<Tensor> initialize_weights(const LayerConfig &config, int64_t query_features,
                                       int64_t value_features, int64_t key_features, uint64_t seed);

// One call's sizes, after validation: what dispatch decides on.
struct Problem {
    int64_t batch = 0, queries = 0, keys = 0;
    int64_t query_features = 0, key_features = 0, value_features = 0;
    int num_heads = 0, key_dim = 0, value_dim = 0;
    int64_t output_features = 0;  // product of output_shape
    bool use_bias = true;
    MaskKind mask = MaskKind::none;
    // Keras takes its explicit einsum path when scores are returned, the
    // layer has a dropout rate, or the inputs are not 3-D (spec 2.1).
    KerasPath keras_path = KerasPath::fused;
    // The gate is a step the fused kernel does not have: it needs the staged
    // kernels (and the gate projection) even on Keras's fused path.
    bool use_gate = false;
};

// What a call asks of dispatch besides its sizes.
struct DispatchRequest {
    Device device = Device::cpu;
    // Testing and benchmarking overrides; an unusable forced choice is an
    // Error, never a fallback. A forced set is taken whatever the device
    // (the call then fails if its device cannot run it).
    // Views (a call copies nothing): the strings must outlive select_variant.
    std::string_view force_config;      // a configuration name of the chosen set
    std::string_view force_kernel_set;  // a KernelSet::name among the layer's sets
};

// The staged path's kernels, in the order a call runs them: projections of
// query, key and value, scores, softmax, combine, [gate projection], output
// projection. Unused slots (the gate without use_gate) are null.
struct StagedKernels {
    NamedKernel<ProjectionFn> projection[kProjectionSlots];
    NamedKernel<ScoresFn> scores;
    NamedKernel<SoftmaxFn> softmax;
    NamedKernel<CombineFn> combine;
};

// Everything one call runs, chosen in one place (select_variant): the call
// sites only execute it.
struct Selection {
    const KernelSet *kernel_set = nullptr;  // whose device the call runs on
    const ConfigKernels *config = nullptr;
    Path path = Path::fused;
    KerasPath keras_path = KerasPath::fused;
    MaskKind mask = MaskKind::none;
    NamedKernel<FusedFn> fused{};  // Path::fused
    StagedKernels staged{};        // Path::staged
    const char *reason = "";       // why this one, for MHAC_LOG=1 and `mhac demo`
    bool on_device() const;        // the set runs on a CUDA device
    // variant_name() and every kernel that runs, e.g.
    // "bert_base/fused/none/keras-fused (mha_fused_f32_bert_base_none)".
    std::string describe() const;
};

// The one dispatch decision: which kernel set (the CPU set, or the CUDA set
// of the highest compute capability `gpu` runs, per request.device), which
// configuration and path of it, and every kernel `problem` runs.
Selection select_variant(const KernelSet &cpu_set,
                         const std::vector<const KernelSet *> &device_sets, const Problem &problem,
                         const DispatchRequest &request, const CudaDeviceInfo &gpu);
// The same within one given set (no device choice).
Selection select_variant(const KernelSet &kernels, const Problem &problem,
                         const std::string &force_config = {});

// x86 ISA levels. Kernels are compiled for avx512 / avx2 / sse41 behind one
// symbol and Halide picks the best the CPU runs; MHAC_ISA=avx2 (etc.) caps the
// choice for the whole process (read once, before the first kernel runs).
std::string forced_isa_level();  // "auto" unless MHAC_ISA is set
std::string isa_level_in_use();  // the level of the last kernel dispatched
bool cpu_supports_isa_level(const std::string &level);

// Threads: a layer runs one call at a time. call(), call_into(),
// set_weights() and add_device_kernels() entered from a second thread while
// the layer is busy throw Error (never a silent race on its scratch); the
// const members (output_shape, scores_shape, config) may run concurrently
// with each other. Different layers are independent: one layer per thread,
// any number of threads. last_selection() describes the calling thread's
// last call while no other thread calls the layer.
class MultiHeadAttention {
public:
    // `kernels` is a CPU kernel set (e.g. mhac::kernel_sets::default_set()).
    MultiHeadAttention(const LayerConfig &config, const KernelSet &kernels);
    // Every set of a list (e.g. mhac::kernel_sets::all()): its first CPU set
    // runs CPU calls, the others are added as device kernels.
    MultiHeadAttention(const LayerConfig &config, const std::vector<const KernelSet *> &sets);
    ~MultiHeadAttention();
    MultiHeadAttention(MultiHeadAttention &&) noexcept;
    MultiHeadAttention &operator=(MultiHeadAttention &&) noexcept;

    // Validates shapes against the config and packs the kernels into the
    // layout the compiled kernels read. Copies: the caller's arrays are not
    // referenced afterwards.
    void set_weights(const KerasWeights &weights);

    // Makes a device kernel set (a CUDA set) available to calls
    // with CallOptions::device cuda or automatic. Several CUDA sets may be
    // added; a call uses the highest compute capability the device runs.
    void add_device_kernels(const KernelSet &kernels);

    CallResult call(const TensorView &query, const TensorView &value,
                    const CallOptions &options = {});

    // The same, writing into caller-owned memory of the shapes call() would
    // return (scores may be null unless return_attention_scores). Allocates
    // nothing once the layer has seen a call of the same sizes.
    void call_into(const TensorView &query, const TensorView &value, const CallOptions &options,
                   float *output, float *scores = nullptr);

    // The shapes call() would produce for these inputs (validated).
    Shape output_shape(const TensorView &query) const;
    Shape scores_shape(const TensorView &query, const TensorView &value) const;

    const LayerConfig &config() const;
    const Selection &last_selection() const;

private:
    struct Impl;
    static void run_call(Impl &m, const TensorView &query, const TensorView &value,
                         const CallOptions &options, float *output, float *scores);
    std::unique_ptr<Impl> impl_;
};

}  // namespace mhac
