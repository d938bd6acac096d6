#include "fixture.h"

#include <fstream>
#include <sstream>

namespace mhac::testing {

namespace {

std::string read_text(const std::string &path) {
    std::ifstream f(path);
    if (!f) throw Error("cannot read " + path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

bool exists(const std::string &path) {
    return std::ifstream(path).good();
}

}  // namespace

std::string fixtures_dir() {
    return MHAC_FIXTURES_DIR;
}

std::vector<std::string> fixture_names(bool with_output_only) {
    nlohmann::json m = nlohmann::json::parse(read_text(fixtures_dir() + "/manifest.json"));
    std::vector<std::string> names;
    for (const auto &c : m["cases"]) {
        if (with_output_only && !c["case"]["outputs"].contains("output")) continue;
        names.push_back(c["dir"].get<std::string>());
    }
    return names;
}

std::string Fixture::mask_how(const std::string &mask) const {
    const auto &m = json["masks"];
    if (!m.contains(mask)) return {};
    return m[mask].value("how", "call_argument");
}

CallOptions Fixture::options(std::vector<MaskView> &storage) const {
    CallOptions o;
    storage.clear();
    storage.reserve(4);
    auto use = [&](const char *name) -> const MaskView * {
        auto it = masks.find(name);
        if (it == masks.end()) return nullptr;
        storage.push_back(it->second.view());
        return &storage.back();
    };
    o.attention_mask = use("attention_mask");
    // A query_mask passed as a call argument is ignored by Keras: only the
    // query tensor's own Keras mask counts.
    if (mask_how("query_mask") != "call_argument") o.query_mask = use("query_mask");
    o.value_mask = use("value_mask");
    o.key_mask = use("key_mask");
    // Self-attention with a masked query tensor: Keras fills value_mask from
    // the same tensor.
    if (json.value("value_is_query", false) && o.query_mask && !o.value_mask) {
        o.value_mask = use("query_mask");
    }
    o.use_causal_mask = causal;
    o.return_attention_scores = scores;
    o.training = training;
    return o;
}

Fixture load_fixture(const std::string &name) {
    Fixture f;
    f.name = name;
    f.dir = fixtures_dir() + "/" + name;
    f.json = nlohmann::json::parse(read_text(f.dir + "/case.json"));
    const auto &j = f.json;
    f.description = j.value("description", "");
    f.dtype = j.value("dtype", "float32");
    if (!j["expected_error"].is_null()) {
        f.error_stage = j["expected_error"].value("stage", "");
        f.error_message = j["expected_error"].value("message", "");
    }
    if (exists(f.dir + "/config.json")) {
        // get_config() never records flash_attention: take it from the
        // constructor arguments the case used.
        nlohmann::json config = nlohmann::json::parse(read_text(f.dir + "/config.json"));
        const auto &kwargs = j["constructor_kwargs"];
        if (kwargs.contains("flash_attention")) {
            auto &target = config.contains("config") ? config["config"] : config;
            target["flash_attention"] = kwargs["flash_attention"];
        }
        f.config_text = config.dump();
    } else {
        f.config_text = j["constructor_kwargs"].dump();
    }
    if (j.contains("weights") && j["weights"].contains("npy")) {
        for (const auto &w : j["weights"]["npy"]) {
            f.weights.push_back(io::read_npy_floats(f.dir + "/" + w.get<std::string>()));
        }
        if (j["weights"].contains("files")) {
            for (const auto &[format, path] : j["weights"]["files"].items()) {
                f.weight_files[format] = f.dir + "/" + path.get<std::string>();
            }
        }
    }
    const auto &in = j["inputs"];
    f.query = io::read_npy_floats(f.dir + "/" + in["query"]["file"].get<std::string>());
    f.value = io::read_npy_floats(f.dir + "/" + in["value"]["file"].get<std::string>());
    if (in.contains("key"))
        f.key = io::read_npy_floats(f.dir + "/" + in["key"]["file"].get<std::string>());
    for (const auto &[mask, info] : j["masks"].items()) {
        f.masks[mask] = io::read_npy_mask(f.dir + "/" + info["file"].get<std::string>());
    }
    const auto &call = j["call"];
    f.causal = call.value("use_causal_mask", false);
    f.scores = call.value("return_attention_scores", false);
    f.training = call["training"].is_boolean() && call["training"].get<bool>();
    const auto &out = j["outputs"];
    if (out.contains("output"))
        f.output = io::read_npy_floats(f.dir + "/" + out["output"]["file"].get<std::string>());
    if (out.contains("scores") && f.scores) {
        f.keras_scores =
            io::read_npy_floats(f.dir + "/" + out["scores"]["file"].get<std::string>());
    }
    return f;
}

}  // namespace mhac::testing
