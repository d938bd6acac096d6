// The packed weights as the kernels read them: panel layout, zero padding,
// and storage aligned for vector loads (a misaligned panel made every
// AVX-512 weight load straddle two cache lines; aligned_vector.h).
#include "packed_weights.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "layer.h"

namespace mhac::detail {
namespace {

bool aligned(const void *p) {
    return reinterpret_cast<std::uintptr_t>(p) % kKernelDataAlignment == 0;
}

TEST(PackedWeights, PanelLayoutWithZeroPadding) {
    const int64_t in = 3, out = 2 * kPanelWidth + 5;
    std::vector<float> kernel(static_cast<size_t>(in * out));
    for (size_t i = 0; i < kernel.size(); i++) kernel[i] = static_cast<float>(i + 1);
    const PackedKernel p = pack_kernel(kernel.data(), in, out);
    EXPECT_EQ(p.panels, packed_panels(out));
    ASSERT_EQ(p.data.size(), static_cast<size_t>(p.panels * in * kPanelWidth));
    for (int64_t jo = 0; jo < p.panels; jo++) {
        for (int64_t e = 0; e < in; e++) {
            for (int64_t ji = 0; ji < kPanelWidth; ji++) {
                const int64_t j = jo * kPanelWidth + ji;
                const float want = j < out ? kernel[static_cast<size_t>(e * out + j)] : 0.0f;
                EXPECT_EQ(p.data[static_cast<size_t>((jo * in + e) * kPanelWidth + ji)], want)
                    << "column " << j << ", input feature " << e;
            }
        }
    }
}

// Small blocks come from malloc's heap, large ones from mmap (16 bytes past a
// page boundary with glibc): both must be aligned.
TEST(PackedWeights, StorageIsAlignedForVectorLoads) {
    for (int64_t features : {1, 7, 64, 768, 2048}) {
        std::vector<float> kernel(static_cast<size_t>(features * features), 1.0f);
        const PackedKernel p = pack_kernel(kernel.data(), features, features);
        EXPECT_TRUE(aligned(p.data.data())) << features << " x " << features;
    }
}

TEST(PackedWeights, GrownScratchStaysAligned) {
    KernelFloats scratch;
    for (int64_t n : {1, 100, 1 << 20, 3 << 20}) {
        EXPECT_TRUE(aligned(grow(scratch, n))) << n << " elements";
        EXPECT_GE(scratch.size(), static_cast<size_t>(n));
    }
}

}  // namespace
}  // namespace mhac::detail
