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
//   That core kept all S logits of a row block; the flash core below (key
//   blocks, K and V staged per block) register-tiles both products and wins.
// - Flash core (2-core AMD EPYC, AVX2, 2026-12-01, the fused kernel alone in
//   a side-by-side timer, 2 threads, same run): long 1,4096,4096,512,8,64 on
//   the generic kernel 8.8 s -> 0.65 s (1 thread 1.23 s); bert_base seq512
//   48.7 -> 30.5 ms, vit 14.0 -> 10.9, prefill_b1 7.95 -> 7.19, b8 60.3 ->
//   49.6; the generic kernel at 1.0-1.1x the bert_base row on those shapes.
//   T = S = 8192 (E=512, N=8) peaks at 153 MB RSS in `mhac bench`.
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

#include "schedules.h"

namespace mhac::sched {

using namespace Halide;

namespace {

struct CpuKnobs {
    // The values below are the defaults before knobs_for() adjusts them
    // per target and applies a kernel's overrides.
    int vector = 0;     // floats per SIMD register: the target's, set by knobs_for()
    int gemm_rows = 6;  // rows per GEMM register tile; tile width / vector * rows accumulators
    // Rows per tile when fewer than gemm_rows rows exist (short sequences,
    // decode): a weight panel still serves several rows per pass.
    int gemm_rows_short = 2;
    // Rows per projection tile where they divide the rows exactly and
    // gemm_rows tiles would recompute 2% or more of them (exact_tiles); 0 =
    // off. Measured: see knobs_for().
    int gemm_rows_exact = 0;
    // Work (multiply-adds) below which a stage runs serially: the thread
    // pool's wake-up costs more than it saves on tiny shapes (untuned).
    int parallel_min_work = 1 << 17;
    // Query rows per attention block (rounded to gemm_rows, blocks near-equal):
    // every K/V block is read once per query block. Same run: 96 rows took
    // long from 0.54 to 0.45 s (24 rows: 0.67 s) with BERT shapes within
    // noise (prefill_b1 6.2 -> 6.4 ms, vit 11.0 -> 11.5, seq512 28.3 -> 31.4
    // median but 26.7 min); 144 and 192 measured only on a loaded machine.
    int query_block = 96;
    // Input features per GEMM pass over a panel (BLIS's kc); 0 = the whole
    // row. Rejected as a default (quiet EPYC, bert_base fused, 1 thread, same
    // run): 256 took prefill_b1 from 13.6 to 14.9 ms and b8 from 102 to 112
    // ms (128: 15.0 and 114); the accumulators' memory round trips cost more
    // than the L1-resident panel slice saves. Kept as a knob for the tuner.
    int gemm_k_block = 0;
    // Reduction steps per iteration of the register tile's loop. 8 with
    // AVX-512, 4 on x86 below it, 1 elsewhere: see knobs_for(). Earlier, on the 2-core
    // AMD EPYC (Zen 3), 1 thread, a JIT sweep of the projection GEMM alone
    // favoured 4 steps too (128 rows 63-69 -> 70-72 GFLOP/s, 1024 rows 66-73
    // -> 76-80), but AOT runs of separate binaries there were too noisy to
    // tell (OpenBLAS's own times moved -14% to +21% between them).
    int gemm_k_unroll = 1;
    // Weight panels (kPanelWidth columns each) per GEMM register tile. With
    // AVX-512 one panel is one vector, so a one-panel tile issues a weight
    // load and a broadcast per FMA and is load-bound; two panels share each
    // broadcast between two FMAs. At most kPanelGroup (the packed kernels'
    // padding). Measured: see knobs_for().
    int gemm_panels = 1;
    // Input rows per pass over the weights (BLIS's mc): longer inputs are
    // cut into near-equal blocks of whole tiles, about this many rows,
    // each streaming every weight panel, so a block's rows stay in L2 while
    // the panels pass instead of coming from L3 once per panel.
    int gemm_row_block = 128;
    // Whether V is copied into key-block tiles (v_blocked) before P.V reads
    // it, or read where the V projection wrote it (its rows are contiguous
    // runs of every head's columns already). A decode step reads every value
    // row once, so there the copy is a memory-bound pass for nothing.
    // Measured: see knobs_for(). K stays staged: read in place, Q.K^T is a
    // dot product per key over strided rows (decode S=2048 0.97x).
    bool v_staging = true;
    // Reduction steps per iteration of the attention's register tiles (Q.K^T
    // over the head dim, P.V over a key block). 2-core Xeon, 1 thread, 4
    // against 1 (with the block exponentials of exp_nonpositive), one
    // tune-worker process: AVX-512 generic long_4096 1.02, bert_base T=S=512
    // 1.02, B=8 1.01, B=1 1.00, vit 0.99; AVX2 long_4096 1.06, T=S=512 1.02,
    // B=1 and vit 1.00. Earlier, 8 steps for P.V: long_4096 0.84.
    int attn_k_unroll = 4;
    // Query rows whose block max (and block sum) one pass over a key block
    // accumulates side by side: one row's vector of partial results is a
    // chain of dependent adds or maxes (an add is 3 cycles on Zen 3 and 4),
    // 4 rows are 4 independent chains. 2-core AMD EPYC with AVX-512 (Zen 4), the AVX2
    // bert_base row held to AVX2, bench/ab_kernels.py, 4 against 1, two
    // rounds, 1 / 2 threads: T=S=512 1.013, 1.007 / 1.008, 1.020 (Halide's
    // profiler: max 0.35 -> 0.17 ms, sum 0.30 -> 0.16 ms a call); B=1
    // T=128 0.994, 1.010 / 1.008, 1.006; B=8 1.005, 0.999 / 1.001, 0.997;
    // vit 1.006, 0.991 / 1.004, 1.011; generic long_4096 (its entry's
    // knobs) 1.007, 1.003 / 1.004, 1.016. AVX-512 (16 lanes, half the
    // chain per row), the tuned bert_base knobs: 0.98-1.01 on the same four
    // shapes; 4 everywhere for one schedule.
    int attn_reduce_rows = 4;
    // Whether K (and V, when staged) are projected a key block and head at a
    // time inside their staging copies (where head dims are whole register
    // tiles) or as whole GEMMs at root. Measured: see cpu_schedule_fused.
    bool kv_at_blocks = true;
};

// A 0-or-1 knob: `value` (below 0 = unset) overrides `field`; anything
// else is an error naming what 0 and 1 mean.
void set_switch(bool &field, int value, const char *name, const char *off, const char *on) {
    if (value > 1)
        throw std::invalid_argument(std::string(name) + "=" + std::to_string(value) +
                                    " is not 0 (" + off + ") or 1 (" + on + ")");
    if (value >= 0) field = value == 1;
}

CpuKnobs knobs_for(const Target &target, const KnobOverrides &set) {
    const int vector = target.natural_vector_size<float>();
    CpuKnobs k;
    k.vector = vector;
    // 12 accumulators out of 16 (AVX2/SSE) registers; two panels of 8 rows
    // (16) out of AVX-512's 32, see below. Two panels on the 2-core Xeon (AVX-512,
    // x86-64-linux-avx512_skylake), 1 thread, 2026-12-04, interleaved pairs:
    // the 768 x 768 GEMM (mhac_gemm_bench) at 128 / 512 / 1024 rows 135 /
    // 131 / 111 -> 151 / 152 / 139 GFLOP/s (OpenBLAS 147-151 in the same
    // runs); `mhac bench` bert_base b1 6.5 -> 5.4 ms, b8 56.5 -> 48, vit 11.0
    // -> 9.6-10.2, seq512 32.6 -> 29.0, decode S=2048 56.3 -> 44.3, long
    // (generic) 509 -> 468.
    if (vector >= 16) k.gemm_rows_short = 4, k.gemm_panels = 2;
    // AVX-512: 8 rows (16 accumulators) and 8 reduction steps per loop
    // iteration. 12 rows left no general register spare once unrolled: with
    // run-time feature dims (the generic kernel) each row's base pointer was
    // reloaded from the stack every step (4 or 8 steps: 0.73-0.78 of one).
    // 2-core Xeon, tune-worker A/B against 12 rows and one step, 1 / 2
    // threads: generic B=1 T=128 1.08 / 1.03, B=8 1.08, T=S=512 1.06 / 1.09,
    // vit 1.09 / 1.07, tiny 1.31 / 1.29, flash decode S=128 1.07, S=2048
    // 1.07; bert_base causal B=1 1.08 / 1.04, B=8 1.08 / 1.07, T=S=512 1.06
    // / 1.07, vit 1.06 / 1.04; folded decode 0.99-1.02. Generic long_4096
    // with its entry's knobs 0.95: the attention tiles have gemm_rows rows
    // as well, and take 12 there (its entry says so). 4 steps against 8:
    // B=1 0.99, B=8 1.00.
    if (vector >= 16) k.gemm_rows = 8, k.gemm_k_unroll = 8;
    // Row blocks: 256 rows of 768 features (768 KB) sit in the Xeon's 2 MB
    // L2. Same machine, 1 thread, the bert_base row with its tuned knobs,
    // interleaved in one process: decode S=2048 (two 2048-row GEMMs) 1.05x
    // with 128 or 256 rows, 1.03x with 512; B=8 T=128, T=S=512 and the
    // generic long_4096 within 1.5%; 2 threads within 1%. AVX2 too, though
    // 256 rows (768 KB) overflow the 512 KB L2 of the 2-core AMD EPYC (Zen
    // 3): half the passes over each 2.4 MB weight (from L3) pay more. There,
    // bert_base row, bench/ab_kernels.py, against 128, two rounds, 1 / 2
    // threads: B=8 T=128 1.047, 1.043 / 0.995, 1.003; vit 1.008, 1.005 /
    // 1.009, 1.008; T=S=512 1.000, 1.002 / 1.010, 1.005; tiny T=S=512 1.014.
    // 1024 rows against 256, 1 thread: B=8 1.002, 1.008; T=S=512 1.008, 0.998.
    // 128 stays on SSE and NEON (unmeasured).
    if (vector >= 16 || (target.arch == Target::X86 && vector == 8)) k.gemm_row_block = 256;
    if (vector <= 4) k.gemm_rows = 3, k.gemm_rows_short = 1;
    // Four reduction steps per loop iteration on x86 below AVX-512 (AVX-512:
    // 8, above): the 12-accumulator tiles (6 x 2 AVX2 vectors, 3 x 4 SSE
    // vectors) spend a loop's overhead on 12 FMAs otherwise. 2-core Xeon,
    // tune-worker A/B (both kernels in one process), bert_base row, 1 / 2
    // threads: AVX2 B=1 T=128 1.06 / 1.05, B=8 1.09 / 1.08, T=S=512 1.06 /
    // 1.05, vit 1.07 / 1.05, decode S=128 (flash) 1.06 / 1.03, S=2048 1.07 /
    // 1.07, folded decode 0.98-1.01 (8 steps against 4: 1.00-1.01; 2 steps:
    // 0.98); generic long_4096 1.01; SSE4.1 B=1 T=128 1.34, vit 1.30, decode
    // S=128 1.47. NEON: unmeasured.
    if (target.arch == Target::X86 && vector <= 8) k.gemm_k_unroll = 4;
    // AVX2: 4-row tiles (8 accumulators) in the projections where 6-row
    // ones recompute rows: T = 128 is 32 tiles of 4, not 22 of 6 (132
    // rows). 2-core AMD EPYC (Zen 3), bert_base row, bench/ab_kernels.py
    // (both generators' kernels in one tune-worker process), two rounds, 1
    // / 2 threads: B=1 T=128 1.016, 1.016 / 1.009, 1.014; B=8 T=128 1.005,
    // 1.007 / 1.012, 1.006. With the output stage's tiles too: B=1 1.022,
    // 1.026 at 1 thread, but see schedule_gemm. Tiny T=16 1.02-1.04, T=64
    // 0.99. A whole-kernel gemm_rows=4 (the attention tiles too) measured
    // 1.02 at T=128 but 0.98 for vit.
    if (target.arch == Target::X86 && vector == 8) k.gemm_rows_exact = 4;
    if (set.query_block > 0) k.query_block = set.query_block;
    if (set.gemm_rows > 0) k.gemm_rows = set.gemm_rows;
    if (set.gemm_rows_short > 0) k.gemm_rows_short = set.gemm_rows_short;
    if (set.gemm_rows_exact >= 0) k.gemm_rows_exact = set.gemm_rows_exact;
    if (set.gemm_k_block >= 0) k.gemm_k_block = set.gemm_k_block;
    if (set.gemm_k_unroll > 0) k.gemm_k_unroll = set.gemm_k_unroll;
    if (set.gemm_panels > 0) k.gemm_panels = set.gemm_panels;
    if (set.gemm_row_block > 0) k.gemm_row_block = set.gemm_row_block;
    set_switch(k.v_staging, set.v_staging, "v_staging", "in place", "staged");
    if (set.attn_k_unroll > 0) k.attn_k_unroll = set.attn_k_unroll;
    if (set.attn_reduce_rows > 16)
        throw std::invalid_argument("attn_reduce_rows=" + std::to_string(set.attn_reduce_rows) +
                                    " is above 16 (each row is an unrolled accumulator)");
    if (set.attn_reduce_rows > 0) k.attn_reduce_rows = set.attn_reduce_rows;
    set_switch(k.kv_at_blocks, set.kv_at_blocks, "kv_at_blocks", "at root", "per key block");
    // absorb_kv picks the path in the generator (FusedPipeline); checked here
    // with the other switches.
    bool absorb_kv = false;
    set_switch(absorb_kv, set.absorb_kv, "absorb_kv", "flash attention", "folded K and V");
    if (k.gemm_row_block < k.gemm_rows)
        throw std::invalid_argument("gemm_row_block=" + std::to_string(k.gemm_row_block) +
                                    " is below gemm_rows=" + std::to_string(k.gemm_rows));
    if (k.gemm_panels > gen::kPanelGroup)
        throw std::invalid_argument("gemm_panels=" + std::to_string(k.gemm_panels) +
                                    ": packed kernels are padded to " +
                                    std::to_string(gen::kPanelGroup) + " panels at most");
    return k;
}

// Output columns per GEMM register tile.
int gemm_tile_width(const CpuKnobs &k) {
    return gen::kPanelWidth * k.gemm_panels;
}

// Columns of the fused core's register tiles (two vectors): also the width
// of the vector tiles K and V are staged in, so each tile is read as one
// contiguous run.
int register_tile_width(int vector) {
    return 2 * vector;
}

// Whether a loop over `work` multiply-adds is worth waking the thread pool.
Expr worth_parallel(const Expr &work, const CpuKnobs &k) {
    return work >= k.parallel_min_work;
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

// Stores an rfactor'd partial with its new lane dimension (rfactor puts it
// last) first, so one lane of partial results per point is one vector.
void lanes_first(Func partial, const Var &lane) {
    std::vector<Var> storage{lane};
    for (const Var &v : partial.args())
        if (v.name() != lane.name()) storage.push_back(v);
    partial.reorder_storage(storage);
}

// Schedules a masked softmax whose probabilities `out` (s, t, n, b) are a
// pass of their own: rows (t, n, b fused) in parallel from an eighth of
// parallel_min_work `elements` (a pass of exponentials, like the staging
// copies), s vectorized, each row's max, exponentials and sum beside it.
void schedule_softmax_pass(gen::MaskedSoftmax &sm, Func out, const Expr &elements,
                           const CpuKnobs &k) {
    Var s = arg(out, 0), t = arg(out, 1), n = arg(out, 2), b = arg(out, 3), rows("rows");
    out.fuse(t, n, rows).fuse(rows, b, rows).vectorize(s, k.vector, TailStrategy::GuardWithIf);
    out.specialize(elements >= k.parallel_min_work / 8).parallel(rows);
    sm.row_max.compute_at(out, rows);
    sm.row_sum.compute_at(out, rows);
    sm.exp_shifted.compute_at(out, rows).vectorize(arg(sm.exp_shifted, 0), k.vector,
                                                   TailStrategy::GuardWithIf);
}

// A gemm_tile_width x (rows of `acc`'s region) tile of accumulators computed at
// `at`, the reduction `e` inside (gemm_k_unroll steps per iteration): with
// constant extents LLVM keeps them in registers. Shared by every GEMM of
// these schedules.
void tile_accumulators(Func acc, const RVar &e, const LoopLevel &at, const CpuKnobs &k) {
    Var aj = arg(acc, 0), am = arg(acc, 1);
    acc.compute_at(at)
        .bound_extent(aj, gemm_tile_width(k))
        .vectorize(aj, k.vector)
        .unroll(aj)
        .unroll(am);
    Stage update = acc.update();
    update.reorder(aj, am, e).vectorize(aj, k.vector).unroll(aj).unroll(am);
    if (k.gemm_k_unroll > 1) {
        // GuardWithIf: input widths need not be a multiple of the unroll.
        RVar eo("eo"), ei("ei");
        update.split(e, eo, ei, k.gemm_k_unroll, TailStrategy::GuardWithIf).unroll(ei);
    }
}

// The multiply-adds that decide whether a GEMM's loop wakes the thread pool:
// `tiles` for gemm_rows tiles, `short_tiles` (the whole GEMM's) for the
// shorter tiles of fewer rows. nullopt: the GEMM always runs serially (it
// is inside a parallel loop already).
struct GemmWork {
    Expr tiles, short_tiles;
};
using GemmParallelism = std::optional<GemmWork>;

// Whether `rows` take gemm_rows_exact tiles: that many rows divide them,
// while gemm_rows tiles (the last shifted inwards) would recompute at least
// 2% of them. T = 128 in 6-row tiles is 132 rows (3.1%); 1024 rows lose 0.2%,
// which a shorter tile's lower rate costs more than.
Expr exact_tiles(const Expr &rows, const CpuKnobs &k) {
    const int R = k.gemm_rows, Re = k.gemm_rows_exact;
    if (Re <= 0 || Re == R) return Expr(false);
    return rows % Re == 0 && rows % R != 0 && (R - rows % R) * 50 >= rows;
}

// The specializations of a register-tiled GEMM loop, most specific first:
// gemm_rows tiles (in parallel once their work is worth it), then for fewer
// rows gemm_rows_short tiles and single rows, in parallel once the short
// tiles' work is. `tile(stage, rows_per_tile, parallel)` schedules one.
template <typename Tile>
void specialize_tiles(Stage out, const Expr &rows, const GemmParallelism &parallel,
                      const CpuKnobs &k, const Tile &tile) {
    const int R = k.gemm_rows, Rs = k.gemm_rows_short;
    if (parallel) tile(out.specialize(rows >= R && worth_parallel(parallel->tiles, k)), R, true);
    tile(out.specialize(rows >= R), R, false);
    const Expr short_parallel = parallel ? worth_parallel(parallel->short_tiles, k) : Expr(false);
    if (Rs > 1) {
        if (parallel) tile(out.specialize(rows >= Rs && short_parallel), Rs, true);
        tile(out.specialize(rows >= Rs), Rs, false);
    }
    if (parallel) tile(out.specialize(short_parallel), 1, true);
    tile(out, 1, false);
}

// Register-tiles out(j, m, rest...) = acc(j, m, rest...) (+ bias), where
// acc reduces over p.r: a gemm_tile_width x gemm_rows tile of accumulators
// (gemm_rows_exact rows where exact_tiles() says so).
// Every row block streams past one weight panel (the panel stays in cache),
// panels in parallel once the tiles' work reaches parallel_min_work. Shapes
// with fewer rows than a tile run shorter tiles, in parallel once the whole
// GEMM's multiply-adds do: a decode step's 1-row projection is a
// memory-bound GEMV that a second core's bandwidth speeds up.
void schedule_gemm(Func out, gen::Projection p, const Expr &rows, const GemmParallelism &parallel,
                   const CpuKnobs &k) {
    Var j = arg(out, 0), m = arg(out, 1);
    Var jo("jo"), ji("ji"), mo("mo"), mi("mi"), mb("mb"), mt("mt");
    const int R = k.gemm_rows;
    out.split(j, jo, ji, gemm_tile_width(k), TailStrategy::GuardWithIf);
    // Near-equal blocks of whole row tiles, about gemm_row_block rows each:
    // the tiles are cut first (only the last one shifted inwards), then
    // dealt out to the blocks, the last block taking fewer. Blocks of rows
    // rounded up to whole tiles and shifted inwards recomputed up to R - 1
    // rows per block: 3% of the rows with AVX2's 6-row tiles in 128-row
    // blocks. In 64 bits: the simplifier folds such sums into rows * 257
    // (row blocks of 256), which wraps in 32 bits from 8.4M rows.
    Expr rows64 = cast<int64_t>(rows);
    Expr blocks = max((rows64 + k.gemm_row_block - 1) / k.gemm_row_block, 1);
    auto tiles_per_block = [&](int rows_per_tile) {
        Expr tiles = (rows64 + rows_per_tile - 1) / rows_per_tile;
        return cast<int>((tiles + blocks - 1) / blocks);
    };

    // Full tiles (gemm_rows, or gemm_rows_exact) in row blocks; shorter
    // tiles (fewer rows than gemm_rows) over all rows at once.
    auto finish = [&](Stage s, bool parallel) {
        s.vectorize(ji, k.vector).unroll(mi);
        if (parallel) s.parallel(jo);
    };
    auto full_tiles = [&](Stage s, int rows_per_tile, bool parallel) {
        s.split(m, mt, mi, rows_per_tile, TailStrategy::ShiftInwards)
            .split(mt, mb, mo, tiles_per_block(rows_per_tile), TailStrategy::GuardWithIf)
            .reorder(ji, mi, mo, jo, mb);
        finish(s, parallel);
    };
    auto tile = [&](Stage s, int rows_per_tile, bool parallel) {
        if (rows_per_tile == R) return full_tiles(s, R, parallel);
        s.split(m, mo, mi, rows_per_tile,
                rows_per_tile > 1 ? TailStrategy::ShiftInwards : TailStrategy::Auto)
            .reorder(ji, mi, mo, jo);
        finish(s, parallel);
    };
    // Exact tiles first. Only here, not in the output stage: its branches
    // each hold the whole attention core, and two more took the fused
    // kernel's compile from 15 to 25 s (bert_base, AVX2) for 0.5-1% more.
    const Expr exact = exact_tiles(rows, k);
    if (!Internal::is_const_zero(exact)) {
        const int Re = k.gemm_rows_exact;
        if (parallel)
            full_tiles(out.specialize(exact && worth_parallel(parallel->tiles, k)), Re, true);
        full_tiles(out.specialize(exact), Re, false);
    }
    specialize_tiles(out, rows, parallel, k, tile);

    RVar e = p.r.x;
    if (k.gemm_k_block > 0) {
        // K-blocked (BLIS's kc): a panel's accumulators for every row live
        // in memory; each gemm_k_block slice of the panel stays in L1 while
        // all row tiles pass it, each tile in registers within the slice.
        Var aj = arg(p.acc, 0), am = arg(p.acc, 1), amo("amo"), ami("ami");
        RVar eo("eo"), ei("ei");
        p.acc.compute_at(out, jo).bound_extent(aj, gemm_tile_width(k)).vectorize(aj, k.vector);
        auto kblock = [&](Stage st, int rows_per_tile) {
            st.split(e, eo, ei, k.gemm_k_block, TailStrategy::GuardWithIf)
                .split(am, amo, ami, rows_per_tile, TailStrategy::GuardWithIf)
                .reorder(aj, ami, ei, amo, eo)
                .vectorize(aj, k.vector)
                .unroll(aj)
                .unroll(ami);
            if (k.gemm_k_unroll > 1) {
                RVar eio("eio"), eii("eii");
                st.split(ei, eio, eii, k.gemm_k_unroll, TailStrategy::GuardWithIf).unroll(eii);
            }
        };
        kblock(p.acc.update().specialize(rows >= R), R);
        kblock(p.acc.update(), 1);
        return;
    }
    tile_accumulators(p.acc, e, LoopLevel(out, mo), k);
}

}  // namespace

void cpu_schedule_projection(ProjectionPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target, p.knobs);
    Expr rows = p.output.output_buffer().dim(1).extent();
    Expr work = work_of({rows, p.output.output_buffer().dim(0).extent(), p.proj.r.x.extent()});
    schedule_gemm(p.output, p.proj, rows, GemmWork{work, work}, k);
}

void cpu_schedule_scores(ScoresPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target, {});
    Func out = p.output;
    Var s = arg(out, 0), t = arg(out, 1), n = arg(out, 2), b = arg(out, 3);
    Var nb("nb");
    Expr work = work_of({out.output_buffer().dim(0).extent(), out.output_buffer().dim(1).extent(),
                         out.output_buffer().dim(2).extent(), out.output_buffer().dim(3).extent(),
                         p.logits.r.x.extent()});
    out.fuse(n, b, nb).vectorize(s, k.vector, TailStrategy::GuardWithIf);
    out.specialize(worth_parallel(work, k)).parallel(nb);
    Func dot = p.logits.dot;
    dot.compute_at(out, t).vectorize(arg(dot, 0), k.vector, TailStrategy::GuardWithIf);
    dot.update()
        .reorder(arg(dot, 0), p.logits.r.x)
        .vectorize(arg(dot, 0), k.vector, TailStrategy::GuardWithIf);
}

