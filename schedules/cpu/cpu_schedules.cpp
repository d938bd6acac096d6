// Hand-written CPU schedules (x86 ISA levels; also used for arm-64 until it
// gets its own table). Knobs come from one table per vector width.
//
// Measured on the 2-core Intel Xeon (Emerald Rapids, 2.1 GHz) build machine,
// x86-64-linux-avx512_skylake, bench/mha_bench.cpp, 2 threads, 2026-11-26
// (bench/results/x86_xeon_emerald_rapids_2vcpu.md):
// - fused, bert_base, B=1 T=S=128: 3.0-4.7 ms = 140-215 GFLOP/s (83 GFLOP/s on
//   one thread); this VM's speed varied up to 2x between runs minutes apart.
//   The generic fused kernel runs the same schedule at 47-51 GFLOP/s in the
//   same runs: without constant extents the panel loops do not unroll.
// - Rejected: the batch loop inside the panel loop of the Q/K/V GEMMs (to
//   stream each panel once for B=8): 26.8 vs 26.6 ms at B=8, back to back.
// - gemm_rows_short: rows < gemm_rows used to run one row per weight-panel
//   pass; 4-row tiles took the demo at B=2 T=7 S=9 from 3.4 to 1.5 ms.
// - staged bert_base B=1: 16.3 ms (40 GFLOP/s): scores and softmax have
//   simple, untuned schedules and the T x S probabilities are materialized.
// - Rejected (2-core AMD EPYC, AVX2, 2026-12-01, mhac_bench, 2 threads, best
//   of 3 interleaved runs): register-tiling the fused core's Q.K^T and P.V
//   (2 vectors x the row block, reduction inside) instead of accumulating in
//   L1: bert_base prefill_b1 6.14 -> 6.95 ms, seq512 39.6 -> 42.2 ms, vit
//   11.4 -> 12.5 ms; generic mixed (prefill 20.1 -> 17.8, seq512 91.9 -> 109).
#include "schedules.h"

namespace mhac::sched {

using namespace Halide;

namespace {

struct CpuKnobs {
    int vector;     // floats per SIMD register
    int gemm_rows;  // rows per GEMM register tile; kPanelWidth / vector * rows ~ 12 accumulators
    // Rows per tile when fewer than gemm_rows rows exist (short sequences,
    // decode): a weight panel still serves several rows per pass.
    int gemm_rows_short;
    // Work (multiply-adds) below which a stage runs serially: the thread
    // pool's wake-up costs more than it saves on tiny shapes (untuned).
    int parallel_min_work;
};

CpuKnobs knobs_for(const Target &target) {
    const int vector = target.natural_vector_size<float>();
    CpuKnobs k{vector, 6, 2, 1 << 17};
    // 12 accumulators out of 16 (AVX2/SSE) or 32 (AVX-512) registers.
    if (vector >= 16) k.gemm_rows = 12, k.gemm_rows_short = 4;
    if (vector <= 4) k.gemm_rows = 3, k.gemm_rows_short = 1;
    return k;
}

// The pure loop vars of a Func, by position.
Var arg(const Func &f, int i) {
    return f.args()[i];
}

// Work estimates multiply four or five extents: in 32 bits they overflow at
// long sequences (T = S = 4096, E = 512 is 8.6e9), which turned the
// parallel specializations off exactly where they matter most. Measured on
// the 2-core AMD EPYC (AVX2), generic fused, long_4096, best of 3: 2 threads
// 3.91 s -> 2.13 s (1 thread 4.01 / 3.79 s, so 2 threads now take 0.56x of
// one instead of 0.97x); BERT shapes unchanged within 5%.
Expr work_of(std::initializer_list<Expr> extents) {
    Expr w = cast<int64_t>(1);
    for (const Expr &e : extents) w = w * cast<int64_t>(e);
    return w;
}

enum class PanelOrder {
    panels_outside_rows,  // stream every row block past one weight panel (weights stay in cache)
    rows_outside_panels,  // finish a block of rows across all panels (its producers stay in cache)
};

struct GemmLoops {
    Var jo{"jo"}, ji{"ji"}, mo{"mo"}, mi{"mi"};
};

// Register-tiles out(j, m, rest...) = acc(j, m, rest...) (+ bias), where
// acc reduces over p.r: a kPanelWidth x gemm_rows tile of accumulators.
// Shapes with fewer rows than a tile run one row at a time.
GemmLoops schedule_gemm(Func out, gen::Projection p, const Expr &rows, const Expr &work,
                        const CpuKnobs &k, PanelOrder order, bool allow_parallel) {
    GemmLoops l;
    Var j = arg(out, 0), m = arg(out, 1);
    const int R = k.gemm_rows;
    out.split(j, l.jo, l.ji, gen::kPanelWidth, TailStrategy::GuardWithIf);

    auto tile = [&](Stage s, int rows_per_tile, bool parallel) {
        s.split(m, l.mo, l.mi, rows_per_tile,
                rows_per_tile > 1 ? TailStrategy::ShiftInwards : TailStrategy::Auto);
        if (order == PanelOrder::panels_outside_rows) {
            s.reorder(l.ji, l.mi, l.mo, l.jo);
            if (parallel) s.parallel(l.jo);
        } else {
            s.reorder(l.ji, l.mi, l.jo, l.mo);
            if (parallel) s.parallel(l.mo);
        }
        s.vectorize(l.ji, k.vector).unroll(l.mi);
    };
    const int Rs = k.gemm_rows_short;
    if (allow_parallel) tile(out.specialize(rows >= R && work >= k.parallel_min_work), R, true);
    tile(out.specialize(rows >= R), R, false);
    if (Rs > 1) tile(out.specialize(rows >= Rs), Rs, false);
    tile(out, 1, false);

    Var aj = arg(p.acc, 0), am = arg(p.acc, 1);
    RVar e = p.r.x;
    // One panel x one row block of accumulators, whichever loop is inner.
    p.acc.compute_at(out, order == PanelOrder::panels_outside_rows ? l.mo : l.jo)
        .bound_extent(aj, gen::kPanelWidth)
        .vectorize(aj, k.vector)
        .unroll(aj)
        .unroll(am);
    p.acc.update().reorder(aj, am, e).vectorize(aj, k.vector).unroll(aj).unroll(am);
    return l;
}

}  // namespace

void cpu_schedule_projection(ProjectionPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target);
    Expr rows = p.output.output_buffer().dim(1).extent();
    Expr work = work_of({rows, p.output.output_buffer().dim(0).extent(), p.proj.r.x.extent()});
    schedule_gemm(p.output, p.proj, rows, work, k, PanelOrder::panels_outside_rows, true);
}

