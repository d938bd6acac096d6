#include "mha_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>

namespace mhac::reference {

namespace {

int64_t product(const Shape &s, size_t from = 0, size_t to = SIZE_MAX) {
    int64_t p = 1;
    for (auto it = s.begin() + static_cast<std::ptrdiff_t>(std::min(from, s.size()));
         it < s.begin() + static_cast<std::ptrdiff_t>(std::min(to, s.size())); ++it)
        p *= *it;
    return p;
}

// EinsumDense "...e,e(nh)->...(nh)" plus bias, over `rows` positions.
std::vector<double> einsum_dense(const float *x, int64_t rows, int64_t in,
                                 const std::vector<float> &w, const std::vector<float> &b,
                                 int64_t out) {
    std::vector<double> y(static_cast<size_t>(rows * out), 0.0);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < out; j++) {
            double acc = 0.0;
            for (int64_t e = 0; e < in; e++) acc += double(x[r * in + e]) * double(w[e * out + j]);
            y[r * out + j] = acc + (b.empty() ? 0.0 : double(b[j]));
        }
    return y;
}

// Row-major strides of a shape.
Shape strides_of(const Shape &s) {
    Shape st(s.size(), 1);
    for (int i = static_cast<int>(s.size()) - 2; i >= 0; i--) st[i] = st[i + 1] * s[i + 1];
    return st;
}

// Calls f(multi-index) for every index of `shape`, row-major.
template <typename F>
void for_each_index(const Shape &shape, F &&f) {
    Shape idx(shape.size(), 0);
    const int64_t total = product(shape);
    for (int64_t i = 0; i < total; i++) {
        f(idx);
        for (int k = static_cast<int>(shape.size()) - 1; k >= 0; k--) {
            if (++idx[k] < shape[k]) break;
            idx[k] = 0;
        }
    }
}

// A bool tensor and the three Keras ops the mask combination uses.
struct BoolTensor {
    Shape shape;
    std::vector<uint8_t> v;
};

BoolTensor tensor_of(const uint8_t *data, const Shape &shape) {
    BoolTensor t{shape, std::vector<uint8_t>(static_cast<size_t>(product(shape)))};
    for (size_t i = 0; i < t.v.size(); i++) t.v[i] = data[i] != 0;
    return t;
}

// ops.expand_dims: a negative axis counts from the result's rank.
BoolTensor expand_dims(BoolTensor t, int axis) {
    const int rank = static_cast<int>(t.shape.size()) + 1;
    if (axis < -rank || axis >= rank) throw std::invalid_argument("expand_dims: axis out of range");
    if (axis < 0) axis += rank;
    t.shape.insert(t.shape.begin() + axis, 1);
    return t;
}

// a & b with numpy broadcasting (trailing axes aligned).
BoolTensor logical_and(const BoolTensor &a, const BoolTensor &b) {
    const size_t r = std::max(a.shape.size(), b.shape.size());
    Shape as(r - a.shape.size(), 1), bs(r - b.shape.size(), 1);
    as.insert(as.end(), a.shape.begin(), a.shape.end());
    bs.insert(bs.end(), b.shape.begin(), b.shape.end());
    BoolTensor out;
    for (size_t i = 0; i < r; i++) {
        if (as[i] != bs[i] && as[i] != 1 && bs[i] != 1) {
            throw std::invalid_argument("masks do not broadcast");
        }
        out.shape.push_back(as[i] == 1 ? bs[i] : as[i]);
    }
    const Shape ast = strides_of(as), bst = strides_of(bs);
    for_each_index(out.shape, [&](const Shape &idx) {
        int64_t ia = 0, ib = 0;
        for (size_t i = 0; i < r; i++) {
            ia += (as[i] == 1 ? 0 : idx[i]) * ast[i];
            ib += (bs[i] == 1 ? 0 : idx[i]) * bst[i];
        }
        out.v.push_back(a.v[ia] && b.v[ib]);
    });
    return out;
}

// Keras 3.15 MultiHeadAttention._compute_attention_mask followed by
// _masked_softmax's expand_dims loop: the padding, causal and window masks
// ANDed first (query [.., T, 1], value/key [.., 1, S], patterns [1, T, S]
// over axis-1 lengths), then attention_mask & that, then length-1 axes at
// -(2 * |axes| + 1) up to the scores' rank. Empty when there is no mask.
std::optional<BoolTensor> keras_attention_mask(const Layer &layer, const Call &call, size_t n_axes,
                                               size_t scores_rank) {
    const Shape &qs = call.query_shape, &vs = call.value_shape;
    std::optional<BoolTensor> auto_mask;
    auto and_into = [&](BoolTensor m) {
        auto_mask = auto_mask ? logical_and(*auto_mask, m) : std::move(m);
    };
    auto shape_or = [](const Shape &s, Shape fallback) { return s.empty() ? fallback : s; };
    if (call.query_mask) {
        and_into(expand_dims(
            tensor_of(call.query_mask, shape_or(call.query_mask_shape, {qs[0], qs[1]})), -1));
    }
    if (call.value_mask) {
        and_into(expand_dims(
            tensor_of(call.value_mask, shape_or(call.value_mask_shape, {vs[0], vs[1]})), -2));
    }
    if (call.key_mask) {
        and_into(expand_dims(
            tensor_of(call.key_mask, shape_or(call.key_mask_shape, {vs[0], vs[1]})), -2));
    }
    auto pattern = [&](auto keep) {
        BoolTensor p{{1, qs[1], vs[1]}, {}};
        for (int64_t i = 0; i < qs[1]; i++)
            for (int64_t j = 0; j < vs[1]; j++) p.v.push_back(keep(i, j));
        return p;
    };
    if (call.causal) and_into(pattern([](int64_t i, int64_t j) { return j <= i; }));
    if (layer.sliding_window > 0) {
        const int64_t w = layer.sliding_window;
        and_into(pattern([w](int64_t i, int64_t j) { return std::abs(i - j) < w; }));
    }
    std::optional<BoolTensor> mask;
    if (call.attention_mask) {
        BoolTensor am = tensor_of(call.attention_mask, call.attention_mask_shape);
        mask = auto_mask ? logical_and(am, *auto_mask) : std::move(am);
    } else {
        mask = std::move(auto_mask);
    }
    while (mask && mask->shape.size() < scores_rank) {
        mask = expand_dims(std::move(*mask), -(2 * static_cast<int>(n_axes) + 1));
    }
    return mask;
}
}  // namespace

