// What a generator hands to its schedule: the Funcs of its pipeline, and the
// sizes it was specialized for (0 = known only at run time). Schedules
// (schedules/) depend on this header; the generators do not depend on
// schedules/ beyond the schedule_*() entry points declared here.
#pragma once

#include "stages.h"
#include "tuned_param.h"  // KnobOverrides: the knobs by name (schedules/)

namespace mhac::sched {

// How the fused attention's algorithm is blocked for `target`: it is written
// over key blocks whose K and V are staged in vector tiles, so the generator
// needs both sizes before the schedule runs.
struct FusedBlocking {
    int key_block;    // keys per flash-attention block
    int vector_tile;  // keys (of K) and value columns (of V) stored contiguously
    bool trim_keys;   // shorten blocks to the keys a call can attend (flash_attention)
};
FusedBlocking fused_blocking(const Halide::Target &target, const KnobOverrides &knobs,
                             gen::MaskKind kind);

struct ProjectionPipeline {
    gen::Projection proj;
    Halide::Func output;  // (j, m)
    int static_in_features = 0;
    int static_out_features = 0;
    KnobOverrides knobs;
};

struct ScoresPipeline {
    gen::Logits logits;
    Halide::Func output;  // (s, t, n, b)
    int static_key_dim = 0;
};

struct SoftmaxPipeline {
    gen::MaskedSoftmax softmax;
    Halide::Func output;  // (s, t, n, b)
};

struct CombinePipeline {
    gen::Combine combine;
    Halide::Func output;  // (g, n, t, b)
    int static_value_dim = 0;
};

struct FusedPipeline {
    gen::Projection q_proj, k_proj, v_proj, o_proj;
    Halide::Func q, k, v;  // split into heads: (h, n, t|s, b)
    Halide::Func allowed;
    gen::FlashAttention attn;
    // absorb_kv=1: the attention with K and V folded into the query side
    // instead (attn, k_proj, v_proj, k and v are then unused).
    gen::AbsorbedAttention absorbed;
    Halide::Func q_bias, k_bias, v_bias;  // (j): the [N, H] biases flattened
    Halide::Func context_flat;
    Halide::Func output;  // (o, t, b)
    gen::MaskKind mask_kind = gen::MaskKind::none;
    int static_heads = 0;
    int static_key_dim = 0;
    int static_value_dim = 0;
    Halide::Expr heads, key_dim, value_dim;  // N, H and Hv, constants or run-time extents
    KnobOverrides knobs;

    bool absorbed_path() const { return knobs.absorb_kv == 1; }
};

// Implemented in schedules/schedules.cpp, which picks the family for
// `target`: the generators call these and know nothing else of schedules.
void schedule_projection(ProjectionPipeline &p, const Halide::Target &target);
void schedule_scores(ScoresPipeline &p, const Halide::Target &target);
void schedule_softmax(SoftmaxPipeline &p, const Halide::Target &target);
void schedule_combine(CombinePipeline &p, const Halide::Target &target);
void schedule_fused(FusedPipeline &p, const Halide::Target &target);

}  // namespace mhac::sched
