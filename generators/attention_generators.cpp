// Halide generators for every stage of Keras MultiHeadAttention and for the
// fused layer. Algorithms only: each generator hands its Funcs to the
// schedule for its target (declared in pipelines.h, defined in schedules/).
//
// GeneratorParams set to 0 mean "known only at run time" (the generic
// variant); a positive value specializes the kernel to that size and turns
// it into a checked constraint on the buffers.
#include "pipelines.h"

namespace mhac::gen {
namespace {

using namespace Halide;

// Pins dim `d` of a buffer to [0, extent) when `extent` is known at compile
// time, else only its min to 0. Violations fail at run time with a Halide
// constraint error, which the runtime turns into an mhac::Error.
template <typename Buf>
void pin_dim(Buf &buf, int d, int extent) {
    if (extent > 0) {
        buf.dim(d).set_bounds(0, extent);
    } else {
        buf.dim(d).set_min(0);
    }
}

template <typename Buf>
void pin_all_mins(Buf &buf, int dims) {
    for (int d = 0; d < dims; d++) buf.dim(d).set_min(0);
}

// Declares a buffer dense (each dim's stride the product of the extents
// inside it), as every tensor the runtime passes is. A GEMM register tile
// then reads its rows at constant offsets from one pointer: with run-time
// strides LLVM kept a pointer per row and, at 12 rows, spilled 4-7 of them,
// reloading each on every reduction step.
template <typename Buf>
void pin_dense(Buf &buf, int dims) {
    Expr stride = 1;
    for (int d = 0; d < dims; d++) {
        buf.dim(d).set_stride(stride);
        stride = stride * buf.dim(d).extent();
    }
}

// The row's knobs with the `tuned` GeneratorParam's settings for `target`
// (in a multi-target build, each ladder level in turn) applied over them.
sched::KnobOverrides knobs_for_this_target(const std::string &tuned, const Target &target,
                                           const sched::KnobOverrides &row) {
    try {
        return tuned::knobs_for_target(tuned, target.to_string(), row);
    } catch (const tuned::TunedParamError &e) {
        throw CompileError(std::string("GeneratorParam tuned: ") + e.what());
    }
}

Expr extent_or(int fixed, const Expr &runtime) {
    return fixed > 0 ? Expr(fixed) : runtime;
}

// EinsumDense over a batch of rows: output(j, m) = input(e, m) . W[e, j] + b[j].
class ProjectionGenerator : public Generator<ProjectionGenerator> {
public:
    GeneratorParam<int> in_features{"in_features", 0};
    GeneratorParam<int> out_features{"out_features", 0};
    GeneratorParam<bool> use_bias{"use_bias", true};
    GeneratorParam<int> gemm_rows{"gemm_rows", 0};  // schedule knobs, 0 = the target's default
    GeneratorParam<int> gemm_rows_short{"gemm_rows_short", 0};
    GeneratorParam<int> gemm_k_block{"gemm_k_block", -1};
    GeneratorParam<int> gemm_k_unroll{"gemm_k_unroll", 0};
    GeneratorParam<int> gemm_panels{"gemm_panels", 0};
    GeneratorParam<int> gemm_row_block{"gemm_row_block", 0};
    GeneratorParam<int> gemm_rows_exact{"gemm_rows_exact", -1};
    GeneratorParam<std::string> tuned{"tuned", ""};  // per-target knobs (schedules/tuned_param.h)

    Input<Buffer<float, 2>> input{"input"};      // (e, m): rows of Keras's [..., E]
    Input<Buffer<float, 3>> weights{"weights"};  // (ji, e, jo): packed kernel [E, J]
    Input<Buffer<float, 1>> bias{"bias"};        // (j): Keras bias, flattened
    Output<Buffer<float, 2>> output{"output"};   // (j, m)

