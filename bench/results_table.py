#!/usr/bin/env python3
"""Turns mhac_bench's JSON output (--benchmark_out=FILE --benchmark_out_format=json,
run with --benchmark_repetitions=N) into the Markdown table kept in bench/results/.

Per benchmark, over the repetitions of every file of a group: the fastest
repetition (other load only ever slows a run down, so on a shared machine the
fastest is the best estimate), GFLOP/s at that time, the median, the number of
repetitions, the share of the machine other processes used during the fastest
one (the foreign_load counter: near 0 = undisturbed inside this machine), and
the configuration and ISA level that ran. --max-load L ignores repetitions
with a higher foreign_load (a `*` marks a benchmark that had none below it).

usage: results_table.py [--max-load L] RUN.json [RUN.json ...]
       results_table.py [--max-load L] --group NAME RUN.json [...] --group NAME RUN.json [...]
Groups (e.g. two HL_NUM_THREADS settings) become column sets side by side.
"""
import json
import math
import statistics
import sys

UNIT_TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def load(paths):
    """{benchmark name: ([(time in us, foreign load)], flops per call, label)}."""
    out = {}
    for path in paths:
        with open(path) as f:
            runs = json.load(f)["benchmarks"]
        for r in runs:
            if r.get("run_type") != "iteration" or r.get("error_occurred"):
                continue
            t = r["real_time"] * UNIT_TO_US[r["time_unit"]]
            # FLOP is a rate counter: flops per call = FLOP/s * seconds per call.
            flops = r["FLOP"] * t * 1e-6
            entry = out.setdefault(r["run_name"], ([], flops, r.get("label", "")))
            entry[0].append((t, r.get("foreign_load", math.nan)))
    return out


def fmt(us):
    return f"{us / 1e3:.2f} ms" if us >= 1e3 else f"{us:.1f} us"


def table(groups, max_load):
    data = [(name, load(paths)) for name, paths in groups]
    head = "| benchmark |"
    rule = "|---|"
    for name, _ in data:
        sfx = f" ({name})" if name else ""
        head += f" best{sfx} | GFLOP/s{sfx} | median{sfx} | reps{sfx} | load{sfx} |"
        rule += "---:|---:|---:|---:|---:|"
    head += " chosen kernel | ISA |"
    rule += "---|---|"
    names = sorted({n for _, d in data for n in d}, key=lambda n: (n.split("/")[5], n))
    rows = [head, rule]
    for n in names:
        row = f"| `{n.removesuffix('/real_time')}` |"
        label = ""
        for _, d in data:
            if n not in d:
                row += " | | | | |"
                continue
            reps, flops, label = d[n]
            # NaN load (no counter): kept, nothing is known against it.
            kept = [(t, l) for t, l in reps if not l > max_load]
            mark = "" if kept else "*"
            kept = kept or reps
            best, best_load = min(kept)
            median = statistics.median(t for t, _ in kept)
            reps_shown = f"{len(kept)}/{len(reps)}" if max_load < 1 else f"{len(reps)}"
            row += (f" {fmt(best)}{mark} | {flops / best * 1e-3:.1f}{mark} | {fmt(median)}{mark} |"
                    f" {reps_shown} | {best_load:.0%} |")
        kernel, _, isa = label.partition(" on ")
        row += f" {kernel.split(' (')[0]} | {isa} |"
        rows.append(row)
    return "\n".join(rows)


def parse(argv):
    max_load = 1.0
    if argv[:1] == ["--max-load"] and len(argv) > 1:
        max_load, argv = float(argv[1]), argv[2:]
    if not argv:
        sys.exit(__doc__)
    if argv[0] != "--group":
        return [("", argv)], max_load
    groups = []
    i = 0
    while i < len(argv):
        if argv[i] != "--group" or i + 2 >= len(argv):
            sys.exit(__doc__)
        name, i = argv[i + 1], i + 2
        files = []
        while i < len(argv) and argv[i] != "--group":
            files.append(argv[i])
            i += 1
        groups.append((name, files))
    return groups, max_load


if __name__ == "__main__":
    groups, max_load = parse(sys.argv[1:])
    print(table(groups, max_load))
