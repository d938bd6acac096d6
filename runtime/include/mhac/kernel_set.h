// The table a generated kernel set exposes to the runtime. Written by the
// kernel planner (tools/plan) from the configuration table; nothing here is
// kept by hand per variant.
#pragma once

#include <cstddef>

#include "mhac/kernel_abi.h"

struct halide_buffer_t;

namespace mhac {

// Halide-generated entry points (buffers in Halide order: dim 0 innermost).
using ProjectionFn = int (*)(halide_buffer_t *input, halide_buffer_t *packed_kernel,
                             halide_buffer_t *bias, halide_buffer_t *output);
using ScoresFn = int (*)(halide_buffer_t *query, halide_buffer_t *key, float scale,
                         halide_buffer_t *logits);
using SoftmaxFn = int (*)(halide_buffer_t *logits, halide_buffer_t *mask, halide_buffer_t *probs);
using CombineFn = int (*)(halide_buffer_t *probs, halide_buffer_t *value, halide_buffer_t *context);
using FusedFn = int (*)(halide_buffer_t *query, halide_buffer_t *key, halide_buffer_t *value,
                        halide_buffer_t *query_kernel, halide_buffer_t *query_bias,
                        halide_buffer_t *key_kernel, halide_buffer_t *key_bias,
                        halide_buffer_t *value_kernel, halide_buffer_t *value_bias,
                        halide_buffer_t *output_kernel, halide_buffer_t *output_bias,
                        halide_buffer_t *mask, float scale, halide_buffer_t *output);

template <typename Fn>
struct NamedKernel {
    const char *name;  // the symbol, e.g. mha_fused_f32_bert_base_causal
    Fn fn;             // null when not compiled
    // What tuned it, per ISA level of the ladder, from the tuned database
    // (docs/tuning.md): "avx2-f16c-fma: key_block=64 (2026-05-01, 1.12x);
    // sse41: hand defaults", or "hand defaults" for every level.
    const char *tuning;
    explicit operator bool() const { return fn != nullptr; }
};

// Sizes a configuration was specialized for; 0 means "any" (generic).
struct ConfigSizes {
    int num_heads;
    int key_dim;
    int value_dim;
    int query_features;
    int key_features;
    int value_features;
    int output_features;
    bool use_bias;
};

// A fused kernel compiled again for a shape bucket whose tuned knobs differ
// from the kernel for all shapes (tools/plan/tuned_db.h's kBuckets): it runs
// the calls of its mask kind whose T and S lie in its ranges (max 0 =
// unbounded); select_variant takes the first that holds.
struct FusedBucket {
    MaskKind mask;
    const char *bucket;  // e.g. "decode"
    long long min_queries, max_queries, min_keys, max_keys;
    NamedKernel<FusedFn> kernel;

    bool holds(long long queries, long long keys) const {
        return queries >= min_queries && (max_queries == 0 || queries <= max_queries) &&
               keys >= min_keys && (max_keys == 0 || keys <= max_keys);
    }
};

struct ConfigKernels {
    const char *name;  // "generic" or the row's name in the table
    ConfigSizes sizes;
    NamedKernel<FusedFn> fused[kMaskKinds];  // by MaskKind
    NamedKernel<ProjectionFn> projection[kProjectionSlots];
    NamedKernel<ScoresFn> scores[kKerasPaths];
    NamedKernel<CombineFn> combine;
    const FusedBucket *fused_buckets = nullptr;  // tuned per shape bucket, may be none
    std::size_t num_fused_buckets = 0;

    bool is_generic() const { return sizes.num_heads == 0; }
};

struct SoftmaxKernels {
    NamedKernel<SoftmaxFn> by_path_mask[kKerasPaths][kMaskKinds];
};

struct KernelSet {
    const char *name;
    const char *targets;     // the Halide multi-target ladder, best first
    const char *device;      // "cpu" or "cuda"
    int compute_capability;  // CUDA sets: e.g. 86 for compute capability 8.6; 0 for CPU sets
    const ConfigKernels *configs;
    std::size_t num_configs;
    const SoftmaxKernels &softmax;
};

}  // namespace mhac