void cpu_schedule_softmax(SoftmaxPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target, {});
    Func out = p.output;
    Expr work = work_of({out.output_buffer().dim(0).extent(), out.output_buffer().dim(1).extent(),
                         out.output_buffer().dim(2).extent(), out.output_buffer().dim(3).extent()});
    schedule_softmax_pass(p.softmax, out, work, k);
}

void cpu_schedule_combine(CombinePipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target, {});
    Func out = p.output;
    Var g = arg(out, 0), n = arg(out, 1), t = arg(out, 2), b = arg(out, 3);
    Var tb("tb");
    Expr work = work_of({out.output_buffer().dim(0).extent(), out.output_buffer().dim(1).extent(),
                         out.output_buffer().dim(2).extent(), out.output_buffer().dim(3).extent(),
                         p.combine.r.x.extent()});
    out.fuse(t, b, tb).vectorize(g, k.vector, TailStrategy::GuardWithIf);
    out.specialize(worth_parallel(work, k)).parallel(tb);
    Func ctx = p.combine.context;
    Var cg = arg(ctx, 0), cn = arg(ctx, 1);
    ctx.compute_at(out, tb).vectorize(cg, k.vector, TailStrategy::GuardWithIf);
    ctx.update().reorder(cg, p.combine.r.x, cn).vectorize(cg, k.vector, TailStrategy::GuardWithIf);
}

