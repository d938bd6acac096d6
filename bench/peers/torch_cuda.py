#!/usr/bin/env python3
"""PyTorch on the GPU, on the shapes of bench/shapes.h: the yardstick for the mhac CUDA
numbers that `tools/dev gpu-check` records.

Run it on the GPU machine, with a Python that has PyTorch built for CUDA:

    python3 bench/peers/torch_cuda.py [--out FILE] [--calls 20]

For every row of bench/shapes.h (the table mhac_bench runs) it builds the same Keras-layout
layer as run_peers.py (seeded weights and inputs), runs PyTorch's SDPA layer (packed QKV
`F.linear`, `F.scaled_dot_product_attention`, output `F.linear`) in float32 with TF32 off,
and times one call two ways:
  - host: the input copied from host memory to the GPU and the output back, as an mhac CUDA
    call does (mhac's runtime uploads its inputs and downloads its output every call);
  - device: input and output already on the GPU (CUDA events), the kernels alone.
Each time is the median of --calls calls after 3 warm-up calls. The output is checked
against run_peers.py's float64 reference (max |out - ref| / max |ref|), except for shapes
whose reference would take minutes on the CPU.
"""

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run_peers import TOLERANCE, make_layer, reference, sdpa_module  # noqa: E402

# Shapes whose T * S * N exceeds this are not checked against the float64 reference.
MAX_CHECKED_LOGITS = 1 << 24


def bench_shapes():
    """The rows of bench/shapes.h's kShapes, in run_peers.py's shape tuple form."""
    text = (HERE.parent / "shapes.h").read_text()
    row = re.compile(r'\{"(\w+)",\s*"([^"]*)",((?:\s*\d+,?){12})\}')
    shapes = []
    for name, model, numbers in row.findall(text):
        B, T, S, Eq, Ek, Ev, N, H, Hv, O = (int(v) for v in numbers.replace(",", " ").split())
        if len({Eq, Ek, Ev, O}) != 1 or H != Hv:
            print(f"skipping {name}: run_peers.py's layer has one feature size and H == Hv",
                  file=sys.stderr)
            continue
        shapes.append((name, model, B, T, S, Eq, N, H))
    if not shapes:
        sys.exit("no shapes parsed from bench/shapes.h")
    return shapes


def time_calls(fn, calls, sync):
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_device(torch, fn, calls):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(calls):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda")

    lines = [
        f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}, float32, TF32 off; "
        f"median of {args.calls} calls (`bench/peers/torch_cuda.py`)",
        "",
        "| shape | B, T, S, E, N, H | host -> GPU -> host ms | on-GPU ms | max rel. error |",
        "|---|---|---:|---:|---:|",
    ]
    for shape in bench_shapes():
        name, _, B, T, S, E, N, H = shape
        w, x = make_layer(shape, 2026)
        layer = sdpa_module(w, self_attention="value" not in x).to(dev)
        q_host = torch.from_numpy(x["query"])
        kv_host = torch.from_numpy(x["value"]) if "value" in x else None
        q_dev = q_host.to(dev)
        kv_dev = kv_host.to(dev) if kv_host is not None else None

        with torch.inference_mode():

            def host_call():
                kv = kv_host.to(dev) if kv_host is not None else None
                return layer(q_host.to(dev), kv).cpu()

            t_host = time_calls(host_call, args.calls, torch.cuda.synchronize)
            t_dev = time_device(torch, lambda: layer(q_dev, kv_dev), args.calls)
            out = host_call().numpy()
        if T * S * N <= MAX_CHECKED_LOGITS:
            ref = reference(w, x)
            err = float(np.abs(out - ref).max() / np.abs(ref).max())
            err_s = f"{err:.1e}" + ("" if err <= TOLERANCE else " (over the bound)")
        else:
            err_s = "not checked"
        lines.append(f"| `{name}` | {B}, {T}, {S}, {E}, {N}, {H} | {t_host * 1e3:.3f} | "
                     f"{t_dev * 1e3:.3f} | {err_s} |")
        print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
