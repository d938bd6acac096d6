// MultiHeadAttention configs: Keras's constructor validation (spec section 1)
// and the search for MultiHeadAttention layers in a model's config.json.
#include "keras_config.h"

#include <cctype>
#include <limits>
#include <map>
#include <regex>

#include "mhac/keras_io.h"

namespace mhac::io {
namespace detail {
namespace {

constexpr const char *kClassName = "MultiHeadAttention";

// Arrays and objects nested deeper than this are refused by parse_json.
// Keras itself cannot load much deeper (Python's json recursion limit is
// about 1000); walking, copying and printing a value this deep takes a few
// hundred KB of stack.
constexpr int kMaxJsonDepth = 512;

// A SAX pass that only tracks nesting, stopping at the first level too deep.
struct DepthCheck : nlohmann::json_sax<json> {
    int depth = 0;
    bool too_deep = false;

    bool open() {
        too_deep = ++depth > kMaxJsonDepth;
        return !too_deep;
    }
    bool start_object(std::size_t) override { return open(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_object() override { return --depth, true; }
    bool end_array() override { return --depth, true; }
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t &) override { return true; }
    bool string(string_t &) override { return true; }
    bool binary(binary_t &) override { return true; }
    bool key(string_t &) override { return true; }
    // A syntax error: the real parse below reports it.
    bool parse_error(std::size_t, const std::string &,
                     const nlohmann::detail::exception &) override {
        return false;
    }
};

// A JSON value quoted in a message: one line, at most ~100 characters.
std::string quoted(const json &value) {
    std::string s = value.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace);
    if (s.size() > 100) s = s.substr(0, 100) + "...";
    return s;
}

[[noreturn]] void fail_field(const std::string &where, const std::string &field, const json &value,
                             const std::string &expected) {
    throw Error(where + ": invalid " + field + "=" + quoted(value) + ": " + expected);
}

// Python truthiness of a JSON value (None, False, 0, "", [], {} are falsy).
bool truthy(const json &v) {
    if (v.is_null()) return false;
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v.get<double>() != 0.0;
    if (v.is_string()) return !v.get<std::string>().empty();
    return !v.empty();
}

// A JSON integer (not a bool, not 2.0) that fits an int64.
bool is_int(const json &v) {
    return v.is_number_integer();
}

int positive_int(const json &config, const std::string &key, const std::string &where) {
    if (!config.contains(key)) throw Error(where + ": missing required field " + key);
    const json &v = config.at(key);
    if (!is_int(v) || v.get<int64_t>() <= 0 || v.get<int64_t>() > std::numeric_limits<int>::max())
        fail_field(where, key, v, "expected a positive integer");
    return static_cast<int>(v.get<int64_t>());
}

Shape parse_output_shape(const json &v, const std::string &where) {
    if (!truthy(v)) return {};  // None, 0, [] -> the query's last dim
    const std::string expected = "expected None, a positive integer, or a list of them";
    if (is_int(v)) {
        if (v.get<int64_t>() <= 0) fail_field(where, "output_shape", v, expected);
        return {v.get<int64_t>()};
    }
    if (!v.is_array()) fail_field(where, "output_shape", v, expected);
    Shape shape;
    for (const json &d : v) {
        if (!is_int(d) || d.get<int64_t>() <= 0) fail_field(where, "output_shape", v, expected);
        shape.push_back(d.get<int64_t>());
    }
    return shape;
}

std::vector<int> parse_attention_axes(const json &v, const std::string &where) {
    if (v.is_null()) return {};
    const std::string expected = "expected None, an int, or a list of ints";
    auto axis = [&](const json &a) {
        if (!is_int(a) || a.get<int64_t>() < std::numeric_limits<int>::min() ||
            a.get<int64_t>() > std::numeric_limits<int>::max())
            fail_field(where, "attention_axes", v, expected);
        return static_cast<int>(a.get<int64_t>());
    };
    if (is_int(v)) return {axis(v)};
    if (!v.is_array()) fail_field(where, "attention_axes", v, expected);
    if (v.empty()) fail_field(where, "attention_axes", v, "expected at least one axis");
    std::vector<int> axes;
    for (const json &a : v) axes.push_back(axis(a));
    return axes;
}

Shape parse_build_shape(const json &v) {
    Shape shape;
    if (!v.is_array()) return shape;
    for (const json &d : v) shape.push_back(is_int(d) ? d.get<int64_t>() : -1);
    return shape;
}

std::string class_of(const json &node) {
    if (node.is_object() && node.contains("class_name") && node.at("class_name").is_string())
        return node.at("class_name").get<std::string>();
    return {};
}

std::string layer_name(const json &node) {
    for (const json *o : {&node, node.contains("config") ? &node.at("config") : nullptr}) {
        if (o && o->is_object() && o->contains("name") && o->at("name").is_string())
            return o->at("name").get<std::string>();
    }
    return {};
}

ConfigEntry entry_from_wrapper(const json &node, const std::string &h5_path, bool from_model) {
    ConfigEntry e;
    e.name = layer_name(node);
    e.config = node.contains("config") ? node.at("config") : json::object();
    e.h5_path = h5_path;
    e.from_model = from_model;
    if (node.contains("build_config") && node.at("build_config").is_object()) {
        const json &b = node.at("build_config");
        const json &dict = b.contains("shapes_dict") ? b.at("shapes_dict") : b;
        if (dict.is_object()) {
            if (dict.contains("query_shape"))
                e.query_shape = parse_build_shape(dict.at("query_shape"));
            if (dict.contains("value_shape"))
                e.value_shape = parse_build_shape(dict.at("value_shape"));
            if (dict.contains("key_shape")) e.key_shape = parse_build_shape(dict.at("key_shape"));
        }
    }
    return e;
}

void walk(const json &node, const std::string &h5_prefix, bool known,
          std::vector<ConfigEntry> &out);

bool is_container(const json &node) {
    return node.is_object() && node.contains("config") && node.at("config").is_object() &&
           node.at("config").contains("layers") && node.at("config").at("layers").is_array();
}

// Any MultiHeadAttention serialized somewhere inside a custom layer's config:
// its weights group is not derivable from the config.
void search_nested(const json &node, std::vector<ConfigEntry> &out) {
    if (node.is_object()) {
        if (class_of(node) == kClassName && node.contains("config")) {
            out.push_back(entry_from_wrapper(node, {}, true));
        } else if (is_container(node)) {
            walk(node, {}, false, out);
        } else {
            for (const auto &item : node.items()) search_nested(item.value(), out);
        }
    } else if (node.is_array()) {
        for (const json &item : node) search_nested(item, out);
    }
}

// A Functional/Sequential model config: its `layers` list is saved as
// <prefix>layers/<snake-cased class name>[_N] (saving_lib's
// _save_container_state); Sequential.layers omits the InputLayer.
void walk(const json &node, const std::string &h5_prefix, bool known,
          std::vector<ConfigEntry> &out) {
    const bool sequential = class_of(node) == "Sequential";
    std::map<std::string, int> used;
    for (const json &layer : node.at("config").at("layers")) {
        const std::string cls = class_of(layer);
        if (cls.empty()) continue;
        if (sequential && cls == "InputLayer") continue;
        std::string key = to_snake_case(cls);
        auto it = used.find(key);
        if (it == used.end()) {
            used[key] = 0;
        } else {
            key += "_" + std::to_string(++it->second);
        }
        const std::string path = h5_prefix + "layers/" + key;
        if (cls == kClassName) {
            out.push_back(entry_from_wrapper(layer, known ? path : std::string(), true));
        } else if (is_container(layer)) {
            walk(layer, path + "/", known, out);
        } else if (layer.contains("config")) {
            search_nested(layer.at("config"), out);
        }
    }
}

}  // namespace

json parse_json(const std::string &text, const std::string &where) {
    // Every json value the readers hold comes from here, and the code that
    // walks, copies or prints one recurses: bounding the nesting once, before
    // any value is built, bounds every such recursion.
    DepthCheck depth;
    if (!json::sax_parse(text, &depth) && depth.too_deep)
        throw Error(where + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                    " levels (a Keras config is a few dozen deep)");
    try {
        return json::parse(text);
    } catch (const json::exception &e) {
        // parse_error, and out_of_range for a number past double's range
        // ("1E400", which Python reads as inf): found by the keras_config
        // fuzzer, where it escaped as an uncaught exception.
        throw Error(where + ": not valid JSON (" + e.what() + ")");
    }
}

std::string to_snake_case(const std::string &class_name) {
    std::string name = std::regex_replace(class_name, std::regex(R"([^A-Za-z0-9_])"), "");
    name = std::regex_replace(name, std::regex("(.)([A-Z][a-z]+)"), "$1_$2");
    name = std::regex_replace(name, std::regex("([a-z])([A-Z])"), "$1_$2");
    for (char &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name;
}

LayerConfig config_from_json(const json &config, const std::string &where) {
    if (!config.is_object())
        throw Error(where + ": a MultiHeadAttention config must be a JSON object, got " +
                    quoted(config));
    LayerConfig c;
    c.num_heads = positive_int(config, "num_heads", where);
    c.key_dim = positive_int(config, "key_dim", where);
    c.value_dim = c.key_dim;
    if (config.contains("value_dim") && !config.at("value_dim").is_null())
        c.value_dim = positive_int(config, "value_dim", where);
    if (config.contains("use_bias")) {
        const json &v = config.at("use_bias");
        if (!v.is_boolean() && !is_int(v))
            fail_field(where, "use_bias", v, "expected true or false");
        c.use_bias = truthy(v);
    }
    if (config.contains("output_shape"))
        c.output_shape = parse_output_shape(config.at("output_shape"), where);
    if (config.contains("attention_axes"))
        c.attention_axes = parse_attention_axes(config.at("attention_axes"), where);
    if (config.contains("dropout")) {
        const json &v = config.at("dropout");
        if (!v.is_number() || !(v.get<double>() >= 0.0 && v.get<double>() <= 1.0))
            fail_field(where, "dropout", v, "expected a float between 0 and 1");
        c.dropout = v.get<float>();
    }
    if (config.contains("sliding_window") && !config.at("sliding_window").is_null()) {
        const json &v = config.at("sliding_window");
        if (!is_int(v) || v.get<int64_t>() <= 0 ||
            v.get<int64_t>() > std::numeric_limits<int>::max())
            fail_field(where, "sliding_window", v, "expected None or a positive integer");
        c.sliding_window = static_cast<int>(v.get<int64_t>());
    }
    if (config.contains("use_gate")) {
        const json &v = config.at("use_gate");
        if (!v.is_boolean() && !is_int(v))
            fail_field(where, "use_gate", v, "expected true or false");
        c.use_gate = truthy(v);
    }
    // Not in get_config() (Keras stores it on the layer only), but a
    // constructor-kwargs dict may carry it.
    if (config.contains("flash_attention")) {
        c.flash_attention = truthy(config.at("flash_attention"));
        if (c.flash_attention && c.dropout > 0.0f)
            fail_field(where, "flash_attention", config.at("flash_attention"),
                       "flash attention does not support dropout > 0");
    }
    // Keras checks the seed only when dropout is active (SeedGenerator at build).
    if (config.contains("seed") && !config.at("seed").is_null()) {
        const json &v = config.at("seed");
        if (is_int(v)) {
            c.seed = v.is_number_unsigned() ? v.get<uint64_t>()
                                            : static_cast<uint64_t>(v.get<int64_t>());
        } else if (c.dropout > 0.0f) {
            fail_field(where, "seed", v, "expected an integer or None");
        }
    }
    return c;
}

std::vector<ConfigEntry> find_mha_configs(const json &doc) {
    std::vector<ConfigEntry> out;
    if (!doc.is_object()) return out;
    if (doc.contains("num_heads")) {  // a bare get_config() dict
        ConfigEntry e;
        e.name = layer_name(doc);
        e.config = doc;
        out.push_back(std::move(e));
        return out;
    }
    const std::string cls = class_of(doc);
    if (cls == kClassName) {
        out.push_back(entry_from_wrapper(doc, {}, false));
        return out;
    }
    if (is_container(doc)) {
        walk(doc, {}, true, out);
    } else {
        search_nested(doc, out);
    }
    return out;
}

}  // namespace detail

LayerConfig parse_layer_config(const std::string &json_text) {
    const std::string where = "MultiHeadAttention config";
    detail::json doc = detail::parse_json(json_text, where);
    if (doc.is_object() && doc.contains("class_name")) {
        const std::string cls = detail::class_of(doc);
        if (cls != detail::kClassName)
            throw Error(where + ": expected class_name \"MultiHeadAttention\", got " +
                        detail::quoted(doc.at("class_name")));
        if (!doc.contains("config")) throw Error(where + ": the wrapper has no \"config\" dict");
        return detail::config_from_json(doc.at("config"), where);
    }
    return detail::config_from_json(doc, where);
}

}  // namespace mhac::io