Result multi_head_attention(const Layer &layer, const Call &call, Path path) {
    const Weights &w = layer.weights;
    const Shape &qs = call.query_shape, &vs = call.value_shape;
    const Shape &ks = call.key_shape.empty() ? vs : call.key_shape;
    const float *key = call.key ? call.key : call.value;
    const int rank = static_cast<int>(qs.size());
    const int64_t N = layer.num_heads, H = layer.key_dim, Hv = layer.value_dim;
    const int64_t O = product(layer.output_shape);
    const int64_t Eq = qs.back(), Ek = ks.back(), Ev = vs.back();

    // Attention axes (spec 3.2): default every axis but batch and features;
    // negatives count from the input rank.
    std::vector<int> axes;
    if (call.attention_axes.empty()) {
        for (int a = 1; a <= rank - 2; a++) axes.push_back(a);
    } else {
        for (int a : call.attention_axes) axes.push_back(a < 0 ? a + rank : a);
        std::sort(axes.begin(), axes.end());
    }
    std::vector<int> batch_like;
    for (int a = 0; a <= rank - 2; a++) {
        if (std::find(axes.begin(), axes.end(), a) == axes.end()) batch_like.push_back(a);
    }

    // Projections over every position: Q [..., N, H], K [..., N, H], V [..., N, Hv].
    const int64_t q_pos = product(qs, 0, rank - 1), k_pos = product(vs, 0, rank - 1);
    std::vector<double> Q =
        einsum_dense(call.query, q_pos, Eq, w.query_kernel, w.query_bias, N * H);
    std::vector<double> K = einsum_dense(key, k_pos, Ek, w.key_kernel, w.key_bias, N * H);
    std::vector<double> V =
        einsum_dense(call.value, k_pos, Ev, w.value_kernel, w.value_bias, N * Hv);
    const Shape q_pos_stride = strides_of(Shape(qs.begin(), qs.end() - 1));
    const Shape k_pos_stride = strides_of(Shape(vs.begin(), vs.end() - 1));

    // Scores shape: [batch-like axes..., N, query attention axes..., key attention axes...].
    Result r;
    Shape batch_dims, t_dims, s_dims;
    for (int a : batch_like) batch_dims.push_back(qs[a]);
    for (int a : axes) t_dims.push_back(qs[a]);
    for (int a : axes) s_dims.push_back(vs[a]);
    r.scores_shape = batch_dims;
    r.scores_shape.push_back(N);
    r.scores_shape.insert(r.scores_shape.end(), t_dims.begin(), t_dims.end());
    r.scores_shape.insert(r.scores_shape.end(), s_dims.begin(), s_dims.end());
    const int64_t n_batch = product(batch_dims), T = product(t_dims), S = product(s_dims);

    // Combined mask over the scores shape (spec 2), in scores order, built
    // with Keras's own operations (_compute_attention_mask, _masked_softmax).
    const size_t sr = r.scores_shape.size();
    std::vector<uint8_t> allowed(static_cast<size_t>(product(r.scores_shape)), 1);
    std::optional<BoolTensor> mask = keras_attention_mask(layer, call, axes.size(), sr);
    if (mask) {
        const Shape &m = mask->shape;
        if (m.size() > sr) throw std::invalid_argument("mask rank exceeds the scores rank");
        const size_t lead = sr - m.size();
        for (size_t i = 0; i < m.size(); i++) {
            if (m[i] != 1 && m[i] != r.scores_shape[lead + i]) {
                throw std::invalid_argument("mask does not broadcast to the scores");
            }
        }
        const Shape mst = strides_of(m);
        int64_t flat = 0;
        for_each_index(r.scores_shape, [&](const Shape &idx) {
            int64_t src = 0;
            for (size_t i = 0; i < m.size(); i++) src += (m[i] == 1 ? 0 : idx[lead + i]) * mst[i];
            allowed[flat++] = mask->v[src];
        });
    }

    // Attention per (batch-like index, head, query position), softmax jointly
    // over every key position.
    r.scores.assign(allowed.size(), 0.0);
    std::vector<double> ctx(static_cast<size_t>(q_pos * N * Hv), 0.0);
    const double c = 1.0 / std::sqrt(double(H));
    std::vector<double> logits(static_cast<size_t>(S));
    Shape bidx, tidx, sidx;
    for (int64_t bi = 0; bi < n_batch; bi++) {
        // Decompose into per-axis indices and input position offsets.
        auto position = [&](const Shape &pos_stride, const Shape &dims_src, int64_t b_flat,
                            int64_t a_flat, const Shape &a_dims) {
            int64_t off = 0, rem = b_flat;
            for (int i = static_cast<int>(batch_like.size()) - 1; i >= 0; i--) {
                int64_t d = dims_src[batch_like[i]];
                off += (rem % d) * pos_stride[batch_like[i]];
                rem /= d;
            }
            rem = a_flat;
            for (int i = static_cast<int>(axes.size()) - 1; i >= 0; i--) {
                off += (rem % a_dims[i]) * pos_stride[axes[i]];
                rem /= a_dims[i];
            }
            return off;
        };
        // Key positions of this batch-like index, once (used per head and query).
        std::vector<int64_t> key_pos(static_cast<size_t>(S));
        for (int64_t s = 0; s < S; s++) key_pos[s] = position(k_pos_stride, vs, bi, s, s_dims);
        for (int64_t n = 0; n < N; n++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t qp = position(q_pos_stride, qs, bi, t, t_dims);
                const int64_t row = ((bi * N + n) * T + t) * S;
                bool any = false;
                for (int64_t s = 0; s < S; s++) {
                    const int64_t kp = key_pos[s];
                    double dot = 0.0;
                    for (int64_t h = 0; h < H; h++) {
                        dot += Q[(qp * N + n) * H + h] * K[(kp * N + n) * H + h];
                    }
                    logits[s] = dot * c;  // both placements of c agree in exact arithmetic
                    any = any || allowed[row + s];
                }
                double *p = &r.scores[row];
                if (!any && path == Path::explicit_scores) {
                    std::fill(p, p + S, 0.0);  // Keras >= 3.10 Softmax zeroes the row
                } else if (!any) {
                    std::fill(p, p + S, 1.0 / double(S));  // all logits equal: uniform
                } else {
                    double mx = -std::numeric_limits<double>::infinity();
                    for (int64_t s = 0; s < S; s++) {
                        if (allowed[row + s]) mx = std::max(mx, logits[s]);
                    }
                    double sum = 0.0;
                    for (int64_t s = 0; s < S; s++) {
                        p[s] = allowed[row + s] ? std::exp(logits[s] - mx) : 0.0;
                        sum += p[s];
                    }
                    for (int64_t s = 0; s < S; s++) p[s] /= sum;
                }
                for (int64_t g = 0; g < Hv; g++) {
                    double acc = 0.0;
                    for (int64_t s = 0; s < S; s++) {
                        double ps = p[s];
                        if (call.keep) {
                            ps = call.keep(row + s) && call.rate < 1.0 ? ps / (1.0 - call.rate)
                                                                       : 0.0;
                        }
                        acc += ps * V[(key_pos[s] * N + n) * Hv + g];
                    }
                    ctx[(qp * N + n) * Hv + g] = acc;
                }
            }
    }

    // use_gate: context *= sigmoid(query . Wg + bg), per position, head, channel.
    if (layer.use_gate) {
        std::vector<double> G =
            einsum_dense(call.query, q_pos, Eq, w.gate_kernel, w.gate_bias, N * Hv);
        for (size_t i = 0; i < ctx.size(); i++) ctx[i] *= 1.0 / (1.0 + std::exp(-G[i]));
    }

    // Output projection over (n, g), bias over O...
    r.output_shape = Shape(qs.begin(), qs.end() - 1);
    r.output_shape.insert(r.output_shape.end(), layer.output_shape.begin(),
                          layer.output_shape.end());
    r.output.assign(static_cast<size_t>(q_pos * O), 0.0);
    for (int64_t pos = 0; pos < q_pos; pos++)
        for (int64_t o = 0; o < O; o++) {
            double acc = 0.0;
            for (int64_t ng = 0; ng < N * Hv; ng++) {
                acc += ctx[pos * N * Hv + ng] * double(w.output_kernel[ng * O + o]);
            }
            r.output[pos * O + o] = acc + (w.output_bias.empty() ? 0.0 : double(w.output_bias[o]));
        }
    return r;
}

}  // namespace mhac::reference
