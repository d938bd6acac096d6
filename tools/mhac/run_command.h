#pragma once

namespace mhac::cli {
// `mhac run ARGS...`: argv holds the arguments after "run". Returns the exit code.
int run_command(int argc, char **argv);
}  // namespace mhac::cli
