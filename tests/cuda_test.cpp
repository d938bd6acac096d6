// The CUDA kernel sets: built and linked on every x86 host; executed only
// where a usable CUDA device exists (skipped with the reason otherwise). The
// device-request errors run everywhere.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mha_reference.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/kernel_set_default_set_cuda80.h"
#include "mhac/kernel_set_default_set_cuda86.h"
#include "mhac/mha.h"
#include "random_layer.h"
#include "tolerance.h"

namespace mhac::testing {
namespace {

using ::testing::HasSubstr;

MultiHeadAttention make_layer(const RandomLayer &data) {
    MultiHeadAttention layer(data.config(), kernel_sets::default_set());
    layer.add_device_kernels(kernel_sets::default_set_cuda80());
    layer.add_device_kernels(kernel_sets::default_set_cuda86());
    layer.set_weights(data.keras_weights());
    return layer;
}

TEST(CudaKernelSets, AreLinkedWithTheirCapabilities) {
    EXPECT_STREQ(kernel_sets::default_set_cuda80().device, "cuda");
    EXPECT_EQ(kernel_sets::default_set_cuda80().cuda_capability, 80);
    EXPECT_EQ(kernel_sets::default_set_cuda86().cuda_capability, 86);
    EXPECT_STREQ(kernel_sets::default_set().device, "cpu");
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
    MultiHeadAttention cpu_only(data.config(), kernel_sets::default_set());
    cpu_only.set_weights(data.keras_weights());
    EXPECT_THAT([&] { cpu_only.call(data.query_view(), data.value_view(), o); },
                ::testing::ThrowsMessage<Error>(HasSubstr("no CUDA kernel set")));
}

struct CudaCase {
    const char *config;
    bool staged;
    int mask;  // 0 none, 1 causal, 2 random dense
    Sizes sizes;
};

std::string describe(const CudaCase &c) {
    return std::string(c.config) + (c.staged ? "_staged" : "_fused") + "_mask" +
           std::to_string(c.mask) + "_b" + std::to_string(c.sizes.batch) + "_t" +
           std::to_string(c.sizes.queries) + "_s" + std::to_string(c.sizes.keys);
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
    o.force_config = c.config;
    o.use_causal_mask = c.mask == 1;
    o.return_attention_scores = c.staged;
    if (c.mask == 2) o.attention_mask = &mask;
    CallResult got = layer.call(data.query_view(), data.value_view(), o);
    EXPECT_STREQ(layer.last_selection().kernel_set->device, "cuda");
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

std::vector<CudaCase> cuda_cases() {
    std::vector<CudaCase> cases;
    for (bool staged : {false, true}) {
        for (int mask : {0, 1, 2}) {
            cases.push_back(
                {"bert_base", staged, mask, {2, 128, 128, 768, 768, 768, 12, 64, 64, 768}});
            cases.push_back(
                {"bert_base", staged, mask, {1, 1, 97, 768, 768, 768, 12, 64, 64, 768}});
            cases.push_back({"generic", staged, mask, {3, 7, 257, 24, 20, 12, 2, 16, 16, 24}});
            cases.push_back({"generic", staged, mask, {1, 64, 64, 32, 32, 32, 12, 64, 64, 32}});
        }
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaSweep, ::testing::ValuesIn(cuda_cases()),
                         [](const auto &info) { return describe(info.param); });

}  // namespace
}  // namespace mhac::testing
