// Keras weight files written by Keras 3.15 (data/, see data/make_io_data.py):
// .keras archives, .weights.h5 in every layout we know, TF-era .h5, and the
// errors for malformed or mismatched files.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

namespace fs = std::filesystem;

std::string data(const std::string &name) {
    return std::string(MHAC_IO_TEST_DATA) + "/" + name;
}

// A scratch folder removed at the end of each test.
class KerasFiles : public testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("mhac_io_" + std::to_string(::getpid()) + "_" +
                testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string &name, const std::string &text) {
        const std::string path = (dir_ / name).string();
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }

    fs::path dir_;
};

// What make_io_data.py stored: +-(seed + i + (j % 16) / 16), negative for odd j.
std::vector<float> expected_values(int seed, int i, size_t n) {
    std::vector<float> v(n);
    for (size_t j = 0; j < n; j++) {
        const double x = seed + i + static_cast<double>(j % 16) / 16.0;
        v[j] = static_cast<float>(j % 2 ? -x : x);
    }
    return v;
}

// Checks shapes (get_weights() order) and the generator's values.
void expect_weights(const LoadedLayer &layer, const std::vector<Shape> &shapes, int seed) {
    ASSERT_EQ(layer.weights.size(), shapes.size()) << layer.source;
    for (size_t i = 0; i < shapes.size(); i++) {
        EXPECT_EQ(layer.weights[i].shape, shapes[i]) << "weight " << i << " of " << layer.source;
        EXPECT_EQ(layer.weights[i].data,
                  expected_values(seed, static_cast<int>(i), layer.weights[i].data.size()))
            << "weight " << i << " of " << layer.source;
    }
}

// basic.*: N=2, H=3, query [B,4,5], value [B,6,7].
const std::vector<Shape> kBasic = {{5, 2, 3}, {2, 3}, {7, 2, 3}, {2, 3},
                                   {7, 2, 3}, {2, 3}, {2, 3, 5}, {5}};
// two_mha.* cross_attn: N=3, H=2, Hv=4, output_shape (3, 2), query [B,3,4],
// key [B,5,6], value [B,5,2].
const std::vector<Shape> kCross = {{4, 3, 2}, {3, 2}, {6, 3, 2},    {3, 2},
                                   {2, 3, 4}, {3, 4}, {3, 4, 3, 2}, {3, 2}};
// two_mha.* self_attn: N=2, H=3, no biases, query = value = [B,3,4].
const std::vector<Shape> kSelf = {{4, 2, 3}, {4, 2, 3}, {4, 2, 3}, {2, 3, 4}};

template <typename Fn>
std::string error_of(Fn fn) {
    try {
        fn();
    } catch (const Error &e) {
        return e.what();
    }
    return "";
}

#define EXPECT_CONTAINS(text, part) \
    EXPECT_NE(std::string(text).find(part), std::string::npos) << "message: " << (text)

TEST_F(KerasFiles, ArchiveWithOneLayer) {
    const LoadedLayer l = load_keras_archive(data("basic.keras"));
    EXPECT_EQ(l.name, "attn");
    EXPECT_EQ(l.config.num_heads, 2);
    EXPECT_EQ(l.config.key_dim, 3);
    EXPECT_EQ(l.config.value_dim, 3);
    EXPECT_EQ(l.config.attention_axes, std::vector<int>{1});
    EXPECT_EQ(l.query_shape, (Shape{-1, 4, 5}));
    EXPECT_EQ(l.value_shape, (Shape{-1, 6, 7}));
    EXPECT_TRUE(l.key_shape.empty());
    EXPECT_CONTAINS(l.source, "basic.keras");
    EXPECT_CONTAINS(l.source, "layers/multi_head_attention");
    expect_weights(l, kBasic, 0);

    const KerasWeights w = l.keras_weights();
    EXPECT_EQ(w.query_kernel.data, l.weights[0].data.data());
    EXPECT_EQ(w.key_bias.data, l.weights[3].data.data());
    EXPECT_EQ(w.output_bias.shape, (Shape{5}));
    // Its own name picks it too.
    EXPECT_EQ(load_keras_archive(data("basic.keras"), "attn").weights.size(), 8u);
}

