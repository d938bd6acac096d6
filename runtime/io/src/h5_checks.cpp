// The file format parts this reads (HDF5 File Format Specification 3.0):
// object headers version 1 and 2 with their continuation chunks (IV.A.1),
// the attribute and attribute info messages (IV.A.2.m, IV.A.2.v), the
// datatype and dataspace encodings inside an attribute message (IV.A.2.d,
// IV.A.2.b), variable-length string elements (length, heap ID) and global
// heap collections (III.E), and for old-style groups the symbol table
// message (IV.A.2.r), version 1 B-tree nodes (III.A.1), symbol table nodes
// (III.B) and local heaps (III.D). Every size read is checked against what
// holds it before it is used.
#include "h5_checks.h"

#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "checked_math.h"

namespace mhac::io::detail {
namespace {

using mhac::detail::checked_add;
using mhac::detail::checked_mul;
using Buf = std::vector<uint8_t>;

constexpr uint64_t kMaxChunk = uint64_t{16} << 20;       // one object header chunk
constexpr uint64_t kMaxCollection = uint64_t{64} << 20;  // one global heap collection
constexpr int kMaxChunks = 256;                          // chunks of one object header
constexpr uint64_t kMaxLocalHeap = uint64_t{64} << 20;   // one group's link names
constexpr size_t kMaxGroupNodes = size_t{1} << 16;       // B-tree and symbol nodes of one group
constexpr uint16_t kContinuation = 0x10, kAttribute = 0x0C, kAttributeInfo = 0x15,
                   kSymbolTable = 0x11, kExternalFiles = 0x07, kLayout = 0x08;
constexpr int kVirtualLayout = 3;  // data layout class of a virtual dataset

uint64_t le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= uint64_t{p[i]} << (8 * i);
    return v;
}

uint64_t align8(uint64_t n) {
    return (n + 7) / 8 * 8;
}

// The file's bytes, read through the handle of HDF5's own driver (a file
// descriptor for sec2, the image for core), at HDF5 addresses.
class Bytes {
public:
    Bytes(hid_t file, uint64_t size) : size_(size) {
        const hid_t fapl = H5Fget_access_plist(file), fcpl = H5Fget_create_plist(file);
        size_t offsets = 0, lengths = 0;
        hsize_t userblock = 0;
        void *handle = nullptr;
        if (fapl >= 0 && fcpl >= 0 && H5Pget_sizes(fcpl, &offsets, &lengths) >= 0 &&
            H5Pget_userblock(fcpl, &userblock) >= 0 &&
            H5Pget_sym_k(fcpl, &tree_k_, &leaf_k_) >= 0 &&
            H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle) {
            const hid_t driver = H5Pget_driver(fapl);
            if (driver == H5FD_SEC2) fd_ = *static_cast<int *>(handle);
            if (driver == H5FD_CORE) mem_ = *static_cast<const uint8_t **>(handle);
        }
        if (fapl >= 0) H5Pclose(fapl);
        if (fcpl >= 0) H5Pclose(fcpl);
        offsets_ = static_cast<unsigned>(offsets);
        lengths_ = static_cast<unsigned>(lengths);
        base_ = userblock;
    }
    bool ok() const {
        return (fd_ >= 0 || mem_) && offsets_ >= 2 && offsets_ <= 8 && lengths_ >= 2 &&
               lengths_ <= 8 && tree_k_ >= 1 && leaf_k_ >= 1;
    }
    unsigned offsets() const { return offsets_; }
    unsigned lengths() const { return lengths_; }
    // Half the entries of a group's B-tree node and of a symbol table node,
    // from the superblock: libhdf5 sizes the nodes it reads by them.
    uint64_t tree_k() const { return tree_k_; }
    uint64_t leaf_k() const { return leaf_k_; }
    // `n` bytes at address `addr`; false when they are not all in the file.
    bool read(uint64_t addr, uint64_t n, Buf &out) const {
        const auto start = checked_add(base_, addr);
        const auto end = start ? checked_add(*start, n) : std::nullopt;
        if (!end || *end > size_) return false;
        out.resize(static_cast<size_t>(n));
        if (mem_) {
            if (n) std::memcpy(out.data(), mem_ + *start, out.size());
            return true;
        }
        for (size_t done = 0; done < out.size();) {
            const ssize_t got =
                pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(*start + done));
            if (got <= 0) return false;
            done += static_cast<size_t>(got);
        }
        return true;
    }

private:
    uint64_t size_, base_ = 0;
    unsigned offsets_ = 0, lengths_ = 0, tree_k_ = 0, leaf_k_ = 0;
    int fd_ = -1;
    const uint8_t *mem_ = nullptr;
};

