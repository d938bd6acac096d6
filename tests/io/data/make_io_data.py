#!/usr/bin/env python3
"""Regenerates the small Keras files the I/O tests read (tests/io/data/).

Needs keras 3.15 (any backend; jax was used) and h5py:
    python3 -m venv /tmp/kv && /tmp/kv/bin/pip install keras==3.15.1 jax h5py
    KERAS_BACKEND=jax /tmp/kv/bin/python tests/io/data/make_io_data.py

Every weight holds value(seed, i, j) = +-(seed + i + (j % 16) / 16) (negative
for odd j), with i the index in get_weights() order and j the flat C-order
index, so the C++ tests recompute the expected arrays without extra files.
The values are exact in float16 and bfloat16. The TF-era (tf.keras 2.x
save_weights("x.h5")) files are written with h5py following that writer
(tf-keras's legacy_h5_format.save_weights_to_hdf5_group); the rest are real
Keras 3 output.
"""
import json
import os
import zipfile

import h5py
import numpy as np

import keras
from keras.src.saving import saving_lib

HERE = os.path.dirname(os.path.abspath(__file__))


def value(seed, i, shape, dtype="float32"):
    j = np.arange(int(np.prod(shape)), dtype=np.float64)
    v = seed + i + (j % 16) / 16.0
    v = np.where(j % 2 == 1, -v, v)
    return v.reshape(shape).astype(dtype)


def fill(layer, seed):
    layer.set_weights(
        [value(seed, i, w.shape, w.dtype) for i, w in enumerate(layer.get_weights())]
    )


def out(name):
    return os.path.join(HERE, name)


def basic():
    # One MHA in a Functional model; query [B,4,5], value [B,6,7].
    q = keras.Input((4, 5))
    v = keras.Input((6, 7))
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="attn")
    m = keras.Model([q, v], mha(q, v))
    fill(mha, 0)
    m.save(out("basic.keras"))
    m.save_weights(out("basic.weights.h5"))
    with open(out("basic.config.json"), "w") as f:
        json.dump(mha.get_config(), f, indent=1)
    # Keras 3 legacy whole-model .h5 (model_weights/<layer name>/...).
    m.save(out("legacy_keras3.h5"))
    # A bare layer saved alone (weights at the file's root).
    saving_lib.save_weights_only(mha, out("bare.weights.h5"))


def two():
    # Two MHAs: self-attention without biases, cross-attention with a key of
    # its own width, value_dim != key_dim and a 2-D output_shape.
    q = keras.Input((3, 4))
    k = keras.Input((5, 6))
    v = keras.Input((5, 2))
    self_attn = keras.layers.MultiHeadAttention(
        num_heads=2, key_dim=3, use_bias=False, name="self_attn")
    cross_attn = keras.layers.MultiHeadAttention(
        num_heads=3, key_dim=2, value_dim=4, output_shape=(3, 2), dropout=0.25,
        name="cross_attn")
    h = self_attn(q, q)
    o = cross_attn(h, v, key=k)
    m = keras.Model([q, k, v], o)
    fill(self_attn, 0)
    fill(cross_attn, 8)
    m.save(out("two_mha.keras"))
    m.save_weights(out("two_mha.weights.h5"))
    with zipfile.ZipFile(out("two_mha.keras")) as z:
        with open(out("two_mha.model.json"), "wb") as f:
            f.write(z.read("config.json"))
    strip_names(out("two_mha.weights.h5"), out("two_mha_noattr.weights.h5"))
    with open(out("cross_attn.config.json"), "w") as f:
        # The serialized form: {"class_name": ..., "config": ..., "build_config": ...}.
        json.dump(keras.saving.serialize_keras_object(cross_attn), f, indent=1)


@keras.saving.register_keras_serializable(package="mhac_test")
class Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attn = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2, name="inner")
        self.proj = keras.layers.Dense(3, name="proj")

    def build(self, shape):
        self.attn.build(shape, shape)
        self.proj.build(shape)

    def call(self, x):
        return self.proj(self.attn(x, x))


def nested():
    # MHA as attribute `attn` of a custom layer: layers/block/attn/...
    x = keras.Input((2, 3))
    block = Block(name="block")
    m = keras.Model(x, block(x))
    fill(block.attn, 0)
    m.save_weights(out("nested.weights.h5"))
    with open(out("inner.config.json"), "w") as f:
        json.dump(block.attn.get_config(), f, indent=1)


def dtypes():
    # float64, float16 and bfloat16 layers, each saved alone.
    for dt in ("float64", "float16", "bfloat16"):
        mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2, name="attn", dtype=dt)
        mha.build((None, 3, 4), (None, 3, 4))
        fill(mha, 0)
        saving_lib.save_weights_only(mha, out(f"{dt}.weights.h5"))


def strip_names(src, dst, rename=lambda name: name):
    # Copies a weights file without the `name` attributes (older Keras 3),
    # in HDF5's compact newer format to keep it small.
    with h5py.File(src, "r") as fi, h5py.File(dst, "w", libver="latest") as fo:
        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                fo.require_group(rename(name))
            else:
                fo.create_dataset(rename(name), data=obj[()])
        fi.visititems(copy)


def gate():
    # A gated layer (Keras 3.14+) without biases, saved alone: _gate_dense.
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2, value_dim=3, use_bias=False,
                                          use_gate=True, name="gated")
    mha.build((None, 3, 4), (None, 5, 6))
    fill(mha, 0)
    saving_lib.save_weights_only(mha, out("gate.weights.h5"))
    with open(out("gate.config.json"), "w") as f:
        json.dump(mha.get_config(), f, indent=1)


