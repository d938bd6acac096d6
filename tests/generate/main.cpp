// Compiled by hand with g++ against the output of `mhac generate` (no CMake):
// runs the generated set's specialized kernel and checks it against the
// float64 reference. Exit 0 when they agree.
#include <cmath>
#include <cstdio>

#include "mha_reference.h"
#include "mhac/kernel_set_small_set.h"
#include "mhac/mha.h"
#include "random_layer.h"

int main() {
    auto data = mhac::testing::make_random_layer({2, 5, 7, 16, 16, 16, 2, 8, 8, 16}, true, 9);
    mhac::MultiHeadAttention layer(data.config(), mhac::kernel_sets::small_set());
    layer.set_weights(data.keras_weights());
    mhac::TensorView key = data.key_view();
    mhac::CallOptions options;
    options.key = &key;
    options.use_causal_mask = true;
    mhac::CallResult got = layer.call(data.query_view(), data.value_view(), options);
    auto want = mhac::reference::multi_head_attention(
        data.reference_layer(), data.reference_call(true), mhac::reference::Path::fused);
    double err = 0;
    for (size_t i = 0; i < want.output.size(); i++) {
        err = std::max(err, std::abs(double(got.output.data[i]) - want.output[i]));
    }
    std::printf("generated: %s max |error| %.3g\n", layer.last_selection().describe().c_str(), err);
    return err <= 2e-5 ? 0 : 1;
}
