#pragma once

#include <string>

namespace mhac::cli {
// `mhac generate ARGS...`: argv holds the arguments after "generate".
int generate_command(int argc, char **argv);
// `mhac inspect DIR` for a directory written by `mhac generate`.
int inspect_generated(const std::string &dir);
}  // namespace mhac::cli
