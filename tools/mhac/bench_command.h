#pragma once

namespace mhac::cli {
// `mhac bench ARGS...`: argv holds the arguments after "bench". Returns the
// exit code (0, 1 for a failed call or bad file, 2 for bad arguments).
int bench_command(int argc, char **argv);
}  // namespace mhac::cli