void cpu_schedule_scores(ScoresPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target);
    Func out = p.output;
    Var s = arg(out, 0), t = arg(out, 1), n = arg(out, 2), b = arg(out, 3);
    Var nb("nb");
    Expr work = work_of({out.output_buffer().dim(0).extent(), out.output_buffer().dim(1).extent(),
                         out.output_buffer().dim(2).extent(), out.output_buffer().dim(3).extent(),
                         p.logits.r.x.extent()});
    out.fuse(n, b, nb).vectorize(s, k.vector, TailStrategy::GuardWithIf);
    out.specialize(work >= k.parallel_min_work).parallel(nb);
    Func dot = p.logits.dot;
    dot.compute_at(out, t).vectorize(arg(dot, 0), k.vector, TailStrategy::GuardWithIf);
    dot.update()
        .reorder(arg(dot, 0), p.logits.r.x)
        .vectorize(arg(dot, 0), k.vector, TailStrategy::GuardWithIf);
}

void cpu_schedule_softmax(SoftmaxPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target);
    Func out = p.output;
    Var s = arg(out, 0), t = arg(out, 1), n = arg(out, 2), b = arg(out, 3);
    Var rows("rows");
    Expr work = work_of({out.output_buffer().dim(0).extent(), out.output_buffer().dim(1).extent(),
                         out.output_buffer().dim(2).extent(), out.output_buffer().dim(3).extent()});
    out.fuse(t, n, rows).fuse(rows, b, rows).vectorize(s, k.vector, TailStrategy::GuardWithIf);
    out.specialize(work >= k.parallel_min_work / 8).parallel(rows);
    gen::MaskedSoftmax sm = p.softmax;
    sm.row_max.compute_at(out, rows);
    sm.row_sum.compute_at(out, rows);
    sm.exp_shifted.compute_at(out, rows).vectorize(arg(sm.exp_shifted, 0), k.vector,
                                                   TailStrategy::GuardWithIf);
}

