// libFuzzer target: the .keras archive reader (zip entries, config.json,
// model.weights.h5), through load_keras_archive with and without a layer
// name.
#include <cstddef>
#include <cstdint>

#include "fuzz_file.h"
#include "mhac/keras_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static mhac::fuzz::FuzzFile file("input.keras");
    const std::string &path = file.write(data, size);
    for (const char *name : {"", "self_attn"}) {
        try {
            const mhac::io::LoadedLayer layer = mhac::io::load_keras_archive(path, name);
            (void)layer.keras_weights();
        } catch (const mhac::Error &) {
        }
    }
    return 0;
}
