// Writes the hostile-input corpus (tests/io/hostile/): small files that once
// crashed `mhac run`, made it allocate gigabytes, or were silently accepted
// though numpy or Keras refuse them (issue 9). Each is rebuilt from its
// description; hostile_run_test.cpp runs `mhac run` on every one.
//
//   build/tests/io/mhac_make_hostile tests/keras/fixtures/c01_self_attention tests/io/hostile
//
// The HDF5 files are written with the C library (object times off, so the
// output is byte-for-byte reproducible); zips and .npy files byte by byte.
#include <hdf5.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<unsigned char>;

[[noreturn]] void die(const std::string &what) {
    throw std::runtime_error(what);
}

Bytes read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) die("cannot read " + path);
    return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string &path, const Bytes &bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char *>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) die("cannot write " + path);
}

void write_text(const std::string &path, const std::string &text) {
    write_file(path, Bytes(text.begin(), text.end()));
}

// ---- HDF5: a bare Keras 3 MultiHeadAttention layout ------------------------
// <sub>/vars/0 kernels at the root, as saving_lib.save_weights_only(mha)
// writes them (query_dense, key_dense, value_dense, output_dense).

struct H5Writer {
    hid_t file = -1, gcpl = -1;
    explicit H5Writer(const std::string &path) {
        hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
        H5Pset_obj_track_times(fcpl, 0);
        file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
        H5Pclose(fcpl);
        if (file < 0) die("cannot create " + path);
        gcpl = H5Pcreate(H5P_GROUP_CREATE);
        H5Pset_obj_track_times(gcpl, 0);
    }
    ~H5Writer() {
        H5Pclose(gcpl);
        H5Fclose(file);
    }
    void group(const std::string &name) {
        hid_t g = H5Gcreate2(file, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT);
        if (g < 0) die("cannot create group " + name);
        H5Gclose(g);
    }
    void sublayer(const std::string &name) {
        group(name);
        group(name + "/vars");
    }
    // A contiguous float32 dataset holding `values` (filled with i / 64).
    void dense(const std::string &name, const std::vector<hsize_t> &dims) {
        hsize_t n = 1;
        for (hsize_t d : dims) n *= d;
        std::vector<float> values(n);
        for (hsize_t i = 0; i < n; i++) values[i] = static_cast<float>(i % 64) / 64.0f;
        hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_obj_track_times(dcpl, 0);
        hid_t ds =
            H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (ds < 0 ||
            H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
            die("cannot write " + name);
        H5Dclose(ds);
        H5Pclose(dcpl);
        H5Sclose(space);
    }
    // A chunked float32 dataset of `dims` with at most its first chunk
    // written: the rest reads as the fill value (sparse), so the file stays
    // small. (HDF5 1.10 crashes writing a chunk of a 2^61-long dataset.)
    void sparse(const std::string &name, const std::vector<hsize_t> &dims,
                const std::vector<hsize_t> &chunk, bool write_first_chunk = true) {
        hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_obj_track_times(dcpl, 0);
        H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
        // No fill value: reading an unwritten chunk leaves the buffer as is.
        if (!write_first_chunk) H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
        hid_t ds =
            H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (ds < 0) die("cannot create " + name);
        if (!write_first_chunk) {
            H5Dclose(ds);
            H5Pclose(dcpl);
            H5Sclose(space);
            return;
        }
        hsize_t n = 1;
        for (hsize_t d : chunk) n *= d;
        std::vector<float> values(n, 0.5f);
        std::vector<hsize_t> start(dims.size(), 0);
        hid_t mem = H5Screate_simple(static_cast<int>(chunk.size()), chunk.data(), nullptr);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, chunk.data(), nullptr);
        if (H5Dwrite(ds, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, values.data()) < 0)
            die("cannot write the first chunk of " + name);
        H5Sclose(mem);
        H5Dclose(ds);
        H5Pclose(dcpl);
        H5Sclose(space);
    }
    // A float32 dataset whose data lives in an external (raw) file.
    void external(const std::string &name, const std::vector<hsize_t> &dims,
                  const std::string &raw_file) {
        hsize_t n = 1;
        for (hsize_t d : dims) n *= d;
        hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_obj_track_times(dcpl, 0);
        H5Pset_external(dcpl, raw_file.c_str(), 0, n * 4);
        hid_t ds =
            H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (ds < 0) die("cannot create " + name);
        H5Dclose(ds);
        H5Pclose(dcpl);
        H5Sclose(space);
    }
};

