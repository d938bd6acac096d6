#!/usr/bin/env python3
"""Generate Keras MultiHeadAttention conformance fixtures with REAL Keras.

Run through the pinned environment (see README.md):

    bash tests/keras/regen.sh

which is `setup_venv.sh` followed by

    KERAS_BACKEND=tensorflow .venv-keras/bin/python tests/keras/make_fixtures.py

Writes tests/keras/fixtures/<case>/ (config.json, case.json, inputs/masks/outputs as .npy,
weights/<i>.npy and Keras weight files) plus tests/keras/fixtures/manifest.json.
Case numbers refer to section 9 of shared/design/keras-mha-semantics.md.

Besides recording what Keras computed, every case is cross-checked against an independent
float64 numpy implementation of the spec (`spec_reference` below); the result is stored in
case.json["reference_check"] so that any disagreement between Keras and the spec is visible.
"""

import os
import re

# Must be set before TensorFlow / Keras are imported.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN re-orders float reductions; switch it off so fixtures are stable across machines.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import zlib  # noqa: E402
import shutil  # noqa: E402
import string  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras.src import backend as kbackend  # noqa: E402

try:
    import tf_keras  # noqa: E402
except Exception:  # pragma: no cover - tf_keras is in requirements.txt
    tf_keras = None

warnings.filterwarnings("ignore")
tf.get_logger().setLevel("ERROR")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "fixtures")
LAYER_NAME = "mha"

# Constants of the two compute paths (spec section 2.1), used by the numpy reference.
FUSED_NEG_F32 = -0.7 * 3.38953e38  # keras/src/backend/tensorflow/nn.py::_get_large_negative
EXPLICIT_NEG = {"float32": -1e9, "bfloat16": -1e9, "float16": -3e4}


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------
def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


_FLAT_LIST_RE = re.compile(r"\[\s*([^\[\]{}]*?)\s*\]", re.S)


def write_json(path, obj):
    text = json.dumps(jsonable(obj), indent=1, sort_keys=False)
    # keep lists of scalars (shapes, axes, name lists) on one line
    text = _FLAT_LIST_RE.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    with open(path, "w") as f:
        f.write(text + "\n")


def to_numpy(t):
    a = np.asarray(t)
    return a


def save_npy(case_dir, rel, arr, dtype=None):
    arr = np.asarray(arr)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        # float16 / bfloat16 values are stored as their exact float32 upcast.
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    path = os.path.join(case_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr, allow_pickle=False)
    return {"file": rel, "dtype": str(arr.dtype), "shape": list(arr.shape)}


def h5_listing_of(path):
    """Every dataset (path, shape, dtype) and the root/group attributes of an HDF5 file."""
    out = {"datasets": [], "attrs": {}}

    def attrs_of(obj):
        res = {}
        for k, v in obj.attrs.items():
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, np.ndarray):
                v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v.tolist()]
            res[k] = v
        return res

    with h5py.File(path, "r") as f:
        root_attrs = attrs_of(f)
        if root_attrs:
            out["attrs"]["/"] = root_attrs

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                ds = {"path": "/" + name, "shape": list(obj.shape), "dtype": str(obj.dtype)}
                a = attrs_of(obj)
                if a:
                    ds["attrs"] = a
                out["datasets"].append(ds)
            else:
                a = attrs_of(obj)
                if a:
                    out["attrs"]["/" + name] = a

        f.visititems(visit)
    return out


ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def error_record(stage, e):
    msg = str(e)
    plain = ANSI_RE.sub("", msg)
    # Keras wraps call-time errors as "Exception encountered when calling X.call().\n\n
    # \x1b[1m<core message>\x1b[0m\n\nArguments received by X.call(): ..." -- keep the core.
    m = re.search(r"\x1b\[1m(.*?)\x1b\[0m", msg, re.S)
    core = m.group(1).strip() if m else plain.strip()
    if len(plain) > 600:
        plain = plain[:600] + " ...[truncated]"
    return {"stage": stage, "type": type(e).__name__, "module": type(e).__module__,
            "message": core, "full_message_plain": plain}


def np_dtype_of(dtype_name):
    if dtype_name == "float32":
        return np.float32
    if dtype_name == "float16":
        return np.float16
    if dtype_name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    raise ValueError(dtype_name)


# --------------------------------------------------------------------------------------
# independent numpy (float64) implementation of the spec
# --------------------------------------------------------------------------------------
LETTERS = string.ascii_lowercase


def spec_attention_equations(rank, axes):
    """Spec section 3.2, written independently of Keras."""
    target = LETTERS[:rank]
    batch_like = [i for i in range(rank - 1) if i not in axes]
    source = ""
    nxt = rank
    for i in range(rank):
        if i in batch_like or i == rank - 1:
            source += target[i]
        else:
            source += LETTERS[nxt]
            nxt += 1
    product = (
        "".join(target[i] for i in batch_like)
        + "".join(target[i] for i in axes)
        + "".join(source[i] for i in axes)
    )
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def spec_reference(cfg, named_w, q, v, k, masks, call, path, compute_dtype):
    """Returns (output, scores, combined_bool_mask_expanded_or_None) in float64."""
    f = np.float64
    q = q.astype(f)
    v = v.astype(f)
    k = v if k is None else k.astype(f)
    H = cfg["key_dim"]

    def proj(x, name):
        y = np.tensordot(x, named_w[name + "/kernel"].astype(f), axes=([-1], [0]))
        if name + "/bias" in named_w:
            y = y + named_w[name + "/bias"].astype(f)
        return y

    Q, K, V = proj(q, "query"), proj(k, "key"), proj(v, "value")
    rank = Q.ndim
    in_rank = q.ndim
    axes = cfg["attention_axes"]
    axes = tuple(a if a >= 0 else in_rank + a for a in axes)
    dot_eq, comb_eq, scores_rank = spec_attention_equations(rank, axes)
    c = 1.0 / np.sqrt(float(H))
    n_key_axes = len(axes)

    # ---- combined boolean mask (spec section 2) ----
    auto = None

    def band(t, s):
        i = np.arange(t)[:, None]
        j = np.arange(s)[None, :]
        return i, j

    # Keras's order (_compute_attention_mask): padding, causal and window masks into the
    # auto mask first, then attention_mask & auto with numpy (trailing-axis) broadcasting;
    # an auto mask [B, 1, S] thus meets a [B, N, T, S] attention_mask's head axis.
    if masks.get("query_mask_effective") is not None:
        auto = np.expand_dims(masks["query_mask_effective"].astype(bool), -1)
    for nm in ("value_mask_effective", "key_mask_effective"):
        if masks.get(nm) is not None:
            m = np.expand_dims(masks[nm].astype(bool), -2)
            auto = m if auto is None else (auto & m)
    T, S = q.shape[1], v.shape[1]
    if call.get("use_causal_mask"):
        i, j = band(T, S)
        m = (j <= i)[None]
        auto = m if auto is None else (auto & m)
    if cfg.get("sliding_window"):
        i, j = band(T, S)
        m = (np.abs(i - j) < cfg["sliding_window"])[None]
        auto = m if auto is None else (auto & m)
    am = masks.get("attention_mask")
    if am is not None:
        am = am.astype(bool)  # any non-zero -> True
        mask = am if auto is None else (am & auto)
    else:
        mask = auto
    if mask is not None:
        pos = -(2 * n_key_axes + 1)
        while mask.ndim < scores_rank:
            mask = np.expand_dims(mask, pos)

    key_axes = tuple(range(scores_rank - n_key_axes, scores_rank))
    info = {}
    if path == "fused":
        L = np.einsum(dot_eq, K, Q) * c
        info["max_abs_logit"] = float(np.max(np.abs(L)))
        if mask is not None:
            L = np.where(mask, L, FUSED_NEG_F32)
        L = L - L.max(axis=key_axes, keepdims=True)
        E = np.exp(L)
        P = E / E.sum(axis=key_axes, keepdims=True)
    else:
        L = np.einsum(dot_eq, K, Q * c)
        info["max_abs_logit"] = float(np.max(np.abs(L)))
        if mask is not None:
            L = np.where(mask, L, EXPLICIT_NEG[compute_dtype])
        mx = L.max(axis=key_axes, keepdims=True)
        lse = mx + np.log(np.exp(L - mx).sum(axis=key_axes, keepdims=True))
        P = np.exp(L - lse)
        if mask is not None:
            P = np.where(mask, P, 0.0)
    Pd = P
    if call.get("training") and cfg["dropout"] > 0:
        if cfg["dropout"] >= 1.0:
            Pd = np.zeros_like(P)
        else:
            Pd = None  # stochastic; no reference
    if Pd is None:
        return None, P, mask, info
    C = np.einsum(comb_eq, Pd, V)
    if cfg.get("use_gate"):
        G = 1.0 / (1.0 + np.exp(-proj(q, "gate")))
        C = C * G
    out = np.tensordot(C, named_w["attention_output/kernel"].astype(f), axes=([-2, -1], [0, 1]))
    if "attention_output/bias" in named_w:
        out = out + named_w["attention_output/bias"].astype(f)
    return out, P, mask, info


