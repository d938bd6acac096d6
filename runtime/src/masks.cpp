#include "masks.h"

#include <algorithm>
#include <array>
#include <string>

namespace mhac::detail {

namespace {

// A shape held inline: planning a call's masks allocates nothing.
constexpr size_t kMaxScoresRank = 32;
struct Dims {
    std::array<int64_t, kMaxScoresRank> v{};
    size_t n = 0;
    int64_t &operator[](size_t i) { return v[i]; }
    int64_t operator[](size_t i) const { return v[i]; }
    size_t size() const { return n; }
};

Dims dims_of(const Shape &s) {
    if (s.size() > kMaxScoresRank) {
        throw Error("attention scores of rank " + std::to_string(s.size()) + " exceed mhac's " +
                    std::to_string(kMaxScoresRank));
    }
    Dims d;
    d.n = s.size();
    std::copy(s.begin(), s.end(), d.v.begin());
    return d;
}

[[noreturn]] void not_broadcastable(const char *name, const Shape &mask, const Shape &scores) {
    throw Error(std::string(name) + " shape " + shape_to_string(mask) +
                " cannot be broadcast to the attention scores shape " + shape_to_string(scores));
}

void require_mask_data(const char *name, const MaskView &m) {
    if (!m.data)
        throw Error(std::string(name) + " has null data (shape " + shape_to_string(m.shape) + ")");
}

// Keras: while the mask's rank is below the scores', insert a length-1 axis
// at -(2 * |attention axes| + 1), the head slot. Then every axis must be 1 or
// equal to the scores'.
Dims align_to_scores(const MaskView &m, const Shape &scores, int attention_rank) {
    if (m.shape.size() < 2 || m.shape.size() > scores.size()) {
        not_broadcastable("attention_mask", m.shape, scores);
    }
    // Insert the missing length-1 axes just before the last 2 * |axes| ones.
    Dims a;
    a.n = scores.size();
    const size_t missing = scores.size() - m.shape.size();
    const size_t split = m.shape.size() - 2 * attention_rank;
    for (size_t i = 0, j = 0; i < a.n; i++) {
        a[i] = (i >= split && i < split + missing) ? 1 : m.shape[j++];
    }
    for (size_t i = 0; i < a.size(); i++) {
        if (a[i] != 1 && a[i] != scores[i]) not_broadcastable("attention_mask", m.shape, scores);
    }
    return a;
}

void require_padding_mask(const char *name, const MaskView &m, const Shape &expected,
                          const AxesPlan &axes) {
    require_mask_data(name, m);
    if (axes.rank != 3) {
        // Keras builds padding masks assuming [B, T, E] inputs (spec 2).
        throw Error(std::string(name) + " needs 3-D inputs, as in Keras; the inputs have rank " +
                    std::to_string(axes.rank));
    }
    if (m.shape != expected) {
        throw Error(std::string(name) + " has shape " + shape_to_string(m.shape) + ", expected " +
                    shape_to_string(expected));
    }
}

}  // namespace

MaskPlan plan_masks(const CallOptions &options, const AxesPlan &axes, const Shape &query,
                    const Shape &value, const Shape &scores_shape, int num_heads,
                    int sliding_window, std::vector<uint8_t> &storage) {
    MaskPlan plan;
    const int64_t B = axes.batch, T = axes.queries, S = axes.keys;
    const int attention_rank = static_cast<int>(axes.attention_axes.size());
    const bool causal = options.use_causal_mask;
    const int64_t window = sliding_window;
    const bool on_axis_one = axes.attention_axes.size() == 1 && axes.attention_axes[0] == 1;
    if ((causal || window > 0) && !on_axis_one) {
        // Keras builds the causal and sliding-window masks from axis-1
        // lengths: they are only meaningful when attention runs over axis 1.
        throw Error(std::string(causal ? "use_causal_mask" : "sliding_window") +
                    " needs attention over axis 1 alone, as in Keras; attention_axes resolve "
                    "to other axes for query shape " +
                    shape_to_string(query));
    }
    const MaskView *qm = options.query_mask, *vm = options.value_mask, *km = options.key_mask;
    if (qm) require_padding_mask("query_mask", *qm, {query[0], query[1]}, axes);
    if (vm) require_padding_mask("value_mask", *vm, {value[0], value[1]}, axes);
    if (km) require_padding_mask("key_mask", *km, {value[0], value[1]}, axes);

    const MaskView *am = options.attention_mask;
    Dims aligned;
    if (am) {
        require_mask_data("attention_mask", *am);
        aligned = align_to_scores(*am, scores_shape, attention_rank);
    }
    const bool banded = causal || window > 0;  // patterns over (t, s) from axis 1
    if (!am && !qm && !vm && !km && window == 0) {
        plan.kind = causal ? MaskKind::causal : MaskKind::none;
        return plan;
    }
    plan.kind = MaskKind::dense;

    // Axis positions in the scores shape: [batch axes..., N, T axes..., S axes...].
    const size_t nb = axes.batch_axes.size();
    const size_t head_axis = nb;
    const int64_t heads = (am && aligned[head_axis] != 1) ? num_heads : 1;

    if (am && !qm && !vm && !km && !banded) {
        // Zero copy when only the head and whole-batch axes broadcast.
        bool batch_full = true, batch_one = true, positions_full = true;
        for (size_t i = 0; i < nb; i++) {
            batch_full = batch_full && aligned[i] == scores_shape[i];
            batch_one = batch_one && aligned[i] == 1;
        }
        for (size_t i = head_axis + 1; i < aligned.size(); i++) {
            positions_full = positions_full && aligned[i] == scores_shape[i];
        }
        if ((batch_full || batch_one) && positions_full) {
            plan.data = am->data;
            plan.heads = heads;
            plan.batch = batch_full ? B : 1;
            plan.head_stride = heads > 1 ? T * S : 0;
            plan.batch_stride = batch_full ? heads * T * S : 0;
            return plan;
        }
    }

    // Materialize [B, heads, T, S]: walk the scores index space (head axis
    // collapsed when broadcast) in row-major order, reading the aligned mask
    // through broadcast strides.
    Dims dims = dims_of(scores_shape);
    dims[head_axis] = heads;
    const size_t rank = dims.size();
    Dims src_stride;
    src_stride.n = rank;
    if (am) {
        int64_t st = 1;
        for (int i = static_cast<int>(rank) - 1; i >= 0; i--) {
            src_stride[i] = aligned[i] == 1 ? 0 : st;
            st *= aligned[i];
        }
    }
    const int64_t total = B * heads * T * S;
    if (storage.size() < static_cast<size_t>(total)) storage.resize(static_cast<size_t>(total));
    Dims idx;
    idx.n = rank;
    int64_t src = 0;
    for (int64_t i = 0; i < total; i++) {
        // Padding masks need 3-D inputs and the band patterns a single
        // attention axis, so (b, t, s) are the first and last two indices.
        bool ok = !am || am->data[src] != 0;
        if (qm || vm || km || banded) {
            const int64_t b = idx[0], t = idx[rank - 2], s = idx[rank - 1];
            ok = ok && (!qm || qm->data[b * T + t] != 0) && (!vm || vm->data[b * S + s] != 0) &&
                 (!km || km->data[b * S + s] != 0) && (!causal || s <= t) &&
                 (window == 0 || (t > s ? t - s : s - t) < window);
        }
        storage[static_cast<size_t>(i)] = ok ? 1 : 0;
        for (int k = static_cast<int>(rank) - 1; k >= 0; k--) {
            src += src_stride[k];
            if (++idx[k] < dims[k]) break;
            src -= src_stride[k] * dims[k];
            idx[k] = 0;
        }
    }
    plan.data = storage.data();
    plan.heads = heads;
    plan.batch = B;
    plan.head_stride = heads > 1 ? T * S : 0;
    plan.batch_stride = heads * T * S;
    return plan;
}

}  // namespace mhac::detail
