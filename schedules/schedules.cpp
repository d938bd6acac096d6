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

FusedBlocking fused_blocking(const Halide::Target &target, const KnobOverrides &knobs,
                             gen::MaskKind kind) {
    const bool gpu = target.has_gpu_feature();
    const int key_block = knobs.key_block > 0 ? knobs.key_block
                          : gpu               ? gpu_default_key_block(target)
                                              : cpu_default_key_block(target, kind);
    return {key_block,
            gpu ? gpu_vector_tile(target, key_block) : cpu_vector_tile(target, key_block),
            // Blocks fitted to the keys a call can attend (flash_attention's
            // trim_keys). 2-core Xeon (AVX-512), generic kernel, hand
            // defaults, 1 thread, interleaved in one process (mhac
            // tune-worker): no mask, tiny T=S=16 0.032 -> 0.021 ms, BERT
            // and long shapes within 2% (the full-block branch keeps their
            // extents constant); causal, decode T=1 S=128 2.68 -> 0.46 ms
            // (one key projected, not 128), tiny 0.039 -> 0.021, T=S=512
            // and 2048 unchanged; bert_base causal decode T=1 S=512 on the
            // AVX2 kernel 0.35 ms against 1.07 for its tuned entry (which
            // bought the same with 32-key blocks). CUDA keeps fixed blocks:
            // trimmed ones have not run on a GPU yet.
            !gpu};
}

}  // namespace mhac::sched
