#pragma once

namespace mhac::cli {
// `mhac tune merge -o OUT_DIR IN_DIR_OR_FILE...`: argv[0] is "merge".
// Combines tuned databases (the shards of a sweep, docs/tuning.md) into
// OUT_DIR, whose own entries take part; for equal keys the newest date wins.
// Returns the exit code (0, 1 for a malformed database, 2 for bad arguments).
int tune_merge_command(int argc, char **argv);
}  // namespace mhac::cli
