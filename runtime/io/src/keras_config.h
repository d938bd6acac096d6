// Keras config JSON: a MultiHeadAttention get_config() dict (or its
// {"class_name", "config"} form, or a whole model's config.json) to the
// LayerConfigs it holds.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mhac/mha.h"

namespace mhac::io::detail {

using nlohmann::json;

// Parses JSON text; a syntax error is an Error naming `where`.
json parse_json(const std::string &text, const std::string &where);

// A get_config() dict to a LayerConfig with Keras's validation; errors name
// `where`, the field and its value.
LayerConfig config_from_json(const json &config, const std::string &where);

// One MultiHeadAttention layer found in a config document.
struct ConfigEntry {
    std::string name;  // the layer's name (empty when the dict has none)
    json config;       // its get_config() dict
    // build_config shapes; None dims are -1; empty when not recorded.
    Shape query_shape, value_shape, key_shape;
    // Its group in a Keras 3 weights file ("layers/multi_head_attention_1"),
    // derived from the model's layer lists; empty when unknown.
    std::string h5_path;
    // True when the document was a model config (names bind the choice).
    bool from_model = false;
};

// Every MultiHeadAttention in `doc`, in config order: the doc itself when it
// is a layer config, else every layer of a (possibly nested)
// Functional/Sequential model config.
std::vector<ConfigEntry> find_mha_configs(const json &doc);

// keras.src.utils.naming.to_snake_case.
std::string to_snake_case(const std::string &class_name);

}  // namespace mhac::io::detail
