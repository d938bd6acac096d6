// `mhac tune-worker REQUEST.json RESULT.json`: one measurement of `mhac tune`,
// in its own process so that a candidate that crashes or hangs costs only
// itself. It loads the hand-default kernel and a candidate (shared objects
// built from the generator's AOT object for one target, each with its own
// Halide runtime), checks the candidate against the float64 reference within
// the tolerance policy, then times both on the requested shapes, call by call
// interleaved, so machine noise hits both alike.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "halide_glue.h"  // the runtime's kernel hooks
#include "mha_reference.h"
#include "mhac/kernel_set.h"
#include "mhac/mha.h"
#include "random_layer.h"
#include "tolerance.h"
#include "tune_command.h"

namespace mhac::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// What a loaded object's Halide runtime last reported (its error handler).
std::string &last_halide_error() {
    static std::string message;
    return message;
}

// One loaded kernel: its shared object and a one-configuration kernel set
// around its entry point, so calls go through the runtime's packing,
// validation and dispatch like every other kernel's.
class LoadedKernel {
public:
    LoadedKernel(const std::string &so, const std::string &function, const ConfigKernels &shape,
                 MaskKind mask)
        : config_(shape), set_{"tune", "", "cpu", 0, &config_, 1, no_softmax()} {
        handle_ = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw Error("cannot load " + so + ": " + dlerror());
        auto fn = reinterpret_cast<FusedFn>(dlsym(handle_, function.c_str()));
        if (!fn) throw Error(so + " has no function " + function);
        // The object's own Halide runtime aborts on errors by default; a
        // candidate's failure must come back as an error code (and so as an
        // mhac::Error from the layer) with its message.
        using Handler = void (*)(void *, const char *);
        if (auto set_handler = reinterpret_cast<Handler (*)(Handler)>(
                dlsym(handle_, "halide_set_error_handler"))) {
            set_handler(record_error);
        }
        // Its scratch and parallel loops on the runtime's pools, as the
        // linked kernels' are: with the object's default malloc every call of
        // a large shape page-faulted its buffers afresh (long_4096: 40 MB a
        // call), a cost the build's kernels do not pay.
        const detail::KernelHookSetters setters{
            reinterpret_cast<decltype(&halide_set_custom_malloc)>(
                dlsym(handle_, "halide_set_custom_malloc")),
            reinterpret_cast<decltype(&halide_set_custom_free)>(
                dlsym(handle_, "halide_set_custom_free")),
            reinterpret_cast<decltype(&halide_set_custom_do_par_for)>(
                dlsym(handle_, "halide_set_custom_do_par_for"))};
        if (!setters.set_malloc || !setters.set_free || !setters.set_do_par_for)
            throw Error(so + " has no halide_set_custom_malloc/free/do_par_for");
        detail::install_kernel_hooks(setters);
        function_ = function;
        config_.fused[static_cast<int>(mask)] = {function_.c_str(), fn};
    }
    LoadedKernel(const LoadedKernel &) = delete;
    LoadedKernel &operator=(const LoadedKernel &) = delete;
    // The Halide runtime of the object stays loaded: its thread pool may
    // still be winding down, and the process ends soon anyway.

    const KernelSet &set() const { return set_; }

    // A `-profile` object's report of every call so far (stderr). The
    // worker ends with _Exit, which skips the runtime's exit-time report.
    void print_profile() const {
        using Report = void (*)(void *);
        if (auto report = reinterpret_cast<Report>(dlsym(handle_, "halide_profiler_report")))
            report(nullptr);
    }
    bool same_object(const LoadedKernel &other) const { return handle_ == other.handle_; }

private:
    static void record_error(void *, const char *message) { last_halide_error() = message; }
    static const SoftmaxKernels &no_softmax() {
        static const SoftmaxKernels none{};
        return none;
    }
    void *handle_ = nullptr;
    std::string function_;
    ConfigKernels config_;
    KernelSet set_;
};

struct Call {
    testing::RandomLayer data;
    TensorView query, value, key;
    std::vector<uint8_t> mask_bytes;
    MaskView mask;
    CallOptions options;
    std::vector<float> output;
};