// Flash attention for the query rows of one block, all heads, computed at
// `block`: per head and key block, Q.K^T and P.V as register tiles (two
// vectors x gemm_rows rows, the reduction inside), the block's max and sum
// beside them; the merge over key blocks last. `queries` >= gemm_rows
// guarantees every block has at least gemm_rows rows.
void schedule_attention_block(FusedPipeline &p, const CpuKnobs &k, const LoopLevel &block,
                              const Expr &queries) {
    gen::FlashAttention &a = p.attn;
    const int R = k.gemm_rows, W = register_tile_width(k.vector);
    Func ctx = a.context;
    Var cg = arg(ctx, 0), cn = arg(ctx, 1), ct = arg(ctx, 2);
    // Exact head ranges: derived through the flat context's c / Hv, Halide's
    // bounds of a generic kernel lose the alignment of every head's first
    // column, and the V projection's tiles leave the registers (2.4x slower).
    ctx.compute_at(block)
        .bound(cg, 0, p.value_dim)
        .bound(cn, 0, p.heads)
        .reorder(cg, ct, cn)
        .vectorize(cg, k.vector, TailStrategy::GuardWithIf);
    // Decode (fewer rows than a tile): the one block holds every head and
    // runs before the output stage's parallel panels, so its heads run in
    // parallel once their attention is worth it.
    ctx.specialize(
           queries < R &&
           worth_parallel(work_of({p.heads, a.keys_read, p.key_dim + p.value_dim, queries}), k))
        .parallel(cn);
    LoopLevel head(ctx, cn);

    Var mc = arg(a.merged, 0), mt = arg(a.merged, 1);
    a.merged.compute_at(head).vectorize(mc, k.vector, TailStrategy::GuardWithIf);
    a.merged.update().reorder(mc, a.r_kb, mt).vectorize(mc, k.vector, TailStrategy::GuardWithIf);
    a.row_max.compute_at(head);
    a.row_max.update().reorder(a.r_kb, arg(a.row_max, 0));
    a.weight.compute_at(head).vectorize(arg(a.weight, 0), k.vector, TailStrategy::GuardWithIf);

    // Everything one key block yields, one key block at a time. Each key
    // block's buffers (logits, exponentials, partial max and sum) come from
    // halide_malloc, about 1300 a call at T=S=512. Rejected: storing them at
    // the head level instead (store_at(head), one allocation per head), 2-core
    // AMD EPYC with AVX-512 (Zen 4) held to AVX2, bert_base row,
    // bench/ab_kernels.py, two rounds, 1 / 2 threads: T=S=512 0.987, 0.988 /
    // 1.023, 1.007; vit 0.991, 0.998 / 1.012, 1.007; B=1 T=128 0.994-1.000.
    Var oc = arg(a.block_out, 0), okb = arg(a.block_out, 1), ot = arg(a.block_out, 2);
    a.block_out.compute_at(head)
        .reorder(oc, ot, okb)
        .vectorize(oc, k.vector, TailStrategy::GuardWithIf);
    LoopLevel kblock(a.block_out, okb);

    // Register-tiles the reduction `f` (x = dim 0, rows y = dim 2, reduction
    // r) inside its pure consumer `tiles`, computed per key block: W x R tiles
    // with the accumulators in registers, single-row tiles for shorter blocks.
    // Tiles start at multiples of W along x (GuardWithIf: a shifted last
    // tile would read the staged V tiles unaligned, as gathers).
    auto register_tile = [&](Func tiles, Func f, const RVar &r) {
        Var x = arg(tiles, 0), y = arg(tiles, 2), xo("xo"), xi("xi"), yo("yo"), yi("yi");
        tiles.compute_at(kblock);
        auto tile = [&](Stage st, int rows) {
            st.split(x, xo, xi, W, TailStrategy::GuardWithIf)
                .split(y, yo, yi, rows, TailStrategy::ShiftInwards)
                .reorder(xi, yi, xo, yo)
                .vectorize(xi, k.vector)
                .unroll(xi)
                .unroll(yi);
        };
        tile(tiles.specialize(queries >= R), R);
        tile(tiles, 1);
        Var fx = arg(f, 0), fy = arg(f, 2);
        // A fixed-size tile: otherwise the padded last key block trims it
        // to a run-time extent and the accumulators leave the registers.
        f.compute_at(tiles, xo).bound_extent(fx, W).vectorize(fx, k.vector).unroll(fx).unroll(fy);
        Stage update = f.update();
        update.reorder(fx, fy, r).vectorize(fx, k.vector).unroll(fx).unroll(fy);
        if (k.attn_k_unroll > 1) {
            RVar ro("ro"), ri("ri");
            update.split(r, ro, ri, k.attn_k_unroll, TailStrategy::GuardWithIf).unroll(ri);
        }
    };
    register_tile(a.logits, a.dot, a.r_h);
    // The block's max and sum as vector reductions (one vector of partial
    // results per row, folded at the end) instead of scalar loops over keys.
    auto vector_reduce = [&](Func f) {
        RVar ro("ro"), ri("ri");
        Var lane("lane");
        Func partial = f.update().split(a.r_si, ro, ri, k.vector).rfactor(ri, lane);
        f.compute_at(kblock);
        lanes_first(partial, lane);
        partial.compute_at(kblock).vectorize(lane);
        Stage update = partial.update();
        if (k.attn_reduce_rows > 1) {
            // attn_reduce_rows rows side by side (the last group guarded).
            Var t = arg(partial, 1), to("to"), ti("ti");
            update.split(t, to, ti, k.attn_reduce_rows, TailStrategy::GuardWithIf)
                .reorder(lane, ti, ro, to)
                .unroll(ti);
        } else {
            update.reorder(lane, ro);
        }
        update.vectorize(lane);
    };
    vector_reduce(a.block_max);
    a.block_exp.compute_at(kblock).vectorize(arg(a.block_exp, 0), k.vector);
    vector_reduce(a.block_sum);
    register_tile(a.block_pv.in(), a.block_pv, a.r_si);
}

