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

// Whether a specialized configuration was compiled for exactly these sizes.
std::string mismatch(const ConfigSizes &c, const Problem &p) {
    std::ostringstream why;
    auto check = [&](const char *what, int64_t compiled, int64_t wanted) {
        if (compiled != wanted && why.tellp() == 0) {
            why << what << " " << wanted << " != compiled " << compiled;
        }
    };
    check("num_heads", c.num_heads, p.num_heads);
    check("key_dim", c.key_dim, p.key_dim);
    check("value_dim", c.value_dim, p.value_dim);
    check("query features", c.query_features, p.query_features);
    check("key features", c.key_features, p.key_features);
    check("value features", c.value_features, p.value_features);
    check("output features", c.output_features, p.output_features);
    check("use_bias", c.use_bias, p.use_bias);
    return why.str();
}

// Empty when `config` can run `problem` on `path`, else the reason.
std::string unusable(const ConfigKernels &config, const Problem &problem, Path path) {
    if (!config.is_generic()) {
        std::string why = mismatch(config.sizes, problem);
        if (!why.empty()) return why;
    }
    if (path == Path::fused && !config.fused[static_cast<int>(problem.mask)]) {
        return std::string("no fused kernel for mask kind ") + mask_kind_name(problem.mask);
    }
    return {};
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
            std::string why = unusable(c, problem, sel.path);
            if (!why.empty()) {
                throw Error("forced configuration '" + force_config + "' of kernel set '" +
                            kernels.name + "' cannot run this call: " + why);
            }
            sel.config = &c;
            sel.reason = "forced";
            return sel;
        }
        if (c.is_generic()) {
            generic = &c;
            continue;
        }
        if (unusable(c, problem, sel.path).empty()) {
            sel.config = &c;
            sel.reason = "specialized for these sizes";
            return sel;
        }
    }
    if (!force_config.empty()) {
        throw Error("forced configuration '" + force_config + "' is not in kernel set '" +
                    kernels.name + "'");
    }
    if (!generic || !unusable(*generic, problem, sel.path).empty()) {
        throw Error(std::string("kernel set '") + kernels.name +
                    "' has no kernel for this call (mask kind " + mask_kind_name(problem.mask) +
                    ")");
    }
    sel.config = generic;
    sel.reason = "no specialized configuration matches; generic kernels";
    return sel;
}

}  // namespace mhac
