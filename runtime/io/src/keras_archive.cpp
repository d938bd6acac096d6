// Keras 3 `.keras` archives: a zip (or, for save(zipped=False), a folder)
// holding config.json and model.weights.h5 (spec 4.3).
#include <zip.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "h5_file.h"
#include "keras_config.h"
#include "keras_weights.h"
#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

constexpr const char *kConfig = "config.json";
constexpr const char *kWeights = "model.weights.h5";
constexpr const char *kShardedIndex = "model.weights.json";

struct Contents {
    std::string config;
    std::vector<char> weights;
};

[[noreturn]] void missing_weights(const std::string &path, bool sharded) {
    if (sharded)
        throw Error(path + ": the weights are sharded (model.weights.json); mhac reads a single " +
                    kWeights);
    throw Error(path + ": no " + kWeights + " in the archive");
}

// A `.keras` saved unzipped is a folder with the same entries.
Contents read_folder(const std::string &path) {
    namespace fs = std::filesystem;
    auto read = [&](const char *name) {
        std::ifstream in(fs::path(path) / name, std::ios::binary);
        return std::vector<char>(std::istreambuf_iterator<char>(in), {});
    };
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(path) / kConfig, ec))
        throw Error(path + ": no " + kConfig + " in the model folder (not a Keras 3 model?)");
    if (!fs::is_regular_file(fs::path(path) / kWeights, ec))
        missing_weights(path, fs::is_regular_file(fs::path(path) / kShardedIndex, ec));
    Contents c;
    const std::vector<char> config = read(kConfig);
    c.config.assign(config.begin(), config.end());
    c.weights = read(kWeights);
    return c;
}

std::vector<char> read_entry(zip_t *zip, zip_int64_t index, const std::string &label) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip, static_cast<zip_uint64_t>(index), 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE))
        throw Error(label + ": cannot read the archive entry (" + zip_strerror(zip) + ")");
    std::unique_ptr<zip_file_t, int (*)(zip_file_t *)> file(
        zip_fopen_index(zip, static_cast<zip_uint64_t>(index), 0), zip_fclose);
    if (!file) throw Error(label + ": cannot open the archive entry (" + zip_strerror(zip) + ")");
    std::vector<char> bytes(st.size);
    zip_uint64_t done = 0;
    while (done < st.size) {
        const zip_int64_t got = zip_fread(file.get(), bytes.data() + done, st.size - done);
        if (got <= 0)
            throw Error(label + ": archive entry truncated or damaged (" +
                        zip_file_strerror(file.get()) + ")");
        done += static_cast<zip_uint64_t>(got);
    }
    return bytes;
}

Contents read_zip(const std::string &path) {
    int code = 0;
    std::unique_ptr<zip_t, void (*)(zip_t *)> zip(zip_open(path.c_str(), ZIP_RDONLY, &code),
                                                  zip_discard);
    if (!zip) {
        zip_error_t error;
        zip_error_init_with_code(&error, code);
        const std::string why = zip_error_strerror(&error);
        zip_error_fini(&error);
        throw Error(path + ": not a .keras archive (expected a zip file: " + why + ")");
    }
    const zip_int64_t config = zip_name_locate(zip.get(), kConfig, 0);
    if (config < 0)
        throw Error(path + ": no " + kConfig + " in the archive (not a Keras 3 model?)");
    const zip_int64_t weights = zip_name_locate(zip.get(), kWeights, 0);
    if (weights < 0) missing_weights(path, zip_name_locate(zip.get(), kShardedIndex, 0) >= 0);
    Contents c;
    const std::vector<char> text = read_entry(zip.get(), config, path + ":" + kConfig);
    c.config.assign(text.begin(), text.end());
    c.weights = read_entry(zip.get(), weights, path + ":" + kWeights);
    return c;
}

}  // namespace

LoadedLayer load_keras_archive(const std::string &path, const std::string &layer_name) {
    detail::H5Quiet quiet;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw Error(path + ": no such file");
    Contents contents =
        std::filesystem::is_directory(path, ec) ? read_folder(path) : read_zip(path);
    const std::string config_label = path + ":" + kConfig;
    const auto entries =
        detail::find_mha_configs(detail::parse_json(contents.config, config_label));
    if (entries.empty()) throw Error(config_label + ": the model has no MultiHeadAttention layer");
    const detail::H5File file =
        detail::H5File::open_image(std::move(contents.weights), path + ":" + kWeights);
    return detail::load_from_h5(file, entries, layer_name, config_label);
}

}  // namespace mhac::io
