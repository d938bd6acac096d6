#include "mha_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mhac::reference {

namespace {
// EinsumDense "abc,cde->abde" plus bias: y[r, j] = sum_e x[r, e] W[e, j] + b[j].
std::vector<double> einsum_dense(const float *x, int64_t rows, int64_t in, const std::vector<float> &w,
                                 const std::vector<float> &b, int64_t out) {
    std::vector<double> y(static_cast<size_t>(rows * out), 0.0);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < out; j++) {
            double acc = 0.0;
            for (int64_t e = 0; e < in; e++) acc += double(x[r * in + e]) * double(w[e * out + j]);
            y[r * out + j] = acc + (b.empty() ? 0.0 : double(b[j]));
        }
    }
    return y;
}
}  // namespace

Result multi_head_attention(const Sizes &sz, const Weights &w, const float *query,
                            const float *key, const float *value, const uint8_t *mask,
                            bool causal, Path path) {
    const int64_t B = sz.batch, T = sz.queries, S = sz.keys, N = sz.num_heads, H = sz.key_dim,
                  Hv = sz.value_dim, O = sz.output_features;
    // Projections: Q [B, T, N, H], K [B, S, N, H], V [B, S, N, Hv].
    std::vector<double> Q = einsum_dense(query, B * T, sz.query_features, w.query_kernel,
                                         w.query_bias, N * H);
    std::vector<double> K = einsum_dense(key, B * S, sz.key_features, w.key_kernel, w.key_bias,
                                         N * H);
    std::vector<double> V = einsum_dense(value, B * S, sz.value_features, w.value_kernel,
                                         w.value_bias, N * Hv);
    const double c = 1.0 / std::sqrt(double(H));

    Result r;
    r.scores.assign(static_cast<size_t>(B * N * T * S), 0.0);
    std::vector<double> ctx(static_cast<size_t>(B * T * N * Hv), 0.0);
    std::vector<double> logits(static_cast<size_t>(S));
    std::vector<bool> allowed(static_cast<size_t>(S));
    for (int64_t b = 0; b < B; b++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t t = 0; t < T; t++) {
                bool any = false;
                for (int64_t s = 0; s < S; s++) {
                    double dot = 0.0;
                    for (int64_t h = 0; h < H; h++) {
                        dot += Q[((b * T + t) * N + n) * H + h] * K[((b * S + s) * N + n) * H + h];
                    }
                    logits[s] = dot * c;  // same value for both placements of c, in exact math
                    bool ok = (!mask || mask[(b * T + t) * S + s] != 0) && (!causal || s <= t);
                    allowed[s] = ok;
                    any = any || ok;
                }
                double* p = &r.scores[((b * N + n) * T + t) * S];
                if (!any && path == Path::explicit_scores) {
                    // Keras >= 3.10 Softmax: a fully masked row is all zeros.
                    std::fill(p, p + S, 0.0);
                } else if (!any) {
                    // Fused path: every logit gets the same fill value -> uniform.
                    std::fill(p, p + S, 1.0 / double(S));
                } else {
                    double mx = -std::numeric_limits<double>::infinity();
                    for (int64_t s = 0; s < S; s++) if (allowed[s]) mx = std::max(mx, logits[s]);
                    double sum = 0.0;
                    for (int64_t s = 0; s < S; s++) {
                        p[s] = allowed[s] ? std::exp(logits[s] - mx) : 0.0;
                        sum += p[s];
                    }
                    for (int64_t s = 0; s < S; s++) p[s] /= sum;
                }
                for (int64_t g = 0; g < Hv; g++) {
                    double acc = 0.0;
                    for (int64_t s = 0; s < S; s++) acc += p[s] * V[((b * S + s) * N + n) * Hv + g];
                    ctx[((b * T + t) * N + n) * Hv + g] = acc;
                }
            }
    // Output projection "abcd,cde->abe" over (n, g).
    r.output.assign(static_cast<size_t>(B * T * O), 0.0);
    for (int64_t bt = 0; bt < B * T; bt++)
        for (int64_t o = 0; o < O; o++) {
            double acc = 0.0;
            for (int64_t ng = 0; ng < N * Hv; ng++) {
                acc += ctx[bt * N * Hv + ng] * double(w.output_kernel[ng * O + o]);
            }
            r.output[bt * O + o] = acc + (w.output_bias.empty() ? 0.0 : double(w.output_bias[o]));
        }
    return r;
}

}  // namespace mhac::reference
