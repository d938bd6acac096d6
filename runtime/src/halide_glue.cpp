#include "halide_glue.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "isa.h"
#include "thread_pool.h"

namespace mhac::detail {

void throw_too_large(int64_t extent, int64_t stride) {
    throw Error("a tensor of this call is too large for the kernels: extent " +
                std::to_string(extent) + " with stride " + std::to_string(stride) +
                " exceeds Halide's 32-bit index range (2^31 - 1)");
}

void describe_buffer(halide_buffer_t &buf, halide_dimension_t *dims_storage, int rank,
                     halide_type_t type, const void *data, const std::array<int64_t, 2> *dims,
                     int count) {
    buf.device = 0;
    buf.device_interface = nullptr;
    buf.host = static_cast<uint8_t *>(const_cast<void *>(data));
    buf.flags = 0;
    buf.type = type;
    buf.dimensions = rank;
    buf.dim = dims_storage;
    buf.padding = nullptr;
    int d = 0;
    for (; d < count; d++) {
        const std::array<int64_t, 2> &ds = dims[d];
        // Halide's extents and strides are int32: a larger one would wrap
        // into an out-of-bounds access.
        if (ds[0] > INT32_MAX || ds[1] > INT32_MAX) throw_too_large(ds[0], ds[1]);
        dims_storage[d] =
            halide_dimension_t{0, static_cast<int32_t>(ds[0]), static_cast<int32_t>(ds[1]), 0};
    }
    for (; d < rank; d++) dims_storage[d] = halide_dimension_t{0, 1, 0, 0};
}

halide_buffer_t *ResidentBuffers::get(const float *data,
                                      std::initializer_list<int64_t> keras_shape) {
    const int rank = static_cast<int>(keras_shape.size());
    if (rank > kMaxRank) throw Error("internal: a resident buffer of rank > 4");
    std::array<std::array<int64_t, 2>, kMaxRank> dims{};
    dense_dims(keras_shape.begin(), rank, dims.data());
    for (const auto &e : entries_) {
        bool same =
            e->buf.host == reinterpret_cast<const uint8_t *>(data) && e->buf.dimensions == rank;
        for (int d = 0; same && d < rank; d++)
            same = e->buf.dim[d].extent == dims[d][0] && e->buf.dim[d].stride == dims[d][1];
        if (same) return &e->buf;
    }
    auto e = std::make_unique<Entry>();
    describe_buffer(e->buf, e->dims.data(), rank, halide_type_of<float>(), data, dims.data(), rank);
    entries_.push_back(std::move(e));
    return &entries_.back()->buf;
}

bool ResidentBuffers::contains(const halide_buffer_t *buf) const {
    for (const auto &e : entries_) {
        if (&e->buf == buf) return true;
    }
    return false;
}

void ResidentBuffers::clear() {
    for (const auto &e : entries_) {
        if (e->buf.device) halide_device_free(nullptr, &e->buf);
    }
    entries_.clear();
}

namespace {

thread_local std::string t_halide_error;
std::mutex g_error_mutex;
std::string g_halide_error;  // errors raised on Halide's worker threads

void record_error(void * /*user_context*/, const char *msg) {
    std::string text = msg ? msg : "(no message)";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    t_halide_error = text;
    std::lock_guard<std::mutex> lock(g_error_mutex);
    g_halide_error = text;
}

// Halide asks for blocks aligned to this and may read a little past the end.
constexpr size_t kAlignment = 128;
constexpr size_t kSlack = 128;

// Freed blocks kept by size for reuse. Kernel scratch sizes repeat from call
// to call, so after the first call no allocation reaches the OS.
class BlockPool {
public:
    void *take(size_t size) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.find(size);
            if (it != free_.end() && !it->second.empty()) {
                void *p = it->second.back();
                it->second.pop_back();
                return p;
            }
        }
        size_t padded = (size + sizeof(size_t) + kSlack + kAlignment - 1) / kAlignment * kAlignment;
        auto *raw = static_cast<uint8_t *>(std::aligned_alloc(kAlignment, padded + kAlignment));
        if (!raw) return nullptr;
        // The block's size sits just before the aligned pointer handed out.
        uint8_t *p = raw + kAlignment;
        reinterpret_cast<size_t *>(p)[-1] = size;
        return p;
    }
    void give(void *p) {
        if (!p) return;
        size_t size = reinterpret_cast<size_t *>(p)[-1];
        std::lock_guard<std::mutex> lock(mutex_);
        auto &list = free_[size];
        // Full capacity up front: how many blocks of a size are free at once
        // depends on thread timing, and growing here would allocate.
        if (list.capacity() < kMaxPerSize) list.reserve(kMaxPerSize);
        if (list.size() < kMaxPerSize) {
            list.push_back(p);
        } else {
            std::free(static_cast<uint8_t *>(p) - kAlignment);
        }
    }

private:
    static constexpr size_t kMaxPerSize = 64;
    std::mutex mutex_;
    std::map<size_t, std::vector<void *>> free_;
};

BlockPool &pool() {
    static BlockPool *p = new BlockPool();  // outlives every kernel call, never destroyed
    return *p;
}

void *pool_malloc(void * /*user_context*/, size_t size) {
    return pool().take(size);
}
void pool_free(void * /*user_context*/, void *p) {
    pool().give(p);
}

}  // namespace

void install_kernel_hooks(const KernelHookSetters &setters) {
    setters.set_malloc(pool_malloc);
    setters.set_free(pool_free);
    setters.set_do_par_for(pool_do_par_for);
}

void install_halide_hooks() {
    static std::once_flag once;
    std::call_once(once, [] {
        halide_set_error_handler(record_error);
        install_kernel_hooks(
            {halide_set_custom_malloc, halide_set_custom_free, halide_set_custom_do_par_for});
        // Device buffers freed after each call go back to a cache, not the driver.
        halide_reuse_device_allocations(nullptr, true);
        install_isa_override();
    });
}

std::string CallShapes::describe() const {
    std::string s;
    auto add = [&](const char *name, const Shape *shape) {
        if (shape) s += (s.empty() ? "" : ", ") + std::string(name) + " " + shape_to_string(*shape);
    };
    add("query", query);
    add("value", value);
    add("key", key);
    return s.empty() ? "(no shapes)" : s;
}

void begin_kernel_call() {
    t_halide_error.clear();
}

void finish_device_call(const char *kernel, const CallShapes &shapes, int code,
                        halide_buffer_t **buffers, int count, const ResidentBuffers *resident) {
    if (code == 0 && count > 0) code = halide_copy_to_host(nullptr, buffers[count - 1]);
    for (int i = 0; i < count; i++) {
        const bool keep = code == 0 && resident && resident->contains(buffers[i]);
        if (buffers[i]->device && !keep) halide_device_free(nullptr, buffers[i]);
    }
    if (code != 0) throw_kernel_error(kernel, shapes, code);
}

void throw_kernel_error(const char *kernel, const CallShapes &shapes, int code) {
    std::string message = t_halide_error;
    if (message.empty()) {
        std::lock_guard<std::mutex> lock(g_error_mutex);
        message = g_halide_error;
    }
    throw Error(std::string("kernel ") + kernel + " failed (Halide error " + std::to_string(code) +
                ") for " + shapes.describe() + ": " + (message.empty() ? "no message" : message));
}

}  // namespace mhac::detail
