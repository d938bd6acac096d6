// The CUDA kernel sets: built and linked on every x86 host; executed only
// where a usable CUDA device exists (skipped with the reason otherwise). The
// device-request errors and the selection run everywhere. Every CUDA set of
// mhac::kernel_sets::all() is tested, each forced in turn, so a lower
// capability is tested on a newer device too.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "mha_reference.h"
#include "mhac/default_sets.h"
#include "mhac/mha.h"
#include "random_layer.h"
#include "tolerance.h"

namespace mhac::testing {
namespace {

using ::testing::HasSubstr;

std::vector<const KernelSet *> cuda_sets() {
    std::vector<const KernelSet *> sets;
    for (const KernelSet *k : kernel_sets::all()) {
        if (std::strcmp(k->device, "cuda") == 0) sets.push_back(k);
    }
    return sets;
}

MultiHeadAttention make_layer(const RandomLayer &data) {
    MultiHeadAttention layer(data.config(), kernel_sets::all());
    layer.set_weights(data.keras_weights());
    return layer;
}

TEST(CudaKernelSets, AreLinkedWithTheirCapabilities) {
    ASSERT_FALSE(cuda_sets().empty());
    for (const KernelSet *k : cuda_sets()) {
        EXPECT_GT(k->compute_capability, 0) << k->name;
        // The default table names each set after its capability.
        EXPECT_NE(std::string(k->name).find(device_tag(k->compute_capability)), std::string::npos)
            << k->name << ": " << k->targets;
    }
    EXPECT_STREQ(kernel_sets::all().front()->device, "cpu");
    std::cout << "  CUDA device: "
              << (cuda_device_info().usable ? cuda_device_info().name : cuda_device_info().reason)
              << "\n";
}

TEST(CudaRequests, WithoutADeviceAreClearErrorsAndAutomaticFallsBack) {
    RandomLayer data = make_random_layer({1, 5, 6, 16, 16, 16, 2, 4, 4, 16}, true, 4);
    MultiHeadAttention layer = make_layer(data);
    TensorView k = data.key_view();
    CallOptions o;
    o.key = &k;
    o.device = Device::automatic;
    CallResult r = layer.call(data.query_view(), data.value_view(), o);
    EXPECT_EQ(r.output.shape, (Shape{1, 5, 16}));
    if (cuda_device_info().usable)
        GTEST_SKIP() << "a CUDA device exists: " << cuda_device_info().name;
    EXPECT_STREQ(layer.last_selection().kernel_set->device, "cpu");
    o.device = Device::cuda;
    EXPECT_THAT([&] { layer.call(data.query_view(), data.value_view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("no usable CUDA device")));
    // A layer without CUDA kernels says so.
    MultiHeadAttention cpu_only(data.config(), *kernel_sets::all().front());
    cpu_only.set_weights(data.keras_weights());
    EXPECT_THAT([&] { cpu_only.call(data.query_view(), data.value_view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("no CUDA kernel set")));
    // A forced CUDA set without a device is refused before any kernel runs.
    o.device = Device::cpu;
    o.force_kernel_set = cuda_sets().front()->name;
    EXPECT_THAT([&] { layer.call(data.query_view(), data.value_view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("needs a CUDA device")));
    o.force_kernel_set = "no_such_set";
    EXPECT_THAT([&] { layer.call(data.query_view(), data.value_view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("not one of the layer's")));
}

Problem bert_problem(KerasPath keras_path, bool use_gate) {
    Problem p;
    p.batch = 1;
    p.queries = p.keys = 128;
    p.query_features = p.key_features = p.value_features = p.output_features = 768;
    p.num_heads = 12;
    p.key_dim = p.value_dim = 64;
    p.mask = MaskKind::causal;
    p.keras_path = keras_path;
    p.use_gate = use_gate;
    return p;
}

// select_variant picks the set and every kernel of a call from it: a call
// that runs on a CUDA set runs CUDA kernels only, the softmax included.
TEST(CudaSelection, EveryStageOfAStagedCallRunsOnTheChosenSet) {
    const std::vector<const KernelSet *> sets = cuda_sets();
    CudaDeviceInfo gpu;  // a device as the probe would report it
    gpu.usable = true;
    gpu.name = "test device";
    gpu.capability = 90;
    DispatchRequest request;
    request.device = Device::cuda;
    for (bool gate : {false, true}) {
        Selection s = select_variant(*kernel_sets::all().front(), sets,
                                     bert_problem(KerasPath::explicit_scores, gate), request, gpu);
        ASSERT_TRUE(s.on_device());
        const std::string tag = "__" + device_tag(s.kernel_set->compute_capability);
        const StagedKernels &k = s.staged;
        std::vector<const char *> names = {k.scores.name, k.softmax.name, k.combine.name};
        for (const auto &p : k.projection) {
            if (p) names.push_back(p.name);
        }
        EXPECT_EQ(static_cast<bool>(k.projection[kGateProjection]), gate);
        for (const char *name : names) {
            ASSERT_NE(name, nullptr);
            EXPECT_NE(std::string(name).find(tag), std::string::npos)
                << name << " in " << s.describe();
            EXPECT_NE(s.describe().find(name), std::string::npos) << s.describe();
        }
    }
    // The highest capability the device runs; a lower one when forced.
    gpu.capability = 86;
    Selection best = select_variant(*kernel_sets::all().front(), sets,
                                    bert_problem(KerasPath::fused, false), request, gpu);
    for (const KernelSet *k : sets) {
        if (k->compute_capability <= 86)
            EXPECT_GE(best.kernel_set->compute_capability, k->compute_capability);
        request.force_kernel_set = k->name;
        Selection forced = select_variant(*kernel_sets::all().front(), sets,
                                          bert_problem(KerasPath::fused, false), request, gpu);
        EXPECT_EQ(forced.kernel_set, k);
        EXPECT_NE(std::string(forced.fused.name).find(device_tag(k->compute_capability)),
                  std::string::npos);
    }
}

struct CudaCase {
    const KernelSet *set;
    const char *config;
    bool staged;
    int mask;  // 0 none, 1 causal, 2 random dense
    Sizes sizes;
};

std::string describe(const CudaCase &c) {
    return device_tag(c.set->compute_capability) + "_" + c.config +
           (c.staged ? "_staged" : "_fused") + "_mask" + std::to_string(c.mask) + "_b" +
           std::to_string(c.sizes.batch) + "_t" + std::to_string(c.sizes.queries) + "_s" +
           std::to_string(c.sizes.keys);
}
void PrintTo(const CudaCase &c, std::ostream *os) {
    *os << describe(c);
}

class CudaSweep : public ::testing::TestWithParam<CudaCase> {};

TEST_P(CudaSweep, MatchesFloat64Reference) {
    if (!cuda_device_info().usable)
        GTEST_SKIP() << "no usable CUDA device: " << cuda_device_info().reason;
    const CudaCase &c = GetParam();
    RandomLayer data =
        make_random_layer(c.sizes, true, 77, c.mask == 2 ? RandomMask::random : RandomMask::none);
    MultiHeadAttention layer = make_layer(data);
    TensorView k = data.key_view();
    MaskView mask{data.mask.data(), {c.sizes.batch, c.sizes.queries, c.sizes.keys}};
    CallOptions o;
    o.key = &k;
    o.device = Device::cuda;
    o.force_kernel_set = c.set->name;
    o.force_config = c.config;
    o.use_causal_mask = c.mask == 1;
    o.return_attention_scores = c.staged;
    if (c.mask == 2) o.attention_mask = &mask;
    CallResult got = layer.call(data.query_view(), data.value_view(), o);
    EXPECT_EQ(layer.last_selection().kernel_set, c.set);
    reference::Result want = reference::multi_head_attention(
        data.reference_layer(), data.reference_call(o.use_causal_mask),
        c.staged ? reference::Path::explicit_scores : reference::Path::fused);
    Comparison out = compare(got.output.data, want.output, false);
    EXPECT_TRUE(out.ok()) << out.describe("output via " + layer.last_selection().describe());
    if (c.staged) {
        Comparison sc = compare(got.scores.data, want.scores, true);
        EXPECT_TRUE(sc.ok()) << sc.describe("scores");
    }
}

// The layer's weights stay on the device between calls (ResidentBuffers):
// repeated calls, new weights after set_weights(), and CPU calls between
// device calls must each see the weights the layer holds at that moment.
TEST(CudaResidentWeights, FollowSetWeightsAndMixedDevices) {
    if (!cuda_device_info().usable)
        GTEST_SKIP() << "no usable CUDA device: " << cuda_device_info().reason;
    const Sizes sizes{2, 9, 13, 32, 32, 32, 4, 8, 8, 32};
    const RandomLayer first = make_random_layer(sizes, true, 11);
    const RandomLayer second = make_random_layer(sizes, true, 12);
    MultiHeadAttention layer = make_layer(first);
    for (const KernelSet *set : cuda_sets()) {
        for (bool staged : {false, true}) {
            SCOPED_TRACE(std::string(set->name) + (staged ? " staged" : " fused"));
            int step = 0;
            const RandomLayer *held = &first;
            layer.set_weights(first.keras_weights());
            // device, device again, CPU, new weights on the device, back.
            for (const RandomLayer *data : {&first, &first, &first, &second, &second, &first}) {
                if (data != held) layer.set_weights(data->keras_weights());
                held = data;
                TensorView k = data->key_view();
                CallOptions o;
                o.key = &k;
                o.return_attention_scores = staged;
                o.device = step == 2 ? Device::cpu : Device::cuda;
                if (o.device == Device::cuda) o.force_kernel_set = set->name;
                CallResult got = layer.call(data->query_view(), data->value_view(), o);
                EXPECT_EQ(layer.last_selection().on_device(), o.device == Device::cuda);
                reference::Result want = reference::multi_head_attention(
                    data->reference_layer(), data->reference_call(false),
                    staged ? reference::Path::explicit_scores : reference::Path::fused);
                Comparison out = compare(got.output.data, want.output, false);
                EXPECT_TRUE(out.ok())
                    << "step " << step << ": " << out.describe(layer.last_selection().describe());
                step++;
            }
        }
    }
}

std::vector<CudaCase> cuda_cases() {
    std::vector<CudaCase> cases;
    for (const KernelSet *set : cuda_sets()) {
        for (bool staged : {false, true}) {
            for (int mask : {0, 1, 2}) {
                cases.push_back({set,
                                 "bert_base",
                                 staged,
                                 mask,
                                 {2, 128, 128, 768, 768, 768, 12, 64, 64, 768}});
                cases.push_back(
                    {set, "bert_base", staged, mask, {1, 1, 97, 768, 768, 768, 12, 64, 64, 768}});
                cases.push_back(
                    {set, "generic", staged, mask, {3, 7, 257, 24, 20, 12, 2, 16, 16, 24}});
                cases.push_back(
                    {set, "generic", staged, mask, {1, 64, 64, 32, 32, 32, 12, 64, 64, 32}});
            }
        }
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaSweep, ::testing::ValuesIn(cuda_cases()),
                         [](const auto &info) { return describe(info.param); });

}  // namespace
}  // namespace mhac::testing