int cpu_default_key_block(const Target &target, gen::MaskKind kind) {
    // 128 keys keep a block's K and V (2 x 32 KB at H = 64) in L2 next to the
    // block's logits. AMD EPYC, generic, 2 threads, before blocks were fitted
    // to short calls (a 256-key block then padded S = 128 to 256): 64 keys
    // long 0.54 -> 0.77 s, prefill_b1 6.2 -> 6.7 ms; 256 keys prefill_b1 7.7
    // ms, seq512 28.3 -> 30.7 ms, long unchanged (0.53 s).
    // With fitted blocks (trim_keys) a longer block no longer pads S = 128
    // or 197. AVX-512 still measured mixed, so it keeps 128 and the tuner's
    // long bucket takes 512. 2-core Xeon (AVX-512), generic, 1
    // thread, 512 against 128 keys: long_4096 1.10x, T=S=512 1.05x, vit
    // 1.03x, B=1 T=128 0.99x, decode S=2048 0.97x; causal T=S=512 0.94x.
    // AVX2 without the causal mask: 256. S = 197 is then one fitted block of
    // 208 keys, not two of 128 (59 padded keys), and T=S=512 merges two
    // blocks per row, not four. 2-core AMD EPYC (Zen 3), bert_base row, hand
    // defaults otherwise, tune-worker A/B (both kernels in one process), 256
    // against 128, 1 / 2 threads: vit 1.06 / 1.05, T=S=512 1.02 / 1.04, B=8
    // T=128 1.01 / 1.02, B=1 T=128 1.00 / 0.98, re-measured over all eight
    // 1.016 (worst 0.997); 512: vit 1.06 / 1.05, T=S=512 0.97 / 1.02. Causal
    // keeps 128, whose smaller blocks skip more fully masked keys: 256 took
    // T=S=512 to 0.98 / 0.97 (vit 1.01 / 1.03). Dense masks skip no block
    // either, so they take no-mask's 256 (unmeasured).
    const bool avx2 = target.arch == Target::X86 && target.natural_vector_size<float>() == 8;
    return avx2 && kind != gen::MaskKind::causal ? 256 : 128;
}

