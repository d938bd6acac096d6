// Choosing one MultiHeadAttention in a config and a weights file, reading
// its eight (or four) arrays and checking them against the config.
#include "keras_weights.h"

#include <algorithm>

#include "checked_math.h"
#include "input_file.h"
#include "keras_layout.h"

namespace mhac::io {
namespace detail {
namespace {

std::string quoted_list(const std::vector<std::string> &names) {
    std::string s;
    for (const std::string &n : names) s += (s.empty() ? "" : ", ") + ("'" + n + "'");
    return s;
}

std::string describe_all(const std::vector<Candidate> &candidates) {
    std::string s;
    for (const Candidate &c : candidates) s += (s.empty() ? "" : ", ") + c.describe();
    return s;
}

const ConfigEntry &select_entry(const std::vector<ConfigEntry> &entries,
                                const std::string &layer_name, const std::string &config_label) {
    if (entries.empty()) throw Error(config_label + ": no MultiHeadAttention layer config found");
    if (entries.size() == 1) {
        const ConfigEntry &e = entries.front();
        if (e.from_model && !layer_name.empty() && !e.name.empty() && e.name != layer_name)
            throw Error(config_label + ": no MultiHeadAttention layer named '" + layer_name +
                        "'; available: '" + e.name + "'");
        return e;
    }
    std::vector<std::string> names;
    for (const ConfigEntry &e : entries) names.push_back(e.name);
    if (layer_name.empty())
        throw Error(config_label + ": " + std::to_string(entries.size()) +
                    " MultiHeadAttention layers (" + quoted_list(names) +
                    "); pass layer_name to pick one");
    for (const ConfigEntry &e : entries)
        if (e.name == layer_name) return e;
    throw Error(config_label + ": no MultiHeadAttention layer named '" + layer_name +
                "'; available: " + quoted_list(names));
}

const Candidate &select_candidate(const H5File &file, const std::vector<Candidate> &candidates,
                                  const ConfigEntry &entry, const std::string &layer_name) {
    if (candidates.empty())
        throw Error(file.label() +
                    ": no MultiHeadAttention weights found (expected groups "
                    "<layer>/query_dense/vars, key_dense, value_dense, output_dense, or tf.keras "
                    "weight_names <layer>/query/kernel ...)");
    // The group the model config's layer order says it was saved under.
    if (!entry.h5_path.empty())
        for (const Candidate &c : candidates)
            if (c.group == entry.h5_path) return c;
    const std::string wanted = layer_name.empty() ? entry.name : layer_name;
    for (auto member : {&Candidate::names, &Candidate::weak_names}) {
        std::vector<const Candidate *> hits;
        for (const Candidate &c : candidates) {
            const auto &names = c.*member;
            if (!wanted.empty() && std::find(names.begin(), names.end(), wanted) != names.end())
                hits.push_back(&c);
        }
        if (hits.size() == 1) return *hits.front();
        if (hits.size() > 1) {
            std::vector<Candidate> ambiguous;
            for (const Candidate *c : hits) ambiguous.push_back(*c);
            throw Error(file.label() + ": layer name '" + wanted +
                        "' is ambiguous: " + describe_all(ambiguous));
        }
    }
    // One layer in the file: take it unless the caller named another one.
    if (candidates.size() == 1 &&
        (layer_name.empty() || entry.from_model || candidates.front().name.empty()))
        return candidates.front();
    if (wanted.empty())
        throw Error(file.label() + ": " + std::to_string(candidates.size()) +
                    " MultiHeadAttention layers (" + describe_all(candidates) +
                    "); pass layer_name to pick one");
    throw Error(file.label() + ": no MultiHeadAttention layer named '" + wanted +
                "'; available: " + describe_all(candidates) +
                " (pass layer_name: a layer's name, or its group path or key)");
}

int64_t last_dim(const Shape &s) {
    return s.empty() ? -1 : s.back();
}

std::string describe_config(const std::string &layer, const LayerConfig &c) {
    std::string s = "the config of '" + layer + "' (num_heads=" + std::to_string(c.num_heads) +
                    ", key_dim=" + std::to_string(c.key_dim) +
                    ", value_dim=" + std::to_string(c.value_dim);
    if (!c.output_shape.empty()) s += ", output_shape=" + shape_to_string(c.output_shape);
    s += c.use_bias ? ", use_bias=true" : ", use_bias=false";
    return s + (c.use_gate ? ", use_gate=true)" : ")");
}

}  // namespace

LoadedLayer load_from_h5(const H5File &file, const std::vector<ConfigEntry> &entries,
                         const std::string &layer_name, const std::string &config_label) {
    const ConfigEntry &entry = select_entry(entries, layer_name, config_label);
    std::string legacy_root;
    const std::vector<Candidate> candidates = detect_layout(file, &legacy_root) == Layout::legacy
                                                  ? legacy_candidates(file, legacy_root)
                                                  : keras3_candidates(file);
    const Candidate &cand = select_candidate(file, candidates, entry, layer_name);

    LoadedLayer out;
    out.name = !cand.name.empty() ? cand.name : !entry.name.empty() ? entry.name : layer_name;
    out.config = config_from_json(
        entry.config, config_label + (entry.name.empty() ? "" : " (layer '" + entry.name + "')"));
    out.query_shape = entry.query_shape;
    out.value_shape = entry.value_shape;
    out.key_shape = entry.key_shape;
    out.source = file.label() + ":/" + cand.group;
    const LayerConfig &c = out.config;
    const std::string about = describe_config(out.name, c);

    std::array<Shape, kSlots> kernel_shapes;
    for (size_t i = 0; i < kSlots; i++)
        if (!cand.kernels[i].empty()) kernel_shapes[i] = file.dataset_shape(cand.kernels[i]);
    auto dim0 = [&](size_t i, int64_t from_build) {
        if (from_build > 0) return from_build;
        return kernel_shapes[i].empty() ? int64_t{-1} : kernel_shapes[i][0];
    };
    const int64_t n = c.num_heads, h = c.key_dim, hv = c.value_dim;
    const int64_t eq = dim0(kQuery, last_dim(entry.query_shape));
    const int64_t ev = dim0(kValue, last_dim(entry.value_shape));
    const int64_t ek = dim0(
        kKey, entry.key_shape.empty() ? last_dim(entry.value_shape) : last_dim(entry.key_shape));
    const Shape out_dims = c.output_shape.empty() ? Shape{eq} : c.output_shape;
    Shape out_kernel = {n, hv};
    out_kernel.insert(out_kernel.end(), out_dims.begin(), out_dims.end());
    // Spec 4.1 (gate: 3.7), by Slot.
    const std::array<Shape, kSlots> expected_kernels = {
        Shape{eq, n, h}, Shape{ek, n, h}, Shape{eq, n, hv}, Shape{ev, n, hv}, out_kernel};
    const std::array<Shape, kSlots> expected_biases = {Shape{n, h}, Shape{n, h}, Shape{n, hv},
                                                       Shape{n, hv}, out_dims};

    auto check = [&](const std::string &path, const Shape &actual, const Shape &expected,
                     const std::string &what) {
        if (actual != expected)
            throw Error(file.label() + ": dataset /" + path + " (" + what + ") has shape " +
                        shape_to_string(actual) + " but " + about + " expects " +
                        shape_to_string(expected));
    };
    // Every shape is checked against the config, and every dataset against
    // what the file holds, before any weight is read (in get_weights() order).
    std::vector<std::string> to_read;
    for (size_t i = 0; i < kSlots; i++) {
        const std::string role = kSlotNames[i];
        if (i == kGate && !c.use_gate) {
            if (!cand.kernels[i].empty())
                throw Error(file.label() + ": dataset /" + cand.kernels[i] +
                            " (gate kernel) is present but " + about + " has no gate");
            continue;
        }
        if (cand.kernels[i].empty())  // only the gate can be absent here
            throw Error(file.label() + ": no gate weights under /" + cand.group +
                        " (expected _gate_dense/vars/0), required by " + about);
        check(cand.kernels[i], kernel_shapes[i], expected_kernels[i], role + " kernel");
        to_read.push_back(cand.kernels[i]);
        if (!c.use_bias) {
            if (!cand.biases[i].empty())
                throw Error(file.label() + ": dataset /" + cand.biases[i] + " (" + role +
                            " bias) is present but " + about + " has no biases");
            continue;
        }
        if (cand.biases[i].empty())
            throw Error(file.label() + ": missing dataset /" + cand.expected_biases[i] + " (" +
                        role + " bias), required by " + about);
        check(cand.biases[i], file.dataset_shape(cand.biases[i]), expected_biases[i],
              role + " bias");
        to_read.push_back(cand.biases[i]);
    }
    uint64_t total = 0;
    for (const std::string &path : to_read) {
        const auto sum = mhac::detail::checked_add(total, file.check_stored(path));
        if (!sum || *sum > file.size())
            throw Error(file.label() + ": the weights of " + about + " need more bytes than the " +
                        std::to_string(file.size()) + "-byte file has");
        total = *sum;
    }
    for (const std::string &path : to_read) out.weights.push_back(file.read_floats(path));
    return out;
}

}  // namespace detail

LoadedLayer load_weights_with_config(const std::string &weights_path,
                                     const std::string &config_json_path,
                                     const std::string &layer_name) {
    detail::H5Quiet quiet;
    const detail::PathInfo info = detail::examine(config_json_path);
    if (!info.exists)
        throw Error(config_json_path + ": cannot open the config JSON file (" + info.kind + ")");
    const std::vector<char> bytes =
        detail::read_whole_file(config_json_path, "a config JSON file", detail::kMaxJsonBytes);
    const std::string text(bytes.begin(), bytes.end());
    const auto entries = detail::find_mha_configs(detail::parse_json(text, config_json_path));
    // Fail on the config before touching the weights file.
    detail::select_entry(entries, layer_name, config_json_path);
    const detail::H5File file = detail::H5File::open(weights_path);
    return detail::load_from_h5(file, entries, layer_name, config_json_path);
}

KerasWeights LoadedLayer::keras_weights() const {
    return keras_weights_from(weights, config.use_bias, config.use_gate);
}

}  // namespace mhac::io
