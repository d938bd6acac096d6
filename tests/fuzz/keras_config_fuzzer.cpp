// libFuzzer target: the Keras config parser: parse_layer_config on the text,
// and every MultiHeadAttention that find_mha_configs finds in it (a layer
// config, its {"class_name", "config"} form or a whole model's config).
#include <cstddef>
#include <cstdint>
#include <string>

#include "keras_config.h"
#include "mhac/keras_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace mhac::io::detail;
    const std::string text(reinterpret_cast<const char *>(data), size);
    try {
        (void)mhac::io::parse_layer_config(text);
    } catch (const mhac::Error &) {
    }
    try {
        for (const ConfigEntry &e : find_mha_configs(parse_json(text, "config.json"))) {
            try {
                (void)config_from_json(e.config, "config.json");
            } catch (const mhac::Error &) {
            }
        }
    } catch (const mhac::Error &) {
    }
    return 0;
}
