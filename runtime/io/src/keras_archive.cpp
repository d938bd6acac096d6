// Keras 3 `.keras` archives: a zip (or, for save(zipped=False), a folder)
// holding config.json and model.weights.h5 (spec 4.3). Every entry's sizes
// are checked against the archive's real size before anything is allocated,
// and its CRC-32 is verified, as Python's zipfile (and so Keras) does.
#include <zip.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "h5_file.h"
#include "input_file.h"
#include "keras_config.h"
#include "keras_weights.h"
#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

constexpr const char *kConfig = "config.json";
constexpr const char *kWeights = "model.weights.h5";
constexpr const char *kShardedIndex = "model.weights.json";
// Deflate cannot expand data by more than about 1032:1 (RFC 1951's longest
// match per shortest code); the slack covers a stream's own framing.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr uint64_t kDeflateSlack = 1024;

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
    const std::string config = (fs::path(path) / kConfig).string();
    const std::string weights = (fs::path(path) / kWeights).string();
    if (!detail::examine(config).exists)
        throw Error(path + ": no " + kConfig + " in the model folder (not a Keras 3 model?)");
    if (!detail::examine(weights).exists)
        missing_weights(path, detail::examine((fs::path(path) / kShardedIndex).string()).regular);
    Contents c;
    const std::vector<char> text =
        detail::read_whole_file(config, "a Keras config.json", detail::kMaxJsonBytes);
    c.config.assign(text.begin(), text.end());
    c.weights = detail::read_whole_file(weights, "a Keras weights file", UINT64_MAX);
    return c;
}

// CRC-32 (ISO-HDLC, zip's), table-driven.
uint32_t crc32(const char *data, size_t n, uint32_t crc = 0) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ static_cast<unsigned char>(data[i])) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

// One entry, after checking what its headers claim against the archive
// (`archive_size` bytes) and `max_bytes`; the data is read in chunks as it
// arrives (never preallocated from a header's claim) and its CRC-32 checked.
std::vector<char> read_entry(zip_t *zip, zip_int64_t index, const std::string &label,
                             uint64_t archive_size, uint64_t max_bytes) {
    zip_stat_t st;
    zip_stat_init(&st);
    const zip_uint64_t want =
        ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_CRC;
    if (zip_stat_index(zip, static_cast<zip_uint64_t>(index), 0, &st) != 0 ||
        (st.valid & want) != want)
        throw Error(label + ": cannot read the archive entry (" + zip_strerror(zip) + ")");
    const std::string claims = "the entry claims " + std::to_string(st.size) + " bytes (" +
                               std::to_string(st.comp_size) + " stored)";
    if (st.comp_size > archive_size)
        throw Error(label + ": damaged archive: " + claims + " but the archive has " +
                    std::to_string(archive_size) + " bytes");
    if (st.comp_method == ZIP_CM_STORE) {
        if (st.size != st.comp_size)
            throw Error(label + ": damaged archive: " + claims +
                        ", but a stored entry's two sizes are equal");
    } else if (st.comp_method == ZIP_CM_DEFLATE) {
        if (st.size / kMaxDeflateRatio > st.comp_size + kDeflateSlack)
            throw Error(label + ": damaged archive: " + claims + ", more than deflate can expand " +
                        "that to");
    } else {
        throw Error(label + ": compression method " + std::to_string(st.comp_method) +
                    " is not supported (Keras writes stored or deflated entries)");
    }
    if (st.size > max_bytes)
        throw Error(label + ": " + claims + ", more than the " + std::to_string(max_bytes) +
                    " bytes this entry may have");
    std::unique_ptr<zip_file_t, int (*)(zip_file_t *)> file(
        zip_fopen_index(zip, static_cast<zip_uint64_t>(index), 0), zip_fclose);
    if (!file) throw Error(label + ": cannot open the archive entry (" + zip_strerror(zip) + ")");
    std::vector<char> bytes;
    // A stored entry's size is real (it fits in the archive); a deflated
    // one's is only a claim until the data arrives.
    if (st.comp_method == ZIP_CM_STORE) bytes.reserve(st.size);
    char chunk[1 << 16];
    uint32_t crc = 0;
    for (;;) {
        const zip_int64_t got = zip_fread(file.get(), chunk, sizeof chunk);
        if (got < 0 && zip_error_code_zip(zip_file_get_error(file.get())) == ZIP_ER_CRC)
            throw Error(label + ": archive entry corrupted: its data does not match the CRC-32 " +
                        "the archive records (Keras refuses it too: Bad CRC-32)");
        if (got < 0)
            throw Error(label + ": archive entry damaged (" + zip_file_strerror(file.get()) + ")");
        if (got == 0) break;
        if (static_cast<uint64_t>(got) > st.size - bytes.size())
            throw Error(label + ": damaged archive: the entry holds more than the " +
                        std::to_string(st.size) + " bytes its header claims");
        crc = crc32(chunk, static_cast<size_t>(got), crc);
        bytes.insert(bytes.end(), chunk, chunk + got);
    }
    if (bytes.size() != st.size)
        throw Error(label + ": archive entry truncated: " + std::to_string(bytes.size()) + " of " +
                    std::to_string(st.size) + " bytes");
    if (crc != st.crc) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "CRC-32 %08x, the archive records %08x", crc, st.crc);
        throw Error(label + ": archive entry corrupted: its data has " + buf +
                    " (Keras refuses it too: Bad CRC-32)");
    }
    return bytes;
}

Contents read_zip(const std::string &path, uint64_t archive_size) {
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
    const std::vector<char> text =
        read_entry(zip.get(), config, path + ":" + kConfig, archive_size, detail::kMaxJsonBytes);
    c.config.assign(text.begin(), text.end());
    c.weights = read_entry(zip.get(), weights, path + ":" + kWeights, archive_size, UINT64_MAX);
    return c;
}

}  // namespace

LoadedLayer load_keras_archive(const std::string &path, const std::string &layer_name) {
    detail::H5Quiet quiet;
    const detail::PathInfo info = detail::examine(path);
    Contents contents;
    if (info.directory) {
        contents = read_folder(path);
    } else if (info.regular) {
        contents = read_zip(path, info.size);
    } else if (!info.exists) {
        throw Error(path + ": " + info.kind);
    } else {
        throw Error(path + ": is " + info.kind + ", not a .keras archive (a zip file or a folder)");
    }
    const std::string config_label = path + ":" + kConfig;
    const auto entries =
        detail::find_mha_configs(detail::parse_json(contents.config, config_label));
    if (entries.empty()) throw Error(config_label + ": the model has no MultiHeadAttention layer");
    const detail::H5File file =
        detail::H5File::open_image(std::move(contents.weights), path + ":" + kWeights);
    return detail::load_from_h5(file, entries, layer_name, config_label);
}

}  // namespace mhac::io
