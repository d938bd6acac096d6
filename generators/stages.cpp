#include "stages.h"

#include <cfloat>
#include <stdexcept>
#include <string>

namespace mhac::gen {

using namespace Halide;

namespace {
// Keras 3.15 constants (spec section 2.1).
// Explicit path: Softmax layer's _large_negative_number for float32.
constexpr float kExplicitMaskedLogit = -1e9f;
// Fused path: ops.dot_product_attention fills masked logits with
// -0.7 * max(dtype). Any finite value below every real logit gives the same
// probabilities; this one keeps the "uniform row" behaviour of fully masked
// rows exactly (all logits equal).
constexpr float kFusedMaskedLogit = -0.7f * 3.38953139e38f;
// Keys past S in a padded last key block: below the fill, so even a fully
// masked row gives them exp(-0.3 * max) = 0 weight.
constexpr float kPaddedKeyLogit = -FLT_MAX;

// exp(x) for x <= 0 (a logit minus its row's max), to within 2 ulp of
// Halide's exp: x = k ln2 + r with k rounded to nearest (|r| <= ln2 / 2, so a
// degree-7 Taylor polynomial is exact to 5e-9), 2^k built in the exponent
// bits. Halide's exp floors k, which x86 lowers to two 256-bit roundps per
// 512-bit vector, and handles x > 0 and the clamp of k in both directions:
// 27 vector instructions against these 19. Below -87.3 (2^k would leave the
// normal range) the result is 0, as exp's underflow is.
Expr exp_nonpositive(const Expr &x) {
    const float underflow = -87.3f;           // 2^k below this leaves float's normal range
    const float ln2_hi = 0.693145751953125f;  // 16 bits: k * ln2_hi is exact
    const float ln2_lo = 1.428606765330187e-06f;
    Expr xc = max(x, underflow);
    // Truncation of y - 0.5 rounds y <= 0 to nearest (ties up).
    Expr k = cast<int>(xc * 1.44269504f - 0.5f);
    Expr kf = cast<float>(k);
    Expr r = xc - kf * ln2_hi - kf * ln2_lo;
    const float coeff[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24,
                           1.0f / 6,    0.5f,       1.0f,       1.0f};
    Expr p = coeff[0];
    for (size_t i = 1; i < sizeof(coeff) / sizeof(coeff[0]); i++) p = p * r + coeff[i];
    Expr scale = reinterpret<float>((k + 127) << 23);
    return select(x < underflow, 0.0f, p * scale);
}
}  // namespace

MaskKind mask_kind_param(const std::string &name) {
    MaskKind kind;
    if (!mhac::parse_mask_kind(name, &kind))
        throw std::invalid_argument("unknown mask kind '" + name + "' (none, causal, dense)");
    return kind;
}

KerasPath keras_path_param(const std::string &name) {
    KerasPath path;
    if (!mhac::parse_keras_path(name, &path))
        throw std::invalid_argument("unknown attention path '" + name + "' (fused, explicit)");
    return path;
}

Projection project(const Func &in, const Expr &in_features, const Func &packed_w, const Func &bias,
                   bool use_bias, int row_dims, const std::string &name) {
    Var j("j");
    std::vector<Var> rows;
    for (int i = 0; i < row_dims; i++) rows.emplace_back("m" + std::to_string(i));
    std::vector<Var> lhs{j};
    lhs.insert(lhs.end(), rows.begin(), rows.end());

    Projection p{Func(name + "_acc"), Func(name), RDom(0, in_features, name + "_e"), in};
    std::vector<Expr> in_args{p.r.x};
    in_args.insert(in_args.end(), rows.begin(), rows.end());

    // EinsumDense: einsum first, then + bias (Keras order).
    p.acc(lhs) = 0.0f;
    p.acc(lhs) += in(in_args)*packed_w(j % kPanelWidth, p.r.x, j / kPanelWidth);
    p.out(lhs) = use_bias ? p.acc(lhs) + bias(j) : p.acc(lhs);
    return p;
}

Logits attention_logits(const Func &q, const Func &k, const Expr &key_dim, const Expr &scale,
                        KerasPath path) {
    Var s("s"), t("t"), n("n"), b("b");
    Logits l{Func("dot"), Func("logits"), RDom(0, key_dim, "h")};
    l.dot(s, t, n, b) = 0.0f;
    if (path == KerasPath::explicit_scores) {
        // query = ops.multiply(query, scale) happens before the einsum.
        l.dot(s, t, n, b) += (q(l.r.x, n, t, b) * scale) * k(l.r.x, n, s, b);
        l.logits(s, t, n, b) = l.dot(s, t, n, b);
    } else {
        l.dot(s, t, n, b) += q(l.r.x, n, t, b) * k(l.r.x, n, s, b);
        l.logits(s, t, n, b) = l.dot(s, t, n, b) * scale;
    }
    return l;
}

Func attention_allowed(MaskKind kind, const Func &mask, const Expr &mask_rows,
                       const Expr &mask_heads, const Expr &mask_batch) {
    Var s("s"), t("t"), n("n"), b("b");
    Func allowed("allowed");
    switch (kind) {
    case MaskKind::none: allowed(s, t, n, b) = Halide::Internal::const_true(); break;
    case MaskKind::causal: allowed(s, t, n, b) = s <= t; break;
    case MaskKind::dense:
        // Rows clamped to the mask's: the fused schedule's row tiles are
        // shifted inside each block, which Halide's bounds cannot follow, and
        // an input must cover every row it is proven to be read at.
        allowed(s, t, n, b) = mask(s, clamp(t, 0, mask_rows - 1), min(n, mask_heads - 1),
                                   min(b, mask_batch - 1)) != 0;
        break;
    }
    return allowed;
}

MaskedSoftmax masked_softmax(const Func &logits, const Func &allowed, MaskKind kind,
                             const Expr &keys, KerasPath path) {
    Var s("s"), t("t"), n("n"), b("b");
    MaskedSoftmax sm{Func("masked"),  Func("row_max"), Func("exp_shifted"),
                     Func("row_sum"), Func("probs"),   RDom(0, keys, "sk")};
    const float fill = path == KerasPath::fused ? kFusedMaskedLogit : kExplicitMaskedLogit;
    if (kind == MaskKind::none) {
        sm.masked(s, t, n, b) = logits(s, t, n, b);
    } else {
        sm.masked(s, t, n, b) = select(allowed(s, t, n, b), logits(s, t, n, b), fill);
    }
    // Halide compiles with no-inf/no-nan fast math: start from a finite value.
    sm.row_max(t, n, b) = -FLT_MAX;
    sm.row_max(t, n, b) = max(sm.row_max(t, n, b), sm.masked(sm.r.x, t, n, b));
    sm.exp_shifted(s, t, n, b) = exp(sm.masked(s, t, n, b) - sm.row_max(t, n, b));
    sm.row_sum(t, n, b) = 0.0f;
    sm.row_sum(t, n, b) += sm.exp_shifted(sm.r.x, t, n, b);
    Expr p = sm.exp_shifted(s, t, n, b) / sm.row_sum(t, n, b);
    if (kind != MaskKind::none && path == KerasPath::explicit_scores) {
        // Keras >= 3.10 Softmax multiplies by the mask after normalising, so a
        // fully masked row is all zeros instead of uniform.
        p = select(allowed(s, t, n, b), p, 0.0f);
    }
    sm.probs(s, t, n, b) = p;
    return sm;
}

Combine combine(const Func &probs, const Func &v, const Expr &keys) {
    Var g("g"), n("n"), t("t"), b("b");
    Combine c{Func("context"), RDom(0, keys, "sv")};
    c.context(g, n, t, b) = 0.0f;
    c.context(g, n, t, b) += probs(c.r.x, t, n, b) * v(g, n, c.r.x, b);
    return c;
}

Expr fused_keys_read(MaskKind kind, const Expr &keys, const Expr &queries, bool trim_keys) {
    return trim_keys && kind == MaskKind::causal ? min(keys, queries) : keys;
}

FlashAttention flash_attention(const Func &q, const Func &k, const Func &v, const Func &allowed,
                               MaskKind kind, const Expr &keys, const Expr &key_dim,
                               const Expr &value_dim, const Expr &scale, const Expr &queries,
                               int key_block, int vector_tile, bool trim_keys) {
    if (vector_tile <= 0 || key_block % vector_tile != 0)
        throw std::invalid_argument("vector tile " + std::to_string(vector_tile) +
                                    " does not divide the key block " + std::to_string(key_block));
    Var si("si"), h("h"), kb("kb"), t("t"), n("n"), b("b"), g("g"), c("c");
    Var sl("sl"), sh("sh"), gl("gl"), gh("gh");
    FlashAttention f;
    f.r_h = RDom(0, key_dim, "h");
    f.keys = keys;
    const int tile = vector_tile;
    // The rest of the keys are neither projected nor staged.
    Expr reach = fused_keys_read(kind, keys, queries, trim_keys);
    f.block = key_block;
    f.full_blocks = Halide::Internal::const_true();
    if (trim_keys) {
        // Fewer than key_block keys: one block of them, rounded up to vector
        // tiles, instead of a padded full block (S = 16 in 128-key blocks was
        // 8x the work).
        f.full_blocks = reach >= key_block;
        f.block = select(f.full_blocks, key_block, (reach + tile - 1) / tile * tile);
    }
    f.keys_read = reach;
    f.r_si = RDom(0, f.block, "si");
    f.num_blocks = (reach + f.block - 1) / f.block;
    f.r_kb = RDom(0, f.num_blocks, "kb");
    if (kind == MaskKind::causal) {
        // Blocks wholly after query t are fully masked (weight exactly 0,
        // and row t always allows key 0): never computed. Written with the
        // constant key_block, which Halide's bounds can solve for (a short
        // block is the only one, kb = 0, and 0 <= t holds either way).
        f.r_kb.where(f.r_kb * key_block <= t);
    }
    Expr key = kb * f.block + si;
    Expr key_clamped = min(key, reach - 1);

    Expr tiled_key = min(kb * f.block + sh * tile + sl, reach - 1);
    f.k_blocked(sl, h, sh, kb, n, b) = k(h, n, tiled_key, b);
    // Columns past Hv in the last tile are clamped copies, never read.
    f.v_blocked(gl, si, gh, kb, n, b) = v(min(gh * tile + gl, value_dim - 1), n, key_clamped, b);
    f.dot(si, kb, t, n, b) = 0.0f;
    f.dot(si, kb, t, n, b) +=
        q(f.r_h, n, t, b) * f.k_blocked(si % tile, f.r_h, si / tile, kb, n, b);
    Expr logit = f.dot(si, kb, t, n, b) * scale;
    if (kind != MaskKind::none) {
        logit = select(allowed(key_clamped, t, n, b), logit, kFusedMaskedLogit);
    }
    // Keys past those read (S, or T under trim_keys' causal rule, where they
    // are masked for every query anyway) weigh 0.
    f.logits(si, kb, t, n, b) = select(key < reach, logit, kPaddedKeyLogit);

    f.block_max(kb, t, n, b) = -FLT_MAX;
    f.block_max(kb, t, n, b) = max(f.block_max(kb, t, n, b), f.logits(f.r_si, kb, t, n, b));
    f.block_exp(si, kb, t, n, b) =
        exp_nonpositive(f.logits(si, kb, t, n, b) - f.block_max(kb, t, n, b));
    f.block_sum(kb, t, n, b) = 0.0f;
    f.block_sum(kb, t, n, b) += f.block_exp(f.r_si, kb, t, n, b);
    f.block_pv(g, kb, t, n, b) = 0.0f;
    f.block_pv(g, kb, t, n, b) +=
        f.block_exp(f.r_si, kb, t, n, b) * f.v_blocked(g % tile, f.r_si, g / tile, kb, n, b);
    f.block_out(c, kb, t, n, b) =
        select(c < value_dim, f.block_pv(min(c, value_dim - 1), kb, t, n, b), c == value_dim,
               f.block_sum(kb, t, n, b), f.block_max(kb, t, n, b));

    f.row_max(t, n, b) = -FLT_MAX;
    f.row_max(t, n, b) = max(f.row_max(t, n, b), f.block_out(value_dim + 1, f.r_kb, t, n, b));
    f.weight(kb, t, n, b) = exp(f.block_out(value_dim + 1, kb, t, n, b) - f.row_max(t, n, b));
    f.merged(c, t, n, b) = 0.0f;
    f.merged(c, t, n, b) += f.weight(f.r_kb, t, n, b) * f.block_out(c, f.r_kb, t, n, b);
    f.context(g, n, t, b) = f.merged(g, t, n, b) / f.merged(value_dim, t, n, b);
    return f;
}

AbsorbedAttention absorbed_attention(const Func &q, const Func &key, const Func &value,
                                     const Func &key_kernel, const Func &value_kernel,
                                     const Func &value_bias, bool use_bias, const Func &allowed,
                                     MaskKind kind, const Expr &keys, const Expr &heads,
                                     const Expr &key_dim, const Expr &value_dim,
                                     const Expr &key_features, const Expr &value_features,
                                     const Expr &scale) {
    Var e("e"), s("s"), t("t"), n("n"), b("b"), g("g");
    AbsorbedAttention a;
    a.r_h = RDom(0, key_dim, "h");
    a.r_ek = RDom(0, key_features, "ek");
    a.r_s = RDom(0, keys, "sk");
    a.r_ev = RDom(0, value_features, "ev");
    Expr jk = n * key_dim + a.r_h;
    a.folded_query(e, n, t, b) = 0.0f;
    a.folded_query(e, n, t, b) +=
        key_kernel(jk % kPanelWidth, e, jk / kPanelWidth) * q(a.r_h, n, t, b);
    a.dot(s, t, n, b) = 0.0f;
    Expr head = min(n, heads - 1);
    // Keys clamped: the schedule computes pairs of keys.
    a.dot(s, t, n, b) += key(a.r_ek, min(s, keys - 1), b) * a.folded_query(a.r_ek, head, t, b);
    // The fused path's order: the dot product, then the scale.
    a.logits(s, t, n, b) = a.dot(s, t, n, b) * scale;
    a.softmax = masked_softmax(a.logits, allowed, kind, keys, KerasPath::fused);
    a.pooled(e, n, t, b) = 0.0f;
    // Columns clamped: a schedule may compute whole vectors of them.
    a.pooled(e, n, t, b) +=
        a.softmax.probs(a.r_s, t, head, b) * value(min(e, value_features - 1), a.r_s, b);
    Expr jv = n * value_dim + g;
    a.context_acc(g, n, t, b) = 0.0f;
    a.context_acc(g, n, t, b) +=
        value_kernel(jv % kPanelWidth, a.r_ev, jv / kPanelWidth) * a.pooled(a.r_ev, n, t, b);
    a.context(g, n, t, b) =
        use_bias ? a.context_acc(g, n, t, b) + value_bias(jv) : a.context_acc(g, n, t, b);
    return a;
}

Func flatten_heads(const Func &context, const Expr &value_dim) {
    Var c("c"), t("t"), b("b");
    Func flat("context_flat");
    flat(c, t, b) = context(c % value_dim, c / value_dim, t, b);
    return flat;
}

Func flatten_rows(const Func &input, const Expr &rows, const Expr &batch, const std::string &name) {
    Var e("e"), r("r");
    Func flat(name);
    // The sequence clamped: a schedule computing K a key block at a time
    // leaves Halide a bound one row past a block's last (an exclusive max
    // through min()), which divided by `rows` reached the next sequence.
    flat(e, r) = input(e, r % rows, min(r / rows, batch - 1));
    return flat;
}

Func split_heads(const Func &projected, const Expr &head_dim, const Expr &rows) {
    Var h("h"), n("n"), t("t"), b("b");
    Func heads(projected.name() + "_heads");
    heads(h, n, t, b) = projected(n * head_dim + h, t + rows * b);
    return heads;
}

}  // namespace mhac::gen
