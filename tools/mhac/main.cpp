// The mhac command-line tool.
//   mhac demo [--batch B] [--queries T] [--keys S] [--seed N]
//   mhac run ...           one Keras layer call from files (mhac run --help)
//   mhac bench ...         time one layer call, seeded or from .npy files (mhac bench --help)
//   mhac generate ...      kernels + registry for builds without CMake (mhac generate --help)
//   mhac tune ...          search schedule knobs on this machine, write the tuned database
//   mhac tune merge ...    combine tuned databases (mhac tune merge --help)
//   mhac inspect [DIR]     the compiled variants (name, targets, ISA levels, configuration,
//                          what tuned each kernel per ISA level)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "mhac/default_sets.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "random_layer.h"
#if MHAC_WITH_KERAS_IO
#include "bench_command.h"
#include "generate_command.h"
#include "run_command.h"
#include "tune_command.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double median_seconds(int repeats, F &&f) {
    std::vector<double> t;
    for (int i = 0; i < repeats; i++) {
        auto start = Clock::now();
        f();
        t.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

int demo(int argc, char **argv) {
    int64_t batch = 1, queries = 128, keys = 128;
    uint64_t seed = 2026;
    for (int i = 0; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        long long v = std::atoll(argv[i + 1]);
        if (flag == "--batch")
            batch = v;
        else if (flag == "--queries")
            queries = v;
        else if (flag == "--keys")
            keys = v;
        else if (flag == "--seed")
            seed = static_cast<uint64_t>(v);
        else {
            std::fprintf(stderr, "mhac demo: unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    // BERT-base-like self attention: N=12, H=64, E=768.
    mhac::testing::Sizes sz{batch, queries, keys, 768, 768, 768, 12, 64, 64, 768};
    auto layer_data = mhac::testing::make_random_layer(sz, true, seed);
    const mhac::KernelSet &kernels = mhac::kernel_sets::default_set();
    mhac::MultiHeadAttention layer(layer_data.config(), kernels);
    layer.set_weights(layer_data.keras_weights());

    mhac::TensorView q = layer_data.query_view(), v = layer_data.value_view(),
                     k = layer_data.key_view();
    mhac::CallOptions opts;
    opts.key = &k;
    mhac::CallResult result = layer.call(q, v, opts);
    double kernel_s =
        median_seconds(20, [&] { layer.call_into(q, v, opts, result.output.data.data()); });

    mhac::reference::Result ref;
    double ref_s = median_seconds(1, [&] {
        ref = mhac::reference::multi_head_attention(layer_data.reference_layer(),
                                                    layer_data.reference_call(false),
                                                    mhac::reference::Path::fused);
    });
    double max_err = 0.0, checksum = 0.0;
    for (size_t i = 0; i < result.output.data.size(); i++) {
        max_err = std::max(max_err, std::abs(double(result.output.data[i]) - ref.output[i]));
        checksum += result.output.data[i];
    }
    const double flops =
        2.0 * batch *
        (queries * 768.0 * 768 * 2 + keys * 768.0 * 768 * 2 + 2.0 * 12 * queries * keys * 64);
    std::printf("mhac demo: Keras MultiHeadAttention(num_heads=12, key_dim=64), E=768\n");
    std::printf("  kernel set     : %s [%s]\n", kernels.name, kernels.targets);
    std::printf("  chosen variant : %s\n", layer.last_selection().describe().c_str());
    std::printf("  why            : %s\n", layer.last_selection().reason);
    std::printf("  inputs         : query/key/value [%lld, %lld|%lld, 768], seed %llu\n",
                (long long)batch, (long long)queries, (long long)keys, (unsigned long long)seed);
    std::printf("  output shape   : %s\n", mhac::shape_to_string(result.output.shape).c_str());
    std::printf("  checksum       : %.6f\n", checksum);
    std::printf("  max |error|    : %.3g vs the float64 reference (tests/reference)\n", max_err);
    std::printf("  time per call  : kernel %.3f ms (%.1f GFLOP/s), reference %.1f ms\n",
                kernel_s * 1e3, flops / kernel_s * 1e-9, ref_s * 1e3);
    return max_err <= 1e-4 ? 0 : 1;
}

// The ISA levels (or device) a target ladder holds, for humans.
std::string levels_of(const std::string &targets) {
    std::string out;
    std::stringstream ss(targets);
    for (std::string t; ss >> t;) {
        std::string level = t.find("cuda") != std::string::npos           ? "cuda"
                            : t.find("avx512") != std::string::npos       ? "avx512"
                            : t.find("avx2") != std::string::npos         ? "avx2"
                            : t.find("sse41") != std::string::npos        ? "sse41"
                            : t.find("arm_dot_prod") != std::string::npos ? "armv8.2+dotprod+fp16"
                            : t.find("arm-64") != std::string::npos       ? "armv8"
                                                                          : t;
        out += (out.empty() ? "" : ", ") + level;
    }
    return out;
}

// What tuned a kernel, one ISA level per line.
template <typename Fn>
void print_kernel(const char *role, const mhac::NamedKernel<Fn> &k, const char *slot = nullptr) {
    std::printf("    %-10s %s%s%s%s\n", role, k.name, slot ? " (" : "", slot ? slot : "",
                slot ? ")" : "");
    std::string tuning = k.tuning ? k.tuning : "hand defaults";
    for (size_t start = 0; start <= tuning.size();) {
        size_t end = tuning.find("; ", start);
        if (end == std::string::npos) end = tuning.size();
        std::printf("               tuning %s\n", tuning.substr(start, end - start).c_str());
        start = end + 2;
    }
}

void print_set(const mhac::KernelSet &set) {
    std::printf("kernel set %s: device %s, targets %s (levels: %s)\n", set.name, set.device,
                set.targets, levels_of(set.targets).c_str());
    for (size_t i = 0; i < set.num_configs; i++) {
        const mhac::ConfigKernels &c = set.configs[i];
        const auto &s = c.sizes;
        std::printf(
            "  config %-10s heads=%d key_dim=%d value_dim=%d Eq=%d Ek=%d Ev=%d O=%d bias=%d%s\n",
            c.name, s.num_heads, s.key_dim, s.value_dim, s.query_features, s.key_features,
            s.value_features, s.output_features, s.use_bias,
            c.is_generic() ? " (sizes at run time)" : "");
        for (const auto &k : c.fused) {
            if (k) print_kernel("fused", k);
        }
        for (size_t b = 0; b < c.num_fused_buckets; b++) {
            const mhac::FusedBucket &fb = c.fused_buckets[b];
            const std::string range = std::string(fb.bucket) + ": " +
                                      mhac::mask_kind_name(fb.mask) + ", T " +
                                      std::to_string(fb.min_queries) + ".." +
                                      (fb.max_queries ? std::to_string(fb.max_queries) : "") +
                                      ", S " + std::to_string(fb.min_keys) + ".." +
                                      (fb.max_keys ? std::to_string(fb.max_keys) : "");
            print_kernel("fused", fb.kernel, range.c_str());
        }
        for (int p = 0; p < mhac::kProjectionSlots; p++) {
            print_kernel("projection", c.projection[p], mhac::kProjectionSlotNames[p]);
        }
        for (const auto &k : c.scores) print_kernel("scores", k);
        print_kernel("combine", c.combine);
    }
    for (const auto &by_mask : set.softmax.by_path_mask) {
        for (const auto &k : by_mask) print_kernel("softmax", k, "shared");
    }
}

// `mhac inspect [DIR]`: the variants compiled into this tool, or those a
// `mhac generate` run wrote to DIR (its manifest.json).
int inspect(int argc, char **argv) {
    if (argc == 0) {
        for (const mhac::KernelSet *set : mhac::kernel_sets::all()) print_set(*set);
        std::printf("MHAC_ISA=%s; CUDA: %s\n", mhac::forced_isa_level().c_str(),
                    mhac::cuda_device_info().usable ? mhac::cuda_device_info().name.c_str()
                                                    : mhac::cuda_device_info().reason.c_str());
        return 0;
    }
#if MHAC_WITH_KERAS_IO
    return mhac::cli::inspect_generated(argv[0]);
#else
    (void)argv;
    std::fprintf(stderr, "mhac inspect DIR needs a build with MHAC_WITH_KERAS_IO\n");
    return 2;
#endif
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help")) {
        std::printf(
            "usage: mhac demo [--batch B] [--queries T] [--keys S] [--seed N]\n"
            "       mhac run ... (see mhac run --help)\n"
            "       mhac bench ... (see mhac bench --help)\n"
            "       mhac generate --config cfg.json --targets T1,T2 -o DIR\n"
            "       mhac inspect [DIR]\n"
            "       mhac tune ... (see mhac tune --help; mhac tune merge --help)\n");
        return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    try {
        if (cmd == "demo") return demo(argc - 2, argv + 2);
#if MHAC_WITH_KERAS_IO
        if (cmd == "run") return mhac::cli::run_command(argc - 2, argv + 2);
        if (cmd == "generate") return mhac::cli::generate_command(argc - 2, argv + 2);
        if (cmd == "bench") return mhac::cli::bench_command(argc - 2, argv + 2);
        if (cmd == "tune") return mhac::cli::tune_command(argc - 2, argv + 2);
        if (cmd == "tune-worker") return mhac::cli::tune_worker_command(argc - 2, argv + 2);
#endif
        if (cmd == "inspect" || cmd == "variants") return inspect(argc - 2, argv + 2);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
    std::fprintf(stderr, "mhac: unknown command '%s'\n", cmd.c_str());
    return 2;
}
