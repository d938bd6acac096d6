// The per-target schedule families behind the entry points that
// generators/pipelines.h declares (schedules.cpp picks one by Target).
#pragma once

#include "Halide.h"
#include "pipelines.h"

namespace mhac::sched {

// CPU family (x86 ISA levels and arm-64): schedules/cpu/cpu_schedules.cpp.
void cpu_schedule_projection(ProjectionPipeline &p, const Halide::Target &target);
void cpu_schedule_scores(ScoresPipeline &p, const Halide::Target &target);
void cpu_schedule_softmax(SoftmaxPipeline &p, const Halide::Target &target);
void cpu_schedule_combine(CombinePipeline &p, const Halide::Target &target);
void cpu_schedule_fused(FusedPipeline &p, const Halide::Target &target);
// The fused core's blocking: the key block when no knob sets it, and the
// vector tile K and V are staged in for a given key block.
int cpu_default_key_block(const Halide::Target &target, gen::MaskKind kind);
int cpu_vector_tile(const Halide::Target &target, int key_block);

// CUDA family: schedules/cuda/gpu_schedules.cpp.
void gpu_schedule_projection(ProjectionPipeline &p, const Halide::Target &target);
void gpu_schedule_scores(ScoresPipeline &p, const Halide::Target &target);
void gpu_schedule_softmax(SoftmaxPipeline &p, const Halide::Target &target);
void gpu_schedule_combine(CombinePipeline &p, const Halide::Target &target);
void gpu_schedule_fused(FusedPipeline &p, const Halide::Target &target);
int gpu_default_key_block(const Halide::Target &target);
int gpu_vector_tile(const Halide::Target &target, int key_block);

}  // namespace mhac::sched
