// The thread contract of mha.h: layers are independent (one per thread, any
// sizes, options and masks), a layer entered from two threads at once
// refuses the second call with an Error instead of racing on its scratch,
// and an Error raised on one thread stays with that call. Every result
// (output, scores, error message) is compared exactly with a single-threaded
// run of the same call. The TSan build runs this file (docs/sanitizers.md).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "random_layer.h"

namespace mhac::testing {
namespace {

constexpr int kThreads = 4;
constexpr int kCallsPerThread = 300;
constexpr int kDistinctCalls = 16;

// What a call passes besides its tensors.
struct Variant {
    bool key = true;  // false: Keras's key=None (the value is the key)
    bool causal = false;
    bool scores = false;          // return_attention_scores: Keras's explicit path
    bool attention_mask = false;  // random [B, T, S]
    bool padding_masks = false;   // query_mask [B, T] and value_mask [B, S]
    bool bad_mask = false;        // an attention mask of a wrong shape: an Error
};

Variant variant_for(int i) {
    Variant v;
    v.causal = i % 2 == 1;
    v.scores = i % 3 == 1;
    v.attention_mask = i % 4 == 2;
    v.padding_masks = i % 5 == 3;
    v.bad_mask = i % 7 == 6;
    return v;
}

// Different sizes per call index, on the generic and tiny kernels. Two are
// large enough for the kernels' parallel loops (parallel_min_work in
// schedules/cpu), so Halide's thread pool runs under the test's threads.
Sizes sizes_for(int i) {
    if (i == 4) return {2, 40, 48, 64, 64, 64, 4, 16, 16, 64};
    if (i == 9) return {3, 160, 120, 24, 20, 12, 2, 8, 8, 24};
    const int64_t t = 1 + i % 9, s = 1 + (i * 7) % 13;
    if (i % 3 == 0) return {1 + i % 2, t, s, 64, 64, 64, 4, 16, 16, 64};  // tiny
    return {1 + i % 3, t, s, 24, 20, 12, 2, 8, 8, 24};
}

struct Result {
    std::vector<float> output, scores;
    std::string error;  // an Error's message; empty when the call ran
    bool operator==(const Result &o) const {
        return output == o.output && scores == o.scores && error == o.error;
    }
};

// One call: its inputs and its single-threaded result.
struct Call {
    RandomLayer data;  // inputs (and the weights of the single-layer test)
    Variant variant;
    std::vector<uint8_t> query_mask, value_mask, bad_mask;
    Result expected;
};

// The views a call's options point at.
struct Views {
    TensorView key;
    MaskView mask, query_mask, value_mask;
};

CallOptions options_for(const Call &c, Views &w) {
    const Sizes &s = c.data.sizes;
    CallOptions o;
    if (c.variant.key) {
        w.key = c.data.key_view();
        o.key = &w.key;
    }
    o.use_causal_mask = c.variant.causal;
    o.return_attention_scores = c.variant.scores;
    if (c.variant.attention_mask) {
        w.mask = {c.data.mask.data(), {s.batch, s.queries, s.keys}};
        o.attention_mask = &w.mask;
    }
    if (c.variant.bad_mask) {
        w.mask = {c.bad_mask.data(), {s.batch, s.queries + 1, s.keys}};
        o.attention_mask = &w.mask;
    }
    if (c.variant.padding_masks) {
        w.query_mask = {c.query_mask.data(), {s.batch, s.queries}};
        w.value_mask = {c.value_mask.data(), {s.batch, s.keys}};
        o.query_mask = &w.query_mask;
        o.value_mask = &w.value_mask;
    }
    return o;
}

Result run(MultiHeadAttention &layer, const Call &c) {
    Views w;
    const CallOptions o = options_for(c, w);
    Result r;
    try {
        CallResult got = layer.call(c.data.query_view(), c.data.value_view(), o);
        r.output = std::move(got.output.data);
        r.scores = std::move(got.scores.data);
    } catch (const Error &e) {
        r.error = e.what();
    }
    return r;
}

std::vector<uint8_t> random_bits(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> bits(n);
    for (auto &b : bits) b = rng() % 4 != 0;
    if (n > 0) bits[0] = 1;
    return bits;
}

// A call with `sizes`, `variant` and inputs from `seed`, answered by a fresh
// layer holding the weights of `weights` (the call's own when null).
Call make_call(const Sizes &sizes, const Variant &variant, uint64_t seed,
               const RandomLayer *weights = nullptr) {
    Call c{make_random_layer(sizes, true, seed,
                             variant.attention_mask ? RandomMask::random : RandomMask::none),
           variant,
           {},
           {},
           {},
           {}};
    const auto bt = static_cast<size_t>(sizes.batch * sizes.queries);
    const auto bs = static_cast<size_t>(sizes.batch * sizes.keys);
    if (variant.padding_masks) {
        c.query_mask = random_bits(bt, seed + 1);
        c.value_mask = random_bits(bs, seed + 2);
    }
    if (variant.bad_mask)
        c.bad_mask.assign(static_cast<size_t>(sizes.batch * (sizes.queries + 1) * sizes.keys), 1);
    const RandomLayer &w = weights ? *weights : c.data;
    MultiHeadAttention layer(w.config(), kernel_sets::default_set());
    layer.set_weights(w.keras_weights());
    c.expected = run(layer, c);
    return c;
}

TEST(ThreadSafety, LayersOnManyThreadsMatchTheSingleThreadedResults) {
    std::vector<Call> calls;
    for (int i = 0; i < kDistinctCalls; i++) {
        Variant v = variant_for(i);
        // key=None projects the value through the key kernel: Ek == Ev only.
        const Sizes s = sizes_for(i);
        v.key = !(s.key_features == s.value_features && i % 4 == 0);
        calls.push_back(make_call(s, v, 100 + i));
    }
    int errors = 0, with_scores = 0;
    for (const Call &c : calls) {
        errors += !c.expected.error.empty();
        with_scores += !c.expected.scores.empty();
    }
    ASSERT_GT(errors, 0);  // the mix has refused calls...
    ASSERT_GT(with_scores, 0);
    ASSERT_LT(errors, kDistinctCalls / 2);  // ...and mostly calls that run

    std::atomic<int> mismatches{0}, done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&, t] {
            // Each thread keeps one layer per call and reuses it.
            std::vector<MultiHeadAttention> layers;
            for (const Call &c : calls) {
                layers.emplace_back(c.data.config(), kernel_sets::default_set());
                layers.back().set_weights(c.data.keras_weights());
            }
            for (int n = 0; n < kCallsPerThread; n++) {
                const size_t i = static_cast<size_t>((n * (t + 1) + t) % kDistinctCalls);
                if (!(run(layers[i], calls[i]) == calls[i].expected)) mismatches++;
                done++;
            }
        });
    }
    for (auto &th : threads) th.join();
    EXPECT_EQ(done.load(), kThreads * kCallsPerThread);
    EXPECT_EQ(mismatches.load(), 0);
}