    void generate() {
        Expr e_extent = extent_or(in_features, input.dim(0).extent());
        Expr j_extent = extent_or(out_features, output.dim(0).extent());
        proj_ = project(input, e_extent, weights, bias, use_bias, 1, "projection");
        Var j("j"), m("m");
        output(j, m) = proj_.out(j, m);

        pin_dim(input, 0, in_features);
        pin_dim(output, 0, out_features);
        pin_all_mins(input, 2);
        pin_all_mins(output, 2);
        pin_all_mins(weights, 3);
        pin_dense(input, 2);
        pin_dense(output, 2);
        pin_dense(weights, 3);
        pin_all_mins(bias, 1);
        weights.dim(0).set_extent(kPanelWidth);
        weights.dim(1).set_extent(e_extent);
        weights.dim(2).set_extent((j_extent + kPanelWidth * kPanelGroup - 1) /
                                  (kPanelWidth * kPanelGroup) * kPanelGroup);
        if (use_bias) bias.dim(0).set_extent(j_extent);
        output.dim(1).set_extent(input.dim(1).extent());

        input.set_estimates({{0, 768}, {0, 128}});
        weights.set_estimates({{0, kPanelWidth}, {0, 768}, {0, 48}});
        bias.set_estimates({{0, 768}});
        output.set_estimates({{0, 768}, {0, 128}});
    }

    void schedule() {
        if (using_autoscheduler()) return;
        sched::ProjectionPipeline p{proj_, output, in_features, out_features};
        sched::KnobOverrides row;
        row.gemm_rows = gemm_rows;
        row.gemm_rows_short = gemm_rows_short;
        row.gemm_k_block = gemm_k_block;
        row.gemm_k_unroll = gemm_k_unroll;
        row.gemm_panels = gemm_panels;
        row.gemm_row_block = gemm_row_block;
        row.gemm_rows_exact = gemm_rows_exact;
        p.knobs = knobs_for_this_target(tuned, get_target(), row);
        sched::schedule_projection(p, get_target());
    }

private:
    Projection proj_;
};

// Logits q . k over the head dim, scaled where Keras's `path` scales them.
class ScoresGenerator : public Generator<ScoresGenerator> {
public:
    GeneratorParam<int> num_heads{"num_heads", 0};
    GeneratorParam<int> key_dim{"key_dim", 0};
    GeneratorParam<std::string> path{"path", "explicit"};  // explicit | fused

    Input<Buffer<float, 4>> query{"query"};     // (h, n, t, b): projected query
    Input<Buffer<float, 4>> key{"key"};         // (h, n, s, b): projected key
    Input<float> scale{"scale"};                // float32(1 / sqrt(key_dim)), rounded as Keras does
    Output<Buffer<float, 4>> logits{"logits"};  // (s, t, n, b) = Keras [B, N, T, S]

    void generate() {
        Expr h_extent = extent_or(key_dim, query.dim(0).extent());
        lg_ = attention_logits(query, key, h_extent, scale, keras_path_param(path));
        Var s("s"), t("t"), n("n"), b("b");
        logits(s, t, n, b) = lg_.logits(s, t, n, b);

        pin_dim(query, 0, key_dim);
        pin_dim(query, 1, num_heads);
        pin_all_mins(query, 4);
        pin_all_mins(key, 4);
        pin_all_mins(logits, 4);
        key.dim(0).set_extent(query.dim(0).extent());
        key.dim(1).set_extent(query.dim(1).extent());
        key.dim(3).set_extent(query.dim(3).extent());

        query.set_estimates({{0, 64}, {0, 12}, {0, 128}, {0, 1}});
        key.set_estimates({{0, 64}, {0, 12}, {0, 128}, {0, 1}});
        scale.set_estimate(0.125f);
        logits.set_estimates({{0, 128}, {0, 128}, {0, 12}, {0, 1}});
    }

