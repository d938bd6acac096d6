// `mhac tune`: searches the schedule knobs of a configuration's kernels on
// this machine within a stated wall-clock budget and writes the winners to
// the tuned database (docs/tuning.md), from which the build compiles.
//
// Each candidate is the generator's AOT object for the exact target (the
// code the build would produce for that ISA level), linked into a shared
// object. A child process (tune_worker.cpp) checks it against the float64
// reference and times it interleaved with the default kernel (the hand
// defaults, under a shape bucket's own default knobs). Compiles
// run `--jobs` at a time; timing runs alone. Every measurement goes to a
// journal first, so Ctrl-C keeps it and `--resume` does not repeat it.
// The tool runs the generator executable and never links libHalide.
#include "tune_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "generate_command.h"
#include "kernel_plan.h"
#include "mhac/kernel_set_default_set.h"
#include "mhac/mha.h"
#include "mhac_default_table.h"  // kDefaultTable: kernels/CMakeLists.txt's rows
#include "shapes.h"
#include "tune_merge.h"
#include "tuned_db.h"

#ifndef MHAC_SCHEDULE_SOURCE_HASH
#define MHAC_SCHEDULE_SOURCE_HASH "unknown"
#endif
#ifndef MHAC_HALIDE_VERSION
#define MHAC_HALIDE_VERSION "unknown"
#endif
#ifndef MHAC_HALIDE_PLUGIN_DIR
#define MHAC_HALIDE_PLUGIN_DIR ""
#endif

namespace mhac::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) {
    g_interrupted = 1;
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---------------------------------------------------------------- knobs --

// The search space of the hand schedules' knobs (GeneratorParams of the
// generators, defaults in schedules/cpu/cpu_schedules.cpp). GEMM register
// tiles hold 16 columns x gemm_rows rows: the rows that fit the target's
// registers depend on its vector width.
struct KnobRange {
    std::string name;
    std::vector<int> values;
};

int vector_floats(const std::string &target) {
    if (target.find("avx512") != std::string::npos) return 16;
    if (target.find("avx") != std::string::npos) return 8;  // avx, avx2
    return 4;                                               // sse41, arm-64 NEON
}

std::vector<KnobRange> fused_knob_space(const std::string &target) {
    const int v = vector_floats(target);
    const bool arm = target.rfind("arm", 0) == 0;  // 32 vector registers
    std::vector<int> rows = v == 16  ? std::vector<int>{6, 8, 10, 12, 14}
                            : v == 8 ? std::vector<int>{3, 4, 5, 6, 7}
                            : arm    ? std::vector<int>{2, 3, 4, 5, 6}
                                     : std::vector<int>{2, 3};
    return {{"key_block", {32, 64, 128, 192, 256, 512}},
            {"query_block", {24, 48, 64, 96, 128, 192}},
            {"gemm_rows", rows},
            {"gemm_rows_short", {1, 2, 3, 4}},
            {"gemm_k_block", {0, 128, 256}},
            {"gemm_k_unroll", {1, 2, 4, 8}},
            {"gemm_panels", {1, 2}},
            {"gemm_row_block", {64, 128, 256, 512, 1024}},
            {"v_staging", {0, 1}},
            {"attn_k_unroll", {1, 2, 4}},
            {"absorb_kv", {0, 1}},
            {"gemm_rows_exact", {0, 2, 3, 4, 5}},
            {"attn_reduce_rows", {1, 2, 4, 8}},
            {"kv_at_blocks", {0, 1}}};
}

// The range named `name` in `space`, or null.
const KnobRange *find_range(const std::vector<KnobRange> &space, const std::string &name) {
    for (const KnobRange &r : space)
        if (r.name == name) return &r;
    return nullptr;
}

// The knob names, comma separated (--knobs' help and errors).
std::string knob_names() {
    std::string all;
    for (const KnobRange &r : fused_knob_space("")) all += (all.empty() ? "" : ", ") + r.name;
    return all;
}

// The space restricted to `names` (comma separated; empty: every knob).
// Throws on a name the space does not have.
std::vector<KnobRange> searched_knobs(const std::string &target, const std::string &names) {
    std::vector<KnobRange> space = fused_knob_space(target);
    if (names.empty()) return space;
    std::vector<KnobRange> kept;
    for (const std::string &n : plan::split_list(names, ',')) {
        const KnobRange *r = find_range(space, n);
        if (!r) throw Error("--knobs: unknown knob '" + n + "' (" + knob_names() + ")");
        if (!find_range(kept, n)) kept.push_back(*r);
    }
    return kept;
}

using Knobs = std::map<std::string, int>;

std::string knobs_text(const Knobs &k) {
    if (k.empty()) return "hand defaults";
    std::string s;
    for (const auto &[name, v] : k) s += (s.empty() ? "" : ",") + name + "=" + std::to_string(v);
    return s;
}

// Generator parameters that are schedule knobs (tuned_param.h's table),
// not part of the algorithm.
bool is_knob_param(const std::string &key_value) {
    const std::string key = key_value.substr(0, key_value.find('='));
    return tuned::find_knob(key) || key == "tuned";
}

// ---------------------------------------------------------------- shapes --

struct Shape {
    int64_t batch, queries, keys;
    // A bench/shapes.h name's layer sizes (Eq, Ek, Ev, N, H, Hv, O), empty
    // for B,T,S items: the generic row has no sizes of its own and is timed
    // at these where given.
    std::vector<int64_t> layer = {};
};

std::string shape_text(const Shape &s) {
    std::string text =
        std::to_string(s.batch) + "," + std::to_string(s.queries) + "," + std::to_string(s.keys);
    if (s.layer.size() == 7) {
        const auto v = [&](int i) { return std::to_string(s.layer[i]); };
        text += " (E=" + v(0) + "," + v(1) + "," + v(2) + " N=" + v(3) + " H=" + v(4) +
                " Hv=" + v(5) + " O=" + v(6) + ")";
    }
    return text;
}

// The worker's form of a shape: [B, T, S] or [B, T, S, Eq, Ek, Ev, N, H, Hv, O].
json shape_json(const Shape &s) {
    json j = {s.batch, s.queries, s.keys};
    for (int64_t v : s.layer) j.push_back(v);
    return j;
}

// A bucket's own shape, where it is tuned when no --shapes item falls inside
// it: B = 1, up to 16 queries in its range (T = 1 for decode), at least 128
// keys (512 for decode), and T = S = 1024 for the long bucket.
Shape typical_shape(const tuned::Bucket &b) {
    if (b.min_keys >= 1024) return {1, 1024, 1024};
    const int64_t t = b.max_queries ? std::min<int64_t>(b.max_queries, 16) : b.min_queries;
    const int64_t queries = std::max<int64_t>(t, b.min_queries);
    return {1, queries, std::max<int64_t>(b.min_keys, queries > 1 ? 128 : 512)};
}

// "decode, few, short, long": the names of tuned::kBuckets, for messages.
std::string bucket_names() {
    std::string names;
    for (const tuned::Bucket &b : tuned::kBuckets)
        names += (names.empty() ? "" : ", ") + std::string(b.name);
    return names;
}

// --shapes: "B,T,S" items and names (a bucket of tuned::kBuckets, its
// typical_shape, or a benchmark shape of bench/shapes.h), separated by ';' or
// spaces.
std::vector<Shape> parse_shapes(const std::string &text, const plan::ConfigRow &row) {
    std::vector<Shape> out;
    std::string items = text;
    std::replace(items.begin(), items.end(), ';', ' ');
    std::istringstream in(items);
    for (std::string item; in >> item;) {
        if (const tuned::Bucket *b = tuned::find_bucket(item)) {
            out.push_back(typical_shape(*b));
        } else if (std::isdigit(static_cast<unsigned char>(item[0]))) {
            std::vector<std::string> f = plan::split_list(item, ',');
            Shape s{};
            int64_t *dst[] = {&s.batch, &s.queries, &s.keys};
            bool ok = f.size() == 3;
            for (size_t i = 0; ok && i < 3; i++) {
                char *end = nullptr;
                long long v = std::strtoll(f[i].c_str(), &end, 10);
                ok = *end == 0 && v >= 1 && v <= (1 << 16);
                *dst[i] = v;
            }
            if (!ok) throw Error("--shapes: '" + item + "' is not B,T,S (each 1..65536)");
            out.push_back(s);
        } else {
            bool found = false;
            for (const bench::BenchShape &b : bench::kShapes) {
                if (item != b.name) continue;
                out.push_back({b.batch,
                               b.queries,
                               b.keys,
                               {b.query_features, b.key_features, b.value_features, b.num_heads,
                                b.key_dim, b.value_dim, b.output_features}});
                found = true;
            }
            if (!found) {
                throw Error("--shapes: unknown shape '" + item + "' (B,T,S, " + bucket_names() +
                            ", or a bench/shapes.h name)");
            }
        }
    }
    if (out.empty() && !text.empty()) throw Error("--shapes: no shape given");
    if (!out.empty()) return out;
    // Default: the benchmark shapes of this configuration's sizes, except
    // the long ones (minutes per candidate); the short bucket if none.
    for (const bench::BenchShape &b : bench::kShapes) {
        const bool same = b.num_heads == row.num_heads && b.key_dim == row.key_dim &&
                          b.value_dim == row.value_dim && b.query_features == row.query_features &&
                          b.key_features == row.key_features &&
                          b.output_features == row.output_features;
        if (same && b.batch * b.queries * b.keys <= (int64_t{1} << 20))
            out.push_back({b.batch, b.queries, b.keys});
    }
    if (out.empty()) out.push_back({1, 128, 128});
    return out;
}

// Check shapes: odd sizes across the query, key and GEMM tile boundaries of
// every knob value, key given apart from value, B = 2.
const std::vector<Shape> kCheckShapes = {{2, 37, 53}, {1, 1, 130}, {1, 130, 600}};

// ---------------------------------------------------------------- target --

// `--target host`: the best level of the default ladder this CPU runs (what
// the build's multi-target kernels dispatch to here).
std::string host_target() {
    const std::string ladder = kernel_sets::default_set().targets;
    std::istringstream in(ladder);
    std::string last;
    for (std::string t; in >> t;) {
        last = t;
        const char *level = t.find("avx512") != std::string::npos  ? "avx512"
                            : t.find("avx2") != std::string::npos  ? "avx2"
                            : t.find("sse41") != std::string::npos ? "sse41"
                                                                   : nullptr;
        if (level && cpu_supports_isa_level(level)) return t;
        if (!level && t.find("arm_dot_prod") == std::string::npos) return t;
    }
    return last;
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
            const size_t colon = line.find(':');
            if (colon != std::string::npos) {
                std::string v = line.substr(colon + 1);
                v.erase(0, v.find_first_not_of(' '));
                return v;
            }
        }
    }
    return "unknown";
}