void cpu_schedule_combine(CombinePipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target);
    Func out = p.output;
    Var g = arg(out, 0), n = arg(out, 1), t = arg(out, 2), b = arg(out, 3);
    Var tb("tb");
    Expr work = work_of({out.output_buffer().dim(0).extent(), out.output_buffer().dim(1).extent(),
                         out.output_buffer().dim(2).extent(), out.output_buffer().dim(3).extent(),
                         p.combine.r.x.extent()});
    out.fuse(t, b, tb).vectorize(g, k.vector, TailStrategy::GuardWithIf);
    out.specialize(work >= k.parallel_min_work).parallel(tb);
    Func ctx = p.combine.context;
    Var cg = arg(ctx, 0), cn = arg(ctx, 1);
    ctx.compute_at(out, tb).vectorize(cg, k.vector, TailStrategy::GuardWithIf);
    ctx.update().reorder(cg, p.combine.r.x, cn).vectorize(cg, k.vector, TailStrategy::GuardWithIf);
}

void cpu_schedule_fused(FusedPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target);
    Func out = p.output;
    Expr queries = out.output_buffer().dim(1).extent();
    Expr batch = out.output_buffer().dim(2).extent();
    Expr out_features = out.output_buffer().dim(0).extent();

    // Q, K and V projections: whole tensors, register-tiled GEMMs.
    auto project_root = [&](gen::Projection &proj, const Expr &rows) {
        proj.out.compute_root();
        Expr work = work_of({rows, batch, proj.r.x.extent(), gen::kPanelWidth});
        schedule_gemm(proj.out, proj, rows, work, k, PanelOrder::panels_outside_rows, true);
    };
    Expr keys = p.combine.r.x.extent();
    project_root(p.q_proj, queries);
    project_root(p.k_proj, keys);
    project_root(p.v_proj, keys);

    // Output projection, a block of query rows at a time; each block's
    // attention context (all heads) is computed just before it and stays in
    // cache. The T x S logits exist one head and one row block at a time.
    Expr work = work_of({queries, batch, out_features, keys});
    GemmLoops l =
        schedule_gemm(out, p.o_proj, queries, work, k, PanelOrder::rows_outside_panels, true);

    // Head dims known only at run time (the generic kernel) make the flat
    // index of the biases and of the context (j % H, j / H) an integer
    // division per element, which x86 cannot vectorize: inlined into the
    // GEMM epilogues and the output projection's reduction it ran once per
    // multiply-add row and panel. Materialized, it runs once per element.
    // AMD EPYC, 2 threads, best of 3 interleaved: generic fused decode 36.1
    // -> 30.8 ms, prefill_b1 16.1 -> 15.0, seq512 76.2 -> 70.6, tiny 0.049
    // -> 0.038 ms; specialized rows are not affected (their dims are constant).
    if (p.static_key_dim == 0) {
        for (Func *bias : {&p.q_bias, &p.k_bias, &p.v_bias}) bias->compute_root();
    }
    if (p.static_value_dim == 0) {
        p.context_flat.compute_at(out, l.mo).vectorize(arg(p.context_flat, 0), k.vector,
                                                       TailStrategy::GuardWithIf);
    }

    Func ctx = p.combine.context;
    Var cg = arg(ctx, 0), cn = arg(ctx, 1), ct = arg(ctx, 2);
    ctx.compute_at(out, l.mo).vectorize(cg, k.vector, TailStrategy::GuardWithIf);
    ctx.update()
        .reorder(cg, ct, p.combine.r.x, cn)
        .vectorize(cg, k.vector, TailStrategy::GuardWithIf);

    gen::MaskedSoftmax sm = p.softmax;
    sm.row_max.compute_at(ctx, cn);
    sm.row_sum.compute_at(ctx, cn);
    sm.exp_shifted.compute_at(ctx, cn).vectorize(arg(sm.exp_shifted, 0), k.vector,
                                                 TailStrategy::GuardWithIf);

    // K transposed once per batch so the logits vectorize over keys.
    Func dot = p.logits.dot;
    Func k_t = p.k.in(dot);
    k_t.compute_at(out, arg(out, 2))
        .reorder_storage(arg(k_t, 2), arg(k_t, 0), arg(k_t, 1), arg(k_t, 3))
        .reorder(arg(k_t, 2), arg(k_t, 0), arg(k_t, 1), arg(k_t, 3))
        .vectorize(arg(k_t, 2), k.vector, TailStrategy::GuardWithIf);
    dot.compute_at(ctx, cn).vectorize(arg(dot, 0), k.vector, TailStrategy::GuardWithIf);
    dot.update()
        .reorder(arg(dot, 0), arg(dot, 1), p.logits.r.x)
        .vectorize(arg(dot, 0), k.vector, TailStrategy::GuardWithIf);
}

}  // namespace mhac::sched
