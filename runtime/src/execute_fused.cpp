#include "execute.h"

namespace mhac::detail {

BufferRef<uint8_t, 4> mask_buffer(const CallPlan &plan) {
    static const uint8_t kVisible = 1;
    const MaskPlan &m = plan.mask;
    if (m.kind != MaskKind::dense)
        return BufferRef<uint8_t, 4>(&kVisible, {{1, 1}, {1, 1}, {1, 1}, {1, 1}});
    const int64_t T = plan.problem.queries, S = plan.problem.keys;
    return BufferRef<uint8_t, 4>(
        m.data, {{S, 1}, {T, S}, {m.heads, m.head_stride}, {m.batch, m.batch_stride}});
}

void execute_fused(const CallPlan &plan, const Selection &selection, const LayerWeights &w,
                   ResidentBuffers &wb) {
    const Problem &p = plan.problem;
    const int64_t B = p.batch, T = p.queries, S = p.keys;
    const int64_t N = p.num_heads, H = p.key_dim, Hv = p.value_dim, O = p.output_features;
    auto q_in = dense<float, 3>(plan.query_rows, {B, T, p.query_features});
    auto k_in = dense<float, 3>(plan.key_rows, {B, S, p.key_features});
    auto v_in = dense<float, 3>(plan.value_rows, {B, S, p.value_features});
    halide_buffer_t *wq = packed_buffer(wb, w.query), *wk = packed_buffer(wb, w.key),
                    *wv = packed_buffer(wb, w.value), *wo = packed_buffer(wb, w.output);
    halide_buffer_t *bq = wb.get(w.query_bias.data(), {N, H});
    halide_buffer_t *bk = wb.get(w.key_bias.data(), {N, H});
    halide_buffer_t *bv = wb.get(w.value_bias.data(), {N, Hv});
    halide_buffer_t *bo = wb.get(w.output_bias.data(), {O});
    auto mask = mask_buffer(plan);
    auto out = dense<float, 3>(plan.output_rows, {B, T, O});
    KernelRunner run(selection, plan.shapes, wb);
    run(selection.fused, q_in.get(), k_in.get(), v_in.get(), wq, bq, wk, bk, wv, bv, wo, bo,
        mask.get(), plan.scale, out.get());
}

}  // namespace mhac::detail
