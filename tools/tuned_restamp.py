#!/usr/bin/env python3
"""Carries tuned-database entries over a source change that leaves their kernels unchanged.

The build applies a tuned-database entry (docs/tuning.md) only while the schedule source
hash (generators/, schedules/, kernel_abi.h) is the entry's own, so any edit there makes
every entry stale. An edit that cannot change an entry's kernel (a comment, the CUDA
schedules, a knob whose default on the entry's target is unchanged) would throw that
tuning away for nothing. This tool proves, entry by entry, that the kernel is unchanged:
it runs the generator built from the sources the entry was tuned with (--old-generator)
and the current one (--new-generator) with the entry's generator, parameters, knobs and
target, emitting Halide's lowered statement and the assembly; where both outputs are
byte-identical it rewrites the entry's source_hash from --old-hash to --new-hash. Entries
whose code differs stay stale, and are listed.

A new knob whose default changes kernels (say gemm_rows_exact, 4 on AVX2) makes entries
stale that merely predate it: --pin gemm_rows_exact=0 retries such an entry with the knob
set to the value that reproduces the old code, and where that is byte-identical the entry
is carried over with the knob added to its knobs (its tuned kernel stays what was measured).

    git worktree add /tmp/old <commit tuned at>     # build its mhac_generators there
    python3 tools/tuned_restamp.py --old-generator /tmp/old/build/generators/mhac_generators \\
        --new-generator build/generators/mhac_generators \\
        --old-hash 06257441be15ff78 --new-hash <this build's, from the configure warnings>

Exit status 0 when every entry with --old-hash was carried over, 1 when some stay stale.
"""

import argparse
import filecmp
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def emit(generator, entry, out_dir, extra_knobs=()):
    out_dir.mkdir(parents=True)
    cmd = [generator, "-g", entry["generator"], "-f", "k", "-n", "k", "-e", "stmt,assembly",
           "-o", str(out_dir), f"target={entry['target']}-no_runtime"]
    cmd += entry["kernel_params"] + entry["knobs"] + list(extra_knobs)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return [out_dir / "k.stmt", out_dir / "k.s"]


def describe(entry):
    params = ",".join(p for p in entry["kernel_params"] if p.startswith("mask_kind"))
    return f"{entry['generator']} {entry['config']} {params} {entry['target']} " \
           f"bucket {entry['bucket']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-generator", required=True, type=Path)
    ap.add_argument("--new-generator", required=True, type=Path)
    ap.add_argument("--old-hash", required=True)
    ap.add_argument("--new-hash", required=True)
    ap.add_argument("--db", type=Path, default=Path(__file__).resolve().parent.parent /
                    "schedules" / "tuned")
    ap.add_argument("--pin", action="append", default=[], metavar="KNOB=VALUE",
                    help="a new knob's value that reproduces the old code (repeatable)")
    args = ap.parse_args()
    for pin in args.pin:
        if "=" not in pin:
            ap.error(f"--pin {pin}: expected KNOB=VALUE")

    stale = 0
    with tempfile.TemporaryDirectory() as tmp:
        for db_file in sorted(args.db.glob("*.json")):
            db = json.loads(db_file.read_text())
            changed = False
            for i, entry in enumerate(db["entries"]):
                if entry["source_hash"] != args.old_hash:
                    continue
                work = Path(tmp) / db_file.stem / str(i)
                old = emit(args.old_generator, entry, work / "old")
                new = emit(args.new_generator, entry, work / "new")
                same = all(filecmp.cmp(a, b, shallow=False) for a, b in zip(old, new))
                # Pins the entry does not set already (its own value wins).
                set_knobs = {k.split("=")[0] for k in entry["knobs"]}
                pins = [p for p in args.pin if p.split("=")[0] not in set_knobs]
                pinned = False
                if not same and pins:
                    new = emit(args.new_generator, entry, work / "pinned", pins)
                    same = pinned = all(filecmp.cmp(a, b, shallow=False)
                                        for a, b in zip(old, new))
                if same:
                    entry["source_hash"] = args.new_hash
                    if pinned:
                        entry["knobs"] = sorted(entry["knobs"] + pins)
                    changed = True
                else:
                    stale += 1
                how = f"carried over with {' '.join(pins)}" if pinned else "carried over"
                print(f"{how if same else 'CODE DIFFERS, stays stale'}: {describe(entry)}")
            if changed:
                db_file.write_text(json.dumps(db, indent=2, ensure_ascii=False) + "\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