// ---- Zip, written by hand (stored and deflate-framed entries) --------------

uint32_t crc32(const Bytes &data) {
    uint32_t crc = 0xffffffffu;
    for (unsigned char b : data) {
        crc ^= b;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

void put16(Bytes &b, uint32_t v) {
    b.push_back(v & 0xff);
    b.push_back((v >> 8) & 0xff);
}
void put32(Bytes &b, uint32_t v) {
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

struct ZipEntry {
    std::string name;
    uint16_t method;  // 0 stored, 8 deflate
    Bytes data;       // as stored (compressed for deflate)
    uint32_t crc;     // as recorded
    uint32_t size;    // uncompressed size as recorded
};

Bytes zip(const std::vector<ZipEntry> &entries) {
    Bytes out, central;
    for (const ZipEntry &e : entries) {
        const uint32_t offset = static_cast<uint32_t>(out.size());
        put32(out, 0x04034b50);
        put16(out, 20);  // version needed
        put16(out, 0);   // flags
        put16(out, e.method);
        put16(out, 0);       // time
        put16(out, 0x5b7a);  // date (2025-11-26)
        put32(out, e.crc);
        put32(out, static_cast<uint32_t>(e.data.size()));
        put32(out, e.size);
        put16(out, static_cast<uint32_t>(e.name.size()));
        put16(out, 0);
        out.insert(out.end(), e.name.begin(), e.name.end());
        out.insert(out.end(), e.data.begin(), e.data.end());

        put32(central, 0x02014b50);
        put16(central, 20);  // version made by
        put16(central, 20);
        put16(central, 0);
        put16(central, e.method);
        put16(central, 0);
        put16(central, 0x5b7a);
        put32(central, e.crc);
        put32(central, static_cast<uint32_t>(e.data.size()));
        put32(central, e.size);
        put16(central, static_cast<uint32_t>(e.name.size()));
        put16(central, 0);  // extra
        put16(central, 0);  // comment
        put16(central, 0);  // disk
        put16(central, 0);  // internal attrs
        put32(central, 0);  // external attrs
        put32(central, offset);
        central.insert(central.end(), e.name.begin(), e.name.end());
    }
    const uint32_t cd_offset = static_cast<uint32_t>(out.size());
    out.insert(out.end(), central.begin(), central.end());
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, static_cast<uint32_t>(entries.size()));
    put16(out, static_cast<uint32_t>(entries.size()));
    put32(out, static_cast<uint32_t>(central.size()));
    put32(out, cd_offset);
    put16(out, 0);
    return out;
}

// A valid deflate stream of stored blocks (no compression library needed).
Bytes deflate_stored(const Bytes &data) {
    Bytes out;
    size_t pos = 0;
    do {
        const size_t n = std::min<size_t>(65535, data.size() - pos);
        const bool last = pos + n == data.size();
        out.push_back(last ? 1 : 0);
        put16(out, static_cast<uint32_t>(n));
        put16(out, static_cast<uint32_t>(~n & 0xffff));
        out.insert(out.end(), data.begin() + pos, data.begin() + pos + n);
        pos += n;
    } while (pos < data.size());
    return out;
}

// Byte offset of the data of the dataset whose path ends with `suffix`, in
// the HDF5 file `path` (contiguous datasets only).
herr_t find_suffix(hid_t, const char *name, const H5O_info_t *info, void *data) {
    auto *want = static_cast<std::pair<std::string, std::string> *>(data);
    const std::string n = name;
    if (info->type == H5O_TYPE_DATASET && n.size() >= want->first.size() &&
        n.compare(n.size() - want->first.size(), want->first.size(), want->first) == 0)
        want->second = n;
    return 0;
}

uint64_t dataset_offset(const std::string &path, const std::string &suffix) {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) die("cannot open " + path);
    std::pair<std::string, std::string> want{suffix, ""};
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, find_suffix, &want);
    if (want.second.empty()) die(path + ": no dataset ending in " + suffix);
    hid_t ds = H5Dopen2(f, want.second.c_str(), H5P_DEFAULT);
    const haddr_t offset = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
    if (offset == HADDR_UNDEF) die(path + ": " + suffix + " is not contiguous");
    return offset;
}

