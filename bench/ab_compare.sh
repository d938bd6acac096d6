#!/bin/bash
# Interleaved A/B of two builds of a Google Benchmark binary (mhac_bench or
# mhac_gemm_bench): runs OLD and NEW alternately ROUNDS times on the same
# filter and prints the best time of each per benchmark and old/new. On a
# noisy VM only such interleaved pairs are worth comparing.
#
#   bench/ab_compare.sh OLD_BINARY NEW_BINARY FILTER [ROUNDS=3] [THREADS=1]
#
# THREADS=1 pins to CPU 0 with HL_NUM_THREADS=1 (and OPENBLAS_NUM_THREADS=1);
# otherwise HL_NUM_THREADS=THREADS on CPUs 0..THREADS-1.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
old=$1 new=$2 filter=$3 rounds=${4:-3} threads=${5:-1}
cpus=$(seq -s, 0 $((threads - 1)))
for _ in $(seq "$rounds"); do
    for side in old new; do
        bin=$old
        [ "$side" = new ] && bin=$new
        HL_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads taskset -c "$cpus" "$bin" \
            --benchmark_filter="$filter" --benchmark_min_time=0.5 --benchmark_format=csv 2>/dev/null |
            awk -F, -v side="$side" '/^"(mha|gemm)/ { gsub(/"/, "", $1); print side, $1, $4 / 1000 }'
    done
done | awk '
    { key = $2; t = $3
      if (!(key in best_old)) { best_old[key] = 1e300; best_new[key] = 1e300 }
      if ($1 == "old" && t < best_old[key]) best_old[key] = t
      if ($1 == "new" && t < best_new[key]) best_new[key] = t }
    END { for (key in best_old)
              printf "%-72s old %10.3f ms  new %10.3f ms  old/new %.3f\n", key, best_old[key], best_new[key], best_old[key] / best_new[key] }' | sort