TEST_F(KerasFiles, ArchiveWithTwoLayersNeedsAName) {
    const std::string e = error_of([] { load_keras_archive(data("two_mha.keras")); });
    EXPECT_CONTAINS(e, "'self_attn'");
    EXPECT_CONTAINS(e, "'cross_attn'");
    EXPECT_CONTAINS(e, "layer_name");

    const LoadedLayer cross = load_keras_archive(data("two_mha.keras"), "cross_attn");
    EXPECT_EQ(cross.name, "cross_attn");
    EXPECT_EQ(cross.config.num_heads, 3);
    EXPECT_EQ(cross.config.value_dim, 4);
    EXPECT_EQ(cross.config.output_shape, (Shape{3, 2}));
    EXPECT_FLOAT_EQ(cross.config.dropout, 0.25f);
    EXPECT_EQ(cross.key_shape, (Shape{-1, 5, 6}));
    EXPECT_CONTAINS(cross.source, "layers/multi_head_attention_1");
    expect_weights(cross, kCross, 8);

    const LoadedLayer self = load_keras_archive(data("two_mha.keras"), "self_attn");
    EXPECT_FALSE(self.config.use_bias);
    expect_weights(self, kSelf, 0);
    const KerasWeights w = self.keras_weights();
    EXPECT_EQ(w.value_kernel.data, self.weights[2].data.data());
    EXPECT_EQ(w.value_bias.data, nullptr);
    EXPECT_EQ(w.output_kernel.shape, (Shape{2, 3, 4}));
}

TEST_F(KerasFiles, ArchiveUnknownNameListsTheLayers) {
    const std::string e = error_of([] { load_keras_archive(data("two_mha.keras"), "nope"); });
    EXPECT_CONTAINS(e, "'nope'");
    EXPECT_CONTAINS(e, "'self_attn', 'cross_attn'");
    const std::string one = error_of([] { load_keras_archive(data("basic.keras"), "nope"); });
    EXPECT_CONTAINS(one, "'attn'");
}

TEST_F(KerasFiles, ArchiveSavedAsFolder) {
    // model.save(..., zipped=False) writes the same entries into a folder.
    fs::copy_file(data("two_mha.model.json"), dir_ / "config.json");
    fs::copy_file(data("two_mha.weights.h5"), dir_ / "model.weights.h5");
    expect_weights(load_keras_archive(dir_.string(), "cross_attn"), kCross, 8);
}

TEST_F(KerasFiles, WeightsH5WithLayerConfig) {
    const LoadedLayer l =
        load_weights_with_config(data("basic.weights.h5"), data("basic.config.json"));
    EXPECT_EQ(l.name, "attn");
    EXPECT_TRUE(l.query_shape.empty());  // get_config() has no build shapes
    expect_weights(l, kBasic, 0);
}

// A copy of `source` in `dir` that libhdf5 itself then edits.
std::string edited_copy(const fs::path &dir, const std::string &source,
                        const std::function<void(hid_t)> &edit) {
    const fs::path path = dir / fs::path(source).filename();
    fs::copy_file(source, path);
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    EXPECT_GE(file, 0);
    edit(file);
    H5Fclose(file);
    return path.string();
}

TEST_F(KerasFiles, WeightsH5WithAGroupLinkedToItsAncestorLoads) {
    // A hard link back to the root: the tree walk enters every object once.
    const std::string path = edited_copy(dir_, data("basic.weights.h5"), [](hid_t file) {
        EXPECT_GE(H5Lcreate_hard(file, "/", file, "/back_to_root", H5P_DEFAULT, H5P_DEFAULT), 0);
    });
    expect_weights(load_weights_with_config(path, data("basic.config.json")), kBasic, 0);
}

