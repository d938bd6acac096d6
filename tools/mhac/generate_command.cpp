// `mhac generate --config cfg.json --targets T1,T2,... -o DIR [--name SET]`
// For builds without CMake: writes every kernel of the set (static library +
// header), one Halide runtime, the registry source, the set's header and a
// manifest.json (read by `mhac inspect DIR`). Runs mhac's generator
// executable (MHAC_GENERATOR overrides where it is). Kernels take the knobs
// of the tuned database (--tuned-db, else $MHAC_TUNED_DB) as the build does.
#include "generate_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "kernel_plan.h"  // tools/plan: the one table expansion
#include "mhac/mha.h"

namespace mhac::cli {

namespace fs = std::filesystem;

std::string generator_path() {
    if (const char *env = std::getenv("MHAC_GENERATOR")) return env;
    std::error_code ec;
    fs::path self = fs::canonical("/proc/self/exe", ec);
    if (!ec) {
        fs::path installed = self.parent_path() / ".." / "libexec" / "mhac" / "mhac_generators";
        if (fs::exists(installed)) return installed.string();
    }
#ifdef MHAC_BUILD_GENERATOR
    if (fs::exists(MHAC_BUILD_GENERATOR)) return MHAC_BUILD_GENERATOR;
#endif
    throw Error("mhac's generator executable was not found; set MHAC_GENERATOR");
}

std::string checked_generator_path() {
    const std::string path = generator_path();
    const std::string own = MHAC_SCHEDULE_SOURCE_HASH;
    if (own == "unknown") return path;
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string mark = "mhac-schedule-source-hash=";
    const size_t at = bytes.find(mark);
    if (at == std::string::npos) return path;
    const size_t from = at + mark.size();
    // Up to the ';' (substr clamps a count past the end, when there is none).
    const std::string theirs = bytes.substr(from, bytes.find(';', from) - from);
    if (theirs != own) {
        throw Error("the generator " + path + " was built from other schedule sources (hash " +
                    theirs + ") than this mhac (" + own +
                    "): rebuild both (cmake --build <build dir>), or set MHAC_GENERATOR to the "
                    "generator of mhac's build");
    }
    return path;
}

namespace {

const char *kUsage =
    "usage: mhac generate --config cfg.json|table.txt --targets T1[,T2...] -o DIR [--name SET]\n"
    "                     [--plan-only] [--tuned-db DIR]\n"
    "  cfg.json: {\"name\": \"my_set\", \"configs\": [{\"name\": \"small\", \"num_heads\": 4,\n"
    "            \"key_dim\": 8, \"value_dim\": 8, \"query_features\": 32, \"key_features\": 32,\n"
    "            \"value_features\": 32, \"output_features\": 32, \"use_bias\": true,\n"
    "            \"masks\": [\"none\", \"causal\"], \"params\": {\"fused\": {\"knob\": 4}}}]}\n"
    "  table.txt: rows as in mhac_add_kernel_set(), one per line:\n"
    "            name heads key_dim value_dim Eq Ek Ev O bias masks [stage:key=value ...]\n"
    "  params / stage:key=value: extra generator parameters for one stage's kernels\n"
    "            (fused, projection, scores, combine) of that configuration\n"
    "  --plan-only: write the registry, the header and manifest.json, run no generator\n"
    "  --tuned-db DIR: the tuned-schedule database (docs/tuning.md); default\n"
    "            $MHAC_TUNED_DB, else none (hand defaults)\n"
    "  targets: a Halide multi-target ladder, best first, e.g.\n"
    "           x86-64-linux-avx2-fma-f16c,x86-64-linux-sse41\n";

int wait_for(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t spawn(const std::vector<std::string> &args, const std::string &log) {
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<char *> argv;
        for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        if (FILE *f = std::freopen(log.c_str(), "w", stderr)) (void)f;
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

// A configuration of cfg.json as a table row. Sizes and mask kinds are
// checked by the planner, as for mhac_add_kernel_set() rows.
plan::ConfigRow parse_config(const nlohmann::json &j) {
    plan::ConfigRow c;
    c.name = j.at("name").get<std::string>();
    c.num_heads = j.at("num_heads").get<int>();
    c.key_dim = j.at("key_dim").get<int>();
    c.value_dim = j.value("value_dim", c.key_dim);
    c.query_features = j.at("query_features").get<int>();
    c.value_features = j.value("value_features", c.query_features);
    c.key_features = j.value("key_features", c.value_features);
    c.output_features = j.value("output_features", c.query_features);
    c.use_bias = j.value("use_bias", true);
    c.masks = j.value(
        "masks", std::vector<std::string>(std::begin(kMaskKindNames), std::end(kMaskKindNames)));
    // "params": {"fused": {"knob": 4}, ...}: the rows' stage:key=value.
    for (const auto &[stage, knobs] : j.value("params", nlohmann::json::object()).items()) {
        for (const auto &[key, value] : knobs.items()) {
            std::string text = value.is_string() ? value.get<std::string>() : value.dump();
            c.params.push_back(plan::parse_row_param(c.name, stage + ":" + key + "=" + text));
        }
    }
    return c;
}

}  // namespace

std::vector<plan::ConfigRow> load_config_rows(const std::string &config_path,
                                              std::string *set_name) {
    std::ifstream in(config_path);
    if (!in) throw Error("cannot read " + config_path);
    std::vector<plan::ConfigRow> configs;
    try {
        if (fs::path(config_path).extension() == ".json") {
            nlohmann::json cfg = nlohmann::json::parse(in);
            if (set_name && set_name->empty()) *set_name = cfg.value("name", "generated_set");
            for (const auto &c : cfg.at("configs")) configs.push_back(parse_config(c));
        } else {
            for (std::string line; std::getline(in, line);) {
                if (line.find_first_not_of(" \t\r") != std::string::npos)
                    configs.push_back(plan::parse_row(line));
            }
        }
    } catch (const nlohmann::json::exception &e) {
        throw Error(config_path + ": not a valid configuration: " + e.what());
    } catch (const plan::PlanError &e) {
        throw Error(config_path + ": " + e.what());
    }
    return configs;
}

namespace {

// The plan of a configuration file: cfg.json, or a table of rows in the
// format of mhac_add_kernel_set() (any other file), one row per line.
plan::KernelPlan load_plan(const std::string &config_path, const std::string &targets,
                           std::string set_name, const plan::TunedInputs &tuned) {
    std::vector<plan::ConfigRow> configs = load_config_rows(config_path, &set_name);
    if (set_name.empty()) set_name = "generated_set";
    try {
        return plan::plan_kernel_set(set_name, plan::split_list(targets, ','), configs, tuned);
    } catch (const plan::PlanError &e) {
        throw Error(config_path + ": " + e.what());
    }
}

// Runs the generator for every kernel, `jobs` at a time (each run is single
// threaded); returns each run's seconds. Failures name the kernel's log.
std::vector<double> generate_kernels(const plan::KernelPlan &plan, const std::string &gen,
                                     const std::string &out_dir) {
    std::string target_list;
    for (const auto &t : plan.targets)
        target_list += (target_list.empty() ? "" : ",") + t + "-no_runtime";
    const unsigned jobs = std::max(1u, std::thread::hardware_concurrency());
    struct Running {
        pid_t pid;
        size_t index;
        std::chrono::steady_clock::time_point start;
    };
    std::vector<Running> running;
    std::vector<double> seconds(plan.kernels.size(), 0.0);
    int failures = 0;
    auto reap = [&](const Running &r) {
        int code = wait_for(r.pid);
        seconds[r.index] =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count();
        if (code != 0) {
            failures++;
            std::fprintf(stderr, "mhac generate: %s failed (exit %d), see %s/%s.log\n",
                         plan.kernels[r.index].name.c_str(), code, out_dir.c_str(),
                         plan.kernels[r.index].name.c_str());
        }
    };
    for (size_t i = 0; i < plan.kernels.size(); i++) {
        const plan::PlannedKernel &k = plan.kernels[i];
        std::vector<std::string> args{gen,
                                      "-g",
                                      k.generator,
                                      "-f",
                                      k.name,
                                      "-n",
                                      k.name,
                                      "-o",
                                      out_dir,
                                      "-e",
                                      "static_library,c_header",
                                      "target=" + target_list};
        args.insert(args.end(), k.params.begin(), k.params.end());
        if (running.size() >= jobs) {
            reap(running.front());
            running.erase(running.begin());
        }
        running.push_back(
            {spawn(args, out_dir + "/" + k.name + ".log"), i, std::chrono::steady_clock::now()});
    }
    for (const auto &r : running) reap(r);
    const std::string runtime_name = plan.set_name + "_halide_runtime";
    int rc = wait_for(spawn({gen, "-r", runtime_name, "-o", out_dir, "-e", "static_library",
                             "target=" + plan.runtime_target},
                            out_dir + "/" + runtime_name + ".log"));
    if (rc != 0) failures++;
    if (failures) throw Error(std::to_string(failures) + " generator run(s) failed");
    for (const auto &k : plan.kernels) fs::remove(fs::path(out_dir) / (k.name + ".log"));
    fs::remove(fs::path(out_dir) / (runtime_name + ".log"));
    return seconds;
}

// manifest.json: the set, and per kernel its generator and parameters (and,
// once generated, its library, size and generation time).
nlohmann::json manifest_of(const plan::KernelPlan &plan, const std::string &out_dir,
                           const std::vector<double> *seconds) {
    nlohmann::json manifest = {{"set", plan.set_name},
                               {"targets", plan.targets},
                               {"device", plan.device},
                               {"compute_capability", plan.compute_capability},
                               {"kernels", nlohmann::json::array()}};
    for (size_t i = 0; i < plan.kernels.size(); i++) {
        const plan::PlannedKernel &k = plan.kernels[i];
        nlohmann::json entry = {{"name", k.name},
                                {"generator", k.generator},
                                {"params", k.params},
                                {"tuning", k.tuning_by_level}};
        if (seconds) {
            entry["library"] = k.name + ".a";
            entry["bytes"] = fs::file_size(fs::path(out_dir) / (k.name + ".a"));
            entry["generation_seconds"] = (*seconds)[i];
        }
        manifest["kernels"].push_back(entry);
    }
    if (seconds) manifest["runtime"] = plan.set_name + "_halide_runtime.a";
    return manifest;
}

}  // namespace

int generate_command(int argc, char **argv) {
    std::string config_path, targets_arg, out_dir, set_name;
    const char *db_env = std::getenv("MHAC_TUNED_DB");
    std::string tuned_db = db_env ? db_env : "";
    bool plan_only = false;
    for (int i = 0; i < argc; i++) {
        std::string f = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw Error(f + " needs a value");
            return argv[++i];
        };
        if (f == "--config")
            config_path = value();
        else if (f == "--targets")
            targets_arg = value();
        else if (f == "-o" || f == "--out")
            out_dir = value();
        else if (f == "--name")
            set_name = value();
        else if (f == "--tuned-db")
            tuned_db = value();
        else if (f == "--plan-only")
            plan_only = true;
        else if (f == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            throw Error("unknown argument '" + f + "'\n" + kUsage);
        }
    }
    if (config_path.empty() || targets_arg.empty() || out_dir.empty()) {
        throw Error(std::string("--config, --targets and -o are required\n") + kUsage);
    }
    tuned::Database db;
    plan::TunedInputs tuned{nullptr, MHAC_SCHEDULE_SOURCE_HASH, MHAC_HALIDE_VERSION};
    if (!tuned_db.empty()) {
        try {
            db = tuned::load_dir(tuned_db);
        } catch (const tuned::DbError &e) {
            throw Error(std::string("tuned database: ") + e.what());
        }
        tuned.db = &db;
    }
    const plan::KernelPlan plan = load_plan(config_path, targets_arg, set_name, tuned);
    for (const auto &w : plan.warnings) {
        std::fprintf(stderr, "mhac generate: warning: tuned database: %s\n", w.c_str());
    }
    const std::string generator = plan_only ? "" : checked_generator_path();
    fs::create_directories(fs::path(out_dir) / "mhac");
    std::vector<double> seconds;
    if (!plan_only) seconds = generate_kernels(plan, generator, out_dir);
    const fs::path out(out_dir);
    std::ofstream(out / (plan.set_name + "_registry.cpp")) << plan.registry_source;
    std::ofstream(out / "mhac" / ("kernel_set_" + plan.set_name + ".h")) << plan.header;
    std::ofstream(out / "manifest.json")
        << manifest_of(plan, out_dir, plan_only ? nullptr : &seconds).dump(2) << "\n";
    std::printf("mhac generate: %zu kernels for %s (%s) in %s%s\n", plan.kernels.size(),
                plan.set_name.c_str(), targets_arg.c_str(), out_dir.c_str(),
                plan_only ? " (plan only: no kernel generated)" : "");
    return 0;
}

}  // namespace mhac::cli

namespace mhac::cli {

int inspect_generated(const std::string &dir) {
    std::ifstream in(fs::path(dir) / "manifest.json");
    if (!in) throw Error(dir + " has no manifest.json (not written by mhac generate)");
    nlohmann::json m = nlohmann::json::parse(in);
    std::string targets;
    for (const auto &t : m["targets"])
        targets += (targets.empty() ? "" : " ") + t.get<std::string>();
    std::printf("generated kernel set %s: device %s, targets %s\n",
                m["set"].get<std::string>().c_str(), m["device"].get<std::string>().c_str(),
                targets.c_str());
    std::printf("  %-48s %-20s %10s %8s  params\n", "kernel", "generator", "bytes", "seconds");
    for (const auto &k : m["kernels"]) {
        std::string params;
        for (const auto &p : k["params"]) params += p.get<std::string>() + " ";
        std::printf("  %-48s %-20s %10llu %8.2f  %s\n", k["name"].get<std::string>().c_str(),
                    k["generator"].get<std::string>().c_str(),
                    (unsigned long long)k.value("bytes", uint64_t{0}),
                    k.value("generation_seconds", 0.0), params.c_str());
        for (const auto &level : k.value("tuning", nlohmann::json::array())) {
            std::printf("      tuning %s\n", level.get<std::string>().c_str());
        }
    }
    return 0;
}

}  // namespace mhac::cli
