#!/usr/bin/env python3
"""Unseen-model check: random MultiHeadAttention layers drawn from the spec's
argument space, built and saved by real Keras (model.save / save_weights),
run through `mhac run`, compared with Keras's own output and scores.

    KERAS_BACKEND=tensorflow .venv-keras/bin/python tests/keras/random_models.py \
        --mhac build/tools/mhac --count 40 [--seed N]

Not part of CI (it needs TensorFlow); its last result is recorded in
tests/keras/README.md. Exits non-zero if any model differs by more than 1e-4
of the output's scale, if mhac fails on a call Keras accepted, or if mhac
accepts a call Keras refused.
"""
import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras.src import backend as kbackend  # noqa: E402


def draw(rng):
    """Constructor kwargs, input shapes and call options from the spec's space."""
    rank = int(rng.choice([3, 3, 3, 4, 5]))
    kw = {"num_heads": int(rng.integers(1, 5)), "key_dim": int(rng.integers(1, 9))}
    if rng.random() < 0.4:
        kw["value_dim"] = int(rng.integers(1, 9))
    if rng.random() < 0.3:
        kw["use_bias"] = False
    if rng.random() < 0.3:
        kw["output_shape"] = int(rng.integers(1, 12)) if rng.random() < 0.6 else (2, 3)
    if rank == 4 and rng.random() < 0.5:
        kw["attention_axes"] = int(rng.choice([1, 2, -2]))
    if rank == 5:
        kw["attention_axes"] = (2, 3)
    if rng.random() < (0.15 if rank == 3 else 0.05):
        kw["sliding_window"] = int(rng.integers(1, 4))
    if rng.random() < 0.15:
        kw["use_gate"] = True
    # B == N often: Keras then lays batch b's padding masks on head b (spec 2, item 6).
    b = kw["num_heads"] if rng.random() < 0.3 else int(rng.integers(1, 4))
    eq, ev = int(rng.integers(4, 17)), int(rng.integers(4, 17))
    ek = int(rng.integers(4, 17)) if rng.random() < 0.4 else None
    if rank == 3:
        t, s = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        q_shape, v_shape = (b, t, eq), (b, s, ev)
    elif rank == 4:
        x = int(rng.integers(1, 4))
        t, s = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        ax = kw.get("attention_axes")
        if ax in (2, -2):
            q_shape, v_shape = (b, x, t, eq), (b, x, s, ev)
        elif ax == 1:
            q_shape, v_shape = (b, t, x, eq), (b, s, x, ev)
        else:
            q_shape, v_shape = (b, x, t, eq), (b, x, t, ev)
    else:
        q_shape, v_shape = (b, 2, 3, 2, eq), (b, 2, 2, 3, ev)
    # Masks (spec 2): attention_mask [B, T, S] or [B|1, N|1, T, S] (3-D inputs), and the
    # padding masks the tensors would carry (input shape without the feature axis), which
    # Keras ANDs into an auto mask before the attention_mask. Keras raises where its
    # broadcast fails (e.g. a [B, 1, S] auto mask against [B, N, T, S] with B != N);
    # mhac must raise too.
    mask = None
    if rank == 3 and rng.random() < 0.5:
        n = kw["num_heads"]
        mask = str(rng.choice(["bts", "bnts", "bnts", "1nts", "b1ts"]))
        mask = {"bts": (b, t, s), "bnts": (b, n, t, s), "1nts": (1, n, t, s),
                "b1ts": (b, 1, t, s)}[mask]
    opts = {
        "causal": rng.random() < (0.3 if rank == 3 else 0.1),
        "scores": rng.random() < 0.4,
        "mask": mask,
        "query_mask": rng.random() < 0.3,
        "value_mask": rng.random() < 0.3,
        "key_mask": rng.random() < 0.15,
    }
    return kw, q_shape, v_shape, ek, opts