# --------------------------------------------------------------------------------------
# case runner
# --------------------------------------------------------------------------------------
class Gen:
    def __init__(self, out_dir, only=None):
        self.out_dir = out_dir
        self.only = set(only) if only else None
        self.manifest = []
        self.shared = {}  # case name -> dict(inputs, weights, files, out)
        self.sig_files = {}  # weight signature -> first case that wrote weight files
        self.failures = []
        self.order = []  # every case name define_cases() declares, in order

    # ---------------------------------------------------------------- weights
    @staticmethod
    def make_weights(layer, seed, dtype, zero_bias=False, kernel_scale=1.0):
        """Deterministic numpy weights: glorot-uniform-like kernels, U(-0.5, 0.5) biases
        (Keras would initialise biases to zero, which would leave bias handling untested)."""
        rng = np.random.default_rng(10_000 + seed)
        ws = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if w.path.endswith("kernel"):
                # contracted axes: 1 for Q/K/V/G kernels, 2 for the output kernel
                n_in = 2 if "attention_output" in w.path else 1
                fan_in = int(np.prod(shape[:n_in]))
                fan_out = int(np.prod(shape[n_in:]))
                lim = np.sqrt(6.0 / (fan_in + fan_out)) * kernel_scale
                a = rng.uniform(-lim, lim, size=shape)
            else:
                a = rng.uniform(-0.5, 0.5, size=shape)
                if zero_bias:
                    a = np.zeros(shape)
            ws.append(a.astype(np_dtype_of(dtype)).astype(np.float32))
        return ws

    # ---------------------------------------------------------------- main entry
    def case(
        self,
        name,
        spec_case,
        description,
        ctor,
        q_shape=None,
        v_shape=None,
        k_shape=None,
        self_attention=False,
        masks=None,
        call=None,
        formats=None,
        tf_keras_file=False,
        h5_listing=False,
        compare_to=None,
        seed=0,
        dtype="float32",
        share_from=None,
        input_scale=1.0,
        input_transform=None,
        zero_bias=False,
        expect_error=False,
        extra=None,
        dropout_stats=None,
        notes=None,
    ):
        self.order.append(name)
        if self.only and name not in self.only and not any(name.startswith(o) for o in self.only):
            return
        print(f"[case] {name}", flush=True)
        try:
            self._case(
                name, spec_case, description, dict(ctor), q_shape, v_shape, k_shape,
                self_attention, masks or {}, dict(call or {}),
                None if formats is None else tuple(formats), tf_keras_file, h5_listing,
                compare_to or share_from,
                seed, dtype, share_from, input_scale, input_transform, zero_bias,
                expect_error, extra or {}, dropout_stats, notes,
            )
        except Exception:
            traceback.print_exc()
            self.failures.append(name)

    def _case(self, name, spec_case, description, ctor, q_shape, v_shape, k_shape,
              self_attention, masks, call, formats, tf_keras_file, h5_listing, compare_to,
              seed, dtype,
              share_from, input_scale, input_transform, zero_bias, expect_error, extra,
              dropout_stats, notes):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        case_dir = os.path.join(self.out_dir, name)
        if os.path.exists(case_dir):
            shutil.rmtree(case_dir)
        os.makedirs(case_dir)

        npdt = np_dtype_of(dtype)
        kw = dict(ctor)
        kw.setdefault("name", LAYER_NAME)
        if dtype != "float32":
            kw["dtype"] = dtype
        meta = {
            "name": name,
            "spec_case": spec_case,
            "description": f"[spec 9.{spec_case}] {description}",
            "constructor_kwargs": {k: v for k, v in kw.items()},
            "dtype": dtype,
            "seed": seed,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
        }
        if notes:
            meta["notes"] = notes

        # ------------------------------------------------------------ inputs
        if share_from:
            sh = self.shared[share_from]
            q, v, k = sh["q"], sh["v"], sh["k"]
            meta["same_inputs_and_weights_as"] = share_from
        else:
            rng = np.random.default_rng(seed)
            q = rng.standard_normal(q_shape) * input_scale
            if self_attention:
                v = q
            else:
                v = rng.standard_normal(v_shape) * input_scale
            k = rng.standard_normal(k_shape) * input_scale if k_shape is not None else None
            if input_transform is not None:
                q, v, k = input_transform(q, v, k)
            q = q.astype(npdt)
            v = q if self_attention else v.astype(npdt)
            k = None if k is None else k.astype(npdt)

        # ------------------------------------------------------------ constructor
        error = None
        layer = None
        try:
            layer = keras.layers.MultiHeadAttention(**kw)
        except Exception as e:  # spec case 33
            error = error_record("constructor", e)
        if layer is not None:
            pre_cfg = layer.get_config()

        # ------------------------------------------------------------ build via Functional model
        model = None
        if error is None:
            try:
                q_in = keras.Input(shape=q.shape[1:], name="query_input", dtype=dtype)
                if self_attention:
                    inputs = [q_in]
                    out_sym = layer(q_in, q_in)
                else:
                    v_in = keras.Input(shape=v.shape[1:], name="value_input", dtype=dtype)
                    inputs = [q_in, v_in]
                    if k is not None:
                        k_in = keras.Input(shape=k.shape[1:], name="key_input", dtype=dtype)
                        inputs.append(k_in)
                        out_sym = layer(q_in, v_in, key=k_in)
                    else:
                        out_sym = layer(q_in, v_in)
                model = keras.Model(inputs if len(inputs) > 1 else inputs[0], out_sym,
                                    name="mha_model")
            except Exception as e:
                error = error_record("build", e)

        # ------------------------------------------------------------ weights
        if error is None:
            sig = (dtype, tuple(tuple(w.shape) for w in layer.weights), bool(zero_bias))
            if share_from:
                ws = [w.copy() for w in self.shared[share_from]["weights"]]
            else:
                # Weights depend only on the weight signature (dtype + shapes), so cases whose
                # layers have identical weight shapes share bit-identical weights and can point
                # at one HDF5 file instead of each carrying a ~30 KB copy.
                wseed = zlib.crc32(repr(sig).encode()) % 100_000
                ws = self.make_weights(layer, wseed, dtype, zero_bias=zero_bias)
            layer.set_weights(ws)
            ws = [to_numpy(w.numpy()) for w in layer.weights]  # exact values as stored
            self.shared[name] = {"q": q, "v": v, "k": k, "weights": ws, "sig": sig}

        # ------------------------------------------------------------ config.json
        if layer is not None:
            cfg = layer.get_config()  # resolved after build (attention_axes etc.)
            conf = {
                "class_name": "MultiHeadAttention",
                "module": "keras.layers",
                "config": cfg,
                "build_config": layer.get_build_config() if layer.built else None,
                "keras_version": keras.__version__,
                "backend": keras.backend.backend(),
                "tensorflow_version": tf.__version__,
            }
            write_json(os.path.join(case_dir, "config.json"), conf)
            meta["config_before_build"] = {
                k_: pre_cfg[k_] for k_ in ("value_dim", "output_shape", "attention_axes")
            }
            self.shared.setdefault(name, {})["cfg_key"] = json.dumps(jsonable(
                ({kk: vv for kk, vv in cfg.items() if kk != "name"}, conf["build_config"])),
                sort_keys=True)
        else:
            cfg = None

        # ------------------------------------------------------------ inputs to disk
        files = {}
        files["query"] = save_npy(case_dir, "query.npy", q)
        files["value"] = save_npy(case_dir, "value.npy", v)
        if k is not None:
            files["key"] = save_npy(case_dir, "key.npy", k)
        meta["inputs"] = files
        meta["key_passed"] = k is not None
        meta["value_is_query"] = bool(self_attention)

        # ------------------------------------------------------------ masks
        mask_meta = {}
        mask_arrays = {}
        call_kwargs = {}
        q_t = tf.convert_to_tensor(q)
        v_t = q_t if self_attention else tf.convert_to_tensor(v)
        k_t = None if k is None else tf.convert_to_tensor(k)
        eff = {}
        for mname, spec in masks.items():
            arr = spec["array"]
            how = spec.get("how", "call_argument")
            mask_arrays[mname] = arr
            info = save_npy(case_dir, f"{mname}.npy", arr, dtype=arr.dtype)
            info["how"] = how
            mask_meta[mname] = info
            if mname == "attention_mask":
                call_kwargs["attention_mask"] = arr
            elif mname == "query_mask":
                if how == "keras_mask_on_query_tensor":
                    kbackend.set_keras_mask(q_t, tf.constant(arr.astype(bool)))
                    eff["query_mask_effective"] = arr
                    if self_attention:
                        # value is the same tensor -> Layer.__call__ also fills value_mask
                        eff["value_mask_effective"] = arr
                        mask_meta[mname]["also_value_mask"] = (
                            "value is the same tensor, so Layer.__call__ fills value_mask "
                            "from the same Keras mask")
                elif how == "call_argument":
                    call_kwargs["query_mask"] = arr  # ignored by Keras (spec 2, case 21)
                else:
                    raise ValueError(how)
            elif mname in ("value_mask", "key_mask"):
                if how == "call_argument":
                    call_kwargs[mname] = arr
                elif how == "keras_mask_on_value_tensor":
                    assert mname == "value_mask"
                    kbackend.set_keras_mask(v_t, tf.constant(arr.astype(bool)))
                elif how == "keras_mask_on_key_tensor":
                    assert mname == "key_mask"
                    kbackend.set_keras_mask(k_t, tf.constant(arr.astype(bool)))
                else:
                    raise ValueError(how)
                eff[mname + "_effective"] = arr
            else:
                raise ValueError(mname)
        meta["masks"] = mask_meta

        # ------------------------------------------------------------ call
        use_causal = bool(call.get("use_causal_mask", False))
        ret_scores = bool(call.get("return_attention_scores", False))
        training = call.get("training", None)
        meta["call"] = {
            "use_causal_mask": use_causal,
            "return_attention_scores": ret_scores,
            "training": training,
        }
        if cfg is not None:
            meta["attention_axes"] = cfg.get("attention_axes")
            meta["output_shape"] = cfg.get("output_shape")
            meta["dropout"] = {
                "rate": cfg["dropout"],
                "seed": cfg.get("seed", kw.get("seed")),
                "training": training,
                "active": bool(training) and cfg["dropout"] > 0,
                "bit_exact_reproducible": not (bool(training) and 0 < cfg["dropout"] < 1),
            }
            in_rank = q.ndim
            fused = cfg["dropout"] == 0 and not ret_scores and in_rank == 3
            meta["expected_path"] = "fused" if fused else "explicit"
            meta["causal_only_fast_path"] = bool(
                use_causal and not eff and "attention_mask" not in masks
                and not cfg.get("sliding_window"))

        outputs = {}
        if error is None:
            try:
                args = [q_t, v_t]
                if k_t is not None:
                    call_kwargs["key"] = k_t
                res = layer(*args, return_attention_scores=ret_scores, training=training,
                            use_causal_mask=use_causal, **call_kwargs)
                if ret_scores:
                    out_t, scores_t = res
                else:
                    out_t, scores_t = res, None
                if dropout_stats is None:
                    outputs["output"] = save_npy(case_dir, "output.npy", out_t.numpy())
                    if scores_t is not None:
                        outputs["scores"] = save_npy(case_dir, "scores.npy", scores_t.numpy())
                out_mask = kbackend.get_keras_mask(out_t)
                if out_mask is not None:
                    outputs["output_mask"] = save_npy(case_dir, "output_mask.npy",
                                                      np.asarray(out_mask), dtype=np.bool_)
                out_np = out_t.numpy().astype(np.float64)
                scores_np = None if scores_t is None else scores_t.numpy().astype(np.float64)
            except Exception as e:
                error = error_record("call", e)

        if error is not None:
            if not expect_error:
                raise RuntimeError(f"unexpected error in {name}: {error}")
            meta["expected_error"] = error
            meta["outputs"] = {}
            write_json(os.path.join(case_dir, "case.json"), meta)
            self.manifest.append(meta)
            return
        if expect_error:
            raise RuntimeError(f"{name}: expected an error but Keras raised none")
        meta["expected_error"] = None

        # ------------------------------------------------------------ dropout statistics (case 28)
        if dropout_stats is not None:
            n = dropout_stats["n_runs"]
            base = layer(q_t, v_t, return_attention_scores=True, training=False,
                         **{kk: vv for kk, vv in call_kwargs.items()})
            out_inf, sc = base[0].numpy(), base[1].numpy()
            outputs["output_inference"] = save_npy(case_dir, "output_inference.npy", out_inf)
            outputs["scores"] = save_npy(case_dir, "scores.npy", sc)
            runs = []
            sc_runs_same = True
            for _ in range(n):
                o, s2 = layer(q_t, v_t, return_attention_scores=True, training=True, **call_kwargs)
                runs.append(o.numpy().astype(np.float64))
                sc_runs_same &= bool(np.array_equal(s2.numpy(), sc))
            runs = np.stack(runs)
            mean, std = runs.mean(0), runs.std(0)
            outputs["train_mean"] = save_npy(case_dir, "train_mean.npy", mean)
            outputs["train_std"] = save_npy(case_dir, "train_std.npy", std)
            # The layer's own Dropout applied to the (pre-dropout) probabilities:
            drops = []
            for _ in range(n):
                drops.append(layer._dropout_layer(tf.constant(sc), training=True).numpy())
            drops = np.stack(drops).astype(np.float64)
            rate = layer.dropout
            kept = drops != 0
            scaled = np.broadcast_to(sc.astype(np.float64) / (1 - rate), drops.shape)
            stats = {
                "n_runs": n,
                "rate": rate,
                "zero_fraction_of_dropped_probabilities": float(1 - kept.mean()),
                "kept_values_equal_p_over_1_minus_rate_max_rel_err": float(
                    np.max(np.abs(drops[kept] - scaled[kept]) / np.maximum(scaled[kept], 1e-30))),
                "train_mean_vs_inference_max_abs_diff": float(np.max(np.abs(mean - out_inf))),
                "train_std_mean": float(std.mean()),
                "train_std_max": float(std.max()),
                "expected_mean_abs_err_bound_hint":
                    "|train_mean - output_inference| <~ 5*train_std/sqrt(n_runs) elementwise",
                "returned_scores_identical_in_training_mode": sc_runs_same,
                "bit_exact": False,
                "note": ("Dropout masks come from TensorFlow stateless RNG driven by the "
                         "layer's SeedGenerator; they cannot be reproduced bit-exactly outside "
                         "Keras/TF. Compare statistics only (or inject a keep-mask)."),
            }
            meta["dropout_statistics"] = stats
            out_np, scores_np = None, sc.astype(np.float64)
        meta["outputs"] = outputs

        # ------------------------------------------------------------ weights to disk
        wmeta = {"npy": [], "paths": [], "shapes": []}
        for i, w in enumerate(layer.weights):
            info = save_npy(case_dir, f"weights/{i}.npy", w.numpy())
            wmeta["npy"].append(info["file"])
            wmeta["paths"].append(w.path)
            wmeta["shapes"].append(list(w.shape))
        wmeta["stored_dtype"] = "float32" + (
            "" if dtype == "float32" else f" (exact upcast of the layer's {dtype} variables)")
        wmeta["files"] = {}
        wmeta["h5"] = {}
        if formats is None and sig in self.sig_files:
            # Same weight signature as an earlier case -> bit-identical weights (asserted);
            # point at that case's HDF5 / .keras files (paths relative to this directory).
            owner = self.sig_files[sig]
            assert all(np.array_equal(a, b) for a, b in zip(ws, self.shared[owner]["weights"]))
            same_cfg = self.shared[owner]["cfg_key"] == self.shared[name]["cfg_key"]
            # A .keras archive also carries a layer config and build shapes: only point at the
            # other case's one when both are identical to this case's.
            wmeta["files"] = {kk: f"../{owner}/{vv}"
                              for kk, vv in self.shared[owner]["files"].items()
                              if kk != "keras" or same_cfg}
            wmeta["files_belong_to_case"] = owner
            wmeta["files_note"] = ("weights are bit-identical to that case's (the HDF5 files hold "
                                   "weights only; a referenced layer.keras has an identical "
                                   "layer config and build shapes)")
            formats = ()
        elif formats is None:
            formats = ("weights_h5",)
        if "keras" in formats:
            p = os.path.join(case_dir, "layer.keras")
            model.save(p)
            wmeta["files"]["keras"] = "layer.keras"
            reloaded = keras.models.load_model(p)
            rl = reloaded.get_layer(LAYER_NAME)
            assert all(np.array_equal(a.numpy(), b.numpy())
                       for a, b in zip(rl.weights, layer.weights))
            wmeta["keras_reload_weights_identical"] = True
        if "weights_h5" in formats:
            p = os.path.join(case_dir, "layer.weights.h5")
            model.save_weights(p)
            wmeta["files"]["weights_h5"] = "layer.weights.h5"
            if h5_listing:
                wmeta["h5"]["layer.weights.h5"] = h5_listing_of(p)
        if "keras3_legacy_h5" in formats:
            p = os.path.join(case_dir, "keras3_legacy.h5")
            model.save(p)  # Keras 3 legacy whole-model HDF5
            wmeta["files"]["keras3_legacy_h5"] = "keras3_legacy.h5"
            if h5_listing:
                wmeta["h5"]["keras3_legacy.h5"] = h5_listing_of(p)
        if not wmeta["h5"]:
            del wmeta["h5"]
        self.shared[name]["files"] = {kk: vv for kk, vv in wmeta["files"].items()
                                      if not vv.startswith("../")}
        if self.shared[name]["files"] and sig not in self.sig_files:
            self.sig_files[sig] = name
        meta["weights"] = wmeta

        # ------------------------------------------------------------ TF-era file (tf_keras)
        if tf_keras_file:
            self._tf_keras(case_dir, meta, kw, q, v, k, self_attention, ws, call_kwargs,
                           use_causal, out_np)

        # ------------------------------------------------------------ reload round trip
        own = self.shared[name]["files"]
        if out_np is not None and len(own) > 1:
            meta["weight_format_roundtrip"] = self._roundtrip(
                case_dir, own, kw, q, v, k, self_attention, dtype, ret_scores, training,
                use_causal, call_kwargs, out_np)

        # ------------------------------------------------------------ compare with another case
        self.shared[name]["out"] = out_np
        if compare_to and out_np is not None and self.shared.get(compare_to, {}).get("out") is not None:
            meta["output_max_abs_diff_vs_case"] = {
                "case": compare_to,
                "max_abs_diff": float(np.max(np.abs(out_np - self.shared[compare_to]["out"]))),
            }

        # ------------------------------------------------------------ equations
        meta["equations"] = {
            "query_projection": layer._query_dense.equation,
            "key_projection": layer._key_dense.equation,
            "value_projection": layer._value_dense.equation,
            "output_projection": layer._output_dense.equation,
            "dot_product": layer._dot_product_equation,
            "combine": layer._combine_equation,
            "softmax_axes": list(layer._softmax.axis) if isinstance(
                layer._softmax.axis, (list, tuple)) else [layer._softmax.axis],
        }

        # ------------------------------------------------------------ spec reference check
        named = {w.path.split("/", 1)[1]: w.numpy().astype(np.float64) for w in layer.weights}
        masks_for_ref = dict(eff)
        if "attention_mask" in mask_arrays:
            masks_for_ref["attention_mask"] = mask_arrays["attention_mask"]
        ref_cfg = dict(cfg)
        ref_out, ref_scores, ref_mask, ref_info = spec_reference(
            ref_cfg, named, q.astype(np.float64), v.astype(np.float64),
            None if k is None else k.astype(np.float64), masks_for_ref, meta["call"],
            meta["expected_path"], dtype)
        tol = {"float32": 2e-4, "float16": 3e-2, "bfloat16": 1.5e-1}[dtype]
        rc = {"tolerance": tol, "path_assumed": meta["expected_path"]}
        rc.update(ref_info)
        dot_eq, comb_eq, _ = spec_attention_equations(
            len(q.shape) + 1,
            tuple(a if a >= 0 else q.ndim + a for a in cfg["attention_axes"]))
        rc["spec_equations_match_keras"] = (dot_eq == layer._dot_product_equation
                                            and comb_eq == layer._combine_equation)
        ok = rc["spec_equations_match_keras"]
        if out_np is not None and ref_out is not None:
            d = float(np.max(np.abs(out_np - ref_out)))
            rc["output_max_abs_diff"] = d
            ok &= d <= tol * max(1.0, float(np.max(np.abs(ref_out))))
        if scores_np is not None:
            d = float(np.max(np.abs(scores_np - ref_scores)))
            rc["scores_max_abs_diff"] = d
            ok &= d <= tol
        rc["ok"] = bool(ok)
        if ref_mask is not None:
            m = np.broadcast_to(ref_mask, ref_scores.shape)
            key_axes = tuple(range(m.ndim - len(cfg["attention_axes"]), m.ndim))
            full = ~m.any(axis=key_axes)
            rc["fully_masked_rows"] = int(full.sum())
            if full.any():
                # which query positions (indices into the scores tensor w/o key axes)
                rc["fully_masked_row_index_example"] = [int(x) for x in np.argwhere(full)[0]]
        meta["reference_check"] = rc
        if not ok:
            print(f"  !! reference mismatch in {name}: {rc}", flush=True)

        meta.update(extra)
        write_json(os.path.join(case_dir, "case.json"), meta)
        self.manifest.append(meta)

    # ---------------------------------------------------------------- spec case 32
    def _roundtrip(self, case_dir, own, kw, q, v, k, self_attention, dtype, ret_scores,
                   training, use_causal, call_kwargs, out_np):
        """Load every weight file of this case into a *fresh* Keras 3 layer and re-run."""
        res = {}
        plain_kwargs = {kk: vv for kk, vv in call_kwargs.items() if kk != "key"}

        def run(layer_):
            kk = dict(plain_kwargs)
            if k is not None:
                kk["key"] = tf.constant(k)
            qq = tf.constant(q)
            o = layer_(qq, qq if self_attention else tf.constant(v), return_attention_scores=ret_scores,
                       training=training, use_causal_mask=use_causal, **kk)
            o = o[0] if ret_scores else o
            return o.numpy().astype(np.float64)

        def fresh():
            keras.backend.clear_session()
            layer_ = keras.layers.MultiHeadAttention(**kw)
            ins = [keras.Input(shape=q.shape[1:], dtype=dtype)]
            if not self_attention:
                ins.append(keras.Input(shape=v.shape[1:], dtype=dtype))
            if k is not None:
                ins.append(keras.Input(shape=k.shape[1:], dtype=dtype))
            if self_attention:
                out = layer_(ins[0], ins[0])
            elif k is not None:
                out = layer_(ins[0], ins[1], key=ins[2])
            else:
                out = layer_(ins[0], ins[1])
            return layer_, keras.Model(ins if len(ins) > 1 else ins[0], out)

        for fmt, rel in own.items():
            path = os.path.join(case_dir, rel)
            try:
                if fmt == "keras":
                    keras.backend.clear_session()
                    layer_ = keras.models.load_model(path).get_layer(LAYER_NAME)
                    how = "keras.models.load_model(layer.keras)"
                elif fmt in ("weights_h5", "keras3_legacy_h5"):
                    layer_, model_ = fresh()
                    model_.load_weights(path)
                    how = "fresh Keras 3 Functional model .load_weights(file)"
                elif fmt == "tf_keras_h5":
                    layer_, model_ = fresh()
                    model_.load_weights(path)
                    how = "fresh Keras 3 Functional model .load_weights(TF-era .h5)"
                else:
                    continue
                o = run(layer_)
                res[fmt] = {"how": how, "output_max_abs_diff": float(np.max(np.abs(o - out_np))),
                            "bit_identical": bool(np.array_equal(o, out_np))}
            except Exception as e:
                res[fmt] = {"error": error_record("load", e)}
        return res

    # ---------------------------------------------------------------- tf_keras (TF-era .h5)
    def _tf_keras(self, case_dir, meta, kw, q, v, k, self_attention, ws, call_kwargs,
                  use_causal, out_np):
        if tf_keras is None:
            meta["weights"]["tf_keras_skipped"] = "tf_keras not importable"
            return
        tf_keras.backend.clear_session()
        allowed = ("num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape",
                   "attention_axes", "name")
        tkw = {kk: vv for kk, vv in kw.items() if kk in allowed}
        tl = tf_keras.layers.MultiHeadAttention(**tkw)
        q_in = tf_keras.Input(shape=q.shape[1:])
        if self_attention:
            tm = tf_keras.Model(q_in, tl(q_in, q_in))
        else:
            v_in = tf_keras.Input(shape=v.shape[1:])
            if k is not None:
                k_in = tf_keras.Input(shape=k.shape[1:])
                tm = tf_keras.Model([q_in, v_in, k_in], tl(q_in, v_in, key=k_in))
            else:
                tm = tf_keras.Model([q_in, v_in], tl(q_in, v_in))
        tl.set_weights(ws)
        p = os.path.join(case_dir, "tf_keras_weights.h5")
        # NB: a name ending in ".weights.h5" would make tf_keras write the *new* Keras-3-style
        # format; a plain ".h5" suffix gives the TF-era HDF5 layout of spec section 4.4.
        tm.save_weights(p)
        meta["weights"]["files"]["tf_keras_h5"] = "tf_keras_weights.h5"
        self.shared[meta["name"]]["files"]["tf_keras_h5"] = "tf_keras_weights.h5"
        meta["weights"].setdefault("h5", {})["tf_keras_weights.h5"] = h5_listing_of(p)
        meta["weights"]["tf_keras_version"] = tf_keras.__version__
        # reload into a fresh tf_keras model and run it on the same inputs
        kargs = {}
        if "attention_mask" in call_kwargs:
            kargs["attention_mask"] = call_kwargs["attention_mask"]
        if k is not None:
            kargs["key"] = tf.constant(k)
        tm.load_weights(p)
        assert all(np.array_equal(a, b) for a, b in zip(tl.get_weights(), ws))
        to = tl(tf.constant(q), tf.constant(v), use_causal_mask=use_causal, **kargs).numpy()
        meta["outputs"]["tf_keras_output"] = save_npy(case_dir, "tf_keras_output.npy", to)
        if out_np is not None:
            meta["tf_keras_output_max_abs_diff_vs_keras3"] = float(np.max(np.abs(to - out_np)))

    # ---------------------------------------------------------------- manifest
    def merge_manifest(self):
        """--only: replace (or add) the regenerated cases' entries in the existing
        manifest.json, in define_cases() order; every other entry and the header are
        rewritten byte-identically."""
        path = os.path.join(self.out_dir, "manifest.json")
        if not os.path.exists(path):
            return
        with open(path) as f:
            man = json.load(f)
        old = {c["dir"]: c for c in man["cases"]}
        new = {m["name"]: {"dir": m["name"], "case": jsonable(m)} for m in self.manifest}
        man["cases"] = [new.get(n) or old[n] for n in self.order if n in new or n in old]
        man["num_cases"] = len(man["cases"])
        with open(path, "w") as f:
            json.dump(man, f, separators=(",", ":"))
            f.write("\n")

    def write_manifest(self):
        man = {
            "generator": "tests/keras/make_fixtures.py",
            "spec": "shared/design/keras-mha-semantics.md (section 9)",
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "tensorflow_version": tf.__version__,
            "tf_keras_version": None if tf_keras is None else tf_keras.__version__,
            "numpy_version": np.__version__,
            "h5py_version": h5py.__version__,
            "python_version": sys.version.split()[0],
            "env": {k: os.environ.get(k) for k in ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")},
            "num_cases": len(self.manifest),
            "cases": [{"dir": m["name"], "case": m} for m in self.manifest],
        }
        with open(os.path.join(self.out_dir, "manifest.json"), "w") as f:
            json.dump(jsonable(man), f, separators=(",", ":"))
            f.write("\n")


# --------------------------------------------------------------------------------------
# mask helpers
# --------------------------------------------------------------------------------------
def rand_mask(rng, shape, p=0.6):
    """Random bool mask with at least one True along the last axis."""
    m = rng.random(shape) < p
    idx = rng.integers(0, shape[-1], size=shape[:-1])
    np.put_along_axis(m, idx[..., None], True, axis=-1)
    return m


def padding_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


# --------------------------------------------------------------------------------------
# the cases
# --------------------------------------------------------------------------------------
def define_cases(g):
    B, T, S, E, N, H = 2, 8, 8, 16, 2, 4
    base = dict(num_heads=N, key_dim=H)
    mrng = np.random.default_rng(4242)

    # 1-8 shapes / projections --------------------------------------------------------
    g.case("c01_self_attention", "1", "Self-attention B=2,T=S=8,E=16,N=2,H=4, key omitted (value is query).",
           base, (B, T, E), self_attention=True, seed=1, formats=("weights_h5", "keras"),
           tf_keras_file=True, h5_listing=True)
    g.case("c02_cross_attention_eq_ne_ev", "2", "Cross-attention T=8,S=5,Eq=16,Ev=12 (Eq != Ev), key omitted.",
           base, (B, 8, 16), (B, 5, 12), seed=2)
    g.case("c03_explicit_key_ek_ne_ev", "3", "Explicit key with Ek=6 != Ev=10, T=5, S=7, Eq=16.",
           base, (B, 5, 16), (B, 7, 10), (B, 7, 6), seed=3, formats=("keras",))
    g.case("c04_value_dim_ne_key_dim", "4", "value_dim=6 != key_dim=4 (Wv [E,N,6], Wo [N,6,E]); scale stays 1/sqrt(4).",
           dict(base, value_dim=6), (B, T, E), (B, 6, E), seed=4, formats=("keras",))
    g.case("c05_no_bias", "5", "use_bias=False: 4 kernels, no bias terms.",
           dict(base, use_bias=False), (B, T, E), (B, 6, E), seed=5,
           tf_keras_file=True, h5_listing=True)
    g.case("c06_output_shape_int", "6", "output_shape=8 with Eq=16 -> output [B,T,8].",
           dict(base, output_shape=8), (B, T, E), (B, 6, E), seed=6, formats=("keras",))
    g.case("c07_output_shape_tuple", "7", "output_shape=(8,8) -> output [B,T,8,8], Wo [N,Hv,8,8].",
           dict(base, output_shape=(8, 8)), (B, 5, E), (B, 6, E), seed=7,
           formats=("keras",))
    g.case("c08_return_scores", "8", "Same inputs/weights as c01 with return_attention_scores=True "
           "(explicit path): scores [B,N,T,S], rows sum to 1, output == c01 within tolerance.",
           base, (B, T, E), self_attention=True, share_from="c01_self_attention", seed=1,
           call=dict(return_attention_scores=True))

    # 9-11 attention_mask -------------------------------------------------------------
    am = rand_mask(mrng, (B, T, 6))
    g.case("c09_attention_mask_bool_3d", "9", "attention_mask [B,T,S] random bool, every row has >=1 True (fused path).",
           base, (B, T, E), (B, 6, E), seed=9, masks={"attention_mask": {"array": am}})
    g.case("c09b_attention_mask_bool_3d_scores", "9", "Same as c09 with return_attention_scores=True (explicit path).",
           base, share_from="c09_attention_mask_bool_3d", seed=9,
           masks={"attention_mask": {"array": am}}, call=dict(return_attention_scores=True))
    am2 = rand_mask(mrng, (T, 6))
    g.case("c10a_attention_mask_rank2", "10", "attention_mask rank 2 [T,S] broadcast over batch and heads.",
           base, (B, T, E), (B, 6, E), seed=10, masks={"attention_mask": {"array": am2}},
           call=dict(return_attention_scores=True))
    am4 = rand_mask(mrng, (B, N, T, 6))
    g.case("c10b_attention_mask_rank4_per_head", "10", "attention_mask rank 4 [B,N,T,S] (per-head), fused path.",
           base, (B, T, E), (B, 6, E), seed=11, masks={"attention_mask": {"array": am4}})
    g.case("c10c_attention_mask_rank4_per_head_scores", "10", "Same as c10b with return_attention_scores=True.",
           base, share_from="c10b_attention_mask_rank4_per_head", seed=11,
           masks={"attention_mask": {"array": am4}}, call=dict(return_attention_scores=True))
    ami = (rand_mask(mrng, (B, T, 6)) * mrng.integers(1, 3, size=(B, T, 6))).astype(np.int32)
    g.case("c11a_attention_mask_int", "11", "attention_mask int32 with values 0/1/2 -> bool semantics (non-zero = attend).",
           base, (B, T, E), (B, 6, E), seed=12, masks={"attention_mask": {"array": ami}},
           call=dict(return_attention_scores=True))
    amf = (rand_mask(mrng, (B, T, 6)) * 0.3).astype(np.float32)
    g.case("c11b_attention_mask_float", "11", "attention_mask float32 with values 0.0/0.3 -> 0.3 means attend (not a soft penalty).",
           base, (B, T, E), (B, 6, E), seed=13, masks={"attention_mask": {"array": amf}},
           call=dict(return_attention_scores=True))
    g.case("c11c_attention_mask_float_fused", "11", "Same float 0.0/0.3 mask as c11b on the fused path.",
           base, share_from="c11b_attention_mask_float", seed=13,
           masks={"attention_mask": {"array": amf}})

    # 12-15 causal ----------------------------------------------------------------------
    g.case("c12_causal_square", "12", "use_causal_mask, T == S == 8, self-attention (causal-only fast path, fused kernel).",
           base, (B, T, E), self_attention=True, seed=14, call=dict(use_causal_mask=True))
    g.case("c12b_causal_square_scores", "12", "Same as c12 with return_attention_scores=True (explicit path builds the causal mask).",
           base, share_from="c12_causal_square", self_attention=True, seed=14,
           call=dict(use_causal_mask=True, return_attention_scores=True))
    g.case("c13_causal_t_gt_s", "13", "use_causal_mask, T=6 > S=4: top-left aligned, rows >= 3 see all keys.",
           base, (B, 6, E), (B, 4, E), seed=15, call=dict(use_causal_mask=True, return_attention_scores=True))
    g.case("c13b_causal_t_gt_s_fused", "13", "Same as c13 on the fused path (no scores).",
           base, share_from="c13_causal_t_gt_s", seed=15, call=dict(use_causal_mask=True))
    g.case("c14_causal_t_lt_s", "14", "use_causal_mask, T=3 < S=7: row i sees keys 0..i only.",
           base, (B, 3, E), (B, 7, E), seed=16, call=dict(use_causal_mask=True, return_attention_scores=True))
    g.case("c14b_causal_t_lt_s_fused", "14", "Same as c14 on the fused path (no scores).",
           base, share_from="c14_causal_t_lt_s", seed=16, call=dict(use_causal_mask=True))
    amc = rand_mask(mrng, (B, T, T))
    amc[:, :, 0] = True  # keep key 0 so no row is fully masked after AND with causal
    g.case("c15_causal_and_attention_mask", "15", "use_causal_mask AND a random attention_mask [B,T,T] (fused path).",
           base, (B, T, E), self_attention=True, seed=17, call=dict(use_causal_mask=True),
           masks={"attention_mask": {"array": amc}})
    g.case("c15b_causal_and_attention_mask_scores", "15", "Same as c15 with return_attention_scores=True.",
           base, share_from="c15_causal_and_attention_mask", self_attention=True, seed=17,
           call=dict(use_causal_mask=True, return_attention_scores=True),
           masks={"attention_mask": {"array": amc}})

    # 16-18 fully-masked rows ------------------------------------------------------------
    amz = rand_mask(mrng, (B, 6, 5))
    amz[0, 2, :] = False
    amz[1, 5, :] = False
    g.case("c16_fully_masked_row_fused", "16", "attention_mask with fully-masked rows (b0,t2) and (b1,t5), fused path: "
           "those rows get uniform probabilities -> mean of projected V, then Wo.",
           base, (B, 6, E), (B, 5, E), seed=18, masks={"attention_mask": {"array": amz}})
    g.case("c17_fully_masked_row_scores", "17", "Same input as c16 with return_attention_scores=True (explicit path): "
           "zero score rows, output rows = bo.",
           base, share_from="c16_fully_masked_row_fused", seed=18,
           masks={"attention_mask": {"array": amz}}, call=dict(return_attention_scores=True))
    g.case("c18_fully_masked_row_dropout_inference", "18", "Same input/weights as c16 with dropout=0.1, training=False "
           "(explicit path because dropout>0): output identical to c17.",
           dict(base, dropout=0.1, seed=7), share_from="c16_fully_masked_row_fused", seed=18,
           masks={"attention_mask": {"array": amz}}, call=dict(training=False),
           compare_to="c17_fully_masked_row_scores")

    # 19-21 Keras masks ---------------------------------------------------------------
    qpad = padding_mask([6, 4], 6)
    g.case("c19_query_padding_mask_fused", "19", "Query padding mask [B,T] attached as the query tensor's Keras mask "
           "(cross-attention, unmasked value); output mask == query mask; padded rows are fully masked -> fused path uniform.",
           base, (B, 6, E), (B, 5, E), seed=19,
           masks={"query_mask": {"array": qpad, "how": "keras_mask_on_query_tensor"}})
    g.case("c19b_query_padding_mask_scores", "19", "Same as c19 with return_attention_scores=True: padded rows have zero scores, output = bo.",
           base, share_from="c19_query_padding_mask_fused", seed=19,
           masks={"query_mask": {"array": qpad, "how": "keras_mask_on_query_tensor"}},
           call=dict(return_attention_scores=True))
    spad = padding_mask([7, 5], 7)
    g.case("c19c_self_attention_padding_mask", "19", "Self-attention with one masked tensor (like Embedding(mask_zero=True)): "
           "Layer.__call__ fills both query_mask and value_mask from it.",
           base, (B, 7, E), self_attention=True, seed=20,
           masks={"query_mask": {"array": spad, "how": "keras_mask_on_query_tensor"}},
           call=dict(return_attention_scores=True))
    vm = padding_mask([5, 3], 6)
    km = np.array([[1, 0, 1, 1, 1, 1], [1, 1, 0, 1, 1, 1]], dtype=bool)
    g.case("c20_value_and_key_mask", "20", "value_mask [B,S] and key_mask [B,S] passed as call arguments (AND-ed).",
           base, (B, 5, E), (B, 6, 12), (B, 6, 10), seed=21,
           masks={"value_mask": {"array": vm}, "key_mask": {"array": km}},
           call=dict(return_attention_scores=True))
    g.case("c20b_value_and_key_mask_fused", "20", "Same as c20 on the fused path.",
           base, share_from="c20_value_and_key_mask", seed=21,
           masks={"value_mask": {"array": vm}, "key_mask": {"array": km}})
    g.case("c20c_value_mask_from_tensor", "20", "value mask attached as the value tensor's Keras mask (framework fills value_mask).",
           base, (B, 5, E), (B, 6, E), seed=22,
           masks={"value_mask": {"array": vm, "how": "keras_mask_on_value_tensor"}},
           call=dict(return_attention_scores=True))
    g.case("c21_query_mask_argument_ignored", "21", "Explicit query_mask= call argument without a Keras mask on the tensor: "
           "Keras ignores it (output identical to the unmasked call, no output mask).",
           base, (B, 6, E), (B, 5, E), seed=23,
           masks={"query_mask": {"array": padding_mask([6, 2], 6), "how": "call_argument"}},
           call=dict(return_attention_scores=True),
           notes="query_mask.npy is passed as the `query_mask=` argument; Keras re-reads the mask from the "
                 "query tensor and so ignores it. The reference check therefore applies no query mask.")

    # 22-25 N-D inputs ------------------------------------------------------------------
    g.case("c22_4d_default_axes", "22", "4-D input (B,3,4,E), default axes (1,2): scores [B,N,3,4,3,4], joint softmax over last two axes.",
           base, (B, 3, 4, E), (B, 3, 4, E), seed=24, call=dict(return_attention_scores=True),
           formats=("keras",))
    g.case("c22b_4d_default_axes_no_scores", "22", "Same as c22 without scores (N-D always takes the explicit path).",
           base, share_from="c22_4d_default_axes", seed=24)
    g.case("c23a_4d_axes_2", "23", "4-D input (B,3,4,E), attention_axes=2: scores [B,X,N,T,S].",
           dict(base, attention_axes=2), (B, 3, 4, E), (B, 3, 5, E), seed=25,
           call=dict(return_attention_scores=True), formats=("keras",))
    g.case("c23b_4d_axes_neg2", "23", "Same inputs/weights as c23a with attention_axes=-2 (counted against the input rank) -> identical.",
           dict(base, attention_axes=-2), share_from="c23a_4d_axes_2", seed=25,
           call=dict(return_attention_scores=True))
    m5 = rand_mask(mrng, (B, 3, 4, 3, 4))
    g.case("c24a_5d_axes23_mask5d", "24", "5-D input (B,5,3,4,16), attention_axes=(2,3), attention_mask [B,3,4,3,4] "
           "(expanded to [B,1,1,3,4,3,4]).",
           dict(base, attention_axes=(2, 3)), (B, 5, 3, 4, E), (B, 5, 3, 4, E), seed=26,
           masks={"attention_mask": {"array": m5}}, call=dict(return_attention_scores=True),
           formats=("keras",))
    m6 = rand_mask(mrng, (B, 5, 3, 4, 3, 4))
    g.case("c24b_5d_axes23_mask6d", "24", "Same inputs/weights as c24a with attention_mask [B,5,3,4,3,4] (expanded to [B,5,1,3,4,3,4]).",
           dict(base, attention_axes=(2, 3)), share_from="c24a_5d_axes23_mask5d", seed=26,
           masks={"attention_mask": {"array": m6}}, call=dict(return_attention_scores=True))
    g.case("c25_5d_query_value_extents_differ", "25", "5-D query (B,5,3,4,E) vs value (B,5,3,2,E), attention_axes=(2,3): "
           "scores [B,5,N,3,4,3,2].",
           dict(base, attention_axes=(2, 3)), (B, 5, 3, 4, E), (B, 5, 3, 2, E), seed=27,
           call=dict(return_attention_scores=True), formats=("keras",))

    # 26 degenerate sizes ------------------------------------------------------------------
    g.case("c26a_batch1", "26", "Batch size 1.", base, (1, 5, E), (1, 4, E), seed=28)
    g.case("c26b_heads1_keydim1", "26", "num_heads=1, key_dim=1 (scale 1.0), batch 1.",
           dict(num_heads=1, key_dim=1), (1, 5, 8), (1, 4, 8), seed=29,
           call=dict(return_attention_scores=True))
    g.case("c26c_heads1_keydim1_fused", "26", "Same as c26b on the fused path.",
           dict(num_heads=1, key_dim=1), share_from="c26b_heads1_keydim1", seed=29)

    # 27 large logits (long-sequence part skipped) --------------------------------------
    def big(q, v, k):
        return q * 12.0, v * 12.0, k
    g.case("c27_large_logits", "27", "Large logits (|L| up to ~1e3) with T=S=16, E=32; fused path.",
           dict(num_heads=2, key_dim=8), (B, 16, 32), (B, 16, 32), seed=30,
           input_transform=big, zero_bias=False)
    g.case("c27b_large_logits_scores", "27", "Same as c27 with return_attention_scores=True (explicit path, Q pre-scaled).",
           dict(num_heads=2, key_dim=8), share_from="c27_large_logits", seed=30,
           call=dict(return_attention_scores=True))

    # 28 dropout -------------------------------------------------------------------------
    g.case("c28a_dropout_rate1_training", "28", "dropout=1.0, training=True: every probability dropped -> output = bo; "
           "returned scores are pre-dropout (rows sum to 1).",
           dict(base, dropout=1.0, seed=123), (B, 6, E), (B, 5, E), seed=31,
           call=dict(training=True, return_attention_scores=True))
    g.case("c28b_dropout_rate05_statistics", "28", "dropout=0.5, training=True: statistics only (bit-exact dropout is impossible); "
           "output_inference.npy = training=False output, train_mean/std over n_runs training calls.",
           dict(base, dropout=0.5, seed=1234), (B, 6, E), (B, 5, E), seed=32,
           call=dict(training=True), dropout_stats={"n_runs": 400})

    # 29 sliding window ---------------------------------------------------------------
    g.case("c29a_sliding_window3", "29", "sliding_window=3 (keep |i-j| < 3), self-attention T=S=8, fused path.",
           dict(base, sliding_window=3), (B, T, E), self_attention=True, seed=33,
           formats=("keras",))
    g.case("c29b_sliding_window3_scores", "29", "Same as c29a with return_attention_scores=True.",
           dict(base, sliding_window=3), share_from="c29a_sliding_window3", self_attention=True,
           seed=33, call=dict(return_attention_scores=True))
    g.case("c29c_sliding_window3_causal", "29", "sliding_window=3 AND use_causal_mask (keep i-2 <= j <= i).",
           dict(base, sliding_window=3), share_from="c29a_sliding_window3", self_attention=True,
           seed=33, call=dict(use_causal_mask=True, return_attention_scores=True))
    g.case("c29d_sliding_window3_causal_fused", "29", "Same as c29c on the fused path.",
           dict(base, sliding_window=3), share_from="c29a_sliding_window3", self_attention=True,
           seed=33, call=dict(use_causal_mask=True))
    g.case("c29e_sliding_window3_t_ne_s", "29", "sliding_window=3 with T=6, S=8 (band over raw indices).",
           dict(base, sliding_window=3), (B, 6, E), (B, 8, E), seed=34,
           call=dict(return_attention_scores=True))

    # 30 gate ------------------------------------------------------------------------------
    g.case("c30_use_gate", "30", "use_gate=True, value_dim=6: gate = sigmoid(query proj) with own kernel [Eq,N,Hv]; "
           "weight order Q,K,G,V,O.",
           dict(base, use_gate=True, value_dim=6), (B, 6, E), (B, 5, 12), seed=35,
           formats=("weights_h5", "keras"), h5_listing=True)
    g.case("c30b_use_gate_scores", "30", "Same as c30 with return_attention_scores=True.",
           dict(base, use_gate=True, value_dim=6), share_from="c30_use_gate", seed=35,
           call=dict(return_attention_scores=True))

    # 31 reduced precision ----------------------------------------------------------------
    qpad31 = padding_mask([6, 4], 6)
    for dt in ("float16", "bfloat16"):
        g.case(f"c31_{dt}_fused", "31", f"{dt} layer (weights+inputs), query padding mask -> fully-masked rows, fused path "
               "(logits & softmax in float32). Arrays stored as exact float32 upcasts.",
               base, (B, 6, E), (B, 5, E), seed=36, dtype=dt,
               masks={"query_mask": {"array": qpad31, "how": "keras_mask_on_query_tensor"}})
        g.case(f"c31_{dt}_explicit", "31", f"Same as c31_{dt}_fused with return_attention_scores=True (explicit path, softmax in {dt}).",
               base, share_from=f"c31_{dt}_fused", seed=36, dtype=dt,
               masks={"query_mask": {"array": qpad31, "how": "keras_mask_on_query_tensor"}},
               call=dict(return_attention_scores=True))

    # 32 weight formats -------------------------------------------------------------------
    g.case("c32_weight_formats", "32", "Same weights as Keras 3 .weights.h5, .keras, Keras-3 legacy .h5 and TF-era (tf_keras) .h5; "
           "explicit key Ek != Ev, value_dim != key_dim; outputs must be identical for every format.",
           dict(num_heads=3, key_dim=4, value_dim=5), (B, 5, E), (B, 7, 12), (B, 7, 10), seed=37,
           formats=("weights_h5", "keras", "keras3_legacy_h5"), tf_keras_file=True,
           h5_listing=True)

    # 33 errors ---------------------------------------------------------------------------
    errs = [
        ("c33a_err_num_heads_0", dict(num_heads=0, key_dim=4), {}, None),
        ("c33b_err_key_dim_neg1", dict(num_heads=2, key_dim=-1), {}, None),
        ("c33c_err_value_dim_1_5", dict(num_heads=2, key_dim=4, value_dim=1.5), {}, None),
        ("c33d_err_output_shape_8_0", dict(num_heads=2, key_dim=4, output_shape=8.0), {}, None),
        ("c33e_err_attention_axes_str", dict(num_heads=2, key_dim=4, attention_axes="x"), {}, None),
        ("c33f_err_sliding_window_0", dict(num_heads=2, key_dim=4, sliding_window=0), {}, None),
        ("c33g_err_dropout_1_5_at_build", dict(num_heads=2, key_dim=4, dropout=1.5), {}, None),
        ("c33h_err_flash_and_dropout", dict(num_heads=2, key_dim=4, flash_attention=True, dropout=0.1), {}, None),
        ("c33i_err_key_value_shape_mismatch", dict(num_heads=2, key_dim=4), {}, "kv"),
        ("c33j_err_flash_on_tensorflow", dict(num_heads=2, key_dim=4, flash_attention=True), {}, None),
        ("c33k_err_flash_with_scores", dict(num_heads=2, key_dim=4, flash_attention=True),
         dict(return_attention_scores=True), None),
        ("c33l_err_mask_not_broadcastable", dict(num_heads=2, key_dim=4),
         dict(return_attention_scores=True), "badmask"),
        ("c33m_err_mask_not_broadcastable_fused", dict(num_heads=2, key_dim=4), {}, "badmask"),
        ("c33n_err_query_rank_ne_value_rank", dict(num_heads=2, key_dim=4), {}, "rank"),
        ("c33o_err_non_int_seed_with_dropout", dict(num_heads=2, key_dim=4, dropout=0.1, seed="x"),
         {}, None),
    ]
    for name, ctor, call, special in errs:
        kshape = (B, 6, E) if special == "kv" else None
        vshape = (B, 5, E)
        qshape = (B, 4, E)
        masks = {}
        if special == "badmask":
            masks = {"attention_mask": {"array": np.ones((B, 4, 7), dtype=bool)}}
        if special == "rank":
            vshape = (B, 3, 5, E)
        g.case(name, "33", f"Error case: constructor {ctor}" + (f", call {call}" if call else "")
               + {"kv": ", key (B,6,E) vs value (B,5,E)",
                  "badmask": ", attention_mask [B,4,7] for scores [B,N,4,5]",
                  "rank": ", query rank 3 vs value rank 4", None: ""}[special]
               + ": Keras's exception type/message recorded.",
               ctor, qshape, vshape, kshape, seed=40, call=call, masks=masks,
               expect_error=True, formats=())

    # padding masks with a rank-4 attention_mask (spec 2, item 6) -----------------------------
    # Keras ANDs the padding masks ([B, T, 1], [B, 1, S]) and the causal mask [1, T, S] into an
    # auto mask first and only then with attention_mask, by trailing-axis broadcasting (spec 2,
    # item 6): against [B, N, T, S] the auto mask's batch axis meets the head axis. With B == N,
    # batch b's padding lands on head b of every batch; B != N (neither 1) raises. Own rng and
    # weight signature (N=2, H=3, Eq=8, Ev=6), so full and --only runs write the same files.
    r34 = np.random.default_rng(3434)
    b34 = dict(num_heads=2, key_dim=3)
    am34 = rand_mask(r34, (2, 2, 5, 6), p=0.8)
    vm34 = padding_mask([3, 6], 6)
    qm34 = padding_mask([5, 3], 5)
    owner = "c34a_rank4_mask_value_mask_b_eq_n"
    combos = [  # name, masks, call
        ("c34a_rank4_mask_value_mask_b_eq_n", "value_mask", {}),
        ("c34b_rank4_mask_value_mask_b_eq_n_scores", "value_mask", dict(return_attention_scores=True)),
        ("c34c_rank4_mask_query_mask_b_eq_n_scores", "query_mask", dict(return_attention_scores=True)),
        ("c34d_rank4_mask_query_mask_b_eq_n", "query_mask", {}),
        ("c34e_rank4_mask_query_value_masks_b_eq_n", "both", {}),
        ("c34f_rank4_mask_query_value_masks_b_eq_n_scores", "both", dict(return_attention_scores=True)),
        ("c34g_rank4_mask_value_mask_causal_b_eq_n", "value_mask", dict(use_causal_mask=True)),
        ("c34h_rank4_mask_value_mask_causal_b_eq_n_scores", "value_mask",
         dict(use_causal_mask=True, return_attention_scores=True)),
    ]

    def masks34(which, am, vm, qm):
        m = {"attention_mask": {"array": am}}
        if which in ("value_mask", "both"):
            m["value_mask"] = {"array": vm}
        if which in ("query_mask", "both"):
            m["query_mask"] = {"array": qm, "how": "keras_mask_on_query_tensor"}
        return m

    for name, which, call in combos:
        what = {"value_mask": "value_mask [B,S]", "query_mask": "query tensor's Keras mask [B,T]",
                "both": "query tensor's Keras mask [B,T] and value_mask [B,S]"}[which]
        g.case(name, "10", f"attention_mask [B,N,T,S] with {what}"
               + (" and use_causal_mask" if call.get("use_causal_mask") else "")
               + ", B = N = 2: Keras's auto mask [B,T,1]/[B,1,S] aligns its batch axis with the "
               "head axis, so batch b's padding masks head b of every batch"
               + (" (explicit path)." if call.get("return_attention_scores") else " (fused path)."),
               b34, (2, 5, 8), (2, 6, 6), seed=340, masks=masks34(which, am34, vm34, qm34),
               call=call, share_from=None if name == owner else owner,
               formats=("weights_h5", "keras") if name == owner else None)
    am34b = rand_mask(r34, (1, 2, 5, 6), p=0.7)
    vm34b = padding_mask([4], 6)
    qm34b = padding_mask([3], 5)
    owner_b1 = "c34i_rank4_mask_value_mask_b1_scores"
    combos_b1 = [
        (owner_b1, "value_mask", dict(return_attention_scores=True)),
        ("c34j_rank4_mask_query_mask_b1", "query_mask", {}),
        ("c34k_rank4_mask_query_value_masks_b1_scores", "both", dict(return_attention_scores=True)),
        ("c34l_rank4_mask_query_value_masks_causal_b1", "both", dict(use_causal_mask=True)),
    ]
    for name, which, call in combos_b1:
        g.case(name, "10", f"attention_mask [1,N,T,S] with {which.replace('both', 'query and value masks')}"
               + (" and use_causal_mask" if call.get("use_causal_mask") else "")
               + ", B = 1: the auto mask [1,T,1]/[1,1,S] broadcasts over the heads.",
               b34, (1, 5, 8), (1, 6, 6), seed=341, masks=masks34(which, am34b, vm34b, qm34b),
               call=call, share_from=None if name == owner_b1 else owner_b1)
    g.case("c34m_err_rank4_mask_value_mask_b_ne_n", "33",
           "Error case: attention_mask [3,2,4,5] (B=3, N=2) with value_mask [3,5] -> [3,1,5]: "
           "Keras's broadcast of the auto mask against the head axis fails (3 vs 2).",
           dict(num_heads=2, key_dim=4), (3, 4, 16), (3, 5, 16), seed=342,
           masks={"attention_mask": {"array": np.ones((3, 2, 4, 5), dtype=bool)},
                  "value_mask": {"array": padding_mask([5, 4, 3], 5)}},
           expect_error=True, formats=())
    # N-D inputs: the same rule with the tensors' Keras masks of shape input[:-1].
    qm34n = rand_mask(r34, (2, 3, 5), p=0.8)
    vm34n = rand_mask(r34, (2, 3, 6), p=0.7)
    g.case("c34n_4d_axis2_query_value_masks", "22",
           "4-D input (B,3,T,E), attention_axes=2, query tensor's Keras mask [B,3,T] and value_mask "
           "[B,3,S]: auto mask [B,3,T,S] -> [B,3,1,T,S] (per (b, x) padding).",
           dict(b34, attention_axes=2), (2, 3, 5, 8), (2, 3, 6, 6), seed=343,
           masks={"query_mask": {"array": qm34n, "how": "keras_mask_on_query_tensor"},
                  "value_mask": {"array": vm34n}},
           call=dict(return_attention_scores=True), formats=("keras",))
    vm34o = rand_mask(r34, (1, 3, 4), p=0.7)
    g.case("c34o_4d_default_axes_value_mask_mixes_axes", "22",
           "4-D input, default axes (1,2), value_mask [1,3,4] -> [1,3,1,4] -> [1,1,1,3,1,4] against "
           "scores [1,N,3,3,3,4]: Keras's alignment puts the mask's axis-1 index on the query's "
           "axis 2.",
           b34, (1, 3, 3, 8), (1, 3, 4, 6), seed=344, masks={"value_mask": {"array": vm34o}},
           call=dict(return_attention_scores=True), formats=("keras",))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", help="only cases whose name starts with one of these")
    args = ap.parse_args()
    assert keras.backend.backend() == "tensorflow", keras.backend.backend()
    if not args.only and os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out, exist_ok=True)
    g = Gen(args.out, args.only)
    define_cases(g)
    if args.only:
        g.merge_manifest()
    else:
        g.write_manifest()
    bad = [m["name"] for m in g.manifest
           if m.get("reference_check") and not m["reference_check"]["ok"]]
    print(f"{len(g.manifest)} cases written to {args.out}")
    if bad:
        print("cases whose Keras result differs from the numpy spec reference:", bad)
    if g.failures:
        print("FAILED cases:", g.failures)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
