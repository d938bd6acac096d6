#include "masks.h"

#include <algorithm>
#include <array>
#include <string>

namespace mhac::detail {

namespace {

// Keras 3.15 `MultiHeadAttention._compute_attention_mask` and
// `_masked_softmax`, step by step:
//   1. auto mask = query_mask[..., None]  ([B, T] -> [B, T, 1])
//                & value_mask[..., None, :] ([B, S] -> [B, 1, S])
//                & key_mask[..., None, :]
//                & causal [1, T, S] & sliding window [1, T, S]
//      (T, S: axis-1 lengths of query and value), numpy broadcasting;
//   2. mask = attention_mask & auto mask, numpy broadcasting (trailing axes
//      aligned), so an auto mask [B, 1, S] meets a [B, N, T, S]
//      attention_mask's head axis with its batch axis;
//   3. while rank < scores rank: expand_dims at -(2 * |attention axes| + 1);
//   4. every axis 1 or equal to the scores' (Softmax's check).
// Each mask below is a Part: its shape as Keras sees it after step 1's
// expand_dims, then placed in the scores' frame (steps 2-3).

// A shape held inline: planning a call's masks allocates nothing.
constexpr size_t kMaxScoresRank = 32;
struct Dims {
    std::array<int64_t, kMaxScoresRank> v{};
    size_t n = 0;
    int64_t &operator[](size_t i) { return v[i]; }
    int64_t operator[](size_t i) const { return v[i]; }
    size_t size() const { return n; }
    void push_back(int64_t d) {
        if (n == kMaxScoresRank) {
            throw Error("a mask of rank above " + std::to_string(kMaxScoresRank) +
                        " exceeds mhac's limit");
        }
        v[n++] = d;
    }
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

std::string dims_to_string(const Dims &d) {
    return shape_to_string(Shape(d.v.begin(), d.v.begin() + d.n));
}

enum class Source { tensor, causal, window };

struct Part {
    const char *name = "";
    Source source = Source::tensor;
    const uint8_t *data = nullptr;      // tensor only
    const Shape *given = nullptr;       // tensor only: the caller's shape
    Dims shape;                         // as Keras combines it (after step 1's expand_dims)
    Dims aligned;                       // in the scores' frame (after step 3)
    Dims stride;                        // over `aligned`, 0 on length-1 axes
    size_t row_axis = 0, col_axis = 0;  // patterns: where (i, j) land in the scores' frame
};

constexpr size_t kMaxParts = 6;  // attention, query, value, key, causal, window
struct Parts {
    std::array<Part, kMaxParts> v;
    size_t n = 0;
    Part &add() { return v[n++]; }
};

// "value_mask [2, 6] as [2, 1, 6]", "use_causal_mask [1, 5, 6]".
std::string describe(const Part &p) {
    if (p.source != Source::tensor) return std::string(p.name) + " " + dims_to_string(p.shape);
    std::string s = std::string(p.name) + " " + shape_to_string(*p.given);
    if (p.shape.size() != p.given->size()) s += " as " + dims_to_string(p.shape);
    return s;
}

std::string describe_all(const Parts &parts, size_t from, size_t to) {
    std::string s;
    for (size_t i = from; i < to; i++) s += (s.empty() ? "" : ", ") + describe(parts.v[i]);
    return s;
}

constexpr const char *kKerasOrder =
    "Keras ANDs the padding masks (query_mask as [B, T, 1], value_mask and key_mask as "
    "[B, 1, S]) and the causal and sliding-window masks ([1, T, S]) first, then ANDs that "
    "with attention_mask by trailing-axis broadcasting, before aligning to the scores";

// Numpy broadcasting of `acc` (right-aligned) with `next`; false if they clash.
bool broadcast_into(Dims &acc, const Dims &next) {
    Dims out;
    const size_t r = std::max(acc.size(), next.size());
    out.n = r;
    for (size_t i = 0; i < r; i++) {
        const int64_t a = i + acc.size() >= r ? acc[i + acc.size() - r] : 1;
        const int64_t b = i + next.size() >= r ? next[i + next.size() - r] : 1;
        if (a != b && a != 1 && b != 1) return false;
        out[i] = a == 1 ? b : a;
    }
    acc = out;
    return true;
}

void require_mask_data(const char *name, const MaskView &m) {
    if (!m.data)
        throw Error(std::string(name) + " has null data (shape " + shape_to_string(m.shape) + ")");
}

// Step 1's expand_dims: query mask at -1, value and key masks at -2.
void add_padding_mask(Parts &parts, const char *name, const MaskView &m, bool is_query) {
    require_mask_data(name, m);
    if (!is_query && m.shape.empty()) {
        // ops.expand_dims(x, -2) needs rank >= 1.
        throw Error(std::string(name) +
                    " must have rank >= 1 (Keras expands it to [..., 1, S]); got a scalar");
    }
    Part &p = parts.add();
    p.name = name;
    p.data = m.data;
    p.given = &m.shape;
    for (int64_t d : m.shape) p.shape.push_back(d);
    if (is_query) {
        p.shape.push_back(1);
    } else {
        p.shape.push_back(p.shape[p.shape.size() - 1]);
        p.shape[p.shape.size() - 2] = 1;
    }
}

// Step 1: the auto mask, in Keras's order. Adds the padding masks and the
// causal / sliding-window patterns to `parts`; returns their broadcast shape.
Dims add_auto_mask(Parts &parts, const CallOptions &options, const Shape &query, const Shape &value,
                   int64_t window) {
    if (options.query_mask) add_padding_mask(parts, "query_mask", *options.query_mask, true);
    if (options.value_mask) add_padding_mask(parts, "value_mask", *options.value_mask, false);
    if (options.key_mask) add_padding_mask(parts, "key_mask", *options.key_mask, false);
    for (Source pattern : {Source::causal, Source::window}) {
        if (pattern == Source::causal ? !options.use_causal_mask : window == 0) continue;
        Part &p = parts.add();
        p.name = pattern == Source::causal ? "use_causal_mask" : "sliding_window";
        p.source = pattern;
        p.shape.push_back(1);
        p.shape.push_back(query[1]);
        p.shape.push_back(value[1]);
    }
    Dims combined;
    for (size_t i = 0; i < parts.n; i++) {
        if (!broadcast_into(combined, parts.v[i].shape)) {
            throw Error("mask " + describe(parts.v[i]) + " does not broadcast with " +
                        describe_all(parts, 0, i) + " (combined shape " + dims_to_string(combined) +
                        "); " + kKerasOrder);
        }
    }
    return combined;
}

// Step 2: attention_mask & auto mask (the first `n_auto` parts).
void add_attention_mask(Parts &parts, const MaskView &am, size_t n_auto, Dims &combined) {
    Part &p = parts.add();
    p.name = "attention_mask";
    p.data = am.data;
    p.given = &am.shape;
    for (int64_t d : am.shape) p.shape.push_back(d);
    if (n_auto == 0) {
        combined = p.shape;
    } else if (!broadcast_into(combined, p.shape)) {
        throw Error("attention_mask shape " + shape_to_string(am.shape) +
                    " does not broadcast with the padding/causal mask " + dims_to_string(combined) +
                    " (from " + describe_all(parts, 0, n_auto) + "): " + kKerasOrder +
                    ", so that mask's batch axis meets the attention_mask axis at the same "
                    "position from the end (the head axis of a [B, N, T, S] mask)");
    }
}

// The combined mask, for errors: built only when one is thrown.
std::string describe_combined(const Parts &parts, const Dims &combined, const MaskView *am) {
    if (parts.n == 1 && am) return "attention_mask shape " + shape_to_string(am->shape);
    return "the combined mask " + dims_to_string(combined) + " (from " +
           describe_all(parts, 0, parts.n) + ")";
}

// Steps 3 and 4: the combined mask in the scores' frame (length-1 axes
// inserted at the head slot), checked against the scores; every part gets
// its place and broadcast strides in that frame.
Dims align_to_scores(Parts &parts, const Dims &combined, const Shape &scores_shape,
                     size_t attention_rank, const MaskView *am) {
    const Dims scores = dims_of(scores_shape);
    const size_t R = combined.size(), sr = scores.size();
    auto refuse = [&](const std::string &why) {
        throw Error(describe_combined(parts, combined, am) +
                    " cannot be broadcast to the attention scores shape " +
                    shape_to_string(scores_shape) + why);
    };
    if (R > sr) refuse(": its rank is higher");
    const size_t missing = sr - R;
    if (missing > 0 && R < 2 * attention_rank) {
        // ops.expand_dims(mask, -(2k + 1)) needs rank >= 2k.
        refuse(": Keras inserts length-1 axes at position " +
               std::to_string(-(2 * static_cast<int>(attention_rank) + 1)) +
               ", which needs a mask of rank >= " + std::to_string(2 * attention_rank));
    }
    const size_t split = R - 2 * attention_rank;  // used only when missing > 0
    auto position = [&](size_t frame) {
        return missing > 0 && frame >= split ? frame + missing : frame;
    };
    Dims full;
    full.n = sr;
    for (size_t i = 0; i < sr; i++) full[i] = 1;
    for (size_t i = 0; i < R; i++) full[position(i)] = combined[i];
    for (size_t i = 0; i < sr; i++) {
        if (full[i] != 1 && full[i] != scores[i]) refuse("");  // Softmax's check
    }
    for (size_t k = 0; k < parts.n; k++) {
        Part &p = parts.v[k];
        p.aligned.n = sr;
        for (size_t i = 0; i < sr; i++) p.aligned[i] = 1;
        const size_t offset = R - p.shape.size();
        for (size_t i = 0; i < p.shape.size(); i++) p.aligned[position(offset + i)] = p.shape[i];
        p.row_axis = position(R - 2);
        p.col_axis = position(R - 1);
        p.stride.n = sr;
        int64_t st = 1;
        for (size_t i = sr; i-- > 0;) {
            p.stride[i] = p.aligned[i] == 1 ? 0 : st;
            st *= p.aligned[i];
        }
    }
    return full;
}

// Materializes the parts' AND over `dims` (the scores' shape with the head
// and batch axes collapsed where the mask broadcasts over them) in row-major
// order, reading every part through its broadcast strides.
void materialize(const Parts &parts, const Dims &dims, int64_t window, int64_t total,
                 std::vector<uint8_t> &storage) {
    if (storage.size() < static_cast<size_t>(total)) storage.resize(static_cast<size_t>(total));
    const size_t sr = dims.size();
    Dims idx;
    idx.n = sr;
    std::array<int64_t, kMaxParts> src{};
    for (int64_t i = 0; i < total; i++) {
        bool ok = true;
        for (size_t k = 0; k < parts.n && ok; k++) {
            const Part &p = parts.v[k];
            if (p.source == Source::tensor) {
                ok = p.data[src[k]] != 0;
                continue;
            }
            // Keras's patterns over (i, j) = (row, column) of [1, T, S].
            const int64_t r = p.aligned[p.row_axis] == 1 ? 0 : idx[p.row_axis];
            const int64_t c = p.aligned[p.col_axis] == 1 ? 0 : idx[p.col_axis];
            ok = p.source == Source::causal ? c <= r : (r > c ? r - c : c - r) < window;
        }
        storage[static_cast<size_t>(i)] = ok ? 1 : 0;
        for (size_t k = sr; k-- > 0;) {
            for (size_t q = 0; q < parts.n; q++) src[q] += parts.v[q].stride[k];
            if (++idx[k] < dims[k]) break;
            for (size_t q = 0; q < parts.n; q++) src[q] -= parts.v[q].stride[k] * dims[k];
            idx[k] = 0;
        }
    }
}

}  // namespace

MaskPlan plan_masks(const CallOptions &options, const AxesPlan &axes, const Shape &query,
                    const Shape &value, const Shape &scores_shape, int num_heads,
                    int sliding_window, std::vector<uint8_t> &storage) {
    MaskPlan plan;
    const int64_t B = axes.batch, T = axes.queries, S = axes.keys;
    const size_t attention_rank = axes.attention_axes.size();
    const int64_t window = sliding_window;
    const MaskView *am = options.attention_mask;
    if (am) require_mask_data("attention_mask", *am);
    if (!am && !options.query_mask && !options.value_mask && !options.key_mask && window == 0) {
        if (!options.use_causal_mask) return plan;
        // Causal only: the kernels' own s <= t pattern is Keras's [1, T, S]
        // one when attention runs over axis 1 alone (T, S are axis-1 lengths).
        if (attention_rank == 1 && axes.attention_axes[0] == 1) {
            plan.kind = MaskKind::causal;
            return plan;
        }
    }
    plan.kind = MaskKind::dense;
    Parts parts;
    Dims combined = add_auto_mask(parts, options, query, value, window);
    if (am) add_attention_mask(parts, *am, parts.n, combined);
    const Dims full = align_to_scores(parts, combined, scores_shape, attention_rank, am);

    // Scores axes: [batch axes..., N, T axes..., S axes...].
    const Dims scores = dims_of(scores_shape);
    const size_t nb = axes.batch_axes.size(), head_axis = nb, sr = scores.size();
    const int64_t heads = full[head_axis] != 1 ? num_heads : 1;
    bool batch_one = true, batch_full = true, positions_full = true;
    for (size_t i = 0; i < nb; i++) {
        batch_one = batch_one && full[i] == 1;
        batch_full = batch_full && full[i] == scores[i];
    }
    for (size_t i = head_axis + 1; i < sr; i++)
        positions_full = positions_full && full[i] == scores[i];
    plan.heads = heads;
    plan.head_stride = heads > 1 ? T * S : 0;
    if (am && parts.n == 1 && positions_full && (batch_full || batch_one)) {
        // Zero copy when only the head and whole-batch axes broadcast.
        plan.data = am->data;
        plan.batch = batch_full ? B : 1;
        plan.batch_stride = batch_full ? heads * T * S : 0;
        return plan;
    }
    Dims dims = scores;
    dims[head_axis] = heads;
    if (batch_one) {
        for (size_t i = 0; i < nb; i++) dims[i] = 1;
    }
    plan.batch = batch_one ? 1 : B;
    materialize(parts, dims, window, plan.batch * heads * T * S, storage);
    plan.data = storage.data();
    plan.batch_stride = batch_one ? 0 : heads * T * S;
    return plan;
}

}  // namespace mhac::detail
