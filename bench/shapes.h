// The one table of benchmark shapes, each taken from a real model. The
// benchmarks run every shape against every configuration of the kernel set
// that can run it; add a model by adding a row here.
#pragma once

#include <cstdint>

#include "random_layer.h"

namespace mhac::bench {

struct BenchShape {
    const char *name;              // the last part of the benchmark name: mha/<variant name>/<name>
    const char *model;             // where the sizes come from
    int64_t batch, queries, keys;  // B, T, S
    int64_t query_features, key_features, value_features;  // Eq, Ek, Ev
    int64_t num_heads, key_dim, value_dim;                 // N, H, Hv
    int64_t output_features;                               // O

    testing::Sizes sizes() const {
        return {batch,          queries,   keys,    query_features, key_features,
                value_features, num_heads, key_dim, value_dim,      output_features};
    }
};

// The staged path returns the [B, N, T, S] scores: it is benchmarked only
// where they stay below kMaxStagedScores elements (1 GiB of float32 at
// long_4096 is not a call anyone makes for speed).
inline constexpr int64_t kMaxStagedScores = int64_t{1} << 26;

// Keras's MultiHeadAttention has no KV cache: a decode step (T=1) still
// projects the whole key/value context, so "decode" here means T=1 against a
// 512-token context, dominated by the K/V projections, not by attention.
// clang-format off
inline constexpr BenchShape kShapes[] = {
    // name                   model                                   B  T    S    Eq   Ek   Ev   N   H   Hv  O
    {"bert_base_prefill_b1", "BERT-base encoder layer, seq 128",      1, 128, 128, 768, 768, 768, 12, 64, 64, 768},
    {"bert_base_prefill_b8", "BERT-base encoder layer, seq 128, B=8", 8, 128, 128, 768, 768, 768, 12, 64, 64, 768},
    {"bert_base_decode",     "BERT-base sizes, one query, 512 ctx",   1, 1,   512, 768, 768, 768, 12, 64, 64, 768},
    {"bert_base_decode_2048", "BERT-base sizes, one query, 2048 ctx",  1, 1,   2048, 768, 768, 768, 12, 64, 64, 768},
    {"vit_base",             "ViT-B/16 at 224x224 (196 patches+CLS)", 1, 197, 197, 768, 768, 768, 12, 64, 64, 768},
    {"bert_base_seq512",     "BERT-base encoder layer, seq 512",      1, 512, 512, 768, 768, 768, 12, 64, 64, 768},
    {"long_4096",            "long context, E=512 N=8, seq 4096",     1, 4096, 4096, 512, 512, 512, 8, 64, 64, 512},
    {"tiny",                 "tiny test model, E=64 N=4 H=16",        1, 16,  16,  64,  64,  64,  4,  16, 16, 64},
};
// clang-format on

}  // namespace mhac::bench
