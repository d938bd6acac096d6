#!/usr/bin/env python3
"""mhac against PyTorch, ONNX Runtime and Keras 3 / JAX, on the same weights and inputs.

Run it through `tools/dev peers [--quick]`, which builds `mhac`, creates `.venv-peers`
from bench/peers/requirements.txt and calls this script with that venv's Python:

    .venv-peers/bin/python bench/peers/run_peers.py --mhac build/tools/mhac [--quick]

For every shape of SHAPES and every thread count (1, 2) it
  1. generates the layer's weights and inputs with numpy (seeded) and saves them as .npy,
  2. times `mhac bench` (a subprocess), then each peer, with `mhac bench` again after each
     peer (mhac, peer 1, mhac, peer 2, ..., mhac), in --rounds rounds (3), so every
     implementation's time is a median over runs spread across the same minutes;
     everything under `taskset` and the thread settings of that count (HL_NUM_THREADS,
     torch.set_num_threads, ORT intra_op_num_threads, XLA_FLAGS, OMP/MKL/OpenBLAS
     variables),
  3. checks every output against a float64 numpy reference (max |error| / max |reference|),
and times numpy's and torch's sgemm in the same run (the machine's GEMM ceiling). It
writes bench/results/peers-<machine>.md (table, ratios, ceiling, agreement) and a PNG
bar chart beside it. `--isa avx2` holds mhac and the peers it can to AVX2 (a proxy for an
AVX2 machine on an AVX-512 one), ranks mhac against those, and writes
peers-<machine>-avx2.md.

Each peer lives in a worker process of its own (this script with --worker), one per
thread count under taskset, all started before the first shape (shapes are the outer
loop, so a shape's 1- and 2-thread rows run back to back); it reads one JSON request per
line on stdin and answers one JSON line. A worker is idle (blocked on stdin) while
anything else is timed.
"""

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# name, model, B, T, S, E, N, H   (self-attention unless T != S: query [B,T,E], key = value [B,S,E])
SHAPES = [
    ("bert_b1", "BERT-base", 1, 128, 128, 768, 12, 64),
    ("bert_b8", "BERT-base", 8, 128, 128, 768, 12, 64),
    ("bert_512", "BERT-base", 1, 512, 512, 768, 12, 64),
    ("vit_b16", "ViT-B/16", 1, 197, 197, 768, 12, 64),
    ("long_4096", "long", 1, 4096, 4096, 512, 8, 64),
    ("decode_128", "decode", 1, 1, 128, 768, 12, 64),
    ("decode_2048", "decode", 1, 1, 2048, 768, 12, 64),
    ("tiny", "tiny", 1, 16, 16, 64, 4, 16),
]
QUICK_SHAPES = ("tiny", "bert_b1")

PEERS = ["torch_mha", "torch_sdpa", "onnxruntime", "keras_jax"]
PEER_LABELS = {
    "torch_mha": "PyTorch nn.MultiheadAttention",
    "torch_sdpa": "PyTorch SDPA layer",
    "onnxruntime": "ONNX Runtime",
    "keras_jax": "Keras 3 / JAX (jit)",
}
SHORT = {"mhac": "mhac", "torch_mha": "torch MHA", "torch_sdpa": "torch SDPA",
         "onnxruntime": "ORT", "keras_jax": "Keras/JAX"}
SGEMM_SHAPES = [(768, 768, 768), (128, 768, 2304), (4096, 512, 512)]  # M x K x N
# Agreement: max |out - ref| / max |ref| against the float64 reference. 1e-4 of the
# output's scale is the bound mhac's Keras conformance tests use (docs/tolerance.md).
TOLERANCE = 1e-4
SEED = 2026


# ---------------------------------------------------------------------------------------
# data


def make_layer(shape, seed):
    """Keras-layout weights (glorot_uniform kernels, small uniform biases) and inputs."""
    _, _, B, T, S, E, N, H = shape
    rng = np.random.default_rng(seed)

    def glorot(shape_, fan_in, fan_out):
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, shape_).astype(np.float32)

    def bias(shape_):
        return rng.uniform(-0.1, 0.1, shape_).astype(np.float32)

    w = {
        "query_kernel": glorot((E, N, H), E, N * H), "query_bias": bias((N, H)),
        "key_kernel": glorot((E, N, H), E, N * H), "key_bias": bias((N, H)),
        "value_kernel": glorot((E, N, H), E, N * H), "value_bias": bias((N, H)),
        "output_kernel": glorot((N, H, E), N * H, E), "output_bias": bias((E,)),
    }
    x = {"query": rng.uniform(-1, 1, (B, T, E)).astype(np.float32)}
    if S != T:
        x["value"] = rng.uniform(-1, 1, (B, S, E)).astype(np.float32)
    return w, x


def reference(w, x):
    """Keras's MultiHeadAttention in float64, one head at a time (T x S logits)."""
    f = {k: v.astype(np.float64) for k, v in w.items()}
    q_in = x["query"].astype(np.float64)
    kv_in = x["value"].astype(np.float64) if "value" in x else q_in
    N, H = f["query_kernel"].shape[1:]
    out = np.zeros(q_in.shape[:2] + (f["output_kernel"].shape[-1],))
    for n in range(N):
        q = q_in @ f["query_kernel"][:, n] + f["query_bias"][n]
        k = kv_in @ f["key_kernel"][:, n] + f["key_bias"][n]
        v = kv_in @ f["value_kernel"][:, n] + f["value_bias"][n]
        logits = (q / math.sqrt(H)) @ k.transpose(0, 2, 1)
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        out += (p @ v) @ f["output_kernel"][n]
    return out + f["output_bias"]


