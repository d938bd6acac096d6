// libFuzzer target: the weights loader (Keras 3 .weights.h5 and TF-era .h5).
// Each input is opened once as an HDF5 file image and loaded against every
// config in tests/io/data that a seed was written for, so the shape checks
// of each layout are reached.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

#include "h5_file.h"
#include "keras_config.h"
#include "keras_weights.h"
#include "mhac/keras_io.h"

namespace {

struct Config {
    std::vector<mhac::io::detail::ConfigEntry> entries;
    std::string layer_name;
};

std::vector<Config> load_configs() {
    using namespace mhac::io::detail;
    std::vector<Config> configs;
    const std::pair<const char *, const char *> files[] = {
        {"basic.config.json", ""},
        {"gate.config.json", ""},
        {"tf_era_mha.config.json", ""},
        {"two_mha.model.json", "self_attn"},
    };
    for (const auto &[file, layer] : files) {
        std::ifstream in(std::string(MHAC_IO_TEST_DATA) + "/" + file);
        std::stringstream text;
        text << in.rdbuf();
        configs.push_back({find_mha_configs(parse_json(text.str(), file)), layer});
        if (configs.back().entries.empty()) abort();
    }
    return configs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace mhac::io::detail;
    static const std::vector<Config> configs = load_configs();
    H5Quiet quiet;
    try {
        const H5File file =
            H5File::open_image(std::vector<char>(reinterpret_cast<const char *>(data),
                                                 reinterpret_cast<const char *>(data) + size),
                               "input.weights.h5");
        for (const Config &c : configs) {
            try {
                const mhac::io::LoadedLayer layer =
                    load_from_h5(file, c.entries, c.layer_name, "config.json");
                (void)layer.keras_weights();
            } catch (const mhac::Error &) {
            }
        }
    } catch (const mhac::Error &) {
    }
    return 0;
}