TEST(ThreadSafety, OneLayerFromManyThreadsRefusesOverlappingCalls) {
    // One layer's weights; each thread calls it with inputs of its own sizes
    // and cycles through three option sets.
    constexpr int kPerThread = 3;
    const RandomLayer base = make_random_layer({1, 5, 6, 24, 20, 12, 2, 8, 8, 24}, true, 7);
    MultiHeadAttention shared(base.config(), kernel_sets::default_set());
    shared.set_weights(base.keras_weights());
    std::vector<Call> calls;
    for (int t = 0; t < kThreads; t++) {
        for (int j = 0; j < kPerThread; j++) {
            const Sizes s{1 + t % 2, 3 + t + j, 4 + 2 * t + j, 24, 20, 12, 2, 8, 8, 24};
            calls.push_back(make_call(s, variant_for(t * kPerThread + j), 50 + t * 10 + j, &base));
        }
    }
    const std::string busy = "another thread is using the same layer";
    std::atomic<int> ok{0}, refused{0}, wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&, t] {
            for (int n = 0; n < kCallsPerThread; n++) {
                const Call &c = calls[static_cast<size_t>(t * kPerThread + n % kPerThread)];
                const Result r = run(shared, c);
                if (r == c.expected)
                    ok++;
                else if (r.error.find(busy) != std::string::npos)
                    refused++;
                else
                    wrong++;
            }
        });
    }
    for (auto &th : threads) th.join();
    std::cout << "  " << ok << " calls ran as single-threaded, " << refused
              << " overlapping calls refused\n";
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(ok + refused, kThreads * kCallsPerThread);
    EXPECT_GT(ok.load(), 0);
}

}  // namespace
}  // namespace mhac::testing
