// Google Benchmark over every (kernel set x path x configuration x shape)
// the linked kernel sets can run, named mha/<variant name>/<shape>, e.g.
// mha/bert_base/fused/none/keras-fused/bert_base_prefill_b1 (CUDA sets:
// mha/cuda86:bert_base/...). Sets and configurations come from the generated
// registries (mhac::kernel_sets::all()) and shapes from shapes.h; nothing is
// listed here.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "alloc_counter.h"
#include "cpu_load.h"
#include "mhac/default_sets.h"
#include "mhac/mha.h"
#include "random_layer.h"
#include "shapes.h"

namespace mhac::bench {
namespace {

constexpr uint64_t kSeed = 2026;  // same data as `mhac demo`

// Multiply-adds count 2 FLOPs; bias adds, the 1/sqrt(H) scale and the
// softmax are not counted (lower order, and the convention of
// flash-attention's and XNNPACK's attention benchmarks):
//   Q projection  [B*T, Eq] x [Eq, N*H]    2*B*T*Eq*N*H
//   K projection  [B*S, Ek] x [Ek, N*H]    2*B*S*Ek*N*H
//   V projection  [B*S, Ev] x [Ev, N*Hv]   2*B*S*Ev*N*Hv
//   scores        Q.K^T per head           2*B*N*T*S*H
//   combine       P.V per head             2*B*N*T*S*Hv
//   O projection  [B*T, N*Hv] x [N*Hv, O]  2*B*T*N*Hv*O
double flops_per_call(const BenchShape &s) {
    const double B = s.batch, T = s.queries, S = s.keys, N = s.num_heads, H = s.key_dim,
                 Hv = s.value_dim;
    return 2.0 * B *
           (T * s.query_features * N * H + S * s.key_features * N * H +
            S * s.value_features * N * Hv + N * T * S * (H + Hv) + T * N * Hv * s.output_features);
}

// Every input, weight, bias and output read or written once (float32); the
// scores [B, N, T, S] only on the staged path, where they are returned.
// Intermediates are not counted: this is the traffic a call cannot avoid.
double bytes_per_call(const BenchShape &s, bool with_scores) {
    const double B = s.batch, T = s.queries, S = s.keys, N = s.num_heads, H = s.key_dim,
                 Hv = s.value_dim, O = s.output_features;
    const double inputs = B * T * s.query_features + B * S * (s.key_features + s.value_features);
    const double weights = (s.query_features + 1) * N * H + (s.key_features + 1) * N * H +
                           (s.value_features + 1) * N * Hv + N * Hv * O + O;
    const double outputs = B * T * O + (with_scores ? B * N * T * S : 0.0);
    return 4.0 * (inputs + weights + outputs);
}

// The random layer of each shape, made on first use so a filtered run only
// pays for the shapes it runs.
const testing::RandomLayer &layer_data(const BenchShape &shape) {
    static std::map<std::string, std::unique_ptr<testing::RandomLayer>> cache;
    auto &slot = cache[shape.name];
    if (!slot) {
        slot = std::make_unique<testing::RandomLayer>(
            testing::make_random_layer(shape.sizes(), /*use_bias=*/true, kSeed));
    }
    return *slot;
}

// One benchmark's layer (weights packed once) and output buffers. Google
// Benchmark calls the function several times while sizing the run; the
// fixture, owned by the registered lambda, outlives those calls.
struct Fixture {
    MultiHeadAttention layer;
    TensorView query, key, value;
    std::vector<float> output, scores;
};

bool g_any_error = false;  // a benchmark called SkipWithError: main fails

void fail(benchmark::State &state, const std::string &why) {
    g_any_error = true;
    state.SkipWithError(why.c_str());
}

void run_mha(benchmark::State &state, std::unique_ptr<Fixture> &fx, const BenchShape &shape,
             const KernelSet &kernels, const ConfigKernels &config, Path path) {
    if (!fx) {
        const testing::RandomLayer &data = layer_data(shape);
        fx.reset(new Fixture{MultiHeadAttention(data.config(), kernel_sets::all()),
                             data.query_view(),
                             data.key_view(),
                             data.value_view(),
                             {},
                             {}});
        fx->layer.set_weights(data.keras_weights());
        fx->output.resize(static_cast<size_t>(shape.batch * shape.queries * shape.output_features));
        if (path == Path::staged) {
            fx->scores.resize(
                static_cast<size_t>(shape.batch * shape.num_heads * shape.queries * shape.keys));
        }
    }

    CallOptions opts;
    opts.key = &fx->key;
    opts.return_attention_scores = path == Path::staged;
    opts.force_config = config.name;
    opts.force_kernel_set = kernels.name;
    float *scores = fx->scores.empty() ? nullptr : fx->scores.data();

    try {
        // Untimed first call: sizes the layer's scratch and faults in pages.
        fx->layer.call_into(fx->query, fx->value, opts, fx->output.data(), scores);
    } catch (const Error &e) {
        fail(state, e.what());
        return;
    }
    const Selection &sel = fx->layer.last_selection();
    if (sel.kernel_set != &kernels || sel.config != &config || sel.path != path) {
        fail(state, "ran " + sel.describe() + ", not the forced configuration " + config.name);
        return;
    }

    const uint64_t allocs_before = heap_allocations();
    const CpuSample load_before = sample_cpu();
    for (auto _ : state) {
        fx->layer.call_into(fx->query, fx->value, opts, fx->output.data(), scores);
        benchmark::ClobberMemory();
    }
    const CpuSample load_after = sample_cpu();
    const double allocs = static_cast<double>(heap_allocations() - allocs_before);

    state.counters["FLOP"] =
        benchmark::Counter(flops_per_call(shape), benchmark::Counter::kIsIterationInvariantRate);
    state.SetBytesProcessed(static_cast<int64_t>(bytes_per_call(shape, path == Path::staged)) *
                            state.iterations());
    // C++ heap allocations per call inside the runtime (the loop itself
    // makes none); Halide's own mallocs are not seen.
    state.counters["allocs"] = benchmark::Counter(allocs, benchmark::Counter::kAvgIterations);
    // Other processes' share of the machine during the loop: on a shared
    // machine, repetitions with a high value are disturbed (see README.md).
    if (cpu_load_available()) {
        state.counters["foreign_load"] = foreign_load(load_before, load_after);
    }
    // "<config>/<path>/<mask>/<keras path> (<kernel symbols>) on <ISA level>"
    state.SetLabel(sel.describe() + " on " +
                   (sel.on_device() ? cuda_device_info().name : isa_level_in_use()));
}

// Whether `config` can run `shape` on `path`: asks the runtime's one
// selection function, so the matching rules are not repeated here.
bool can_run(const KernelSet &kernels, const ConfigKernels &config, const BenchShape &shape,
             Path path) {
    Problem p;
    p.batch = shape.batch;
    p.queries = shape.queries;
    p.keys = shape.keys;
    p.query_features = shape.query_features;
    p.key_features = shape.key_features;
    p.value_features = shape.value_features;
    p.num_heads = static_cast<int>(shape.num_heads);
    p.key_dim = static_cast<int>(shape.key_dim);
    p.value_dim = static_cast<int>(shape.value_dim);
    p.output_features = shape.output_features;
    p.use_bias = true;
    // Keras takes its explicit (einsum) path when the scores are returned.
    p.keras_path = path == Path::staged ? KerasPath::explicit_scores : KerasPath::fused;
    try {
        select_variant(kernels, p, config.name);
        return true;
    } catch (const Error &) {
        return false;
    }
}

void register_set(const KernelSet &kernels) {
    for (Path path : {Path::fused, Path::staged}) {
        // Keras takes its explicit path when the scores are returned.
        const KerasPath keras =
            path == Path::staged ? KerasPath::explicit_scores : KerasPath::fused;
        for (size_t c = 0; c < kernels.num_configs; c++) {
            const ConfigKernels &config = kernels.configs[c];
            for (const BenchShape &shape : kShapes) {
                const int64_t scores = shape.batch * shape.num_heads * shape.queries * shape.keys;
                if (path == Path::staged && scores > kMaxStagedScores) continue;
                if (!can_run(kernels, config, shape, path)) continue;
                const std::string name = "mha/" +
                                         variant_name(config.name, path, MaskKind::none, keras,
                                                      kernels.compute_capability) +
                                         "/" + shape.name;
                auto fixture = std::make_shared<std::unique_ptr<Fixture>>();
                benchmark::RegisterBenchmark(
                    name.c_str(),
                    [fixture, &shape, &kernels, &config, path](benchmark::State &st) {
                        run_mha(st, *fixture, shape, kernels, config, path);
                    })
                    ->Unit(benchmark::kMicrosecond)
                    // The runtime's thread pool runs the kernels: the calling
                    // thread's CPU time would undercount.
                    ->UseRealTime();
            }
        }
    }
}

void register_all() {
    // CUDA sets only where a usable device exists (tools/dev gpu-check).
    for (const KernelSet *set : kernel_sets::all()) {
        if (std::string(set->device) == "cpu" || cuda_device_info().usable) register_set(*set);
    }
    const KernelSet &kernels = *kernel_sets::all().front();
    benchmark::AddCustomContext("mhac_kernel_set", kernels.name);
    benchmark::AddCustomContext("mhac_targets", kernels.targets);
    const char *threads = std::getenv("HL_NUM_THREADS");
    benchmark::AddCustomContext("HL_NUM_THREADS", threads ? threads : "(unset: one per core)");
    const char *isa = std::getenv("MHAC_ISA");
    benchmark::AddCustomContext("MHAC_ISA", isa ? isa : "(unset: auto)");
}

}  // namespace
}  // namespace mhac::bench

int main(int argc, char **argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    mhac::bench::register_all();
    const size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (ran == 0) std::fprintf(stderr, "mhac_bench: no benchmark matched the filter\n");
    return ran == 0 || mhac::bench::g_any_error ? 1 : 0;
}
