#!/usr/bin/env python
"""Fuzz every public function of fastloss (see tests/fuzz/README.md).

Each input picks one public function (``fastloss.__all__``: the three forms of every loss and
the ``*_grad_hess`` functions) and random dtypes, shapes (0 rows, 1 class, 0-d, huge dimensions
next to a 0), layouts (Fortran, sliced, negative strides, unaligned, read-only, byte-swapped,
Python lists), values (NaN, +-inf, huge, tiny, subnormal, kink grids), labels (every integer
dtype, ignore_index, out of range), weights, ``out`` / ``hess_out`` / ``lse_out`` buffers (fresh,
``out=pred``, wrong shape or dtype, read-only, overlapping the inputs) and options (valid and
invalid values; options are discovered from the signatures, so new ones are fuzzed too).

A call may raise only TypeError or ValueError, with a message, and then must have written
nothing.  Anything else is a finding: another exception, a crash, a hang (``-timeout`` /
``--timeout``), or a broken oracle on a call that succeeded:

* result types, shapes and dtypes as SPEC says; ``out`` is returned when given; inputs other
  than ``out`` are not modified;
* the same call on canonical (C-contiguous, native, fresh) copies of the inputs gives the same
  bits (layouts do not change numbers);
* the three forms agree bitwise (value == value_and_grad[0], grad == value_and_grad[1]);
* ``n_threads=1`` and ``n_threads=2`` give the same bits (calls big enough to go parallel);
* against ``fastloss.reference`` (float64 NumPy) within a loose tolerance, for finite,
  moderate inputs and options the reference has.

Modes:
    python tests/fuzz/fuzz_api.py [libFuzzer flags] [corpus_dir]   # atheris (coverage-guided)
    python tests/fuzz/fuzz_api.py --plain --seconds 10             # plain random fuzzer
    python tests/fuzz/fuzz_api.py --plain --seed 123 --iterations 1 -v   # replay one plain input
    python tests/fuzz/fuzz_api.py --repro crash-file               # replay one atheris input

``--strict`` (the default with --plain) stops at the first finding with exit status 1;
``--collect`` logs each distinct finding once (to --findings-dir) and carries on, so a long
campaign is not stopped by a bug that is already known.
"""
import argparse
import faulthandler
import hashlib
import inspect
import math
import os
import random
import re
import sys
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ACCEPTABLE = (TypeError, ValueError)

# --------------------------------------------------------------------------- byte sources


