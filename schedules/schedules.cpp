// One place that maps a Halide target to its schedule family.
#include "schedules.h"

namespace mhac::sched {

#define MHAC_DISPATCH(stage, Pipeline)                                        \
    void schedule_##stage(Pipeline &p, const Halide::Target &target) {        \
        if (target.has_gpu_feature()) return gpu_schedule_##stage(p, target); \
        return cpu_schedule_##stage(p, target);                               \
    }

MHAC_DISPATCH(projection, ProjectionPipeline)
MHAC_DISPATCH(scores, ScoresPipeline)
MHAC_DISPATCH(softmax, SoftmaxPipeline)
MHAC_DISPATCH(combine, CombinePipeline)
MHAC_DISPATCH(fused, FusedPipeline)

#undef MHAC_DISPATCH

FusedBlocking fused_blocking(const Halide::Target &target, const KnobOverrides &knobs) {
    const bool gpu = target.has_gpu_feature();
    const int key_block = knobs.key_block > 0 ? knobs.key_block
                          : gpu               ? gpu_default_key_block(target)
                                              : cpu_default_key_block(target);
    return {key_block,
            gpu ? gpu_vector_tile(target, key_block) : cpu_vector_tile(target, key_block)};
}

}  // namespace mhac::sched
