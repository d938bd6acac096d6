// .npy reading (files written by numpy, data/npy/) and write_npy round trips.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

const std::string kNpy = std::string(MHAC_IO_TEST_DATA) + "/npy/";

// The array every float file in data/npy holds, shape [2, 3].
const std::vector<float> kValues = {0.5f, -1.25f, 3.0f, 0.0f, 2.5f, -0.125f};

std::string error_of(void (*fn)(const std::string &), const std::string &path) {
    try {
        fn(path);
    } catch (const Error &e) {
        return e.what();
    }
    return "";
}

std::string float_error(const std::string &path) {
    return error_of([](const std::string &p) { read_npy_floats(p); }, path);
}

std::string temp_path(const std::string &name) {
    return (std::filesystem::temp_directory_path() /
            ("mhac_io_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

class NpyFloats : public testing::TestWithParam<const char *> {};

TEST_P(NpyFloats, ReadAsFloat32) {
    const Tensor t = read_npy_floats(kNpy + GetParam());
    EXPECT_EQ(t.shape, (Shape{2, 3}));
    EXPECT_EQ(t.data, kValues);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, NpyFloats,
                         testing::Values("f2.npy", "f4.npy", "f8.npy", "f4_big.npy", "f4_v2.npy"));

TEST(Npy, ScalarAndEmpty) {
    const Tensor s = read_npy_floats(kNpy + "scalar_f4.npy");
    EXPECT_TRUE(s.shape.empty());
    EXPECT_EQ(s.data, std::vector<float>{1.5f});
    const Tensor e = read_npy_floats(kNpy + "empty_f4.npy");
    EXPECT_EQ(e.shape, (Shape{0, 3}));
    EXPECT_TRUE(e.data.empty());
}

TEST(Npy, RejectsNonFloatDtypesNamingFileAndDtype) {
    for (const char *name : {"mask_i4.npy", "mask_b1.npy", "strings.npy", "complex.npy"}) {
        const std::string e = float_error(kNpy + name);
        EXPECT_NE(e.find(name), std::string::npos) << e;
        EXPECT_NE(e.find("dtype"), std::string::npos) << e;
    }
    EXPECT_NE(float_error(kNpy + "mask_i4.npy").find("'<i4'"), std::string::npos);
    EXPECT_NE(float_error(kNpy + "strings.npy").find("'<U2'"), std::string::npos);
}

TEST(Npy, RejectsFortranOrder) {
    const std::string e = float_error(kNpy + "fortran_f4.npy");
    EXPECT_NE(e.find("fortran_f4.npy"), std::string::npos) << e;
    EXPECT_NE(e.find("Fortran"), std::string::npos) << e;
}

TEST(Npy, RejectsMissingAndMalformedFiles) {
    EXPECT_NE(float_error(kNpy + "absent.npy").find("absent.npy"), std::string::npos);
    const std::string text = temp_path("text.npy");
    std::ofstream(text) << "hello";
    EXPECT_NE(float_error(text).find("not a .npy file"), std::string::npos);
    // Truncated data: drop the last 4 bytes of a valid file.
    std::ifstream in(kNpy + "f4.npy", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const std::string cut = temp_path("cut.npy");
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 4);
    EXPECT_NE(float_error(cut).find("truncated"), std::string::npos) << float_error(cut);
    std::remove(text.c_str());
    std::remove(cut.c_str());
}

class NpyMasks : public testing::TestWithParam<const char *> {};

TEST_P(NpyMasks, NonZeroIsOne) {
    // [[1, 0, 2], [0, -1, 0]] in every integer type; bool gives the same truth values.
    const Mask m = read_npy_mask(kNpy + GetParam());
    EXPECT_EQ(m.shape, (Shape{2, 3}));
    EXPECT_EQ(m.data, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0}));
    EXPECT_EQ(m.view().data, m.data.data());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, NpyMasks,
                         testing::Values("mask_b1.npy", "mask_u1.npy", "mask_i1.npy", "mask_i4.npy",
                                         "mask_i8.npy"));

TEST(Npy, FloatMaskNonZeroAndNanAreTrue) {
    // [[0.3, 0.0, nan], [-0.0, -2.0, 0.0]]
    const Mask m = read_npy_mask(kNpy + "mask_f4.npy");
    EXPECT_EQ(m.data, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0}));
    EXPECT_EQ(read_npy_mask(kNpy + "f2.npy").data, (std::vector<uint8_t>{1, 1, 1, 0, 1, 1}));
}

TEST(Npy, MaskRejectsStrings) {
    const std::string e =
        error_of([](const std::string &p) { read_npy_mask(p); }, kNpy + "strings.npy");
    EXPECT_NE(e.find("'<U2'"), std::string::npos) << e;
}