std::string utc_now() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

uint64_t fnv1a(const std::string &s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}
std::string hex(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

std::optional<std::string> file_hash(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return hex(fnv1a(ss.str()));
}

std::string stamp_of(const std::string &path) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    const auto time = fs::last_write_time(path, ec).time_since_epoch().count();
    return std::string(MHAC_SCHEDULE_SOURCE_HASH) + " " + std::to_string(size) + " " +
           std::to_string(time);
}

// ------------------------------------------------------------- processes --

// A child in its own process group (so a terminal's Ctrl-C reaches only
// mhac tune, which stops its children itself), output to `log`.
pid_t start_process(const std::vector<std::string> &args, const fs::path &log,
                    int halide_threads = 0) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        if (halide_threads > 0) setenv("HL_NUM_THREADS", std::to_string(halide_threads).c_str(), 1);
        signal(SIGINT, SIG_DFL);
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        std::vector<char *> argv;
        for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    if (pid > 0) setpgid(pid, pid);
    return pid;
}

void kill_process(pid_t pid) {
    kill(-pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
}

// Exit status of a finished child, or nullopt while it runs.
std::optional<int> finished(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != pid) return std::nullopt;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string tail_of(const fs::path &log, size_t max_chars = 600) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (s.size() > max_chars) s = "..." + s.substr(s.size() - max_chars);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// ------------------------------------------------------------ candidates --

struct Timing {
    Shape shape;
    int threads = 0;
    double default_ms = 0, candidate_ms = 0, default_spread = 0, candidate_spread = 0;
};

struct Candidate {
    Knobs knobs;
    std::string autoscheduler;   // a twin: Halide's autoscheduler instead of the hand schedule
    std::string status = "new";  // new, compiled, measured, duplicate, rejected, failed
    std::string note;            // why rejected or failed, or "same code as ..."
    fs::path so;
    std::string object_hash;
    double compile_s = 0;
    std::vector<Timing> timings;

    std::string label() const {
        return autoscheduler.empty() ? knobs_text(knobs) : "autoscheduler " + autoscheduler;
    }
    std::string id() const {
        return autoscheduler.empty() ? knobs_text(knobs) : "as:" + autoscheduler;
    }
    // Geometric mean of default / candidate over the timings, and the worst.
    double speedup() const {
        if (timings.empty()) return 0;
        double log_sum = 0;
        for (const Timing &t : timings) log_sum += std::log(t.default_ms / t.candidate_ms);
        return std::exp(log_sum / static_cast<double>(timings.size()));
    }
    double worst_speedup() const {
        double w = timings.empty() ? 0 : 1e30;
        for (const Timing &t : timings) w = std::min(w, t.default_ms / t.candidate_ms);
        return w;
    }
};

json timings_json(const std::vector<Timing> &ts) {
    json a = json::array();
    for (const Timing &t : ts) {
        a.push_back({{"shape", shape_text(t.shape)},
                     {"threads", t.threads},
                     {"default_ms", t.default_ms},
                     {"candidate_ms", t.candidate_ms},
                     {"default_spread", t.default_spread},
                     {"candidate_spread", t.candidate_spread}});
    }
    return a;
}

std::vector<Timing> timings_from(const json &a) {
    std::vector<Timing> ts;
    for (const json &t : a) {
        Timing x;
        if (t.contains("shape")) {
            std::vector<std::string> f = plan::split_list(t.at("shape").get<std::string>(), ',');
            if (f.size() == 3) x.shape = {std::stoll(f[0]), std::stoll(f[1]), std::stoll(f[2])};
        } else {
            x.shape = {t.at("batch"), t.at("queries"), t.at("keys")};
        }
        x.threads = t.at("threads");
        x.default_ms = t.at("default_ms");
        x.candidate_ms = t.at("candidate_ms");
        x.default_spread = t.at("default_spread");
        x.candidate_spread = t.at("candidate_spread");
        ts.push_back(x);
    }
    return ts;
}

// ---------------------------------------------------------------- options --

struct Options {
    std::string config = "tiny";
    std::string kernels = "fused";
    std::string masks;  // empty: every mask kind the row compiles
    std::string buckets = "all";
    std::string report;  // markdown file the results are appended to
    std::string target = "host";
    std::string shapes;
    std::string budget = "20m";
    std::string threads;
    std::string db;
    std::string work_dir;
    std::string shard;
    std::string autoschedulers = "Mullapudi2016,Li2018,Adams2019";
    std::string knobs;     // the knobs searched, comma separated; empty: all
    std::string twin_cap;  // empty: ten knob candidates' timings, at least 30 s
    int jobs = 0;
    bool resume = false;
    uint64_t seed = 1;
    double seconds_per_shape = 0.3;
};

double parse_duration(const std::string &text, const std::string &option) {
    char *end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    const std::string unit = end ? end : "";
    const double scale = unit == "" || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : -1;
    if (!(v > 0) || scale < 0 || end == text.c_str()) {
        throw Error(option + ": '" + text + "' is not a duration such as 90s, 20m or 1.5h");
    }
    return v * scale;
}

// The rows of --config: a row name of the default table (or "generic"), or
// a configuration file as `mhac generate` takes.
plan::ConfigRow resolve_config(const std::string &config) {
    if (config == "generic") return plan::generic_row();
    std::istringstream table(kDefaultTable);
    std::string names;
    for (std::string line; std::getline(table, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        plan::ConfigRow row = plan::parse_row(line);
        if (row.name == config) return row;
        names += (names.empty() ? "" : ", ") + row.name;
    }
    if (!fs::exists(config)) {
        throw Error("--config: '" + config + "' is neither a row of the default table (" + names +
                    ", generic) nor a configuration file");
    }
    std::vector<plan::ConfigRow> rows = load_config_rows(config);
    if (rows.size() != 1) {
        throw Error("--config " + config + ": holds " + std::to_string(rows.size()) +
                    " configurations; tune one at a time");
    }
    return rows[0];
}

// ----------------------------------------------------------------- tuner --

// The progress line on a terminal, plain log lines otherwise.
class Progress {
public:
    Progress(double budget_s, Clock::time_point start)
        : budget_s_(budget_s), start_(start), tty_(isatty(STDERR_FILENO)) {}
    bool tty() const { return tty_; }

    void log(const std::string &line) {
        clear();
        std::fprintf(stderr, "[%s] %s\n", clock_text(seconds_since(start_)).c_str(), line.c_str());
        draw(true);
    }
    void update(const std::string &kernel, int done, int total, double best, double eta_s) {
        kernel_ = kernel, done_ = done, total_ = total, best_ = best, eta_s_ = eta_s;
        draw(false);
    }
    void draw(bool force) {
        if (!tty_ || kernel_.empty()) return;
        const double now = seconds_since(start_);
        if (!force && now - last_draw_ < 0.2) return;
        last_draw_ = now;
        const int width = 24;
        const int filled = total_ > 0 ? std::min(width, width * done_ / total_) : 0;
        std::string bar(static_cast<size_t>(filled), '#');
        bar.resize(width, '-');
        char line[256];
        std::snprintf(line, sizeof line, "\r\033[K%s [%s] %d/%d  %s/%s  ETA %s  best %.3fx",
                      kernel_.c_str(), bar.c_str(), done_, total_, clock_text(now).c_str(),
                      clock_text(budget_s_).c_str(), clock_text(eta_s_).c_str(), best_);
        std::fputs(line, stderr);
        std::fflush(stderr);
        drawn_ = true;
    }
    void clear() {
        if (tty_ && drawn_) std::fputs("\r\033[K", stderr);
        drawn_ = false;
    }
    static std::string clock_text(double s) {
        const int t = static_cast<int>(std::max(0.0, s));
        char buf[16];
        std::snprintf(buf, sizeof buf, "%d:%02d", t / 60, t % 60);
        return buf;
    }

private:
    double budget_s_;
    Clock::time_point start_;
    bool tty_;
    bool drawn_ = false;
    double last_draw_ = -1;
    std::string kernel_;
    int done_ = 0, total_ = 0;
    double best_ = 1, eta_s_ = 0;
};

struct KernelJob {
    plan::PlannedKernel planned;
    std::vector<std::string> structural;  // params without knobs, sorted: the entry's key
    std::vector<std::string> row_knobs;   // knobs the table row sets
    std::string mask;
    std::string bucket = "all";  // tuned::kBuckets name, or all shapes
    std::vector<Shape> shapes;   // timed, all inside the bucket
    std::string label;           // config/fused/mask[/bucket]
};

class Tuner {
public:
    Tuner(Options o, plan::ConfigRow row, std::string target, std::vector<int> threads)
        : o_(std::move(o)),
          row_(std::move(row)),
          target_(std::move(target)),
          threads_(std::move(threads)),
          start_(Clock::now()),
          budget_s_(parse_duration(o_.budget, "--budget")),
          twin_cap_option_s_(o_.twin_cap.empty() ? 0 : parse_duration(o_.twin_cap, "--twin-cap")),
          progress_(budget_s_, start_),
          generator_(checked_generator_path()),
          generator_stamp_(stamp_of(generator_)),
          space_(searched_knobs(target_, o_.knobs)),
          rng_(o_.seed) {}

    // Returns the process exit status.
    int run(std::vector<KernelJob> jobs) {
        int rc = 0;
        for (size_t i = 0; i < jobs.size() && !g_interrupted; i++) {
            const double left = budget_s_ - seconds_since(start_);
            const double share = left / static_cast<double>(jobs.size() - i);
            if (share < 5) {
                progress_.log("budget spent: " + jobs[i].label + " and later kernels not tuned");
                break;
            }
            rc |= tune_kernel(jobs[i], seconds_since(start_) + share);
        }
        progress_.clear();
        if (g_interrupted) {
            std::fprintf(stderr,
                         "mhac tune: interrupted; every finished measurement is in the journal "
                         "(continue with --resume)\n");
            return 130;
        }
        return rc;
    }

private:
    // ------------------------------------------------------------ one kernel
    int tune_kernel(const KernelJob &job, double deadline_s) {
        job_ = &job;
        cands_.clear();
        unconfirmed_.clear();
        measured_kernel_ = 0;
        knob_measure_s_ = 0;
        knob_measured_ = 0;
        best_ = 1;
        by_id_.clear();
        by_hash_.clear();
        const std::string key = journal_key(job);
        journal_ = work_ / ("journal-" + hex(fnv1a(key)) + ".jsonl");
        if (o_.resume) {
            load_journal(key);
        } else {
            fs::remove(journal_);
        }
        if (!fs::exists(journal_)) append_journal({{"key", key}, {"started", utc_now()}});

        progress_.log("tuning " + job.label + " (" + job.planned.name + ") for " + target_ +
                      ", shapes " + shapes_list(job.shapes) + ", " + std::to_string(cands_.size()) +
                      " candidates from the journal");
        // The build's kernel without an entry first: everything is measured
        // against it. That is the hand defaults, under a bucket's own default
        // knobs (decode: absorb_kv=1; the planner applies an entry's knobs
        // over them, so an entry keeping the defaults lists none of them).
        default_knobs_.clear();
        if (const tuned::Bucket *b = tuned::find_bucket(job.bucket))
            default_knobs_ = parse_knobs(plan::split_list(b->cpu_default_knobs, ','));
        Candidate &base = candidate(default_knobs_, "");
        compile_batch({&base}, deadline_s);
        if (base.status != "compiled" && base.status != "measured") {
            progress_.log(
                "the default kernel did not compile" +
                (base.note.empty() ? std::string(" within the budget") : ": " + base.note));
            return 1;
        }
        base_ = &base;
        base.status = "measured";
        progress_.log("every candidate is timed against the default kernel (" +
                      knobs_text(default_knobs_) + ")");
        seeds_ = earlier_winners(job);
        if (!seeds_.empty()) {
            std::string list;
            for (const Knobs &k : seeds_) list += (list.empty() ? "" : "; ") + knobs_text(k);
            progress_.log("first candidates: the database's earlier winners for this kernel (" +
                          list + ")");
        }

        std::vector<std::string> twins = plan::split_list(o_.autoschedulers, ',');
        if (o_.autoschedulers == "none") twins.clear();
        // Past the deadline nothing starts, measured or not (compiles started
        // then would only be stopped again).
        while (!g_interrupted && seconds_since(start_) < deadline_s) {
            // One autoscheduled twin per batch at most, beside knob candidates.
            std::vector<Candidate *> batch;
            for (const std::string &t : twins) {
                if (batch.empty() && o_.jobs > 1 && !by_id_.count("as:" + t))
                    batch.push_back(&candidate({}, t));
            }
            propose(batch);
            if (batch.empty()) {
                progress_.log(job.label + ": the knob space around the best is exhausted");
                break;
            }
            // Start a batch only if it can finish; the first always runs. A
            // twin in the batch is counted at its cap.
            const double per_candidate = knob_candidate_s();
            const double compile_est = compiled_ > 0 ? compile_s_ / compiled_ : 0;
            double needed = compile_est * std::ceil(double(batch.size()) / o_.jobs);
            for (const Candidate *c : batch)
                needed += c->autoscheduler.empty() ? per_candidate : twin_cap_s();
            // Room for finish()'s two confirmation runs at three times the
            // timing: without it a shape of half a second a call (long_4096)
            // ran the search to the deadline and the best (1.15x) was never
            // confirmed, so the entry kept the hand defaults.
            const double confirm = 2 * 3 * per_candidate;
            if (seconds_since(start_) + needed + confirm > deadline_s && measured_kernel_ > 0) {
                for (Candidate *c : batch) forget(*c);
                break;
            }
            compile_batch(batch, deadline_s);
            // Knob candidates first: their times bound the twin's (twin_cap_s).
            std::stable_partition(batch.begin(), batch.end(),
                                  [](const Candidate *c) { return c->autoscheduler.empty(); });
            for (Candidate *c : batch) {
                if (g_interrupted || seconds_since(start_) > deadline_s) break;
                if (c->status == "compiled") measure(*c, o_.seconds_per_shape, deadline_s);
            }
        }
        return finish(job, deadline_s);
    }

    // The best knob candidate, re-measured; the entry written.
    int finish(const KernelJob &job, double deadline_s) {
        Candidate *best = nullptr;
        for (Candidate &c : cands_) {
            if (c.status != "measured" || &c == base_ || !c.autoscheduler.empty()) continue;
            if (!best || c.speedup() > best->speedup()) best = &c;
        }
        std::vector<Timing> final_timings;
        std::string found_by = defaults_kept() + " (nothing measured beat them)";
        Knobs winner;
        if (!best && !g_interrupted) {
            // Nothing passed (or nothing fit the budget): the hand defaults
            // stay, timed against themselves for the entry.
            Candidate self = *base_;
            if (run_worker(self, o_.seconds_per_shape, budget_s_ + 10)) {
                report(job, {}, self.timings);
                write_entry(job, {}, defaults_kept() + " (no candidate passed and was measured)",
                            self.timings);
                return 0;
            }
        }
        if (!best) {
            progress_.log(job.label + ": no candidate measured; no entry written");
            return g_interrupted ? 0 : 1;
        }
        const double budget_end = budget_s_ + 10;  // the final check may use the slack
        if (best->speedup() > 1.01 && !g_interrupted && seconds_since(start_) < budget_end) {
            progress_.log("re-measuring the best (" + best->label() + ", " + fmt(best->speedup()) +
                          "x) against " + defaults_named());
            // A confirmation that fails narrowly on one shape gets a second;
            // then each shape takes the median of the three runs (the
            // search's own included), so one noisy repetition decides neither way.
            std::vector<std::vector<Timing>> runs = {best->timings};
            for (int round = 0; round < 2 && !g_interrupted; round++) {
                Candidate again = *best;
                again.timings.clear();
                if (!run_worker(again, 3 * o_.seconds_per_shape, budget_end)) break;
                runs.push_back(again.timings);
                Candidate judged = *best;
                judged.timings = round == 0 ? again.timings : median_timings(runs);
                if (judged.worst_speedup() >= 1.0 && judged.speedup() > 1.01) {
                    unconfirmed_.clear();  // a first round that failed is not the verdict
                    winner = best->knobs;
                    found_by =
                        round == 0 ? "knob search" : "knob search (per shape the median of 3 runs)";
                    final_timings = judged.timings;
                    break;
                }
                progress_.log(std::string(round == 0 ? "not confirmed" : "not confirmed twice") +
                              " (" + fmt(judged.speedup()) + "x, worst shape " +
                              fmt(judged.worst_speedup()) + "x)");
                final_timings = baseline_timings(judged.timings);
                unconfirmed_ = best->label() + ": " + fmt(judged.speedup()) + "x, worst shape " +
                               fmt(judged.worst_speedup()) + "x";
                if (judged.speedup() < 1.03 || judged.worst_speedup() < 0.95) break;
            }
            if (winner.empty()) progress_.log("keeping " + defaults_named());
        } else if (best->speedup() > 1.01 && g_interrupted && best->worst_speedup() >= 1.0) {
            winner = best->knobs;  // interrupted: keep what was measured
            found_by = "knob search (interrupted before re-measuring)";
            final_timings = best->timings;
        } else {
            final_timings = baseline_timings(best->timings);
        }
        report(job, winner, final_timings);
        write_entry(job, winner, found_by, final_timings);
        return 0;
    }

    // Per shape and thread count, the timing whose candidate/default ratio
    // is the median of `runs` (each run lists the same shapes in order).
    static std::vector<Timing> median_timings(const std::vector<std::vector<Timing>> &runs) {
        std::vector<Timing> out;
        for (size_t i = 0; i < runs[0].size(); i++) {
            std::vector<Timing> at;
            for (const auto &r : runs) {
                if (i < r.size()) at.push_back(r[i]);
            }
            std::sort(at.begin(), at.end(), [](const Timing &a, const Timing &b) {
                return a.default_ms / a.candidate_ms < b.default_ms / b.candidate_ms;
            });
            out.push_back(at[at.size() / 2]);
        }
        return out;
    }

    // The hand defaults' side of a measurement, as the entry of a kernel
    // whose defaults won.
    static std::vector<Timing> baseline_timings(std::vector<Timing> ts) {
        for (Timing &t : ts) t.candidate_ms = t.default_ms, t.candidate_spread = t.default_spread;
        return ts;
    }

    void report(const KernelJob &job, const Knobs &winner, const std::vector<Timing> &final_t) {
        int measured = 0, rejected = 0, duplicate = 0, failed = 0;
        for (const Candidate &c : cands_) {
            measured += c.status == "measured" && &c != base_;
            rejected += c.status == "rejected";
            duplicate += c.status == "duplicate";
            failed += c.status == "failed";
        }
        progress_.log(job.label + ": " + std::to_string(measured) + " measured, " +
                      std::to_string(rejected) + " rejected (wrong results or run-time errors), " +
                      std::to_string(failed) + " failed to compile, " + std::to_string(duplicate) +
                      " generated the same code as another; winner: " + knobs_text(winner));
        for (const Timing &t : final_t) {
            progress_.log("  B,T,S " + shape_text(t.shape) + " threads " +
                          std::to_string(t.threads) + ": hand " + fmt(t.default_ms) +
                          " ms, tuned " + fmt(t.candidate_ms) + " ms (" +
                          fmt(t.default_ms / t.candidate_ms) + "x)");
        }
        for (const Candidate &c : cands_) {
            if (c.autoscheduler.empty() || c.status != "measured") continue;
            progress_.log("  twin " + c.label() + ": " + fmt(c.speedup()) +
                          "x of the hand schedule (geometric mean over the shapes)");
        }
        if (!o_.report.empty())
            write_report(job, winner, final_t, measured, rejected, failed, duplicate);
    }

    // A markdown section: the hand schedule, the winner and the
    // autoscheduled twins per shape (each twin timed interleaved with the
    // hand schedule in its own run, so its ratio is the comparable number).
    void write_report(const KernelJob &job, const Knobs &winner, const std::vector<Timing> &final_t,
                      int measured, int rejected, int failed, int duplicate) {
        std::vector<const Candidate *> twins;
        for (const Candidate &c : cands_) {
            if (!c.autoscheduler.empty() && c.status != "new" && c.status != "skipped")
                twins.push_back(&c);
        }
        std::ofstream md(o_.report, std::ios::app);
        md << "\n### " << job.label << " (`" << job.planned.name << "`), " << target_ << "\n\n"
           << "Machine: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " CPUs; "
           << utc_now() << "; budget " << fmt(budget_s_) << " s for the run; " << measured
           << " candidates measured, " << rejected << " rejected, " << failed
           << " failed to compile, " << duplicate
           << " the same code as another. Winner: " << knobs_text(winner)
           << (unconfirmed_.empty() ? "" : " (best candidate not confirmed: " + unconfirmed_ + ")")
           << ".\n\n"
           << "| B, T, S | threads | hand ms | tuned ms | speedup |";
        for (const Candidate *t : twins) md << " " << t->autoscheduler << " ms (x hand) |";
        md << "\n|---|---:|---:|---:|---:|";
        for (size_t i = 0; i < twins.size(); i++) md << "---|";
        md << "\n";
        for (const Timing &t : final_t) {
            md << "| " << shape_text(t.shape) << " | " << t.threads << " | " << fmt(t.default_ms)
               << " | " << fmt(t.candidate_ms) << " | " << fmt(t.default_ms / t.candidate_ms)
               << " |";
            for (const Candidate *c : twins) {
                const Timing *m = nullptr;
                for (const Timing &x : c->timings) {
                    if (shape_text(x.shape) == shape_text(t.shape) && x.threads == t.threads)
                        m = &x;
                }
                if (m) {
                    md << " " << fmt(m->candidate_ms) << " ("
                       << fmt(m->candidate_ms / m->default_ms) << ") |";
                } else {
                    md << " " << (c->status == "rejected" ? "rejected" : c->status) << " |";
                }
            }
            md << "\n";
        }
        for (const Candidate *c : twins) {
            if (c->status == "rejected" || c->status == "failed")
                md << "\n" << c->autoscheduler << ": " << c->status << ": " << c->note << "\n";
        }
    }

    // The default kernel in words: the hand defaults, or for a bucket with
    // default knobs of its own (decode, few: absorb_kv=1) those over them.
    std::string defaults_named() const {
        return default_knobs_.empty()
                   ? "the hand defaults"
                   : "the bucket's defaults (" + knobs_text(default_knobs_) + ")";
    }
    // An entry's found_by when the default kernel stays.
    std::string defaults_kept() const {
        return default_knobs_.empty() ? "hand defaults"
                                      : "bucket defaults " + knobs_text(default_knobs_);
    }

    void write_entry(const KernelJob &job, const Knobs &winner, const std::string &found_by,
                     const std::vector<Timing> &ts) {
        tuned::Entry e;
        e.generator = job.planned.generator;
        e.config = row_.name;
        e.kernel_params = job.structural;
        e.target = tuned::canonical_target(target_);
        e.bucket = job.bucket;
        e.source_hash = MHAC_SCHEDULE_SOURCE_HASH;
        e.halide_version = MHAC_HALIDE_VERSION;
        for (const auto &[k, v] : winner) e.knobs.push_back(k + "=" + std::to_string(v));
        e.found_by = found_by;
        for (const Timing &t : ts) {
            e.timings.push_back({static_cast<int>(t.shape.batch), static_cast<int>(t.shape.queries),
                                 static_cast<int>(t.shape.keys), t.threads, t.candidate_ms,
                                 t.default_ms, t.candidate_spread, t.default_spread});
        }
        e.cpu = cpu_model();
        e.cores = static_cast<int>(std::thread::hardware_concurrency());
        e.date = utc_now();
        e.budget_s = budget_s_;
        e.spent_s = seconds_since(start_);
        for (const Candidate &c : cands_) {
            if (&c == base_) continue;
            e.candidates +=
                c.status == "measured" || c.status == "rejected" || c.status == "failed";
            e.rejected += c.status == "rejected" || c.status == "failed";
        }
        tuned::Database db = tuned::load_dir(o_.db);
        tuned::upsert(db, e);
        tuned::save_dir(db, o_.db);
        progress_.log("wrote " + (fs::path(o_.db) / (e.target + ".json")).string() + ": " +
                      job.planned.name + " -> " + knobs_text(winner));
    }

    // The knobs of the database's entries for this kernel and bucket, of any
    // source hash: after a schedule change the last winners are stale, yet
    // the likeliest starting points (a random search of a few minutes may not
    // meet them again). An unreadable database seeds nothing (writing the
    // entry reports it).
    std::vector<Knobs> earlier_winners(const KernelJob &job) const {
        std::vector<Knobs> out;
        tuned::Database db;
        try {
            db = tuned::load_dir(o_.db);
        } catch (const std::exception &) {
            return out;
        }
        for (const tuned::Entry &e : db.entries) {
            if (e.generator != job.planned.generator || e.kernel_params != job.structural ||
                e.target != tuned::canonical_target(target_) || e.bucket != job.bucket ||
                e.knobs.empty())
                continue;
            // load_dir checked every knob (tuned::apply_knob): a known name
            // and an integer value.
            const Knobs k = searched_part(e.knobs);
            if (!k.empty() && valid(k) && std::find(out.begin(), out.end(), k) == out.end())
                out.push_back(k);
        }
        return out;
    }

    bool searched(const std::string &knob) const { return find_range(space_, knob) != nullptr; }

    // The settings ("name=value", names known, values integers) of knobs
    // searched; the others are left at the hand defaults (--knobs).
    Knobs searched_part(const std::vector<std::string> &settings) const {
        Knobs k;
        for (const auto &[name, value] : parse_knobs(settings)) {
            if (searched(name)) k[name] = value;
        }
        return k;
    }
    static Knobs parse_knobs(const std::vector<std::string> &settings) {
        Knobs k;
        for (const std::string &kv : settings) {
            const size_t eq = kv.find('=');
            k[kv.substr(0, eq)] = std::stoi(kv.substr(eq + 1));
        }
        return k;
    }

    // ----------------------------------------------------------- candidates
    Candidate &candidate(const Knobs &k, const std::string &autoscheduler) {
        Candidate c;
        c.knobs = k;
        c.autoscheduler = autoscheduler;
        auto it = by_id_.find(c.id());
        if (it != by_id_.end()) return cands_[it->second];
        by_id_[c.id()] = cands_.size();
        cands_.push_back(std::move(c));
        return cands_.back();
    }
    void forget(Candidate &c) {
        if (c.status == "new") {
            by_id_.erase(c.id());
            c.status = "skipped";
        }
    }

    // The hand schedule needs shorter short tiles than full ones (with
    // gemm_rows_short >= gemm_rows its two splits collide and the generator
    // fails), and folded K and V (absorb_kv=1) store T x S logits per head,
    // linear in S only where the bucket bounds T: such settings are not
    // proposed.
    bool valid(const Knobs &k) const {
        auto rows = k.find("gemm_rows"), short_rows = k.find("gemm_rows_short");
        auto absorb = k.find("absorb_kv");
        const tuned::Bucket *bucket = tuned::find_bucket(job_->bucket);
        const bool bounded_queries = bucket && bucket->max_queries > 0;
        if (absorb != k.end() && absorb->second == 1 && !bounded_queries) return false;
        return rows == k.end() || short_rows == k.end() || short_rows->second < rows->second;
    }

    // Fills `batch` up to --jobs with untried knob settings: every single
    // knob change of the best so far first, then random changes of two.
    void propose(std::vector<Candidate *> &batch) {
        for (const Knobs &k : seeds_) {
            if (batch.size() >= static_cast<size_t>(o_.jobs)) return;
            Candidate &c = candidate(k, "");
            if (c.status == "new") batch.push_back(&c);
        }
        const Candidate *best = nullptr;
        for (const Candidate &c : cands_) {
            if (c.status == "measured" && c.autoscheduler.empty() &&
                (!best || c.speedup() > best->speedup()))
                best = &c;
        }
        const Knobs center = best && best->speedup() > 1.0 ? best->knobs : base_->knobs;
        std::vector<Knobs> options;
        for (const KnobRange &r : space_) {
            for (int v : r.values) {
                Knobs k = center;
                k[r.name] = v;
                if (valid(k) && !by_id_.count(knobs_text(k))) options.push_back(k);
            }
        }
        std::shuffle(options.begin(), options.end(), rng_);
        for (int tries = 0; options.size() < static_cast<size_t>(o_.jobs) && tries < 200; tries++) {
            Knobs k = center;
            for (int n = 0; n < 2; n++) {
                const KnobRange &r = space_[rng_() % space_.size()];
                k[r.name] = r.values[rng_() % r.values.size()];
            }
            if (valid(k) && !by_id_.count(knobs_text(k))) options.push_back(k);
        }
        for (const Knobs &k : options) {
            if (batch.size() >= static_cast<size_t>(o_.jobs)) break;
            Candidate &c = candidate(k, "");
            if (c.status == "new") batch.push_back(&c);
        }
    }

    // The generator's arguments for a candidate: the kernel's algorithm
    // parameters, the row's knobs unless the candidate sets them, its knobs.
    std::vector<std::string> generator_args(const Candidate &c, const fs::path &dir) const {
        std::vector<std::string> a = {generator_,
                                      "-g",
                                      job_->planned.generator,
                                      "-f",
                                      "mhac_tune_kernel",
                                      "-e",
                                      "object",
                                      "-o",
                                      dir.string(),
                                      "target=" + target_};
        // Test hook (tests/tune): every candidate but the default kernel is
        // generated with one algorithm parameter replaced, e.g.
        // mask_kind=causal for a kernel without a mask, so that it computes
        // a wrong result through the same entry point.
        const char *wrong = std::getenv("MHAC_TUNE_TEST_WRONG_PARAM");
        const bool inject =
            wrong && *wrong && (c.knobs != default_knobs_ || !c.autoscheduler.empty());
        const std::string wrong_key =
            inject ? std::string(wrong).substr(0, std::string(wrong).find('=')) : "";
        for (const std::string &p : job_->structural) {
            a.push_back(inject && p.substr(0, p.find('=')) == wrong_key ? std::string(wrong) : p);
        }
        for (const std::string &p : job_->row_knobs) {
            if (!c.knobs.count(p.substr(0, p.find('=')))) a.push_back(p);
        }
        for (const auto &[k, v] : c.knobs) a.push_back(k + "=" + std::to_string(v));
        if (!c.autoscheduler.empty()) {
            std::string lower = c.autoscheduler;
            std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
            a.push_back("-p");
            a.push_back(std::string(MHAC_HALIDE_PLUGIN_DIR) + "/libautoschedule_" + lower + ".so");
            a.push_back("autoscheduler=" + c.autoscheduler);
            // Adams2019's default beam search does not finish in minutes on
            // the fused layer (issue 8's measurement); a greedy pass does.
            if (c.autoscheduler == "Adams2019") a.push_back("autoscheduler.beam_size=1");
            a.push_back("autoscheduler.parallelism=" +
                        std::to_string(std::thread::hardware_concurrency()));
        }
        return a;
    }

    // Compiles `batch` --jobs at a time; objects are cached by their
    // generator command, so a resumed run reuses them.
    void compile_batch(const std::vector<Candidate *> &batch, double deadline_s) {
        struct Running {
            Candidate *c;
            pid_t pid;
            Clock::time_point start;
            fs::path dir;
            int step;  // 0 generator, 1 link
        };
        std::vector<Running> running;
        size_t next = 0;
        // A compile stopped before it finished leaves its candidate untried,
        // so a later batch (or a resumed run) may propose it again.
        auto abandon = [&](Running &r) {
            kill_process(r.pid);
            r.c->status = "new";
            by_id_.erase(r.c->id());
        };
        auto start_step = [&](Candidate *c, const fs::path &dir, int step) {
            std::vector<std::string> args =
                step == 0 ? generator_args(*c, dir)
                          : std::vector<std::string>{compiler_, "-shared", "-o",
                                                     (dir / "kernel.so").string(),
                                                     (dir / "mhac_tune_kernel.o").string()};
            running.push_back({c,
                               start_process(args, dir / (step == 0 ? "generate.log" : "link.log")),
                               Clock::now(), dir, step});
        };
        while (!g_interrupted) {
            while (running.size() < static_cast<size_t>(o_.jobs) && next < batch.size()) {
                Candidate *c = batch[next++];
                // Objects are cached by the generator's command and its build.
                std::string cmd = generator_stamp_ + "\n";
                for (const std::string &a : generator_args(*c, "")) cmd += a + "\n";
                const fs::path dir = work_ / "objects" / hex(fnv1a(cmd));
                c->so = dir / "kernel.so";
                if (fs::exists(dir / "done")) {
                    accept_object(*c, dir);
                    continue;
                }
                fs::create_directories(dir);
                start_step(c, dir, 0);
            }
            if (running.empty()) break;
            for (size_t i = 0; i < running.size();) {
                Running &r = running[i];
                std::optional<int> rc = finished(r.pid);
                if (!rc && seconds_since(start_) > deadline_s) {
                    abandon(r);
                    running.erase(running.begin() + static_cast<long>(i));
                    continue;
                }
                if (!rc) {
                    i++;
                    continue;
                }
                Running done = r;
                running.erase(running.begin() + static_cast<long>(i));
                if (*rc != 0) {
                    done.c->status = "failed";
                    done.c->note =
                        tail_of(done.dir / (done.step == 0 ? "generate.log" : "link.log"));
                    journal_candidate(*done.c);
                    progress_.log(done.c->label() + ": failed to compile: " + done.c->note);
                } else if (done.step == 0) {
                    done.c->compile_s += seconds_since(done.start);
                    start_step(done.c, done.dir, 1);
                } else {
                    done.c->compile_s += seconds_since(done.start);
                    std::ofstream(done.dir / "done") << done.c->compile_s << "\n";
                    compile_s_ += done.c->compile_s;
                    compiled_++;
                    accept_object(*done.c, done.dir);
                }
            }
            draw();
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        for (Running &r : running) abandon(r);
    }

    // A compiled candidate: the same code as one already measured is not
    // measured again.
    void accept_object(Candidate &c, const fs::path &dir) {
        std::optional<std::string> h = file_hash(dir / "mhac_tune_kernel.o");
        if (!h || !fs::exists(dir / "kernel.so")) {
            c.status = "failed";
            c.note = "no object in " + dir.string();
            return;
        }
        c.object_hash = *h;
        auto it = by_hash_.find(*h);
        if (it != by_hash_.end() && it->second != c.id()) {
            c.status = "duplicate";
            c.note = "same code as " + it->second;
            journal_candidate(c);
            return;
        }
        by_hash_[*h] = c.id();
        c.status = "compiled";
    }

    void measure(Candidate &c, double seconds_per_shape, double deadline_s) {
        const auto t0 = Clock::now();
        const bool twin = !c.autoscheduler.empty();
        if (!run_worker(c, seconds_per_shape, deadline_s, twin ? twin_cap_s() : 0)) {
            if (c.status == "new") return;  // stopped by the deadline or Ctrl-C
        }
        const double took = seconds_since(t0);
        measure_s_ += took;
        measured_++;
        measured_kernel_++;
        if (!twin) {
            knob_measure_s_ += took;
            knob_measured_++;
        }
        journal_candidate(c);
        if (c.status == "measured") {
            best_ = std::max(best_, twin ? 0.0 : c.speedup());
            progress_.log(c.label() + ": " + fmt(c.speedup()) + "x (worst shape " +
                          fmt(c.worst_speedup()) + "x)");
        } else {
            progress_.log(c.label() + ": " + c.status + ": " + c.note);
        }
    }

    // The expected timing of one knob candidate: this kernel's knob
    // candidates' average, else every candidate's so far. Not the average
    // with twins: a twin stopped at its cap (82 s for Mullapudi2016 on
    // long_4096) in it ended a search after 2.5 of its 8 minutes, 1 candidate
    // measured.
    double knob_candidate_s() const {
        const double knob_s = knob_average_s();
        return knob_s > 0 ? knob_s : measured_ > 0 ? measure_s_ / measured_ : 2.0;
    }
    // The knob candidates' mean timing so far; 0 before the first.
    double knob_average_s() const {
        return knob_measured_ > 0 ? knob_measure_s_ / knob_measured_ : 0;
    }

    // How long an autoscheduled twin's timing may run: ten times a knob
    // candidate's, at least 30 s. A twin that materializes the T x S scores
    // (Mullapudi2016 on long_4096, 0.03x the hand schedule on BERT shapes)
    // otherwise spent a whole 8-minute budget timing itself, and the search
    // measured no knob candidate at all.
    double twin_cap_s() const {
        if (twin_cap_option_s_ > 0) return twin_cap_option_s_;
        return std::max(30.0, 10 * knob_average_s());
    }

    // Runs the worker on `c` against the default kernel; false when it did
    // not finish (then c.status is "new" for an interruption, else
    // rejected or failed). `cap_s` > 0: a timing still running after that
    // many seconds is stopped and `c` rejected as too slow.
    bool run_worker(Candidate &c, double seconds_per_shape, double deadline_s, double cap_s = 0) {
        const auto started = Clock::now();
        const fs::path dir = c.so.parent_path();
        json req = {{"config",
                     {{"name", row_.name},
                      {"num_heads", row_.num_heads},
                      {"key_dim", row_.key_dim},
                      {"value_dim", row_.value_dim},
                      {"query_features", row_.query_features},
                      {"key_features", row_.key_features},
                      {"value_features", row_.value_features},
                      {"output_features", row_.output_features},
                      {"use_bias", row_.use_bias}}},
                    {"mask", job_->mask},
                    {"function", "mhac_tune_kernel"},
                    {"default_so", base_ ? base_->so.string() : c.so.string()},
                    {"candidate_so", c.so.string()},
                    {"check_shapes", json::array()},
                    {"time_shapes", json::array()},
                    {"threads", threads_},
                    {"seconds_per_shape", seconds_per_shape},
                    {"reference_dir", (work_ / "reference").string()},
                    {"reference_key", hex(fnv1a(row_.name + job_->planned.name + "v1"))}};
        for (const Shape &s : kCheckShapes) req["check_shapes"].push_back(shape_json(s));
        for (const Shape &s : job_->shapes) req["time_shapes"].push_back(shape_json(s));
        // One worker per thread count, its Halide runtimes sized by
        // HL_NUM_THREADS before they start: a running pool does not shrink
        // for halide_set_num_threads (measured: after the checks had run
        // the candidate at 2 threads, "1 thread" timed it at 2). The first
        // worker also checks the candidate.
        std::vector<Timing> timings;
        for (size_t ti = 0; ti < threads_.size(); ti++) {
            req["threads"] = {threads_[ti]};
            if (ti > 0) req["check_shapes"] = json::array();
            const fs::path req_path = dir / "request.json", res_path = dir / "result.json";
            std::ofstream(req_path) << req.dump(1);
            fs::remove(res_path);
            const pid_t pid =
                start_process({self_, "tune-worker", req_path.string(), res_path.string()},
                              dir / "worker.log", threads_[ti]);
            std::optional<int> rc;
            while (!(rc = finished(pid))) {
                if (g_interrupted || seconds_since(start_) > deadline_s) {
                    kill_process(pid);
                    c.status = "new";
                    return false;
                }
                if (cap_s > 0 && seconds_since(started) > cap_s) {
                    kill_process(pid);
                    c.status = "rejected";
                    c.note =
                        "timing stopped after " + fmt(cap_s) + " s (" +
                        (twin_cap_option_s_ > 0 ? "--twin-cap" : "ten times a knob candidate's") +
                        "): too slow to measure";
                    return false;
                }
                draw();
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            json res;
            try {
                std::ifstream in(res_path);
                res = json::parse(in);
            } catch (const std::exception &) {
                res = {{"ok", false},
                       {"error", "the worker crashed (status " + std::to_string(*rc) +
                                     "): " + tail_of(dir / "worker.log")}};
            }
            if (!res.value("ok", false)) {
                c.status = "rejected";
                c.note = res.value("error", std::string("no result"));
                return false;
            }
            for (const Timing &t : timings_from(res.at("timings"))) timings.push_back(t);
        }
        c.timings = timings;
        c.status = "measured";
        return true;
    }

    // -------------------------------------------------------------- journal
    std::string journal_key(const KernelJob &job) const {
        std::string k = "v2 " + job.planned.generator + " " + target_ + " " +
                        MHAC_SCHEDULE_SOURCE_HASH + " " + MHAC_HALIDE_VERSION + " bucket " +
                        job.bucket + " shapes " + shapes_list(job.shapes) + " threads";
        for (int t : threads_) k += " " + std::to_string(t);
        for (const std::string &p : job.structural) k += " " + p;
        for (const std::string &p : job.row_knobs) k += " row:" + p;
        if (!o_.knobs.empty()) k += " knobs " + o_.knobs;
        return k;
    }

    void append_journal(const json &line) {
        std::ofstream out(journal_, std::ios::app);
        out << line.dump() << "\n";
        out.flush();
    }

    void journal_candidate(const Candidate &c) {
        json knobs = json::object();
        for (const auto &[k, v] : c.knobs) knobs[k] = v;
        append_journal({{"candidate", c.id()},
                        {"knobs", knobs},
                        {"autoscheduler", c.autoscheduler},
                        {"status", c.status},
                        {"note", c.note},
                        {"object_hash", c.object_hash},
                        {"so", c.so.string()},
                        {"compile_s", c.compile_s},
                        {"timings", timings_json(c.timings)}});
    }

    // Candidates a previous run finished (measured, rejected, failed or the
    // same code as another) are taken as they are.
    void load_journal(const std::string &key) {
        std::ifstream in(journal_);
        std::string line;
        if (!std::getline(in, line)) return;
        try {
            if (json::parse(line).value("key", "") != key) {
                progress_.log("the journal " + journal_.string() +
                              " is for other settings; starting over");
                in.close();
                fs::remove(journal_);
                return;
            }
        } catch (const std::exception &) {
            fs::remove(journal_);
            return;
        }
        int loaded = 0;
        for (; std::getline(in, line);) {
            try {
                const json j = json::parse(line);
                Knobs k;
                for (const auto &[name, v] : j.at("knobs").items()) k[name] = v.get<int>();
                Candidate &c = candidate(k, j.value("autoscheduler", ""));
                c.status = j.at("status");
                c.note = j.value("note", "");
                c.object_hash = j.value("object_hash", "");
                c.so = j.value("so", "");
                c.timings = timings_from(j.at("timings"));
                if (!c.object_hash.empty() && c.status != "duplicate")
                    by_hash_[c.object_hash] = c.id();
                if (c.status == "measured" && c.autoscheduler.empty())
                    best_ = std::max(best_, c.speedup());
                loaded++;
            } catch (const std::exception &) {
                // A line cut by a kill mid-write: that candidate runs again.
            }
        }
        progress_.log("resuming: " + std::to_string(loaded) + " finished candidates in " +
                      journal_.string());
    }

    // -------------------------------------------------------------- display
    void draw() {
        int done = 0;
        for (const Candidate &c : cands_) {
            done += c.status == "measured" || c.status == "rejected" || c.status == "failed" ||
                    c.status == "duplicate";
        }
        done = std::max(0, done - 1);  // the default kernel is not a candidate
        const double elapsed = seconds_since(start_), left = std::max(0.0, budget_s_ - elapsed);
        const double cycle = knob_candidate_s() +
                             (compiled_ > 0 ? compile_s_ / compiled_ / std::max(1, o_.jobs) : 5.0);
        const int total = done + static_cast<int>(left / cycle);
        progress_.update(job_->label, done, std::max(total, done), best_, left);
    }

    static std::string shapes_list(const std::vector<Shape> &shapes) {
        std::string s;
        for (const Shape &x : shapes) s += (s.empty() ? "" : ";") + shape_text(x);
        return s;
    }
    static std::string fmt(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, v < 0.1 ? "%.4f" : v < 10 ? "%.3f" : "%.1f", v);
        return buf;
    }

public:
    fs::path work_;
    std::string compiler_ = "cc";
    std::string self_;

private:
    Options o_;
    plan::ConfigRow row_;
    std::string target_;
    std::vector<int> threads_;
    Clock::time_point start_;
    double budget_s_;
    double twin_cap_option_s_;  // --twin-cap; 0 when not given
    Progress progress_;
    std::string generator_;
    std::string generator_stamp_;  // size and time of the generator executable
    std::mt19937_64 rng_;

    const KernelJob *job_ = nullptr;
    std::deque<Candidate> cands_;  // a deque: pointers into it stay valid as it grows
    std::map<std::string, size_t> by_id_;
    std::map<std::string, std::string> by_hash_;
    Candidate *base_ = nullptr;
    fs::path journal_;
    double compile_s_ = 0, measure_s_ = 0, best_ = 1;
    int compiled_ = 0, measured_ = 0, measured_kernel_ = 0;
    double knob_measure_s_ = 0;  // the knob candidates' share of measure_s_
    int knob_measured_ = 0;
    std::string unconfirmed_;       // the best candidate of this kernel that was not confirmed
    std::vector<KnobRange> space_;  // the knobs searched (--knobs)
    std::vector<Knobs> seeds_;      // proposed first: the database's earlier winners
    Knobs default_knobs_;           // the default kernel's: a bucket's own, else none
};

// The timed shapes of a bucket: those of `shapes` inside it, else its
// typical_shape (a bucket is tuned on calls it runs).
std::vector<Shape> bucket_shapes(const std::string &bucket, const std::vector<Shape> &shapes) {
    const tuned::Bucket *b = tuned::find_bucket(bucket);
    if (!b) return shapes;  // "all"
    const FusedBucket range{MaskKind::none, b->name, b->min_queries, b->max_queries, b->min_keys,
                            b->max_keys,    {}};
    std::vector<Shape> in;
    for (const Shape &x : shapes) {
        if (range.holds(x.queries, x.keys)) in.push_back(x);
    }
    if (in.empty()) in.push_back(typical_shape(*b));
    return in;
}

std::vector<KernelJob> kernel_jobs(const plan::ConfigRow &row, const std::string &target,
                                   const std::string &kernels, const std::string &masks,
                                   const std::string &buckets, const std::vector<Shape> &shapes,
                                   const std::string &shard) {
    const std::vector<std::string> wanted_masks = plan::split_list(masks, ',');
    std::set<std::string> wanted;
    for (const std::string &k : plan::split_list(kernels, ',')) {
        if (k != "fused") {
            throw Error("--kernels: '" + k +
                        "' cannot be tuned yet (fused only: the projection, scores and combine "
                        "kernels run on the staged path alone)");
        }
        wanted.insert(k);
    }
    std::vector<plan::ConfigRow> rows;
    if (row.num_heads != 0) rows.push_back(row);
    const plan::KernelPlan plan = plan::plan_kernel_set("tune", {target}, rows);
    std::vector<KernelJob> jobs;
    const std::string prefix = kernel_symbol("fused", row.name + "_", 0);
    for (const plan::PlannedKernel &k : plan.kernels) {
        // A bucket's kernel is tuned as its row kernel's --buckets job.
        if (k.generator != "mhac_fused" || k.name.rfind(prefix, 0) != 0 || k.bucket != "all")
            continue;
        KernelJob j;
        j.planned = k;
        j.structural = tuned::kernel_key_params(k.params);
        for (const std::string &p : k.params) {
            if (is_knob_param(p)) j.row_knobs.push_back(p);
            if (p.rfind("mask_kind=", 0) == 0) j.mask = p.substr(10);
        }
        j.label = row.name + "/fused/" + j.mask;
        if (!wanted_masks.empty() && !std::count(wanted_masks.begin(), wanted_masks.end(), j.mask))
            continue;
        for (const std::string &b : plan::split_list(buckets, ',')) {
            const tuned::Bucket *bucket = tuned::find_bucket(b);
            if (b != "all" && !bucket) {
                throw Error("--buckets: unknown bucket '" + b + "' (all, " + bucket_names() + ")");
            }
            // A bucket its mask kind does not have (few: not causal) has no kernel.
            if (bucket && !bucket->has_mask(j.mask)) continue;
            KernelJob jb = j;
            jb.bucket = b;
            jb.shapes = bucket_shapes(b, shapes);
            if (b != "all") jb.label += "/" + b;
            jobs.push_back(jb);
        }
    }
    for (const std::string &m : wanted_masks) {
        if (std::none_of(jobs.begin(), jobs.end(), [&](const KernelJob &j) { return j.mask == m; }))
            throw Error("--masks: " + row.name + " compiles no fused kernel for mask kind '" + m +
                        "'");
    }
    if (!shard.empty()) {
        int i = 0, n = 0;
        char tail = 0;
        if (std::sscanf(shard.c_str(), "%d/%d%c", &i, &n, &tail) != 2 || n < 1 || i < 0 || i >= n)
            throw Error("--shard: '" + shard + "' is not i/n with 0 <= i < n");
        std::vector<KernelJob> mine;
        for (size_t k = 0; k < jobs.size(); k++) {
            if (static_cast<int>(k % static_cast<size_t>(n)) == i) mine.push_back(jobs[k]);
        }
        jobs = mine;
    }
    return jobs;
}

const char *kDescription =
    "Searches the schedule knobs of a configuration's fused kernels on this machine within a\n"
    "wall-clock budget (compiles included), checks every candidate against the float64\n"
    "reference (a wrong one is never kept), times it interleaved with the hand schedule and\n"
    "writes the winner (or the hand defaults when nothing beats them) to the tuned database,\n"
    "which the build compiles from (docs/tuning.md). Halide's autoschedulers (the wheel's\n"
    "plugins) are measured as twins beside the hand schedule.\n"
    "`mhac tune merge -o DIR IN...` combines databases (sweeps run in shards).";

}  // namespace

int tune_command(int argc, char **argv) {
    if (argc >= 1 && std::string(argv[0]) == "merge") return tune_merge_command(argc, argv);
    Options o;
    CLI::App app{kDescription, "mhac tune"};
    app.add_option("--config", o.config,
                   "a row name of the default table (bert_base, tiny, ...), generic, or a "
                   "configuration file (cfg.json or table rows, as mhac generate takes)")
        ->capture_default_str();
    app.add_option("--kernels", o.kernels, "kernels to tune, comma separated (fused)")
        ->capture_default_str();
    app.add_option("--masks", o.masks,
                   "the fused kernels' mask kinds to tune (none, causal, dense), comma separated; "
                   "default: every one the configuration compiles");
    std::string buckets_help =
        "shape buckets to tune, comma separated: all (one kernel for every "
        "shape)";
    for (const tuned::Bucket &b : tuned::kBuckets)
        buckets_help += std::string(", ") + b.name + ": " + b.what;
    buckets_help +=
        "; a bucket whose winner differs from all's gets a kernel of its own (docs/tuning.md)";
    app.add_option("--buckets", o.buckets, buckets_help)->capture_default_str();
    app.add_option("--report", o.report,
                   "append the results (hand, tuned and autoscheduled times per shape) to this "
                   "markdown file");
    app.add_option("--target", o.target,
                   "host (the best level of the build's ladder this CPU runs) or a Halide target "
                   "this machine can run")
        ->capture_default_str();
    std::string shapes_help = "shapes to time: B,T,S items or names (";
    for (const tuned::Bucket &b : tuned::kBuckets)
        shapes_help += std::string(b.name) + " = " + shape_text(typical_shape(b)) + ", ";
    shapes_help +=
        "bench/shapes.h names), ';' separated; default: the benchmark shapes of the configuration";
    app.add_option("--shapes", o.shapes, shapes_help);
    app.add_option("--budget", o.budget, "wall-clock budget, compiles included: 90s, 20m, 1h")
        ->capture_default_str();
    app.add_option("--jobs", o.jobs, "compiles at a time (default: the CPU count)");
    app.add_option("--threads", o.threads,
                   "Halide thread counts to time with, comma separated (default: the CPU count)");
    app.add_flag("--resume", o.resume,
                 "continue the journal of an interrupted run with the same settings");
    app.add_option("--db", o.db,
                   "the tuned database directory (default: $MHAC_TUNED_DB, else "
                   "schedules/tuned)");
    app.add_option("--work-dir", o.work_dir,
                   "objects, journals and cached references (default: "
                   "$XDG_CACHE_HOME/mhac/tune or ~/.cache/mhac/tune)");
    app.add_option("--shard", o.shard,
                   "i/n (0 <= i < n): tune only the kernels whose index is i modulo n (sweeps in "
                   "shards, docs/tuning.md)");
    app.add_option("--autoschedulers", o.autoschedulers,
                   "autoscheduled twins to measure, comma separated, or none")
        ->capture_default_str();
    app.add_option("--knobs", o.knobs,
                   "the knobs to search, comma separated (" + knob_names() +
                       "); the others keep the hand defaults; default: all");
    app.add_option("--seconds-per-shape", o.seconds_per_shape,
                   "timing per shape and candidate (each kernel gets half)")
        ->capture_default_str();
    app.add_option("--seed", o.seed, "random search seed")->capture_default_str();
    app.add_option("--twin-cap", o.twin_cap,
                   "how long an autoscheduled twin's timing may run before it is stopped and "
                   "rejected as too slow (90s, 2m); default: ten times a knob candidate's, at "
                   "least 30 s");
    try {
        std::vector<std::string> args(argv, argv + argc);
        std::reverse(args.begin(), args.end());
        app.parse(args);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    }
    try {
        const plan::ConfigRow row = resolve_config(o.config);
        const std::string target = o.target == "host" ? host_target() : o.target;
        const std::vector<Shape> shapes = parse_shapes(o.shapes, row);
        std::vector<int> threads;
        for (const std::string &t : plan::split_list(o.threads, ',')) {
            const int n = std::atoi(t.c_str());
            if (n < 1 || n > 1024) throw Error("--threads: '" + t + "' is not a thread count");
            threads.push_back(n);
        }
        const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        if (threads.empty()) threads.push_back(cpus);
        if (o.jobs <= 0) o.jobs = cpus;
        if (o.db.empty()) {
            const char *env = std::getenv("MHAC_TUNED_DB");
            o.db = env && *env ? env : "schedules/tuned";
        }
        fs::path work = o.work_dir;
        if (work.empty()) {
            const char *xdg = std::getenv("XDG_CACHE_HOME");
            const char *home = std::getenv("HOME");
            work = xdg && *xdg ? fs::path(xdg) / "mhac" / "tune"
                               : fs::path(home ? home : "/tmp") / ".cache" / "mhac" / "tune";
        }
        std::vector<KernelJob> jobs =
            kernel_jobs(row, target, o.kernels, o.masks, o.buckets, shapes, o.shard);
        if (jobs.empty()) throw Error("nothing to tune: no fused kernel of '" + row.name + "'");
        work /= tuned::canonical_target(target) + "_" + row.name;
        fs::create_directories(work);

        Tuner tuner(o, row, target, threads);
        tuner.work_ = work;
        if (const char *cc = std::getenv("CC")) tuner.compiler_ = cc;
        tuner.self_ = fs::canonical("/proc/self/exe").string();

        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        return tuner.run(jobs);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "mhac tune: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace mhac::cli
