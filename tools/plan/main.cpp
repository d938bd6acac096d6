// mhac_plan: the kernel planner as a command, run by mhac_add_kernel_set()
// at configure time (cmake/MhacKernels.cmake).
//
//   mhac_plan set  --name SET --targets T1,T2... --table ROWS.txt --out DIR
//                  [--db DIR --source-hash H --halide-version V]
//       writes DIR/SET_plan.cmake, DIR/SET_registry.cpp, DIR/mhac/kernel_set_SET.h
//       (ROWS.txt: one table row per line, see kernel_plan.h); with --db, the
//       kernels take the knobs of the tuned database's entries tuned with
//       source hash H and Halide V, and each entry not used for a reason
//       worth knowing is one line on stderr (CMake prints it as a warning)
//   mhac_plan list --header mhac/NAME.h --function FN --sets A,B... --out DIR
//       writes DIR/mhac/NAME.h and DIR/NAME.cpp: FN() returns every listed set
//
// Files are rewritten only when their contents change, so a reconfigure
// rebuilds nothing that did not change.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kernel_plan.h"

namespace fs = std::filesystem;
using mhac::plan::PlanError;

namespace {

void write_if_changed(const fs::path &path, const std::string &text) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream old;
    old << in.rdbuf();
    if (in && old.str() == text) return;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) throw PlanError("cannot write " + path.string());
}

std::map<std::string, std::string> flags(int argc, char **argv) {
    std::map<std::string, std::string> f;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) throw PlanError(std::string(argv[i]) + " needs a value");
        f[argv[i]] = argv[i + 1];
    }
    return f;
}

std::string need(std::map<std::string, std::string> &f, const char *key) {
    auto it = f.find(key);
    if (it == f.end()) throw PlanError(std::string("missing ") + key);
    return it->second;
}

int plan_set(std::map<std::string, std::string> f) {
    const std::string name = need(f, "--name");
    std::ifstream table(need(f, "--table"));
    if (!table) throw PlanError("cannot read " + f["--table"]);
    std::vector<mhac::plan::ConfigRow> rows;
    for (std::string line; std::getline(table, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        rows.push_back(mhac::plan::parse_row(line));
    }
    mhac::tuned::Database db;
    mhac::plan::TunedInputs tuned;
    if (f.count("--db")) {
        db = mhac::tuned::load_dir(f["--db"]);
        tuned = {&db, need(f, "--source-hash"), need(f, "--halide-version")};
    }
    mhac::plan::KernelPlan plan = mhac::plan::plan_kernel_set(
        name, mhac::plan::split_list(need(f, "--targets"), ','), rows, tuned);
    for (const auto &w : plan.warnings) std::fprintf(stderr, "%s\n", w.c_str());
    const fs::path out = need(f, "--out");
    write_if_changed(out / (name + "_registry.cpp"), plan.registry_source);
    write_if_changed(out / "mhac" / ("kernel_set_" + name + ".h"), plan.header);
    write_if_changed(out / (name + "_plan.cmake"), mhac::plan::cmake_listing(plan));
    return 0;
}

int plan_list(std::map<std::string, std::string> f) {
    const std::string header = need(f, "--header");
    mhac::plan::SetList list = mhac::plan::kernel_set_list(
        header, need(f, "--function"), mhac::plan::split_list(need(f, "--sets"), ','));
    const fs::path out = need(f, "--out");
    write_if_changed(out / header, list.header);
    write_if_changed(out / (fs::path(header).stem().string() + ".cpp"), list.source);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    const std::string cmd = argc > 1 ? argv[1] : "";
    try {
        if (cmd == "set") return plan_set(flags(argc, argv));
        if (cmd == "list") return plan_list(flags(argc, argv));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac_plan: error: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: mhac_plan set|list ... (see tools/plan/main.cpp)\n");
    return 2;
}
