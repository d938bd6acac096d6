#include <cmath>

#include "dropout.h"
#include "execute.h"

namespace mhac::detail {

namespace {

// EinsumDense over `rows` rows: dst [rows, J] = in [rows, E] . W + b.
void project(const KernelRunner &run, ResidentBuffers &wb, const NamedKernel<ProjectionFn> &kernel,
             const float *in, int64_t rows, const PackedKernel &w, const KernelFloats &bias,
             float *dst) {
    auto in_b = dense<float, 2>(in, {rows, w.in_features});
    auto out_b = dense<float, 2>(dst, {rows, w.out_features});
    run(kernel, in_b.get(), packed_buffer(wb, w), wb.get(bias.data(), {w.out_features}),
        out_b.get());
}

// Keras 3.14+: context *= sigmoid(query . Wg + bg) before the output
// projection.
void apply_gate(const KernelRunner &run, ResidentBuffers &wb, const CallPlan &plan,
                const StagedKernels &k, const LayerWeights &w, Scratch &scratch, float *context) {
    const Problem &p = plan.problem;
    const int64_t rows = p.batch * p.queries, n = rows * p.num_heads * p.value_dim;
    float *gate = grow(scratch.gate, n);
    project(run, wb, k.projection[kGateProjection], plan.query_rows, rows, w.gate, w.gate_bias,
            gate);
    for (int64_t i = 0; i < n; i++) context[i] *= 1.0f / (1.0f + std::exp(-gate[i]));
}

}  // namespace

void execute_staged(const CallPlan &plan, const Selection &selection, const LayerConfig &config,
                    const LayerWeights &w, ResidentBuffers &wb, Scratch &scratch,
                    DropoutState &dropout) {
    const Problem &p = plan.problem;
    const int64_t B = p.batch, T = p.queries, S = p.keys;
    const int64_t N = p.num_heads, H = p.key_dim, Hv = p.value_dim;
    const StagedKernels &k = selection.staged;
    KernelRunner run(selection, plan.shapes, wb);

    float *qs = grow(scratch.q, B * T * N * H);
    float *ks = grow(scratch.k, B * S * N * H);
    float *vs = grow(scratch.v, B * S * N * Hv);
    float *ls = grow(scratch.logits, B * N * T * S);
    // Returned scores are the probabilities before dropout (Keras).
    float *ps = plan.scores ? plan.scores : grow(scratch.probs, B * N * T * S);
    float *cs = grow(scratch.context, B * T * N * Hv);

    project(run, wb, k.projection[kQueryProjection], plan.query_rows, B * T, w.query, w.query_bias,
            qs);
    project(run, wb, k.projection[kKeyProjection], plan.key_rows, B * S, w.key, w.key_bias, ks);
    project(run, wb, k.projection[kValueProjection], plan.value_rows, B * S, w.value, w.value_bias,
            vs);

    auto q_b = dense<float, 4>(qs, {B, T, N, H});
    auto k_b = dense<float, 4>(ks, {B, S, N, H});
    auto l_b = dense<float, 4>(ls, {B, N, T, S});
    run(k.scores, q_b.get(), k_b.get(), plan.scale, l_b.get());

    auto mask = mask_buffer(plan);
    auto p_b = dense<float, 4>(ps, {B, N, T, S});
    run(k.softmax, l_b.get(), mask.get(), p_b.get());

    const float *combine_probs = ps;
    if (plan.dropout) {
        float *ds = grow(scratch.dropped, B * N * T * S);
        apply_dropout(ps, ds, B * N * T * S, config.dropout, dropout.seed, dropout.calls++);
        combine_probs = ds;
    }
    auto pd_b = dense<float, 4>(combine_probs, {B, N, T, S});
    auto v_b = dense<float, 4>(vs, {B, S, N, Hv});
    auto c_b = dense<float, 4>(cs, {B, T, N, Hv});
    run(k.combine, pd_b.get(), v_b.get(), c_b.get());

    if (p.use_gate) apply_gate(run, wb, plan, k, w, scratch, cs);
    project(run, wb, k.projection[kOutputProjection], cs, B * T, w.output, w.output_bias,
            plan.output_rows);
}

}  // namespace mhac::detail
