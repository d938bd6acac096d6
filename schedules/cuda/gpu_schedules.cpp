// CUDA schedules (every CUDA target of the kernel table; newer GPUs JIT the PTX).
//
// Untuned. First measured on an NVIDIA H200 (driver 580.159.04, the cuda86
// set's PTX JIT-compiled for sm_90), 2026-12-04, `tools/dev gpu-check` and
// ncu (bench/results/cuda-NVIDIA_H200-notes.md): every CUDA test passes;
// fused bert_base B=1 T=128 0.56 ms a call with the copies, PyTorch's SDPA
// layer 0.23 ms on the same GPU, long_4096 21.9 ms against 3.1. Of the GPU
// time of a bert_base call, the output projection kernel took 275 us and
// each Q/K/V projection 38 us (4 TFLOP/s): the GEMMs are the first knobs to
// measure.
//
// Shape of every schedule: two pure dims tiled into blocks x threads, the
// remaining dims fused into the third block dimension, reductions run by each
// thread over its own output. The projections (GEMMs) keep their per-thread
// accumulators in registers and, for known input widths, stage the block's
// input rows in shared memory, loaded cooperatively by the block.
#include "schedules.h"

namespace mhac::sched {

using namespace Halide;

namespace {

struct GpuKnobs {
    int tile_x = 32;                   // threads along the contiguous dim (one warp)
    int tile_y = 8;                    // threads along the second dim
    int max_staged_bytes = 32 * 1024;  // shared memory a GEMM block may stage
};

GpuKnobs knobs_for(const Target &) {
    return {};
}

Var arg(const Func &f, int i) {
    return f.args()[i];
}

// Tiles stage `st` of a function with pure vars `vars` (x, y, rest...) onto
// the GPU: x, y split into blocks x threads, the rest fused into one more
// block dimension. `reductions` (innermost first) run inside each thread.
void gpu_tile_stage(Stage st, const std::vector<Var> &vars, const GpuKnobs &k,
                    const std::vector<RVar> &reductions = {}) {
    Var x = vars[0], y = vars[1];
    Var xo("gxo"), yo("gyo"), xi("gxi"), yi("gyi"), rest("grest");
    st.split(x, xo, xi, k.tile_x, TailStrategy::GuardWithIf)
        .split(y, yo, yi, k.tile_y, TailStrategy::GuardWithIf);
    std::vector<VarOrRVar> order;
    for (const RVar &r : reductions) order.emplace_back(r);
    order.insert(order.end(), {xi, yi, xo, yo});
    if (vars.size() > 2) {
        Var fused = vars[2];
        for (size_t i = 3; i < vars.size(); i++) {
            Var next("gfuse" + std::to_string(i));
            st.fuse(fused, vars[i], next);
            fused = next;
        }
        order.emplace_back(fused);
        st.reorder(order);
        st.gpu_blocks(xo, yo, fused).gpu_threads(xi, yi);
        return;
    }
    st.reorder(order);
    st.gpu_blocks(xo, yo).gpu_threads(xi, yi);
}

void gpu_tile_func(Func f, const GpuKnobs &k, const std::vector<RVar> &reductions = {}) {
    f.compute_root();
    gpu_tile_stage(f, f.args(), k);
    for (int u = 0; u < f.num_update_definitions(); u++) {
        gpu_tile_stage(f.update(u), f.args(), k, reductions);
    }
}

// GEMM out(j, m, rest...) = acc (+ bias): a block computes a tile_x x
// tile_y tile, one output per thread with its accumulator in a register.
// When the input width is known and small enough, the block first stages its
// tile_y input rows in shared memory (a cooperative load, reused by tile_x
// threads each).
void gpu_gemm(Func out, gen::Projection p, int static_in_features, const GpuKnobs &k) {
    std::vector<Var> vars = out.args();
    Var j = vars[0], m = vars[1];
    Var jo("jo"), mo("mo"), ji("ji"), mi("mi");
    out.split(j, jo, ji, k.tile_x, TailStrategy::GuardWithIf)
        .split(m, mo, mi, k.tile_y, TailStrategy::GuardWithIf);
    if (vars.size() > 2) {
        out.reorder(ji, mi, jo, mo, vars[2]).gpu_blocks(jo, mo, vars[2]).gpu_threads(ji, mi);
    } else {
        out.reorder(ji, mi, jo, mo).gpu_blocks(jo, mo).gpu_threads(ji, mi);
    }
    p.acc.compute_at(out, ji);
    if (static_in_features > 0 &&
        static_in_features * k.tile_y * int(sizeof(float)) <= k.max_staged_bytes) {
        Func staged = p.in.in(p.acc);
        Var so("so"), si("si");
        staged.compute_at(out, jo)
            .split(arg(staged, 0), so, si, k.tile_x, TailStrategy::GuardWithIf)
            .reorder(si, arg(staged, 1), so)
            .gpu_threads(si, arg(staged, 1));
    }
}

}  // namespace

void gpu_schedule_projection(ProjectionPipeline &p, const Target &target) {
    gpu_gemm(p.output, p.proj, p.static_in_features, knobs_for(target));
}

void gpu_schedule_scores(ScoresPipeline &p, const Target &target) {
    const GpuKnobs k = knobs_for(target);
    gpu_tile_stage(p.output, p.output.args(), k);
    gpu_tile_func(p.logits.dot, k, {p.logits.r.x});
}

void gpu_schedule_softmax(SoftmaxPipeline &p, const Target &target) {
    const GpuKnobs k = knobs_for(target);
    gpu_tile_stage(p.output, p.output.args(), k);
    // Row statistics: one thread per (t, n, b) row, looping over keys.
    gpu_tile_func(p.softmax.row_max, k, {p.softmax.r.x});
    gpu_tile_func(p.softmax.row_sum, k, {p.softmax.r.x});
}

void gpu_schedule_combine(CombinePipeline &p, const Target &target) {
    const GpuKnobs k = knobs_for(target);
    gpu_tile_stage(p.output, p.output.args(), k);
    Func ctx = p.combine.context;
    gpu_tile_func(ctx, k, {p.combine.r.x});
}

int gpu_default_key_block(const Target &) {
    return 64;  // untuned: one warp-multiple of keys per block
}

int gpu_vector_tile(const Target &, int key_block) {
    // One vector tile per block keeps K and V in their plain (key, head dim)
    // layouts.
    return key_block;
}

void gpu_schedule_fused(FusedPipeline &p, const Target &target) {
    // The fused pipeline on the GPU materializes each stage of the key-block
    // attention in device memory (one kernel each); a single flash kernel
    // with shared-memory tiles is future work.
    const GpuKnobs k = knobs_for(target);
    for (gen::Projection *proj : {&p.q_proj, &p.k_proj, &p.v_proj}) {
        proj->out.compute_root();
        gpu_gemm(proj->out, *proj, 0, k);
    }
    gen::FlashAttention &a = p.attn;
    gpu_tile_func(a.k_blocked, k);
    gpu_tile_func(a.v_blocked, k);
    gpu_tile_func(a.dot, k, {a.r_h});
    gpu_tile_func(a.block_max, k, {a.r_si});
    gpu_tile_func(a.block_exp, k);
    gpu_tile_func(a.block_sum, k, {a.r_si});
    gpu_tile_func(a.block_pv, k, {a.r_si});
    gpu_tile_func(a.block_out, k);
    gpu_tile_func(a.row_max, k, {a.r_kb});
    gpu_tile_func(a.weight, k);
    gpu_tile_func(a.merged, k, {a.r_kb});
    gpu_tile_func(a.context, k);
    gpu_gemm(p.output, p.o_proj, 0, k);
}

}  // namespace mhac::sched
