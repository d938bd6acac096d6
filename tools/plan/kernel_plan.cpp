#include "kernel_plan.h"

#include <algorithm>
#include <sstream>

#include "mhac/kernel_abi.h"

namespace mhac::plan {

namespace {

int parse_size(const std::string &row, const std::string &field, const std::string &text) {
    size_t used = 0;
    int v = -1;
    try {
        v = std::stoi(text, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used != text.size() || v < 0) {
        throw PlanError("row '" + row + "': " + field + " must be a non-negative integer, got '" +
                        text + "'");
    }
    return v;
}

// The generator parameters a row sets itself; a stage knob may not repeat them.
const char *const kStructuralParams[] = {
    "num_heads",       "key_dim",  "value_dim", "query_features", "key_features", "value_features",
    "output_features", "use_bias", "mask_kind", "path",           "in_features",  "out_features"};
const char *const kKnobStages[] = {"fused", "projection", "scores", "combine"};

}  // namespace

ConfigRow::Param parse_row_param(const std::string &row, const std::string &token) {
    const size_t colon = token.find(':'), eq = token.find('=');
    if (colon == std::string::npos || eq == std::string::npos || eq < colon + 2 ||
        eq + 1 == token.size()) {
        throw PlanError("row '" + row + "': extra parameter '" + token +
                        "' is not stage:key=value");
    }
    ConfigRow::Param p{token.substr(0, colon), token.substr(colon + 1)};
    if (std::find(std::begin(kKnobStages), std::end(kKnobStages), p.stage) ==
        std::end(kKnobStages)) {
        throw PlanError("row '" + row + "': unknown stage '" + p.stage + "' in '" + token +
                        "' (fused, projection, scores, combine)");
    }
    const std::string key = token.substr(colon + 1, eq - colon - 1);
    if (std::find(std::begin(kStructuralParams), std::end(kStructuralParams), key) !=
        std::end(kStructuralParams)) {
        throw PlanError("row '" + row + "': '" + key + "' is set by the row's columns, not by '" +
                        token + "'");
    }
    return p;
}

namespace {

// A C string literal of `text`.
std::string c_string(const std::string &text) {
    std::string s = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') s += '\\';
        s += c;
    }
    return s + "\"";
}

// Collects kernels once each, in order, each looked up in the tuned
// database once; the same name twice must mean the same kernel.
class KernelList {
public:
    KernelList(const KernelPlan &plan, const TunedInputs &tuned) : plan_(plan), tuned_(tuned) {}

    // Plans kernel `stage`/`stem` and returns its registry initializer.
    // A bucket kernel (tuned::kBuckets) takes that bucket's entries.
    std::string add(const std::string &stage, const std::string &stem, const std::string &generator,
                    std::vector<std::string> params, const std::string &bucket = "all") {
        const std::string name = kernel_symbol(stage, stem, plan_.compute_capability);
        for (size_t i = 0; i < kernels_.size(); i++) {
            if (kernels_[i].name != name) continue;
            if (row_params_[i] != params) {
                throw PlanError("kernel " + name + " is planned twice with different parameters: " +
                                join(row_params_[i]) + " and " + join(params));
            }
            return entry(kernels_[i]);
        }
        row_params_.push_back(params);
        PlannedKernel k{name, generator, std::move(params), {}, "hand defaults", bucket};
        look_up(k, bucket, bucket == "all");
        kernels_.push_back(std::move(k));
        return entry(kernels_.back());
    }
    std::vector<PlannedKernel> &kernels() { return kernels_; }
    std::vector<std::string> &warnings() { return warnings_; }
    bool cpu() const { return plan_.compute_capability == 0; }

    // Whether `bucket`'s entries give the kernel other knobs than its "all"
    // entries (then it gets a kernel of its own). Warns about that bucket's
    // unusable entries once, whatever the answer.
    bool bucket_differs(const std::string &name, const std::string &generator,
                        const std::vector<std::string> &params, const std::string &bucket) {
        if (!tuned_.db) return false;
        const tuned::Lookup all = find(generator, params, "all");
        const tuned::Lookup mine = find(generator, params, bucket);
        for (auto &w : mine.warnings) warnings_.push_back(name + ": " + w);
        return all.tuned_param != mine.tuned_param;
    }

