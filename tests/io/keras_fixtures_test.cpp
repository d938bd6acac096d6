// Every Keras weight file among the conformance fixtures
// (tests/keras/fixtures/<case>/, written by real Keras 3 and tf-keras) loads
// to exactly the arrays the generator stored as weights/<i>.npy.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "mhac/keras_io.h"

namespace mhac::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path &path) {
    std::ifstream in(path);
    return json::parse(in);
}

TEST(KerasFixtures, EveryWeightFileMatchesItsNpyArrays) {
    const fs::path root = MHAC_KERAS_FIXTURES;
    if (!fs::is_directory(root)) GTEST_SKIP() << "no fixtures at " << root;
    int files_checked = 0;
    std::map<std::string, int> by_kind;  // file kind -> files loaded
    for (const auto &entry : fs::directory_iterator(root)) {
        const fs::path case_dir = entry.path();
        if (!fs::is_regular_file(case_dir / "case.json")) continue;
        const json meta = read_json(case_dir / "case.json");
        if (!meta.contains("weights") || !meta.at("weights").contains("files")) continue;
        const json &w = meta.at("weights");
        const std::string name =
            meta.value("constructor_kwargs", json::object()).value("name", std::string("mha"));
        std::vector<Tensor> expected;
        for (const json &npy : w.at("npy"))
            expected.push_back(read_npy_floats((case_dir / npy.get<std::string>()).string()));

        for (const auto &item : w.at("files").items()) {
            // Not a structured binding: clang 14 (the sanitizer builds) cannot
            // capture one in the lambda below.
            const std::string kind = item.key();
            const fs::path file = case_dir / item.value().get<std::string>();
            SCOPED_TRACE(case_dir.filename().string() + " " + kind + " " + file.string());
            // An archive carries its own config; the other files go with this case's.
            auto load = [&] {
                return kind == "keras"
                           ? load_keras_archive(file.string(), name)
                           : load_weights_with_config(file.string(),
                                                      (case_dir / "config.json").string(), name);
            };
            LoadedLayer layer;
            try {
                layer = load();
            } catch (const Error &e) {
                ADD_FAILURE() << e.what();
                continue;
            }
            files_checked++;
            by_kind[kind]++;
            ASSERT_EQ(layer.weights.size(), expected.size());
            for (size_t i = 0; i < expected.size(); i++) {
                EXPECT_EQ(layer.weights[i].shape, expected[i].shape) << "weight " << i;
                EXPECT_EQ(layer.weights[i].data, expected[i].data) << "weight " << i;
            }
        }
    }
    for (const auto &[kind, count] : by_kind) {
        RecordProperty(kind, count);
        std::printf("  %-24s %d files\n", kind.c_str(), count);
    }
    EXPECT_GT(files_checked, 0) << "no weight files among the fixtures in " << root;
}

// The fixtures' constructor-time (and config-driven build-time) errors are
// parse_layer_config errors too.
TEST(KerasFixtures, ConstructorErrorsAreConfigErrors) {
    const fs::path root = MHAC_KERAS_FIXTURES;
    if (!fs::is_directory(root)) GTEST_SKIP() << "no fixtures at " << root;
    int checked = 0;
    for (const auto &entry : fs::directory_iterator(root)) {
        if (!fs::is_regular_file(entry.path() / "case.json")) continue;
        const json meta = read_json(entry.path() / "case.json");
        const json error = meta.value("expected_error", json());
        if (!error.is_object() || !meta.contains("constructor_kwargs")) continue;
        const std::string stage = error.value("stage", std::string());
        const json kwargs = meta.at("constructor_kwargs");
        const bool config_error =
            stage == "constructor" ||
            (stage == "build" && (kwargs.contains("dropout") || kwargs.contains("seed")));
        if (!config_error) continue;
        SCOPED_TRACE(entry.path().filename().string() +
                     ": Keras said: " + error.value("message", std::string()));
        EXPECT_THROW(parse_layer_config(kwargs.dump()), Error) << kwargs.dump();
        checked++;
    }
    EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace mhac::io
