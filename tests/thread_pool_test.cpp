// The runtime's thread pool (runtime/src/thread_pool.h), through the hook
// Halide's parallel loops call: every task runs exactly once, a task's
// error comes back, loops nested in a task and loops started by several
// caller threads at once all complete, the workers do take tasks, also in
// a forked child. The TSan build runs this file (docs/sanitizers.md).
#include "thread_pool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace mhac::testing {
namespace {

using detail::pool_do_par_for;

// Counts how often each task index ran.
struct Counts {
    int min = 0;
    std::vector<std::atomic<int>> runs;
    Counts(int min_index, int size) : min(min_index), runs(size) {}
    static int task(void *, int i, uint8_t *closure) {
        auto *c = reinterpret_cast<Counts *>(closure);
        c->runs[i - c->min].fetch_add(1, std::memory_order_relaxed);
        return 0;
    }
    bool each_once() const {
        for (const auto &r : runs)
            if (r.load() != 1) return false;
        return true;
    }
};

int run(Counts &c) {
    return pool_do_par_for(nullptr, Counts::task, c.min, static_cast<int>(c.runs.size()),
                           reinterpret_cast<uint8_t *>(&c));
}

TEST(ThreadPool, EveryTaskRunsOnce) {
    for (int size : {0, 1, 2, 3, 17, 1000}) {
        Counts c(5, size);
        EXPECT_EQ(run(c), 0);
        EXPECT_TRUE(c.each_once()) << "size " << size;
    }
}

TEST(ThreadPool, ManyShortLoopsBackToBack) {
    // Loops end and start faster than a worker wakes: a late worker must
    // neither run a finished loop's task again nor miss the next loop's.
    for (int loop = 0; loop < 20000; loop++) {
        Counts c(loop, 2 + loop % 5);
        ASSERT_EQ(run(c), 0);
        ASSERT_TRUE(c.each_once()) << "loop " << loop;
    }
}

TEST(ThreadPool, ReturnsATaskError) {
    auto failing = [](void *, int i, uint8_t *) { return i == 37 ? -7 : 0; };
    EXPECT_EQ(pool_do_par_for(nullptr, failing, 0, 100, nullptr), -7);
    // The pool is usable afterwards.
    Counts c(0, 64);
    EXPECT_EQ(run(c), 0);
    EXPECT_TRUE(c.each_once());
}

TEST(ThreadPool, NestedLoopsComplete) {
    struct Outer {
        std::vector<Counts> inner;
        std::atomic<int> failures{0};
    } outer;
    outer.inner.reserve(8);
    for (int i = 0; i < 8; i++) outer.inner.emplace_back(0, 50);
    auto task = [](void *, int i, uint8_t *closure) {
        auto *o = reinterpret_cast<Outer *>(closure);
        if (run(o->inner[i]) != 0) o->failures++;
        return 0;
    };
    EXPECT_EQ(pool_do_par_for(nullptr, task, 0, 8, reinterpret_cast<uint8_t *>(&outer)), 0);
    EXPECT_EQ(outer.failures.load(), 0);
    for (const Counts &c : outer.inner) EXPECT_TRUE(c.each_once());
}

TEST(ThreadPool, ConcurrentCallers) {
    std::atomic<int> bad{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; t++) {
        callers.emplace_back([t, &bad] {
            for (int loop = 0; loop < 500; loop++) {
                Counts c(t * 1000, 1 + (loop * 7 + t) % 40);
                if (run(c) != 0 || !c.each_once()) bad++;
            }
        });
    }
    for (auto &c : callers) c.join();
    EXPECT_EQ(bad.load(), 0);
}

// How many threads ran the tasks of up to 25 loops of 200 tasks, each long
// enough that a sleeping worker wakes before they run out; -1 when a loop
// returned an error. 25, not 5: under ASan on a busy 2-core AMD EPYC a
// forked child's new worker once took none of five loops' tasks (200 ms).
int threads_taking_tasks() {
    struct Seen {
        std::mutex mutex;
        std::set<std::thread::id> threads;
    } seen;
    auto task = [](void *, int, uint8_t *closure) {
        auto *s = reinterpret_cast<Seen *>(closure);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        std::lock_guard<std::mutex> lock(s->mutex);
        s->threads.insert(std::this_thread::get_id());
        return 0;
    };
    for (int attempt = 0; attempt < 25 && seen.threads.size() < 2; attempt++) {
        if (pool_do_par_for(nullptr, task, 0, 200, reinterpret_cast<uint8_t *>(&seen)) != 0)
            return -1;
    }
    return static_cast<int>(seen.threads.size());
}

TEST(ThreadPool, WorkersTakeTasks) {
    if (detail::pool_threads() < 2)
        GTEST_SKIP() << "one thread (HL_NUM_THREADS or the CPUs allowed)";
    EXPECT_GE(threads_taking_tasks(), 2);
}

#if defined(__SANITIZE_THREAD__)
#define MHAC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MHAC_TSAN 1
#endif
#endif

TEST(ThreadPool, ForkedChildHasWorkers) {
#ifdef MHAC_TSAN
    GTEST_SKIP() << "ThreadSanitizer stops a forked child that starts threads (die_after_fork)";
#endif
#ifdef MHAC_TEST_UNDER_EMULATOR
    GTEST_SKIP() << "qemu-user aborts a forked child that starts threads (an assertion in "
                    "its TCG loop)";
#endif
    if (detail::pool_threads() < 2)
        GTEST_SKIP() << "one thread (HL_NUM_THREADS or the CPUs allowed)";
    // The parent's pool exists, its workers idle (spinning or asleep).
    Counts warm(0, 64);
    ASSERT_EQ(run(warm), 0);
    std::fflush(nullptr);
    const pid_t child = fork();
    ASSERT_GE(child, 0) << "fork failed";
    if (child == 0) {
        // The child reports by exit status; a hang ends it by SIGALRM.
        alarm(60);
        Counts c(0, 1000);
        if (run(c) != 0 || !c.each_once()) _exit(2);
        _exit(threads_taking_tasks() >= 2 ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status))
        << "the child was killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_NE(WEXITSTATUS(status), 2) << "a loop in the child lost or repeated a task";
    EXPECT_NE(WEXITSTATUS(status), 3) << "the child's loops ran on one thread";
    EXPECT_EQ(WEXITSTATUS(status), 0);
    // The parent's pool still works.
    EXPECT_GE(threads_taking_tasks(), 2);
}

}  // namespace
}  // namespace mhac::testing
