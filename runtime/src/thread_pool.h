// The thread pool the CPU kernels' parallel loops run on (Halide's
// do_par_for hook), in place of Halide's default pool.
//
// Why: a fused call runs six to ten parallel loops back to back (the Q, K
// and V projections, K and V staging, the attention and output blocks).
// Halide's pool puts idle workers to sleep on a condition variable at once,
// so every loop pays a wake-up of the workers and, at its end, of the
// caller; on a KVM guest each is tens of microseconds. Here idle workers
// spin for a short while (kSpinMicros) before sleeping, as OpenMP and ONNX
// Runtime's pools do, so consecutive loops of a call start at once.
#pragma once

#include <cstdint>

#include "HalideRuntime.h"

namespace mhac::detail {

// halide_do_par_for_t: runs task(user_context, i, closure) for i in [min,
// min + size), on the calling thread and the pool's workers. One loop at a
// time uses the workers: a loop started while another runs (a second
// caller thread, or a parallel loop nested in a task) runs on its own
// thread. Returns 0, or the first non-zero result of a task (the remaining
// tasks are then skipped).
int pool_do_par_for(void *user_context, halide_task_t task, int min, int size, uint8_t *closure);

// The number of threads a loop runs on, the caller included: HL_NUM_THREADS
// when set to a positive number (as for Halide's pool), else one per CPU the
// process may run on (its affinity).
int pool_threads();

}  // namespace mhac::detail