    void schedule() {
        if (using_autoscheduler()) return;
        sched::ScoresPipeline p{lg_, logits, key_dim};
        sched::schedule_scores(p, get_target());
    }

private:
    Logits lg_;
};

// Masked softmax over keys with the masking rules of Keras's `path`.
class MaskedSoftmaxGenerator : public Generator<MaskedSoftmaxGenerator> {
public:
    GeneratorParam<std::string> mask_kind{"mask_kind", "none"};
    GeneratorParam<std::string> path{"path", "explicit"};  // explicit | fused

    Input<Buffer<float, 4>> logits{"logits"};  // (s, t, n, b)
    Input<Buffer<uint8_t, 4>> mask{"mask"};    // (s, t, n|1, b|1), non-zero = may attend
    Output<Buffer<float, 4>> probs{"probs"};   // (s, t, n, b)

    void generate() {
        MaskKind kind = mask_kind_param(mask_kind);
        allowed_ = attention_allowed(kind, mask, mask.dim(1).extent(), mask.dim(2).extent(),
                                     mask.dim(3).extent());
        sm_ =
            masked_softmax(logits, allowed_, kind, logits.dim(0).extent(), keras_path_param(path));
        Var s("s"), t("t"), n("n"), b("b");
        probs(s, t, n, b) = sm_.probs(s, t, n, b);

        pin_all_mins(logits, 4);
        pin_all_mins(mask, 4);
        pin_all_mins(probs, 4);
        if (kind == MaskKind::dense) {
            mask.dim(0).set_extent(logits.dim(0).extent());
            mask.dim(1).set_extent(logits.dim(1).extent());
        }
        logits.set_estimates({{0, 128}, {0, 128}, {0, 12}, {0, 1}});
        mask.set_estimates({{0, 128}, {0, 128}, {0, 1}, {0, 1}});
        probs.set_estimates({{0, 128}, {0, 128}, {0, 12}, {0, 1}});
    }

    void schedule() {
        if (using_autoscheduler()) return;
        sched::SoftmaxPipeline p{sm_, probs};
        sched::schedule_softmax(p, get_target());
    }

private:
    Func allowed_;
    MaskedSoftmax sm_;
};

// probs . value: the weighted sum over keys.
class CombineGenerator : public Generator<CombineGenerator> {
public:
    GeneratorParam<int> num_heads{"num_heads", 0};
    GeneratorParam<int> value_dim{"value_dim", 0};

    Input<Buffer<float, 4>> probs{"probs"};       // (s, t, n, b)
    Input<Buffer<float, 4>> value{"value"};       // (g, n, s, b): projected value
    Output<Buffer<float, 4>> context{"context"};  // (g, n, t, b) = Keras [B, T, N, Hv]

    void generate() {
        cb_ = combine(probs, value, probs.dim(0).extent());
        Var g("g"), n("n"), t("t"), b("b");
        context(g, n, t, b) = cb_.context(g, n, t, b);

        pin_dim(value, 0, value_dim);
        pin_dim(value, 1, num_heads);
        pin_all_mins(probs, 4);
        pin_all_mins(value, 4);
        pin_all_mins(context, 4);
        value.dim(2).set_extent(probs.dim(0).extent());
        context.set_estimates({{0, 64}, {0, 12}, {0, 128}, {0, 1}});
        probs.set_estimates({{0, 128}, {0, 128}, {0, 12}, {0, 1}});
        value.set_estimates({{0, 64}, {0, 12}, {0, 128}, {0, 1}});
    }

