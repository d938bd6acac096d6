// The sanitizer builds really report, and a report really ends the program
// with a failure: each case makes the bug its sanitizer exists for in a
// child process (a gtest death test) and expects the report. Fails when a
// sanitizer is missing from the flags or made recoverable, or when the
// suppressions hide more than they should.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <climits>
#include <cstdlib>
#include <thread>
#include <vector>

namespace mhac::testing {
namespace {

class SanitizerCanary : public ::testing::Test {
protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

#if defined(MHAC_SANITIZE_ADDRESS)
TEST_F(SanitizerCanary, HeapOverflowIsReported) {
    EXPECT_DEATH(
        {
            std::vector<int> v(4);
            volatile int *p = v.data();
            p[4] = 1;
        },
        "AddressSanitizer: heap-buffer-overflow");
}

TEST_F(SanitizerCanary, SignedOverflowIsReported) {
    EXPECT_DEATH(
        {
            volatile int big = INT_MAX;
            volatile int sum = big + 1;
            (void)sum;
        },
        "runtime error: signed integer overflow");
}

// Not inlined, so that no live frame or register keeps the pointer.
__attribute__((noinline)) void leak() {
    int *volatile p = new int[64];
    p[0] = 1;
}

TEST_F(SanitizerCanary, LeakIsReported) {
    EXPECT_EXIT(
        {
            leak();
            std::exit(0);
        },
        [](int status) { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; },
        "LeakSanitizer: detected memory leaks");
}
#elif defined(MHAC_SANITIZE_THREAD)
TEST_F(SanitizerCanary, DataRaceIsReported) {
    EXPECT_DEATH(
        {
            int shared = 0;
            auto bump = [&shared] {
                for (int i = 0; i < 1000; i++) shared = shared + 1;
            };
            std::thread a(bump);
            std::thread b(bump);
            a.join();
            b.join();
        },
        "ThreadSanitizer: data race");
}
#else
#error "sanitizer_canary_test.cpp is built only by the sanitizer builds"
#endif

}  // namespace
}  // namespace mhac::testing
