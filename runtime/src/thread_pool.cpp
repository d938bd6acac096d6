#include "thread_pool.h"

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace mhac::detail {
namespace {

// How long an idle worker spins before it sleeps: longer than the serial
// stretches between the parallel loops of one call and the gap between
// back-to-back calls, short enough that a process calling now and then
// does not keep a core busy.
constexpr std::chrono::microseconds kSpinMicros{300};

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#else
    std::this_thread::yield();
#endif
}

// Spins until `done()` holds; after `limit` (if any) returns false instead.
// Checks the clock every 64 spins only.
template <typename Done>
bool spin_until(const Done &done, std::chrono::microseconds limit) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned spins = 1;; spins++) {
        if (done()) return true;
        cpu_relax();
        if (spins % 64 == 0) {
            const auto waited = std::chrono::steady_clock::now() - start;
            if (limit.count() > 0 && waited > limit) return false;
            // More spinning threads than CPUs: let the one being waited for run.
            if (waited > kSpinMicros) std::this_thread::yield();
        }
    }
}

int run_serially(void *user_context, halide_task_t task, int min, int size, uint8_t *closure) {
    for (int i = min; i < min + size; i++) {
        if (int result = task(user_context, i, closure)) return result;
    }
    return 0;
}

// One loop at a time is shared with the workers. Publishing a loop is a
// seqlock on `generation_`: odd while the caller rewrites the loop's fields
// (after every worker has left the previous loop), even once they are
// valid. A worker joins a loop by raising `active_` and then reading an
// even generation it has not worked on; raising first means the caller,
// which makes the generation odd before it waits for `active_` to reach 0,
// never rewrites fields a worker is reading (both sides seq_cst).
class SpinPool {
public:
    explicit SpinPool(int workers) {
        for (int i = 0; i < workers; i++) std::thread([this] { work(); }).detach();
    }

    int par_for(void *user_context, halide_task_t task, int min, int size, uint8_t *closure) {
        bool idle = false;
        if (!busy_.compare_exchange_strong(idle, true, std::memory_order_acquire))
            return run_serially(user_context, task, min, size, closure);

        const uint64_t writing = generation_.load(std::memory_order_relaxed) + 1;
        generation_.store(writing, std::memory_order_seq_cst);
        spin_until([&] { return active_.load(std::memory_order_seq_cst) == 0; }, {});
        task_ = task;
        user_context_ = user_context;
        closure_ = closure;
        min_ = min;
        size_ = size;
        next_.store(0, std::memory_order_relaxed);
        finished_.store(0, std::memory_order_relaxed);
        result_.store(0, std::memory_order_relaxed);
        generation_.store(writing + 1, std::memory_order_seq_cst);
        if (sleeping_.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard<std::mutex> lock(sleep_mutex_);
            wake_.notify_all();
        }

        run_tasks();
        spin_until([&] { return finished_.load(std::memory_order_acquire) == size; }, {});
        const int result = result_.load(std::memory_order_relaxed);
        busy_.store(false, std::memory_order_release);
        return result;
    }

private:
    // Claims and runs tasks of the current loop until none is left.
    void run_tasks() {
        for (;;) {
            const int i = next_.fetch_add(1, std::memory_order_relaxed);
            if (i >= size_) return;
            if (result_.load(std::memory_order_relaxed) == 0) {
                if (int r = task_(user_context_, min_ + i, closure_)) {
                    int none = 0;
                    result_.compare_exchange_strong(none, r, std::memory_order_relaxed);
                }
            }
            finished_.fetch_add(1, std::memory_order_acq_rel);
        }
    }

    void work() {
        uint64_t seen = 0;
        auto fresh = [&] {
            const uint64_t g = generation_.load(std::memory_order_seq_cst);
            return g % 2 == 0 && g != seen;
        };
        for (;;) {
            if (!spin_until(fresh, kSpinMicros)) {
                std::unique_lock<std::mutex> lock(sleep_mutex_);
                sleeping_.fetch_add(1, std::memory_order_seq_cst);
                wake_.wait(lock, fresh);
                sleeping_.fetch_sub(1, std::memory_order_seq_cst);
            }
            active_.fetch_add(1, std::memory_order_seq_cst);
            const uint64_t g = generation_.load(std::memory_order_seq_cst);
            if (g % 2 == 0 && g != seen) {
                seen = g;
                run_tasks();
            }
            active_.fetch_sub(1, std::memory_order_seq_cst);
        }
    }

    std::atomic<bool> busy_{false};
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> active_{0};
    // The current loop: written only while the generation is odd.
    halide_task_t task_ = nullptr;
    void *user_context_ = nullptr;
    uint8_t *closure_ = nullptr;
    int min_ = 0, size_ = 0;
    std::atomic<int> next_{0}, finished_{0}, result_{0};

    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    std::atomic<int> sleeping_{0};
};

// Workers are detached and a pool never destroyed: kernels may run until the
// process exits.
std::atomic<SpinPool *> current_pool{nullptr};

std::mutex &pool_mutex() {
    static std::mutex m;
    return m;
}

#if defined(__unix__) || defined(__APPLE__)
// A forked child has none of its parent's threads, and the parent's pool
// state (a loop in flight, a worker inside one) is frozen in it: a child of
// a process that had called a layer ran every loop on one thread, or could
// wait for a worker that does not exist. The child starts a pool of its own
// at its first parallel loop instead (the parent's is leaked there). The
// mutex is held across fork() so no pool is half-created in the child.
void before_fork() {
    pool_mutex().lock();
}
void after_fork_in_parent() {
    pool_mutex().unlock();
}
void after_fork_in_child() {
    current_pool.store(nullptr, std::memory_order_relaxed);
    pool_mutex().unlock();
}
#endif

SpinPool *pool() {
    if (SpinPool *p = current_pool.load(std::memory_order_acquire)) return p;
    if (pool_threads() < 2) return nullptr;
    std::lock_guard<std::mutex> lock(pool_mutex());
#if defined(__unix__) || defined(__APPLE__)
    static const bool fork_handlers =
        pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) == 0;
    (void)fork_handlers;
#endif
    SpinPool *p = current_pool.load(std::memory_order_relaxed);
    if (!p) {
        p = new SpinPool(pool_threads() - 1);
        current_pool.store(p, std::memory_order_release);
    }
    return p;
}

}  // namespace

int pool_threads() {
    static const int threads = [] {
        if (const char *env = std::getenv("HL_NUM_THREADS")) {
            const int n = std::atoi(env);
            if (n > 0) return n;
        }
#if defined(__linux__)
        // The CPUs this process may run on (taskset, cgroups' cpusets): a
        // worker spinning on a CPU it shares with the caller only slows it.
        cpu_set_t cpus;
        if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 0)
            return CPU_COUNT(&cpus);
#endif
        const unsigned cpus_online = std::thread::hardware_concurrency();
        return cpus_online > 0 ? static_cast<int>(cpus_online) : 1;
    }();
    return threads;
}

int pool_do_par_for(void *user_context, halide_task_t task, int min, int size, uint8_t *closure) {
    SpinPool *p = size > 1 ? pool() : nullptr;
    if (!p) return run_serially(user_context, task, min, size, closure);
    return p->par_for(user_context, task, min, size, closure);
}

}  // namespace mhac::detail