int cpu_vector_tile(const Target &target, int key_block) {
    // A vector tile is the register tiles' width (two vectors), so Q.K^T and
    // P.V stream each K and V tile contiguously instead of one cache line
    // per head-dim step (a 16-key tile of a 128-key block walked 512-byte
    // strides). Key blocks that are not a multiple keep one tile per block.
    // 2-core AMD EPYC (Zen 3, AVX2), mhac_bench, best of 3 interleaved runs,
    // 1 / 2 threads: bert_base seq512 62.3 -> 52.1 / 29.6 -> 26.0 ms, vit
    // 18.1 -> 17.9 / 10.7 -> 10.1, prefill_b1 11.4 -> 10.9 / 6.2 -> 5.8;
    // generic long_4096 (2 threads) 515 -> 462 ms.
    const int tile = register_tile_width(target.natural_vector_size<float>());
    return key_block % tile == 0 ? tile : key_block;
}

// Head dims the generic decode kernel specializes on: with the head dim a
// run-time value, a vector of a head's columns may straddle a weight panel,
// and Halide reads the packed kernels with gathers.
constexpr int kCommonHeadDims[] = {16, 32, 64, 128};

// Heads whose logits and pooled values one pass over a key row or a block
// of value rows accumulates in registers, when the head count is known
// only at run time (12 heads = 3 groups).
constexpr int kHeadGroup = 4;

// Heads per register group for a head count known when the kernel is
// generated: all of them up to `most`, else the group of at least half of
// `most` that rounds the heads up least (the extra heads repeat the last
// one's work), the larger on a tie. 12 heads: 4 (most 4), 6 (most 6).
int static_head_group(int heads, int most) {
    if (heads <= most) return heads;
    int best = most;
    for (int g = most; 2 * g >= most; g--) {
        auto waste = [&](int x) { return (heads + x - 1) / x * x - heads; };
        if (waste(g) < waste(best)) best = g;
    }
    return best;
}

Expr round_up(const Expr &x, int multiple) {
    return (x + multiple - 1) / multiple * multiple;
}

