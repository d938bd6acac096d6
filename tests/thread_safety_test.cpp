// The thread contract of mha.h: layers are independent (one per thread, any
// sizes), and a layer entered from two threads at once refuses the second
// call with an Error instead of racing on its scratch. Every result is
// compared bit for bit with a single-threaded run of the same call.
#include <gtest/gtest.h>

#include <atomic>
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

// Different sizes per call index, all on the generic and tiny kernels.
Sizes sizes_for(int i) {
    const int64_t t = 1 + i % 9, s = 1 + (i * 7) % 13;
    if (i % 3 == 0) return {1 + i % 2, t, s, 64, 64, 64, 4, 16, 16, 64};  // tiny
    return {1 + i % 3, t, s, 24, 20, 12, 2, 8, 8, 24};
}

struct Call {
    RandomLayer data;
    std::vector<float> expected;  // single-threaded output
};

std::vector<Call> make_calls(int count) {
    std::vector<Call> calls;
    for (int i = 0; i < count; i++) {
        Call c{make_random_layer(sizes_for(i), true, 100 + i), {}};
        MultiHeadAttention layer(c.data.config(), kernel_sets::default_set());
        layer.set_weights(c.data.keras_weights());
        TensorView k = c.data.key_view();
        CallOptions o;
        o.key = &k;
        o.use_causal_mask = i % 2 == 1;
        c.expected = layer.call(c.data.query_view(), c.data.value_view(), o).output.data;
        calls.push_back(std::move(c));
    }
    return calls;
}

TEST(ThreadSafety, LayersOnManyThreadsMatchTheSingleThreadedResults) {
    const std::vector<Call> calls = make_calls(12);
    std::atomic<int> mismatches{0}, done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&, t] {
            // Each thread keeps one layer per call shape and reuses it.
            std::vector<MultiHeadAttention> layers;
            for (const Call &c : calls) {
                layers.emplace_back(c.data.config(), kernel_sets::default_set());
                layers.back().set_weights(c.data.keras_weights());
            }
            for (int n = 0; n < kCallsPerThread; n++) {
                const size_t i = static_cast<size_t>((n * (t + 1)) % calls.size());
                const Call &c = calls[i];
                TensorView k = c.data.key_view();
                CallOptions o;
                o.key = &k;
                o.use_causal_mask = i % 2 == 1;
                if (layers[i].call(c.data.query_view(), c.data.value_view(), o).output.data !=
                    c.expected)
                    mismatches++;
                done++;
            }
        });
    }
    for (auto &th : threads) th.join();
    EXPECT_EQ(done.load(), kThreads * kCallsPerThread);
    EXPECT_EQ(mismatches.load(), 0);
}

TEST(ThreadSafety, OneLayerFromManyThreadsRefusesOverlappingCalls) {
    // One layer's weights; each thread calls it with inputs of its own sizes.
    const RandomLayer base = make_random_layer({1, 5, 6, 24, 20, 12, 2, 8, 8, 24}, true, 7);
    MultiHeadAttention shared(base.config(), kernel_sets::default_set());
    shared.set_weights(base.keras_weights());
    std::vector<RandomLayer> inputs;
    std::vector<std::vector<float>> expected;
    for (int t = 0; t < kThreads; t++) {
        inputs.push_back(make_random_layer({1 + t % 2, 3 + t, 4 + 2 * t, 24, 20, 12, 2, 8, 8, 24},
                                           true, 50 + t));
        MultiHeadAttention own(base.config(), kernel_sets::default_set());
        own.set_weights(base.keras_weights());
        TensorView k = inputs.back().key_view();
        CallOptions o;
        o.key = &k;
        expected.push_back(
            own.call(inputs.back().query_view(), inputs.back().value_view(), o).output.data);
    }
    std::atomic<int> ok{0}, refused{0}, wrong{0}, other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&, t] {
            const RandomLayer &in = inputs[static_cast<size_t>(t)];
            TensorView k = in.key_view();
            CallOptions o;
            o.key = &k;
            for (int n = 0; n < kCallsPerThread; n++) {
                try {
                    if (shared.call(in.query_view(), in.value_view(), o).output.data ==
                        expected[static_cast<size_t>(t)])
                        ok++;
                    else
                        wrong++;
                } catch (const Error &e) {
                    if (std::string(e.what()).find("another thread is using the same layer") !=
                        std::string::npos)
                        refused++;
                    else
                        other++;
                }
            }
        });
    }
    for (auto &th : threads) th.join();
    std::cout << "  " << ok << " calls ran, " << refused << " overlapping calls refused\n";
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(ok + refused, kThreads * kCallsPerThread);
    EXPECT_GT(ok.load(), 0);
}

}  // namespace
}  // namespace mhac::testing