    void schedule() {
        if (using_autoscheduler()) return;
        sched::CombinePipeline p{cb_, context, value_dim};
        sched::schedule_combine(p, get_target());
    }

private:
    Combine cb_;
};

// The whole layer on Keras's fused path (ops.dot_product_attention): taken
// when no scores are returned and no dropout applies. Attention runs over key
// blocks (flash_attention): no buffer grows with T x S.
class FusedGenerator : public Generator<FusedGenerator> {
public:
    GeneratorParam<int> num_heads{"num_heads", 0};
    GeneratorParam<int> key_dim{"key_dim", 0};
    GeneratorParam<int> value_dim{"value_dim", 0};
    GeneratorParam<int> query_features{"query_features", 0};
    GeneratorParam<int> key_features{"key_features", 0};
    GeneratorParam<int> value_features{"value_features", 0};
    GeneratorParam<int> output_features{"output_features", 0};
    GeneratorParam<bool> use_bias{"use_bias", true};
    GeneratorParam<std::string> mask_kind{"mask_kind", "none"};
    // Schedule knobs (sched::KnobOverrides): 0 = the target's default.
    GeneratorParam<int> key_block{"key_block", 0};
    GeneratorParam<int> query_block{"query_block", 0};
    GeneratorParam<int> gemm_rows{"gemm_rows", 0};
    GeneratorParam<int> gemm_rows_short{"gemm_rows_short", 0};
    GeneratorParam<int> gemm_k_block{"gemm_k_block", -1};
    GeneratorParam<int> gemm_k_unroll{"gemm_k_unroll", 0};
    GeneratorParam<int> gemm_panels{"gemm_panels", 0};
    GeneratorParam<int> gemm_row_block{"gemm_row_block", 0};
    GeneratorParam<int> v_staging{"v_staging", -1};
    GeneratorParam<int> attn_k_unroll{"attn_k_unroll", 0};
    GeneratorParam<int> absorb_kv{"absorb_kv", -1};
    GeneratorParam<int> gemm_rows_exact{"gemm_rows_exact", -1};
    GeneratorParam<int> attn_reduce_rows{"attn_reduce_rows", 0};
    GeneratorParam<int> kv_at_blocks{"kv_at_blocks", -1};
    // Per-target knobs from the tuned database, over the ones above.
    GeneratorParam<std::string> tuned{"tuned", ""};

    Input<Buffer<float, 3>> query{"query"};                  // (e, t, b) = Keras [B, T, Eq]
    Input<Buffer<float, 3>> key{"key"};                      // (e, s, b) = Keras [B, S, Ek]
    Input<Buffer<float, 3>> value{"value"};                  // (e, s, b) = Keras [B, S, Ev]
    Input<Buffer<float, 3>> query_kernel{"query_kernel"};    // packed [Eq, N*H]
    Input<Buffer<float, 2>> query_bias{"query_bias"};        // (h, n) = Keras [N, H]
    Input<Buffer<float, 3>> key_kernel{"key_kernel"};        // packed [Ek, N*H]
    Input<Buffer<float, 2>> key_bias{"key_bias"};            // (h, n)
    Input<Buffer<float, 3>> value_kernel{"value_kernel"};    // packed [Ev, N*Hv]
    Input<Buffer<float, 2>> value_bias{"value_bias"};        // (g, n) = Keras [N, Hv]
    Input<Buffer<float, 3>> output_kernel{"output_kernel"};  // packed [N*Hv, O]
    Input<Buffer<float, 1>> output_bias{"output_bias"};      // (o) = Keras [O]
    Input<Buffer<uint8_t, 4>> mask{"mask"};     // (s, t, n|1, b|1); read for mask_kind=dense only
    Input<float> scale{"scale"};                // float32(1 / sqrt(key_dim))
    Output<Buffer<float, 3>> output{"output"};  // (o, t, b) = Keras [B, T, O]