// What the walk over an object header's messages found.
struct Search {
    std::vector<std::pair<uint64_t, uint64_t>> pending;  // continuation chunks
    std::set<uint64_t> seen;                             // chunk addresses
    std::vector<Buf> attributes;                         // attribute messages
    std::vector<Buf> symbol_tables;                      // old-style group messages
    bool external = false;                               // an external data files message
    int layout_class = -1;                               // of the data layout message
    bool elsewhere = false;                              // dense or shared attributes
};

// The layout of an attribute message: where its name, datatype, dataspace
// and data start; nullopt when the fields do not fit the message.
struct AttrLayout {
    uint64_t name = 0, name_size = 0, type = 0, type_size = 0, space = 0, space_size = 0, data = 0;
};

std::optional<AttrLayout> attr_layout(const Buf &m) {
    if (m.size() < 8 || m[0] < 1 || m[0] > 3) return std::nullopt;
    AttrLayout a;
    a.name_size = le(&m[2], 2);
    a.type_size = le(&m[4], 2);
    a.space_size = le(&m[6], 2);
    const bool padded = m[0] == 1;
    auto span = [&](uint64_t n) { return padded ? align8(n) : n; };
    a.name = m[0] == 3 ? 9 : 8;
    a.type = a.name + span(a.name_size);
    a.space = a.type + span(a.type_size);
    a.data = a.space + span(a.space_size);
    if (a.data > m.size() || a.name_size == 0) return std::nullopt;
    return a;
}

bool attr_named(const Buf &m, const std::string &name) {
    const auto a = attr_layout(m);
    return a && a->name_size == name.size() + 1 && m[a->name + name.size()] == 0 &&
           std::memcmp(&m[a->name], name.data(), name.size()) == 0;
}

// One message of a header chunk.
void visit(const Bytes &bytes, uint16_t type, uint8_t flags, const uint8_t *data, uint64_t size,
           Search &s) {
    const unsigned o = bytes.offsets(), l = bytes.lengths();
    if (type == kContinuation && size >= o + l) {
        s.pending.emplace_back(le(data, o), le(data + o, l));
    } else if (type == kAttributeInfo && size >= 2) {
        // Dense storage: a fractal heap address that is defined.
        const uint64_t at = (data[1] & 1) ? 4 : 2;
        if (size >= at + o &&
            le(data + at, o) != (o == 8 ? ~uint64_t{0} : (uint64_t{1} << 8 * o) - 1))
            s.elsewhere = true;
    } else if (type == kAttribute && (flags & 0x02)) {
        s.elsewhere = true;  // a shared message: its body is in another table
    } else if (type == kAttribute) {
        s.attributes.emplace_back(data, data + size);
    } else if (type == kSymbolTable) {
        s.symbol_tables.emplace_back(data, data + size);
    } else if (type == kExternalFiles) {
        s.external = true;
    } else if (type == kLayout && size >= 3) {
        s.layout_class = data[0] >= 3 ? data[1] : data[2];  // versions 1-2: after the rank
    }
}