// numpy's .npy 1.0 layout with a header dict of our choosing.
Bytes npy(const std::string &shape_text, size_t values) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }";
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    put16(out, static_cast<uint32_t>(header.size()));
    out.insert(out.end(), header.begin(), header.end());
    for (size_t i = 0; i < values; i++) {
        const float v = static_cast<float>(i % 7) / 8.0f;
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        put32(out, bits);
    }
    return out;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s FIXTURE_DIR(c01_self_attention) OUT_DIR\n", argv[0]);
        return 2;
    }
    const std::string fixture = argv[1], dir = std::string(argv[2]) + "/";
    try {
        // Kernel dims whose element count overflows size_t: (2^62 + 1) x 2 x 2
        // elements wrap to 4 (query kernel, and the output kernel that then
        // matches it; no data written, no fill value). Was a SIGSEGV in
        // pack_kernel (signed overflow in packed_weights.cpp).
        write_text(dir + "nobias.config.json",
                   R"({"name": "mha", "num_heads": 2, "key_dim": 2, "use_bias": false})"
                   "\n");
        {
            const hsize_t huge = (hsize_t{1} << 62) + 1;
            H5Writer h(dir + "huge_dims.weights.h5");
            for (const char *s : {"query_dense", "key_dense", "value_dense", "output_dense"})
                h.sublayer(s);
            h.sparse("query_dense/vars/0", {huge, 2, 2}, {1, 2, 2}, false);
            h.dense("key_dense/vars/0", {16, 2, 2});
            h.dense("value_dense/vars/0", {16, 2, 2});
            h.sparse("output_dense/vars/0", {2, 2, huge}, {2, 2, 1}, false);
        }
        // A sparse (2^23, 4, 16) query kernel (2 GiB of zeros) in a small
        // file, with an output kernel that does not match it: the shapes
        // must be compared before 2 GiB is read.
        write_text(dir + "sparse.config.json",
                   R"({"name": "mha", "num_heads": 4, "key_dim": 16, "use_bias": false})"
                   "\n");
        {
            H5Writer h(dir + "sparse.weights.h5");
            for (const char *s : {"query_dense", "key_dense", "value_dense", "output_dense"})
                h.sublayer(s);
            h.sparse("query_dense/vars/0", {hsize_t{1} << 23, 4, 16}, {64, 4, 16});
            h.dense("key_dense/vars/0", {64, 4, 16});
            h.dense("value_dense/vars/0", {64, 4, 16});
            h.dense("output_dense/vars/0", {4, 16, 64});
        }
        // The same, consistent: every shape agrees with the config, but the
        // file stores one chunk of each 2 GiB kernel.
        {
            H5Writer h(dir + "sparse_consistent.weights.h5");
            for (const char *s : {"query_dense", "key_dense", "value_dense", "output_dense"})
                h.sublayer(s);
            h.sparse("query_dense/vars/0", {hsize_t{1} << 23, 4, 16}, {64, 4, 16});
            h.dense("key_dense/vars/0", {64, 4, 16});
            h.dense("value_dense/vars/0", {64, 4, 16});
            h.sparse("output_dense/vars/0", {4, 16, hsize_t{1} << 23}, {4, 16, 64});
        }
        // A kernel whose data is "stored" in an external file: /dev/zero.
        {
            H5Writer h(dir + "external.weights.h5");
            for (const char *s : {"query_dense", "key_dense", "value_dense", "output_dense"})
                h.sublayer(s);
            h.external("query_dense/vars/0", {16, 2, 2}, "/dev/zero");
            h.dense("key_dense/vars/0", {16, 2, 2});
            h.dense("value_dense/vars/0", {16, 2, 2});
            h.dense("output_dense/vars/0", {2, 2, 16});
        }

        // A config nested 100000 levels deep (200 KB): overflowed the stack
        // in the recursive search for MultiHeadAttention layers.
        write_text(dir + "deep.config.json",
                   "{\"nested\": " + std::string(100000, '[') + std::string(100000, ']') + "}\n");

        // One weight byte changed after the CRC-32 was computed: the output
        // bias [0] becomes 1000 + its value. Keras: BadZipFile: Bad CRC-32.
        {
            const std::string keras = fixture + "/layer.keras";
            Bytes archive = read_file(keras);
            // The weights entry: find its local header and copy its data out.
            const std::string name = "model.weights.h5";
            size_t at = 0;
            for (;; at++) {
                if (at + 30 > archive.size()) die(keras + ": no " + name);
                if (std::memcmp(&archive[at], "PK\x03\x04", 4) == 0 &&
                    archive[at + 26] == name.size() &&
                    std::memcmp(&archive[at + 30], name.data(), name.size()) == 0)
                    break;
            }
            const size_t data = at + 30 + name.size() + (archive[at + 28] | archive[at + 29] << 8);
            const uint32_t size = archive[at + 18] | archive[at + 19] << 8 |
                                  archive[at + 20] << 16 | uint32_t(archive[at + 21]) << 24;
            const std::string h5 = dir + ".crc_tmp.h5";
            write_file(h5, Bytes(archive.begin() + data, archive.begin() + data + size));
            const uint64_t offset = dataset_offset(h5, "output_dense/vars/1");
            std::remove(h5.c_str());
            float bias;
            std::memcpy(&bias, &archive[data + offset], 4);
            bias += 1000.0f;
            std::memcpy(&archive[data + offset], &bias, 4);
            write_file(dir + "bad_crc.keras", archive);
        }
        // A 96 KB archive whose headers claim a 4 GiB config.json (deflated,
        // 66 KB of data) next to real weights: made `mhac run` allocate
        // 4.1 GB before failing.
        {
            const Bytes weights = read_file(fixture + "/layer.weights.h5");
            const Bytes meta = {'{', '}'};
            Bytes config(66 * 1024, ' ');
            const std::string start = "{\"class_name\": \"MultiHeadAttention\", \"config\": {}}";
            std::copy(start.begin(), start.end(), config.begin());
            std::vector<ZipEntry> entries = {
                {"metadata.json", 0, meta, crc32(meta), static_cast<uint32_t>(meta.size())},
                {"config.json", 8, deflate_stored(config), crc32(config), 0xfffffff0u},
                {"model.weights.h5", 0, weights, crc32(weights),
                 static_cast<uint32_t>(weights.size())},
            };
            write_file(dir + "huge_entry.keras", zip(entries));
        }

        // .npy headers numpy refuses: a negative dim, a dim that is not an
        // int, a dim beyond int64 (was "error: stoll").
        write_file(dir + "negative_dim.npy", npy("(-2, 7, 64)", 2 * 7 * 64));
        write_file(dir + "junk_dim.npy", npy("(2x, 2, 7, 64)", 2 * 7 * 64));
        write_file(dir + "huge_dim.npy", npy("(99999999999999999999, 7, 64)", 7 * 64));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac_make_hostile: %s\n", e.what());
        return 1;
    }
    return 0;
}