    static std::string join(const std::vector<std::string> &v) {
        std::string s;
        for (const auto &x : v) s += (s.empty() ? "" : " ") + x;
        return s;
    }

private:
    tuned::Lookup find(const std::string &generator, const std::vector<std::string> &params,
                       const std::string &bucket) const {
        const bool takes_tuned =
            std::find(std::begin(tuned::kTunedGenerators), std::end(tuned::kTunedGenerators),
                      generator) != std::end(tuned::kTunedGenerators);
        tuned::Lookup found;
        found.used.assign(plan_.targets.size(), nullptr);
        if (tuned_.db && takes_tuned) {
            try {
                found =
                    tuned::lookup(*tuned_.db, generator, tuned::kernel_key_params(params),
                                  plan_.targets, tuned_.source_hash, tuned_.halide_version, bucket);
            } catch (const tuned::TunedParamError &e) {
                throw PlanError(e.what());
            }
        }
        return found;
    }

    void look_up(PlannedKernel &k, const std::string &bucket, bool warn) {
        const tuned::Lookup found = find(k.generator, k.params, bucket);
        if (!found.tuned_param.empty()) k.params.push_back("tuned=" + found.tuned_param);
        for (size_t i = 0; i < plan_.targets.size(); i++) {
            k.tuning_by_level.push_back(tuned::describe_level(plan_.targets[i], found.used[i]));
        }
        k.tuning = tuned::describe_tuning(plan_.targets, found);
        if (warn) {
            for (auto &w : found.warnings) warnings_.push_back(k.name + ": " + w);
        }
    }

    static std::string entry(const PlannedKernel &k) {
        return "{\"" + k.name + "\", " + k.name + ", " + c_string(k.tuning) + "}, ";
    }

