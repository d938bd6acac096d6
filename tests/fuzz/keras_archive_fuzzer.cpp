// libFuzzer target: the .keras archive reader (zip entries, config.json,
// model.weights.h5), through load_keras_archive with and without a layer
// name. An input that starts with "PK" is the archive itself; any other is
// "<config.json>\0<model.weights.h5>", which the target zips (stored, valid
// CRCs) first, so mutations reach the config and weights behind the zip
// checks as well as the zip parsing.
#include <zip.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_file.h"
#include "mhac/keras_io.h"

namespace {

void add_entry(zip_t *zip, const char *name, const uint8_t *data, size_t size) {
    zip_source_t *src = zip_source_buffer(zip, data, size, 0);
    if (!src) abort();
    const zip_int64_t index = zip_file_add(zip, name, src, ZIP_FL_OVERWRITE);
    if (index < 0) abort();
    zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
}

void write_zip(const std::string &path, const uint8_t *data, size_t size) {
    const uint8_t *nul = static_cast<const uint8_t *>(std::memchr(data, 0, size));
    const size_t config_size = nul ? static_cast<size_t>(nul - data) : size;
    int code = 0;
    zip_t *zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!zip) abort();
    add_entry(zip, "config.json", data, config_size);
    if (nul) add_entry(zip, "model.weights.h5", nul + 1, size - config_size - 1);
    if (zip_close(zip) != 0) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static mhac::fuzz::FuzzFile file("input.keras");
    const bool raw = size >= 2 && data[0] == 'P' && data[1] == 'K';
    const std::string &path = file.write(data, raw ? size : 0);
    if (!raw) write_zip(path, data, size);
    for (const char *name : {"", "self_attn"}) {
        try {
            const mhac::io::LoadedLayer layer = mhac::io::load_keras_archive(path, name);
            (void)layer.keras_weights();
        } catch (const mhac::Error &) {
        }
    }
    return 0;
}