TEST_F(KerasFiles, WeightsH5NestedTooDeepIsAnError) {
    const std::string path = edited_copy(dir_, data("basic.weights.h5"), [](hid_t file) {
        hid_t group = H5Gcreate2(file, "deep", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        for (int depth = 2; depth <= 65; depth++) {
            const hid_t child = H5Gcreate2(group, "deep", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            H5Gclose(group);
            group = child;
        }
        H5Gclose(group);
    });
    EXPECT_CONTAINS(error_of([&] { load_weights_with_config(path, data("basic.config.json")); }),
                    "groups nested deeper than 64");
}

TEST_F(KerasFiles, WeightsH5OfABareLayer) {
    const LoadedLayer l =
        load_weights_with_config(data("bare.weights.h5"), data("basic.config.json"));
    EXPECT_CONTAINS(l.source, "bare.weights.h5:/");
    expect_weights(l, kBasic, 0);
}

TEST_F(KerasFiles, WeightsH5FromKeras30PrivateNames) {
    // Keras 3.0.0: _query_dense ... and no `name` attributes.
    expect_weights(load_weights_with_config(data("keras30.weights.h5"), data("basic.config.json")),
                   kBasic, 0);
}

TEST_F(KerasFiles, WeightsH5NestedInACustomLayer) {
    const LoadedLayer l =
        load_weights_with_config(data("nested.weights.h5"), data("inner.config.json"));
    EXPECT_EQ(l.name, "inner");
    EXPECT_CONTAINS(l.source, "layers/block/attn");
    expect_weights(l, {{3, 1, 2}, {1, 2}, {3, 1, 2}, {1, 2}, {3, 1, 2}, {1, 2}, {1, 2, 3}, {3}}, 0);
}

TEST_F(KerasFiles, WeightsH5PicksTheLayerByItsNameAttribute) {
    // The config's own name picks the group whose vars/@name matches.
    const LoadedLayer l =
        load_weights_with_config(data("two_mha.weights.h5"), data("cross_attn.config.json"));
    EXPECT_EQ(l.name, "cross_attn");
    EXPECT_EQ(l.key_shape, (Shape{-1, 5, 6}));  // the serialized form's build_config
    expect_weights(l, kCross, 8);
}

TEST_F(KerasFiles, WeightsH5WithoutNamesUsesTheModelLayerOrder) {
    // No `name` attributes: the model config's layer list maps names to
    // multi_head_attention, multi_head_attention_1.
    expect_weights(load_weights_with_config(data("two_mha_noattr.weights.h5"),
                                            data("two_mha.model.json"), "cross_attn"),
                   kCross, 8);
    expect_weights(load_weights_with_config(data("two_mha_noattr.weights.h5"),
                                            data("two_mha.model.json"), "self_attn"),
                   kSelf, 0);
}

TEST_F(KerasFiles, WeightsH5WithoutNamesIsAmbiguous) {
    const std::string e = error_of([] {
        load_weights_with_config(data("two_mha_noattr.weights.h5"), data("cross_attn.config.json"));
    });
    EXPECT_CONTAINS(e, "two_mha_noattr.weights.h5");
    EXPECT_CONTAINS(e, "'cross_attn'");
    EXPECT_CONTAINS(e, "layers/multi_head_attention, layers/multi_head_attention_1");
    // The group's key picks it.
    expect_weights(
        load_weights_with_config(data("two_mha_noattr.weights.h5"), data("cross_attn.config.json"),
                                 "multi_head_attention_1"),
        kCross, 8);
}

TEST_F(KerasFiles, WeightDtypesConvertToFloat32) {
    const std::string config = write("c.json", R"({"name": "attn", "num_heads": 2, "key_dim": 2})");
    const std::vector<Shape> shapes = {{4, 2, 2}, {2, 2}, {4, 2, 2}, {2, 2},
                                       {4, 2, 2}, {2, 2}, {2, 2, 4}, {4}};
    for (const char *file : {"float64.weights.h5", "float16.weights.h5", "bfloat16.weights.h5"}) {
        SCOPED_TRACE(file);
        expect_weights(load_weights_with_config(data(file), config), shapes, 0);
    }
}

TEST_F(KerasFiles, GatedLayer) {
    // get_weights() order query, key, gate, value, output (no biases here).
    const LoadedLayer l =
        load_weights_with_config(data("gate.weights.h5"), data("gate.config.json"));
    EXPECT_TRUE(l.config.use_gate);
    EXPECT_FALSE(l.config.use_bias);
    expect_weights(l, {{4, 2, 2}, {6, 2, 2}, {4, 2, 3}, {6, 2, 3}, {2, 3, 4}}, 0);
    const KerasWeights w = l.keras_weights();
    EXPECT_EQ(w.gate_kernel.data, l.weights[2].data.data());
    EXPECT_EQ(w.value_kernel.data, l.weights[3].data.data());

    // The gate must agree with use_gate both ways.
    const std::string no_gate =
        write("ng.json", R"({"name": "gated", "num_heads": 2, "key_dim": 2, "value_dim": 3,
                       "use_bias": false})");
    EXPECT_CONTAINS(error_of([&] { load_weights_with_config(data("gate.weights.h5"), no_gate); }),
                    "/_gate_dense/vars/0 (gate kernel) is present");
    const std::string gated =
        write("g.json", R"({"name": "attn", "num_heads": 2, "key_dim": 3, "use_gate": true})");
    EXPECT_CONTAINS(error_of([&] { load_weights_with_config(data("basic.weights.h5"), gated); }),
                    "no gate weights under /layers/multi_head_attention");
}

TEST_F(KerasFiles, TfEraH5) {
    // tf.keras save_weights("x.h5"): /mha/mha/query/kernel:0 ...
    const LoadedLayer l =
        load_weights_with_config(data("tf_era.h5"), data("tf_era_mha.config.json"));
    EXPECT_EQ(l.name, "mha");
    EXPECT_CONTAINS(l.source, "tf_era.h5:/mha/mha");
    expect_weights(l, kBasic, 0);
}

TEST_F(KerasFiles, TfEraH5NestedLayer) {
    // /block/block/inner_mha/query/kernel:0, picked by the MHA's or the block's name.
    const std::string config =
        write("inner.json", R"({"name": "inner_mha", "num_heads": 1, "key_dim": 2})");
    const std::vector<Shape> shapes = {{3, 1, 2}, {1, 2}, {3, 1, 2}, {1, 2},
                                       {3, 1, 2}, {1, 2}, {1, 2, 3}, {3}};
    expect_weights(load_weights_with_config(data("tf_era.h5"), config), shapes, 8);
    expect_weights(load_weights_with_config(data("tf_era.h5"), config, "block"), shapes, 8);
    const std::string e =
        error_of([&] { load_weights_with_config(data("tf_era.h5"), config, "nope"); });
    EXPECT_CONTAINS(e, "'nope'");
    EXPECT_CONTAINS(e, "mha (mha/mha)");
    EXPECT_CONTAINS(e, "inner_mha (block/block/inner_mha)");
}

TEST_F(KerasFiles, Keras3LegacyWholeModelH5) {
    // Keras 3 model.save("x.h5"): model_weights/attn/attn/query/kernel ...
    const LoadedLayer l =
        load_weights_with_config(data("legacy_keras3.h5"), data("basic.config.json"));
    EXPECT_CONTAINS(l.source, "model_weights/attn/attn");
    expect_weights(l, kBasic, 0);
}

// legacy_keras3.h5 keeps its variable-length strings (keras_version,
// layer_names, weight_names, ...) in one global heap collection at address
// 2048; libhdf5 1.10.8 trusts its sizes and indices, and the field sizes of
// attribute messages (h5_checks.h). Each case damages one of them: the load
// must fail with an Error naming the attribute or object and the problem,
// before libhdf5 decodes it.
std::string little_endian(uint64_t v, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; i++) out += static_cast<char>((v >> (8 * i)) & 0xff);
    return out;
}
// A string element as stored: length, heap collection address, object index.
std::string heap_id(uint32_t length, uint64_t collection, uint32_t index) {
    return little_endian(length, 4) + little_endian(collection, 8) + little_endian(index, 4);
}
// A heap object's header: index, reference count, reserved, size.
std::string heap_object(uint16_t index, uint64_t size) {
    return little_endian(index, 2) + little_endian(0, 6) + little_endian(size, 8);
}

