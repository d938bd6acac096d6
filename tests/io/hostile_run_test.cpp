// `mhac run` on hostile input (issue 9): the corpus in hostile/ (written by
// make_hostile.cpp), non-regular files, out-of-range flags and unsafe output
// paths. Every case must exit 1 with exactly one `mhac run: error:` line
// naming the file and the problem, leave no output file (and any file that
// was there untouched), stay under 100 MB of resident memory and use under a
// second of CPU. mhac runs as a child process, measured with wait4().
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace mhac::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kHostile = MHAC_IO_HOSTILE;
const std::string kC01 = std::string(MHAC_KERAS_FIXTURES) + "/c01_self_attention";
constexpr long kMaxRssKb = 100 * 1024;
constexpr double kMaxCpuSeconds = 1.0;

struct Outcome {
    int exit_code = -1;  // -1: killed by a signal (`signal`), or by the timeout
    int signal = 0;
    std::string stderr_text;
    long max_rss_kb = 0;
    double cpu_seconds = 0;
};

std::string slurp(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs mhac with `args`, stderr to a file, its address space capped at
// 1 GiB (so a regression fails fast instead of exhausting the machine);
// killed after 20 s (a hang). An ASan-built mhac (the sanitizer build,
// docs/sanitizers.md) cannot start under that cap, as ASan reserves terabytes
// of address space for its shadow: there ASan's max_allocation_size_mb=1024
// refuses any single larger allocation instead, and the RSS and CPU bounds
// are checked as they are.
Outcome run_mhac(const std::vector<std::string> &args, const std::string &stderr_path) {
    std::vector<std::string> argv_s = {MHAC_EXECUTABLE};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (std::string &a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    Outcome o;
    const pid_t pid = fork();
    if (pid < 0) {
        ADD_FAILURE() << "fork failed";
        return o;
    }
    if (pid == 0) {  // only async-signal-safe calls until exec
        const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int in = open("/dev/null", O_RDONLY);
        if (err < 0 || in < 0 || dup2(err, 2) < 0 || dup2(in, 0) < 0) _exit(126);
#ifndef MHAC_EXECUTABLE_HAS_ASAN
        const struct rlimit cap = {rlim_t{1} << 30, rlim_t{1} << 30};
        setrlimit(RLIMIT_AS, &cap);
#endif
        execv(argv[0], argv.data());
        _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int status = 0;
    struct rusage usage {};
    for (;;) {
        const pid_t done = wait4(pid, &status, WNOHANG, &usage);
        if (done == pid) break;
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            wait4(pid, &status, 0, &usage);
            ADD_FAILURE() << "mhac did not finish within 20 s";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
    o.max_rss_kb = usage.ru_maxrss;
    o.cpu_seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                    (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    o.stderr_text = slurp(stderr_path);
    return o;
}

// A scratch folder per test.
class Scratch {
public:
    Scratch() {
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = std::string(info->test_suite_name()) + "_" + info->name();
        for (char &c : name)
            if (c == '/') c = '_';
        dir_ =
            fs::temp_directory_path() / ("mhac_hostile_" + std::to_string(getpid()) + "_" + name);
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    ~Scratch() { fs::remove_all(dir_); }
    std::string path(const std::string &name) const { return (dir_ / name).string(); }
    // Files in the folder other than `keep`.
    std::vector<std::string> others(const std::vector<std::string> &keep) const {
        std::vector<std::string> out;
        for (const auto &e : fs::directory_iterator(dir_)) {
            const std::string n = e.path().filename().string();
            if (std::find(keep.begin(), keep.end(), n) == keep.end()) out.push_back(n);
        }
        return out;
    }

private:
    fs::path dir_;
};

// The one-line error contract, plus the resource bounds.
void expect_refused(const Outcome &o, const std::vector<std::string> &expected) {
    EXPECT_EQ(o.exit_code, 1) << "signal " << o.signal << "\n" << o.stderr_text;
    EXPECT_EQ(std::count(o.stderr_text.begin(), o.stderr_text.end(), '\n'), 1) << o.stderr_text;
    EXPECT_EQ(o.stderr_text.rfind("mhac run: error: ", 0), 0u) << o.stderr_text;
    for (const std::string &e : expected) EXPECT_THAT(o.stderr_text, HasSubstr(e));
    EXPECT_LT(o.max_rss_kb, kMaxRssKb) << "peak resident memory, KB";
    EXPECT_LT(o.cpu_seconds, kMaxCpuSeconds) << "CPU seconds";
}

std::vector<std::string> inputs() {
    return {"--query", kC01 + "/query.npy", "--value", kC01 + "/value.npy"};
}
std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

struct HostileCase {
    const char *name;
    std::vector<std::string> args;      // after "mhac run", without --out
    std::vector<std::string> expected;  // substrings of the error line
};

std::vector<HostileCase> hostile_cases() {
    const std::string h = kHostile + "/";
    const std::string model = kC01 + "/layer.keras", value = kC01 + "/value.npy";
    return {
        // Memory errors from small files.
        {"kernel_dims_overflow_size_t",
         with({"--weights", h + "huge_dims.weights.h5", "--config", h + "nobias.config.json"},
              inputs()),
         {"huge_dims.weights.h5", "/query_dense/vars/0", "overflows"}},
        {"config_nested_100000_deep",
         with({"--weights", kC01 + "/layer.weights.h5", "--config", h + "deep.config.json"},
              inputs()),
         {"deep.config.json", "nested deeper than"}},
        // Corruption accepted.
        {"weight_byte_changed_after_crc",
         with({"--model", h + "bad_crc.keras"}, inputs()),
         {"bad_crc.keras:model.weights.h5", "CRC-32"}},
        {"npy_negative_dim",
         {"--model", model, "--query", h + "negative_dim.npy", "--value", value},
         {"negative_dim.npy", "negative dimension -2"}},
        {"npy_junk_dim",
         {"--model", model, "--query", h + "junk_dim.npy", "--value", value},
         {"junk_dim.npy", "(2x, 2, 7, 64)"}},
        {"seed_beyond_uint64",
         with({"--model", model, "--training", "--seed", "999999999999999999999999"}, inputs()),
         {"--seed", "999999999999999999999999"}},
        // Memory not bounded by the input.
        {"zip_entry_claims_4gib",
         with({"--model", h + "huge_entry.keras"}, inputs()),
         {"huge_entry.keras:config.json", "4294967280 bytes"}},
        {"sparse_kernel_shape_checked_before_reading",
         with({"--weights", h + "sparse.weights.h5", "--config", h + "sparse.config.json"},
              inputs()),
         {"sparse.weights.h5", "/output_dense/vars/0", "[4, 16, 8388608]"}},
        {"sparse_kernel_not_stored",
         with({"--weights", h + "sparse_consistent.weights.h5", "--config",
               h + "sparse.config.json"},
              inputs()),
         {"sparse_consistent.weights.h5", "/query_dense/vars/0", "sparse"}},
        {"kernel_in_external_file",
         with({"--weights", h + "external.weights.h5", "--config", h + "nobias.config.json"},
              inputs()),
         {"external.weights.h5", "/query_dense/vars/0", "external"}},
        {"query_dev_zero",
         {"--model", model, "--query", "/dev/zero", "--value", value},
         {"/dev/zero", "character device"}},
        // Poor messages.
        {"npy_dim_beyond_int64",
         {"--model", model, "--query", h + "huge_dim.npy", "--value", value},
         {"huge_dim.npy", "99999999999999999999", "64-bit"}},
        {"npy_is_a_directory",
         {"--model", model, "--query", kHostile, "--value", value},
         {kHostile + ": is a directory"}},
        {"model_is_a_device",
         with({"--model", "/dev/zero"}, inputs()),
         {"/dev/zero: is a character device"}},
        {"weights_is_a_directory",
         with({"--weights", kHostile, "--config", kC01 + "/config.json"}, inputs()),
         {kHostile + ": is a directory"}},
        {"config_is_a_device",
         with({"--weights", kC01 + "/layer.weights.h5", "--config", "/dev/zero"}, inputs()),
         {"/dev/zero: is a character device"}},
    };
}

void PrintTo(const HostileCase &c, std::ostream *os) {
    *os << c.name;
}

class MhacRunHostile : public ::testing::TestWithParam<HostileCase> {};

TEST_P(MhacRunHostile, OneLineNoOutputBounded) {
    const HostileCase &c = GetParam();
    Scratch s;
    const std::string out = s.path("out.npy");
    const Outcome o = run_mhac(with(with({"run"}, c.args), {"--out", out}), s.path("err.txt"));
    expect_refused(o, c.expected);
    EXPECT_FALSE(fs::exists(out)) << "an output file appeared";
    EXPECT_THAT(s.others({"err.txt"}), ::testing::IsEmpty()) << "files left behind";
}

INSTANTIATE_TEST_SUITE_P(HostileInput, MhacRunHostile, ::testing::ValuesIn(hostile_cases()),
                         [](const auto &info) { return std::string(info.param.name); });

// A FIFO given as an input is refused without waiting for a writer.
TEST(MhacRunHostileFiles, FifoInputIsRefusedWithoutBlocking) {
    Scratch s;
    const std::string fifo = s.path("query.npy");
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const Outcome o = run_mhac({"run", "--model", kC01 + "/layer.keras", "--query", fifo, "--value",
                                kC01 + "/value.npy", "--out", s.path("out.npy")},
                               s.path("err.txt"));
    expect_refused(o, {fifo + ": is a FIFO"});
    EXPECT_FALSE(fs::exists(s.path("out.npy")));
}

// ---- Output safety ----------------------------------------------------------

std::vector<std::string> good_run() {
    return with({"run", "--model", kC01 + "/layer.keras"}, inputs());
}

TEST(MhacRunOutput, SymlinkOutIsRefusedAndKept) {
    Scratch s;
    const std::string target = s.path("target.npy"), link = s.path("link.npy");
    std::ofstream(target) << "keep";
    fs::create_symlink(target, link);
    const Outcome o = run_mhac(with(good_run(), {"--out", link}), s.path("err.txt"));
    expect_refused(o, {link, "symbolic link"});
    EXPECT_TRUE(fs::is_symlink(link));
    EXPECT_EQ(slurp(target), "keep");
    EXPECT_THAT(s.others({"err.txt", "target.npy", "link.npy"}), ::testing::IsEmpty());
}

// A FIFO stands in for a device here: a run whose refusal regressed must not
// be able to replace a real device such as /dev/null (as root it could).
// npy_test.cpp checks /dev/null itself, in process, without writing.
TEST(MhacRunOutput, FifoOutIsRefused) {
    Scratch s;
    const std::string fifo = s.path("out.npy");
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const Outcome o = run_mhac(with(good_run(), {"--out", fifo}), s.path("err.txt"));
    expect_refused(o, {fifo, "FIFO"});
    struct stat st;
    ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_THAT(s.others({"err.txt", "out.npy"}), ::testing::IsEmpty());
}

TEST(MhacRunOutput, DirectoryOutIsRefused) {
    Scratch s;
    fs::create_directories(s.path("d.npy"));
    const Outcome o = run_mhac(with(good_run(), {"--out", s.path("d.npy")}), s.path("err.txt"));
    expect_refused(o, {s.path("d.npy"), "directory"});
    EXPECT_TRUE(fs::is_directory(s.path("d.npy")));
}

TEST(MhacRunOutput, FailedRunKeepsExistingOutputs) {
    Scratch s;
    const std::string out = s.path("out.npy"), scores = s.path("scores.npy");
    std::ofstream(out) << "old output";
    std::ofstream(scores) << "old scores";
    const Outcome o = run_mhac(
        with({"run", "--model", kHostile + "/bad_crc.keras", "--out", out, "--scores-out", scores},
             inputs()),
        s.path("err.txt"));
    expect_refused(o, {"bad_crc.keras"});
    EXPECT_EQ(slurp(out), "old output");
    EXPECT_EQ(slurp(scores), "old scores");
    EXPECT_THAT(s.others({"err.txt", "out.npy", "scores.npy"}), ::testing::IsEmpty());
}

// The old writer wrote --scores-out, then deleted it when --out failed: a
// file that was there before was lost.
TEST(MhacRunOutput, BadOutKeepsExistingScores) {
    Scratch s;
    const std::string scores = s.path("scores.npy");
    std::ofstream(scores) << "old scores";
    const Outcome o =
        run_mhac(with(good_run(), {"--out", s.path("missing/out.npy"), "--scores-out", scores}),
                 s.path("err.txt"));
    expect_refused(o, {s.path("missing/out.npy")});
    EXPECT_EQ(slurp(scores), "old scores");
}

// The old writer used <out>.tmp, overwriting (then renaming away) a file of
// that name.
TEST(MhacRunOutput, SuccessTouchesOnlyItsOutputs) {
    Scratch s;
    const std::string out = s.path("out.npy"), scores = s.path("scores.npy");
    std::ofstream(out + ".tmp") << "not mhac's";
    std::ofstream(out) << "old output";
    const Outcome o =
        run_mhac(with(good_run(), {"--out", out, "--scores-out", scores}), s.path("err.txt"));
    EXPECT_EQ(o.exit_code, 0) << o.stderr_text;
    EXPECT_EQ(slurp(out + ".tmp"), "not mhac's");
    EXPECT_EQ(slurp(out).rfind("\x93NUMPY", 0), 0u) << "the output replaced the old file";
    EXPECT_EQ(slurp(scores).rfind("\x93NUMPY", 0), 0u);
    EXPECT_THAT(s.others({"err.txt", "out.npy", "out.npy.tmp", "scores.npy"}),
                ::testing::IsEmpty());
}

}  // namespace
}  // namespace mhac::testing
