// The schedule knobs by name, and the `tuned` GeneratorParam of mhac_fused
// and mhac_projection that carries knob settings per target from the tuned
// database (docs/tuning.md):
//   x86-64-linux-avx2-f16c-fma:gemm_rows:4,key_block:256/x86-64-linux-sse41:query_block:64
// (knob:value, not knob=value: Halide's generator command line rejects a
// GeneratorParam value holding '=').
// The planner (tools/plan) writes it, the generators read it, both through
// this header: plain C++17, header only, so the knob names are kept once.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace mhac::sched {

// Schedule knobs a kernel may set (GeneratorParams of the same names,
// `stage:knob=value` in the kernel table, or the `tuned` GeneratorParam);
// 0 = the target's default from the knob table of its schedule family.
struct KnobOverrides {
    int key_block = 0;         // keys per flash-attention block (fused)
    int query_block = 0;       // query rows per attention block (fused)
    int gemm_rows = 0;         // rows per GEMM register tile
    int gemm_rows_short = 0;   // rows per tile when fewer than gemm_rows exist
    int gemm_k_block = -1;     // input features per GEMM pass (0 = all; -1 = default)
    int gemm_k_unroll = 0;     // reduction steps unrolled in the GEMM register tile
    int gemm_panels = 0;       // weight panels (kPanelWidth columns) per GEMM register tile
    int gemm_row_block = 0;    // input rows per pass over the weights (long row counts)
    int v_staging = -1;        // 1: V copied into key-block tiles; 0: read where projected
    int attn_k_unroll = 0;     // reduction steps unrolled in the attention's register tiles
    int absorb_kv = -1;        // 1: K and V projections folded into the query (decode); else flash
    int gemm_rows_exact = -1;  // rows per projection tile where they divide the rows (0 = off)
    int attn_reduce_rows = 0;  // query rows per pass of the attention's block max and sum
    int kv_at_blocks = -1;     // 1: K and V projected per key block as staged; 0: at root
};

struct KnobName {
    const char *name;
    int KnobOverrides::*field;
};
inline constexpr KnobName kKnobNames[] = {{"key_block", &KnobOverrides::key_block},
                                          {"query_block", &KnobOverrides::query_block},
                                          {"gemm_rows", &KnobOverrides::gemm_rows},
                                          {"gemm_rows_short", &KnobOverrides::gemm_rows_short},
                                          {"gemm_k_block", &KnobOverrides::gemm_k_block},
                                          {"gemm_k_unroll", &KnobOverrides::gemm_k_unroll},
                                          {"gemm_panels", &KnobOverrides::gemm_panels},
                                          {"gemm_row_block", &KnobOverrides::gemm_row_block},
                                          {"v_staging", &KnobOverrides::v_staging},
                                          {"attn_k_unroll", &KnobOverrides::attn_k_unroll},
                                          {"absorb_kv", &KnobOverrides::absorb_kv},
                                          {"gemm_rows_exact", &KnobOverrides::gemm_rows_exact},
                                          {"attn_reduce_rows", &KnobOverrides::attn_reduce_rows},
                                          {"kv_at_blocks", &KnobOverrides::kv_at_blocks}};

}  // namespace mhac::sched

namespace mhac::tuned {

// The generators that declare GeneratorParam<std::string> tuned.
inline constexpr const char *kTunedGenerators[] = {"mhac_fused", "mhac_projection"};

class TunedParamError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

namespace detail {

inline std::vector<std::string> split(const std::string &text, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); i++) {
        if (i == text.size() || text[i] == sep) {
            out.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    }
    return out;
}

}  // namespace detail

// arch-bits-os followed by the features sorted, without no_runtime (the
// build adds it to every target; it changes no instruction of a kernel): the
// one spelling database entries, the planner and the generators compare.
inline std::string canonical_target(const std::string &target) {
    std::vector<std::string> parts;
    for (std::string &p : detail::split(target, '-')) {
        if (!p.empty()) parts.push_back(std::move(p));
    }
    if (parts.size() < 3) {
        throw TunedParamError("target '" + target + "' is not arch-bits-os[-features]");
    }
    std::vector<std::string> features(parts.begin() + 3, parts.end());
    features.erase(std::remove(features.begin(), features.end(), "no_runtime"), features.end());
    std::sort(features.begin(), features.end());
    features.erase(std::unique(features.begin(), features.end()), features.end());
    std::string out = parts[0] + "-" + parts[1] + "-" + parts[2];
    for (const auto &f : features) out += "-" + f;
    return out;
}

