// Checks of HDF5 structures that Debian 12's libhdf5 1.10.8 trusts, made
// from the file's bytes before libhdf5 decodes them. On a corrupt file it
// memcpys what the file claims:
// - H5HG_read copies the size a global heap object claims into a buffer
//   sized by the variable-length string's stored length, and trusts the
//   object's index and the collection's layout
//   (tests/fuzz/regressions/keras_weights/hdf5_vlen_string_overflow.h5);
// - decoding an attribute message (H5Aexists_by_name and H5Aopen_by_name
//   decode all of an object's attributes) reads the name, datatype and
//   dataspace at the sizes the message claims and copies elements x
//   datatype size bytes of data, without checking the message holds them
//   (tests/fuzz/regressions/keras_weights/hdf5_attribute_field_overflow.h5:
//   a dataspace size of 59416 bytes).
// - iterating over an old-style group (H5Literate) or looking a name up in
//   it reads its local heap, B-tree and symbol table nodes at the
//   addresses and sizes they claim (tests/fuzz/regressions/keras_weights/
//   hdf5_local_heap_null_read: a SEGV reading a damaged group's heap).
// - a dataset whose external storage or layout does not hold its data
//   fails H5Dopen2 with an object header left pinned in the metadata
//   cache, so H5Fclose fails and libhdf5's exit handler crashes closing
//   the file again (tests/fuzz/regressions/keras_weights/
//   hdf5_external_pinned_close: an external file slot's offset changed).
// Newer HDF5 checks some of this; mhac does it itself, bounded, for every
// version. Both read the object's header (its attribute messages) through
// HDF5's own sec2 or core driver handle, and, for strings, the global heap
// collections they name, for groups their symbol table; nothing else.
#pragma once

#include <hdf5.h>

#include <string>

namespace mhac::io::detail {

// Empty when every attribute message in the header of the object at `path`
// holds the data its datatype and dataspace claim; otherwise what is wrong.
// Attributes in dense storage (a fractal heap) are not seen.
std::string check_attributes(hid_t file, uint64_t file_size, const std::string &path);

// Empty when every element of attribute `name` of the object at `path` is
// a null string or a string whose heap object exists, lies inside a
// well-formed global heap collection of the file and is exactly the
// string's length; otherwise what is wrong (also when the attribute is in
// dense or shared storage, which this does not read).
std::string check_vlen_string_attr(hid_t file, uint64_t file_size, const std::string &path,
                                   const std::string &name);

// Empty when the dataset at `path` keeps its data in the file (no external
// data files message, not a virtual layout) and its object header can be
// read; otherwise why mhac does not open it (checked before H5Dopen2).
std::string check_dataset_storage(hid_t file, uint64_t file_size, const std::string &path);

// Empty when the group whose object header is at address `header`, if it
// is an old-style group (a symbol table message), has a local heap whose
// data segment and free list lie inside the file and a B-tree whose nodes,
// symbol table nodes, keys and link names are all where libhdf5 will read
// them; otherwise what is wrong. New-style groups (link messages, dense
// link storage) are not read.
std::string check_group(hid_t file, uint64_t file_size, uint64_t header);

}  // namespace mhac::io::detail
