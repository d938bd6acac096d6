// The one dispatch decision (see mhac::select_variant in mha.h).
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "mhac/mha.h"

namespace mhac {

const char *keras_path_name(KerasPath path) {
    return path == KerasPath::fused ? "keras-fused" : "keras-explicit";
}

const char *mask_kind_name(MaskKind kind) {
    switch (kind) {
    case MaskKind::none: return "none";
    case MaskKind::causal: return "causal";
    case MaskKind::dense: return "dense";
    }
    return "?";
}

namespace {

// Why `config` cannot run `problem` on `path` (empty when it can). Dispatch
// asks this for every configuration on every call, so the common answers
// are built without allocating: only a mismatch's description is a string.
struct Unusable {
    const char *field = nullptr;  // first size that differs
    int64_t compiled = 0, wanted = 0;
    bool missing_fused_mask = false;
    MaskKind mask = MaskKind::none;

    explicit operator bool() const { return field || missing_fused_mask; }
    std::string describe() const {
        if (field) {
            return std::string(field) + " " + std::to_string(wanted) + " != compiled " +
                   std::to_string(compiled);
        }
        return std::string("no fused kernel for mask kind ") + mask_kind_name(mask);
    }
};

Unusable unusable(const ConfigKernels &config, const Problem &problem, Path path) {
    Unusable u;
    if (!config.is_generic()) {
        const ConfigSizes &c = config.sizes;
        const std::pair<const char *, std::pair<int64_t, int64_t>> sizes[] = {
            {"num_heads", {c.num_heads, problem.num_heads}},
            {"key_dim", {c.key_dim, problem.key_dim}},
            {"value_dim", {c.value_dim, problem.value_dim}},
            {"query features", {c.query_features, problem.query_features}},
            {"key features", {c.key_features, problem.key_features}},
            {"value features", {c.value_features, problem.value_features}},
            {"output features", {c.output_features, problem.output_features}},
            {"use_bias", {c.use_bias, problem.use_bias}},
        };
        for (const auto &[field, v] : sizes) {
            if (v.first != v.second) {
                u.field = field;
                u.compiled = v.first;
                u.wanted = v.second;
                return u;
            }
        }
    }
    if (path == Path::fused && !config.fused[static_cast<int>(problem.mask)]) {
        u.missing_fused_mask = true;
        u.mask = problem.mask;
    }
    return u;
}

}  // namespace

std::string Selection::describe() const {
    std::ostringstream s;
    if (kernel_set && std::string(kernel_set->device) != "cpu") {
        s << kernel_set->device << kernel_set->cuda_capability << ":";
    }
    s << (config ? config->name : "?") << "/" << (path == Path::fused ? "fused" : "staged") << "/"
      << mask_kind_name(mask) << "/" << keras_path_name(keras_path);
    if (config) {
        s << " (";
        if (path == Path::fused) {
            s << config->fused[static_cast<int>(mask)].name;
        } else {
            s << config->projection[kQueryProjection].name << ", "
              << config->scores[static_cast<int>(keras_path)].name << ", softmax, "
              << config->combine.name << ", " << config->projection[kOutputProjection].name;
        }
        s << ")";
    }
    return s.str();
}

Selection select_variant(const KernelSet &kernels, const Problem &problem,
                         const std::string &force_config) {
    Selection sel;
    sel.kernel_set = &kernels;
    sel.mask = problem.mask;
    // Keras takes its explicit einsum path whenever the probabilities are
    // observable (returned, or dropped out in training); else the fused one.
    sel.keras_path = problem.keras_path;
    sel.path = problem.keras_path == KerasPath::explicit_scores || problem.needs_stages
                   ? Path::staged
                   : Path::fused;

    const ConfigKernels *generic = nullptr;
    for (size_t i = 0; i < kernels.num_configs; i++) {
        const ConfigKernels &c = kernels.configs[i];
        if (!force_config.empty()) {
            if (force_config != c.name) continue;
            if (Unusable why = unusable(c, problem, sel.path)) {
                throw Error("forced configuration '" + force_config + "' of kernel set '" +
                            kernels.name + "' cannot run this call: " + why.describe());
            }
            sel.config = &c;
            sel.reason = "forced";
            return sel;
        }
        if (c.is_generic()) {
            generic = &c;
            continue;
        }
        if (!unusable(c, problem, sel.path)) {
            sel.config = &c;
            sel.reason = "specialized for these sizes";
            return sel;
        }
    }
    if (!force_config.empty()) {
        throw Error("forced configuration '" + force_config + "' is not in kernel set '" +
                    kernels.name + "'");
    }
    if (!generic || unusable(*generic, problem, sel.path)) {
        throw Error(std::string("kernel set '") + kernels.name +
                    "' has no kernel for this call (mask kind " + mask_kind_name(problem.mask) +
                    ")");
    }
    sel.config = generic;
    sel.reason = "no specialized configuration matches; generic kernels";
    return sel;
}

}  // namespace mhac