def keras30():
    # Keras 3.0.0 named the sub-layers by their private attributes and wrote
    # no `name` attributes.
    def rename(name):
        for sub in ("query", "key", "value", "output"):
            name = name.replace(f"/{sub}_dense", f"/_{sub}_dense")
        return name
    strip_names(out("basic.weights.h5"), out("keras30.weights.h5"), rename)


def save_attributes(group, name, data):
    # tf-keras's save_attributes_to_hdf5_group (fixed-length byte strings,
    # split into name0, name1, ... past the 64 KiB header limit).
    group.attrs[name] = np.asarray(data)


def tf_era():
    # tf.keras 2.x save_weights("x.h5") of a model with a top-level MHA
    # "mha" (query [B,4,5], value [B,6,7]) and a custom layer "block" holding
    # an MHA "inner_mha" (query = value = [B,2,3]) and a Dense.
    def mha_weights(prefix, seed, eq, ev, n, h):
        shapes = [(eq, n, h), (n, h), (ev, n, h), (n, h), (ev, n, h), (n, h), (n, h, eq), (eq,)]
        names = []
        for sub in ("query", "key", "value", "attention_output"):
            names += [f"{prefix}/{sub}/kernel:0", f"{prefix}/{sub}/bias:0"]
        return names, [value(seed, i, s) for i, s in enumerate(shapes)]

    with h5py.File(out("tf_era.h5"), "w") as f:
        layers = ["input_1", "input_2", "mha", "block"]
        save_attributes(f, "layer_names", [n.encode() for n in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.4.0"
        groups = {
            "input_1": ([], []),
            "input_2": ([], []),
            "mha": mha_weights("mha", 0, 5, 7, 2, 3),
            "block": mha_weights("block/inner_mha", 8, 3, 3, 1, 2),
        }
        bn, bw = groups["block"]
        groups["block"] = (bn + ["block/dense/kernel:0", "block/dense/bias:0"],
                           bw + [value(1, 0, (3, 3)), value(1, 1, (3,))])
        for name in sorted(layers):
            g = f.create_group(name)
            names, weights = groups[name]
            save_attributes(g, "weight_names", [n.encode() for n in names])
            for n, w in zip(names, weights):
                g.create_dataset(n, data=w)
    with open(out("tf_era_mha.config.json"), "w") as f:
        json.dump({"class_name": "MultiHeadAttention", "config": {
            "name": "mha", "trainable": True, "dtype": "float32", "num_heads": 2,
            "key_dim": 3, "value_dim": 3, "dropout": 0.0, "use_bias": True,
            "output_shape": None, "attention_axes": None,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}}, f, indent=1)


def broken():
    # A model without MultiHeadAttention.
    x = keras.Input((3,))
    keras.Model(x, keras.layers.Dense(2)(x)).save_weights(out("dense.weights.h5"))
    # A zip without config.json, and an archive whose config does not fit
    # its weights (key_dim 3 -> 4).
    with zipfile.ZipFile(out("no_config.keras"), "w") as z:
        z.writestr("metadata.json", '{"keras_version": "3.15.1"}')
    with zipfile.ZipFile(out("no_weights.keras"), "w") as z, \
            zipfile.ZipFile(out("basic.keras")) as zi:
        z.writestr("config.json", zi.read("config.json"))
    with zipfile.ZipFile(out("basic.keras")) as zi, \
            zipfile.ZipFile(out("bad_shape.keras"), "w") as zo:
        for item in zi.infolist():
            data = zi.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                for layer in cfg["config"]["layers"]:
                    if layer["class_name"] == "MultiHeadAttention":
                        layer["config"]["key_dim"] = 4
                data = json.dumps(cfg).encode()
            zo.writestr(item, data)


def npy():
    # One small array per dtype the readers accept or reject, written by numpy.
    d = os.path.join(HERE, "npy")
    os.makedirs(d, exist_ok=True)
    x = np.array([[0.5, -1.25, 3.0], [0.0, 2.5, -0.125]])
    for name, dt in [("f2", "<f2"), ("f4", "<f4"), ("f8", "<f8"), ("f4_big", ">f4")]:
        np.save(os.path.join(d, name + ".npy"), x.astype(dt))
    np.save(os.path.join(d, "scalar_f4.npy"), np.float32(1.5))
    np.save(os.path.join(d, "empty_f4.npy"), np.zeros((0, 3), np.float32))
    np.save(os.path.join(d, "fortran_f4.npy"), np.asfortranarray(x.astype("<f4")))
    np.save(os.path.join(d, "strings.npy"), np.array(["ab", "c"]))
    np.save(os.path.join(d, "complex.npy"), np.array([1 + 2j], np.complex64))
    np.lib.format.write_array(open(os.path.join(d, "f4_v2.npy"), "wb"), x.astype("<f4"),
                              version=(2, 0))
    m = np.array([[1, 0, 2], [0, -1, 0]])
    for name, dt in [("b1", "|b1"), ("u1", "|u1"), ("i1", "|i1"), ("i4", "<i4"),
                     ("i8", "<i8")]:
        np.save(os.path.join(d, "mask_" + name + ".npy"), m.astype(dt))
    np.save(os.path.join(d, "mask_f4.npy"),
            np.array([[0.3, 0.0, np.nan], [-0.0, -2.0, 0.0]], np.float32))


if __name__ == "__main__":
    npy()
    basic()
    two()
    nested()
    dtypes()
    gate()
    keras30()
    tf_era()
    broken()
