// Reads one MultiHeadAttention's weights from an open Keras weights file,
// picking the layer and checking every shape against its config.
#pragma once

#include <string>
#include <vector>

#include "h5_file.h"
#include "keras_config.h"
#include "mhac/keras_io.h"

namespace mhac::io::detail {

// `entries` come from the config document named `config_label`;
// `layer_name` (may be empty) picks among them and among the file's layers.
LoadedLayer load_from_h5(const H5File &file, const std::vector<ConfigEntry> &entries,
                         const std::string &layer_name, const std::string &config_label);

}  // namespace mhac::io::detail