// The messages of one chunk, [begin, end) of `c`; false when one runs past it.
bool walk(const Bytes &bytes, const Buf &c, uint64_t begin, uint64_t end, int version,
          bool creation_order, Search &s) {
    const uint64_t head = version == 1 ? 8 : (creation_order ? 6 : 4);
    uint64_t p = begin;
    while (p + head <= end) {
        const uint16_t type = version == 1 ? static_cast<uint16_t>(le(&c[p], 2)) : c[p];
        const uint64_t size = le(&c[p + (version == 1 ? 2 : 1)], 2);
        const uint8_t flags = c[p + (version == 1 ? 4 : 3)];
        if (size > end - p - head) return false;
        visit(bytes, type, flags, &c[p + head], size, s);
        p += head + size;
    }
    return true;
}

// Version 2 prefix: the first message's offset and chunk 0's size.
std::optional<std::pair<uint64_t, uint64_t>> v2_prefix(const Buf &c) {
    if (c.size() < 7 || c[4] != 2) return std::nullopt;
    const uint8_t flags = c[5];
    uint64_t p = 6 + ((flags & 0x20) ? 16 : 0) + ((flags & 0x10) ? 4 : 0);
    const unsigned width = 1u << (flags & 0x03);
    if (p + width > c.size()) return std::nullopt;
    const uint64_t size = le(&c[p], width);
    return std::make_pair(p + width, size);
}

// Collects the attribute messages of the object header at `addr`,
// following its continuation chunks.
std::string read_header(const Bytes &bytes, uint64_t addr, Search &s) {
    Buf c;
    if (!bytes.read(addr, 16, c)) return "its object header lies outside the file";
    const bool v2 = std::memcmp(c.data(), "OHDR", 4) == 0;
    if (!v2 && c[0] != 1) return "its object header has an unknown version";
    bool creation_order = false;
    uint64_t first = 16, size = le(&c[8], 4);
    if (v2) {
        if (!bytes.read(addr, 40, c) && !bytes.read(addr, 16, c)) return "truncated object header";
        const auto prefix = v2_prefix(c);
        if (!prefix) return "its object header is damaged";
        creation_order = (c[5] & 0x04) != 0;
        std::tie(first, size) = *prefix;
    }
    const auto total = checked_add(first, size);
    if (!total || size > kMaxChunk || !bytes.read(addr, *total, c))
        return "its object header runs past the file";
    if (!walk(bytes, c, first, *total, v2 ? 2 : 1, creation_order, s))
        return "a message of its object header runs past its chunk";
    for (int n = 0; !s.pending.empty() && n < kMaxChunks; n++) {
        const auto [at, len] = s.pending.back();
        s.pending.pop_back();
        if (!s.seen.insert(at).second) return "its object header chunks form a loop";
        if (len > kMaxChunk || len < (v2 ? 8 : 0) || !bytes.read(at, len, c))
            return "a continuation of its object header runs past the file";
        if (v2 && std::memcmp(c.data(), "OCHK", 4) != 0)
            return "a continuation of its object header is damaged";
        if (!walk(bytes, c, v2 ? 4 : 0, v2 ? len - 4 : len, v2 ? 2 : 1, creation_order, s))
            return "a message of its object header runs past its chunk";
    }
    if (!s.pending.empty()) return "its object header has too many chunks";
    return "";
}

// The number of elements of an attribute message's dataspace.
std::optional<uint64_t> element_count(const Buf &m, const AttrLayout &a, unsigned lengths) {
    if (a.space_size < 4 || a.space + a.space_size > m.size()) return std::nullopt;
    const uint8_t *d = &m[a.space];
    const unsigned version = d[0], rank = d[1];
    if (version == 2 && d[3] == 2) return 0;  // null dataspace
    const uint64_t dims = version == 1 ? 8 : 4;
    if ((version != 1 && version != 2) || rank > 32 ||
        dims + uint64_t{rank} * lengths > a.space_size)
        return std::nullopt;
    std::optional<uint64_t> n = 1;
    for (unsigned i = 0; i < rank && n; i++)
        n = checked_mul(*n, le(d + dims + i * lengths, lengths));
    return n;
}

