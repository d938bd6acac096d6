// Finding MultiHeadAttention weight groups in the two Keras HDF5 layouts.
#include "keras_layout.h"

#include <map>
#include <regex>

namespace mhac::io::detail {
namespace {

// Sub-layer attributes by Slot: Keras >= 3.1 saves the public properties,
// 3.0.0 the private attributes (_query_dense); the gate is always private.
constexpr std::array<const char *, kSlots> kDense = {"query_dense", "key_dense", "gate_dense",
                                                     "value_dense", "output_dense"};
// Sub-layer (EinsumDense) names in variable paths, by Slot.
constexpr std::array<const char *, kSlots> kSublayer = {"query", "key", "gate", "value",
                                                        "attention_output"};

std::string join(const std::string &group, const std::string &child) {
    return group.empty() ? child : group + "/" + child;
}

std::string last_component(const std::string &path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

const std::array<const char *, kSlots> kSlotNames = {"query", "key", "gate", "value", "output"};

std::string Candidate::describe() const {
    std::string where = group.empty() ? std::string("/") : group;
    return name.empty() ? where : name + " (" + where + ")";
}

Layout detect_layout(const H5File &file, std::string *legacy_root) {
    for (const char *root : {"", "model_weights"}) {
        if ((!*root || file.has_group(root)) && file.string_list_attr(root, "layer_names")) {
            *legacy_root = root;
            return Layout::legacy;
        }
    }
    return Layout::keras3;
}

// A group is a MultiHeadAttention when it has the four projection
// sub-layer groups, each with a kernel at <sub>/vars/0 (plus the gate's).
std::vector<Candidate> keras3_candidates(const H5File &file) {
    std::vector<Candidate> out;
    for (const std::string &group : file.groups()) {
        Candidate c;
        c.group = group;
        bool complete = true;
        for (size_t i = 0; i < kSlots && complete; i++) {
            std::string sub = join(group, kDense[i]);
            if (!file.has_group(sub)) sub = join(group, std::string("_") + kDense[i]);
            if (!file.has_dataset(sub + "/vars/0")) {
                complete = i == kGate;
                continue;
            }
            c.kernels[i] = sub + "/vars/0";
            c.expected_biases[i] = sub + "/vars/1";
            if (file.has_dataset(c.expected_biases[i])) c.biases[i] = c.expected_biases[i];
        }
        if (!complete) continue;
        if (auto name = file.string_attr(join(group, "vars"), "name")) c.name = *name;
        if (!c.name.empty()) c.names.push_back(c.name);
        if (!group.empty()) {
            c.names.push_back(group);
            c.names.push_back("/" + group);
            c.weak_names.push_back(last_component(group));
        }
        out.push_back(std::move(c));
    }
    return out;
}

// layer_names lists the layers; each layer group's weight_names lists
// "<scope>/query/kernel[:0]" ... and the data sits at <layer>/<weight name>.
std::vector<Candidate> legacy_candidates(const H5File &file, const std::string &root) {
    static const std::regex weight(
        R"(^(.*)/(query|key|gate|value|attention_output)/(kernel|bias)(:\d+)?$)");
    std::vector<Candidate> out;
    const auto layers = file.string_list_attr(root, "layer_names");
    if (!layers) return out;
    for (const std::string &layer : *layers) {
        const std::string layer_group = join(root, layer);
        const auto names = file.string_list_attr(layer_group, "weight_names");
        if (!names) continue;
        std::vector<std::string> scopes;  // in order of appearance
        std::map<std::string, Candidate> by_scope;
        for (const std::string &w : *names) {
            std::smatch m;
            if (!std::regex_match(w, m, weight)) continue;
            const std::string scope = m[1];
            if (!by_scope.count(scope)) scopes.push_back(scope);
            Candidate &c = by_scope[scope];
            size_t i = 0;
            while (kSublayer[i] != m[2].str()) i++;
            const std::string path = join(layer_group, w);
            (m[3] == "kernel" ? c.kernels : c.biases)[i] = path;
            c.expected_biases[i] =
                join(layer_group, scope + "/" + kSublayer[i] + "/bias" + m[4].str());
        }
        for (const std::string &scope : scopes) {
            Candidate &c = by_scope[scope];
            bool complete = true;
            for (size_t i = 0; i < kSlots; i++)
                complete = complete && (i == kGate || !c.kernels[i].empty());
            if (!complete) continue;
            c.group = join(layer_group, scope);
            c.name = last_component(scope);
            c.names = {c.name, scope, layer + "/" + scope, c.group};
            c.weak_names = {layer};
            out.push_back(std::move(c));
        }
    }
    return out;
}

}  // namespace mhac::io::detail
