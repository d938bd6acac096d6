// The names and numbers the generators, the kernel planner and the runtime
// must agree on, kept once. Plain C++17 with no dependencies: the Halide
// generators (generators/), the planner (tools/plan/) and the runtime all
// include this header.
#pragma once

#include <string>

namespace mhac {

// Which mask a kernel applies. The numbering indexes ConfigKernels::fused
// and SoftmaxKernels; the names are the generators' `mask_kind` values.
enum class MaskKind : int {
    none = 0,    // every key visible
    causal = 1,  // key s visible from query t iff s <= t (top-left aligned)
    dense = 2,   // a uint8 tensor mask(s, t, n, b), broadcast over n and b
};
constexpr int kMaskKinds = 3;
constexpr const char *kMaskKindNames[kMaskKinds] = {"none", "causal", "dense"};

// Whose numbers a kernel reproduces: Keras 3.15 computes attention on two
// paths that differ in scale placement and masked rows (spec section 2.1).
// The tokens are the generators' `path` values.
enum class KerasPath : int {
    // ops.dot_product_attention: (Q.K) * c, masked logits = -0.7 * FLT_MAX, a
    // fully masked row is uniform over all keys.
    fused = 0,
    // einsum + Softmax layer: (Q * c).K, masked logits = -1e9, probabilities
    // of masked keys multiplied by 0 (a fully masked row becomes all zeros).
    explicit_scores = 1,
};
constexpr int kKerasPaths = 2;
constexpr const char *kKerasPathTokens[kKerasPaths] = {"fused", "explicit"};

// How the runtime executes a call: one fused kernel, or the staged kernels
// (projections, scores, softmax, [dropout], combine, projection).
enum class Path : int { fused = 0, staged = 1 };
constexpr const char *kPathNames[] = {"fused", "staged"};

// The staged path's projections, in registry order.
enum ProjectionSlot : int {
    kQueryProjection = 0,
    kKeyProjection,
    kValueProjection,
    kOutputProjection,
    kGateProjection,  // use_gate: query features -> N * value_dim
    kProjectionSlots
};
constexpr const char *kProjectionSlotNames[kProjectionSlots] = {"query", "key", "value", "output",
                                                                "gate"};

// Width of the column panels the runtime packs projection kernels into.
// Part of the kernel ABI: a packed kernel [E, J] is stored as w(ji, e, jo)
// with j = jo * kPanelWidth + ji, zero padded to whole panels, so one panel
// streams contiguously through a GEMM micro-tile.
constexpr int kPanelWidth = 16;

// Packed kernels hold a whole number of groups of kPanelGroup panels (the
// last ones zero), so a GEMM register tile may span up to kPanelGroup panels
// without reading past the buffer: AVX-512's tiles are two panels wide
// (schedules/cpu, gemm_panels).
constexpr int kPanelGroup = 2;

// Panels of a packed kernel with `out_features` columns.
constexpr long long packed_panels(long long out_features) {
    return (out_features + kPanelWidth * kPanelGroup - 1) / (kPanelWidth * kPanelGroup) *
           kPanelGroup;
}

inline const char *mask_kind_name(MaskKind kind) {
    const int i = static_cast<int>(kind);
    return i >= 0 && i < kMaskKinds ? kMaskKindNames[i] : "?";
}
inline const char *keras_path_token(KerasPath path) {
    const int i = static_cast<int>(path);
    return i >= 0 && i < kKerasPaths ? kKerasPathTokens[i] : "?";
}
inline const char *path_name(Path path) {
    return kPathNames[path == Path::fused ? 0 : 1];
}

// Parsers for the generator parameters; false for an unknown name.
inline bool parse_mask_kind(const std::string &name, MaskKind *kind) {
    for (int i = 0; i < kMaskKinds; i++) {
        if (name == kMaskKindNames[i]) return *kind = static_cast<MaskKind>(i), true;
    }
    return false;
}
inline bool parse_keras_path(const std::string &name, KerasPath *path) {
    for (int i = 0; i < kKerasPaths; i++) {
        if (name == kKerasPathTokens[i]) return *path = static_cast<KerasPath>(i), true;
    }
    return false;
}

// Kernel sets for a CUDA device carry its compute capability (86 for 8.6,
// from the Halide target's capability feature); CPU sets carry 0. The tag
// names the device in kernel symbols and variant names: "" for the CPU,
// "cuda86".
inline std::string device_tag(int compute_capability) {
    return compute_capability > 0 ? "cuda" + std::to_string(compute_capability) : std::string();
}

// A generated kernel's symbol (also its library name):
// mha_<stage>_f32_<stem>[__cuda<cap>], e.g. mha_fused_f32_bert_base_causal.
inline std::string kernel_symbol(const std::string &stage, const std::string &stem,
                                 int compute_capability) {
    std::string name = "mha_" + stage + "_f32_" + stem;
    if (compute_capability > 0) name += "__" + device_tag(compute_capability);
    return name;
}

// A variant's name: [cuda86:]config/path/mask/keras-path, e.g.
// "bert_base/fused/none/keras-fused". The one spelling of a variant, used by
// Selection::describe(), the benchmark names and (through identifier()) the
// variant sweep's test names.
inline std::string variant_name(const std::string &config, Path path, MaskKind mask,
                                KerasPath keras_path, int compute_capability) {
    std::string name = compute_capability > 0 ? device_tag(compute_capability) + ":" : "";
    return name + config + "/" + path_name(path) + "/" + mask_kind_name(mask) + "/keras-" +
           keras_path_token(keras_path);
}

// `name` with every character outside [A-Za-z0-9] replaced by '_': a
// variant name as a GoogleTest or file name.
inline std::string identifier(std::string name) {
    for (char &c : name) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) c = '_';
    }
    return name;
}

}  // namespace mhac