// A call of `mask`'s kind; self-attention when T == S and no key is wanted
// (the benchmarks' form), key = value otherwise.
void make_call(Call &c, const testing::Sizes &sizes, bool use_bias, MaskKind mask, uint64_t seed,
               bool separate_key) {
    c.data =
        testing::make_random_layer(sizes, use_bias, seed,
                                   mask == MaskKind::dense ? testing::RandomMask::fully_masked_rows
                                                           : testing::RandomMask::none);
    c.query = c.data.query_view();
    const bool self = !separate_key && sizes.queries == sizes.keys;
    c.value = self ? c.query : c.data.value_view();
    if (separate_key) {
        c.key = c.data.key_view();
        c.options.key = &c.key;
    }
    if (mask == MaskKind::causal) c.options.use_causal_mask = true;
    if (mask == MaskKind::dense) {
        c.mask = {c.data.mask.data(), {sizes.batch, sizes.queries, sizes.keys}};
        c.options.attention_mask = &c.mask;
    }
    c.output.assign(static_cast<size_t>(sizes.batch * sizes.queries * sizes.output_features), 0);
}

// [B, T, S] at the row's sizes; the generic row (no sizes) at the shape's own
// layer sizes when it names them ([B, T, S, Eq, Ek, Ev, N, H, Hv, O]), else
// at small odd ones.
testing::Sizes sizes_for(const ConfigSizes &c, const json &shape) {
    const int64_t b = shape.at(0), t = shape.at(1), s = shape.at(2);
    if (c.num_heads == 0 && shape.size() == 10) {
        return {b,           t,           s,           shape.at(3), shape.at(4),
                shape.at(5), shape.at(6), shape.at(7), shape.at(8), shape.at(9)};
    }
    if (c.num_heads == 0) return {b, t, s, 40, 40, 40, 3, 16, 8, 24};  // generic: any sizes
    return {b,           t,         s,           c.query_features, c.key_features, c.value_features,
            c.num_heads, c.key_dim, c.value_dim, c.output_features};
}

// The float64 reference output of a check call, cached in `dir` (the
// reference is the slow part of a check and the same for every candidate).
std::vector<double> reference_output(const Call &c, MaskKind mask, const std::string &dir,
                                     const std::string &key) {
    const fs::path path = fs::path(dir) / (key + ".f64");
    const size_t n = c.output.size();
    std::vector<double> ref(n);
    if (std::ifstream in{path, std::ios::binary}) {
        in.read(reinterpret_cast<char *>(ref.data()), static_cast<std::streamsize>(n * 8));
        if (in.gcount() == static_cast<std::streamsize>(n * 8)) return ref;
    }
    ref = reference::multi_head_attention(c.data.reference_layer(),
                                          c.data.reference_call(mask == MaskKind::causal),
                                          reference::Path::fused)
              .output;
    fs::create_directories(dir);
    const fs::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        out.write(reinterpret_cast<const char *>(ref.data()),
                  static_cast<std::streamsize>(ref.size() * 8));
    }
    fs::rename(tmp, path);
    return ref;
}

struct Stats {
    double median = 0, spread = 0;
};
Stats stats_of(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    Stats s;
    s.median = t[t.size() / 2];
    s.spread = s.median > 0 ? (t.back() - t.front()) / s.median : 0;
    return s;
}

double seconds_of(MultiHeadAttention &layer, Call &c) {
    const auto start = Clock::now();
    layer.call_into(c.query, c.value, c.options, c.output.data());
    return std::chrono::duration<double>(Clock::now() - start).count();
}

