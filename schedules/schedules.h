// Schedules for the generators in generators/: one function per stage, each
// given the stage's Funcs by the generator. The per-target implementations
// live in schedules/<target family>/; schedule_*() picks one by Target.
#pragma once

#include "Halide.h"
#include "stages.h"

namespace mhac::sched {

struct ProjectionPipeline {
    gen::Projection proj;
    Halide::Func output;  // (j, m)
    int static_in_features = 0;
    int static_out_features = 0;
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
    gen::Logits logits;
    Halide::Func allowed;
    gen::MaskedSoftmax softmax;
    gen::Combine combine;
    Halide::Func context_flat;
    Halide::Func output;  // (o, t, b)
    gen::MaskKind mask_kind = gen::MaskKind::none;
    int static_heads = 0;
    int static_key_dim = 0;
    int static_value_dim = 0;
};

// Entry points: pick the family for `target` (schedules.cpp).
void schedule_projection(ProjectionPipeline &p, const Halide::Target &target);
void schedule_scores(ScoresPipeline &p, const Halide::Target &target);
void schedule_softmax(SoftmaxPipeline &p, const Halide::Target &target);
void schedule_combine(CombinePipeline &p, const Halide::Target &target);
void schedule_fused(FusedPipeline &p, const Halide::Target &target);

// CPU family (x86 ISA levels and arm-64): schedules/x86/cpu_schedules.cpp.
void cpu_schedule_projection(ProjectionPipeline &p, const Halide::Target &target);
void cpu_schedule_scores(ScoresPipeline &p, const Halide::Target &target);
void cpu_schedule_softmax(SoftmaxPipeline &p, const Halide::Target &target);
void cpu_schedule_combine(CombinePipeline &p, const Halide::Target &target);
void cpu_schedule_fused(FusedPipeline &p, const Halide::Target &target);

// CUDA family: schedules/cuda/gpu_schedules.cpp.
void gpu_schedule_projection(ProjectionPipeline &p, const Halide::Target &target);
void gpu_schedule_scores(ScoresPipeline &p, const Halide::Target &target);
void gpu_schedule_softmax(SoftmaxPipeline &p, const Halide::Target &target);
void gpu_schedule_combine(CombinePipeline &p, const Halide::Target &target);
void gpu_schedule_fused(FusedPipeline &p, const Halide::Target &target);

}  // namespace mhac::sched
