#!/usr/bin/env bash
# RULE_LAUNCH_CUSTOM for the kernel directories: runs a generator command and
# appends "<kernel> <seconds>" to the log given first (read by
# cmake/kernel_report.cmake).
log="$1"
shift
start=$(date +%s%N)
"$@"
rc=$?
end=$(date +%s%N)
name="" prev=""
for a in "$@"; do
  [[ "$prev" == "-n" ]] && name="$a"
  prev="$a"
done
if [[ -n "$name" && $rc -eq 0 ]]; then
  ms=$(((end - start) / 1000000))
  printf '%s %d.%03d\n' "$name" $((ms / 1000)) $((ms % 1000)) >>"$log"
fi
exit $rc