json run(const json &req) {
    ConfigKernels shape{};
    const json &cfg = req.at("config");
    const std::string config_name = cfg.at("name");
    shape.name = config_name.c_str();
    shape.sizes = {cfg.at("num_heads"),       cfg.at("key_dim"),      cfg.at("value_dim"),
                   cfg.at("query_features"),  cfg.at("key_features"), cfg.at("value_features"),
                   cfg.at("output_features"), cfg.at("use_bias")};
    MaskKind mask = MaskKind::none;
    if (!parse_mask_kind(req.at("mask"), &mask)) throw Error("unknown mask kind");
    const std::string function = req.at("function");
    const uint64_t seed = req.value("seed", uint64_t{2026});
    const bool use_bias = shape.sizes.use_bias;

    LoadedKernel base(req.at("default_so"), function, shape, mask);
    LoadedKernel cand(req.at("candidate_so"), function, shape, mask);
    auto layer_for = [&](const LoadedKernel &k, const Call &c) {
        MultiHeadAttention layer(c.data.config(), k.set());
        layer.set_weights(c.data.keras_weights());
        return layer;
    };
    json result = {{"ok", true}, {"checks", json::array()}, {"timings", json::array()}};

    // Correctness first: a wrong candidate is never timed.
    for (const json &shape_json : req.at("check_shapes")) {
        const testing::Sizes sizes = sizes_for(shape.sizes, shape_json);
        Call c;
        make_call(c, sizes, use_bias, mask, seed, true);
        c.options.force_config = config_name;
        MultiHeadAttention layer = layer_for(cand, c);
        layer.call_into(c.query, c.value, c.options, c.output.data());
        const std::string key = std::string(req.at("reference_key")) + "_" +
                                std::to_string(sizes.batch) + "x" + std::to_string(sizes.queries) +
                                "x" + std::to_string(sizes.keys);
        const std::vector<double> ref = reference_output(c, mask, req.at("reference_dir"), key);
        const testing::Comparison cmp = testing::compare(c.output, ref, false);
        result["checks"].push_back(
            {{"shape", shape_json}, {"max_abs_error", cmp.max_abs_error}, {"bound", cmp.bound}});
        if (!cmp.ok()) {
            result["ok"] = false;
            result["error"] = "wrong result: " + cmp.describe("B,T,S " + shape_json.dump());
            return result;
        }
    }

    // Then timing: per shape and thread count, both kernels on the same
    // data, alternating which goes first.
    const double seconds_per_shape = req.value("seconds_per_shape", 0.4);
    // The thread count is this process's HL_NUM_THREADS (mhac tune starts
    // one worker per count): both runtimes size their pools from it.
    for (const int threads : req.at("threads").get<std::vector<int>>()) {
        for (const json &shape_json : req.at("time_shapes")) {
            const testing::Sizes sizes = sizes_for(shape.sizes, shape_json);
            Call c;
            make_call(c, sizes, use_bias, mask, seed, false);
            c.options.force_config = config_name;
            MultiHeadAttention lb = layer_for(base, c), lc = layer_for(cand, c);
            double first = 0;
            for (int i = 0; i < 2; i++) first = seconds_of(lb, c) + seconds_of(lc, c);
            const int reps = std::clamp(static_cast<int>(seconds_per_shape / first), 5, 200);
            std::vector<double> tb, tc;
            for (int r = 0; r < reps; r++) {
                if (r % 2) {
                    tc.push_back(seconds_of(lc, c));
                    tb.push_back(seconds_of(lb, c));
                } else {
                    tb.push_back(seconds_of(lb, c));
                    tc.push_back(seconds_of(lc, c));
                }
            }
            const Stats sb = stats_of(tb), sc = stats_of(tc);
            result["timings"].push_back({{"batch", sizes.batch},
                                         {"queries", sizes.queries},
                                         {"keys", sizes.keys},
                                         {"threads", threads},
                                         {"reps", reps},
                                         {"default_ms", sb.median * 1e3},
                                         {"default_spread", sb.spread},
                                         {"candidate_ms", sc.median * 1e3},
                                         {"candidate_spread", sc.spread}});
        }
    }
    base.print_profile();
    if (!cand.same_object(base)) cand.print_profile();
    return result;
}

}  // namespace

int tune_worker_command(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr,
                     "usage: mhac tune-worker REQUEST.json RESULT.json (run by mhac tune)\n");
        return 2;
    }
    json result;
    try {
        std::ifstream in(argv[0]);
        if (!in) throw Error(std::string("cannot read ") + argv[0]);
        result = run(json::parse(in));
    } catch (const std::exception &e) {
        std::string why = e.what();
        if (!last_halide_error().empty()) why += " (Halide: " + last_halide_error() + ")";
        result = {{"ok", false}, {"error", why}};
    }
    bool written = false;
    {
        std::ofstream out(argv[1]);
        out << result.dump(1) << "\n";
        out.close();
        written = !out.fail();
    }
    // Ends without exit-time destructors: a loaded kernel's Halide runtime
    // can hang in them (a `-profile` kernel whose call failed: its
    // halide_profiler_shutdown waits for a sampler thread that never
    // stops), and the result is written.
    std::fflush(nullptr);
    std::_Exit(written ? 0 : 1);
}

}  // namespace mhac::cli
