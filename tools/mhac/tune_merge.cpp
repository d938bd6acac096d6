#include "tune_merge.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tuned_db.h"  // tools/plan: the one reader and writer of the database

namespace mhac::cli {

int tune_merge_command(int argc, char **argv) {
    CLI::App app{
        "Combines tuned-schedule databases (the shards of a sweep) into OUT_DIR; OUT_DIR's "
        "own entries take part. For entries with the same key (generator, kernel "
        "parameters, target, bucket, source hash, Halide version) the newest date wins.",
        "mhac tune merge"};
    std::string out_dir;
    std::vector<std::string> inputs;
    app.add_option("-o,--out", out_dir, "database directory to write")->required();
    app.add_option("inputs", inputs, "database directories or files (<target>.json)")
        ->required()
        ->check(CLI::ExistingPath);
    try {
        app.parse(argc, argv);  // argv[0] is "merge"
    } catch (const CLI::CallForHelp &) {
        std::fputs(app.help().c_str(), stdout);
        return 0;
    } catch (const CLI::ParseError &e) {
        std::fprintf(stderr,
                     "mhac tune merge: error: %s\nrun mhac tune merge --help for the options\n",
                     e.what());
        return 2;
    }
    try {
        std::vector<tuned::Database> dbs{tuned::load_dir(out_dir)};
        size_t read = 0;
        for (const auto &in : inputs) {
            dbs.push_back(std::filesystem::is_directory(in) ? tuned::load_dir(in)
                                                            : tuned::load_file(in));
            read += dbs.back().entries.size();
        }
        const size_t had = dbs.front().entries.size();
        const tuned::Database merged = tuned::merge(dbs);
        tuned::save_dir(merged, out_dir);
        std::printf("mhac tune merge: %zu entries in %s (had %zu; read %zu from %zu inputs)\n",
                    merged.entries.size(), out_dir.c_str(), had, read, inputs.size());
    } catch (const tuned::DbError &e) {
        std::fprintf(stderr, "mhac tune merge: error: %s\n", e.what());
        return 1;
    }
    return 0;
}

}  // namespace mhac::cli
