#pragma once

namespace mhac::cli {
// `mhac tune ARGS...` (argv after "tune"): searches schedule knobs of a
// configuration's kernels on this machine and writes the winners to the
// tuned database (docs/tuning.md). `mhac tune merge ...` combines databases.
int tune_command(int argc, char **argv);
// `mhac tune-worker REQUEST RESULT`: one checked, timed measurement (run by
// tune_command in a child process).
int tune_worker_command(int argc, char **argv);
}  // namespace mhac::cli
