// A layer's state, shared by the files that implement MultiHeadAttention:
// its weights as the kernels read them, and the scratch every call reuses.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "halide_glue.h"
#include "layout.h"
#include "mhac/mha.h"
#include "packed_weights.h"

namespace mhac::detail {

// Packed once by set_weights(); biases are zeros when use_bias is false.
struct LayerWeights {
    bool set = false;
    int64_t query_features = 0, key_features = 0, value_features = 0, output_features = 0;
    Shape output_tail;  // output_shape, resolved
    PackedKernel query, key, value, output, gate;
    KernelFloats query_bias, key_bias, value_bias, output_bias, gate_bias;
};

// Per-call buffers, grown to the largest call seen and then reused, so a
// warm call allocates nothing.
struct Scratch {
    KernelFloats q, k, v, logits, probs, dropped, context, gate;
    KernelFloats query_rows, key_rows, value_rows, output_rows;  // gathered N-D inputs
    std::vector<uint8_t> mask;
    AxesPlan axes;  // the current call's axes plan
    Shape scores;   // the current call's scores shape
};

// `v` grown (never shrunk) to hold n elements: scratch reuse.
template <typename Vector>
auto *grow(Vector &v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
}

// Keras's SeedGenerator [seed, counter] for dropout.
struct DropoutState {
    uint64_t seed = 0;
    uint64_t calls = 0;
};

}  // namespace mhac::detail

namespace mhac {

struct MultiHeadAttention::Impl {
    // Set while a call (or set_weights / add_device_kernels) runs: the
    // layer's scratch and last selection belong to one call at a time.
    std::atomic<bool> busy{false};
    LayerConfig config;
    const KernelSet *kernels = nullptr;
    std::vector<const KernelSet *> device_kernels;
    bool log = false;
    detail::LayerWeights weights;
    // Descriptors of `weights` that outlive a call (GPU copies stay on the
    // device); cleared whenever `weights` change.
    detail::ResidentBuffers weight_buffers;
    detail::DropoutState dropout;
    detail::Scratch scratch;
    Selection last;
};

}  // namespace mhac
