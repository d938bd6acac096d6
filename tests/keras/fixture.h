// One conformance case written by tests/keras/make_fixtures.py with real
// Keras: its config, weights, inputs, masks, call options and what Keras
// returned (or raised).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mhac/keras_io.h"
#include "mhac/mha.h"

namespace mhac::testing {

struct Fixture {
    std::string name, dir, description, dtype;
    nlohmann::json json;  // case.json

    // Expected error (spec case 33), or empty.
    std::string error_stage, error_message;

    // The layer, from config.json (or constructor_kwargs) and weights/<i>.npy.
    std::string config_text;
    std::vector<Tensor> weights;

    Tensor query, value;
    std::optional<Tensor> key;
    std::map<std::string, io::Mask> masks;  // attention_mask, query_mask, value_mask, key_mask
    bool causal = false, scores = false, training = false;

    // Keras's results; empty when not recorded.
    std::optional<Tensor> output, keras_scores;

    // Weight files present: format -> path ("keras", "weights_h5", "tf_keras_h5", ...).
    std::map<std::string, std::string> weight_files;

    // The call options as Keras saw them. Keras ignores an explicit
    // query_mask= argument (spec 2, pitfall 2) and fills value_mask from the
    // query tensor in self-attention.
    CallOptions options(std::vector<MaskView> &storage) const;
    std::string mask_how(const std::string &mask) const;
};

std::string fixtures_dir();
// All cases, or only those with a recorded Keras output.
std::vector<std::string> fixture_names(bool with_output_only = false);
Fixture load_fixture(const std::string &name);

}  // namespace mhac::testing
