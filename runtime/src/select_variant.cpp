// The one dispatch decision (see mhac::select_variant in mha.h).
#include <cstdlib>
#include <cstring>
#include <string>

#include "mhac/mha.h"

namespace mhac {

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

// The kernel set a call runs on: a forced set by name, the CPU set, or the
// CUDA set with the highest compute capability the device runs.
const KernelSet &choose_set(const KernelSet &cpu, const std::vector<const KernelSet *> &cuda_sets,
                            const DispatchRequest &request, const CudaDeviceInfo &gpu) {
    // Strings are built only for errors: dispatch runs on every call.
    auto names = [&](bool capabilities) {
        std::string s = capabilities ? "" : cpu.name;
        for (const KernelSet *k : cuda_sets) {
            s += (s.empty() ? "" : ", ") +
                 (capabilities ? std::to_string(k->compute_capability) : std::string(k->name));
        }
        return s;
    };
    if (!request.force_kernel_set.empty()) {
        if (request.force_kernel_set == cpu.name) return cpu;
        for (const KernelSet *k : cuda_sets) {
            if (request.force_kernel_set == k->name) return *k;
        }
        throw Error("forced kernel set '" + std::string(request.force_kernel_set) +
                    "' is not one of the layer's (" + names(false) + ")");
    }
    if (request.device == Device::cpu) return cpu;
    const KernelSet *best = nullptr;
    for (const KernelSet *k : cuda_sets) {
        if (gpu.usable && k->compute_capability <= gpu.capability &&
            (!best || k->compute_capability > best->compute_capability)) {
            best = k;
        }
    }
    if (best) return *best;
    if (request.device == Device::automatic) return cpu;
    if (cuda_sets.empty()) {
        throw Error(
            "device cuda requested, but the layer has no CUDA kernel set (add_device_kernels)");
    }
    if (!gpu.usable)
        throw Error("device cuda requested, but there is no usable CUDA device: " + gpu.reason);
    throw Error("device cuda requested, but no CUDA kernel set runs on " + gpu.name +
                " (compute capability " + std::to_string(gpu.capability) +
                "; compiled: " + names(true) + ")");
}

// Which configuration of `kernels` runs `problem` on `path`.
const ConfigKernels &choose_config(const KernelSet &kernels, const Problem &problem, Path path,
                                   std::string_view force_config, const char **reason) {
    const ConfigKernels *generic = nullptr;
    for (size_t i = 0; i < kernels.num_configs; i++) {
        const ConfigKernels &c = kernels.configs[i];
        if (!force_config.empty()) {
            if (force_config != c.name) continue;
            if (Unusable why = unusable(c, problem, path)) {
                throw Error("forced configuration '" + std::string(force_config) +
                            "' of kernel set '" + kernels.name +
                            "' cannot run this call: " + why.describe());
            }
            *reason = "forced";
            return c;
        }
        if (c.is_generic()) {
            generic = &c;
            continue;
        }
        if (!unusable(c, problem, path)) {
            *reason = "specialized for these sizes";
            return c;
        }
    }
    if (!force_config.empty()) {
        throw Error("forced configuration '" + std::string(force_config) +
                    "' is not in kernel set '" + kernels.name + "'");
    }
    if (!generic || unusable(*generic, problem, path)) {
        throw Error(std::string("kernel set '") + kernels.name +
                    "' has no kernel for this call (mask kind " + mask_kind_name(problem.mask) +
                    ")");
    }
    *reason = "no specialized configuration matches; generic kernels";
    return *generic;
}

// Every kernel the chosen path runs, all from `set`.
void choose_kernels(const KernelSet &set, const ConfigKernels &config, const Problem &problem,
                    Selection &sel) {
    const int mask = static_cast<int>(problem.mask), path = static_cast<int>(problem.keras_path);
    if (sel.path == Path::fused) {
        sel.fused = config.fused[mask];
        for (size_t i = 0; i < config.num_fused_buckets; i++) {
            const FusedBucket &b = config.fused_buckets[i];
            if (b.mask == problem.mask && b.holds(problem.queries, problem.keys) && b.kernel) {
                sel.fused = b.kernel;
                break;
            }
        }
        return;
    }
    for (int slot = 0; slot < kProjectionSlots; slot++) {
        if (slot != kGateProjection || problem.use_gate)
            sel.staged.projection[slot] = config.projection[slot];
    }
    sel.staged.scores = config.scores[path];
    sel.staged.softmax = set.softmax.by_path_mask[path][mask];
    sel.staged.combine = config.combine;
}

}  // namespace

bool Selection::on_device() const {
    return kernel_set && std::strcmp(kernel_set->device, "cpu") != 0;
}

std::string Selection::describe() const {
    if (!config || !kernel_set) return "(nothing selected)";
    std::string s =
        variant_name(config->name, path, mask, keras_path, kernel_set->compute_capability) + " (";
    if (path == Path::fused) return s + fused.name + ")";
    const StagedKernels &k = staged;
    const char *order[] = {k.projection[kQueryProjection].name,
                           k.projection[kKeyProjection].name,
                           k.projection[kValueProjection].name,
                           k.scores.name,
                           k.softmax.name,
                           k.combine.name,
                           k.projection[kGateProjection].name,
                           k.projection[kOutputProjection].name};
    bool first = true;
    for (const char *name : order) {
        if (!name) continue;
        s += (first ? "" : ", ") + std::string(name);
        first = false;
    }
    return s + ")";
}

Selection select_variant(const KernelSet &cpu_set,
                         const std::vector<const KernelSet *> &device_sets, const Problem &problem,
                         const DispatchRequest &request, const CudaDeviceInfo &gpu) {
    Selection sel;
    sel.kernel_set = &choose_set(cpu_set, device_sets, request, gpu);
    sel.mask = problem.mask;
    // Keras takes its explicit einsum path whenever the probabilities are
    // observable (returned, or dropped out in training); else the fused one.
    sel.keras_path = problem.keras_path;
    sel.path = problem.keras_path == KerasPath::explicit_scores || problem.use_gate ? Path::staged
                                                                                    : Path::fused;
    sel.config =
        &choose_config(*sel.kernel_set, problem, sel.path, request.force_config, &sel.reason);
    choose_kernels(*sel.kernel_set, *sel.config, problem, sel);
    return sel;
}

Selection select_variant(const KernelSet &kernels, const Problem &problem,
                         const std::string &force_config) {
    DispatchRequest request;
    request.force_config = force_config;
    request.force_kernel_set = kernels.name;
    return select_variant(kernels, {}, problem, request, CudaDeviceInfo{});
}

}  // namespace mhac