TEST(Npy, WriteRoundTrip) {
    for (const Shape &shape : {Shape{}, Shape{0}, Shape{5}, Shape{2, 3}, Shape{2, 1, 3, 2}}) {
        Tensor t;
        t.shape = shape;
        size_t n = 1;
        for (int64_t d : shape) n *= static_cast<size_t>(d);
        for (size_t i = 0; i < n; i++) t.data.push_back(std::ldexp(float(i) - 3.0f, -3));
        const std::string path = temp_path("roundtrip.npy");
        write_npy(path, t);
        EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
        const Tensor back = read_npy_floats(path);
        EXPECT_EQ(back.shape, shape) << shape.size();
        EXPECT_EQ(back.data, t.data) << shape.size();
        // numpy's layout: 10-byte prefix + header padded to a multiple of 64.
        std::ifstream in(path, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), {});
        const size_t header = static_cast<unsigned char>(bytes[8]) |
                              static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
        EXPECT_EQ((10 + header) % 64, 0u);
        EXPECT_EQ(bytes[6], '\x01');
        EXPECT_EQ(bytes[10 + header - 1], '\n');
        EXPECT_EQ(bytes.size(), 10 + header + 4 * n);
        std::remove(path.c_str());
    }
}

TEST(Npy, WriteRejectsInconsistentTensorAndLeavesNoFile) {
    Tensor t;
    t.shape = {2, 3};
    t.data.assign(5, 0.0f);
    const std::string path = temp_path("bad.npy");
    EXPECT_THROW(write_npy(path, t), Error);
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Npy, WriteToMissingFolderIsAnError) {
    Tensor t;
    t.shape = {1};
    t.data = {1.0f};
    EXPECT_THROW(write_npy("/nonexistent-mhac-dir/x.npy", t), Error);
}

// Hostile .npy headers: numpy refuses each of these, and so must we.
TEST(Npy, HeaderParsedAsStrictlyAsNumpy) {
    auto npy = [](const std::string &dict, size_t floats) {
        std::string header = dict;
        header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
        header += '\n';
        std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
        bytes += static_cast<char>(header.size() & 0xff);
        bytes += static_cast<char>(header.size() >> 8);
        return bytes + header + std::string(floats * 4, '\0');
    };
    const std::string path = temp_path("header.npy");
    auto error_for = [&](const std::string &dict, size_t floats) {
        std::ofstream(path, std::ios::binary) << npy(dict, floats);
        return float_error(path);
    };
    const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    EXPECT_EQ(error_for(ok, 6), "");
    EXPECT_EQ(error_for("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (6,)}", 6), "");
    EXPECT_EQ(error_for("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", 1), "");
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", "negative dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2x, 3), }", "tuple of ints"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3), }", "tuple of ints"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", "an int"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", "must be a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", "unexpected key"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", "True or False"},
        {"{'descr': '<f4', 'shape': (2, 3), }", "no 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", "after the dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", "expected ','"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }",
         "does not fit a 64-bit integer"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
         "too large"},
        {"{'descr': '<f99999999999999999999', 'fortran_order': False, 'shape': (2, 3), }",
         "unsupported .npy dtype"},
    };
    for (const auto &[dict, expected] : bad) {
        const std::string e = error_for(dict, 6);
        EXPECT_NE(e.find(expected), std::string::npos) << dict << "\n" << e;
        EXPECT_NE(e.find(path), std::string::npos) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
    std::remove(path.c_str());
}

TEST(Npy, NonRegularFilesAreRefusedByName) {
    const std::string dir = temp_path("dir.npy");
    std::filesystem::create_directories(dir);
    EXPECT_NE(float_error(dir).find(dir + ": is a directory"), std::string::npos)
        << float_error(dir);
    std::filesystem::remove(dir);
    EXPECT_NE(float_error("/dev/zero").find("/dev/zero: is a character device"), std::string::npos);
}

// The output target is checked when the NpyOutput is made (nothing written).
TEST(Npy, OutputRefusesNonRegularTargets) {
    auto error_for = [](const std::string &path) -> std::string {
        try {
            NpyOutput out(path);
        } catch (const Error &e) {
            return e.what();
        }
        return "";
    };
    EXPECT_NE(error_for("/dev/null").find("/dev/null: is a character device"), std::string::npos);
    const std::string target = temp_path("target.npy"), link = temp_path("link.npy");
    std::ofstream(target) << "keep";
    std::filesystem::create_symlink(target, link);
    EXPECT_NE(error_for(link).find("symbolic link"), std::string::npos) << error_for(link);
    std::remove(link.c_str());
    std::remove(target.c_str());
}

TEST(Npy, UncommittedOutputLeavesNothing) {
    Tensor t;
    t.shape = {2};
    t.data = {1.0f, 2.0f};
    const std::string path = temp_path("uncommitted.npy");
    {
        NpyOutput out(path);
        out.write(t);
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    for (const auto &e :
         std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
        EXPECT_EQ(e.path().filename().string().find(".mhac_io_" + std::to_string(::getpid()) +
                                                    "_uncommitted.npy."),
                  std::string::npos)
            << "temporary file left: " << e.path();
}

}  // namespace
}  // namespace mhac::io
