#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <initializer_list>

#include "HalideRuntime.h"
#include "mhac/mha.h"

namespace mhac {

namespace {

enum class Level { auto_, sse41, avx2, avx512 };

Level g_forced = Level::auto_;
std::atomic<int> g_accepted{0};  // bit per Level accepted by a dispatch check
std::atomic<bool> g_checked{false};

bool has(const uint64_t *features, halide_target_feature_t f) {
    return (features[f / 64] >> (f % 64)) & 1;
}

// The level a sub-target's feature set belongs to.
Level level_of(int count, const uint64_t *features) {
    auto any = [&](std::initializer_list<halide_target_feature_t> fs) {
        for (auto f : fs) {
            if (f / 64 < count && has(features, f)) return true;
        }
        return false;
    };
    if (any({halide_target_feature_avx512, halide_target_feature_avx512_knl,
             halide_target_feature_avx512_skylake, halide_target_feature_avx512_cannonlake,
             halide_target_feature_avx512_zen4, halide_target_feature_avx512_zen5,
             halide_target_feature_avx512_sapphirerapids})) {
        return Level::avx512;
    }
    if (any({halide_target_feature_avx, halide_target_feature_avx2, halide_target_feature_fma,
             halide_target_feature_f16c})) {
        return Level::avx2;
    }
    return Level::sse41;
}

// Halide's wrapper asks about the sub-targets above the baseline (in no
// order we rely on) and runs the best accepted one, or the baseline (sse41,
// the ladder's last entry) when all refuse. The levels accepted so far thus
// say which one runs; the ladder and the cap are the same for every kernel.
int can_use(int count, const uint64_t *features) {
    Level level = level_of(count, features);
    int ok = (g_forced == Level::auto_ || static_cast<int>(level) <= static_cast<int>(g_forced)) &&
             halide_default_can_use_target_features(count, features);
    g_checked = true;
    if (ok) g_accepted.fetch_or(1 << static_cast<int>(level));
    return ok;
}

const char *name_of(Level l) {
    switch (l) {
    case Level::sse41: return "sse41";
    case Level::avx2: return "avx2";
    case Level::avx512: return "avx512";
    default: return "auto";
    }
}

bool cpu_runs(Level l) {
#if defined(__x86_64__)
    switch (l) {
    case Level::avx512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    case Level::avx2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    case Level::sse41: return __builtin_cpu_supports("sse4.1");
    default: return true;
    }
#else
    return l == Level::auto_;
#endif
}

}  // namespace

std::string isa_level_in_use() {
    if (!g_checked) return "none yet";
    for (Level l : {Level::avx512, Level::avx2}) {
        if (g_accepted.load() & (1 << static_cast<int>(l))) return name_of(l);
    }
    return name_of(Level::sse41);
}

std::string forced_isa_level() {
    return name_of(g_forced);
}

bool cpu_supports_isa_level(const std::string &level) {
    for (Level l : {Level::sse41, Level::avx2, Level::avx512}) {
        if (level == name_of(l)) return cpu_runs(l);
    }
    return level == "auto";
}

namespace detail {

void install_isa_override() {
    const char *env = std::getenv("MHAC_ISA");
    std::string want = env && *env ? env : "auto";
    Level forced = Level::auto_;
    bool known = want == "auto";
    for (Level l : {Level::sse41, Level::avx2, Level::avx512}) {
        if (want == name_of(l)) forced = l, known = true;
    }
    if (!known) throw Error("MHAC_ISA='" + want + "' is not one of auto, avx512, avx2, sse41");
    if (!cpu_runs(forced)) throw Error("MHAC_ISA=" + want + ": this CPU cannot run that level");
    g_forced = forced;
    halide_set_custom_can_use_target_features(can_use);
}

}  // namespace detail
}  // namespace mhac