// The absorbed attention (absorb_kv=1, a few query rows against many keys):
// every stage at root, each a pass over its inputs. The key and value rows
// stream once each (the logits pass, the pooling pass), in parallel over
// keys and over value columns; the heads sit in registers beside them.
// Split over keys instead (per chunk of 128 keys the logits, their max and
// sum and the pooled values, chunks in parallel and merged as flash's key
// blocks, so a self-attention step reads its value rows from L2 after the
// logits pass): 2-core AMD EPYC (Zen 3, AVX2), bert_base decode entry,
// bench/ab_kernels.py, speed of the split over this, 1 / 2 threads: S=2048
// 0.97-1.01 / 0.94-0.99, S=128 (two chunks) 0.99 / 0.96-1.02, B=8 S=128
// 0.97-1.00 / 0.99-1.05, B=2 T=8 S=512 0.97-0.98 / 0.99-1.04; 64-key chunks
// no better. The 16 MB a call reads stay in L3 between calls, so the
// pooling pass's second read of the value rows costs little. Not kept.
void schedule_absorbed(FusedPipeline &p, const CpuKnobs &k) {
    gen::AbsorbedAttention &a = p.absorbed;
    Func out = p.output;
    Expr queries = out.output_buffer().dim(1).extent();
    Expr batch = out.output_buffer().dim(2).extent();
    const int V = k.vector;
    const bool static_heads = p.static_heads > 0 && p.static_heads <= 16;
    // Logits: 2 keys x 4 heads (8 accumulators), each folded-query vector
    // serving both keys, a group's folded queries (4 x E floats) in L1
    // while the key pair passes. Pooling: 6 heads x two vectors of columns
    // (12 accumulators), so every pass over a block of value rows reads
    // whole cache lines. 2-core AMD EPYC (Zen 3, AVX2), bert_base decode
    // S=2048, bench/ab_kernels.py, 1 / 2 threads: against all 12 heads x
    // one vector in both, pooling by 6 x 2 1.40 / 1.53 (by 4 x 2: 1.38 /
    // 1.44; B=8 S=128 1.01-1.03 at 1 thread), then logits by 4 x 2 1.06 /
    // 1.08 (S=128 1.02, B=8 S=128 1.03; 6 x 2: 0.86, and all 12 heads read
    // 36 KB of folded queries per key, past L1). A run-time head count
    // takes kHeadGroup for both. AVX-512, SSE and NEON: unmeasured.
    const int logit_heads = static_heads ? static_head_group(p.static_heads, 4) : kHeadGroup;
    const int pool_heads = static_heads ? static_head_group(p.static_heads, 6) : kHeadGroup;

    // Q: a GEMM over the batch's rows, as on the flash path.
    Expr q_rows = queries * batch;
    p.q_proj.out.compute_root().align_bounds(arg(p.q_proj.out, 0), gemm_tile_width(k));
    Expr q_work = work_of({q_rows, p.q_proj.r.x.extent(), p.heads, p.key_dim});
    schedule_gemm(p.q_proj.out, p.q_proj, q_rows, GemmWork{q_work, q_work}, k);
    if (p.static_key_dim == 0) p.q_bias.compute_root();

    // W_k q: per key feature a dot product over the head dim, read along a
    // row of the packed kernel (contiguous within a panel) as vector lanes.
    {
        Func f = a.folded_query;
        Var e = arg(f, 0), lane("lane");
        RVar ho("ho"), hi("hi");
        Func partial =
            f.update().split(a.r_h.x, ho, hi, V, TailStrategy::GuardWithIf).rfactor(hi, lane);
        f.compute_root();
        // Heads in parallel: each reads its own panels of the kernel. The
        // update (the reduction) is what runs in parallel; until 2026-12-06
        // only the zero fill was, and the whole fold ran on one thread:
        // 2-core AMD EPYC (Zen 3, AVX2), bert_base decode, bench/ab_kernels.py,
        // 2 threads, S=128 1.28, B=8 S=128 1.37, S=2048 1.07 (1 thread 1.01-1.03).
        Expr work = work_of({batch, queries, p.heads, p.key_dim, a.r_ek.x.extent()});
        f.update().specialize(worth_parallel(work, k)).parallel(arg(f, 1));
        partial.compute_at(f, e).vectorize(lane);
        Stage pu = partial.update();
        pu.reorder(lane, ho).vectorize(lane);
        if (p.static_key_dim == 0)
            for (int h : kCommonHeadDims) pu.specialize(p.key_dim == h);
    }

    // Logits: per key, the key row against every head's folded query, the
    // reduction over key features as vector lanes (one accumulator vector
    // per head), keys in parallel.
    {
        Func lg = a.logits;
        Var s = arg(lg, 0), t = arg(lg, 1), n = arg(lg, 2), b = arg(lg, 3), so("so"), si("si");
        // Query rows outermost: one key's partial sums are then a fixed
        // block (heads x a vector) the registers hold, not a per-key buffer.
        lg.compute_root().reorder(n, s, t, b);
        Expr work = work_of({a.r_s.x.extent(), batch, queries, p.heads, a.r_ek.x.extent()});
        lg.split(s, so, si, 64, TailStrategy::GuardWithIf);
        // Groups of logit_heads heads x two keys per pass (each vector of
        // folded query serves both keys), the heads rounded up to whole
        // groups (the extra ones repeat the last head's) and a last odd key
        // repeating the one before.
        Var no("no"), ni("ni"), sq("sq"), sp("sp");
        lg.bound(n, 0, round_up(p.heads, logit_heads))
            .split(n, no, ni, logit_heads)
            .split(si, sq, sp, 2)
            .reorder(ni, sp, no, sq, so, t, b);
        LoopLevel heads_at(lg, no);
        lg.specialize(worth_parallel(work, k)).parallel(so);
        Func d = a.dot;
        Var lane("lane");
        RVar eo("eo"), ei("ei");
        Func partial =
            d.update().split(a.r_ek.x, eo, ei, V, TailStrategy::GuardWithIf).rfactor(ei, lane);
        d.compute_at(heads_at);
        lanes_first(partial, lane);
        partial.compute_at(heads_at).vectorize(lane);
        Stage pu = partial.update();
        Var ps = arg(partial, 0), pn = arg(partial, 2);
        pu.reorder(lane, pn, ps, eo).unroll(ps);
        partial.bound_extent(pn, logit_heads).bound_extent(ps, 2).unroll(ps);
        d.bound_extent(arg(d, 0), 2).bound_extent(arg(d, 2), logit_heads);
        pu.vectorize(lane).unroll(pn);
        partial.unroll(pn);
    }

    // Softmax over each row's S logits.
    a.softmax.probs.compute_root();
    schedule_softmax_pass(a.softmax, a.softmax.probs,
                          work_of({a.r_s.x.extent(), batch, queries, p.heads}), k);

    // Pooled values: chunks of value columns in parallel; in a chunk, per
    // block of keys, each vector of columns x every head in registers over
    // the block's keys, the block's rows in L1 while the chunk's vectors
    // pass them. Chunks are 1.5 KB of a value row: the rows are 3 KB apart
    // (E = 768), past the stride an IP prefetcher follows, so what keeps
    // the pass streaming is the run of lines a chunk reads in each row.
    // 2-core Xeon, bert_base decode, tune-worker A/B against chunks of 8
    // vectors over 64-key blocks, 1 / 2 threads: AVX-512 S=2048 1.16 /
    // 1.16, AVX2 1.15 / 1.15; S=128 and B=8 S=128 0.99-1.03. Chunks of
    // 128 columns 1.03, of whole rows 1.16 at 1 thread but one task (2
    // threads 0.87); 64-key blocks 1.08. Splitting the keys among threads
    // as well (rfactor, partial sums added after) cost 8% at S=128.
    {
        const int chunk_columns = 384, key_rows = 16;
        const int lanes = 2 * V;
        Expr features = a.r_ev.x.extent();
        // Near-equal chunks of whole vectors (two per group of heads): with
        // chunks of 384 a generic kernel's E = 512 computed a second chunk
        // of 128 columns and 256 clamped ones, read with gathers. Their
        // storage stays 384 wide, so a generic kernel's chunk still has
        // constant strides (a run-time width cost E = 768 25%).
        Expr chunk_count = max((features + chunk_columns - 1) / chunk_columns, 1);
        Expr chunk_width = round_up((features + chunk_count - 1) / chunk_count, lanes);
        Func pl = a.pooled;
        Var e = arg(pl, 0), n = arg(pl, 1), t = arg(pl, 2), b = arg(pl, 3);
        Var eo("eo"), ei("ei");
        Func chunks = pl.in();
        chunks.compute_root()
            .split(e, eo, ei, chunk_width, TailStrategy::GuardWithIf)
            .reorder(ei, n, eo, t, b)
            .vectorize(ei, V);
        Expr work = work_of({a.r_s.x.extent(), batch, queries, p.heads, features});
        chunks.specialize(worth_parallel(work, k)).parallel(eo);
        Var pv("pv"), pe("pe");
        RVar so("so"), si("si");
        pl.compute_at(chunks, eo).bound_storage(e, chunk_columns).vectorize(e, V);
        Stage pu = pl.update();
        // Two vectors of columns per group of pool_heads heads in registers.
        pu.split(e, pv, pe, lanes).split(a.r_s.x, so, si, key_rows, TailStrategy::GuardWithIf);
        Var no("no"), ni("ni");
        pl.bound(n, 0, round_up(p.heads, pool_heads));
        pu.split(n, no, ni, pool_heads).reorder(pe, ni, si, pv, no, so).unroll(ni).vectorize(pe);
    }

    // W_v^T pooled: per head, a row of value columns accumulated over the
    // value features, read along the packed kernel's panel rows.
    {
        Func c = a.context;
        Var g = arg(c, 0), n = arg(c, 1);
        c.compute_root().vectorize(g, V, TailStrategy::GuardWithIf);
        // Heads in parallel: each reads its own panels of the kernel.
        Expr work = work_of({batch, queries, p.heads, p.value_dim, a.r_ev.x.extent()});
        c.specialize(worth_parallel(work, k)).parallel(n);
        a.context_acc.compute_at(c, n).vectorize(arg(a.context_acc, 0), V,
                                                 TailStrategy::GuardWithIf);
        Stage cu = a.context_acc.update();
        cu.reorder(arg(a.context_acc, 0), a.r_ev.x)
            .vectorize(arg(a.context_acc, 0), V, TailStrategy::GuardWithIf);
        if (p.static_value_dim == 0) {
            for (int h : kCommonHeadDims) cu.specialize(p.value_dim == h);
            p.v_bias.compute_root();
            p.context_flat.compute_root().vectorize(arg(p.context_flat, 0), V,
                                                    TailStrategy::GuardWithIf);
        }
    }

    // The output projection: a GEMM over the queries (one row at decode).
    Expr o_work =
        work_of({queries, batch, out.output_buffer().dim(0).extent(), p.o_proj.r.x.extent()});
    schedule_gemm(out, p.o_proj, queries, GemmWork{o_work, o_work}, k);
}

