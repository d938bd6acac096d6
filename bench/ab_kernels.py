#!/usr/bin/env python3
"""Interleaved A/B of two fused kernels built from two generators (or two knob settings).

Builds one fused kernel with generator A (and --knob-a settings) and one with generator B
(and --knob-b) for the host's x86 level, checks both against the float64 reference and
times them in one `mhac tune-worker` process per thread count, calls alternating, on the
same data: the comparison a schedule change needs before it lands, where separate runs of
two builds on a noisy VM are not worth comparing. `mhac tune --knobs` does the same for
knobs of one generator; this compares code, say the generator of the last commit (kept
with `cp build/generators/mhac_generators OLD` before rebuilding) against the new one.

  bench/ab_kernels.py --gen-a OLD --gen-b build/generators/mhac_generators
  bench/ab_kernels.py --gen-a G --gen-b G --knob-b gemm_rows=5 --shapes 1,197,197 --rounds 3
  bench/ab_kernels.py --gen-a OLD --gen-b NEW --config generic --layer 512,8,64 \\
      --shapes 1,4096,4096 --threads 2

Prints per round, thread count and shape both medians and A/B (above 1 = B faster).
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from profile_stages import (build_kernel, config_row, generic_sizes, host_target,  # noqa: E402
                            run_worker)

# Check shapes (B, T, S) around the GEMM and attention tiles' edges: rows that 4 and 6
# divide or not, one row, a key range past one block.
CHECK_SHAPES = [[1, 7, 9], [2, 130, 200], [1, 128, 130], [2, 8, 40], [1, 4, 300],
                [3, 16, 16], [1, 1, 33]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="the build whose mhac (tune-worker) and kernel table are used")
    ap.add_argument("--gen-a", required=True, help="generator executable of kernel A")
    ap.add_argument("--gen-b", required=True, help="generator executable of kernel B")
    ap.add_argument("--knob-a", action="append", default=[], help="knob=value for A")
    ap.add_argument("--knob-b", action="append", default=[], help="knob=value for B")
    ap.add_argument("--config", default="bert_base", help="a row of the default table, or generic")
    ap.add_argument("--layer", help="E,N,H for the generic row")
    ap.add_argument("--mask", default="none", choices=["none", "causal", "dense"])
    ap.add_argument("--shapes", default="1,128,128;8,128,128;1,512,512;1,197,197",
                    help="B,T,S;B,T,S;...")
    ap.add_argument("--threads", default="1,2", help="thread counts, one worker each")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per shape and kernel pair")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--target", default=None, help="default: the host's best x86 level")
    a = ap.parse_args()

    row = config_row(a.build, a.config)
    shapes = [[int(x) for x in s.split(",")] for s in a.shapes.split(";")]
    checks = [list(c) for c in CHECK_SHAPES]
    if a.config == "generic":
        if not a.layer:
            sys.exit("ab_kernels: --layer E,N,H is needed for the generic row")
        layer = generic_sizes(a.layer)
        shapes = [s + layer for s in shapes]
        checks = [c + layer for c in checks]
    target = a.target or host_target()
    with tempfile.TemporaryDirectory(prefix="mhac-ab-") as work:
        so_a = build_kernel(a.gen_a, row, a.mask, a.knob_a, target, os.path.join(work, "a"))
        so_b = build_kernel(a.gen_b, row, a.mask, a.knob_b, target, os.path.join(work, "b"))
        print(f"# {a.config} {a.mask} target={target}  A: {a.gen_a} {' '.join(a.knob_a)}  "
              f"B: {a.gen_b} {' '.join(a.knob_b)}", flush=True)
        for rnd in range(a.rounds):
            for threads in [int(x) for x in a.threads.split(",")]:
                request = {"config": {"name": a.config} | row, "mask": a.mask,
                           "function": "mhac_tune_kernel", "default_so": so_a,
                           "candidate_so": so_b, "check_shapes": checks, "time_shapes": shapes,
                           "threads": [threads], "seconds_per_shape": a.seconds,
                           "reference_dir": os.path.join(work, "reference"),
                           "reference_key": "ab"}
                result = run_worker(a.build, request, work, threads, "ab_kernels")
                for t in result["timings"]:
                    print(f"round {rnd} threads {threads} B,T,S={t['batch']},{t['queries']},"
                          f"{t['keys']}: A {t['default_ms']:.3f} ms, B {t['candidate_ms']:.3f} ms, "
                          f"A/B {t['default_ms'] / t['candidate_ms']:.3f} (spreads "
                          f"{t['default_spread']:.2f} / {t['candidate_spread']:.2f}, "
                          f"{t['reps']} pairs)", flush=True)


if __name__ == "__main__":
    main()