    const KernelPlan &plan_;
    const TunedInputs &tuned_;
    std::vector<PlannedKernel> kernels_;
    std::vector<std::vector<std::string>> row_params_;  // before the database's knobs
    std::vector<std::string> warnings_;
};

std::vector<std::string> with_knobs(std::vector<std::string> params, const ConfigRow &row,
                                    const char *stage) {
    for (const auto &p : row.params) {
        if (p.stage == stage) params.push_back(p.key_value);
    }
    return params;
}

// One row's kernels and its ConfigKernels initializer; its bucket kernels'
// array (if any) goes to `bucket_arrays`.
std::string plan_row(const ConfigRow &c, KernelList &kernels, std::string *bucket_arrays) {
    const int jq = c.num_heads * c.key_dim, jv = c.num_heads * c.value_dim;
    const std::string bias = c.use_bias ? "true" : "false";
    const bool generic = c.num_heads == 0;
    auto num = [](const char *key, int v) { return std::string(key) + "=" + std::to_string(v); };

    std::ostringstream proj, scores, fused, buckets;
    int num_buckets = 0;
    // Registry order: ProjectionSlot (query, key, value, output, gate).
    const int slots[kProjectionSlots][2] = {{c.query_features, jq},
                                            {c.key_features, jq},
                                            {c.value_features, jv},
                                            {jv, c.output_features},
                                            {c.query_features, jv}};
    for (const auto &s : slots) {
        std::string stem = s[0] == 0 ? std::string("generic")
                                     : "e" + std::to_string(s[0]) + "_j" + std::to_string(s[1]);
        if (!c.use_bias) stem += "_nobias";
        proj << (kernels.add(
            "projection", stem, "mhac_projection",
            with_knobs({num("in_features", s[0]), num("out_features", s[1]), "use_bias=" + bias}, c,
                       "projection")));
    }
    const std::string heads_stem =
        generic ? std::string("generic")
                : "n" + std::to_string(c.num_heads) + "_h" + std::to_string(c.key_dim);
    for (const char *path : kKerasPathTokens) {
        scores << (kernels.add("scores", heads_stem + "_" + path, "mhac_scores",
                               with_knobs({num("num_heads", c.num_heads), num("key_dim", c.key_dim),
                                           std::string("path=") + path},
                                          c, "scores")));
    }
    const std::string combine = kernels.add(
        "combine",
        generic ? std::string("generic")
                : "n" + std::to_string(c.num_heads) + "_hv" + std::to_string(c.value_dim),
        "mhac_combine",
        with_knobs({num("num_heads", c.num_heads), num("value_dim", c.value_dim)}, c, "combine"));
    for (const char *mask : kMaskKindNames) {
        if (std::find(c.masks.begin(), c.masks.end(), mask) == c.masks.end()) {
            fused << "{nullptr, nullptr}, ";
            continue;
        }
        const std::vector<std::string> params = with_knobs(
            {num("num_heads", c.num_heads), num("key_dim", c.key_dim),
             num("value_dim", c.value_dim), num("query_features", c.query_features),
             num("key_features", c.key_features), num("value_features", c.value_features),
             num("output_features", c.output_features), "use_bias=" + bias,
             std::string("mask_kind=") + mask},
            c, "fused");
        const std::string stem = c.name + "_" + mask;
        fused << kernels.add("fused", stem, "mhac_fused", params);
        for (const tuned::Bucket &b : tuned::kBuckets) {
            if (!b.has_mask(mask)) continue;
            std::vector<std::string> bucket_params = params;
            if (kernels.cpu()) {
                for (const std::string &knob : split_list(b.cpu_default_knobs, ','))
                    bucket_params.push_back(knob);
            }
            const bool differs = kernels.bucket_differs(kernel_symbol("fused", stem, 0),
                                                        "mhac_fused", params, b.name);
            if (!differs && bucket_params == params) continue;
            buckets << "    {MaskKind::" << mask << ", \"" << b.name << "\", " << b.min_queries
                    << ", " << b.max_queries << ", " << b.min_keys << ", " << b.max_keys << ", "
                    << kernels.add("fused", stem + "_" + b.name, "mhac_fused", bucket_params,
                                   b.name)
                    << "},\n";
            num_buckets++;
        }
    }
    std::string bucket_ref;
    if (num_buckets > 0) {
        const std::string array = "kBuckets_" + identifier(c.name);
        *bucket_arrays += "// " + c.name + "'s fused kernels per shape bucket (tuned::kBuckets)\n" +
                          "const FusedBucket " + array + "[] = {\n" + buckets.str() + "};\n\n";
        bucket_ref = "\n     " + array + ", " + std::to_string(num_buckets);
    }
    std::ostringstream row;
    row << "    {\"" << c.name << "\", {" << c.num_heads << ", " << c.key_dim << ", " << c.value_dim
        << ", " << c.query_features << ", " << c.key_features << ", " << c.value_features << ", "
        << c.output_features << ", " << bias << "},\n"
        << "     {" << fused.str() << "},\n"
        << "     {" << proj.str() << "},\n"
        << "     {" << scores.str() << "},\n"
        << "     " << combine << bucket_ref << "},\n";
    return row.str();
}

const char *const kGeneratedBy = "// Generated by the kernel planner (tools/plan); do not edit.\n";

}  // namespace

std::vector<std::string> split_list(const std::string &text, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, sep);) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

ConfigRow parse_row(const std::string &text) {
    std::istringstream in(text);
    std::vector<std::string> f;
    for (std::string t; in >> t;) f.push_back(t);
    if (f.size() < 10) {
        throw PlanError("row '" + text + "' needs at least 10 fields (name heads key_dim " +
                        "value_dim Eq Ek Ev O bias masks), has " + std::to_string(f.size()));
    }
    ConfigRow r;
    r.name = f[0];
    int *sizes[] = {&r.num_heads,    &r.key_dim,        &r.value_dim,      &r.query_features,
                    &r.key_features, &r.value_features, &r.output_features};
    const char *fields[] = {"num_heads",    "key_dim",        "value_dim",      "query_features",
                            "key_features", "value_features", "output_features"};
    for (int i = 0; i < 7; i++) *sizes[i] = parse_size(text, fields[i], f[1 + i]);
    if (f[8] != "0" && f[8] != "1") {
        throw PlanError("row '" + text + "': use_bias must be 0 or 1, got '" + f[8] + "'");
    }
    r.use_bias = f[8] == "1";
    r.masks = split_list(f[9], ',');
    for (size_t i = 10; i < f.size(); i++) r.params.push_back(parse_row_param(text, f[i]));
    return r;
}

