// The runtime's only contact with Halide: buffer descriptors over caller or
// layer memory, the non-aborting error handler, and the scratch allocator.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "HalideRuntime.h"
#include "mhac/mha.h"

namespace mhac::detail {

// Installs (once per process) Halide hooks that the runtime relies on:
// an error handler that records the message instead of calling abort(),
// a malloc/free pair that recycles freed blocks, so a kernel's internal
// scratch is not a fresh page-faulting allocation on every call, and the
// thread pool of thread_pool.h.
void install_halide_hooks();

// The setters of one Halide runtime's allocation and parallel-loop hooks:
// the linked kernels' runtime, or one loaded apart (mhac tune-worker's
// candidates, through dlsym).
struct KernelHookSetters {
    decltype(&halide_set_custom_malloc) set_malloc;
    decltype(&halide_set_custom_free) set_free;
    decltype(&halide_set_custom_do_par_for) set_do_par_for;
};
// Points that runtime's scratch at the recycling malloc/free pair and its
// parallel loops at the thread pool, so every kernel, linked or loaded,
// runs as the build's do. install_halide_hooks() calls it for the linked one.
void install_kernel_hooks(const KernelHookSetters &setters);

[[noreturn]] void throw_too_large(int64_t extent, int64_t stride);

// Fills `buf` (with `dims_storage`, room for `rank` dims) as a host buffer
// over `data`: `count` dims innermost first as (extent, stride in elements),
// missing outer dims of extent 1. Throws for extents or strides past int32.
void describe_buffer(halide_buffer_t &buf, halide_dimension_t *dims_storage, int rank,
                     halide_type_t type, const void *data, const std::array<int64_t, 2> *dims,
                     int count);

// The (extent, stride) pairs, innermost first, of a dense row-major tensor
// of Keras shape `keras_shape` (`rank` dims, outermost first).
inline void dense_dims(const int64_t *keras_shape, int rank, std::array<int64_t, 2> *dims) {
    int64_t stride = 1;
    for (int d = 0; d < rank; d++) {
        const int64_t extent = keras_shape[rank - 1 - d];
        dims[d] = {extent, stride};
        stride *= extent;
    }
}

// A halide_buffer_t over memory owned elsewhere. Dims are given innermost
// first, as (extent, stride in elements) pairs.
template <typename T, int D>
class BufferRef {
public:
    BufferRef(const T *data, std::initializer_list<std::array<int64_t, 2>> dims) {
        describe_buffer(buf_, dims_.data(), D, halide_type_of<T>(), data, dims.begin(),
                        static_cast<int>(dims.size()));
    }
    BufferRef(const BufferRef &) = delete;
    BufferRef &operator=(const BufferRef &) = delete;
    halide_buffer_t *get() { return &buf_; }

private:
    halide_buffer_t buf_{};
    std::array<halide_dimension_t, D> dims_{};
};

// Dense row-major tensor of Keras shape `shape` (outermost first) as a
// Halide buffer (innermost first).
template <typename T, int D>
BufferRef<T, D> dense(const T *data, const std::array<int64_t, D> &keras_shape) {
    std::array<std::array<int64_t, 2>, D> dims{};
    dense_dims(keras_shape.data(), D, dims.data());
    if constexpr (D == 1) return BufferRef<T, 1>(data, {dims[0]});
    if constexpr (D == 2) return BufferRef<T, 2>(data, {dims[0], dims[1]});
    if constexpr (D == 3) return BufferRef<T, 3>(data, {dims[0], dims[1], dims[2]});
    if constexpr (D == 4) return BufferRef<T, 4>(data, {dims[0], dims[1], dims[2], dims[3]});
}

// Descriptors of a layer's weights that outlive a call, so a GPU kernel
// uploads a weight once and later calls find it on the device: without them
// every bert_base call on an H200 re-sent 9.4 MB of weights from pageable
// memory, ~1 ms of its 1.4 ms (bench/results/cuda-NVIDIA_H200.md). Made on
// first use per (data, dims); clear() releases the device copies and must run
// before the weights' memory changes (set_weights()). One call at a time, as
// the layer itself.
class ResidentBuffers {
public:
    ResidentBuffers() = default;
    ~ResidentBuffers() { clear(); }
    ResidentBuffers(const ResidentBuffers &) = delete;
    ResidentBuffers &operator=(const ResidentBuffers &) = delete;

    // The lasting descriptor of dense float `data` of Keras shape
    // `keras_shape` (outermost first, as dense() takes it).
    halide_buffer_t *get(const float *data, std::initializer_list<int64_t> keras_shape);
    bool contains(const halide_buffer_t *buf) const;
    void clear();

private:
    static constexpr int kMaxRank = 4;
    struct Entry {
        halide_buffer_t buf{};
        std::array<halide_dimension_t, kMaxRank> dims{};
    };
    std::vector<std::unique_ptr<Entry>> entries_;
};

// The call's input shapes, for error messages: formatted only when a
// kernel fails, so a successful call builds no strings.
struct CallShapes {
    const Shape *query = nullptr, *value = nullptr, *key = nullptr;
    std::string describe() const;
};

void begin_kernel_call();
[[noreturn]] void throw_kernel_error(const char *kernel, const CallShapes &shapes, int code);

// Runs a generated kernel; a non-zero result becomes an mhac::Error naming
// the kernel, the call's shapes and Halide's own message.
template <typename Fn, typename... Args>
void invoke(const char *kernel, const CallShapes &shapes, Fn fn, Args... args) {
    begin_kernel_call();
    int code = fn(args...);
    if (code != 0) throw_kernel_error(kernel, shapes, code);
}

// For a GPU kernel: inputs are host memory (marked host-dirty so Halide
// uploads them, except `resident` ones already on the device), the output
// (the last buffer) is copied back, and every other device allocation is
// released to Halide's reuse cache before returning, since those buffer
// descriptors do not outlive the call.
void finish_device_call(const char *kernel, const CallShapes &shapes, int code,
                        halide_buffer_t **buffers, int count, const ResidentBuffers *resident);

template <typename Fn, typename... Args>
void invoke_on_device(const char *kernel, const CallShapes &shapes, const ResidentBuffers *resident,
                      Fn fn, Args... args) {
    halide_buffer_t *buffers[sizeof...(Args)];
    int count = 0;
    auto collect = [&](auto a) {
        if constexpr (std::is_same_v<decltype(a), halide_buffer_t *>) buffers[count++] = a;
    };
    (collect(args), ...);
    for (int i = 0; i + 1 < count; i++) {
        const bool on_device = resident && resident->contains(buffers[i]) && buffers[i]->device;
        if (!on_device) buffers[i]->flags |= halide_buffer_flag_host_dirty;
    }
    begin_kernel_call();
    int code = fn(args...);
    finish_device_call(kernel, shapes, code, buffers, count, resident);
}

}  // namespace mhac::detail