    void generate() {
        MaskKind kind = mask_kind_param(mask_kind);
        // The runtime rejects zero heads and head dims; telling Halide they are
        // positive keeps the generic kernel's bounds (n * H + h) tight.
        Expr heads = extent_or(num_heads, max(query_bias.dim(1).extent(), 1));
        Expr h_dim = extent_or(key_dim, max(query_bias.dim(0).extent(), 1));
        Expr hv_dim = extent_or(value_dim, max(value_bias.dim(0).extent(), 1));
        Expr eq = extent_or(query_features, query.dim(0).extent());
        Expr ek = extent_or(key_features, key.dim(0).extent());
        Expr ev = extent_or(value_features, value.dim(0).extent());
        Expr keys = key.dim(1).extent();

        Var j("j");
        Func bq("bq_flat"), bk("bk_flat"), bv("bv_flat");
        // Clamped heads: a schedule may compute whole weight panels, so
        // columns past N * H can exist; they are never read.
        bq(j) = query_bias(j % h_dim, min(j / h_dim, heads - 1));
        bk(j) = key_bias(j % h_dim, min(j / h_dim, heads - 1));
        bv(j) = value_bias(j % hv_dim, min(j / hv_dim, heads - 1));

        p_.q_bias = bq;
        p_.k_bias = bk;
        p_.v_bias = bv;
        p_.knobs = knobs_for_this_target(
            tuned, get_target(),
            {key_block, query_block, gemm_rows, gemm_rows_short, gemm_k_block, gemm_k_unroll,
             gemm_panels, gemm_row_block, v_staging, attn_k_unroll, absorb_kv, gemm_rows_exact,
             attn_reduce_rows, kv_at_blocks});
        const sched::FusedBlocking blocking = sched::fused_blocking(get_target(), p_.knobs, kind);
        // Q, K and V projected over the batch's rows at once (flat rows, T or
        // the keys read per sequence).
        Expr queries = query.dim(1).extent();
        Expr keys_read = fused_keys_read(kind, keys, queries, blocking.trim_keys);
        p_.q_proj = project(flatten_rows(query, queries, query.dim(2).extent(), "query_rows"), eq,
                            query_kernel, bq, use_bias, 1, "query_proj");
        p_.q = split_heads(p_.q_proj.out, h_dim, queries);
        p_.allowed = attention_allowed(kind, mask, mask.dim(1).extent(), mask.dim(2).extent(),
                                       mask.dim(3).extent());
        if (p_.absorbed_path()) {
            if (get_target().has_gpu_feature())
                throw CompileError("absorb_kv=1 has no GPU schedule");
            // A causal call reads no key past its last query (fused_keys_read).
            p_.absorbed = absorbed_attention(p_.q, key, value, key_kernel, value_kernel, bv,
                                             use_bias, p_.allowed, kind, keys_read, heads, h_dim,
                                             hv_dim, ek, ev, scale);
            p_.context_flat = flatten_heads(p_.absorbed.context, hv_dim);
        } else {
            p_.k_proj = project(flatten_rows(key, keys_read, key.dim(2).extent(), "key_rows"), ek,
                                key_kernel, bk, use_bias, 1, "key_proj");
            p_.v_proj = project(flatten_rows(value, keys_read, value.dim(2).extent(), "value_rows"),
                                ev, value_kernel, bv, use_bias, 1, "value_proj");
            p_.k = split_heads(p_.k_proj.out, h_dim, keys_read);
            p_.v = split_heads(p_.v_proj.out, hv_dim, keys_read);
            p_.attn = flash_attention(p_.q, p_.k, p_.v, p_.allowed, kind, keys, h_dim, hv_dim,
                                      scale, queries, blocking.key_block, blocking.vector_tile,
                                      blocking.trim_keys);
            p_.context_flat = flatten_heads(p_.attn.context, hv_dim);
        }
        p_.o_proj = project(p_.context_flat, heads * hv_dim, output_kernel, output_bias, use_bias,
                            2, "output_proj");
        Var o("o"), t("t"), b("b");
        output(o, t, b) = p_.o_proj.out(o, t, b);
        p_.output = output;
        p_.mask_kind = kind;
        p_.static_key_dim = key_dim;
        p_.static_value_dim = value_dim;
        p_.static_heads = num_heads;
        p_.heads = heads;
        p_.key_dim = h_dim;
        p_.value_dim = hv_dim;

        // Shape contract, checked by Halide on every call.
        pin_dim(query, 0, query_features);
        pin_dim(key, 0, key_features);
        pin_dim(value, 0, value_features);
        pin_dim(query_bias, 0, key_dim);
        pin_dim(query_bias, 1, num_heads);
        pin_dim(value_bias, 0, value_dim);
        pin_dim(output, 0, output_features);
        pin_all_mins(query, 3);
        pin_all_mins(key, 3);
        pin_all_mins(value, 3);
        pin_all_mins(output, 3);
        pin_all_mins(mask, 4);
        for (auto *w : {&query_kernel, &key_kernel, &value_kernel, &output_kernel}) {
            pin_all_mins(*w, 3);
            w->dim(0).set_extent(kPanelWidth);
            pin_dense(*w, 3);
        }
        pin_dense(query, 3);
        pin_dense(key, 3);
        pin_dense(value, 3);
        pin_dense(output, 3);
        pin_all_mins(query_bias, 2);
        pin_all_mins(key_bias, 2);
        pin_all_mins(value_bias, 2);
        pin_all_mins(output_bias, 1);
        key_bias.dim(0).set_extent(h_dim);
        key_bias.dim(1).set_extent(heads);
        value_bias.dim(1).set_extent(heads);
        output_bias.dim(0).set_extent(output.dim(0).extent());
        query_kernel.dim(1).set_extent(eq);
        key_kernel.dim(1).set_extent(ek);
        value_kernel.dim(1).set_extent(ev);
        output_kernel.dim(1).set_extent(heads * hv_dim);
        value.dim(1).set_extent(keys);
        key.dim(2).set_extent(query.dim(2).extent());
        value.dim(2).set_extent(query.dim(2).extent());
        output.dim(1).set_extent(query.dim(1).extent());
        output.dim(2).set_extent(query.dim(2).extent());
        if (kind == MaskKind::dense) {
            mask.dim(0).set_extent(keys);
            mask.dim(1).set_extent(query.dim(1).extent());
        }

        query.set_estimates({{0, 768}, {0, 128}, {0, 1}});
        key.set_estimates({{0, 768}, {0, 128}, {0, 1}});
        value.set_estimates({{0, 768}, {0, 128}, {0, 1}});
        for (auto *w : {&query_kernel, &key_kernel, &value_kernel, &output_kernel}) {
            w->set_estimates({{0, kPanelWidth}, {0, 768}, {0, 48}});  // 768 columns
        }
        for (auto *bb : {&query_bias, &key_bias, &value_bias}) {
            bb->set_estimates({{0, 64}, {0, 12}});
        }
        output_bias.set_estimates({{0, 768}});
        mask.set_estimates({{0, 128}, {0, 128}, {0, 1}, {0, 1}});
        scale.set_estimate(0.125f);
        output.set_estimates({{0, 768}, {0, 128}, {0, 1}});
    }