ConfigRow generic_row() {
    ConfigRow r;
    r.name = "generic";
    r.masks.assign(std::begin(kMaskKindNames), std::end(kMaskKindNames));
    return r;
}

namespace {

void check_row(const ConfigRow &c, bool generic) {
    const int sizes[] = {c.num_heads,    c.key_dim,        c.value_dim,      c.query_features,
                         c.key_features, c.value_features, c.output_features};
    for (int v : sizes) {
        if (generic ? v != 0 : v <= 0) {
            throw PlanError("configuration '" + c.name + "': sizes must be positive");
        }
    }
    if (c.name.empty() || identifier(c.name) != c.name) {
        throw PlanError("configuration name '" + c.name + "' must be letters, digits and _");
    }
    for (const auto &m : c.masks) {
        MaskKind kind;
        if (!parse_mask_kind(m, &kind)) {
            throw PlanError("configuration '" + c.name + "': unknown mask kind '" + m + "'");
        }
    }
}

// The device of a set, from its baseline (last) target: Halide's
// multi-target dispatch checks CPU features only, so a CUDA set holds CUDA
// targets alone and the runtime picks the device.
void plan_device(KernelPlan &plan) {
    const std::string &baseline = plan.targets.back();
    const std::vector<std::string> parts = split_list(baseline, '-');
    if (parts.size() < 3) {
        throw PlanError("target '" + baseline + "' is not arch-bits-os[-features]");
    }
    plan.runtime_target = parts[0] + "-" + parts[1] + "-" + parts[2];
    plan.device = "cpu";
    for (const auto &feature : parts) {
        if (feature == "cuda") plan.device = "cuda";
        const std::string cap = "cuda_capability_";
        if (feature.rfind(cap, 0) == 0) {
            plan.compute_capability =
                parse_size(baseline, "cuda capability", feature.substr(cap.size()));
        }
    }
    if (plan.device == "cuda") {
        // Halide's default CUDA capability is 2.0.
        if (plan.compute_capability == 0) plan.compute_capability = 20;
        plan.runtime_target += "-cuda";
    }
}

}  // namespace

KernelPlan plan_kernel_set(const std::string &set_name, const std::vector<std::string> &targets,
                           const std::vector<ConfigRow> &rows, const TunedInputs &tuned) {
    if (targets.empty()) throw PlanError("kernel set '" + set_name + "': no targets given");
    if (set_name.empty() || identifier(set_name) != set_name) {
        throw PlanError("kernel set name '" + set_name + "' must be letters, digits and _");
    }
    KernelPlan plan;
    plan.set_name = set_name;
    plan.targets = targets;
    plan_device(plan);
    KernelList kernels(plan, tuned);

    std::ostringstream softmax;
    for (const char *path : kKerasPathTokens) {
        softmax << "    {";
        for (const char *mask : kMaskKindNames) {
            softmax << (kernels.add(
                "softmax", std::string(mask) + "_" + path, "mhac_masked_softmax",
                {std::string("mask_kind=") + mask, std::string("path=") + path}));
        }
        softmax << "},\n";
    }
    std::vector<ConfigRow> all{generic_row()};
    all.insert(all.end(), rows.begin(), rows.end());
    std::ostringstream config_rows;
    std::string bucket_arrays;
    for (size_t i = 0; i < all.size(); i++) {
        check_row(all[i], i == 0);
        for (size_t j = 0; j < i; j++) {
            if (all[j].name == all[i].name) {
                throw PlanError("kernel set '" + set_name + "': configuration '" + all[i].name +
                                "' is listed twice");
            }
        }
        config_rows << plan_row(all[i], kernels, &bucket_arrays);
    }
    plan.kernels = std::move(kernels.kernels());
    plan.warnings = std::move(kernels.warnings());

    std::string targets_str;
    for (const auto &t : targets) targets_str += (targets_str.empty() ? "" : " ") + t;
    std::ostringstream reg;
    reg << kGeneratedBy << "#include \"mhac/kernel_set_" << set_name << ".h\"\n\n";
    for (const auto &k : plan.kernels) reg << "#include \"" << k.name << ".h\"\n";
    reg << "\nnamespace mhac::kernel_sets {\nnamespace {\nusing namespace mhac;\n\n"
        << bucket_arrays
        << "// name, sizes (0 = any), fused[none, causal, dense], projections[q, k, v, o, gate],\n"
        << "// scores[fused, explicit], combine[, bucket kernels, count]\n"
        << "const ConfigKernels kConfigs[] = {\n"
        << config_rows.str() << "};\n\n"
        << "// [keras path][mask kind]\n"
        << "const SoftmaxKernels kSoftmax = {{\n"
        << softmax.str() << "}};\n\n"
        << "const KernelSet kSet{\"" << set_name << "\", \"" << targets_str << "\", \""
        << plan.device << "\", " << plan.compute_capability
        << ", kConfigs, sizeof(kConfigs) / sizeof(kConfigs[0]), kSoftmax};\n"
        << "}  // namespace\n\nconst KernelSet &" << set_name << "() { return kSet; }\n"
        << "}  // namespace mhac::kernel_sets\n";
    plan.registry_source = reg.str();
    plan.header = std::string(kGeneratedBy) +
                  "#pragma once\n\n#include \"mhac/kernel_set.h\"\n\nnamespace mhac::kernel_sets "
                  "{\n// Kernels for targets: " +
                  targets_str + "\nconst KernelSet &" + set_name +
                  "();\n}  // namespace mhac::kernel_sets\n";
    return plan;
}

