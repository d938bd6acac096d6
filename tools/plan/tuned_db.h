// The tuned-schedule database (schedules/tuned/, docs/tuning.md): what
// `mhac tune` writes and what the kernel planner reads to compile tuned
// kernels. One JSON file per Halide target, <db>/<target>.json, each a list
// of entries. An entry is keyed by (generator, kernel parameters, target,
// bucket) and is only used when its source hash and Halide version are
// those of the build. Plain C++17 + nlohmann-json (header only): the planner
// is compiled at configure time.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "tuned_param.h"  // canonical_target(), the knob names (schedules/)

namespace mhac::tuned {

class DbError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// One measured shape of an entry: the winner's and the hand default's median
// time per call and their spread ((max - min) / median of the repetitions),
// measured interleaved in one run.
struct Timing {
    int batch = 1, queries = 0, keys = 0;  // B, T, S
    int threads = 0;                       // Halide threads the timing used
    double tuned_ms = 0, default_ms = 0;
    double tuned_spread = 0, default_spread = 0;
};

struct Entry {
    // --- key ---
    std::string generator;                   // e.g. mhac_fused
    std::string config;                      // the table row's name, e.g. bert_base
    std::vector<std::string> kernel_params;  // structural key=value params, sorted (no knobs)
    std::string target;                      // canonical Halide target (canonical_target)
    std::string bucket = "all";              // shape bucket the knobs are for
    std::string source_hash;                 // of the algorithm and schedule sources
    std::string halide_version;              // e.g. 21.0.0
    // --- value ---
    std::vector<std::string> knobs;  // key=value knob settings; empty = the hand defaults won
    std::string found_by;            // "default", "knob search", ...
    std::vector<Timing> timings;
    std::string cpu;  // lscpu model name
    int cores = 0;
    std::string date;     // UTC, ISO 8601
    double budget_s = 0;  // the run's stated budget
    double spent_s = 0;   // wall clock it used
    int candidates = 0;   // candidates measured (all runs of this key)
    int rejected = 0;     // of those, wrong results or failed compiles

    std::string file;  // where load_file() read it (not stored), for messages
};

struct Database {
    std::vector<Entry> entries;
};

// canonical_target(target): arch-bits-os followed by the features sorted,
// without the ones that do not change generated code's ISA (no_runtime): the
// one spelling entries and lookups compare. Defined in tuned_param.h, which
// the generators share.

// An entry's kernel_params from a planned kernel's generator parameters:
// without the knobs (and `tuned`), sorted.
std::vector<std::string> kernel_key_params(const std::vector<std::string> &generator_params);

// Reads every <dir>/*.json (a missing dir is an empty database). Throws
// DbError naming the file and the field for malformed JSON or entries, and
// for one key in two entries.
Database load_dir(const std::string &dir);
Database load_file(const std::string &path);

// Writes `db` as one file per target under `dir` (sorted, 2-space indented,
// stable order so diffs are reviewable); files are rewritten only if their
// text changes.
void save_dir(const Database &db, const std::string &dir);

// True when a and b have the same key (generator, kernel_params, target,
// bucket; source hash and Halide version included).
bool same_key(const Entry &a, const Entry &b);

// Adds `e`, replacing an entry with the same key.
void upsert(Database &db, Entry e);

// Combines databases (shards of a sweep): for equal keys the newer date wins
// (on equal dates, the later database).
Database merge(const std::vector<Database> &dbs);

// Shape buckets: a fused kernel may be compiled once more per bucket whose
// tuned knobs differ from its "all" entry's, and select_variant takes the
// first bucket kernel (in this order) whose ranges hold the call's T and S
// (max 0 = unbounded). The registry carries the bounds; this is the one
// table of them.
struct Bucket {
    const char *name;
    long long min_queries, max_queries, min_keys, max_keys;
    const char *what;
    // Knobs a CPU build's kernel for this bucket has without a tuned entry
    // (comma separated; a tuned entry's knobs apply over them): such a
    // bucket always gets a kernel of its own.
    const char *cpu_default_knobs;
    // Mask kinds whose kernels have this bucket (comma separated; "" = all).
    const char *masks;
    bool has_mask(const std::string &mask) const;
};
// decode: K and V folded into the query side (absorb_kv, generators/stages.h)
// reads each key and value row once instead of projecting them. 2-core
// Xeon (AVX-512), bert_base, 1 / 2 threads, against the tuned flash decode
// kernel in one tune-worker process: S=2048 13.3x / 11.5x, S=128 4.3x / 3.0x.
// few: the same for a few queries against many keys, where projecting S keys
// and values costs more than a pass over them per query. Same machine, 1
// thread, AVX-512 / AVX2: T=2 S=256 4.6x / 6.1x, T=8 S=256 1.7x / 2.2x,
// B=2 T=8 S=512 2.3x / 3.3x; 2 threads T=8 S=256 1.17x (S=128 0.78x, so S
// starts at 256; T=16 S=512 1.3x, T=32 0.54x: each query row passes over
// every key). Not causal: a causal call projects only the T keys its
// queries attend, and folded it took 0.29x.
inline constexpr Bucket kBuckets[] = {
    {"decode", 1, 1, 1, 0, "one query (T = 1)", "absorb_kv=1", ""},
    {"few", 2, 8, 256, 0, "a few queries, many keys (2 <= T <= 8, S >= 256; not causal)",
     "absorb_kv=1", "none,dense"},
    {"short", 2, 32, 1, 0, "short queries (2 <= T <= 32)", "", ""},
    {"long", 33, 0, 1024, 0, "long key ranges (T > 32, S >= 1024)", "", ""},
};
const Bucket *find_bucket(const std::string &name);  // null for "all" and unknown names

// What the build does with a kernel: per ladder target, the entry it uses.
struct Lookup {
    std::string tuned_param;          // value for the generators' `tuned` GeneratorParam; "" = none
    std::vector<const Entry *> used;  // one per ladder target, nullptr = hand defaults
    std::vector<std::string> warnings;  // entries not used, and why: one line each
};
// Entries of other generators and kernel parameters are not looked at; of
// the rest, those for another arch-bits-os (or a CUDA target for a CPU
// ladder, and the reverse) are ignored silently, and those
// for a target outside the ladder, of another source hash or Halide version,
// or of an unknown bucket are ignored with a warning. With `bucket` other
// than "all", a target without an entry of that bucket takes its "all"
// entry; warnings then name only that bucket's entries.
Lookup lookup(const Database &db, const std::string &generator,
              const std::vector<std::string> &kernel_params, const std::vector<std::string> &ladder,
              const std::string &source_hash, const std::string &halide_version,
              const std::string &bucket = "all");

// What `used` means for a kernel, per ladder level, for the registry and
// `mhac inspect`: "avx2-f16c-fma: key_block=64 (2026-05-01, 1.12x)", or
// "hand defaults" (also for a level whose entry found the defaults best).
std::string describe_level(const std::string &target, const Entry *used);
std::string describe_tuning(const std::vector<std::string> &ladder, const Lookup &lookup);

}  // namespace mhac::tuned
