// `mhac generate --config cfg.json --targets T1,T2,... -o DIR [--name SET]`
// For builds without CMake: writes every kernel of the set (static library +
// header), one Halide runtime, the registry source, the set's header and a
// manifest.json (read by `mhac inspect DIR`). Runs mhac's generator
// executable (MHAC_GENERATOR overrides where it is).
#include "generate_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "kernel_plan.h"
#include "mhac/mha.h"

namespace mhac::cli {

namespace fs = std::filesystem;

namespace {

const char *kUsage =
    "usage: mhac generate --config cfg.json --targets T1[,T2...] -o DIR [--name SET]\n"
    "  cfg.json: {\"name\": \"my_set\", \"configs\": [{\"name\": \"small\", \"num_heads\": 4,\n"
    "            \"key_dim\": 8, \"value_dim\": 8, \"query_features\": 32, \"key_features\": 32,\n"
    "            \"value_features\": 32, \"output_features\": 32, \"use_bias\": true,\n"
    "            \"masks\": [\"none\", \"causal\"]}]}\n"
    "  targets: a Halide multi-target ladder, best first, e.g.\n"
    "           x86-64-linux-avx2-fma-f16c,x86-64-linux-sse41\n";

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, sep);) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

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

PlanConfig parse_config(const nlohmann::json &j) {
    PlanConfig c;
    c.name = j.at("name").get<std::string>();
    c.num_heads = j.at("num_heads").get<int>();
    c.key_dim = j.at("key_dim").get<int>();
    c.value_dim = j.value("value_dim", c.key_dim);
    c.query_features = j.at("query_features").get<int>();
    c.value_features = j.value("value_features", c.query_features);
    c.key_features = j.value("key_features", c.value_features);
    c.output_features = j.value("output_features", c.query_features);
    c.use_bias = j.value("use_bias", true);
    c.masks = j.value("masks", std::vector<std::string>{"none", "causal", "dense"});
    if (c.num_heads <= 0 || c.key_dim <= 0 || c.value_dim <= 0 || c.query_features <= 0 ||
        c.key_features <= 0 || c.value_features <= 0 || c.output_features <= 0) {
        throw Error("configuration '" + c.name + "': sizes must be positive");
    }
    for (const auto &m : c.masks) {
        if (m != "none" && m != "causal" && m != "dense") {
            throw Error("configuration '" + c.name + "': unknown mask kind '" + m + "'");
        }
    }
    return c;
}

}  // namespace

int generate_command(int argc, char **argv) {
    std::string config_path, targets_arg, out_dir, set_name;
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
    std::ifstream in(config_path);
    if (!in) throw Error("cannot read " + config_path);
    nlohmann::json cfg;
    try {
        cfg = nlohmann::json::parse(in);
    } catch (const std::exception &e) {
        throw Error(config_path + ": not valid JSON: " + e.what());
    }
    if (set_name.empty()) set_name = cfg.value("name", "generated_set");
    std::vector<PlanConfig> configs;
    for (const auto &c : cfg.at("configs")) configs.push_back(parse_config(c));

    KernelPlan plan = plan_kernel_set(set_name, split(targets_arg, ','), configs);
    const std::string gen = generator_path();
    fs::create_directories(fs::path(out_dir) / "mhac");

    std::string target_list;
    for (const auto &t : plan.targets)
        target_list += (target_list.empty() ? "" : ",") + t + "-no_runtime";
    // The runtime's target: the baseline's arch-bits-os triple (+ cuda).
    const std::vector<std::string> parts = split(plan.targets.back(), '-');
    if (parts.size() < 3)
        throw Error("target '" + plan.targets.back() + "' is not arch-bits-os[-features]");
    std::string runtime_target = parts[0] + "-" + parts[1] + "-" + parts[2];
    if (plan.device == "cuda") runtime_target += "-cuda";

    // Every kernel, a few at a time; each generator run is single threaded.
    nlohmann::json manifest = {{"set", set_name},
                               {"targets", plan.targets},
                               {"device", plan.device},
                               {"cuda_capability", plan.cuda_capability},
                               {"kernels", nlohmann::json::array()}};
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
        const PlannedKernel &k = plan.kernels[i];
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
    const std::string runtime_name = set_name + "_halide_runtime";
    int rc = wait_for(spawn({gen, "-r", runtime_name, "-o", out_dir, "-e", "static_library",
                             "target=" + runtime_target},
                            out_dir + "/" + runtime_name + ".log"));
    if (rc != 0) failures++;
    if (failures) throw Error(std::to_string(failures) + " generator run(s) failed");

    for (size_t i = 0; i < plan.kernels.size(); i++) {
        const PlannedKernel &k = plan.kernels[i];
        fs::remove(fs::path(out_dir) / (k.name + ".log"));
        manifest["kernels"].push_back(
            {{"name", k.name},
             {"generator", k.generator},
             {"params", k.params},
             {"library", k.name + ".a"},
             {"bytes", fs::file_size(fs::path(out_dir) / (k.name + ".a"))},
             {"generation_seconds", seconds[i]}});
    }
    fs::remove(fs::path(out_dir) / (runtime_name + ".log"));
    manifest["runtime"] = runtime_name + ".a";
    std::ofstream(fs::path(out_dir) / (set_name + "_registry.cpp")) << plan.registry_source;
    std::ofstream(fs::path(out_dir) / "mhac" / ("kernel_set_" + set_name + ".h")) << plan.header;
    std::ofstream(fs::path(out_dir) / "manifest.json") << manifest.dump(2) << "\n";
    std::printf("mhac generate: %zu kernels for %s (%s) in %s\n", plan.kernels.size(),
                set_name.c_str(), targets_arg.c_str(), out_dir.c_str());
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
                    (unsigned long long)k["bytes"].get<uint64_t>(),
                    k["generation_seconds"].get<double>(), params.c_str());
    }
    return 0;
}

}  // namespace mhac::cli