// The objects of the global heap collection at `addr`, index to size, as
// libhdf5 reads them; an error when any object does not fit the collection.
std::string read_collection(const Bytes &bytes, uint64_t addr, std::map<uint64_t, uint64_t> &out) {
    const unsigned l = bytes.lengths();
    const uint64_t head = align8(8 + l), object_head = align8(8 + l);
    Buf c;
    if (!bytes.read(addr, head, c) || std::memcmp(c.data(), "GCOL", 4) != 0 || c[4] != 1)
        return "a string's global heap collection is missing or damaged";
    const uint64_t size = le(&c[8], l);
    if (size < head || size > kMaxCollection || !bytes.read(addr, size, c))
        return "a global heap collection claims " + std::to_string(size) +
               " bytes, more than the file holds";
    for (uint64_t p = head; p + object_head <= size;) {
        const uint64_t index = le(&c[p], 2), object = le(&c[p + 8], l);
        const uint64_t need = index ? object_head + align8(object) : object;
        if (object > size || need == 0 || need > size - p)
            return "global heap object " + std::to_string(index) + " claims " +
                   std::to_string(object) + " bytes, past the end of its collection";
        if (index && !out.emplace(index, object).second)
            return "global heap object " + std::to_string(index) + " appears twice";
        p += need;
    }
    return "";
}

// Every element: null, or a heap object of exactly the string's length.
std::string check_elements(const Bytes &bytes, const Buf &m, const AttrLayout &a, uint64_t n) {
    const unsigned o = bytes.offsets();
    const uint64_t width = 4 + o + 4;
    if (auto total = checked_mul(n, width); !total || *total > m.size() - a.data)
        return "its " + std::to_string(n) + " strings do not fit its message";
    std::map<uint64_t, std::map<uint64_t, uint64_t>> collections;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e = &m[a.data + i * width];
        const uint64_t length = le(e, 4), heap = le(e + 4, o), index = le(e + 4 + o, 4);
        if (heap == 0) continue;  // a null string
        auto it = collections.find(heap);
        if (it == collections.end()) {
            it = collections.emplace(heap, std::map<uint64_t, uint64_t>{}).first;
            if (std::string bad = read_collection(bytes, heap, it->second); !bad.empty())
                return bad;
        }
        const auto object = it->second.find(index);
        if (object == it->second.end())
            return "string " + std::to_string(i) + " names global heap object " +
                   std::to_string(index) + ", which its collection does not hold";
        if (object->second != length)
            return "string " + std::to_string(i) + " is " + std::to_string(length) +
                   " bytes long but its heap object holds " + std::to_string(object->second);
    }
    return "";
}

// The messages of the object header at `addr` that Search collects, or why
// they cannot be read.
std::string read_object_header(const Bytes &bytes, uint64_t addr, Search &s) {
    if (!bytes.ok()) return "its file cannot be read for checking (unknown HDF5 driver or sizes)";
    return read_header(bytes, addr, s);
}

