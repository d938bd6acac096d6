// Runs one causal self-attention layer with this project's own kernel set
// and checks it against mhac's float64 reference. Exit 0 when they agree.
#include <cmath>
#include <cstdio>

#include "mha_reference.h"
#include "mhac/kernel_set_consumer_kernels.h"
#include "mhac/mha.h"
#include "random_layer.h"

int main() {
    mhac::testing::RandomLayer data =
        mhac::testing::make_random_layer({2, 9, 9, 32, 32, 32, 4, 8, 8, 32}, true, 42);
    mhac::MultiHeadAttention layer(data.config(), mhac::kernel_sets::consumer_kernels());
    layer.set_weights(data.keras_weights());
    mhac::TensorView key = data.key_view();
    mhac::CallOptions options;
    options.key = &key;
    options.use_causal_mask = true;
    mhac::CallResult got = layer.call(data.query_view(), data.value_view(), options);

    mhac::reference::Result want = mhac::reference::multi_head_attention(
        data.reference_layer(), data.reference_call(true), mhac::reference::Path::fused);
    double max_error = 0;
    for (size_t i = 0; i < want.output.size(); i++) {
        max_error = std::max(max_error, std::abs(double(got.output.data[i]) - want.output[i]));
    }
    std::printf("consumer: %s, output %s, max |error| %.3g\n",
                layer.last_selection().describe().c_str(),
                mhac::shape_to_string(got.output.shape).c_str(), max_error);
    return max_error <= 2e-5 ? 0 : 1;
}