def flops(shape):
    _, _, B, T, S, E, N, H = shape
    return 2.0 * B * (T * E * N * H + 2 * S * E * N * H + 2 * N * T * S * H + T * N * H * E)


# ---------------------------------------------------------------------------------------
# thread settings


def cpus_for(threads):
    return ",".join(str(c) for c in range(threads))


# --isa avx2: what holds each implementation to AVX2 (a proxy for an AVX2 machine, such as
# issue 10's AMD EPYC, on an AVX-512 one). ONNX Runtime has no such switch (MLAS picks its
# kernels from cpuid), and XLA's --xla_cpu_max_isa reaches its generated code but not its
# dot kernels: on the 2-core Xeon it ran bert_b1 at 131 GFLOP/s with the flag, above the
# AVX2 FMA peak (~115; torch's and numpy's sgemm, held, reached 113-117). Both are timed
# but left out of the fastest peer.
# One record per level: the environment that holds the implementations, XLA's flag, the
# report's sentence, and the peers left out of the fastest peer.
ISA_LEVELS = {
    "avx2": {
        "env": {"MHAC_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2",
                "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
        "xla_flag": "--xla_cpu_max_isa=AVX2",
        "held": "AVX2: mhac (`MHAC_ISA`), torch (`ATEN_CPU_CAPABILITY`, "
                "`MKL_ENABLE_INSTRUCTIONS`), numpy's OpenBLAS (`OPENBLAS_CORETYPE=Haswell`); "
                "**not ONNX Runtime** (MLAS has no switch) **nor Keras/JAX** "
                "(`--xla_cpu_max_isa=AVX2` is set, but XLA's dot kernels ran above the "
                "AVX2 peak with it)",
        "not_held": {"onnxruntime", "keras_jax"},
    },
}
ISA = None  # set by --isa


def thread_env(threads):
    env = dict(os.environ)
    if ISA:
        env.update(ISA_LEVELS[ISA]["env"])
    t = str(threads)
    env.update({
        "HL_NUM_THREADS": t,
        "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t,
        "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
    })
    # XLA:CPU sizes its intra-op pool from the CPUs the process may use (taskset);
    # for one thread Eigen's own multithreading is switched off too.
    flags = ["--xla_cpu_multi_thread_eigen=false"] if threads == 1 else []
    if ISA:
        flags.append(ISA_LEVELS[ISA]["xla_flag"])
    env["XLA_FLAGS"] = " ".join(flags)
    return env


# ---------------------------------------------------------------------------------------
# worker side: one peer, requests on stdin


def load_dir(d):
    d = Path(d)
    w = {p.stem: np.load(p) for p in (d / "weights").glob("*.npy")}
    x = {p.stem: np.load(p) for p in (d / "inputs").glob("*.npy")}
    return w, x


def torch_weights(w):
    import torch
    E, N, H = w["query_kernel"].shape
    Hv = w["value_kernel"].shape[2]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return {
        "wq": t(w["query_kernel"].reshape(E, N * H).T), "bq": t(w["query_bias"].ravel()),
        "wk": t(w["key_kernel"].reshape(E, N * H).T), "bk": t(w["key_bias"].ravel()),
        "wv": t(w["value_kernel"].reshape(E, N * Hv).T), "bv": t(w["value_bias"].ravel()),
        "wo": t(w["output_kernel"].reshape(N * Hv, -1).T), "bo": t(w["output_bias"]),
        "N": N, "H": H, "Hv": Hv,
    }


def sdpa_module(w, self_attention):
    """Explicit projections (packed QKV for self-attention) + F.scaled_dot_product_attention."""
    import torch
    import torch.nn.functional as F

    tw = torch_weights(w)

    class SDPALayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.N, self.H, self.Hv = tw["N"], tw["H"], tw["Hv"]
            P = torch.nn.Parameter
            if self_attention:
                self.w_qkv = P(torch.cat([tw["wq"], tw["wk"], tw["wv"]]), requires_grad=False)
                self.b_qkv = P(torch.cat([tw["bq"], tw["bk"], tw["bv"]]), requires_grad=False)
            else:
                self.w_q = P(tw["wq"], requires_grad=False)
                self.b_q = P(tw["bq"], requires_grad=False)
                self.w_kv = P(torch.cat([tw["wk"], tw["wv"]]), requires_grad=False)
                self.b_kv = P(torch.cat([tw["bk"], tw["bv"]]), requires_grad=False)
            self.w_o = P(tw["wo"], requires_grad=False)
            self.b_o = P(tw["bo"], requires_grad=False)

        def forward(self, x, kv=None):
            B, T, _ = x.shape
            NH, NHv = self.N * self.H, self.N * self.Hv
            if kv is None:
                q, k, v = F.linear(x, self.w_qkv, self.b_qkv).split([NH, NH, NHv], dim=-1)
                S = T
            else:
                S = kv.shape[1]
                q = F.linear(x, self.w_q, self.b_q)
                k, v = F.linear(kv, self.w_kv, self.b_kv).split([NH, NHv], dim=-1)
            q = q.reshape(B, T, self.N, self.H).transpose(1, 2)
            k = k.reshape(B, S, self.N, self.H).transpose(1, 2)
            v = v.reshape(B, S, self.N, self.Hv).transpose(1, 2)
            o = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(H), as Keras
            return F.linear(o.transpose(1, 2).reshape(B, T, NHv), self.w_o, self.b_o)

    return SDPALayer().eval()


class Worker:
    def __init__(self, peer, threads):
        self.peer, self.threads = peer, threads
        self.versions = {"numpy": np.__version__}
        if peer.startswith("torch") or peer == "onnxruntime":
            import torch
            torch.set_num_threads(threads)
            torch.set_num_interop_threads(1)
            self.versions["torch"] = torch.__version__
            self.versions["torch_threads"] = torch.get_num_threads()
        if peer == "onnxruntime":
            import onnx
            import onnxruntime
            self.versions["onnxruntime"] = onnxruntime.__version__
            self.versions["onnx"] = onnx.__version__
        if peer == "keras_jax":
            import jax
            import jaxlib
            import keras
            self.versions.update(keras=keras.__version__, jax=jax.__version__,
                                 jaxlib=jaxlib.__version__, keras_backend=keras.backend.backend())

    def prepare(self, d, work):
        """A function that runs one layer call and returns its output as numpy."""
        w, x = load_dir(d)
        q = x["query"]
        v = x.get("value")
        if self.peer == "torch_mha":
            import torch
            tw = torch_weights(w)
            E, N = q.shape[2], tw["N"]
            m = torch.nn.MultiheadAttention(E, N, bias=True, batch_first=True)
            with torch.no_grad():
                m.in_proj_weight.copy_(torch.cat([tw["wq"], tw["wk"], tw["wv"]]))
                m.in_proj_bias.copy_(torch.cat([tw["bq"], tw["bk"], tw["bv"]]))
                m.out_proj.weight.copy_(tw["wo"])
                m.out_proj.bias.copy_(tw["bo"])
            m.eval()
            xq = torch.from_numpy(q)
            xkv = xq if v is None else torch.from_numpy(v)

            def call():
                with torch.inference_mode():
                    return m(xq, xkv, xkv, need_weights=False)[0]
            return call, lambda r: r.numpy()
        if self.peer == "torch_sdpa":
            import torch
            m = sdpa_module(w, v is None)
            args = (torch.from_numpy(q),) if v is None else (torch.from_numpy(q), torch.from_numpy(v))

            def call():
                with torch.inference_mode():
                    return m(*args)
            return call, lambda r: r.numpy()
        if self.peer == "onnxruntime":
            import onnxruntime as ort
            import torch
            m = sdpa_module(w, v is None)
            args = (torch.from_numpy(q),) if v is None else (torch.from_numpy(q), torch.from_numpy(v))
            names = ["query"] if v is None else ["query", "value"]
            path = str(Path(work) / "layer.onnx")
            torch.onnx.export(m, args, path, input_names=names, output_names=["output"],
                              opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = {"query": q} if v is None else {"query": q, "value": v}
            return (lambda: sess.run(None, feed)[0]), (lambda r: r)
        if self.peer == "keras_jax":
            import jax
            import keras
            E, N, H = w["query_kernel"].shape
            layer = keras.layers.MultiHeadAttention(num_heads=N, key_dim=H,
                                                    value_dim=w["value_kernel"].shape[2])
            kv = q if v is None else v
            layer(q, kv)  # builds the layer
            layer.set_weights([w[k] for k in ("query_kernel", "query_bias", "key_kernel",
                                              "key_bias", "value_kernel", "value_bias",
                                              "output_kernel", "output_bias")])
            tv = [x_.value for x_ in layer.trainable_variables]
            ntv = [x_.value for x_ in layer.non_trainable_variables]

            @jax.jit
            def f(tv, ntv, query, value):
                out, _ = layer.stateless_call(tv, ntv, query, value)
                return out

            qj = jax.device_put(q)
            kvj = qj if v is None else jax.device_put(v)
            return (lambda: f(tv, ntv, qj, kvj).block_until_ready()), (lambda r: np.asarray(r))
        raise ValueError(self.peer)

    def run(self, req):
        call, to_numpy = self.prepare(req["dir"], req["work"])
        import gc
        # At least `warmup` calls and `warmup_s` seconds of them, as mhac bench's
        # --warmup / --warmup-seconds: the same rule for every implementation.
        n, t_warm = 0, time.perf_counter()
        while n < req["warmup"] or time.perf_counter() - t_warm < req["warmup_s"]:
            r = call()
            n += 1
        gc.collect()
        gc.disable()
        times = []
        for _ in range(req["repeats"]):
            t0 = time.perf_counter()
            r = call()
            times.append(time.perf_counter() - t0)
        gc.enable()
        np.save(req["out"], to_numpy(r).astype(np.float32))
        del call, r
        gc.collect()
        return {"times_s": times}

    def sgemm(self, req):
        """numpy (its bundled BLAS) and torch (MKL on x86 wheels) sgemm, GFLOP/s at the median."""
        import torch
        rng = np.random.default_rng(0)
        res = []
        for M, K, N in SGEMM_SHAPES:
            a = rng.standard_normal((M, K), dtype=np.float32)
            b = rng.standard_normal((K, N), dtype=np.float32)
            c = np.empty((M, N), np.float32)
            ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
            for lib, fn in (("numpy", lambda: np.matmul(a, b, out=c)),
                            ("torch", lambda: torch.mm(ta, tb, out=tc))):
                for _ in range(3):
                    fn()
                ts = []
                for _ in range(req["repeats"]):
                    t0 = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t0)
                med = float(np.median(ts))
                res.append({"lib": lib, "m": M, "k": K, "n": N, "median_s": med,
                            "gflops": 2.0 * M * K * N / med * 1e-9})
        blas = "?"
        try:
            cfg = np.show_config(mode="dicts")
            blas = cfg["Build Dependencies"]["blas"]["name"] + " " + \
                cfg["Build Dependencies"]["blas"].get("version", "")
        except Exception:  # noqa: BLE001
            pass
        return {"sgemm": res, "numpy_blas": blas.strip(),
                "torch_blas": "MKL" if torch.backends.mkl.is_available() else "no MKL"}


def worker_main(peer, threads):
    # Replies go to the original stdout; anything the libraries print goes to stderr.
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        worker = Worker(peer, threads)
        reply.write(json.dumps({"ready": True, "versions": worker.versions}) + "\n")
    except Exception as e:  # noqa: BLE001
        reply.write(json.dumps({"ready": False, "error": repr(e)}) + "\n")
        return 1
    for line in sys.stdin:
        req = json.loads(line)
        try:
            ans = worker.sgemm(req) if req["cmd"] == "sgemm" else worker.run(req)
            ans["ok"] = True
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            ans = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        reply.write(json.dumps(ans) + "\n")
    return 0


# ---------------------------------------------------------------------------------------
# driver side


class PeerProcess:
    def __init__(self, peer, threads, log):
        self.peer = peer
        cmd = ["taskset", "-c", cpus_for(threads), sys.executable, os.path.abspath(__file__),
               "--worker", peer, "--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, env=thread_env(threads), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        self.hello = self.ask(None)
        if not self.hello.get("ready"):
            raise RuntimeError(f"{peer} worker failed to start: {self.hello}")

    def ask(self, req):
        if req is not None:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.peer} worker exited (see the log)")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run_mhac(mhac, d, out, threads, repeats, warmup, warmup_s, log):
    cmd = ["taskset", "-c", cpus_for(threads), mhac, "bench", "--weights", f"{d}/weights",
           "--inputs", f"{d}/inputs", "--repeats", str(repeats), "--warmup", str(warmup),
           "--warmup-seconds", str(warmup_s),
           "--output", out, "--json"]
    p = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
    log.write(p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"mhac bench failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def vector_level(flags):
    """The widest x86 vector extension among `flags` ("" elsewhere): one model name covers
    machines with and without AVX-512 (the AMD EPYCs: Zen 3 has AVX2, Zen 4 adds AVX-512),
    and which one ran decides mhac's kernels and the peers' alike."""
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("sse4_1", "SSE4.1")):
        if flag in flags:
            return name
    return ""


def machine_name():
    model, flags = "unknown CPU", set()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            model = m.group(1).strip()
        m = re.search(r"^Flags:\s*(.+)$", out, re.M)
        if m:
            flags = set(m.group(1).split())
    except OSError:
        pass
    cores = os.cpu_count()
    slug = re.sub(r"\((r|tm)\)", "", model.lower())
    slug = re.sub(r"[^a-z0-9]+", "_", slug).strip("_")
    vector = vector_level(flags)
    if vector:
        model = f"{model} ({vector})"
        slug += "_" + re.sub(r"[^a-z0-9]", "", vector.lower())
    return f"{model}, {cores} CPUs", f"{slug}_{cores}cpu"


def proc_stat_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def own_cpu_seconds(live=()):
    """CPU seconds of this process, its reaped children and the `live` workers."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
    for w in live:  # not reaped yet, so not in RUSAGE_CHILDREN
        try:
            with open(f"/proc/{w.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def git(*args, root):
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


def fmt_ms(s):
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def driver(args):
    root = Path(__file__).resolve().parents[2]
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "peers.log", "w")
    shapes = [s for s in SHAPES if not args.quick or s[0] in QUICK_SHAPES]
    if args.shapes:
        keep = args.shapes.split(",")
        shapes = [s for s in SHAPES if s[0] in keep]
    threads_list = [int(t) for t in args.threads.split(",")]
    rounds = 1 if args.quick else args.rounds
    repeats = lambda s: (5 if s[0].startswith("long") else 20) if not args.quick else 5  # noqa
    warmup = lambda s: (1 if s[0].startswith("long") else 3) if not args.quick else 2  # noqa
    # Warm-up also lasts at least this long. mhac runs in a fresh process per
    # run, and its first calls run slower: 2-core AMD EPYC, decode_2048 at 2
    # threads, median of 20 calls after 3 warm-up calls 0.86-1.49 ms over four
    # processes, after 300 (about 0.3 s) 0.76-0.79 ms. The peers' workers live
    # across runs; the same rule holds for them.
    warmup_s = 0.05 if args.quick else 0.3
    machine, slug = machine_name()
    t_start = time.time()
    load_before = os.getloadavg()
    busy0, total0 = proc_stat_busy()
    own0 = own_cpu_seconds()

    print(f"[peers] {machine}; shapes {', '.join(s[0] for s in shapes)}; threads {threads_list}",
          flush=True)
    errors = {}  # (shape, impl, threads) -> max |out - ref| / max |ref|
    refs = {}
    for i, shape in enumerate(shapes):
        d = work / shape[0]
        (d / "weights").mkdir(parents=True, exist_ok=True)
        (d / "inputs").mkdir(parents=True, exist_ok=True)
        (d / "out").mkdir(parents=True, exist_ok=True)
        w, x = make_layer(shape, SEED + i)
        for k, v in w.items():
            np.save(d / "weights" / f"{k}.npy", v)
        for k, v in x.items():
            np.save(d / "inputs" / f"{k}.npy", v)
        refs[shape[0]] = reference(w, x)

    def check(shape, impl, threads, path):
        ref = refs[shape[0]]
        out = np.load(path).astype(np.float64)
        if out.shape != ref.shape:
            err = float("inf")
        else:
            err = float(np.max(np.abs(out - ref)) / max(np.max(np.abs(ref)), 1e-30))
        key = (shape[0], impl, threads)
        errors[key] = max(errors.get(key, 0.0), err)

    results = {}  # (shape, threads) -> {"mhac": [json...], peer: [times of each run]}
    versions, sgemm = {}, {}
    # Per thread count: (busy jiffies, total jiffies, own CPU seconds) over its rows.
    spent = {t: [0, 0, 0.0] for t in threads_list}
    workers = {}  # threads -> peer -> PeerProcess
    live = lambda: [w for by_peer in workers.values() for w in by_peer.values()]  # noqa

    @contextlib.contextmanager
    def charged_to(threads):
        """Adds the machine's and the run's CPU time over the block to spent[threads]."""
        b0, t0 = proc_stat_busy()
        o0 = own_cpu_seconds(live())
        yield
        b1, t1 = proc_stat_busy()
        for i, v in enumerate((b1 - b0, t1 - t0, own_cpu_seconds(live()) - o0)):
            spent[threads][i] += v

    try:
        for threads in threads_list:
            workers[threads] = {}
            for peer in PEERS:
                workers[threads][peer] = PeerProcess(peer, threads, log)
                versions.update(workers[threads][peer].hello["versions"])
            with charged_to(threads):
                ans = workers[threads]["torch_mha"].ask(
                    {"cmd": "sgemm", "repeats": 10 if args.quick else 20})
            if not ans.get("ok"):
                raise RuntimeError(f"sgemm failed: {ans}")
            sgemm[threads] = ans
        # Shapes outside, thread counts inside: a shape's rows at 1 and at 2
        # threads run back to back, so the host's drift over the run (its
        # clock moved 10-20% over minutes on the 2-core EPYC) does not fall
        # between the two times whose ratio is a criterion.
        for shape in shapes:
            for threads in threads_list:
                with charged_to(threads):
                    d = work / shape[0]
                    r = results[(shape[0], threads)] = {"mhac": []}
                    R, W = repeats(shape), warmup(shape)

                    def mhac_once():
                        out = d / "out" / f"mhac_t{threads}_{len(r['mhac'])}.npy"
                        r["mhac"].append(
                            run_mhac(args.mhac, d, str(out), threads, R, W, warmup_s, log))
                        check(shape, "mhac", threads, out)
                        time.sleep(0.2)

                    # Rounds: every peer runs once per round, each run between two of
                    # mhac's, so every implementation's time is a median over runs
                    # spread across the same minutes (a burst of the host's load
                    # then moves one run of each, not a whole row).
                    mhac_once()
                    for _ in range(rounds):
                        for peer in PEERS:
                            out = d / "out" / f"{peer}_t{threads}.npy"
                            ans = workers[threads][peer].ask(
                                {"cmd": "run", "dir": str(d), "work": str(d / "out"),
                                 "repeats": R, "warmup": W, "warmup_s": warmup_s,
                                 "out": str(out)})
                            runs = r.setdefault(peer, [])
                            if ans.get("ok"):
                                runs.append(ans["times_s"])
                                check(shape, peer, threads, out)
                            else:
                                r[peer + "_error"] = ans.get("error")
                            time.sleep(0.2)
                            mhac_once()
                    med = lambda p: peer_median(r.get(p)) or float("nan")  # noqa
                    print(f"[peers] {shape[0]:12s} {threads} thr: mhac "
                          f"{np.median([m['median_ms'] for m in r['mhac']]):.3f} ms; " +
                          ", ".join(f"{SHORT[p]} {med(p) * 1e3:.3f}" for p in PEERS), flush=True)
    finally:
        for by_peer in workers.values():
            for wk in by_peer.values():
                wk.close()
    load_by_threads = {t: foreign_share(0, 0, busy, total, 0, own)
                       for t, (busy, total, own) in spent.items()}
    busy1, total1 = proc_stat_busy()
    foreign = foreign_share(busy0, total0, busy1, total1, own0, own_cpu_seconds())
    load_after = os.getloadavg()
    wall = time.time() - t_start

    meta = {
        "machine": machine, "slug": slug, "commit": git("describe", "--always", "--dirty", root=root),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "tools/dev peers" + (" --quick" if args.quick else "") +
                   (f" --rounds {rounds}" if rounds != 3 and not args.quick else "") +
                   (f" --isa {ISA}" if ISA else ""),
        "isa": ISA,
        "load_before": load_before, "load_after": load_after, "foreign": foreign,
        "foreign_by_threads": load_by_threads, "wall_s": wall, "versions": versions,
        "python": platform.python_version(), "quick": args.quick, "rounds": rounds,
        "warmup_s": warmup_s,
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"peers-{slug}" + (f"-{ISA}" if ISA else "")
    md = out_dir / f"{name}.md"
    png = out_dir / f"{name}.png"
    (work / "results.json").write_text(json.dumps(
        {"meta": meta, "results": {f"{k[0]}@{k[1]}": v for k, v in results.items()},
         "errors": {"@".join(map(str, k)): v for k, v in errors.items()}, "sgemm": sgemm},
        indent=1, default=str))
    write_chart(png, shapes, threads_list, results)
    md.write_text(write_markdown(meta, shapes, threads_list, results, errors, sgemm, png.name))
    print(f"[peers] wrote {md} and {png} ({wall / 60:.1f} min)", flush=True)
    bad = [k for k, v in errors.items() if not v <= TOLERANCE]
    if bad:
        print(f"[peers] outputs disagree beyond {TOLERANCE:g}: {bad}", flush=True)
        return 1
    return 0


def foreign_share(b0, t0, b1, t1, own0, own1):
    """Share of the machine's CPU time that processes other than this run used."""
    tick = os.sysconf("SC_CLK_TCK")
    total = (t1 - t0) / tick
    if total <= 0:
        return float("nan")
    return max(0.0, ((b1 - b0) / tick - (own1 - own0)) / total)


def peer_median(runs):
    """A peer's time: the median of its runs' medians, as for mhac (None: no run)."""
    return float(np.median([np.median(t) for t in runs])) if runs else None


def summarize(shape, threads, results):
    r = results[(shape[0], threads)]
    mhac_runs = [m["median_ms"] / 1e3 for m in r["mhac"]]
    mhac = float(np.median(mhac_runs))
    peers = {p: peer_median(r.get(p)) for p in PEERS if r.get(p)}
    not_held = ISA_LEVELS[ISA]["not_held"] if ISA else set()
    held = {p: v for p, v in peers.items() if p not in not_held}
    fastest = min(held, key=held.get) if held else None
    return mhac, mhac_runs, peers, fastest


def write_markdown(meta, shapes, threads_list, results, errors, sgemm, png_name):
    v = meta["versions"]
    L = []
    L.append(f"# mhac vs PyTorch, ONNX Runtime and Keras/JAX: {meta['machine']}")
    L.append("")
    L.append(f"Written by `{meta['command']}` (bench/peers/run_peers.py) in one run; "
             "nothing here was edited by hand." + (" **Quick run** (`--quick`: two shapes, 5 "
                                                   "calls each)." if meta["quick"] else ""))
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append(f"| machine | {meta['machine']} (`lscpu` model name and the widest vector "
             "extension among its flags, `os.cpu_count()`) |")
    L.append(f"| mhac | commit `{meta['commit']}`, `mhac bench` (default kernel sets) |")
    L.append(f"| peers | torch {v.get('torch')} (BLAS: {sgemm_blas(sgemm, 'torch_blas')}), "
             f"onnxruntime {v.get('onnxruntime')} (onnx {v.get('onnx')}), keras {v.get('keras')} "
             f"on jax {v.get('jax')} / jaxlib {v.get('jaxlib')}, numpy {v.get('numpy')} "
             f"(BLAS: {sgemm_blas(sgemm, 'numpy_blas')}), Python {meta['python']} |")
    if meta.get("isa"):
        L.append(f"| ISA held | {ISA_LEVELS[meta['isa']]['held']} |")
    L.append(f"| date | {meta['date']}, {meta['wall_s'] / 60:.1f} min |")
    lb, la = meta["load_before"], meta["load_after"]
    fb = ", ".join(f"{t} thread{'s' if t > 1 else ''}: {meta['foreign_by_threads'][t]:.0%}"
                   for t in threads_list)
    L.append(f"| machine load | load average {lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f} before, "
             f"{la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} after; other processes used "
             f"{meta['foreign']:.0%} of the machine's CPU time during the run ({fb}) |")
    L.append("")
    # Other processes' CPU time, not the load average: the run's own processes
    # (mhac bench, the peers' workers) load the machine too, and a load
    # average still decays from work that ended before the run began.
    if meta["foreign"] > 0.05:
        L.append("**Other processes used more than 5% of the machine's CPU time during the "
                 "run**, so every time below may be inflated, by a different amount for each "
                 "measurement. Interleaving mhac before and after each peer spreads the "
                 "disturbance over both, but ratios from this run are rough.")
        L.append("")
    L.append("## Method")
    L.append("")
    L.append("- Keras `MultiHeadAttention` semantics, self-attention (query = key = value) "
             "except decode (query T=1, key = value of length S), no mask, float32, biases on. "
             "Weights (glorot-uniform kernels, biases in [-0.1, 0.1]) and inputs (uniform in "
             "[-1, 1]) are generated once per shape with numpy (seeded) and saved as .npy; "
             "every implementation reads the same files.")
    rounds = meta.get("rounds", 1)
    L.append("- **Rounds**: each row runs in " + (f"{rounds} rounds; in each round every peer "
             "runs once" if rounds > 1 else "one round: every peer runs once") +
             ", and mhac runs before the first peer and after each peer "
             f"({1 + rounds * len(PEERS)} runs of mhac, {rounds} of each peer). A time in the "
             "table is the median of that implementation's run medians; mhac's comes with the "
             "range of its runs in brackets. A burst of the host's load then moves single runs "
             "of mhac and of the peers alike, not a whole row.")
    L.append("- **mhac**: `mhac bench --weights DIR --inputs DIR --json` (steady_clock around "
             "`call_into`), a fresh process per run.")
    L.append("- **Peers**, each in its own process started once per thread count: "
             "`torch.nn.MultiheadAttention` (batch_first, eval, `need_weights=False`, "
             "inference_mode); an SDPA layer (packed QKV `F.linear` for self-attention, "
             "`F.scaled_dot_product_attention`, output `F.linear`); ONNX Runtime on that SDPA "
             "layer exported with `torch.onnx.export` (opset 17, TorchScript exporter, "
             "`ORT_ENABLE_ALL`, CPU provider, sequential); Keras 3 `MultiHeadAttention` on the "
             "JAX backend, `jax.jit` of `layer.stateless_call`, `block_until_ready`.")
    L.append("- **Threads**: 1 thread = every process under `taskset -c 0` with "
             "`HL_NUM_THREADS=1`, `OMP/MKL/OPENBLAS_NUM_THREADS=1`, `torch.set_num_threads(1)`, "
             "ORT `intra_op_num_threads=1`, `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`; "
             "2 threads = `taskset -c 0,1` and 2 everywhere (XLA sizes its pool from the "
             "affinity). A shape's rows at each thread count run back to back (shapes in the "
             "outer loop), so the host's drift over the run does not fall between a shape's "
             "1-thread and 2-thread times.")
    warm_s = f"{meta['warmup_s']:g} s"
    L.append("- Time per call: " +
             (f"`--quick`: median of 5 calls after warm-up: at least 2 calls and {warm_s}"
              if meta["quick"] else
              "median of 20 calls (5 for `long`) after warm-up: at least 3 calls (1 for "
              f"`long`) and at least {warm_s} of calls") +
             ", the same rule in mhac's fresh processes and the peers' workers. "
             "**ratio** = fastest peer's median / mhac's median: above 1 = mhac faster" +
             (f" (peers held to {meta['isa']} only: "
              f"{', '.join(SHORT[p] for p in sorted(ISA_LEVELS[meta['isa']]['not_held']))} "
              "left out)"
              if meta.get("isa") else "") + ". "
             "GFLOP/s counts multiply-adds as 2 over the four projections, QK^T and PV: the "
             "layer's nominal work (mhac's decode kernels fold K and V into the query side and "
             "do far less, so their rate can exceed the machine's peak).")
    L.append(f"- Agreement: every output against a float64 numpy reference of the same layer, "
             f"max |out - ref| / max |ref|; the bound is {TOLERANCE:g}.")
    L.append("")
    L.append("## Results (ms per call)")
    L.append("")
    L.append("| shape | B, T, S, E, N, H | threads | mhac | " +
             " | ".join(SHORT[p] for p in PEERS) +
             " | fastest peer | ratio | mhac GFLOP/s | max rel. error |")
    L.append("|---|---|---:|---:|" + "---:|" * len(PEERS) + "---|---:|---:|---:|")
    for shape in shapes:
        for t in threads_list:
            mhac, runs, peers, fastest = summarize(shape, t, results)
            cells = []
            for p in PEERS:
                if p in peers:
                    cells.append(fmt_ms(peers[p]))
                else:
                    cells.append("failed")
            err = max(errors.get((shape[0], i, t), float("nan")) for i in ["mhac"] + PEERS)
            ratio = peers[fastest] / mhac if fastest else float("nan")
            L.append(f"| {shape[1]} `{shape[0]}` | {', '.join(map(str, shape[2:]))} | {t} | "
                     f"**{fmt_ms(mhac)}** [{fmt_ms(min(runs))}-{fmt_ms(max(runs))}] | "
                     + " | ".join(cells) +
                     f" | {SHORT[fastest] if fastest else '-'} | **{ratio:.2f}** | "
                     f"{flops(shape) / mhac * 1e-9:.1f} | {err:.1e} |")
    L.append("")
    fails = [(s[0], t, p, results[(s[0], t)].get(p + "_error")) for s in shapes
             for t in threads_list for p in PEERS if not results[(s[0], t)].get(p)]
    for s, t, p, e in fails:
        L.append(f"- {PEER_LABELS[p]} failed on `{s}` at {t} thread(s): `{e}`")
    if fails:
        L.append("")
    L.append(f"![peer time / mhac time]({png_name})")
    L.append("")
    if 1 in threads_list and 2 in threads_list:
        L.extend(scaling_table(shapes, results))
    L.append("## mhac's variant")
    L.append("")
    L.append("| shape | threads | chosen variant (`Selection::describe()`) | ISA |")
    L.append("|---|---:|---|---|")
    for shape in shapes:
        for t in threads_list:
            m = results[(shape[0], t)]["mhac"][0]
            L.append(f"| `{shape[0]}` | {t} | `{m['variant']}` | {m['isa']} |")
    L.append("")
    L.append("## sgemm ceiling (same run, same thread settings)")
    L.append("")
    L.append("C[M,N] = A[M,K] B[K,N], float32, median of the calls, GFLOP/s = 2MKN / time. "
             "The shapes are a BERT-base projection (768x768x768), the packed QKV projection at "
             "T=128 (128x768x2304) and the `long` shape's projection (4096x512x512).")
    L.append("")
    L.append("| M x K x N | " + " | ".join(
        f"{lib} {t} thr" for t in threads_list for lib in ("numpy", "torch")) + " |")
    L.append("|---|" + "---:|" * (2 * len(threads_list)))
    for M, K, N in SGEMM_SHAPES:
        row = []
        for t in threads_list:
            for lib in ("numpy", "torch"):
                g = [s["gflops"] for s in sgemm[t]["sgemm"]
                     if s["lib"] == lib and (s["m"], s["k"], s["n"]) == (M, K, N)]
                row.append(f"{g[0]:.1f}" if g else "-")
        L.append(f"| {M}x{K}x{N} | " + " | ".join(row) + " |")
    L.append("")
    L.append("## Agreement (max |out - ref| / max |ref|, worst over thread counts and mhac runs)")
    L.append("")
    L.append("| shape | " + " | ".join(SHORT[i] for i in ["mhac"] + PEERS) + " |")
    L.append("|---|" + "---:|" * (1 + len(PEERS)))
    for shape in shapes:
        cells = []
        for i in ["mhac"] + PEERS:
            e = [errors[(shape[0], i, t)] for t in threads_list if (shape[0], i, t) in errors]
            cells.append(f"{max(e):.1e}" + ("" if max(e) <= TOLERANCE else " **over**")
                         if e else "-")
        L.append(f"| `{shape[0]}` | " + " | ".join(cells) + " |")
    L.append("")
    return "\n".join(L)


def scaling_table(shapes, results):
    """2-thread time / 1-thread time of every implementation, shape by shape."""
    L = ["## Thread scaling (2-thread time / 1-thread time)", "",
         "Each implementation's 2-thread median over its 1-thread median (0.50 = perfect "
         "scaling); the two rows of a shape ran back to back. Bold: mhac above 0.56 on a "
         "shape of at least 1 GFLOP (issue 10's bar).", "",
         "| shape | GFLOP | mhac | " + " | ".join(SHORT[p] for p in PEERS) + " |",
         "|---|---:|---:|" + "---:|" * len(PEERS)]
    for shape in shapes:
        m1, _, p1, _ = summarize(shape, 1, results)
        m2, _, p2, _ = summarize(shape, 2, results)
        gflop = flops(shape) * 1e-9
        mine = f"{m2 / m1:.2f}"
        if gflop >= 1 and m2 / m1 > 0.56:
            mine = f"**{mine}**"
        cells = [f"{p2[p] / p1[p]:.2f}" if p in p1 and p in p2 else "-" for p in PEERS]
        L.append(f"| `{shape[0]}` | {gflop:.2f} | {mine} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def sgemm_blas(sgemm, key):
    for v in sgemm.values():
        return v.get(key, "?")
    return "?"


def write_chart(path, shapes, threads_list, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, len(threads_list), figsize=(6.5 * len(threads_list), 4.8),
                             squeeze=False, sharey=True)
    width = 0.8 / len(PEERS)
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2"]
    for ax, t in zip(axes[0], threads_list):
        xs = np.arange(len(shapes))
        for j, p in enumerate(PEERS):
            ys = []
            for shape in shapes:
                mhac, _, peers, _ = summarize(shape, t, results)
                ys.append(peers.get(p, float("nan")) / mhac)
            ax.bar(xs + (j - (len(PEERS) - 1) / 2) * width, ys, width, label=SHORT[p],
                   color=colors[j])
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.set_xticks(xs)
        ax.set_xticklabels([s[0] for s in shapes], rotation=30, ha="right")
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("peer time / mhac time (above 1 = mhac faster)")
    axes[0][-1].legend(loc="best", fontsize=8)
    fig.suptitle("Keras MultiHeadAttention, float32 CPU: peers relative to mhac (line = mhac)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mhac", default="build/tools/mhac", help="the mhac binary")
    ap.add_argument("--quick", action="store_true",
                    help="only tiny and BERT-base B=1 T=128, 5 calls each")
    ap.add_argument("--shapes", help="comma-separated shape names (default: all)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of every peer per row, each between two of mhac's (default 3; "
                         "--quick: 1)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--work", default="build/peers", help="scratch directory (.npy, log)")
    ap.add_argument("--out-dir", default="bench/results", help="where the .md and .png go")
    ap.add_argument("--isa", choices=sorted(ISA_LEVELS),
                    help="hold mhac and the peers that can be held to this ISA level (a proxy "
                         "for such a machine; not ONNX Runtime nor XLA's dots), rank mhac "
                         "against those, write peers-<machine>-<isa>.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global ISA
    ISA = args.isa
    if args.worker:
        return worker_main(args.worker, int(args.threads))
    args.mhac = os.path.abspath(args.mhac)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
