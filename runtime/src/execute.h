// The executors: they run what select_variant chose for a validated call
// and decide nothing themselves.
#pragma once

#include "halide_glue.h"
#include "layer.h"
#include "validate.h"

namespace mhac::detail {

// Runs one generated kernel of the selection, on the host or on its device.
class KernelRunner {
public:
    // `weights`: the layer's lasting weight descriptors (kept on the device).
    KernelRunner(const Selection &selection, const CallShapes &shapes,
                 const ResidentBuffers &weights)
        : on_device_(selection.on_device()), shapes_(shapes), weights_(weights) {}

    template <typename Fn, typename... Args>
    void operator()(const NamedKernel<Fn> &kernel, Args... args) const {
        if (on_device_) {
            invoke_on_device(kernel.name, shapes_, &weights_, kernel.fn, args...);
        } else {
            invoke(kernel.name, shapes_, kernel.fn, args...);
        }
    }

private:
    bool on_device_;
    const CallShapes &shapes_;
    const ResidentBuffers &weights_;
};

// The mask every attention kernel takes: the dense mask (s, t, n|1, b|1),
// or, for kernels without one, a single "visible" byte.
BufferRef<uint8_t, 4> mask_buffer(const CallPlan &plan);

// A packed projection kernel as the kernels read it: (ji, e, jo), in the
// layer's lasting descriptors.
inline halide_buffer_t *packed_buffer(ResidentBuffers &weights, const PackedKernel &k) {
    return weights.get(k.data.data(), {k.panels, k.in_features, kPanelWidth});
}

// Keras's fused path in one kernel (Selection::fused).
void execute_fused(const CallPlan &plan, const Selection &selection, const LayerWeights &weights,
                   ResidentBuffers &weight_buffers);

// Keras's einsum path (and the gate) on the staged kernels, every
// intermediate in `scratch`; dropout (training) between softmax and combine.
void execute_staged(const CallPlan &plan, const Selection &selection, const LayerConfig &config,
                    const LayerWeights &weights, ResidentBuffers &weight_buffers, Scratch &scratch,
                    DropoutState &dropout);

}  // namespace mhac::detail