void cpu_schedule_fused(FusedPipeline &p, const Target &target) {
    const CpuKnobs k = knobs_for(target, p.knobs);
    if (p.absorbed_path()) return schedule_absorbed(p, k);
    Func out = p.output;
    Var o = arg(out, 0), t = arg(out, 1), b = arg(out, 2);
    Expr queries = out.output_buffer().dim(1).extent();
    Expr batch = out.output_buffer().dim(2).extent();
    Expr out_features = out.output_buffer().dim(0).extent();
    gen::FlashAttention &a = p.attn;
    const int R = k.gemm_rows;

    // Q, K and V projections: whole tensors, register-tiled GEMMs.
    // Panel-aligned regions: with head dims known only at run time Halide
    // cannot otherwise prove a tile's first column is a panel's, and reads
    // the packed weights with a gather (generic kernel: 4x slower GEMMs).
    // Rows are flat over the batch (gen::flatten_rows): one GEMM of B x rows.
    auto project_root = [&](gen::Projection &proj, const Expr &rows, const Expr &head_dim) {
        proj.out.compute_root().align_bounds(arg(proj.out, 0), gemm_tile_width(k));
        Expr work = work_of({rows, batch, proj.r.x.extent(), gemm_tile_width(k)});
        Expr total = work_of({rows, batch, proj.r.x.extent(), p.heads, head_dim});
        schedule_gemm(proj.out, proj, rows * batch, GemmWork{work, total}, k);
    };
    project_root(p.q_proj, queries, p.key_dim);
    // K projected a key block and head at a time, just before that block is
    // staged, when heads are whole register tiles (a generic kernel's head
    // columns, aligned to tiles, could reach past the packed panels): the
    // block's K stays in L2 instead of going to memory and back. 2-core Xeon
    // (AVX-512), bert_base row with its tuned knobs, tune-worker A/B, 1 / 2
    // threads: decode S=2048 1.022 / 1.031, S=128 1.012 / 1.019, B=1 T=128
    // 1.005 / 1.013, B=8 1.020 / 1.012, T=S=512 0.999 / 1.011, vit 1.013 /
    // 1.013. At root instead (kv_at_blocks=0), the 2-core AMD EPYC with
    // AVX-512 (Zen 4, 1 MB L2) held to AVX2, bert_base row, tune-worker A/B,
    // 1 / 2 threads: B=8 T=128 1.020, 1.011 / 1.019, 1.018 (a batch's rows
    // stay in L2 across its heads, but each head's weights come from L3
    // once per batch), T=S=512 0.987, 0.985 / 0.998, 1.015, B=1 and vit
    // 0.99-1.01; AVX-512 with gemm_row_block=1024, B=8 0.97-0.98: mixed,
    // a knob for the tuner.
    const bool k_at_blocks =
        k.kv_at_blocks && p.static_key_dim > 0 && p.static_key_dim % gemm_tile_width(k) == 0;
    if (!k_at_blocks) project_root(p.k_proj, a.keys_read, p.key_dim);
    // V likewise, into its key-block copy (when V is staged): 2-core Xeon,
    // tune-worker A/B, 1 / 2 threads, AVX-512 (the tuned knobs) B=1 T=128
    // 1.00 / 1.01, B=8 1.01 / 1.02, T=S=512 1.01 / 1.01, vit 1.00 / 1.01,
    // decode S=128 (flash) 1.00 / 1.02; AVX2 1.01 / 1.00, 1.00 / 1.01, 1.02
    // / 1.01, 1.01 / 1.01.
    const bool v_at_blocks = k.kv_at_blocks && k.v_staging && p.static_value_dim > 0 &&
                             p.static_value_dim % gemm_tile_width(k) == 0;
    if (!v_at_blocks) project_root(p.v_proj, a.keys_read, p.value_dim);
    // Head dims known only at run time (the generic kernel) make the flat
    // bias index (j % H, j / H) an integer division per element, which x86
    // does not vectorize: materialized once per call instead of in every GEMM
    // epilogue (AMD EPYC, 2 threads: generic decode 36.1 -> 30.8 ms, tiny
    // 0.049 -> 0.038 ms; measured with the previous attention core).
    if (p.static_key_dim == 0) {
        for (Func *bias : {&p.q_bias, &p.k_bias, &p.v_bias}) bias->compute_root();
    }

    // K and V copied once into key blocks of vector tiles (dims 3, 4, 5 =
    // kb, n, b, fused and in parallel when large): K transposed so Q.K^T
    // reads a tile of keys as vectors, V so P.V streams one tile of columns.
    // A copy, so in parallel from an eighth of parallel_min_work elements
    // (as the softmax): B=1 T=128 staged its 2 x 98K elements serially,
    // 3% of a 2-thread call. With K projected inside the copy's loop, the
    // projection's multiply-adds count too.
    Var k_blocks("k_blocks");
    auto stage_blocked = [&](Func f, TailStrategy vector_tail, const Expr &head_dim,
                             const Var &blocks, const Expr &projected_features) {
        f.compute_root()
            .fuse(arg(f, 3), arg(f, 4), blocks)
            .fuse(blocks, arg(f, 5), blocks)
            .vectorize(arg(f, 0), k.vector, vector_tail);
        Expr elements = work_of({a.keys_read, batch, p.heads, head_dim});
        Expr worth_it = elements >= k.parallel_min_work / 8;
        if (projected_features.defined())
            worth_it = worth_it || worth_parallel(elements * projected_features, k);
        f.specialize(worth_it).parallel(blocks);
    };
    // Key blocks are whole vectors; Hv need not be.
    stage_blocked(a.k_blocked, TailStrategy::Auto, p.key_dim, k_blocks,
                  k_at_blocks ? p.k_proj.r.x.extent() : Expr());
    // A projection computed in a staging copy's loop over key blocks: row
    // tiles must fit the shortest block (the last one), or they would shift
    // to rows before it; serial, inside the staging's parallel loop.
    auto project_at_blocks = [&](gen::Projection &proj, Func staged, const Var &blocks) {
        Expr shortest = min(a.block, a.keys_read - (a.num_blocks - 1) * a.block);
        proj.out.compute_at(staged, blocks);
        schedule_gemm(proj.out, proj, shortest, std::nullopt, k);
    };
    if (k_at_blocks) project_at_blocks(p.k_proj, a.k_blocked, k_blocks);
    if (k.v_staging) {
        Var v_blocks("v_blocks");
        stage_blocked(a.v_blocked, TailStrategy::GuardWithIf, p.value_dim, v_blocks,
                      v_at_blocks ? p.v_proj.r.x.extent() : Expr());
        if (v_at_blocks) project_at_blocks(p.v_proj, a.v_blocked, v_blocks);
    } else {
        a.v_blocked.compute_inline();
    }

    // The output projection a block of query rows at a time, blocks (and
    // batch) in parallel; each block's attention (all heads) runs just before
    // it and stays in cache. Blocks are near-equal, so T = 197 wastes no half
    // block.
    Var tq("tq"), tqi("tqi"), oo("oo"), oi("oi"), mo("mo"), mi("mi"), mt("mt");
    // queries / query_block blocks rounded to the nearest even count (2 once
    // T > query_block): with B = 1 an odd count left one of two threads idle
    // (vit, T = 197: three blocks of 66), and rounding up to four blocks of 54
    // recomputed 19 shifted rows. 2-core AMD EPYC, `mhac bench --queries
    // 197`, 2 threads, 6 interleaved pairs: four blocks of 54 -> two of 102,
    // min 10.57 -> 9.70 ms (1 thread 14.19 -> 14.04, within noise).
    Expr blocks =
        max((queries + k.query_block / 2) / k.query_block, select(queries > k.query_block, 2, 1));
    blocks = select(blocks > 1, (blocks + 1) / 2 * 2, 1);
    // Blocks of whole row tiles: the tiles are cut first (only the last one
    // shifted inwards), then dealt out to the blocks, the last block taking
    // fewer. Blocks of rows rounded up to whole tiles and shifted inwards
    // computed T = 128 as two blocks of 70 rows (10-row tiles), 9% more
    // attention and output projection than the 130 rows of 13 tiles. Each
    // block's tiles then pass one output panel at a time (the panel stays in
    // L2, as in the projections), not every panel per tile. The batch is a
    // parallel loop of its own around the blocks' loop: fusing the two, as
    // before, made Halide's bounds reach batch -1 at B = 2 once the tile
    // split was guarded. Nested, the inner loop runs on one thread while
    // the outer one has the pool. 2-core Xeon (AVX-512), bert_base row
    // with its tuned knobs, interleaved in one process, 1 / 2 threads: B=1
    // T=128 1.04 / 1.06, B=8 1.01 / 1.05, T=S=512 1.02 / 1.01, vit 1.02 /
    // 1.04, decode S=128 1.00 / 1.01 (the panel order alone: 1.00-1.02).
    Expr tiles_per_block = ((queries + R - 1) / R + blocks - 1) / blocks;
    Expr work = work_of({queries, batch, out_features, a.keys_read});
    // Every specialization has the loops tq (a block of rows, or the whole
    // sequence) and mo (one row tile), where the producers are computed.
    auto tile_out = [&](Stage st, int rows, bool parallel) {
        st.split(o, oo, oi, gemm_tile_width(k), TailStrategy::GuardWithIf);
        if (rows == R) {
            st.split(t, mt, mi, R, TailStrategy::ShiftInwards)
                .split(mt, tq, mo, tiles_per_block, TailStrategy::GuardWithIf);
        } else {
            st.split(t, tq, tqi, queries, TailStrategy::ShiftInwards)
                .split(tqi, mo, mi, rows,
                       rows > 1 ? TailStrategy::ShiftInwards : TailStrategy::Auto);
        }
        st.reorder(oi, mi, mo, oo, tq, b).vectorize(oi, k.vector).unroll(mi);
        if (parallel && rows == R) st.parallel(b).parallel(tq);
        if (parallel && rows < R) st.parallel(oo);
    };
    // Fewer rows than a tile (decode): one block, its output panels in
    // parallel (a GEMV over the 768 x 768 output kernel is memory-bound).
    auto tile_rows = [&](Stage st) {
        specialize_tiles(
            st, queries,
            GemmWork{work, work_of({queries, batch, out_features, p.o_proj.r.x.extent()})}, k,
            [&](Stage s, int rows, bool parallel) { tile_out(s, rows, parallel); });
    };
    // Calls with at least a key block of keys get a branch where every block
    // is key_block long, so the attention core's loops keep constant extents.
    if (!Internal::is_const_one(a.full_blocks)) tile_rows(Stage(out).specialize(a.full_blocks));
    tile_rows(out);

    tile_accumulators(p.o_proj.acc, p.o_proj.r.x, LoopLevel(out, mo), k);
    // The flat context (c % Hv, c / Hv) of a generic kernel: once per block,
    // not in the output projection's reduction.
    if (p.static_value_dim == 0) {
        p.context_flat.compute_at(out, tq).vectorize(arg(p.context_flat, 0), k.vector,
                                                     TailStrategy::GuardWithIf);
    }
    schedule_attention_block(p, k, LoopLevel(out, tq), queries);
}

}  // namespace mhac::sched
