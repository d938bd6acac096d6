// The Keras MultiHeadAttention math, once. Every generator in this folder is
// assembled from these functions; no function here makes a scheduling
// decision (schedules/ does, through the Func handles returned below).
//
// Layout convention: Halide dim 0 is the innermost (contiguous) one, so a
// row-major Keras tensor [B, T, E] is the Halide function x(e, t, b).
#pragma once

#include <string>
#include <vector>

#include "Halide.h"
#include "mhac/kernel_abi.h"

namespace mhac::gen {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;
using Halide::Var;

// The kernel ABI shared with the runtime (mask kinds, Keras paths, panel
// width): runtime/include/mhac/kernel_abi.h.
using mhac::KerasPath;
using mhac::kPanelGroup;
using mhac::kPanelWidth;
using mhac::MaskKind;

// The generators' string parameters; throw std::invalid_argument on an
// unknown name.
MaskKind mask_kind_param(const std::string &name);
KerasPath keras_path_param(const std::string &name);  // "fused" | "explicit"

// out(j, rows...) = bias(j) + sum_e in(e, rows...) * w(j % P, e, j / P)
// `in` has the feature index first; `w` is a packed kernel (see kPanelWidth).
struct Projection {
    Func acc;  // (j, rows...): the reduction over input features
    Func out;  // (j, rows...): acc + bias
    RDom r;    // over the input features
    Func in;   // the input, (e, rows...), for schedules that stage it
};
Projection project(const Func &in, const Expr &in_features, const Func &packed_w, const Func &bias,
                   bool use_bias, int row_dims, const std::string &name);

// logits(s, t, n, b) from q(h, n, t, b) and k(h, n, s, b).
struct Logits {
    Func dot;     // (s, t, n, b): the head-dim reduction (of scaled q on the explicit path)
    Func logits;  // (s, t, n, b), scale placed as on `path`
    RDom r;       // over h
};
Logits attention_logits(const Func &q, const Func &k, const Expr &key_dim, const Expr &scale,
                        KerasPath path);

// allowed(s, t, n, b): whether query t of head n may attend to key s.
// `mask` is read only for MaskKind::dense, at rows clamped to mask_rows; its
// extents (mask_heads, mask_batch) may be 1 to broadcast, as Keras's
// attention_mask does.
Func attention_allowed(MaskKind kind, const Func &mask, const Expr &mask_rows,
                       const Expr &mask_heads, const Expr &mask_batch);

// Softmax over s of logits(s, t, n, b) with Keras's masking rules for `path`.
struct MaskedSoftmax {
    Func masked;   // logits with masked entries replaced
    Func row_max;  // (t, n, b)
    Func exp_shifted;
    Func row_sum;  // (t, n, b)
    Func probs;    // (s, t, n, b)
    RDom r;        // over s
};
MaskedSoftmax masked_softmax(const Func &logits, const Func &allowed, MaskKind kind,
                             const Expr &keys, KerasPath path);

// context(g, n, t, b) = sum_s probs(s, t, n, b) * v(g, n, s, b)
struct Combine {
    Func context;
    RDom r;  // over s
};
Combine combine(const Func &probs, const Func &v, const Expr &keys);

// Keras's fused path (softmax(q.k * scale, masked) . v) computed over key
// blocks of (at most) `key_block` keys, flash-attention style, with no T x S buffer:
// each block keeps its own max, its sum of exp(logit - max) and its
// unnormalized p.v; a merge over blocks rescales them by exp(block max - row
// max). Mathematically the same softmax, not an approximation: a fully masked
// row (every logit the finite fill) is still uniform over all keys. Keys past
// S in the last block get a logit below the fill, so they weigh 0.
struct FlashAttention {
    // K and V of a key block in vector tiles (`vector_tile` wide), so the
    // register tiles of Q.K^T and P.V read each tile as one contiguous run:
    // k_blocked(sl, h, sh, kb, n, b): key kb * key_block + sh * tile + sl,
    // clamped to S - 1; v_blocked(gl, si, gh, kb, n, b): column gh * tile + gl
    // of value row kb * key_block + si.
    Func k_blocked{"k_blocked"};
    Func v_blocked{"v_blocked"};
    Func dot{"dot"};              // (si, kb, t, n, b): the head-dim reduction q . k
    Func logits{"logits"};        // (si, kb, t, n, b): scaled, masked, padded
    Func block_max{"block_max"};  // (kb, t, n, b)
    Func block_exp{"block_exp"};  // (si, kb, t, n, b): exp(logit - block max)
    Func block_sum{"block_sum"};  // (kb, t, n, b)
    Func block_pv{"block_pv"};    // (g, kb, t, n, b): sum over the block of block_exp * v
    // (c, kb, t, n, b): c < Hv the block's p.v, c == Hv its sum, c == Hv + 1
    // its max: one Func, so everything a block yields is computed in one loop.
    Func block_out{"block_out"};
    Func row_max{"row_max"};  // (t, n, b): max over blocks
    Func weight{"weight"};    // (kb, t, n, b): exp(block max - row max)
    Func merged{"merged"};    // (c, t, n, b), c <= Hv: the weighted sums over blocks
    Func context{"context"};  // (g, n, t, b): merged p.v / merged sum
    RDom r_h;                 // over the head dim
    RDom r_si;                // over a key block
    RDom r_kb;                // over key blocks
    Expr keys;                // S
    Expr keys_read;           // the keys projected and staged: S, or fewer (trim_keys)
    Expr num_blocks;
    Expr block;  // keys per block: key_block, or fewer (trim_keys)
    // Whether block == key_block: a schedule may specialize on it, so that
    // the common case keeps constant extents.
    Expr full_blocks;
};
// The keys the fused path projects and stages: S, or with `trim_keys` under
// the causal mask only those below T (query t sees keys <= t; a decode step
// T = 1 projects one key, not S).
Expr fused_keys_read(MaskKind kind, const Expr &keys, const Expr &queries, bool trim_keys);

// `trim_keys`: under the causal mask keys at or past T are not read (no query
// attends them), and a call that can attend fewer than key_block keys gets a
// block of just those keys, rounded up to vector tiles; otherwise every block
// has key_block keys and all S keys are read.
FlashAttention flash_attention(const Func &q, const Func &k, const Func &v, const Func &allowed,
                               MaskKind kind, const Expr &keys, const Expr &key_dim,
                               const Expr &value_dim, const Expr &scale, const Expr &queries,
                               int key_block, int vector_tile, bool trim_keys);

// Attention with the K and V projections folded into the query side, for a
// few query rows against many keys (decode): logit(s) = key(s) . (W_k q) *
// scale and context = W_v^T (sum_s p(s) value(s)) + b_v. Exact in real
// arithmetic: the q . b_k left out is the same for every key of a row, which
// softmax ignores, and the probabilities sum to 1, so b_v comes out whole.
// Per key the work is E multiply-adds per head instead of the projections'
// E x H, and no projected K or V exists. The logits of a row are stored
// whole (T x S per head): for T = 1 that is linear in S.
struct AbsorbedAttention {
    Func folded_query{"folded_query"};  // (e, n, t, b): sum_h W_k(e, n H + h) q(h, n, t, b)
    Func dot{"absorbed_dot"};           // (s, t, n, b): key(., s, b) . folded_query(., n, t, b)
    Func logits{"absorbed_logits"};     // (s, t, n, b): dot * scale
    MaskedSoftmax softmax;              // over all S keys
    Func pooled{"pooled_value"};        // (e, n, t, b): sum_s probs(s, t, n, b) value(e, s, b)
    Func context_acc{"absorbed_context_acc"};  // (g, n, t, b): sum_e W_v(e, n Hv + g) pooled
    Func context{"context"};                   // (g, n, t, b): context_acc + b_v
    RDom r_h;                                  // over the head dim
    RDom r_ek;                                 // over the key features
    RDom r_s;                                  // over the keys
    RDom r_ev;                                 // over the value features
};
// `key_kernel` and `value_kernel` are packed (kPanelWidth columns per panel),
// `value_bias` flat over n Hv + g; `keys` are the keys read (fused_keys_read).
// Heads past `heads` read the last head's values and keys past `keys` the
// last key: a schedule may compute the logits of whole groups of heads and
// pairs of keys, and the pooled values of whole groups of heads.
AbsorbedAttention absorbed_attention(const Func &q, const Func &key, const Func &value,
                                     const Func &key_kernel, const Func &value_kernel,
                                     const Func &value_bias, bool use_bias, const Func &allowed,
                                     MaskKind kind, const Expr &keys, const Expr &heads,
                                     const Expr &key_dim, const Expr &value_dim,
                                     const Expr &key_features, const Expr &value_features,
                                     const Expr &scale);

// Flattens context(g, n, t, b) into (c, t, b), c = n * value_dim + g: the
// input layout of the output projection (Keras's [B, T, N, Hv] einsum).
Func flatten_heads(const Func &context, const Expr &value_dim);

// in(e, r) = input(e, t, b) over flat rows r = t + rows * b (t < rows, b <
// batch): the batch's rows as one GEMM's, so B = 8 sequences of T = 128 make
// one pass of 1024 rows over the weights instead of eight of 128.
Func flatten_rows(const Func &input, const Expr &rows, const Expr &batch, const std::string &name);

// Splits a projection out(j, r) over flat rows r = t + rows * b, j = n *
// head_dim + h, into (h, n, t, b).
Func split_heads(const Func &projected, const Expr &head_dim, const Expr &rows);

}  // namespace mhac::gen