class PlainSource:
    """The random source of the plain fuzzer (random.Random), same methods as AtherisSource."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def int(self, lo, hi):
        return self.r.randint(lo, hi)

    def bool(self, p=0.5):
        return self.r.random() < p

    def pick(self, values):
        return values[self.r.randrange(len(values))]

    def float01(self):
        return self.r.random()


class AtherisSource:
    """The bytes of one atheris input (FuzzedDataProvider)."""

    def __init__(self, data):
        import atheris

        self.f = atheris.FuzzedDataProvider(data)

    def int(self, lo, hi):
        return self.f.ConsumeIntInRange(lo, hi)

    def bool(self, p=0.5):
        return self.f.ConsumeProbability() < p

    def pick(self, values):
        return values[self.f.ConsumeIntInRange(0, len(values) - 1)]

    def float01(self):
        return self.f.ConsumeProbability()


# --------------------------------------------------------------------------- generation

class Finding(Exception):
    """An oracle failed (the message says which)."""


def _fl():
    try:
        import fastloss
    except ImportError:        # run from a checkout: tests/fuzz/../.. is the project root
        sys.path.append(os.path.dirname(os.path.dirname(HERE)))
        import fastloss
    return fastloss


def public_functions():
    fl = _fl()
    names = [n for n in fl.__all__ if callable(getattr(fl, n, None)) and n.startswith(FAMILIES)]
    return sorted(names)


def _families():
    """The losses of the registry (fastloss.losses), longest name first so that a function
    name is matched to its own family."""
    return tuple(sorted(_fl().losses, key=len, reverse=True))


FAMILIES = _families()


def family(name):
    for fam in FAMILIES:
        if name.startswith(fam):
            return fam, name[len(fam):].lstrip("_") or "value"
    raise AssertionError(name)


PRED_DTYPES = ["float32"] * 6 + ["float64"] * 6 + [
    ">f4", ">f8", "float16", "longdouble", "int32", "int64", "uint8", "bool", "complex64",
    "object", "U1"]
LABEL_DTYPES = ["int64", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32",
                "uint64", ">i8", "bool", "float64", "float32", "object", "complex128"]
SMALL_DIMS = [0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 16, 33]
# FASTLOSS_FUZZ_NO_HUGE=1 (or --no-huge): no huge dimensions next to a zero, which reach the
# known per-class / per-row costs of empty inputs (see test_fuzz_regressions.py) and make
# libFuzzer spend its time on OOMs and timeouts.
NO_HUGE = os.environ.get("FASTLOSS_FUZZ_NO_HUGE") == "1"
HUGE_DIMS = [2**31 + 1, 2**32, 10**9, 10**12, 2**62]
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 1e-310, 3.4e38, 1e308, -1e308, 88.7,
            -103.9, 709.8, -745.2, 33.3, 1.0]


def gen_shape(src, ndim=None):
    if ndim is None:
        ndim = src.pick([0, 1, 1, 2, 2, 2, 2, 3, 3, 4])
    shape = [src.pick(SMALL_DIMS) for _ in range(ndim)]
    if ndim and src.bool(0.05):                      # a large but affordable array
        shape[src.int(0, ndim - 1)] = src.pick([257, 1001, 4097, 40000])
    if ndim >= 2 and src.bool(0.03) and not NO_HUGE:  # a huge dimension next to a zero
        i = src.int(0, ndim - 1)
        j = (i + 1 + src.int(0, ndim - 2)) % ndim
        shape[i] = src.pick(HUGE_DIMS)
        shape[j] = 0
        while math.prod(n for n in shape if n) * 16 >= 2**62:   # numpy's size limit
            shape[i] //= 1024
    size = math.prod(shape)
    while size > 300_000:                            # keep the iterations fast
        k = shape.index(max(shape))
        shape[k] = max(1, shape[k] // 4)
        size = math.prod(shape)
    return tuple(shape)


def cap(shape):
    """shape, or (1,) when an array of it would not fit in memory (a huge dimension along a
    class axis of an empty array makes the label / weight shapes huge)."""
    return tuple(shape) if math.prod(shape) <= 400_000 else (1,)


def gen_values(src, rng, shape, dtype):
    """Float64 values of a shape: normal * scale, kink grids, specials sprinkled in."""
    kind = src.pick(["normal", "normal", "normal", "grid", "const", "wide"])
    if kind == "normal":
        v = rng.standard_normal(shape) * src.pick([1.0, 3.0, 10.0, 100.0, 1e4])
    elif kind == "grid":                             # eighths: ties and exact kinks
        v = rng.integers(-16, 17, size=shape) / 8.0
    elif kind == "const":
        v = np.full(shape, src.pick([0.0, 1.0, -1.0, 50.0]))
    else:
        v = rng.standard_normal(shape) * 10.0 ** rng.uniform(-30, 30, size=shape)
    v = np.array(v, dtype=np.float64)
    if v.size and src.bool(0.3):
        n = src.int(1, min(4, v.size))
        flat = v.reshape(-1)
        for _ in range(n):
            flat[rng.integers(0, flat.size)] = src.pick(SPECIALS)
    return v


def as_dtype(values, dtype):
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind in "iub":
            v = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
            if dt.kind == "b":
                return v != 0
            info = np.iinfo(dt)
            return np.clip(np.round(v), max(info.min, -2**53), min(info.max, 2**53)).astype(dt)
        if dt.kind == "U":
            return np.asarray(values).astype(str).astype(dt)
        if dt.kind == "O":
            return np.asarray(values).astype(object)
        return np.asarray(values).astype(dt)


LAYOUTS = ["C"] * 10 + ["F", "neg", "slice", "unaligned", "readonly", "swap", "list",
                        "noncontig_ro", "scalar_view"]


def with_layout(src, a, layout=None):
    """Same values as the ndarray a, another memory layout (or a Python list)."""
    if not isinstance(a, np.ndarray):
        return a
    layout = layout or src.pick(LAYOUTS)
    if layout == "C" or a.ndim == 0 and layout not in ("readonly", "list", "swap"):
        return a
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "neg":
        return np.flip(np.flip(a).copy())
    if layout == "slice":
        if a.size == 0:
            return a
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), dtype=a.dtype)
        big[..., 1::2] = a
        return big[..., 1::2]
    if layout == "unaligned":
        if a.dtype.kind == "O" or a.itemsize == 1:
            return a
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        v = buf[1:].view(a.dtype).reshape(a.shape)
        v[...] = a
        return v
    if layout in ("readonly", "noncontig_ro"):
        b = a.copy() if layout == "readonly" else np.flip(np.flip(a).copy())
        b.setflags(write=False)
        return b
    if layout == "swap":
        if a.dtype.kind in "fiuc" and a.itemsize > 1:
            return a.astype(a.dtype.newbyteorder("S"))
        return a
    if layout == "list":
        small = math.prod(n for n in a.shape if n) <= 64    # (10**12, 0) has 10**12 rows
        return a.tolist() if small and a.dtype.kind != "U" else a
    if layout == "scalar_view":   # a broadcast view with zero strides
        if a.size and a.ndim:
            return np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape)
        return a
    return a


def gen_weight_array(src, rng, shape, dtype_choice=True):
    shape = cap(shape)
    kind = src.pick(["pos", "pos", "pos", "any", "zero", "special", "int"])
    if kind == "pos":
        v = rng.uniform(0.25, 4.0, size=shape)
    elif kind == "any":
        v = rng.standard_normal(shape)
    elif kind == "zero":
        v = np.zeros(shape)
    elif kind == "int":
        v = rng.integers(0, 3, size=shape).astype(np.int64)
    else:
        v = gen_values(src, rng, shape, np.float64)
    if dtype_choice and src.bool(0.1):
        return as_dtype(v, src.pick(["float32", "float16", "int32", "bool", "complex64",
                                     "object", ">f8"]))
    return np.asarray(v)


def broadcast_shape_for(src, shape):
    """A shape that broadcasts to `shape` (or, rarely, one that does not)."""
    if src.bool(0.07):
        return gen_shape(src)
    k = src.int(0, len(shape))
    out = tuple(src.pick([1, n]) if n != 0 else src.pick([0, 1]) for n in shape[k:])
    if src.bool(0.1) and shape:
        out = (1,) + out
    return out


class Call:
    """One generated call: function name, positional arrays, keyword arguments."""

    def __init__(self, name, pred, target, kwargs, notes):
        self.name, self.pred, self.target, self.kwargs, self.notes = (
            name, pred, target, kwargs, notes)

    def describe(self):
        def d(v):
            if isinstance(v, np.ndarray):
                return "ndarray(shape=%s, dtype=%s, strides=%s, C=%s, aligned=%s, writeable=%s)" % (
                    v.shape, v.dtype, v.strides, v.flags.c_contiguous, v.flags.aligned,
                    v.flags.writeable)
            if isinstance(v, list):
                return "list(len=%d)" % len(v)
            r = repr(v)
            return r if len(r) < 80 else r[:77] + "..."
        kw = ", ".join("%s=%s" % (k, d(v)) for k, v in self.kwargs.items())
        return "fastloss.%s(%s, %s, %s)  notes=%s" % (self.name, d(self.pred), d(self.target),
                                                       kw, self.notes)


INVALID_ANY = [None, "x", 1.5, -1, 2**70, float("nan"), [1, 2], object()]


def gen_call(src, names, fixed_name=None):
    name = fixed_name or src.pick(names)
    fam, _ = family(name)
    fl = _fl()
    params = inspect.signature(getattr(fl, name)).parameters
    rng = np.random.default_rng(src.int(0, 2**32 - 1))
    notes = []
    pdtype = src.pick(PRED_DTYPES)
    info = fl.losses[fam]
    class_loss = info.classes

    # ---- pred
    if "binary" in info.targets and src.bool(0.3):  # binary hinge: 0-d or 1-D
        shape = src.pick([(), (0,), (1,), (5,), (9,), (40000,)])
        binary = True
    else:
        shape = gen_shape(src)
        binary = False
    values = gen_values(src, rng, shape, pdtype)
    pred_canon = as_dtype(values, pdtype)
    kwargs = {}

    # ---- class axis
    axis = -1
    if class_loss and "axis" in params and src.bool(0.3):
        axis = src.pick([1, 1, 0, -2, 2, 3, -5, 7, 1.0, "1", None])
        kwargs["axis"] = axis
    ndim = len(shape)
    ax = None
    if isinstance(axis, int) and not isinstance(axis, bool) and ndim and -ndim <= axis < ndim:
        ax = axis % ndim
    n_classes = shape[ax] if ax is not None else 1
    row_shape = shape[:ax] + shape[ax + 1:] if ax is not None else shape

    # ---- target
    tkind = None
    if "probs" in info.targets:
        tkind = src.pick(["labels", "labels", "labels", "probs", "soft", "bad"])
    elif "binary" in info.targets:
        tkind = src.pick(["pm1", "01", "labels", "labels", "multilabel", "bad"]) if not binary \
            else src.pick(["pm1", "01", "pm1", "mixed", "bad"])
    else:
        tkind = src.pick(["real", "real", "real", "bad"])
    if tkind == "labels":
        t = rng.integers(0, max(n_classes, 1), size=cap(row_shape))
        flat = t.reshape(-1)
        if flat.size and src.bool(0.3):
            flat[rng.integers(0, flat.size)] = src.pick(
                [-100, -1, n_classes, 2**40, -(2**63), 2**63 - 1, 0])
        target = as_dtype(t.astype(np.float64), src.pick(LABEL_DTYPES)) \
            if src.bool(0.3) else t.astype(np.int64)
        if src.bool(0.2):
            # exact labels in an odd integer dtype (as_dtype rounds through float64)
            dt = np.dtype(src.pick(["int8", "uint8", "int16", "uint64", "int32"]))
            target = t.astype(dt) if dt.kind == "i" or (t >= 0).all() else t
    elif tkind in ("probs", "soft"):
        t = rng.uniform(0, 1, size=shape)
        if tkind == "probs" and ax is not None and t.size:
            t = t / t.sum(axis=ax, keepdims=True)
        elif tkind == "soft":
            t = gen_values(src, rng, shape, np.float64)
        target = as_dtype(t, src.pick(["float64", "float32", "float64", "float16", ">f8"]))
    elif tkind in ("pm1", "01", "multilabel", "mixed"):
        base = rng.integers(0, 2, size=shape)
        t = {"pm1": 2 * base - 1, "01": base, "multilabel": base,
             "mixed": rng.integers(-1, 2, size=shape)}[tkind]
        target = as_dtype(t.astype(np.float64), src.pick(["int64", "float64", "float32", "int8",
                                                          "bool", "uint8"]))
    elif tkind == "real":
        if fam == "sigmoid_cross_entropy":
            t = rng.uniform(0, 1, size=shape) if src.bool(0.8) else \
                gen_values(src, rng, shape, np.float64)
        else:
            t = gen_values(src, rng, shape, np.float64)
        target = as_dtype(t, src.pick(["float64", "float64", "float32", "float16", "int64",
                                       "bool", ">f4"]))
    else:                                             # wrong shape / dtype / not an array
        target = src.pick([None, "abc", 3, 1.5, np.zeros(gen_shape(src)),
                           np.zeros(shape, dtype=object), np.zeros(shape, dtype=complex),
                           rng.integers(0, 3, size=gen_shape(src))])
    notes.append("target=" + tkind)

    # ---- options, from the signature
    def maybe(p):
        return p in params and src.bool(0.35)

    if maybe("weight"):
        if info.option_info["weight"].shape == "classes" and not binary:
            wshape = cap((n_classes,)) if src.bool(0.85) else gen_shape(src, 1)
        elif info.option_info["weight"].shape == "classes":      # binary hinge: refused
            wshape = shape
        else:
            wshape = broadcast_shape_for(src, shape)
        kwargs["weight"] = gen_weight_array(src, rng, wshape) if src.bool(0.95) else \
            src.pick(INVALID_ANY)
    if maybe("sample_weight"):
        sshape = cap(row_shape) if src.bool(0.85) else gen_shape(src)
        kwargs["sample_weight"] = gen_weight_array(src, rng, sshape) if src.bool(0.95) else \
            src.pick(INVALID_ANY)
    if maybe("pos_weight"):
        pshape = src.pick([shape[-1:], shape[-1:], (), (1,), gen_shape(src, 1)])
        kwargs["pos_weight"] = gen_weight_array(src, rng, pshape)
    if maybe("ignore_index"):
        kwargs["ignore_index"] = src.pick([-100, 0, 1, -1, n_classes, 2**63 - 1, -(2**63),
                                           2**70, 1.5, None, np.int8(1), np.uint64(2**64 - 1),
                                           True])
    if maybe("label_smoothing"):
        kwargs["label_smoothing"] = src.pick([0.0, 0.1, 0.5, 1.0, 1, np.float32(0.2), -0.1, 1.5,
                                              float("nan"), float("inf"), "0.1", None, True])
    if maybe("reduction"):
        kwargs["reduction"] = src.pick(["mean", "sum", "none", "mean", "sum", "none", "MEAN",
                                        None, 1, b"sum"])
    if maybe("n_threads"):
        kwargs["n_threads"] = src.pick([None, 1, 2, 3, 8, 64, 0, -1, 1.5, "2", 2**31, 2**63,
                                        True, np.int64(2)])
    if maybe("margin"):
        kwargs["margin"] = src.pick([1.0, 0, 2, 0.5, -1.0, 1e30, np.float32(1.5), np.int8(2),
                                     float("nan"), float("inf"), True, "1", None, 10**400])
    if maybe("squared"):
        kwargs["squared"] = src.pick([True, False, 1, 0, np.bool_(True), "yes", None])
    if maybe("multiclass"):
        kwargs["multiclass"] = src.pick(["ovr", "weston_watkins", "crammer_singer", "ovr",
                                         "weston_watkins", "crammer_singer", "OVR", None, 1])
    for opt, choices in (
            ("z_loss", [0.0, 1e-4, 0.5, 1, -1.0, float("nan"), float("inf"), "x", 10**400]),
            ("softcap", [None, 30.0, 1.0, 5, 1e-30, 0.0, -1.0, float("nan"), float("inf"),
                         True]),
            ("focal_gamma", [0.0, 1.0, 2.0, 0.5, 5, -1.0, float("nan"), float("inf")]),
            ("focal_alpha", [None, 0.25, 0.0, 1.0, -1.0, 2.0, float("nan")]),
            ("poly1_epsilon", [0.0, 1.0, -1.0, 2.5, float("nan"), float("inf"), 2**2000])):
        if maybe(opt):
            kwargs[opt] = src.pick(choices)
    for opt in params:                               # options added later get fuzzed too
        if (opt not in kwargs and opt not in ("logits", "target", "pred", "scores", "out",
                                              "hess_out", "lse_out")
                and params[opt].kind == inspect.Parameter.KEYWORD_ONLY
                and opt not in ("weight", "sample_weight", "pos_weight", "ignore_index",
                                "label_smoothing", "reduction", "n_threads", "margin",
                                "squared", "multiclass", "axis", "z_loss", "softcap",
                                "focal_gamma", "focal_alpha", "poly1_epsilon")
                and src.bool(0.2)):
            o = info.option_info.get(opt)
            if o is not None and (o.examples or o.invalid):     # the registry's values
                kwargs[opt] = src.pick(list(o.examples) + list(o.invalid) + [o.default])
            else:
                kwargs[opt] = src.pick([0.0, 1.0, 0.5, -1.0, 2, None, True, "x",
                                        float("nan"), np.ones(3)])
            notes.append("unknown-option " + opt)
    if src.bool(0.01):
        kwargs["no_such_option"] = 1

    # ---- layouts of the inputs
    pred = with_layout(src, pred_canon)
    if isinstance(target, np.ndarray):
        target = with_layout(src, target)
    for k in ("weight", "sample_weight", "pos_weight"):
        if isinstance(kwargs.get(k), np.ndarray) and src.bool(0.3):
            kwargs[k] = with_layout(src, kwargs[k])

    # ---- output buffers
    fdt = np.dtype(pdtype)
    fdt = fdt.newbyteorder("=") if fdt.kind == "f" and fdt.itemsize in (4, 8) else fdt

    def gen_out(which):
        choice = src.pick(["fresh", "fresh", "pred", "wrong_shape", "wrong_dtype", "fortran",
                           "readonly", "target", "list", "overlap", "weight", "swap",
                           "unaligned", "other_out", "alias_view"])
        notes.append("%s=%s" % (which, choice))
        try:
            if choice == "fresh":
                return np.full(shape, 7.0, dtype=fdt)
            if choice == "pred":
                return "PRED"
            if choice == "wrong_shape":
                return np.zeros(gen_shape(src), dtype=fdt)
            if choice == "wrong_dtype":
                return np.zeros(shape, dtype=src.pick(["float32", "float64", "int32"]))
            if choice == "fortran":
                return np.asfortranarray(np.zeros(shape, dtype=fdt))
            if choice == "readonly":
                b = np.zeros(shape, dtype=fdt)
                b.setflags(write=False)
                return b
            if choice == "target":
                return target
            if choice == "list":
                small = math.prod(n for n in shape if n) <= 4096
                return np.zeros(shape if small else (1,)).tolist()
            if choice == "overlap":                  # a view into a buffer shared with pred
                return "OVERLAP"
            if choice == "weight":
                return kwargs.get("weight")
            if choice == "swap":
                return np.zeros(shape, dtype=fdt.newbyteorder("S"))
            if choice == "unaligned":
                return with_layout(src, np.zeros(shape, dtype=fdt), "unaligned")
            if choice == "other_out":
                return "OUT"
            if choice == "alias_view":     # pred's dtype over the bytes of the target / weight
                base = src.pick([target, kwargs.get("weight"), kwargs.get("sample_weight"),
                                 kwargs.get("pos_weight")])
                need = math.prod(shape) * fdt.itemsize
                if (isinstance(base, np.ndarray) and base.flags.c_contiguous
                        and base.flags.writeable and base.dtype.kind != "O"
                        and base.nbytes >= need and fdt.kind == "f"):
                    return base.reshape(-1).view(np.uint8)[:need].view(fdt).reshape(shape)
                return None
        except (TypeError, ValueError):
            return None
        return None

    if "out" in params and src.bool(0.4):
        kwargs["out"] = gen_out("out")
    if "hess_out" in params and src.bool(0.4):
        kwargs["hess_out"] = gen_out("hess_out")
    if "lse_out" in params and src.bool(0.25):
        choice = src.pick(["ok", "ok", "f32", "shape", "ro", "pred", "F", "list", "alias"])
        notes.append("lse_out=" + choice)

        def _alias():
            # float64 over the bytes of the target / sample_weight (maybe converted copies)
            base = src.pick([target, kwargs.get("sample_weight"), kwargs.get("weight")])
            rs = cap(row_shape)
            need = math.prod(rs) * 8
            if (isinstance(base, np.ndarray) and base.flags.c_contiguous
                    and base.flags.writeable and base.dtype.kind != "O" and base.nbytes >= need):
                return base.reshape(-1).view(np.uint8)[:need].view(np.float64).reshape(rs)
            return None
        try:
            kwargs["lse_out"] = {
                "ok": lambda: np.full(cap(row_shape), 5.0),
                "f32": lambda: np.zeros(cap(row_shape), dtype=np.float32),
                "shape": lambda: np.zeros(gen_shape(src)),
                "ro": lambda: np.broadcast_to(np.zeros(1), cap(row_shape)),
                "pred": lambda: "PRED",
                "F": lambda: np.asfortranarray(np.zeros(cap(row_shape))),
                "list": lambda: [0.0],
                "alias": _alias,
            }[choice]()
        except (TypeError, ValueError):
            pass
    # resolve the references to pred / other buffers
    for k in ("out", "hess_out", "lse_out"):
        v = kwargs.get(k)
        if isinstance(v, str) and v == "PRED":
            kwargs[k] = pred
        elif isinstance(v, str) and v == "OUT":
            kwargs[k] = kwargs.get("out") if k != "out" else pred
        elif isinstance(v, str) and v == "OVERLAP":
            if isinstance(pred, np.ndarray) and pred.flags.c_contiguous and pred.size > 1 \
                    and pred.dtype.kind == "f":
                flat = pred.reshape(-1)
                kwargs[k] = flat[1:].copy()           # not overlapping, wrong size
                if src.bool(0.7):                      # a real overlap: shifted by one element
                    buf = np.zeros(pred.size + 1, dtype=pred.dtype)
                    buf[:-1] = flat
                    pred = buf[:-1].reshape(shape)
                    kwargs[k] = buf[1:].reshape(shape)
            else:
                kwargs[k] = None
    return Call(name, pred, target, kwargs, notes)


# --------------------------------------------------------------------------- oracles

def _arrays_of(call):
    items = [("pred", call.pred), ("target", call.target)]
    items += [(k, v) for k, v in call.kwargs.items()]
    return [(k, v) for k, v in items if isinstance(v, np.ndarray) and v.dtype.kind != "O"]


def _snapshot(call):
    snap = {}
    for k, v in _arrays_of(call):
        snap[k] = (v, v.copy(), v.__array_interface__["data"][0])
    return snap


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return a.shape == b.shape and all(x is y or x == y for x, y in zip(a.ravel(), b.ravel()))
    return (a.shape == b.shape and a.dtype == b.dtype
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def _written(call, snap, allowed):
    """Names of arrays whose contents changed, among those not in `allowed` (ids of buffers the
    call may write)."""
    changed = []
    for k, (arr, before, _) in snap.items():
        if any(np.shares_memory(arr, a) for a in allowed if isinstance(a, np.ndarray)):
            continue
        if not _same_bits(arr, before):
            changed.append(k)
    return changed


def _float_dtype(a):
    dt = np.asarray(a).dtype
    return dt.newbyteorder("=") if dt.byteorder not in "=|" else dt


def _check_result(call, result):
    _, form = family(call.name)
    pred = np.asarray(call.pred)
    dt = _float_dtype(pred)
    red = call.kwargs.get("reduction", "mean")
    value = grad = hess = None
    if form == "value":
        value = result
    elif form == "grad":
        grad = result
    elif form == "value_and_grad":
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Finding("value_and_grad returned %r" % type(result))
        value, grad = result
    elif form == "grad_hess":
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Finding("grad_hess returned %r" % type(result))
        grad, hess = result
    if value is not None or form in ("value", "value_and_grad"):
        if red in ("mean", "sum"):
            if type(value) is not float:
                raise Finding("reduction=%r returned %s, not a Python float" % (red, type(value)))
        else:
            # per-element losses of half predictions are float32 (a half loss would
            # overflow or lose its digits)
            ldt = np.dtype(np.float32) if dt.itemsize == 2 else dt
            if not isinstance(value, np.ndarray) or value.dtype != ldt:
                raise Finding("reduction='none' returned %r (dtype %s), expected dtype %s"
                              % (type(value), getattr(value, "dtype", None), ldt))
    for what, g, buf in (("gradient", grad, call.kwargs.get("out")),
                         ("hessian", hess, call.kwargs.get("hess_out"))):
        if g is None:
            continue
        if not isinstance(g, np.ndarray) or g.shape != pred.shape or g.dtype != dt:
            raise Finding("%s is %r shape %s dtype %s; pred has shape %s dtype %s"
                          % (what, type(g), getattr(g, "shape", None), getattr(g, "dtype", None),
                             pred.shape, dt))
        if buf is not None and g is not buf:
            raise Finding("%s is not the out buffer that was passed" % what)
    return value, grad, hess


def _canonical(v):
    if isinstance(v, np.ndarray):
        dt = v.dtype.newbyteorder("=") if v.dtype.byteorder not in "=|" else v.dtype
        return np.array(v, dtype=dt, order="C", copy=True)
    if isinstance(v, list):
        return np.array(v)
    return v


def _bits_equal(r1, r2):
    if isinstance(r1, tuple):
        return len(r1) == len(r2) and all(_bits_equal(a, b) for a, b in zip(r1, r2))
    if isinstance(r1, float):
        return isinstance(r2, float) and np.float64(r1).tobytes() == np.float64(r2).tobytes()
    if isinstance(r1, np.ndarray):
        return isinstance(r2, np.ndarray) and _same_bits(r1, r2)
    return r1 is r2 or r1 == r2


def _without_outs(kwargs):
    return {k: v for k, v in kwargs.items() if k not in ("out", "hess_out", "lse_out")}


def _grad_term_scale():
    """tests.cases.grad_term_scale when the checkout's tests package is importable."""
    try:
        from tests.cases import grad_term_scale
    except ImportError:
        root = os.path.dirname(os.path.dirname(HERE))
        if root in sys.path:
            return None
        sys.path.append(root)          # last: an installed / snapshot fastloss still wins
        try:
            from tests.cases import grad_term_scale
        except ImportError:
            return None
    return grad_term_scale