inline const sched::KnobName *find_knob(const std::string &name) {
    for (const auto &k : sched::kKnobNames) {
        if (name == k.name) return &k;
    }
    return nullptr;
}

// Sets one "name=value" knob; unknown names and non-integer values throw.
inline void apply_knob(const std::string &name_value, sched::KnobOverrides &knobs) {
    const size_t eq = name_value.find('=');
    const std::string name = name_value.substr(0, eq);
    const sched::KnobName *knob = find_knob(name);
    if (eq == std::string::npos || !knob) {
        std::string names;
        for (const auto &k : sched::kKnobNames)
            names += std::string(names.empty() ? "" : ", ") + k.name;
        throw TunedParamError("'" + name_value + "' is not knob=value with a knob of: " + names);
    }
    const std::string value = name_value.substr(eq + 1);
    size_t used = 0;
    long v = 0;
    try {
        v = std::stol(value, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (value.empty() || used != value.size() || v < -1 || v > (1 << 20)) {
        throw TunedParamError("knob '" + name + "' needs an integer in [-1, 2^20], got '" + value +
                              "'");
    }
    knobs.*(knob->field) = static_cast<int>(v);
}

// One target's knob settings ("name=value", as in database entries).
struct TargetKnobs {
    std::string target;
    std::vector<std::string> knobs;
};

inline std::string encode_tuned_param(const std::vector<TargetKnobs> &per_target) {
    std::string out;
    for (const auto &t : per_target) {
        if (!out.empty()) out += "/";
        out += canonical_target(t.target) + ":";
        for (size_t i = 0; i < t.knobs.size(); i++) {
            sched::KnobOverrides check;
            apply_knob(t.knobs[i], check);
            std::string knob = t.knobs[i];
            knob[knob.find('=')] = ':';
            out += (i ? "," : "") + knob;
        }
    }
    return out;
}

// Checks every target and knob; "" is no target. Knobs come back as
// "name=value".
inline std::vector<TargetKnobs> decode_tuned_param(const std::string &text) {
    std::vector<TargetKnobs> out;
    if (text.empty()) return out;
    for (const std::string &item : detail::split(text, '/')) {
        const size_t colon = item.find(':');
        if (colon == std::string::npos) {
            throw TunedParamError("tuned='" + text + "': '" + item +
                                  "' is not target:knob:value,...");
        }
        TargetKnobs t{canonical_target(item.substr(0, colon)), {}};
        for (const auto &o : out) {
            if (o.target == t.target) {
                throw TunedParamError("tuned='" + text + "': target " + t.target + " given twice");
            }
        }
        const std::string knobs = item.substr(colon + 1);
        sched::KnobOverrides check;
        if (!knobs.empty()) {
            for (std::string kv : detail::split(knobs, ',')) {
                const size_t colon = kv.find(':');
                if (colon == std::string::npos) {
                    throw TunedParamError("tuned='" + text + "': '" + kv + "' is not knob:value");
                }
                kv[colon] = '=';
                apply_knob(kv, check);
                t.knobs.push_back(kv);
            }
        }
        out.push_back(std::move(t));
    }
    return out;
}

// `knobs` with the settings `tuned` gives `target` applied over them.
inline sched::KnobOverrides knobs_for_target(const std::string &tuned, const std::string &target,
                                             sched::KnobOverrides knobs) {
    const std::string key = canonical_target(target);
    for (const TargetKnobs &t : decode_tuned_param(tuned)) {
        if (t.target != key) continue;
        for (const auto &kv : t.knobs) apply_knob(kv, knobs);
    }
    return knobs;
}

}  // namespace mhac::tuned