def tf_bias_add_quirk(kw, q_shape, v_shape, ek):
    """Keras 3.15.1's TensorFlow `ops.add` treats a bias that squeezes to one
    axis of size n as a channel bias (tf.nn.bias_add) and, when n equals the
    input's axis 1 but not its last axis, adds it along axis 1 (NCHW). An MHA
    projection bias [N, 1] (key_dim or value_dim 1, N > 1) on inputs whose
    axis 1 has length N is then added along the wrong axis. Other backends
    broadcast normally; mhac follows the layer's definition, so such models
    are reported apart (keras/src/backend/tensorflow/numpy.py: add)."""
    if not kw.get("use_bias", True):
        return False
    n = kw["num_heads"]
    h, hv = kw["key_dim"], kw.get("value_dim", kw["key_dim"])
    if n == 1:
        return False
    return (h == 1 and (q_shape[1] == n or v_shape[1] == n)) or (hv == 1 and v_shape[1] == n) or (
        kw.get("use_gate") and hv == 1 and q_shape[1] == n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mhac", required=True)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--seed", type=int, default=20261126)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    failures, worst, quirks, both_raised = 0, 0.0, 0, 0
    combos, combos_b_eq_n = 0, 0  # matched: padding masks with a rank-4 attention_mask
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            kw, q_shape, v_shape, ek, opts = draw(rng)
            keras.utils.set_random_seed(args.seed + i)
            q = rng.standard_normal(q_shape).astype("float32")
            v = rng.standard_normal(v_shape).astype("float32")
            k = rng.standard_normal(v_shape[:-1] + (ek,)).astype("float32") if ek else None
            layer = keras.layers.MultiHeadAttention(name="attn", **kw)
            qi = keras.Input(q_shape[1:], batch_size=q_shape[0])
            vi = keras.Input(v_shape[1:], batch_size=v_shape[0])
            inputs = [qi, vi]
            if ek:
                ki = keras.Input(k.shape[1:], batch_size=k.shape[0])
                inputs.append(ki)
                out = layer(qi, vi, key=ki)
            else:
                out = layer(qi, vi)
            model = keras.Model(inputs, out)
            # Non-zero biases so bias handling shows.
            model.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype("float32")
                               for w in model.get_weights()])
            path = os.path.join(tmp, f"m{i}.keras")
            model.save(path)

            # Keras's own result, called eagerly with the masks: the query mask as the query
            # tensor's Keras mask (the only route Keras honours), the others as arguments.
            files = {"q": q, "v": v}
            if ek:
                files["k"] = k
            call_kw = {"use_causal_mask": opts["causal"], "return_attention_scores": opts["scores"]}
            flags = {"a": "--attention-mask", "qm": "--query-mask", "vm": "--value-mask",
                     "km": "--key-mask"}
            q_t = kbackend.convert_to_tensor(q)
            if opts["mask"] is not None:
                m = rng.random(opts["mask"]) < 0.75
                m[..., 0] = True
                files["a"] = call_kw["attention_mask"] = m
            if opts["query_mask"]:
                files["qm"] = rng.random(q_shape[:-1]) < 0.8
                kbackend.set_keras_mask(q_t, kbackend.convert_to_tensor(files["qm"]))
            if opts["value_mask"]:
                files["vm"] = call_kw["value_mask"] = rng.random(v_shape[:-1]) < 0.8
            if opts["key_mask"]:
                files["km"] = call_kw["key_mask"] = rng.random(v_shape[:-1]) < 0.8
            if ek:
                call_kw["key"] = kbackend.convert_to_tensor(k)
            keras_error = None
            try:
                result = layer(q_t, kbackend.convert_to_tensor(v), **call_kw)
                want_out, want_scores = (result if opts["scores"] else (result, None))
                want_out = np.asarray(want_out)
                want_scores = None if want_scores is None else np.asarray(want_scores)
            except Exception as e:  # noqa: BLE001 - any Keras refusal
                keras_error = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"

            for name, arr in files.items():
                np.save(os.path.join(tmp, f"{name}{i}.npy"), arr)
            out_path = os.path.join(tmp, f"o{i}.npy")
            cmd = [args.mhac, "run", "--model", path, "--query", os.path.join(tmp, f"q{i}.npy"),
                   "--value", os.path.join(tmp, f"v{i}.npy"), "--out", out_path]
            if ek:
                cmd += ["--key", os.path.join(tmp, f"k{i}.npy")]
            for name, flag in flags.items():
                if name in files:
                    cmd += [flag, os.path.join(tmp, f"{name}{i}.npy")]
            if opts["causal"]:
                cmd.append("--causal")
            if opts["scores"]:
                cmd += ["--scores-out", os.path.join(tmp, f"s{i}.npy")]
            run = subprocess.run(cmd, capture_output=True, text=True)
            masks = {n: tuple(np.shape(files[n])) for n in flags if n in files}
            desc = f"#{i} {kw} q{q_shape} v{v_shape} ek={ek} {dict(opts, mask=None)} masks={masks}"
            if keras_error is not None:
                if run.returncode != 0:
                    both_raised += 1
                    print(f"both raise  {desc}\n    keras: {keras_error}\n    mhac:  "
                          f"{run.stderr.strip()[:300]}")
                else:
                    failures += 1
                    print(f"FAIL {desc}: Keras raised ({keras_error}), mhac did not")
                continue
            if run.returncode != 0:
                failures += 1
                print(f"FAIL {desc}: mhac run: {run.stderr.strip()}")
                continue
            got = np.load(out_path)
            scale = max(float(np.abs(want_out).max()), 1e-2)
            err = float(np.abs(got - want_out).max()) / scale if got.shape == want_out.shape else np.inf
            if opts["scores"]:
                gs = np.load(os.path.join(tmp, f"s{i}.npy"))
                err = max(err, float(np.abs(gs - want_scores).max()) if gs.shape == want_scores.shape else np.inf)
            ok = err <= 1e-4
            if tf_bias_add_quirk(kw, q_shape, v_shape, ek):
                quirks += 1
                print(f"tf-quirk {err:.2e} {desc} (Keras TF backend bias_add, see tf_bias_add_quirk)")
                continue
            worst = max(worst, err)
            failures += 0 if ok else 1
            if ok and len(masks.get("a", ())) == 4 and {"qm", "vm", "km"} & set(masks):
                combos += 1
                combos_b_eq_n += q_shape[0] == kw["num_heads"] > 1
            print(f"{'ok  ' if ok else 'FAIL'} {err:.2e} {desc}")
    checked = args.count - quirks
    print(f"{checked - failures}/{checked} models agree with Keras {keras.__version__} "
          f"({kbackend.backend()}): {checked - failures - both_raised} match (worst difference "
          f"{worst:.2e} of the output scale), {both_raised} raise in both; "
          f"{quirks} set apart for the TF backend's bias_add quirk; {combos} of the matches "
          f"combine padding masks with a rank-4 attention_mask ({combos_b_eq_n} with B == N > 1)")
    raise SystemExit(1 if failures else 0)

if __name__ == "__main__":
    main()