def _reference_close(call, canon_pred, canon_target, kw, value, grad):
    """Loose comparison with fastloss.reference for finite, moderate inputs."""
    import fastloss.reference as ref

    fam, form = family(call.name)
    canon_pred = np.asarray(canon_pred)
    if form == "grad_hess" or not hasattr(ref, fam):
        return
    if math.prod(n for n in canon_pred.shape if n) > 10**6:
        return                                  # the reference allocates per row / class
    rparams = inspect.signature(getattr(ref, fam + "_value_and_grad")).parameters
    for k, v in kw.items():
        if k not in rparams:
            default = inspect.signature(getattr(_fl(), call.name)).parameters[k].default
            if not (v is default or (isinstance(v, float) and v == default)):
                return                                  # an option the reference lacks
    arrays = [canon_pred] + [v for v in [canon_target] + list(kw.values())
                             if isinstance(v, np.ndarray)]
    for a in arrays:
        if a.dtype.kind not in "biuf":
            return
        if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1e4)):
            return
        if a.dtype.kind == "f" and a.size and np.any((a != 0) & (np.abs(a) < 1e-30)):
            return
    for k in ("weight", "sample_weight", "pos_weight"):
        w = kw.get(k)
        if w is not None and np.any(np.asarray(w, dtype=np.float64) <= 0):
            return                                     # cancelling denominators
    if (fam == "sigmoid_cross_entropy" and (kw.get("focal_gamma") or kw.get("poly1_epsilon")
                                            or kw.get("focal_alpha") is not None)
            and np.any((np.asarray(canon_target, dtype=np.float64) < 0)
                       | (np.asarray(canon_target, dtype=np.float64) > 1))):
        return          # focal / poly-1 are defined for targets in [0, 1] only
    dt = canon_pred.dtype
    half = dt.itemsize == 2                            # float16 / bfloat16, computed in float32
    target = canon_target
    if isinstance(target, np.ndarray) and target.dtype.kind == "f":
        # fastloss converts floating targets: to pred's dtype, or for half predictions to
        # float32 (a target already of pred's half dtype is read as it is)
        if not half:
            target = target.astype(dt)
        elif target.dtype != dt:
            target = target.astype(np.float32)
    try:
        with np.errstate(all="ignore"):
            rv, rg = getattr(ref, fam + "_value_and_grad")(canon_pred, target, **kw)
    except ACCEPTABLE:
        return
    if dt.itemsize <= 4:
        with np.errstate(all="ignore"):
            big = [np.asarray(a, np.float64) for a in (rv, rg) if a is not None]
            if any(np.any(np.abs(a) > 1e37) for a in big):
                return          # float32 element arithmetic overflows there, as it should
    # half: float32 arithmetic, and gradients rounded once to the half dtype (2**-8 relative
    # for bfloat16, 2**-11 for float16; the float32 margin covers both)
    rtol = (2.0 ** -7 if dt.itemsize == 2 and dt != np.float16 else 2e-3) if half else \
        (2e-3 if dt == np.float32 else 1e-9)
    with np.errstate(all="ignore"):
        if value is not None:
            v = np.asarray(value, dtype=np.float64)
            e = np.asarray(rv, dtype=np.float64)
            terms = np.asarray(getattr(ref, fam)(canon_pred, target,
                                                 **{**kw, "reduction": "none"}), np.float64)
            scale = float(np.sum(np.abs(terms))) if terms.size else 0.0
            if kw.get("reduction", "mean") == "mean":
                s = float(getattr(ref, fam)(canon_pred, target, **{**kw, "reduction": "sum"}))
                m = float(e) if e.ndim == 0 else 1.0
                if s != 0 and math.isfinite(s) and math.isfinite(m):
                    scale *= abs(m / s)
            scale = max(scale, float(np.max(np.abs(e), initial=0.0)))
            if not np.allclose(v, e, rtol=rtol, atol=rtol * scale + 1e-30, equal_nan=True):
                raise Finding("value differs from fastloss.reference: %r vs %r"
                              % (v if v.size < 8 else v.ravel()[:8], e if e.size < 8
                                 else e.ravel()[:8]))
        if grad is not None and not (fam == "hinge" and not kw.get("squared")):
            g = np.asarray(grad, dtype=np.float64)
            e = np.asarray(rg, dtype=np.float64)
            if half:
                with np.errstate(all="ignore"):     # rounded once to pred's dtype: a gradient
                    e = e.astype(dt).astype(np.float64)   # beyond its range is +-inf
            scale = float(np.max(np.abs(e), initial=0.0))
            term_scale = _grad_term_scale()
            if term_scale is not None:
                # a softmax / sigmoid gradient is a difference of terms (p A - a): its rounding
                # is relative to them, also where it cancels to 0
                try:
                    kwf = dict(kw)
                    if "label_smoothing" in kwf:            # the API accepts "0.1" too
                        kwf["label_smoothing"] = float(kwf["label_smoothing"])
                    scale = max(scale, term_scale(fam, canon_pred, target, kwf,
                                                  kw.get("reduction", "mean")))
                except (TypeError, ValueError):
                    pass
            bad = ~np.isclose(g, e, rtol=rtol, atol=rtol * max(scale, 1e-300) * 4, equal_nan=True)
            if fam == "hinge" and kw.get("multiclass") == "crammer_singer":
                return                                  # argmax ties pick a different class
            if np.any(bad):
                i = np.flatnonzero(bad.ravel())[0]
                raise Finding("gradient differs from fastloss.reference at flat index %d: "
                              "%r vs %r" % (i, g.ravel()[i], e.ravel()[i]))


