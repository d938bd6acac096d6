#pragma once

#include <string>
#include <vector>

#include "kernel_plan.h"

namespace mhac::cli {
// `mhac generate ARGS...`: argv holds the arguments after "generate".
int generate_command(int argc, char **argv);
// `mhac inspect DIR` for a directory written by `mhac generate`.
int inspect_generated(const std::string &dir);

// mhac's generator executable: MHAC_GENERATOR, else the installed one
// (../libexec/mhac), else the build tree's. Throws Error when none exists.
std::string generator_path();
// generator_path(), checked to be built from the sources mhac was (the
// schedule source hash written into it): tuned-database entries are stamped
// and picked by mhac's hash, so a generator of other sources would have its
// kernels paired with the wrong entries. Throws Error when the hashes differ;
// a generator without the mark (an older build) passes.
std::string checked_generator_path();
// The rows of a configuration file: cfg.json (whose "name" goes to
// *set_name when that is empty) or a table of mhac_add_kernel_set() rows.
std::vector<plan::ConfigRow> load_config_rows(const std::string &config_path,
                                              std::string *set_name = nullptr);
}  // namespace mhac::cli
