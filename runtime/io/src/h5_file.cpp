// HDF5 access for the Keras readers: opening (file or in-memory image),
// indexing the object tree, string attributes and float datasets.
#include "h5_file.h"

#include <H5LTpublic.h>

#include <cstring>
#include <filesystem>
#include <utility>

namespace mhac::io::detail {
namespace {

// Owns one HDF5 identifier.
class Handle {
public:
    Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    ~Handle() {
        if (id_ >= 0) close_(id_);
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    hid_t get() const { return id_; }
    bool ok() const { return id_ >= 0; }

private:
    hid_t id_;
    herr_t (*close_)(hid_t);
};

std::string h5_path(const std::string &path) {
    return "/" + path;
}

herr_t collect(hid_t, const char *name, const H5O_info_t *info, void *op_data) {
    auto *sets =
        static_cast<std::pair<std::set<std::string> *, std::set<std::string> *> *>(op_data);
    std::string path = std::strcmp(name, ".") == 0 ? std::string() : std::string(name);
    if (info->type == H5O_TYPE_GROUP) sets->first->insert(path);
    if (info->type == H5O_TYPE_DATASET) sets->second->insert(path);
    return 0;
}

// Reads every element of a string attribute (fixed or variable length).
std::optional<std::vector<std::string>> read_strings(hid_t attr) {
    Handle type(H5Aget_type(attr), H5Tclose);
    if (!type.ok() || H5Tget_class(type.get()) != H5T_STRING) return std::nullopt;
    Handle space(H5Aget_space(attr), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n < 0) return std::nullopt;
    std::vector<std::string> out;
    if (n == 0) return out;
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    if (H5Tis_variable_str(type.get()) > 0) {
        H5Tset_size(mem.get(), H5T_VARIABLE);
        std::vector<char *> ptrs(static_cast<size_t>(n), nullptr);
        if (H5Aread(attr, mem.get(), ptrs.data()) < 0) return std::nullopt;
        for (char *p : ptrs) out.emplace_back(p ? p : "");
        H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
    } else {
        const size_t size = H5Tget_size(type.get());
        H5Tset_size(mem.get(), size);
        H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
        std::vector<char> buf(size * static_cast<size_t>(n));
        if (H5Aread(attr, mem.get(), buf.data()) < 0) return std::nullopt;
        for (hssize_t i = 0; i < n; i++) {
            const char *p = buf.data() + static_cast<size_t>(i) * size;
            out.emplace_back(p, strnlen(p, size));
        }
    }
    return out;
}

}  // namespace

H5Quiet::H5Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

H5Quiet::~H5Quiet() {
    H5Eset_auto2(H5E_DEFAULT, func_, data_);
}

H5File::H5File(hid_t id, std::string label) : id_(id), label_(std::move(label)) {
    index();
}

H5File::H5File(H5File &&other) noexcept
    : id_(std::exchange(other.id_, -1)),
      label_(std::move(other.label_)),
      groups_(std::move(other.groups_)),
      datasets_(std::move(other.datasets_)) {}

H5File::~H5File() {
    if (id_ >= 0) H5Fclose(id_);
}

H5File H5File::open(const std::string &path) {
    H5Quiet quiet;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw Error(path + ": no such file (expected an HDF5 weights file)");
    if (H5Fis_hdf5(path.c_str()) <= 0)
        throw Error(path +
                    ": not an HDF5 file (expected Keras weights saved as .weights.h5 or .h5)");
    hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw Error(path + ": cannot open the HDF5 file (truncated or damaged?)");
    return H5File(id, path);
}

H5File H5File::open_image(std::vector<char> bytes, const std::string &label) {
    H5Quiet quiet;
    // HDF5 copies the image (flags 0); our bytes go right after. (Reading in
    // place, DONT_COPY | DONT_RELEASE, leaks HDF5 1.10's callback data.)
    hid_t id = bytes.empty() ? -1 : H5LTopen_file_image(bytes.data(), bytes.size(), 0);
    std::vector<char>().swap(bytes);
    if (id < 0) throw Error(label + ": not an HDF5 file");
    return H5File(id, label);
}

void H5File::index() {
    std::pair<std::set<std::string> *, std::set<std::string> *> sets{&groups_, &datasets_};
    if (H5Ovisit(id_, H5_INDEX_NAME, H5_ITER_NATIVE, collect, &sets) < 0)
        throw Error(label_ + ": cannot read the HDF5 object tree (file damaged?)");
}

std::optional<std::string> H5File::string_attr(const std::string &path,
                                               const std::string &name) const {
    H5Quiet quiet;
    if (H5Aexists_by_name(id_, h5_path(path).c_str(), name.c_str(), H5P_DEFAULT) <= 0)
        return std::nullopt;
    Handle attr(H5Aopen_by_name(id_, h5_path(path).c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
    if (!attr.ok()) return std::nullopt;
    auto strings = read_strings(attr.get());
    if (!strings || strings->size() != 1) return std::nullopt;
    return strings->front();
}

std::optional<std::vector<std::string>> H5File::string_list_attr(const std::string &path,
                                                                 const std::string &name) const {
    H5Quiet quiet;
    auto read_one = [&](const std::string &attr_name) -> std::optional<std::vector<std::string>> {
        if (H5Aexists_by_name(id_, h5_path(path).c_str(), attr_name.c_str(), H5P_DEFAULT) <= 0)
            return std::nullopt;
        Handle attr(H5Aopen_by_name(id_, h5_path(path).c_str(), attr_name.c_str(), H5P_DEFAULT,
                                    H5P_DEFAULT),
                    H5Aclose);
        if (!attr.ok()) return std::nullopt;
        if (auto strings = read_strings(attr.get())) return strings;
        // tf-keras writes np.asarray([]) (float64, no elements) for no names.
        Handle space(H5Aget_space(attr.get()), H5Sclose);
        if (H5Sget_simple_extent_npoints(space.get()) == 0) return std::vector<std::string>{};
        return std::nullopt;
    };
    if (auto whole = read_one(name)) return whole;
    std::optional<std::vector<std::string>> chunks;
    for (int i = 0;; i++) {
        auto chunk = read_one(name + std::to_string(i));
        if (!chunk) break;
        if (!chunks) chunks.emplace();
        chunks->insert(chunks->end(), chunk->begin(), chunk->end());
    }
    return chunks;
}

Shape H5File::dataset_shape(const std::string &path) const {
    H5Quiet quiet;
    if (!has_dataset(path)) throw Error(label_ + ": missing dataset " + h5_path(path));
    Handle ds(H5Dopen2(id_, h5_path(path).c_str(), H5P_DEFAULT), H5Dclose);
    Handle space(ds.ok() ? H5Dget_space(ds.get()) : -1, H5Sclose);
    const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank < 0) throw Error(label_ + ": cannot read dataset " + h5_path(path));
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    return Shape(dims.begin(), dims.end());
}

Tensor H5File::read_floats(const std::string &path) const {
    H5Quiet quiet;
    Tensor t;
    t.shape = dataset_shape(path);
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    Handle ds(H5Dopen2(id_, h5_path(path).c_str(), H5P_DEFAULT), H5Dclose);
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    const size_t size = H5Tget_size(type.get());
    t.data.resize(n);
    const std::string where = label_ + ": dataset " + h5_path(path);
    if (cls == H5T_FLOAT) {
        // HDF5 converts float64 and h5py's IEEE half (a 2-byte float type).
        if (n &&
            H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data.data()) < 0)
            throw Error(where + ": cannot read its " + std::to_string(size * 8) + "-bit floats");
        return t;
    }
    if (cls == H5T_OPAQUE && size == 2 && string_attr(path, "dtype") == std::string("bfloat16")) {
        std::vector<uint16_t> raw(n);
        if (n && H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
            throw Error(where + ": cannot read its bfloat16 values");
        for (size_t i = 0; i < n; i++) {
            const uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
            std::memcpy(&t.data[i], &bits, sizeof(float));
        }
        return t;
    }
    const char *kind = cls == H5T_INTEGER  ? "integer"
                       : cls == H5T_STRING ? "string"
                       : cls == H5T_OPAQUE ? "opaque"
                                           : "non-float";
    throw Error(where + " holds " + std::to_string(size * 8) + "-bit " + kind +
                " values; expected float16, bfloat16, float32 or float64 weights");
}

}  // namespace mhac::io::detail