def run_call(call, check_oracles=True):
    """Run one generated call; raise on a finding, return a short outcome string."""
    fl = _fl()
    fn = getattr(fl, call.name)
    snap = _snapshot(call)
    kw = call.kwargs
    allowed_writes = [kw.get("out"), kw.get("hess_out"), kw.get("lse_out")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(call.pred, call.target, **kw)
    except ACCEPTABLE as e:
        if not str(e).strip():
            raise Finding("%s with an empty message" % type(e).__name__) from e
        changed = _written(call, snap, [])
        if changed:
            raise Finding("%s raised (%s: %s) after writing to %s"
                          % (call.name, type(e).__name__, e, changed)) from e
        return "error:" + type(e).__name__
    # ---- success
    value, grad, _ = _check_result(call, result)
    changed = _written(call, snap, allowed_writes)
    if changed:
        raise Finding("%s modified its input(s) %s" % (call.name, changed))
    # an accepted output buffer is pred itself or shares no memory with any other input
    for oname in ("out", "hess_out", "lse_out"):
        o = kw.get(oname)
        if not isinstance(o, np.ndarray):
            continue
        for iname, arr in _arrays_of(call):
            if iname == oname or arr is o and iname == "pred" and oname == "out":
                continue
            if np.shares_memory(o, arr):
                raise Finding("%s was accepted although it shares memory with %s"
                              % (oname, iname))
    if not check_oracles:
        return "ok"
    fam, form = family(call.name)
    # canonical inputs, fresh outputs: same bits
    pred0 = snap["pred"][1] if "pred" in snap else _canonical(call.pred)
    cpred = _canonical(pred0)
    ctarget = _canonical(snap["target"][1] if "target" in snap else call.target)
    ckw = {k: (_canonical(snap[k][1]) if k in snap else _canonical(v))
           for k, v in _without_outs(kw).items()}
    if kw.get("lse_out") is not None:
        # another sentinel than the generator's (5.0): an entry the kernel leaves unwritten
        # shows up as a difference
        ckw["lse_out"] = np.full(np.shape(kw["lse_out"]), -7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fn(cpred, ctarget, **ckw)
    lse_again = ckw.get("lse_out")
    if not _bits_equal(result, again):
        raise Finding("the same call on C-contiguous native copies gives other bits")
    if kw.get("lse_out") is not None and not _same_bits(kw["lse_out"], lse_again):
        raise Finding("lse_out differs between two runs (entries left unwritten?)")
    # forms agree bitwise
    if form in ("value", "grad", "value_and_grad"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v2, g2 = getattr(fl, fam + "_value_and_grad")(cpred, ctarget, **ckw)
            if form == "value" and not _bits_equal(value, v2):
                raise Finding("value form != value_and_grad value: %r vs %r" % (value, v2))
            if form == "grad" and not _bits_equal(grad, g2):
                raise Finding("grad form != value_and_grad gradient")
            if form == "value_and_grad":
                v1 = getattr(fl, fam)(cpred, ctarget, **{k: v for k, v in ckw.items()})
                g1 = getattr(fl, fam + "_grad")(cpred, ctarget, **ckw)
                if not _bits_equal(v1, value):
                    raise Finding("value form != value_and_grad value: %r vs %r" % (v1, value))
                if not _bits_equal(g1, grad):
                    raise Finding("grad form != value_and_grad gradient")
    # thread count does not change the bits (only meaningful when the call goes parallel)
    if np.size(cpred) >= 32768 and "n_threads" in inspect.signature(fn).parameters:
        r1 = fn(cpred, ctarget, **{**ckw, "n_threads": 1})
        r2 = fn(cpred, ctarget, **{**ckw, "n_threads": 2})
        if not _bits_equal(r1, r2):
            raise Finding("n_threads=1 and n_threads=2 give different bits")
    if isinstance(ctarget, np.ndarray) and form != "grad_hess":
        _reference_close(call, cpred, ctarget, _without_outs(ckw), value, grad)
    return "ok"


# --------------------------------------------------------------------------- drivers

def finding_signature(exc):
    tb = traceback.extract_tb(exc.__traceback__)
    frame = next((f for f in reversed(tb) if "fastloss" in f.filename and "fuzz" not in
                  f.filename), tb[-1] if tb else None)
    msg = re.sub(r"\d+", "N", str(exc))[:80]
    where = "%s:%s" % (os.path.basename(frame.filename), frame.lineno) if frame else "?"
    return "%s|%s|%s" % (type(exc).__name__, where, msg)


class Campaign:
    def __init__(self, args):
        self.args = args
        self.names = public_functions()
        if args.functions:
            self.names = [n for n in self.names if re.search(args.functions, n)]
        self.execs = 0
        self.gen_skips = 0
        self.by_function = {}
        self.ok_by_function = {}
        self.outcomes = {}
        self.findings = {}
        self.start = time.time()
        self.last_report = self.start
        os.makedirs(args.findings_dir, exist_ok=True)

    def one(self, src, reproducer, data=None):
        try:
            call = gen_call(src, self.names)
        except (MemoryError, ValueError) as exc:    # a generator limit, not a finding
            self.gen_skips += 1
            if self.gen_skips <= 3:
                print("generator skipped an input (%s: %s) %s"
                      % (type(exc).__name__, exc, reproducer), flush=True)
            return
        if self.args.verbose:
            print(call.describe(), flush=True)
        self.execs += 1
        self.by_function[call.name] = self.by_function.get(call.name, 0) + 1
        try:
            out = run_call(call, check_oracles=not self.args.no_oracles)
            if out == "ok":
                self.ok_by_function[call.name] = self.ok_by_function.get(call.name, 0) + 1
            self.outcomes[out] = self.outcomes.get(out, 0) + 1
            if self.args.verbose:
                print("  ->", out, flush=True)
        except Exception as exc:   # every other exception is a finding
            sig = finding_signature(exc)
            first = sig not in self.findings
            self.findings.setdefault(sig, [0, reproducer, call.describe()])[0] += 1
            if first:
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                path = os.path.join(self.args.findings_dir, "finding-%s.txt"
                                    % hashlib.sha1(sig.encode()).hexdigest()[:12])
                if data is not None:        # the atheris input, for --repro
                    with open(path[:-4] + ".bin", "wb") as f:
                        f.write(data)
                    reproducer = "python tests/fuzz/fuzz_api.py --repro %s" % (path[:-4] + ".bin")
                with open(path, "w") as f:
                    f.write("signature: %s\nreproducer: %s\ncall: %s\n\n%s"
                            % (sig, reproducer, call.describe(), text))
                print("FINDING %s\n  reproducer: %s\n  call: %s\n  details: %s"
                      % (sig, reproducer, call.describe(), path), flush=True)
            if self.args.strict:
                raise
        now = time.time()
        if now - self.last_report > self.args.report_every:
            self.report()
            self.last_report = now

    def report(self, final=False):
        el = time.time() - self.start
        print("%s%d execs in %.0f s (%.0f/s); outcomes %s; %d distinct finding(s)"
              % ("FINAL " if final else "", self.execs, el, self.execs / max(el, 1e-9),
                 dict(sorted(self.outcomes.items())), len(self.findings)), flush=True)
        if final:
            for sig, (n, repro, desc) in self.findings.items():
                print("  %6d x %s\n           e.g. %s" % (n, sig, repro), flush=True)


def main_plain(args):
    camp = Campaign(args)
    deadline = time.time() + args.seconds if args.seconds else None
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**40)
    status_fd = None
    if args.status_file:
        status_fd = os.open(args.status_file, os.O_WRONLY | os.O_CREAT, 0o644)
    i = 0
    try:
        while True:
            if args.iterations is not None and i >= args.iterations:
                break
            if deadline is not None and time.time() > deadline:
                break
            s = seed + i
            if status_fd is not None:      # the input in flight, for a crash or a hang
                os.pwrite(status_fd, b"%-24d\n" % s, 0)
            if args.timeout:
                faulthandler.dump_traceback_later(args.timeout, exit=True)
            camp.one(PlainSource(s), "python tests/fuzz/fuzz_api.py --plain --seed %d "
                                        "--iterations 1 -v" % s)
            i += 1
    except Exception:  # noqa: BLE001 -- a --strict finding: report, then fail
        traceback.print_exc()
        camp.report(final=True)
        return 1
    finally:
        if args.timeout:
            faulthandler.cancel_dump_traceback_later()
    camp.report(final=True)
    return 1 if camp.findings else 0


def main_repro(args):
    camp = Campaign(args)
    args.verbose = True
    with open(args.repro, "rb") as f:
        data = f.read()
    camp.one(AtherisSource(data), args.repro)
    camp.report(final=True)
    return 1 if camp.findings else 0


def main_atheris(args, libfuzzer_argv):
    import atheris

    camp = Campaign(args)

    def test_one_input(data):
        camp.one(AtherisSource(data), "python tests/fuzz/fuzz_api.py --repro <input>", data)

    import atexit

    atexit.register(camp.report, True)
    atheris.Setup([sys.argv[0]] + libfuzzer_argv, test_one_input)
    atheris.Fuzz()


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plain", action="store_true", help="plain random fuzzer (no atheris)")
    p.add_argument("--seconds", type=float, default=None, help="plain: stop after this long")
    p.add_argument("--iterations", type=int, default=None, help="plain: stop after this many")
    p.add_argument("--seed", type=int, default=None, help="plain: first seed")
    p.add_argument("--repro", help="replay one atheris input file")
    p.add_argument("--strict", dest="strict", action="store_true", default=None,
                   help="stop at the first finding (default for --plain)")
    p.add_argument("--collect", dest="strict", action="store_false",
                   help="log each distinct finding once and go on (default for atheris)")
    # libFuzzer's fork mode re-runs this script with its own flags only: the children read
    # their settings from the environment.
    p.add_argument("--findings-dir", default=os.environ.get(
        "FASTLOSS_FUZZ_FINDINGS", os.path.join(os.getcwd(), "fuzz-findings")),
        help="one file per distinct finding (env FASTLOSS_FUZZ_FINDINGS)")
    p.add_argument("--functions", help="regex: only these public functions")
    p.add_argument("--no-oracles", action="store_true", help="only crashes and exceptions")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="plain: abort (a hang finding) when one input takes this long")
    p.add_argument("--status-file", help="plain: keep the seed in flight in this file")
    p.add_argument("--report-every", type=float,
                   default=float(os.environ.get("FASTLOSS_FUZZ_REPORT_EVERY", "60")))
    p.add_argument("--no-huge", action="store_true",
                   help="no huge dimensions (env FASTLOSS_FUZZ_NO_HUGE=1)")
    p.add_argument("-v", "--verbose", action="store_true")
    args, rest = p.parse_known_args(argv)
    if args.strict is None:
        args.strict = bool(args.plain or args.repro)
    if args.no_huge:
        global NO_HUGE
        NO_HUGE = True
    return args, rest


def main(argv=None):
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    faulthandler.enable()
    warnings.simplefilter("ignore")
    if args.repro:
        return main_repro(args)
    if args.plain:
        return main_plain(args)
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install atheris, or run with --plain",
              file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["fastloss"]):
        _fl()
        import fastloss._api  # noqa: F401
    return main_atheris(args, rest)


if __name__ == "__main__":
    sys.exit(main())
