// Where a MultiHeadAttention's weights sit in a Keras weights file, for the
// Keras 3 layout (spec 4.2) and the TF-era / legacy-.h5 layout (spec 4.4).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "h5_file.h"

namespace mhac::io::detail {

// The sub-layers in get_weights() order; the gate exists with use_gate only.
enum Slot { kQuery, kKey, kGate, kValue, kOutput, kSlots };
extern const std::array<const char *, kSlots> kSlotNames;  // "query", ... for messages

// One MultiHeadAttention's datasets in a weights file.
struct Candidate {
    std::string group;  // its group ("layers/multi_head_attention", "" for the root)
    std::string name;   // the layer's name when the file records it
    // Names that pick it: `name`, its group path, the TF-era scope path.
    std::vector<std::string> names;
    // Names that pick it when nothing matches `names`: the group's last
    // component ("multi_head_attention_1"), the TF-era layer group.
    std::vector<std::string> weak_names;
    // Dataset paths by Slot; a path is empty when absent, and
    // `expected_biases` is where a Keras writer would have put each bias.
    std::array<std::string, kSlots> kernels, biases, expected_biases;

    std::string describe() const;  // "cross_attn (layers/multi_head_attention_1)"
};

enum class Layout {
    keras3,  // Keras 3 .weights.h5 / model.weights.h5
    legacy,  // TF-era save_weights("x.h5") or Keras 3 legacy model.save("x.h5")
};

// Which layout `file` is in, and for `legacy` the group holding layer_names
// ("" or "model_weights").
Layout detect_layout(const H5File &file, std::string *legacy_root);

std::vector<Candidate> keras3_candidates(const H5File &file);
std::vector<Candidate> legacy_candidates(const H5File &file, const std::string &root);

}  // namespace mhac::io::detail
