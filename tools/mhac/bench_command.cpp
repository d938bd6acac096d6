// `mhac bench`: times one Keras MultiHeadAttention layer call (self-attention,
// no mask) with the default kernel sets, on seeded data or on the exact
// weights and inputs another program saved as .npy (bench/peers/ times
// PyTorch, ONNX Runtime and Keras/JAX on the same files). The time is taken
// with steady_clock around call_into() after warm-up calls, so no allocation
// or packing is timed. Threads: the runtime's pool, HL_NUM_THREADS.
#include "bench_command.h"

#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "mhac/default_sets.h"
#include "mhac/keras_io.h"
#include "mhac/mha.h"
#include "random_layer.h"

namespace mhac::cli {

namespace {

using Clock = std::chrono::steady_clock;

const char *kDescription =
    "Times one Keras MultiHeadAttention call (query = key = value unless --keys differs from\n"
    "--queries or --inputs holds value.npy; no mask) on the default kernel sets: --warmup\n"
    "untimed calls, then --repeats calls each timed with steady_clock around call_into()\n"
    "(allocation-free once warm). Warm-up is at least --warmup calls and at least\n"
    "--warmup-seconds of them: a fresh process's first calls run slower, at 2 threads most,\n"
    "so a few calls warm a 60 ms layer but not a 1 ms one. Prints the median, min, max,\n"
    "spread = (max - min) / median, GFLOP/s (multiply-adds as 2: four projections, QK^T, PV,\n"
    "the layer's nominal work; a decode kernel folding K and V does less), the chosen variant\n"
    "and the ISA level; --json prints the same as one JSON line instead. Threads:\n"
    "HL_NUM_THREADS (the kernels' pool; unset = one per core the process may run on).\n"
    "\n"
    "--weights DIR reads Keras-layout float32 .npy files: query_kernel [E,N,H], query_bias\n"
    "[N,H], key_kernel [E,N,H], key_bias [N,H], value_kernel [E,N,Hv], value_bias [N,Hv],\n"
    "output_kernel [N,Hv,O], output_bias [O] (no *_bias files = use_bias=False).\n"
    "--inputs DIR reads query.npy [B,T,E], optionally value.npy [B,S,E] (absent: value =\n"
    "query) and key.npy [B,S,E] (absent: key = value). Sizes then come from the files; a size\n"
    "flag that disagrees with them is an error. Without them the data is seeded (--seed).";

struct Stats {
    double median = 0, min = 0, max = 0, mean = 0;
};

Stats stats_of(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    Stats s;
    const size_t n = t.size();
    s.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    s.min = t.front();
    s.max = t.back();
    for (double v : t) s.mean += v / static_cast<double>(n);
    return s;
}

std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

bool file_exists(const std::string &path) {
    return std::ifstream(path).good();
}

// A size taken from a file: it must agree with the flag when the flag was given.
template <typename T>
void take_size(T &size, const CLI::Option *flag, int64_t from_file, const std::string &what) {
    if (flag->count() && static_cast<int64_t>(size) != from_file) {
        throw Error(flag->get_name() + " " + std::to_string(size) + " disagrees with " + what +
                    " (" + std::to_string(from_file) + ")");
    }
    size = static_cast<T>(from_file);
}

void expect_rank(const Tensor &t, size_t rank, const std::string &name) {
    if (t.shape.size() != rank) {
        throw Error(name + " must have rank " + std::to_string(rank) + ", got " +
                    shape_to_string(t.shape));
    }
}

// CLI11's PositiveNumber answers 0 with "Value 0 not in range 0.000000 to
// 1.797693e+308"; this names the rule instead.
const CLI::Validator kPositive(
    [](std::string &text) {
        char *end = nullptr;
        errno = 0;
        const long long v = std::strtoll(text.c_str(), &end, 10);
        if (end == text.c_str() || *end || errno || v < 1)
            return "'" + text + "' is not a positive integer";
        return std::string();
    },
    "POSITIVE");

}  // namespace

int bench_command(int argc, char **argv) {
    CLI::App app{kDescription, "mhac bench"};
    int64_t batch = 1, queries = 128, keys = 0, features = 768;
    int heads = 12, key_dim = 64, value_dim = 0, repeats = 20, warmup = 3;
    double warmup_seconds = 0.3;
    uint64_t seed = 2026;
    std::string weights_dir, inputs_dir, output_path, device = "cpu", force_config;
    bool json = false;
    auto *o_batch = app.add_option("--batch", batch, "B (default 1)")->check(kPositive);
    auto *o_queries =
        app.add_option("--queries", queries, "T, query length (default 128)")->check(kPositive);
    auto *o_keys =
        app.add_option("--keys", keys, "S, key/value length (default: T)")->check(kPositive);
    auto *o_features = app.add_option("--features", features,
                                      "E: query/key/value and output features (default 768)")
                           ->check(kPositive);
    auto *o_heads = app.add_option("--heads", heads, "N, num_heads (default 12)")->check(kPositive);
    auto *o_key_dim =
        app.add_option("--key-dim", key_dim, "H, key_dim (default 64)")->check(kPositive);
    auto *o_value_dim =
        app.add_option("--value-dim", value_dim, "Hv, value_dim (default: H)")->check(kPositive);
    app.add_option("--repeats", repeats, "timed calls (default 20)")->check(kPositive);
    app.add_option("--warmup", warmup, "untimed calls before timing (default 3, at least 1)")
        ->check(kPositive);
    app.add_option("--warmup-seconds", warmup_seconds,
                   "untimed calls go on until this long has passed (default 0.3; 0 = count only)")
        ->check(CLI::Range(0.0, 60.0));
    app.add_option("--seed", seed, "seed of the generated weights and inputs (default 2026)");
    app.add_option("--weights", weights_dir, "directory of Keras-layout .npy weights (see above)")
        ->check(CLI::ExistingDirectory);
    app.add_option("--inputs", inputs_dir, "directory with query.npy [value.npy] [key.npy]")
        ->check(CLI::ExistingDirectory);
    app.add_option("--output", output_path, "write the last call's output [B,T,O] as float32 .npy");
    app.add_option("--device", device, "cpu (default), cuda or automatic")
        ->check(CLI::IsMember({"cpu", "cuda", "automatic"}));
    app.add_option("--force-config", force_config,
                   "run this configuration of the kernel set (generic or a row name)");
    app.add_flag("--json", json, "print one JSON line instead of the human-readable report");
    try {
        std::vector<const char *> args{"mhac bench"};  // CLI11 skips argv[0]
        args.insert(args.end(), argv, argv + argc);
        app.parse(static_cast<int>(args.size()), args.data());
    } catch (const CLI::CallForHelp &) {
        std::fputs(app.help().c_str(), stdout);
        return 0;
    } catch (const CLI::ParseError &e) {
        std::fprintf(stderr, "mhac bench: error: %s\n%s", e.what(),
                     "run mhac bench --help for the options\n");
        return 2;
    }

    try {
        // Files first: they fix the sizes they hold.
        std::optional<Tensor> q_file, v_file, k_file;
        if (!inputs_dir.empty()) {
            q_file = io::read_npy_floats(inputs_dir + "/query.npy");
            expect_rank(*q_file, 3, "query.npy");
            take_size(batch, o_batch, q_file->shape[0], "query.npy's B");
            take_size(queries, o_queries, q_file->shape[1], "query.npy's T");
            take_size(features, o_features, q_file->shape[2], "query.npy's E");
            if (file_exists(inputs_dir + "/value.npy")) {
                v_file = io::read_npy_floats(inputs_dir + "/value.npy");
                expect_rank(*v_file, 3, "value.npy");
                take_size(keys, o_keys, v_file->shape[1], "value.npy's S");
            } else {
                take_size(keys, o_keys, queries, "query.npy's T (self-attention: value = query)");
            }
            if (file_exists(inputs_dir + "/key.npy")) {
                k_file = io::read_npy_floats(inputs_dir + "/key.npy");
                expect_rank(*k_file, 3, "key.npy");
            }
        }
        if (keys == 0) keys = queries;
        std::vector<Tensor> w_file;
        bool use_bias = true;
        if (!weights_dir.empty()) {
            const char *kernels[] = {"query_kernel", "key_kernel", "value_kernel", "output_kernel"};
            const char *biases[] = {"query_bias", "key_bias", "value_bias", "output_bias"};
            int bias_files = 0;
            for (const char *b : biases) bias_files += file_exists(weights_dir + "/" + b + ".npy");
            if (bias_files != 0 && bias_files != 4) {
                throw Error("--weights " + weights_dir +
                            ": give all four *_bias.npy files or none");
            }
            use_bias = bias_files == 4;
            for (int i = 0; i < 4; i++) {  // get_weights() order: kernel, bias per projection
                w_file.push_back(io::read_npy_floats(weights_dir + "/" + kernels[i] + ".npy"));
                if (use_bias) {
                    w_file.push_back(io::read_npy_floats(weights_dir + "/" + biases[i] + ".npy"));
                }
            }
            const Tensor &qk = w_file[0], &vk = w_file[use_bias ? 4 : 2];
            expect_rank(qk, 3, "query_kernel.npy");
            expect_rank(vk, 3, "value_kernel.npy");
            take_size(features, o_features, qk.shape[0], "query_kernel.npy's E");
            take_size(heads, o_heads, qk.shape[1], "query_kernel.npy's N");
            take_size(key_dim, o_key_dim, qk.shape[2], "query_kernel.npy's H");
            take_size(value_dim, o_value_dim, vk.shape[2], "value_kernel.npy's Hv");
        }
        if (value_dim == 0) value_dim = key_dim;
        const bool self_attention = v_file ? false : (inputs_dir.empty() ? keys == queries : true);

        const testing::Sizes sizes{batch,    queries, keys,    features,  features,
                                   features, heads,   key_dim, value_dim, features};
        const testing::RandomLayer data = testing::make_random_layer(sizes, true, seed);
        LayerConfig config;
        config.num_heads = heads;
        config.key_dim = key_dim;
        config.value_dim = value_dim;
        config.use_bias = use_bias;
        if (!w_file.empty()) {
            const Shape &ok = w_file[use_bias ? 6 : 3].shape;
            if (ok.size() == 3 && ok[2] != features) config.output_shape = {ok[2]};
        }
        MultiHeadAttention layer(config, kernel_sets::all());
        layer.set_weights(w_file.empty() ? data.keras_weights()
                                         : keras_weights_from(w_file, use_bias));

        const TensorView query = q_file ? q_file->view() : data.query_view();
        const TensorView value = v_file           ? v_file->view()
                                 : self_attention ? query
                                                  : data.value_view();
        TensorView key;
        CallOptions opts;
        if (k_file) {
            key = k_file->view();
            opts.key = &key;
        }
        opts.device = device == "cuda"        ? Device::cuda
                      : device == "automatic" ? Device::automatic
                                              : Device::cpu;
        opts.force_config = force_config;

        Tensor out;
        out.shape = layer.output_shape(query);
        size_t n = 1;
        for (int64_t d : out.shape) n *= static_cast<size_t>(d);
        out.data.assign(n, 0.0f);
        int warmup_calls = 0;
        const auto warm_start = Clock::now();
        while (warmup_calls < warmup ||
               std::chrono::duration<double>(Clock::now() - warm_start).count() < warmup_seconds) {
            layer.call_into(query, value, opts, out.data.data());
            warmup_calls++;
        }
        const auto warm_end = Clock::now();
        std::vector<double> t(static_cast<size_t>(repeats));
        for (double &seconds : t) {
            const auto start = Clock::now();
            layer.call_into(query, value, opts, out.data.data());
            seconds = std::chrono::duration<double>(Clock::now() - start).count();
        }
        const Stats s = stats_of(t);
        if (!output_path.empty()) io::write_npy(output_path, out);

        const double B = batch, T = queries, S = keys, E = features, N = heads, H = key_dim,
                     Hv = value_dim, O = static_cast<double>(out.shape.back());
        const double flops = 2.0 * B *
                             (T * E * N * H + S * E * N * H + S * E * N * Hv +
                              N * T * S * (H + Hv) + T * N * Hv * O);
        const Selection &sel = layer.last_selection();
        const std::string variant = sel.describe(), isa = isa_level_in_use();
        const char *threads_env = std::getenv("HL_NUM_THREADS");
        const std::string threads = threads_env ? threads_env : "unset";
        cpu_set_t cpus;
        const int cpus_allowed =
            sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : -1;
        const double spread = s.median > 0 ? (s.max - s.min) / s.median : 0.0;
        if (json) {
            std::printf(
                "{\"batch\": %lld, \"queries\": %lld, \"keys\": %lld, \"features\": %lld, "
                "\"heads\": %d, \"key_dim\": %d, \"value_dim\": %d, \"self_attention\": %s, "
                "\"repeats\": %d, \"warmup\": %d, \"warmup_seconds\": %.3f, \"median_ms\": %.6f, "
                "\"min_ms\": %.6f, \"max_ms\": %.6f, \"mean_ms\": %.6f, \"spread\": %.4f, "
                "\"gflops\": %.3f, \"variant\": %s, \"kernel_set\": %s, \"isa\": %s, "
                "\"hl_num_threads\": %s, \"cpus_allowed\": %d}\n",
                (long long)batch, (long long)queries, (long long)keys, (long long)features, heads,
                key_dim, value_dim, self_attention ? "true" : "false", repeats, warmup_calls,
                warmup_seconds, s.median * 1e3, s.min * 1e3, s.max * 1e3, s.mean * 1e3, spread,
                flops / s.median * 1e-9, json_string(variant).c_str(),
                json_string(sel.kernel_set ? sel.kernel_set->name : "").c_str(),
                json_string(isa).c_str(), json_string(threads).c_str(), cpus_allowed);
        } else {
            std::printf("mhac bench: MultiHeadAttention(num_heads=%d, key_dim=%d, value_dim=%d)\n",
                        heads, key_dim, value_dim);
            std::printf(
                "  inputs         : query [%lld, %lld, %lld], key/value S=%lld%s, %s\n",
                (long long)batch, (long long)queries, (long long)features, (long long)keys,
                self_attention ? " (query = key = value)" : "",
                inputs_dir.empty() ? ("seed " + std::to_string(seed)).c_str() : inputs_dir.c_str());
            std::printf("  chosen variant : %s\n", variant.c_str());
            std::printf("  ISA level      : %s (MHAC_ISA=%s)\n", isa.c_str(),
                        forced_isa_level().c_str());
            std::printf("  threads        : HL_NUM_THREADS=%s, %d CPUs allowed\n", threads.c_str(),
                        cpus_allowed);
            std::printf(
                "  time per call  : median %.3f ms, min %.3f ms, max %.3f ms, spread %.1f%%"
                " (%d calls after %d warm-up calls, %.2f s)\n",
                s.median * 1e3, s.min * 1e3, s.max * 1e3, spread * 100, repeats, warmup_calls,
                std::chrono::duration<double>(warm_end - warm_start).count());
            std::printf("  throughput     : %.1f GFLOP/s at the median\n", flops / s.median * 1e-9);
            if (!output_path.empty()) {
                std::printf("  output         : %s %s\n", output_path.c_str(),
                            shape_to_string(out.shape).c_str());
            }
        }
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac bench: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace mhac::cli