class DamagedLegacyH5 : public KerasFiles {
protected:
    // The error of loading legacy_keras3.h5 with `from` (found exactly once)
    // replaced by `to`.
    std::string load_with(const std::string &from, const std::string &to) {
        std::ifstream in(data("legacy_keras3.h5"), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        const size_t at = bytes.find(from);
        EXPECT_NE(at, std::string::npos);
        EXPECT_EQ(bytes.find(from, at + 1), std::string::npos);
        if (at == std::string::npos) return "";
        bytes.replace(at, from.size(), to);
        const std::string file = write("damaged.h5", bytes);
        return error_of([&] { load_weights_with_config(file, data("basic.config.json")); });
    }
};

TEST_F(DamagedLegacyH5, ObjectRunningPastItsCollection) {
    // The fuzzer's find (tests/fuzz/regressions/keras_weights/
    // hdf5_vlen_string_overflow.h5): libhdf5 1.10.8 memcpys this size.
    const std::string e = load_with(heap_object(3, 1756), heap_object(3, 0x6321646c6f776421));
    EXPECT_CONTAINS(
        e, "damaged.h5: attribute 'layer_names' of /model_weights (variable-length strings)");
    EXPECT_CONTAINS(e, "global heap object 3 claims 7143100900875658273 bytes");
}

TEST_F(DamagedLegacyH5, StringShorterThanItsHeapObject) {
    // libhdf5 1.10.8 copies the object's 17 bytes into a 3-byte buffer.
    const std::string e = load_with(heap_id(17, 2048, 9), heap_id(3, 2048, 9));
    EXPECT_CONTAINS(e, "attribute 'weight_names' of /model_weights/attn");
    EXPECT_CONTAINS(e, "is 3 bytes long but its heap object holds 17");
}

TEST_F(DamagedLegacyH5, IndexTheCollectionDoesNotHold) {
    const std::string e = load_with(heap_id(4, 2048, 4), heap_id(4, 2048, 40000));
    EXPECT_CONTAINS(e, "names global heap object 40000, which its collection does not hold");
}

TEST_F(DamagedLegacyH5, AddressThatIsNoCollection) {
    const std::string e = load_with(heap_id(4, 2048, 4), heap_id(4, 2056, 4));
    EXPECT_CONTAINS(e, "global heap collection is missing or damaged");
}

TEST_F(DamagedLegacyH5, CollectionLargerThanTheFile) {
    const std::string e = load_with("GCOL\x01" + std::string(3, '\0') + little_endian(4096, 8),
                                    "GCOL\x01" + std::string(3, '\0') + little_endian(1 << 30, 8));
    EXPECT_CONTAINS(e, "a global heap collection claims 1073741824 bytes");
}

TEST_F(DamagedLegacyH5, AttributeMessageFieldPastItsEnd) {
    // The fuzzer's find (regressions/keras_weights/hdf5_attribute_field_overflow.h5):
    // weight_names of model_weights/attn with a dataspace of 59416 bytes.
    const std::string message = std::string("\x01\x00\x0d\x00\x14\x00\x18", 7);
    const std::string rest = std::string("weight_names\0\0\0\0\x19", 17);
    const std::string e = load_with(message + '\0' + rest, message + '\xe8' + rest);
    EXPECT_CONTAINS(e,
                    "damaged.h5: the attributes of /model_weights/attn: attribute message 0 "
                    "has fields past its end");
}

// The groups of legacy_keras3.h5 are old-style: a symbol table message
// names a B-tree and a local heap (the link names); libhdf5 1.10.8 reads
// them at the addresses and sizes they claim when it iterates over a group.
TEST_F(DamagedLegacyH5, GroupLocalHeapAtAnUndefinedAddress) {
    // The fuzzer's find (regressions/keras_weights/hdf5_local_heap_null_read):
    // attention_output's symbol table message (type 0x11, 16 bytes) names no
    // heap; H5Literate read through a null buffer. (Its parent's symbol
    // table node caches the same two addresses.)
    const std::string message = std::string("\x11\x00\x10\x00\x00\x00\x00\x00", 8);
    const std::string tree = little_endian(0x3e68, 8);
    const std::string e = load_with(message + tree + little_endian(0x4088, 8),
                                    message + tree + little_endian(~uint64_t{0}, 8));
    EXPECT_CONTAINS(e,
                    "damaged.h5: cannot read the HDF5 object tree (group "
                    "/model_weights/attn/attn/attention_output: its local heap is missing or "
                    "damaged)");
}

TEST_F(DamagedLegacyH5, GroupLocalHeapLargerThanTheFile) {
    const std::string prefix = "HEAP" + std::string(4, '\0');
    const std::string rest = little_endian(56, 8) + little_endian(0x20e0, 8);
    const std::string e = load_with(prefix + little_endian(88, 8) + rest,
                                    prefix + little_endian(1ull << 40, 8) + rest);
    EXPECT_CONTAINS(e, "group /model_weights/attn/attn: its local heap claims 1099511627776 bytes");
}

TEST_F(DamagedLegacyH5, GroupLocalHeapFreeListLoop) {
    // The root group's heap: its one free block, at offset 24, names itself next.
    const std::string name = std::string("model_weights\0\0\0", 16);
    const std::string e = load_with(name + little_endian(1, 8) + little_endian(64, 8),
                                    name + little_endian(24, 8) + little_endian(64, 8));
    EXPECT_CONTAINS(e, "(group /: its local heap's free list is damaged)");
}

TEST_F(DamagedLegacyH5, SymbolTableNodeWithTooManyLinks) {
    // /model_weights' one symbol table node: 4 links, room for 8.
    const std::string head = std::string("SNOD\x01\x00", 6);
    const std::string e = load_with(head + little_endian(4, 2) + little_endian(8, 8),
                                    head + little_endian(200, 2) + little_endian(8, 8));
    EXPECT_CONTAINS(e,
                    "group /model_weights: a symbol table node of it claims 200 links, more "
                    "than its 8");
}

TEST_F(DamagedLegacyH5, LinkNamePastTheLocalHeap) {
    const std::string head = std::string("SNOD\x01\x00", 6) + little_endian(4, 2);
    const std::string e = load_with(head + little_endian(8, 8), head + little_endian(4000, 8));
    EXPECT_CONTAINS(e, "group /model_weights: a link name lies outside its local heap");
}

TEST_F(DamagedLegacyH5, GroupBTreeNodeWithTooManyEntries) {
    // The root group's B-tree root: one entry, room for 32.
    const std::string siblings = little_endian(~uint64_t{0}, 8) + little_endian(~uint64_t{0}, 8);
    const std::string rest = siblings + little_endian(0, 8) + little_endian(0x1800, 8);
    const std::string e = load_with("TREE" + std::string(2, '\0') + little_endian(1, 2) + rest,
                                    "TREE" + std::string(2, '\0') + little_endian(900, 2) + rest);
    EXPECT_CONTAINS(e,
                    "cannot read the HDF5 object tree (group /: a node of its B-tree is damaged)");
}

TEST_F(KerasFiles, ShapeMismatchNamesFileDatasetAndShapes) {
    const std::string config = write("c.json", R"({"name": "attn", "num_heads": 2, "key_dim": 4})");
    const std::string e =
        error_of([&] { load_weights_with_config(data("basic.weights.h5"), config); });
    EXPECT_CONTAINS(e, "basic.weights.h5");
    EXPECT_CONTAINS(e, "/layers/multi_head_attention/query_dense/vars/0");
    EXPECT_CONTAINS(e, "[5, 2, 3]");
    EXPECT_CONTAINS(e, "[5, 2, 4]");
    EXPECT_CONTAINS(e, "key_dim=4");

    const std::string archive = error_of([] { load_keras_archive(data("bad_shape.keras")); });
    EXPECT_CONTAINS(archive, "bad_shape.keras:model.weights.h5");
    EXPECT_CONTAINS(archive, "query_dense/vars/0");
    EXPECT_CONTAINS(archive, "[5, 2, 3]");
    EXPECT_CONTAINS(archive, "[5, 2, 4]");

    // An output_shape that does not fit the output kernel.
    const std::string out =
        write("o.json", R"({"name": "attn", "num_heads": 2, "key_dim": 3, "output_shape": [6]})");
    const std::string oe =
        error_of([&] { load_weights_with_config(data("basic.weights.h5"), out); });
    EXPECT_CONTAINS(oe, "output_dense/vars/0");
    EXPECT_CONTAINS(oe, "[2, 3, 6]");

    // TF-era layout too.
    const std::string te =
        error_of([&] { load_weights_with_config(data("tf_era.h5"), config, "mha"); });
    EXPECT_CONTAINS(te, "/mha/mha/query/kernel:0");
}

TEST_F(KerasFiles, BiasPresenceMustMatchUseBias) {
    const std::string no_bias =
        write("nb.json", R"({"name": "attn", "num_heads": 2, "key_dim": 3, "use_bias": false})");
    const std::string e =
        error_of([&] { load_weights_with_config(data("basic.weights.h5"), no_bias); });
    EXPECT_CONTAINS(e, "query_dense/vars/1");
    EXPECT_CONTAINS(e, "use_bias=false");

    const std::string with_bias =
        write("b.json", R"({"name": "self_attn", "num_heads": 2, "key_dim": 3})");
    const std::string m =
        error_of([&] { load_weights_with_config(data("two_mha.weights.h5"), with_bias); });
    EXPECT_CONTAINS(m, "missing dataset /layers/multi_head_attention/query_dense/vars/1");
}

TEST_F(KerasFiles, MalformedFilesNameTheFile) {
    const std::string text_h5 = write("notes.h5", "just some text\n");
    const std::string text_keras = write("notes.keras", "just some text\n");
    EXPECT_CONTAINS(error_of([&] { load_weights_with_config(text_h5, data("basic.config.json")); }),
                    text_h5 + ": not an HDF5 file");
    EXPECT_CONTAINS(error_of([&] { load_keras_archive(text_keras); }),
                    text_keras + ": not a .keras archive");
    EXPECT_CONTAINS(error_of([] { load_keras_archive(data("no_config.keras")); }),
                    "no_config.keras: no config.json");
    EXPECT_CONTAINS(error_of([] { load_keras_archive(data("no_weights.keras")); }),
                    "no_weights.keras: no model.weights.h5");
    EXPECT_CONTAINS(error_of([] { load_keras_archive(data("absent.keras")); }),
                    "absent.keras: no such file");
    EXPECT_CONTAINS(
        error_of(
            [] { load_weights_with_config(data("absent.weights.h5"), data("basic.config.json")); }),
        "absent.weights.h5: no such file");
    EXPECT_CONTAINS(
        error_of([] { load_weights_with_config(data("basic.weights.h5"), data("absent.json")); }),
        "absent.json: cannot open");
    // A config that is not JSON, and one without a MultiHeadAttention.
    const std::string junk = write("junk.json", "{not json");
    EXPECT_CONTAINS(error_of([&] { load_weights_with_config(data("basic.weights.h5"), junk); }),
                    junk + ": not valid JSON");
    const std::string dense =
        write("dense.json", R"({"class_name": "Dense", "config": {"units": 3}})");
    EXPECT_CONTAINS(error_of([&] { load_weights_with_config(data("basic.weights.h5"), dense); }),
                    "no MultiHeadAttention layer config");
    // An HDF5 file without MultiHeadAttention weights (a Dense-only model).
    EXPECT_CONTAINS(
        error_of(
            [] { load_weights_with_config(data("dense.weights.h5"), data("basic.config.json")); }),
        "dense.weights.h5: no MultiHeadAttention weights found");
}

TEST_F(KerasFiles, TruncatedFilesAreErrors) {
    for (const char *name : {"basic.keras", "basic.weights.h5", "tf_era.h5"}) {
        std::ifstream in(data(name), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), {});
        for (size_t keep : {size_t{0}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
            SCOPED_TRACE(std::string(name) + " cut to " + std::to_string(keep) + " bytes");
            const std::string path = write(std::string("cut_") + name, bytes.substr(0, keep));
            const std::string e = error_of([&] {
                if (std::string(name).find(".keras") != std::string::npos)
                    load_keras_archive(path);
                else
                    load_weights_with_config(path, data("basic.config.json"));
            });
            EXPECT_CONTAINS(e, path);
        }
    }
}

}  // namespace
}  // namespace mhac::io
