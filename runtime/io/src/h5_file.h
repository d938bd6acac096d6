// A read-only HDF5 file (on disk or held in memory) through the HDF5 C
// library: its object tree, string attributes and float datasets. Every
// failure is an Error naming the file's label and the object.
#pragma once

#include <hdf5.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mhac/mha.h"

namespace mhac::io::detail {

// Silences HDF5's default error printing for its lifetime (our Errors say
// what went wrong) and restores the previous handler afterwards.
class H5Quiet {
public:
    H5Quiet();
    ~H5Quiet();
    H5Quiet(const H5Quiet &) = delete;
    H5Quiet &operator=(const H5Quiet &) = delete;

private:
    H5E_auto2_t func_ = nullptr;
    void *data_ = nullptr;
};

class H5File {
public:
    // `label` names the file in errors (a path, or "x.keras:model.weights.h5").
    static H5File open(const std::string &path);
    // Takes the bytes (HDF5 keeps its own copy; these are freed on return).
    static H5File open_image(std::vector<char> bytes, const std::string &label);
    ~H5File();
    H5File(H5File &&other) noexcept;
    H5File &operator=(H5File &&) = delete;
    H5File(const H5File &) = delete;

    const std::string &label() const { return label_; }

    // Object paths relative to the root, without a leading '/' ("" is the root).
    bool has_group(const std::string &path) const { return groups_.count(path) != 0; }
    bool has_dataset(const std::string &path) const { return datasets_.count(path) != 0; }
    const std::set<std::string> &groups() const { return groups_; }

    // A string attribute of the object at `path` (fixed or variable length);
    // nullopt when absent or not a string; an Error when the object's
    // attributes or the attribute's variable-length strings are damaged.
    std::optional<std::string> string_attr(const std::string &path, const std::string &name) const;
    // A string-array attribute, also in tf-keras's chunked form (name0,
    // name1, ...); an empty non-string array (np.asarray([])) reads as empty.
    std::optional<std::vector<std::string>> string_list_attr(const std::string &path,
                                                             const std::string &name) const;

    // The dataset's dims, read without touching its data; a dim beyond
    // int64 is an Error.
    Shape dataset_shape(const std::string &path) const;
    // Checks, before anything is allocated, that the file really holds the
    // dataset's elements: its element count and byte size fit memory sizes,
    // its storage is inside this file (no external files, no virtual
    // dataset), every element is stored (no sparse chunks left to the fill
    // value), and its bytes fit in the file (compressed data: at most what
    // deflate can expand to). Returns the bytes it occupies uncompressed
    // (0 when compressed), for totals across datasets.
    uint64_t check_stored(const std::string &path) const;
    // float16/32/64 and Keras's bfloat16 (opaque, attr dtype="bfloat16") as
    // float32; check_stored() first.
    Tensor read_floats(const std::string &path) const;

    // The file's size in bytes (the image's for an in-memory file).
    uint64_t size() const { return size_; }

private:
    H5File(hid_t id, std::string label);
    void index();
    // Throw when the attribute messages of `path`, or the variable-length
    // strings of its attribute `name`, are damaged: checked before libhdf5
    // decodes them (h5_checks.h).
    void check_attributes(const std::string &path) const;
    void check_vlen(const std::string &path, const std::string &name) const;

    hid_t id_ = -1;
    std::string label_;
    uint64_t size_ = 0;
    std::set<std::string> groups_, datasets_;
};

}  // namespace mhac::io::detail