// The same for the object at `path`.
std::string read_object_header(const Bytes &bytes, hid_t file, const std::string &path, Search &s) {
    H5O_info_t info;
    if (H5Oget_info_by_name2(file, path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return "its object cannot be found";
    return read_object_header(bytes, info.addr, s);
}

// The bytes of an element of the message's datatype, as libhdf5 1.10 sizes
// it (a variable-length element on disk: length, heap address, index).
std::optional<uint64_t> element_size(const Buf &m, const AttrLayout &a, unsigned offsets) {
    if ((m[0] > 1 && (m[1] & 0x03)) || a.type_size < 8 || a.type + a.type_size > m.size())
        return std::nullopt;  // shared (another table's) or damaged
    const uint8_t *t = &m[a.type];
    return (t[0] & 0x0f) == 9 ? 8 + offsets : le(t + 4, 4);
}

// A local heap's data segment holds a name at `offset`: inside it, with
// its terminating NUL.
bool heap_name(const Buf &heap, uint64_t offset) {
    return offset < heap.size() &&
           std::memchr(&heap[offset], 0, static_cast<size_t>(heap.size() - offset)) != nullptr;
}

// The data segment of the local heap at `addr`, with its free list checked
// as libhdf5 walks it (it reads two lengths at each free block's offset
// and follows them without remembering where it has been).
std::string read_local_heap(const Bytes &bytes, uint64_t addr, Buf &heap) {
    constexpr uint64_t kFreeListEnd = 1;  // H5HL_FREE_NULL
    const unsigned o = bytes.offsets(), l = bytes.lengths();
    Buf prefix;
    if (!bytes.read(addr, 8 + 2 * l + o, prefix) || std::memcmp(prefix.data(), "HEAP", 4) != 0 ||
        prefix[4] != 0)
        return "its local heap is missing or damaged";
    const uint64_t size = le(&prefix[8], l), free = le(&prefix[8 + l], l);
    const uint64_t data = le(&prefix[8 + 2 * l], o);
    if (size == 0 || size > kMaxLocalHeap || !bytes.read(data, size, heap))
        return "its local heap claims " + std::to_string(size) + " bytes at address " +
               std::to_string(data) + ", outside the file";
    std::set<uint64_t> seen;
    for (uint64_t at = free; at != kFreeListEnd;) {
        if (at >= size || 2 * l > size - at || !seen.insert(at).second)
            return "its local heap's free list is damaged";
        const uint64_t block = le(&heap[at + l], l);
        if (block < 2 * l || block > size - at) return "its local heap's free list is damaged";
        at = le(&heap[at], l);
    }
    return "";
}

// The nodes of one group's B-tree and the symbol table nodes it points to,
// as libhdf5 reads them to iterate over the group or look a name up.
struct GroupTree {
    const Bytes &bytes;
    const Buf &heap;
    std::set<uint64_t> seen;
};

std::string read_symbol_node(GroupTree &t, uint64_t addr) {
    const unsigned o = t.bytes.offsets();
    const uint64_t entry = 2 * o + 24, capacity = 2 * t.bytes.leaf_k();
    Buf n;
    if (!t.bytes.read(addr, 8 + capacity * entry, n) || std::memcmp(n.data(), "SNOD", 4) != 0 ||
        n[4] != 1)
        return "a symbol table node of it is missing or damaged";
    const uint64_t symbols = le(&n[6], 2);
    if (symbols > capacity)
        return "a symbol table node of it claims " + std::to_string(symbols) +
               " links, more than its " + std::to_string(capacity);
    for (uint64_t i = 0; i < symbols; i++)
        if (!heap_name(t.heap, le(&n[8 + i * entry], o)))
            return "a link name lies outside its local heap";
    return "";
}

// The B-tree node at `addr`; `level` is what its parent expects (-1: root).
std::string read_tree_node(GroupTree &t, uint64_t addr, int level) {
    const unsigned o = t.bytes.offsets(), l = t.bytes.lengths();
    const uint64_t capacity = 2 * t.bytes.tree_k();
    if (!t.seen.insert(addr).second || t.seen.size() > kMaxGroupNodes)
        return "its B-tree nodes form a loop or are too many";
    Buf n;
    if (!t.bytes.read(addr, 8 + 2 * o + capacity * o + (capacity + 1) * l, n) ||
        std::memcmp(n.data(), "TREE", 4) != 0 || n[4] != 0)
        return "a node of its B-tree is missing or damaged";
    const int node_level = n[5];
    const uint64_t entries = le(&n[6], 2);
    if (entries > capacity || (level >= 0 && node_level != level))
        return "a node of its B-tree is damaged";
    for (uint64_t i = 0, p = 8 + 2 * o;; i++) {
        // Keys are the names a lookup compares with.
        if (!heap_name(t.heap, le(&n[p], l)))
            return "a key of its B-tree lies outside its local heap";
        if (i == entries) return "";
        const uint64_t child = le(&n[p + l], o);
        p += l + o;
        const std::string bad =
            node_level > 0 ? read_tree_node(t, child, node_level - 1) : read_symbol_node(t, child);
        if (!bad.empty()) return bad;
    }
}

}  // namespace

std::string check_attributes(hid_t file, uint64_t file_size, const std::string &path) {
    const Bytes bytes(file, file_size);
    Search s;
    if (std::string bad = read_object_header(bytes, file, path, s); !bad.empty()) return bad;
    for (size_t i = 0; i < s.attributes.size(); i++) {
        const Buf &m = s.attributes[i];
        const std::string which = "attribute message " + std::to_string(i) + " ";
        const auto a = attr_layout(m);
        if (!a) return which + "has fields past its end";
        const auto width = element_size(m, *a, bytes.offsets());
        const auto n = element_count(m, *a, bytes.lengths());
        if (!width || !n) return which + "has a damaged or shared datatype or dataspace";
        const auto data = checked_mul(*n, *width);
        if (!data || *data > m.size() - a->data)
            return which + "claims " + std::to_string(*n) + " elements of " +
                   std::to_string(*width) + " bytes, more than it holds";
    }
    return "";
}

std::string check_vlen_string_attr(hid_t file, uint64_t file_size, const std::string &path,
                                   const std::string &name) {
    const Bytes bytes(file, file_size);
    Search s;
    if (std::string bad = read_object_header(bytes, file, path, s); !bad.empty()) return bad;
    const Buf *found = nullptr;
    for (const Buf &m : s.attributes)
        if (attr_named(m, name)) found = &m;
    if (!found)
        return s.elsewhere ? "it is stored outside its object header (dense or shared attribute "
                             "storage), which mhac cannot check"
                           : "its message is not in its object header";
    const Buf &m = *found;
    const AttrLayout a = *attr_layout(m);  // attr_named() parsed it
    if (m[0] > 1 && (m[1] & 0x03)) return "its datatype or dataspace is shared";
    if (a.type_size < 16 || a.type + a.type_size > m.size()) return "its datatype is damaged";
    const uint8_t *t = &m[a.type];
    if ((t[0] & 0x0f) != 9 || (t[1] & 0x0f) != 1 || le(t + 4, 4) != 8 + bytes.offsets() ||
        le(t + 12, 4) != 1)
        return "its datatype is not a variable-length string of bytes";
    const auto n = element_count(m, a, bytes.lengths());
    if (!n) return "its dataspace is damaged";
    return check_elements(bytes, m, a, *n);
}

std::string check_dataset_storage(hid_t file, uint64_t file_size, const std::string &path) {
    const Bytes bytes(file, file_size);
    Search s;
    if (std::string bad = read_object_header(bytes, file, path, s); !bad.empty())
        return bad + " (file damaged?)";
    if (s.external)
        return "it keeps its data in external files; mhac reads weights stored in the file itself";
    if (s.layout_class == kVirtualLayout)
        return "it is a virtual dataset (data in other files); mhac reads weights stored in the "
               "file itself";
    return "";
}

std::string check_group(hid_t file, uint64_t file_size, uint64_t header) {
    const Bytes bytes(file, file_size);
    Search s;
    if (std::string bad = read_object_header(bytes, header, s); !bad.empty()) return bad;
    const unsigned o = bytes.offsets();
    for (const Buf &m : s.symbol_tables) {
        if (m.size() < 2 * o) return "its symbol table message is damaged";
        Buf heap;
        if (std::string bad = read_local_heap(bytes, le(&m[o], o), heap); !bad.empty()) return bad;
        GroupTree tree{bytes, heap, {}};
        if (std::string bad = read_tree_node(tree, le(&m[0], o), -1); !bad.empty()) return bad;
    }
    return "";
}

}  // namespace mhac::io::detail
