// The projection GEMMs alone against the machine's sgemm ceiling, in one
// run: every projection kernel of the default CPU set (the same register
// tiles the fused kernels use for Q, K, V and the output) on the GEMM of
// every benchmark shape it can run, next to OpenBLAS's cblas_sgemm of the
// same M x K x N. Counter GFLOPs = 2 M K N per second; compare rows of one
// run only. Threads: HL_NUM_THREADS for mhac; OpenBLAS gets the same count.
// The kernels run as the runtime runs them: its thread pool and allocator,
// and MHAC_ISA to time a lower x86 level (e.g. the AVX2 kernels, with
// OPENBLAS_CORETYPE=Haswell for OpenBLAS, on an AVX-512 machine).
//
//   mhac_gemm_bench --benchmark_filter=bert_base_prefill_b1
#include <HalideBuffer.h>
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "halide_glue.h"
#include "mhac/default_sets.h"
#include "shapes.h"

namespace mhac::bench {
namespace {

using Halide::Runtime::Buffer;

// One projection GEMM of a shape: out[M, N] = in[M, K] x W[K, N] + b[N].
struct Gemm {
    int64_t m, k, n;
};

// The Q projection (B*T rows) and the K/V projections (B*S rows).
std::vector<Gemm> gemms_of(const BenchShape &s) {
    std::vector<Gemm> g{{s.batch * s.queries, s.query_features, s.num_heads * s.key_dim}};
    if (s.keys != s.queries)
        g.push_back({s.batch * s.keys, s.key_features, s.num_heads * s.key_dim});
    return g;
}

std::string gemm_name(const Gemm &g) {
    return std::to_string(g.m) + "x" + std::to_string(g.k) + "x" + std::to_string(g.n);
}

struct Operands {
    std::vector<float> a, w, bias, c;  // row-major [M, K], [K, N], [N], [M, N]
    explicit Operands(const Gemm &g) : a(g.m * g.k), w(g.k * g.n), bias(g.n), c(g.m * g.n) {
        std::mt19937 rng(2026);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (float &x : a) x = u(rng);
        for (float &x : w) x = u(rng);
        for (float &x : bias) x = u(rng);
    }
};

void set_gflops(benchmark::State &st, const Gemm &g) {
    st.counters["GFLOPs"] =
        benchmark::Counter(2.0 * g.m * g.k * g.n, benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
}

void run_mhac(benchmark::State &st, ProjectionFn fn, const Gemm &g) {
    Operands op(g);
    const int panels = static_cast<int>(packed_panels(g.n));
    // The runtime's packed layout: w(ji, e, jo) = W[e, jo * P + ji], zero padded.
    Buffer<float> packed(kPanelWidth, static_cast<int>(g.k), panels);
    packed.fill(0.0f);
    for (int64_t e = 0; e < g.k; e++)
        for (int64_t j = 0; j < g.n; j++)
            packed(static_cast<int>(j % kPanelWidth), static_cast<int>(e),
                   static_cast<int>(j / kPanelWidth)) = op.w[e * g.n + j];
    Buffer<float> in(op.a.data(), static_cast<int>(g.k), static_cast<int>(g.m));
    Buffer<float> bias(op.bias.data(), static_cast<int>(g.n));
    Buffer<float> out(op.c.data(), static_cast<int>(g.n), static_cast<int>(g.m));
    for (auto _ : st) {
        if (fn(in, packed, bias, out) != 0) {
            st.SkipWithError("projection kernel failed");
            return;
        }
    }
    set_gflops(st, g);
}

void run_openblas(benchmark::State &st, const Gemm &g) {
    Operands op(g);
    const char *threads = std::getenv("HL_NUM_THREADS");
    openblas_set_num_threads(threads ? std::atoi(threads)
                                     : static_cast<int>(std::thread::hardware_concurrency()));
    const int m = static_cast<int>(g.m), k = static_cast<int>(g.k), n = static_cast<int>(g.n);
    for (auto _ : st) {
        // Bias first, then C = A W + C: the same work as the projection.
        for (int i = 0; i < m; i++) std::copy(op.bias.begin(), op.bias.end(), &op.c[i * n]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, op.a.data(), k,
                    op.w.data(), n, 1.0f, op.c.data(), n);
        benchmark::DoNotOptimize(op.c.data());
    }
    set_gflops(st, g);
}

bool fits(const ConfigKernels &c, const BenchShape &s) {
    if (c.is_generic()) return true;
    return c.sizes.query_features == s.query_features && c.sizes.key_features == s.key_features &&
           c.sizes.num_heads == s.num_heads && c.sizes.key_dim == s.key_dim;
}

void register_all() {
    const KernelSet &set = *kernel_sets::all().front();
    for (const BenchShape &shape : kShapes) {
        for (const Gemm &g : gemms_of(shape)) {
            const std::string suffix = std::string("/") + shape.name + "/" + gemm_name(g);
            benchmark::RegisterBenchmark(("gemm/openblas_sgemm" + suffix).c_str(),
                                         [g](benchmark::State &st) { run_openblas(st, g); })
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
            for (size_t i = 0; i < set.num_configs; i++) {
                const ConfigKernels &c = set.configs[i];
                const NamedKernel<ProjectionFn> &proj = c.projection[kQueryProjection];
                if (!proj || !fits(c, shape)) continue;
                benchmark::RegisterBenchmark(
                    ("gemm/" + std::string(proj.name) + suffix).c_str(),
                    [fn = proj.fn, g](benchmark::State &st) { run_mhac(st, fn, g); })
                    ->Unit(benchmark::kMicrosecond)
                    ->UseRealTime();
            }
        }
    }
    benchmark::AddCustomContext("mhac_kernel_set", set.name);
    const char *threads = std::getenv("HL_NUM_THREADS");
    benchmark::AddCustomContext("HL_NUM_THREADS", threads ? threads : "(unset: one per core)");
}

}  // namespace
}  // namespace mhac::bench

int main(int argc, char **argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    try {
        mhac::detail::install_halide_hooks();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac_gemm_bench: %s\n", e.what());
        return 1;
    }
    mhac::bench::register_all();
    const size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return ran == 0 ? 1 : 0;
}