    void schedule() {
        if (using_autoscheduler()) return;
        sched::schedule_fused(p_, get_target());
    }

private:
    sched::FusedPipeline p_;
};

}  // namespace
}  // namespace mhac::gen

HALIDE_REGISTER_GENERATOR(mhac::gen::ProjectionGenerator, mhac_projection)
HALIDE_REGISTER_GENERATOR(mhac::gen::ScoresGenerator, mhac_scores)
HALIDE_REGISTER_GENERATOR(mhac::gen::MaskedSoftmaxGenerator, mhac_masked_softmax)
HALIDE_REGISTER_GENERATOR(mhac::gen::CombineGenerator, mhac_combine)
HALIDE_REGISTER_GENERATOR(mhac::gen::FusedGenerator, mhac_fused)

// The schedule source hash this executable was built from, as text in it:
// `mhac tune` stamps the entries it writes and `mhac generate` picks entries
// by the hash mhac was built with, so both refuse a generator built from
// other sources (tools/mhac/generate_command.cpp, checked_generator_path).
#ifdef MHAC_SCHEDULE_SOURCE_HASH
extern "C" __attribute__((used)) const char mhac_generator_source_hash[] =
    "mhac-schedule-source-hash=" MHAC_SCHEDULE_SOURCE_HASH ";";
#endif
