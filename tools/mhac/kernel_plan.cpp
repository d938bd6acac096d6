#include "kernel_plan.h"

#include <algorithm>
#include <regex>
#include <sstream>

#include "mhac/mha.h"

namespace mhac::cli {

namespace {

const char *kMasks[] = {"none", "causal", "dense"};  // order of mhac::MaskKind
const char *kPaths[] = {"fused", "explicit"};        // order of mhac::KerasPath

std::string projection_name(int in, int out, bool bias, const std::string &sfx) {
    std::string n = in == 0
                        ? std::string("mha_projection_f32_generic")
                        : "mha_projection_f32_e" + std::to_string(in) + "_j" + std::to_string(out);
    if (!bias) n += "_nobias";
    return n + sfx;
}

}  // namespace

KernelPlan plan_kernel_set(const std::string &set_name, const std::vector<std::string> &targets,
                           const std::vector<PlanConfig> &configs) {
    if (targets.empty()) throw Error("no targets given");
    KernelPlan plan;
    plan.set_name = set_name;
    plan.targets = targets;
    plan.device = "cpu";
    std::smatch m;
    const std::string &baseline = targets.back();
    if (baseline.find("-cuda") != std::string::npos) {
        plan.device = "cuda";
        static const std::regex cap("cuda_capability_([0-9]+)");
        plan.cuda_capability = std::regex_search(baseline, m, cap) ? std::stoi(m[1]) : 20;
    }
    const std::string sfx =
        plan.device == "cuda" ? "__cuda" + std::to_string(plan.cuda_capability) : "";

    std::ostringstream includes, rows, softmax;
    auto add = [&](const std::string &name, const std::string &generator,
                   std::vector<std::string> params) {
        for (const auto &k : plan.kernels) {
            if (k.name == name) return;
        }
        plan.kernels.push_back({name, generator, std::move(params)});
        includes << "#include \"" << name << ".h\"\n";
    };
    auto entry = [](const std::string &name) { return "{\"" + name + "\", " + name + "}, "; };

    for (const char *path : kPaths) {
        softmax << "    {";
        for (const char *mask : kMasks) {
            std::string name = std::string("mha_softmax_f32_") + mask + "_" + path + sfx;
            add(name, "mhac_masked_softmax",
                {std::string("mask_kind=") + mask, std::string("path=") + path});
            softmax << entry(name);
        }
        softmax << "},\n";
    }

    std::vector<PlanConfig> all{
        {"generic", 0, 0, 0, 0, 0, 0, 0, true, {"none", "causal", "dense"}}};
    all.insert(all.end(), configs.begin(), configs.end());
    for (const PlanConfig &c : all) {
        const int jq = c.num_heads * c.key_dim, jv = c.num_heads * c.value_dim;
        const std::string bias = c.use_bias ? "true" : "false";
        std::ostringstream proj, scores, fused;
        const int slots[5][2] = {{c.query_features, jq},
                                 {c.key_features, jq},
                                 {c.value_features, jv},
                                 {jv, c.output_features},
                                 {c.query_features, jv}};
        for (const auto &s : slots) {
            std::string name = projection_name(s[0], s[1], c.use_bias, sfx);
            add(name, "mhac_projection",
                {"in_features=" + std::to_string(s[0]), "out_features=" + std::to_string(s[1]),
                 "use_bias=" + bias});
            proj << entry(name);
        }
        const bool generic = c.num_heads == 0;
        const std::string stem = generic ? std::string("mha_scores_f32_generic")
                                         : "mha_scores_f32_n" + std::to_string(c.num_heads) + "_h" +
                                               std::to_string(c.key_dim);
        for (const char *path : kPaths) {
            std::string name = stem + "_" + path + sfx;
            add(name, "mhac_scores",
                {"num_heads=" + std::to_string(c.num_heads), "key_dim=" + std::to_string(c.key_dim),
                 std::string("path=") + path});
            scores << entry(name);
        }
        const std::string combine = (generic ? std::string("mha_combine_f32_generic")
                                             : "mha_combine_f32_n" + std::to_string(c.num_heads) +
                                                   "_hv" + std::to_string(c.value_dim)) +
                                    sfx;
        add(combine, "mhac_combine",
            {"num_heads=" + std::to_string(c.num_heads),
             "value_dim=" + std::to_string(c.value_dim)});
        for (const char *mask : kMasks) {
            if (std::find(c.masks.begin(), c.masks.end(), mask) == c.masks.end()) {
                fused << "{nullptr, nullptr}, ";
                continue;
            }
            std::string name = "mha_fused_f32_" + c.name + "_" + mask + sfx;
            add(name, "mhac_fused",
                {"num_heads=" + std::to_string(c.num_heads), "key_dim=" + std::to_string(c.key_dim),
                 "value_dim=" + std::to_string(c.value_dim),
                 "query_features=" + std::to_string(c.query_features),
                 "key_features=" + std::to_string(c.key_features),
                 "value_features=" + std::to_string(c.value_features),
                 "output_features=" + std::to_string(c.output_features), "use_bias=" + bias,
                 std::string("mask_kind=") + mask});
            fused << entry(name);
        }
        rows << "    {\"" << c.name << "\", {" << c.num_heads << ", " << c.key_dim << ", "
             << c.value_dim << ", " << c.query_features << ", " << c.key_features << ", "
             << c.value_features << ", " << c.output_features << ", " << bias << "},\n"
             << "     {" << fused.str() << "},\n"
             << "     {" << proj.str() << "},\n"
             << "     {" << scores.str() << "},\n"
             << "     {\"" << combine << "\", " << combine << "}},\n";
    }

    std::string targets_str;
    for (const auto &t : targets) targets_str += (targets_str.empty() ? "" : " ") + t;
    std::ostringstream reg;
    reg << "// Generated by mhac generate (tools/mhac/kernel_plan.cpp); do not edit.\n"
        << "#include \"mhac/kernel_set_" << set_name << ".h\"\n\n"
        << includes.str()
        << "\nnamespace mhac::kernel_sets {\nnamespace {\nusing namespace mhac;\n\n"
        << "const ConfigKernels kConfigs[] = {\n"
        << rows.str() << "};\n\n"
        << "const SoftmaxKernels kSoftmax = {{\n"
        << softmax.str() << "}};\n\n"
        << "const KernelSet kSet{\"" << set_name << "\", \"" << targets_str << "\", \""
        << plan.device << "\", " << plan.cuda_capability
        << ", kConfigs, sizeof(kConfigs) / sizeof(kConfigs[0]), kSoftmax};\n"
        << "}  // namespace\n\nconst KernelSet &" << set_name << "() { return kSet; }\n"
        << "}  // namespace mhac::kernel_sets\n";
    plan.registry_source = reg.str();
    plan.header =
        "// Generated by mhac generate (tools/mhac/kernel_plan.cpp); do not edit.\n"
        "#pragma once\n\n#include \"mhac/kernel_set.h\"\n\nnamespace mhac::kernel_sets {\n"
        "// Kernels for targets: " +
        targets_str + "\nconst KernelSet &" + set_name + "();\n}  // namespace mhac::kernel_sets\n";
    return plan;
}

}  // namespace mhac::cli
