// The x86 ladder: CTest runs this binary once per ISA level with MHAC_ISA
// set (tests/CMakeLists.txt). This test checks the level actually used; a
// level the CPU cannot run skips the whole binary with the reason.
#include <gtest/gtest.h>

#include <cstdlib>

#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "random_layer.h"

namespace mhac::testing {
namespace {

class IsaEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        const char *isa = std::getenv("MHAC_ISA");
        if (isa && *isa && !cpu_supports_isa_level(isa)) {
            GTEST_SKIP() << "this CPU cannot run ISA level " << isa << ": level skipped";
        }
    }
};
const auto *const kEnv = ::testing::AddGlobalTestEnvironment(new IsaEnvironment);

TEST(IsaLevel, TheForcedLevelRuns) {
    RandomLayer data = make_random_layer({1, 7, 9, 16, 16, 16, 2, 8, 8, 16}, true, 3);
    MultiHeadAttention layer(data.config(), kernel_sets::default_set());
    layer.set_weights(data.keras_weights());
    TensorView k = data.key_view();
    CallOptions o;
    o.key = &k;
    layer.call(data.query_view(), data.value_view(), o);
    const std::string forced = forced_isa_level();
    std::cout << "  MHAC_ISA=" << forced << ", kernels ran at " << isa_level_in_use() << "\n";
    if (forced != "auto") EXPECT_EQ(isa_level_in_use(), forced);
}

}  // namespace
}  // namespace mhac::testing