std::string cmake_listing(const KernelPlan &plan) {
    std::ostringstream s;
    s << "# Generated by the kernel planner (tools/plan) for kernel set " << plan.set_name
      << "; do not edit.\n"
      << "set(MHAC_PLAN_DEVICE " << plan.device << ")\n"
      << "set(MHAC_PLAN_COMPUTE_CAPABILITY " << plan.compute_capability << ")\n"
      << "set(MHAC_PLAN_RUNTIME_TARGET " << plan.runtime_target << ")\n"
      << "set(MHAC_PLAN_KERNELS";
    for (const auto &k : plan.kernels) s << "\n    " << k.name;
    s << ")\n";
    for (const auto &k : plan.kernels) {
        s << "set(MHAC_PLAN_" << k.name << "_GENERATOR " << k.generator << ")\n"
          << "set(MHAC_PLAN_" << k.name << "_PARAMS";
        for (const auto &p : k.params) s << " \"" << p << "\"";
        s << ")\n";
    }
    return s.str();
}

SetList kernel_set_list(const std::string &header_name, const std::string &function,
                        const std::vector<std::string> &sets) {
    if (sets.empty()) throw PlanError("a kernel set list needs at least one set");
    SetList out;
    out.header = std::string(kGeneratedBy) +
                 "#pragma once\n\n#include <vector>\n\n#include \"mhac/kernel_set.h\"\n\n"
                 "namespace mhac::kernel_sets {\n// Every kernel set linked with this list, "
                 "in this order:";
    for (const auto &s : sets) out.header += " " + s;
    out.header += ".\nconst std::vector<const KernelSet *> &" + function +
                  "();\n}  // namespace mhac::kernel_sets\n";
    std::ostringstream src;
    src << kGeneratedBy << "#include \"" << header_name << "\"\n\n";
    for (const auto &s : sets) src << "#include \"mhac/kernel_set_" << s << ".h\"\n";
    src << "\nnamespace mhac::kernel_sets {\n\nconst std::vector<const KernelSet *> &" << function
        << "() {\n    static const std::vector<const KernelSet *> sets{";
    for (size_t i = 0; i < sets.size(); i++) src << (i ? ", " : "") << "&" << sets[i] << "()";
    src << "};\n    return sets;\n}\n\n}  // namespace mhac::kernel_sets\n";
    out.source = src.str();
    return out;
}

}  // namespace mhac::plan
