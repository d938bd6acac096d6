// The kernel planner: the one expansion of a configuration table into a
// kernel set's kernels (symbol, generator, generator parameters) and its
// registry source. mhac_add_kernel_set() runs it at configure time (the
// mhac_plan executable, tools/plan/main.cpp) and declares one Halide library
// per planned kernel; `mhac generate` links the same code. Plain C++17 and
// nlohmann-json (the tuned database, header only): it is compiled before
// anything else is configured.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "tuned_db.h"

namespace mhac::plan {

class PlanError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// One row of the table. Sizes 0 mean "any" (the generic row).
struct ConfigRow {
    std::string name;
    int num_heads = 0, key_dim = 0, value_dim = 0;
    int query_features = 0, key_features = 0, value_features = 0, output_features = 0;
    bool use_bias = true;
    std::vector<std::string> masks;  // fused kernels to compile: of none, causal, dense
    // Extra generator parameters for this row's kernels of one stage
    // (schedule knobs): {stage, "key=value"}; stage is fused, projection,
    // scores or combine.
    struct Param {
        std::string stage, key_value;
    };
    std::vector<Param> params;
};

// The text form of a row (mhac_add_kernel_set's CONFIGS), whitespace
// separated:
//   name heads key_dim value_dim Eq Ek Ev O bias masks [stage:key=value ...]
// e.g. "bert_base 12 64 64 768 768 768 768 1 none,causal,dense fused:knob=4".
ConfigRow parse_row(const std::string &text);

// The non-empty items of a `sep`-separated list ("a,b,,c" -> a, b, c).
std::vector<std::string> split_list(const std::string &text, char sep);

// One extra parameter, "stage:key=value" (`row` names the row in errors).
ConfigRow::Param parse_row_param(const std::string &row, const std::string &token);

// The generic row every set starts with: all sizes known at run time.
ConfigRow generic_row();

struct PlannedKernel {
    std::string name;                 // symbol and library name
    std::string generator;            // registered generator name
    std::vector<std::string> params;  // key=value GeneratorParams (tuned=... from the database)
    // What tuned it, per ladder target (tuned::describe_level), and all
    // levels in one line for the registry (tuned::describe_tuning).
    std::vector<std::string> tuning_by_level;
    std::string tuning;
    std::string bucket = "all";  // a tuned::kBuckets name for a bucket's kernel
};

struct KernelPlan {
    std::string set_name;
    std::vector<std::string> targets;    // the Halide ladder, best first
    std::string device;                  // cpu | cuda
    int compute_capability = 0;          // CUDA sets: from cuda_capability_<N>
    std::string runtime_target;          // arch-bits-os[-cuda] of the baseline
    std::vector<PlannedKernel> kernels;  // each once, in registry order
    std::string registry_source;         // <set>_registry.cpp
    std::string header;                  // mhac/kernel_set_<set>.h
    std::vector<std::string> warnings;   // database entries not used, one line each
};

// The tuned database a plan looks kernels up in, and what this build's
// entries must have been tuned with.
struct TunedInputs {
    const tuned::Database *db = nullptr;  // null: hand defaults everywhere
    std::string source_hash, halide_version;
};

// `rows` excludes the generic row, which every plan gets first. Kernels of
// the generators that take `tuned` (tuned_param.h) get the knobs of the
// database's entries for each ladder target (tuned::lookup). Throws
// PlanError for a malformed target list, a duplicate row name, or one kernel
// planned twice with different parameters.
KernelPlan plan_kernel_set(const std::string &set_name, const std::vector<std::string> &targets,
                           const std::vector<ConfigRow> &rows, const TunedInputs &tuned = {});

// The plan as CMake variables (MHAC_PLAN_KERNELS, MHAC_PLAN_<kernel>_GENERATOR,
// MHAC_PLAN_<kernel>_PARAMS, MHAC_PLAN_DEVICE, ...) for mhac_add_kernel_set().
std::string cmake_listing(const KernelPlan &plan);

// Source and header of a list of linked kernel sets: `function`() returns
// every set in `sets`, in order (mhac::kernel_sets::all() for the defaults).
struct SetList {
    std::string source, header;
};
SetList kernel_set_list(const std::string &header_name, const std::string &function,
                        const std::vector<std::string> &sets);

}  // namespace mhac::plan
