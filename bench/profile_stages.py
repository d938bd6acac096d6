#!/usr/bin/env python3
"""Where a fused kernel's time goes, stage by stage (Halide's profiler).

Builds one fused kernel with the build's generator for `<target>-profile`, runs it through
`mhac tune-worker` (checked against the float64 reference, then timed; the runtime's
scratch pool as in the build's kernels) and prints the profiler's report: time, threads
and allocations per Func. The instrumentation costs a few percent; compare stages
within one report, not its total with `mhac bench`.

  bench/profile_stages.py --config generic --shape 1,4096,4096 --layer 512,8,64
  bench/profile_stages.py --config bert_base --shape 1,512,512 --threads 2 --knob key_block=256
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_target():
    flags = open("/proc/cpuinfo").read()
    if " avx512f " in flags and " avx512bw " in flags:
        return "x86-64-linux-avx512_skylake"
    if " avx2 " in flags:
        return "x86-64-linux-avx2-fma-f16c"
    return "x86-64-linux-sse41"


def config_row(build, name):
    """The default table's row `name` as the generator's size parameters."""
    keys = ["num_heads", "key_dim", "value_dim", "query_features", "key_features",
            "value_features", "output_features"]
    if name == "generic":
        return dict.fromkeys(keys, 0) | {"use_bias": True}
    table = os.path.join(build, "kernels/default_set_registry/default_set_table.txt")
    for line in open(table):
        f = line.split()
        if f and f[0] == name:
            return dict(zip(keys, map(int, f[1:8]))) | {"use_bias": f[8] in ("1", "true", "ON")}
    sys.exit(f"profile_stages: no row '{name}' in {table}")


def build_kernel(generator, row, mask, knobs, target, out_dir):
    """One fused kernel `mhac_tune_kernel` of `row` as a shared object in `out_dir`."""
    params = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in row.items()]
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([generator, "-g", "mhac_fused", "-f", "mhac_tune_kernel", "-e", "object",
                    "-o", out_dir, f"target={target}", f"mask_kind={mask}", *params, *knobs],
                   check=True)
    so = os.path.join(out_dir, "kernel.so")
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-o", so,
                    os.path.join(out_dir, "mhac_tune_kernel.o")], check=True)
    return so


def generic_sizes(layer):
    """The size fields a shape of the generic row carries after B, T, S, from E,N,H."""
    e, n, h = (int(x) for x in layer.split(","))
    return [e, e, e, n, h, h, e]


def run_worker(build, request, work, threads, who):
    """Runs `mhac tune-worker` on `request` pinned to CPUs 0..threads-1; its result."""
    req, res = os.path.join(work, "request.json"), os.path.join(work, "result.json")
    with open(req, "w") as f:
        json.dump(request, f)
    env = dict(os.environ, HL_NUM_THREADS=str(threads))
    cpus = ",".join(str(c) for c in range(threads))
    rc = subprocess.run(["taskset", "-c", cpus, os.path.join(build, "tools/mhac"), "tune-worker",
                         req, res], env=env).returncode
    result = json.load(open(res)) if os.path.exists(res) else {}
    if rc != 0 or not result.get("ok"):
        sys.exit(f"{who}: the worker failed (exit {rc}): {json.dumps(result)[:2000]}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--config", default="generic", help="a row of the default table, or generic")
    ap.add_argument("--shape", required=True, help="B,T,S")
    ap.add_argument("--layer", help="E,N,H for the generic row (E = every feature dim, H = Hv)")
    ap.add_argument("--mask", default="none", choices=["none", "causal", "dense"])
    ap.add_argument("--threads", type=int, default=1, help="HL_NUM_THREADS (and CPUs 0..N-1)")
    ap.add_argument("--knob", action="append", default=[], help="a schedule knob, key=value")
    ap.add_argument("--target", default=None, help="default: the host's best x86 level")
    ap.add_argument("--seconds", type=float, default=2.0, help="timing per kernel")
    a = ap.parse_args()

    row = config_row(a.build, a.config)
    shape = [int(x) for x in a.shape.split(",")]
    check = [1, 7, 9]
    if a.config == "generic":
        if not a.layer:
            sys.exit("profile_stages: --layer E,N,H is needed for the generic row")
        # The check runs the same layer: a --knob that fixes a size (key_dim=64)
        # then holds for it too.
        layer = generic_sizes(a.layer)
        shape += layer
        check += layer
    target = (a.target or host_target()) + "-profile"
    # The object, the shared object and the worker's files, removed afterwards.
    with tempfile.TemporaryDirectory(prefix="mhac-profile-") as work:
        so = build_kernel(os.path.join(a.build, "generators/mhac_generators"), row, a.mask,
                          a.knob, target, work)
        request = {"config": {"name": a.config} | row, "mask": a.mask, "function": "mhac_tune_kernel",
                   "default_so": so, "candidate_so": so, "check_shapes": [check],
                   "time_shapes": [shape], "threads": [a.threads], "seconds_per_shape": a.seconds,
                   "reference_dir": os.path.join(work, "reference"), "reference_key": "profile"}
        print(f"# {a.config} {a.mask} B,T,S={a.shape} layer={a.layer or 'the row'} "
              f"threads={a.threads} target={target} knobs={' '.join(a.knob) or 'hand defaults'}")
        result = run_worker(a.build, request, work, a.threads, "profile_stages")
        for t in result["timings"]:
            print(f"# {t['default_ms']:.3f} ms a call (profiled), {t['reps']} calls")


if __name__ == "__main__":
    main()
