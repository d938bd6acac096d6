// HDF5 access for the Keras readers: opening (file or in-memory image),
// indexing the object tree, string attributes and float datasets.
#include "h5_file.h"

#include <H5LTpublic.h>

#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "checked_math.h"
#include "h5_checks.h"
#include "input_file.h"

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

// The object tree walked link by link instead of with H5Ovisit: H5Ovisit
// remembers only objects whose header claims several links, so a damaged
// file whose groups link back to an ancestor (link count 1) sent it into
// endless recursion (a fuzz finding, tests/fuzz/regressions/keras_weights/
// group_cycle). Every object is entered once, by address; depth and the
// number of links are bounded far above any Keras weights file.
constexpr int kMaxTreeDepth = 64;
constexpr size_t kMaxTreeLinks = size_t{1} << 20;

struct TreeWalk {
    hid_t file;
    uint64_t file_size;
    std::set<std::string> *groups;
    std::set<std::string> *datasets;
    std::set<haddr_t> entered;
    size_t links = 0;
    std::string problem;  // set when the walk stops early
};

herr_t walk_group(hid_t group, const std::string &prefix, int depth, TreeWalk &walk);

struct LinkContext {
    TreeWalk *walk;
    const std::string *prefix;
    int depth;
};

herr_t visit_link(hid_t group, const char *name, const H5L_info_t *link, void *op_data) {
    auto &ctx = *static_cast<LinkContext *>(op_data);
    TreeWalk &walk = *ctx.walk;
    if (++walk.links > kMaxTreeLinks) {
        walk.problem = "more than " + std::to_string(kMaxTreeLinks) + " links";
        return -1;
    }
    // Soft and external links name other objects, as they did for H5Ovisit.
    if (link->type != H5L_TYPE_HARD) return 0;
    if (!walk.entered.insert(link->u.address).second) return 0;
    H5O_info_t info;
    if (H5Oget_info_by_name2(group, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
    const std::string path = ctx.prefix->empty() ? std::string(name) : *ctx.prefix + "/" + name;
    if (info.type == H5O_TYPE_DATASET) walk.datasets->insert(path);
    if (info.type != H5O_TYPE_GROUP) return 0;
    walk.groups->insert(path);
    if (ctx.depth + 1 > kMaxTreeDepth) {
        walk.problem = "groups nested deeper than " + std::to_string(kMaxTreeDepth);
        return -1;
    }
    if (std::string bad = check_group(walk.file, walk.file_size, info.addr); !bad.empty()) {
        walk.problem = "group /" + path + ": " + bad;
        return -1;
    }
    const hid_t child = H5Gopen2(group, name, H5P_DEFAULT);
    if (child < 0) return -1;
    const herr_t status = walk_group(child, path, ctx.depth + 1, walk);
    H5Gclose(child);
    return status < 0 ? -1 : 0;
}

herr_t walk_group(hid_t group, const std::string &prefix, int depth, TreeWalk &walk) {
    LinkContext ctx{&walk, &prefix, depth};
    return H5Literate(group, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, visit_link, &ctx);
}

// Reads every element of a string attribute (fixed or variable length); an
// attribute claiming more bytes than the file has (`limit`) reads as absent.
// `check_vlen` runs before libhdf5 reads variable-length strings
// (h5_checks.h: it throws when they are damaged).
std::optional<std::vector<std::string>> read_strings(hid_t attr, uint64_t limit,
                                                     const std::function<void()> &check_vlen) {
    Handle type(H5Aget_type(attr), H5Tclose);
    if (!type.ok() || H5Tget_class(type.get()) != H5T_STRING) return std::nullopt;
    Handle space(H5Aget_space(attr), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n < 0 || static_cast<uint64_t>(n) > limit) return std::nullopt;
    const auto bytes =
        mhac::detail::checked_mul(static_cast<uint64_t>(n), uint64_t{H5Tget_size(type.get())});
    if (!bytes || *bytes > limit) return std::nullopt;
    std::vector<std::string> out;
    if (n == 0) return out;
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    if (H5Tis_variable_str(type.get()) > 0) {
        check_vlen();
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
    hsize_t size = 0;
    if (H5Fget_filesize(id_, &size) < 0) {
        H5Fclose(id_);
        throw Error(label_ + ": cannot read the HDF5 file's size (file damaged?)");
    }
    size_ = size;
    try {
        index();
    } catch (...) {
        H5Fclose(id_);
        throw;
    }
}

H5File::H5File(H5File &&other) noexcept
    : id_(std::exchange(other.id_, -1)),
      label_(std::move(other.label_)),
      size_(other.size_),
      groups_(std::move(other.groups_)),
      datasets_(std::move(other.datasets_)) {}

H5File::~H5File() {
    if (id_ >= 0) H5Fclose(id_);
}

H5File H5File::open(const std::string &path) {
    H5Quiet quiet;
    const PathInfo info = examine(path);
    if (!info.exists) throw Error(path + ": " + info.kind + " (expected an HDF5 weights file)");
    if (!info.regular) throw Error(path + ": is " + info.kind + ", not an HDF5 weights file");
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
    TreeWalk walk{id_, size_, &groups_, &datasets_, {}, 0, {}};
    H5O_info_t root;
    if (H5Oget_info2(id_, &root, H5O_INFO_BASIC) < 0)
        throw Error(label_ + ": cannot read the HDF5 object tree (file damaged?)");
    if (std::string bad = check_group(id_, size_, root.addr); !bad.empty())
        throw Error(label_ + ": cannot read the HDF5 object tree (group /: " + bad + ")");
    walk.entered.insert(root.addr);
    groups_.insert(std::string());
    if (walk_group(id_, std::string(), 0, walk) < 0) {
        throw Error(label_ + ": cannot read the HDF5 object tree (" +
                    (walk.problem.empty() ? std::string("file damaged?") : walk.problem) + ")");
    }
}

std::optional<std::string> H5File::string_attr(const std::string &path,
                                               const std::string &name) const {
    H5Quiet quiet;
    check_attributes(path);
    if (H5Aexists_by_name(id_, h5_path(path).c_str(), name.c_str(), H5P_DEFAULT) <= 0)
        return std::nullopt;
    Handle attr(H5Aopen_by_name(id_, h5_path(path).c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
    if (!attr.ok()) return std::nullopt;
    auto strings = read_strings(attr.get(), size_, [&] { check_vlen(path, name); });
    if (!strings || strings->size() != 1) return std::nullopt;
    return strings->front();
}

std::optional<std::vector<std::string>> H5File::string_list_attr(const std::string &path,
                                                                 const std::string &name) const {
    H5Quiet quiet;
    check_attributes(path);
    auto read_one = [&](const std::string &attr_name) -> std::optional<std::vector<std::string>> {
        if (H5Aexists_by_name(id_, h5_path(path).c_str(), attr_name.c_str(), H5P_DEFAULT) <= 0)
            return std::nullopt;
        Handle attr(H5Aopen_by_name(id_, h5_path(path).c_str(), attr_name.c_str(), H5P_DEFAULT,
                                    H5P_DEFAULT),
                    H5Aclose);
        if (!attr.ok()) return std::nullopt;
        if (auto strings = read_strings(attr.get(), size_, [&] { check_vlen(path, attr_name); }))
            return strings;
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

void H5File::check_attributes(const std::string &path) const {
    // An object the tree does not hold has no attributes for libhdf5 to decode.
    if (!has_group(path) && !has_dataset(path)) return;
    const std::string bad = detail::check_attributes(id_, size_, h5_path(path));
    if (!bad.empty())
        throw Error(label_ + ": the attributes of " + h5_path(path) + ": " + bad +
                    " (file damaged?)");
}

void H5File::check_vlen(const std::string &path, const std::string &name) const {
    const std::string bad = check_vlen_string_attr(id_, size_, h5_path(path), name);
    if (!bad.empty())
        throw Error(label_ + ": attribute '" + name + "' of " + h5_path(path) +
                    " (variable-length strings): " + bad + " (file damaged?)");
}

Shape H5File::dataset_shape(const std::string &path) const {
    H5Quiet quiet;
    if (!has_dataset(path)) throw Error(label_ + ": missing dataset " + h5_path(path));
    if (std::string bad = check_dataset_storage(id_, size_, h5_path(path)); !bad.empty())
        throw Error(label_ + ": dataset " + h5_path(path) + ": " + bad);
    Handle ds(H5Dopen2(id_, h5_path(path).c_str(), H5P_DEFAULT), H5Dclose);
    Handle space(ds.ok() ? H5Dget_space(ds.get()) : -1, H5Sclose);
    const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank < 0) throw Error(label_ + ": cannot read dataset " + h5_path(path));
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
        throw Error(label_ + ": cannot read the dims of dataset " + h5_path(path));
    Shape shape;
    for (hsize_t d : dims) {
        if (d > static_cast<hsize_t>(std::numeric_limits<int64_t>::max()))
            throw Error(label_ + ": dataset " + h5_path(path) + " has a dimension of " +
                        std::to_string(d) + ", beyond any weight's size");
        shape.push_back(static_cast<int64_t>(d));
    }
    return shape;
}

uint64_t H5File::check_stored(const std::string &path) const {
    H5Quiet quiet;
    // At most what deflate (the usual HDF5 filter) can expand data by
    // (about 1032:1), with room for per-chunk checksums.
    constexpr uint64_t kMaxFilterExpansion = 1100;
    const Shape shape = dataset_shape(path);
    const std::string where = label_ + ": dataset " + h5_path(path);
    Handle ds(H5Dopen2(id_, h5_path(path).c_str(), H5P_DEFAULT), H5Dclose);
    Handle type(ds.ok() ? H5Dget_type(ds.get()) : -1, H5Tclose);
    Handle dcpl(ds.ok() ? H5Dget_create_plist(ds.get()) : -1, H5Pclose);
    if (!type.ok() || !dcpl.ok()) throw Error(where + ": cannot read its type and layout");
    const auto count = mhac::detail::element_count(shape);
    const size_t width = H5Tget_size(type.get());
    const auto bytes = count ? mhac::detail::byte_size(*count, width) : std::nullopt;
    const auto floats = count ? mhac::detail::byte_size(*count, sizeof(float)) : std::nullopt;
    if (!bytes || !floats || width == 0)
        throw Error(where + " has shape " + shape_to_string(shape) +
                    ": its size overflows (no file holds that many values)");
    // External data files (and virtual layouts) were refused from the object
    // header by dataset_shape() above, before libhdf5 opened the dataset; the
    // layout check stays for a layout libhdf5 cannot report.
    const H5D_layout_t layout = H5Pget_layout(dcpl.get());
    if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED)
        throw Error(where +
                    " is a virtual dataset (data in other files); mhac reads weights "
                    "stored in the file itself");
    if (*bytes == 0) return 0;
    const bool filtered = layout == H5D_CHUNKED && H5Pget_nfilters(dcpl.get()) > 0;
    const uint64_t stored = H5Dget_storage_size(ds.get());
    H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
    H5Dget_space_status(ds.get(), &status);
    const std::string needs =
        " has shape " + shape_to_string(shape) + " (" + std::to_string(*bytes) + " bytes of data)";
    if (status != H5D_SPACE_STATUS_ALLOCATED || (!filtered && stored < *bytes))
        throw Error(where + needs + " but stores only " + std::to_string(stored) +
                    " bytes: elements left unwritten (sparse) are not weights");
    if (stored > size_ || (!filtered && *bytes > size_) ||
        (filtered && *bytes / kMaxFilterExpansion > stored))
        throw Error(where + needs + " but the file (" + std::to_string(size_) +
                    " bytes) cannot hold it");
    return filtered ? 0 : *bytes;
}

Tensor H5File::read_floats(const std::string &path) const {
    H5Quiet quiet;
    Tensor t;
    check_stored(path);
    t.shape = dataset_shape(path);
    const size_t n =
        static_cast<size_t>(*mhac::detail::element_count(t.shape));  // checked just above
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
