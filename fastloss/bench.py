"""Benchmark fastloss against its baselines: ``python -m fastloss bench``.

Every case in :data:`CASES` (the speed targets of issue 3 plus a size sweep) is timed for each
form (the loss value, and the fused value and gradient) against:

``numpy``
    ``fastloss.reference``, the readable NumPy baselines (single-threaded). Skipped where one
    call is estimated (from a run on a slice of the rows) to take more than a few seconds.
``python``
    plain-Python loops over lists (``math.exp`` ...), written here; small sizes only.
``torch``
    PyTorch CPU, forward (value) or forward + ``torch.autograd.grad`` (value and gradient),
    with ``torch.set_num_threads`` set to the same thread count.
``sklearn``
    scikit-learn's private ``sklearn._loss`` losses: ``HalfMultinomialLoss.loss_gradient`` for
    softmax cross-entropy (raw_prediction ``(n_samples, n_classes)``, float labels), and
    ``HalfBinomialLoss`` / ``HalfSquaredError`` on the flattened arrays for sigmoid CE / MSE.
``jax``
    ``jax.jit(jax.value_and_grad(loss))`` (or ``jax.jit(loss)``), compile time excluded.
``copy``
    ``fastloss._core.parallel_copy`` of the logits into a preallocated array of the same size:
    the memory-bandwidth yardstick (``np.copyto`` if the extension lacks it; marked so).

All implementations of one case run in one process, interleaved round-robin (the order rotates
every round), each measurement repeated ``number`` times so that it lasts long enough to time,
and the best of several rounds is kept. Ratios are ``baseline_time / fastloss_time``: above 1
means fastloss is faster. Optional packages are imported only when a case needs them.

The same registry drives the pytest-benchmark suite in ``bench/`` so names cannot drift.

Use :func:`main` for the command line and :func:`run` from Python (it returns the results as a
dict, the same one ``--json`` writes).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import fnmatch
import functools
import gc
import importlib
import io
import itertools
import json
import math
import os
import platform
import sys
import textwrap
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

__all__ = ["CASES", "LOSSES", "BASELINES", "Case", "Target", "Impl", "Unavailable",
           "make_data", "build_impl", "impl_names", "select_cases", "run", "main"]

FORMS = ("value_and_grad", "value")
FORM_SHORT = {"value_and_grad": "v+g", "value": "value"}
BASELINES = ("numpy", "python", "torch", "sklearn", "jax")
FASTLOSS = "fastloss"
FASTLOSS_OUT = "fastloss[out=]"
FASTLOSS_1T = "fastloss[1 thread]"
COPY = "copy"


# --------------------------------------------------------------------------------------------
# The registry: losses and cases
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Target:
    """One speed target of issue 3.

    kind: ``"vs_torch"`` (torch time / fastloss time >= bound), ``"copy"`` (fastloss time /
    copy time <= bound, measured with ``out=`` like the copy, which writes into preallocated
    memory), ``"us_per_call"`` (<= bound) or ``"scaling"`` (1-thread time / n-thread time
    >= bound).
    """

    kind: str
    bound: float
    form: str = "value_and_grad"

    def describe(self) -> str:
        return {
            "vs_torch": f">= {self.bound:g}x PyTorch",
            "copy": f"<= {self.bound:g}x copy time",
            "us_per_call": f"<= {self.bound:g} us per call",
            "scaling": f"1 -> n threads >= {self.bound:g}x",
        }[self.kind] + f" ({FORM_SHORT[self.form]})"


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case. Shapes are the full size, the ``--quick`` size and the small size
    the smoke tests check against the reference."""

    name: str
    loss: str                      # key of LOSSES
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    check_shape: tuple[int, ...]
    dtype: str = "float32"
    forms: tuple[str, ...] = FORMS
    targets: tuple[Target, ...] = ()
    scaling: bool = False          # also time fastloss with n_threads=1
    group: str = "issue3"          # "issue3", "issue9" (options beyond PyTorch) or "sweep"
    series: str | None = None      # cases of one series make one line of the plot

    def shape_for(self, size: str) -> tuple[int, ...]:
        return {"full": self.shape, "quick": self.quick_shape, "check": self.check_shape}[size]


def _softmax_data(rng, shape, dtype):
    pred = rng.standard_normal(shape, dtype=dtype)
    pred *= 2
    target = rng.integers(0, shape[-1], shape[:-1], dtype=np.int64)
    return pred, target


def _sigmoid_data(rng, shape, dtype):
    pred = rng.standard_normal(shape, dtype=dtype)
    pred *= 2
    target = (rng.random(shape, dtype=np.float32) < 0.3).astype(dtype)
    return pred, target


def _mse_data(rng, shape, dtype):
    return rng.standard_normal(shape, dtype=dtype), rng.standard_normal(shape, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class LossSpec:
    func: str                         # public fastloss name (forms add _value_and_grad)
    make_data: Callable
    kwargs: dict = dataclasses.field(default_factory=dict)
    rowwise: bool = True              # class loss (rows of C) or elementwise
    extended: bool = False            # options beyond PyTorch: the baseline is torch ops


LOSSES: dict[str, LossSpec] = {
    "softmax_ce": LossSpec("softmax_cross_entropy", _softmax_data),
    "sigmoid_ce": LossSpec("sigmoid_cross_entropy", _sigmoid_data, rowwise=False),
    "mse": LossSpec("mse", _mse_data, rowwise=False),
    "hinge_ww": LossSpec("hinge", _softmax_data, {"multiclass": "weston_watkins"}),
    # issue 9: the options fused into the kernels, against the torch composition users write
    "softmax_ce_capz": LossSpec("softmax_cross_entropy", _softmax_data,
                                {"softcap": 30.0, "z_loss": 1e-4}, extended=True),
    "sigmoid_focal": LossSpec("sigmoid_cross_entropy", _sigmoid_data,
                              {"focal_gamma": 2.0, "focal_alpha": 0.25}, rowwise=False,
                              extended=True),
}

_T = Target
_M = 1 << 20
BUSY = 0.10   # warn when other processes used more than this share of the CPU

CASES: tuple[Case, ...] = (
    # ---- issue 3 ----
    Case("softmax_ce-2048x32768", "softmax_ce", (2048, 32768), (256, 32768), (6, 333),
         targets=(_T("vs_torch", 8), _T("copy", 1.5), _T("scaling", 1.7)), scaling=True),
    Case("softmax_ce-16384x1000", "softmax_ce", (16384, 1000), (4096, 1000), (37, 1000),
         targets=(_T("vs_torch", 8), _T("copy", 1.5), _T("scaling", 1.7)), scaling=True,
         series="softmax_ce C=1000 float32"),
    Case("softmax_ce-262144x10", "softmax_ce", (262144, 10), (65536, 10), (101, 10),
         targets=(_T("vs_torch", 10), _T("scaling", 1.7)), scaling=True),
    Case("softmax_ce-f64-2048x8192", "softmax_ce", (2048, 8192), (256, 8192), (5, 257),
         dtype="float64", targets=(_T("vs_torch", 5), _T("scaling", 1.7)), scaling=True),
    Case("sigmoid_ce-262144x100", "sigmoid_ce", (262144, 100), (32768, 100), (13, 100),
         targets=(_T("vs_torch", 5), _T("scaling", 1.7)), scaling=True),
    Case("mse-16M", "mse", (16 * _M,), (2 * _M,), (1001,),
         targets=(_T("vs_torch", 3), _T("scaling", 1.7)), scaling=True, series="mse float32"),
    Case("hinge_ww-65536x100", "hinge_ww", (65536, 100), (16384, 100), (17, 100),
         targets=(_T("vs_torch", 5), _T("scaling", 1.7)), scaling=True),
    Case("softmax_ce-softcap30-zloss-2048x32768", "softmax_ce_capz", (2048, 32768),
         (256, 32768), (6, 333), targets=(_T("vs_torch", 8),), group="issue9"),
    Case("sigmoid_focal-262144x100", "sigmoid_focal", (262144, 100), (32768, 100), (13, 100),
         targets=(_T("vs_torch", 8),), group="issue9"),
    Case("tiny-softmax_ce-8x10", "softmax_ce", (8, 10), (8, 10), (8, 10), forms=("value",
         "value_and_grad"), targets=(_T("us_per_call", 2, "value"), _T("vs_torch", 10, "value"))),
    # ---- size sweep (throughput against size; the plot) ----
    *(Case(f"sweep-softmax_ce-C1000-N{n}", "softmax_ce", (n, 1000), (qn, 1000), (min(n, 9), 1000),
           forms=("value_and_grad",), group="sweep", series="softmax_ce C=1000 float32")
      for n, qn in ((1, 1), (16, 16), (256, 256), (2048, 1024))),
    *(Case(f"sweep-mse-{label}", "mse", (n,), (qn,), (min(n, 999),), forms=("value_and_grad",),
           group="sweep", series="mse float32")
      for label, n, qn in (("1k", 1 << 10, 1 << 10), ("16k", 1 << 14, 1 << 14),
                           ("256k", 1 << 18, 1 << 18), ("2M", 2 * _M, 1 << 19))),
)


def select_cases(patterns: str | list | tuple | None = None) -> list[Case]:
    """Cases whose name matches any comma-separated pattern (fnmatch, or substring)."""
    if patterns is None:
        return list(CASES)
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = []
    for case in CASES:
        for pat in patterns:
            if isinstance(pat, Case):
                hit = pat == case
            elif any(ch in pat for ch in "*?["):
                hit = fnmatch.fnmatchcase(case.name, pat)
            else:
                hit = pat in case.name
            if hit:
                chosen.append(case)
                break
    return chosen


def make_data(case: Case, size: str = "full", seed: int = 0):
    """(pred, target) for ``case`` at ``size`` ("full", "quick" or "check"), seeded."""
    rng = np.random.default_rng([seed, sum(map(ord, case.name))])
    return LOSSES[case.loss].make_data(rng, case.shape_for(size), np.dtype(case.dtype))


# --------------------------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------------------------

class Unavailable(Exception):
    """An implementation cannot run here (package missing, case not supported, too slow)."""


@dataclasses.dataclass
class Impl:
    """A timed call. ``fn()`` takes no argument; ``convert(fn())`` gives (loss, grad or None)
    in fastloss's convention (mean loss, gradient of the mean), or None for the copy."""

    name: str
    fn: Callable[[], Any]
    convert: Callable[[Any], Any] | None
    fresh_output: bool = True     # result holds newly allocated arrays (for the memory figure)
    note: str = ""
    dst: Any = None               # the copy's destination (checked after the warm-up)


def impl_names(case: Case, form: str, n_threads: int | None = None) -> list[str]:
    names = [FASTLOSS]
    if form == "value_and_grad":
        names.append(FASTLOSS_OUT)
    if case.scaling and (n_threads or _cpu_count()) > 1:
        names.append(FASTLOSS_1T)
    names.append(COPY)
    names.extend(BASELINES)
    return names


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def _conv_value(r):
    return float(r), None


def _conv_vg(r):
    return float(r[0]), np.asarray(r[1])


def _fastloss_impl(name, case, form, pred, target, n_threads):
    import fastloss

    spec = LOSSES[case.loss]
    fname = spec.func + ("_value_and_grad" if form == "value_and_grad" else "")
    try:
        f = getattr(fastloss, fname)
    except AttributeError:
        raise Unavailable(f"fastloss.{fname} does not exist") from None
    kw = dict(spec.kwargs)
    if name == FASTLOSS_1T:
        kw["n_threads"] = 1
    elif n_threads is not None:
        kw["n_threads"] = n_threads
    conv = _conv_vg if form == "value_and_grad" else _conv_value
    if name == FASTLOSS_OUT:
        out = np.empty_like(pred)
        out[...] = 0  # touch the pages: out= means reused memory
        return Impl(name, functools.partial(f, pred, target, out=out, **kw), conv,
                    fresh_output=False)
    return Impl(name, functools.partial(f, pred, target, **kw), conv)


def _copy_impl(pred, n_threads):
    dst = np.empty_like(pred)
    dst[...] = 0
    try:
        from fastloss._core import parallel_copy
    except ImportError:
        return Impl(COPY, functools.partial(np.copyto, dst, pred), None, fresh_output=False,
                    note="np.copyto (FALLBACK: fastloss._core.parallel_copy missing; 1 thread)",
                    dst=dst)
    return Impl(COPY, functools.partial(parallel_copy, pred, dst, n_threads=n_threads), None,
                fresh_output=False, note=f"fastloss._core.parallel_copy(n_threads={n_threads})",
                dst=dst)


def _numpy_impl(case, form, pred, target):
    from fastloss import reference

    spec = LOSSES[case.loss]
    fname = spec.func + ("_value_and_grad" if form == "value_and_grad" else "")
    f = getattr(reference, fname)
    conv = _conv_vg if form == "value_and_grad" else _conv_value
    return Impl("numpy", functools.partial(f, pred, target, **spec.kwargs), conv,
                note="fastloss.reference")


# ---- plain Python loops (the "no library at all" baseline) ----

def _py_softmax_ce(x, y, want_grad):
    n = len(x)
    total = 0.0
    grad = [] if want_grad else None
    exp, log = math.exp, math.log
    for row, t in zip(x, y):
        m = max(row)
        e = [exp(v - m) for v in row]
        s = sum(e)
        total += log(s) + m - row[t]
        if want_grad:
            inv = 1.0 / (s * n)
            g = [v * inv for v in e]
            g[t] -= 1.0 / n
            grad.append(g)
    return total / n, grad


def _py_sigmoid_ce(x, t, want_grad):
    n = len(x)
    total = 0.0
    grad = [] if want_grad else None
    exp, log1p = math.exp, math.log1p
    for xi, ti in zip(x, t):
        total += max(xi, 0.0) - xi * ti + log1p(exp(-abs(xi)))
        if want_grad:
            if xi >= 0:
                s = 1.0 / (1.0 + exp(-xi))
            else:
                e = exp(xi)
                s = e / (1.0 + e)
            grad.append((s - ti) / n)
    return total / n, grad


def _py_mse(x, t, want_grad):
    n = len(x)
    total = 0.0
    grad = [] if want_grad else None
    for xi, ti in zip(x, t):
        d = xi - ti
        total += d * d
        if want_grad:
            grad.append(2.0 * d / n)
    return total / n, grad


def _py_hinge_ww(x, y, want_grad, margin=1.0):
    # torch.nn.functional.multi_margin_loss: sum_{c != y} max(0, margin - x_y + x_c) / C
    n = len(x)
    total = 0.0
    grad = [] if want_grad else None
    for row, t in zip(x, y):
        c = len(row)
        xy = row[t]
        g = [0.0] * c if want_grad else None
        for j, v in enumerate(row):
            if j != t:
                m = margin - xy + v
                if m > 0:
                    total += m / c
                    if want_grad:
                        g[j] += 1.0 / (c * n)
                        g[t] -= 1.0 / (c * n)
        if want_grad:
            grad.append(g)
    return total / n, grad


_PY_LOOPS = {"softmax_ce": _py_softmax_ce, "sigmoid_ce": _py_sigmoid_ce, "mse": _py_mse,
             "hinge_ww": _py_hinge_ww}


def _python_impl(case, form, pred, target):
    spec = LOSSES[case.loss]
    if spec.rowwise:
        xs, ts = pred.tolist(), target.tolist()
    else:
        xs, ts = pred.ravel().tolist(), target.ravel().tolist()
    want_grad = form == "value_and_grad"
    shape, dtype = pred.shape, pred.dtype

    def conv(r):
        loss, grad = r
        if not want_grad:
            return float(loss), None
        return float(loss), np.asarray(grad, dtype=dtype).reshape(shape)

    fn = functools.partial(_PY_LOOPS[case.loss], xs, ts, want_grad)
    return Impl("python", fn, conv, note="lists + math.exp loops")


# ---- PyTorch ----

def _import_torch(n_threads):
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise Unavailable("torch is not installed") from None
    torch.set_num_threads(n_threads or _cpu_count())
    return torch


def _torch_capz(torch, F, z, t, cap=30.0, z_loss=1e-4):
    """Soft-capped logits + cross-entropy + z-loss, as written with torch ops today."""
    zc = cap * torch.tanh(z / cap)
    return F.cross_entropy(zc, t) + z_loss * (torch.logsumexp(zc, dim=-1) ** 2).mean()


def _torch_focal(torch, F, z, t, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss's formula (reduction="mean") in torch ops."""
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean()


def _torch_impl(case, form, pred, target, n_threads):
    torch = _import_torch(n_threads)
    F = torch.nn.functional
    x = torch.from_numpy(pred)
    t = torch.from_numpy(target)
    fwd = {
        "softmax_ce": lambda z: F.cross_entropy(z, t),
        "sigmoid_ce": lambda z: F.binary_cross_entropy_with_logits(z, t),
        "mse": lambda z: F.mse_loss(z, t),
        "hinge_ww": lambda z: F.multi_margin_loss(z, t),
        "softmax_ce_capz": lambda z: _torch_capz(torch, F, z, t),
        "sigmoid_focal": lambda z: _torch_focal(torch, F, z, t),
    }[case.loss]
    note = f"torch.set_num_threads({torch.get_num_threads()})"
    if form == "value":
        def fn():
            return fwd(x).item()
        return Impl("torch", fn, _conv_value, fresh_output=False, note=note)

    xg = x.detach().requires_grad_(True)
    grad = torch.autograd.grad

    def fn():
        loss = fwd(xg)
        (g,) = grad(loss, xg)
        return loss.item(), g

    return Impl("torch", fn, lambda r: (float(r[0]), r[1].numpy()), note=note + ", forward + "
                "autograd.grad")


# ---- scikit-learn ----

def _sklearn_impl(case, form, pred, target, n_threads):
    try:
        from sklearn._loss import loss as sk
    except ImportError:
        raise Unavailable("scikit-learn is not installed") from None
    nt = n_threads or _cpu_count()
    y = target.astype(pred.dtype)  # sklearn wants y_true in raw_prediction's float dtype
    if case.loss == "softmax_ce":
        obj = sk.HalfMultinomialLoss(n_classes=pred.shape[-1])
        raw, scale_l, scale_g = pred, 1.0, 1.0 / pred.shape[0]
        note = f"HalfMultinomialLoss, n_threads={nt}"
    elif case.loss == "sigmoid_ce":
        obj = sk.HalfBinomialLoss()
        raw, y, scale_l, scale_g = pred.reshape(-1), y.reshape(-1), 1.0, 1.0 / pred.size
        note = f"HalfBinomialLoss on the flattened array, n_threads={nt}"
    elif case.loss == "mse":
        obj = sk.HalfSquaredError()  # 0.5 * (y - p)**2: half the loss, half the gradient
        raw, y, scale_l, scale_g = pred.reshape(-1), y.reshape(-1), 2.0, 2.0 / pred.size
        note = f"HalfSquaredError, n_threads={nt}"
    else:
        raise Unavailable(f"scikit-learn has no {case.loss}")
    shape = pred.shape
    if form == "value":
        def fn():
            return obj.loss(y_true=y, raw_prediction=raw, n_threads=nt).mean()
        return Impl("sklearn", fn, lambda r: (float(r) * scale_l, None), note=note)

    def fn():
        loss, g = obj.loss_gradient(y_true=y, raw_prediction=raw, n_threads=nt)
        return loss.mean(), g

    return Impl("sklearn", fn,
                lambda r: (float(r[0]) * scale_l, (r[1] * scale_g).reshape(shape)), note=note)


# ---- JAX ----

def _import_jax(n_threads):
    if "jax" not in sys.modules and n_threads == 1:
        os.environ.setdefault(
            "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    try:
        jax = importlib.import_module("jax")
    except ImportError:
        raise Unavailable("jax is not installed") from None
    jax.config.update("jax_enable_x64", True)  # float64 cases; int64 labels
    return jax


def _jax_loss(case, jnp, jax):
    if case.loss == "softmax_ce":
        def f(x, y):
            xy = jnp.take_along_axis(x, y[:, None], axis=-1)[:, 0]
            return jnp.mean(jax.nn.logsumexp(x, axis=-1) - xy)
    elif case.loss == "sigmoid_ce":
        def f(x, t):  # softplus: a correct gradient at x == 0, unlike max(x, 0) + ...|x|
            return jnp.mean(jax.nn.softplus(x) - x * t)
    elif case.loss == "mse":
        def f(x, t):
            return jnp.mean((x - t) ** 2)
    else:
        def f(x, y):
            c = x.shape[-1]
            xy = jnp.take_along_axis(x, y[:, None], axis=-1)
            m = 1 - xy + x
            # strict: a zero margin counts 0 (torch's subgradient; jnp.maximum splits ties)
            m = jnp.where((m > 0) & (jnp.arange(c) != y[:, None]), m, 0)
            return jnp.mean(jnp.sum(m, axis=-1) / c)
    return f


def _jax_impl(case, form, pred, target, n_threads):
    jax = _import_jax(n_threads)
    jnp = jax.numpy
    f = _jax_loss(case, jnp, jax)
    x, t = jax.device_put(pred), jax.device_put(target)
    block = jax.block_until_ready
    if form == "value":
        jf = jax.jit(f)

        def fn():
            return block(jf(x, t))
        conv = _conv_value
    else:
        jf = jax.jit(jax.value_and_grad(f))

        def fn():
            return block(jf(x, t))
        conv = _conv_vg
    return Impl("jax", fn, conv, fresh_output=False, note="jit(value_and_grad), "
                "XLA's own thread pool")


def build_impl(name: str, case: Case, form: str, pred, target, n_threads=None) -> Impl:
    """Build one implementation for ``case``/``form`` on the given data.

    Raises :class:`Unavailable` when it cannot run here (missing package, unsupported case).
    """
    if name in (FASTLOSS, FASTLOSS_OUT, FASTLOSS_1T):
        return _fastloss_impl(name, case, form, pred, target, n_threads)
    if name == COPY:
        return _copy_impl(pred, n_threads)
    if LOSSES[case.loss].extended and name != "torch":
        raise Unavailable(f"{name} has no {case.loss} (an option beyond PyTorch); the baseline "
                          "is the torch composition")
    if name == "numpy":
        return _numpy_impl(case, form, pred, target)
    if name == "python":
        return _python_impl(case, form, pred, target)
    if name == "torch":
        return _torch_impl(case, form, pred, target, n_threads)
    if name == "sklearn":
        return _sklearn_impl(case, form, pred, target, n_threads)
    if name == "jax":
        return _jax_impl(case, form, pred, target, n_threads)
    raise ValueError(f"unknown implementation {name!r}")


def moved_bytes(pred, target, form) -> int:
    """Bytes the operation must read and write: pred and target, plus the gradient."""
    return pred.nbytes + target.nbytes + (pred.nbytes if form == "value_and_grad" else 0)


def compare(result, expected, dtype) -> str | None:
    """None if (loss, grad) ``result`` agrees with ``expected``, else a description."""
    loss, grad = result
    eloss, egrad = expected
    # loose: this catches a wrong function or loss; tests/ check accuracy
    rtol = 1e-3 if np.dtype(dtype) == np.float32 else 1e-9
    if not abs(loss - eloss) <= rtol * abs(eloss) + 1e-30:
        return f"loss {loss:.9g} != {eloss:.9g}"
    if egrad is not None and grad is not None:
        grad = np.asarray(grad)
        if grad.shape != egrad.shape:
            return f"gradient shape {grad.shape} != {egrad.shape}"
        scale = float(np.max(np.abs(egrad))) if egrad.size else 0.0
        err = float(np.max(np.abs(grad.astype(np.float64) - egrad))) if egrad.size else 0.0
        if not err <= rtol * scale + 1e-30:
            return f"gradient off by {err:.3g} (max |grad| {scale:.3g})"
    return None


# --------------------------------------------------------------------------------------------
# Timing and memory
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    min_time: float      # one measurement (number calls) lasts at least this long
    budget: float        # target seconds of timing rounds per case and form
    min_rounds: int
    max_rounds: int
    slow_limit: float    # skip numpy / python baselines estimated slower than this per call
    py_max_elements: int
    warm_below: float    # calls shorter than this get an untimed call before each measurement

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(0.002, 0.25, 3, 7, 0.4, 1 << 15, 0.01)
        return cls(0.02, 2.0, 5, 25, 4.0, 1 << 20, 0.1)


def _time_calls(fn, number: int) -> float:
    it = itertools.repeat(None, number)
    t0 = time.perf_counter()
    for _ in it:
        fn()
    return time.perf_counter() - t0


def _calibrate(fn, min_time: float) -> tuple[int, float]:
    """(number, seconds per call): calls per measurement so it lasts about min_time."""
    number = 1
    while True:
        t = _time_calls(fn, number)
        if t >= min_time / 4 or number >= 1 << 22:
            break
        number *= 10 if t < min_time / 100 else 2
    per_call = t / number
    return max(1, math.ceil(min_time / per_call)) if per_call < min_time else 1, per_call


def _estimate(name, case, form, pred, target, n_threads, max_elements) -> float:
    """Seconds per full call, extrapolated from one call on a slice of the rows."""
    rows = pred.shape[0] if pred.ndim else 1
    per_row = max(1, pred.size // max(rows, 1))
    sub = max(1, min(rows, max_elements // per_row))
    if sub >= rows:
        return 0.0
    impl = build_impl(name, case, form, pred[:sub], target[:sub], n_threads)
    t = _time_calls(impl.fn, 1)
    return t * rows / sub


class _Memory:
    """Peak extra resident memory of one call.

    Linux: reset the peak RSS (write 5 to /proc/self/clear_refs), give freed heap back to the
    OS (malloc_trim), call, read VmHWM - VmRSS-before. This sees every page the call touches,
    in C or Python, at page granularity; allocator reuse of memory already resident is not seen.
    Elsewhere: tracemalloc, which sees only allocations reported to it (NumPy's, Python's).
    """

    def __init__(self):
        self.method = "tracemalloc (Python/NumPy allocations only; C malloc not seen)"
        self._trim = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._status("VmHWM")
            self.method = ("peak RSS growth (VmHWM after /proc/self/clear_refs reset, "
                           "malloc_trim before)")
            self.rss = True
        except (OSError, ValueError, TypeError):
            self.rss = False
        try:
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            pass

    @staticmethod
    def _status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise ValueError(field)

    def measure(self, fn) -> tuple[int, int]:
        """(peak extra bytes during the call, bytes of the arrays it returned)."""
        gc.collect(1)  # a full collection costs ~0.1 s once torch and jax are loaded
        if self._trim is not None:
            self._trim(0)
        if self.rss:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            before = self._status("VmRSS")
            r = fn()
            peak = self._status("VmHWM") - before
        else:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            r = fn()
            peak = tracemalloc.get_traced_memory()[1] - before
            tracemalloc.stop()
        out = _result_nbytes(r)
        del r
        return peak, out


def _result_nbytes(r) -> int:
    if isinstance(r, (tuple, list)):
        return sum(_result_nbytes(v) for v in r)
    if isinstance(r, np.ndarray):
        return r.nbytes
    if hasattr(r, "element_size") and hasattr(r, "numel"):  # torch tensor
        return r.element_size() * r.numel()
    return 0


class _OtherLoad:
    """Share of the machine's CPU time used by other processes (and the hypervisor's steal)
    between two snapshots: /proc/stat busy time minus this process's own CPU time. A busy
    machine makes multi-threaded timings unreliable (a thread waits for a core)."""

    def __init__(self):
        self.ok = os.path.exists("/proc/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if self.ok else 100

    def snapshot(self):
        if not self.ok:
            return None
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = v[0] + v[1] + v[2] + sum(v[5:8])   # user nice system irq softirq steal
        total = busy + v[3] + v[4]                 # + idle iowait
        own = sum(os.times()[:2])
        return busy / self._tick, total / self._tick, own

    @staticmethod
    def share(a, b) -> float | None:
        if a is None or b is None or b[1] <= a[1]:
            return None
        return min(1.0, max(0.0, ((b[0] - a[0]) - (b[2] - a[2])) / (b[1] - a[1])))


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.total = total
        self.i = 0
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, file=sys.stderr, unit="case", leave=False,
                                dynamic_ncols=True)

    def step(self, label: str):
        self.i += 1
        self.label = label
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(label)
        else:
            print(f"[{self.i:>{len(str(self.total))}}/{self.total}] {label}", file=sys.stderr,
                  flush=True)

    def detail(self, text: str):
        if self.enabled and self.bar is not None:
            self.bar.set_postfix_str(text)

    def done_step(self):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import fastloss
        out["fastloss"] = getattr(fastloss, "__version__", None) or metadata.version("fastloss")
    except Exception:  # noqa: BLE001 - a version lookup must never stop the bench
        out["fastloss"] = "unknown"
    for dist, key in (("torch", "torch"), ("scikit-learn", "sklearn"), ("jax", "jax"),
                      ("jaxlib", "jaxlib")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fastloss_config():
    """fastloss.show_config(mode="dicts") if it exists, else its printed text, else None."""
    try:
        import fastloss
        show = fastloss.show_config
    except (ImportError, AttributeError):
        return None
    try:
        info = show(mode="dicts")
        if isinstance(info, dict):
            return _jsonable(info)
    except Exception:  # noqa: BLE001 - fall back to the printed form
        pass
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            show()
    except Exception as e:  # noqa: BLE001
        return f"show_config() failed: {e!r}"
    return buf.getvalue().strip() or None


def _config_line(cfg) -> str | None:
    """One line from show_config's dict: SIMD path and OpenMP."""
    if not isinstance(cfg, dict):
        return None
    parts = []
    simd = cfg.get("simd")
    if isinstance(simd, dict) and simd.get("in_use"):
        built = simd.get("built")
        parts.append(f"SIMD path {simd['in_use']}"
                     + (f" (built: {', '.join(map(str, built))})" if built else "")
                     + (f", FASTLOSS_SIMD={simd['FASTLOSS_SIMD']}"
                        if simd.get("FASTLOSS_SIMD") else ""))
    omp = cfg.get("openmp")
    if isinstance(omp, dict):
        parts.append(f"OpenMP {'on' if omp.get('enabled') else 'OFF'}"
                     + (f", {omp['threads']} default threads" if omp.get("threads") else ""))
    return "; ".join(parts) or None


def _check_fastloss():
    try:
        import fastloss
        fastloss.softmax_cross_entropy  # noqa: B018 - fails if the extension is not built
    except (ImportError, AttributeError) as e:
        raise RuntimeError(
            f"fastloss cannot be imported ({e}). Build it first: "
            "`pip install .` or `python setup.py build_ext --inplace`.") from e


def run(cases=None, *, quick: bool = False, n_threads: int | None = None,
        baselines=None, seed: int = 0, progress: bool = True) -> dict:
    """Run the benchmark and return its results (the dict that ``--json`` writes).

    Parameters
    ----------
    cases : str, list of str or Case, or None
        Comma-separated name patterns (fnmatch or substring) or Case objects; None for all.
    quick : bool
        Smaller sizes and fewer rounds (every case still runs): under a minute on 2 cores.
    n_threads : int or None
        Threads for fastloss, torch, sklearn and the copy. None: fastloss's own default
        (``n_threads=None``), and the CPU count for the others.
    baselines : iterable of str or None
        Subset of ``BASELINES`` to run; None for all that are installed.
    seed : int
        Seed of the generated data.
    progress : bool
        Show progress on stderr.
    """
    _check_fastloss()
    selected = select_cases(cases)
    if not selected:
        raise ValueError(f"no case matches {cases!r}; cases: {', '.join(c.name for c in CASES)}")
    baselines = tuple(BASELINES if baselines is None else baselines)
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from {BASELINES}")
    settings = Settings.for_mode(quick)
    size = "quick" if quick else "full"
    mem = _Memory()
    threads_used = n_threads or _cpu_count()

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "cpu": _cpu_name(),
        "cpu_count": _cpu_count(),
        "n_threads": n_threads,
        "threads_used": threads_used,
        "platform": platform.platform(),
        "versions": _versions(),
        "show_config": _fastloss_config(),
        "memory_method": mem.method,
        "settings": dataclasses.asdict(settings),
        "seed": seed,
    }
    results = []
    steps = sum(len(c.forms) for c in selected)
    prog = _Progress(steps, progress)
    load = _OtherLoad()
    snap = load.snapshot()
    t0 = time.perf_counter()
    try:
        for case in selected:
            pred, target = make_data(case, size, seed)
            for form in case.forms:
                label = f"{case.name} {FORM_SHORT[form]} {'x'.join(map(str, pred.shape))}"
                prog.step(label)
                t1 = time.perf_counter()
                row = _run_one(case, form, pred, target, n_threads, baselines, settings, mem,
                               prog)
                row["wall_s"] = time.perf_counter() - t1
                results.append(row)
                prog.done_step()
            del pred, target
            gc.collect()
    finally:
        prog.close()
    meta["wall_s"] = time.perf_counter() - t0
    meta["other_load"] = load.share(snap, load.snapshot())
    return {"meta": meta, "results": results}


def _run_one(case, form, pred, target, n_threads, baselines, settings, mem, prog):
    names = [n for n in impl_names(case, form, n_threads)
             if n not in BASELINES or n in baselines]
    row = {
        "case": case.name, "loss": case.loss, "group": case.group, "series": case.series,
        "form": form, "shape": list(pred.shape), "dtype": str(pred.dtype),
        "elements": int(pred.size), "bytes": moved_bytes(pred, target, form),
        "copy_bytes": 2 * pred.nbytes, "impls": {},
    }
    impls = []
    expected = None
    for name in names:
        info = row["impls"].setdefault(name, {})
        prog.detail(f"setting up {name}")
        try:
            if name == "python" and pred.size > settings.py_max_elements:
                raise Unavailable(f"plain Python runs only up to {settings.py_max_elements} "
                                  "elements")
            if name in ("numpy", "python"):
                est = _estimate(name, case, form, pred, target, n_threads,
                                1 << 12 if name == "python" else 1 << 18)
                if est > settings.slow_limit:
                    raise Unavailable(f"skipped: one call estimated at {est:.1f} s")
            impl = build_impl(name, case, form, pred, target, n_threads)
            result = impl.fn()                         # warm-up (and JIT compile)
            if impl.convert is not None:
                converted = impl.convert(result)
                if name == FASTLOSS:
                    expected = (converted[0], None if converted[1] is None
                                else np.array(converted[1], dtype=np.float64))
                elif expected is not None:
                    info["check"] = compare(converted, expected, pred.dtype) or "ok"
            elif name == COPY:
                same = np.array_equal(impl.dst, pred)
                info["check"] = "ok" if same else "the copy differs from its source"
            del result
        except Unavailable as e:
            info["skipped"] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - one failing implementation must not stop all
            info["error"] = f"{type(e).__name__}: {e}"
            if name == FASTLOSS:
                break
            continue
        if impl.note:
            info["note"] = impl.note
        impls.append(impl)
    del expected
    gc.collect(1)

    if not impls or impls[0].name != FASTLOSS:
        return row

    # calibrate: calls per measurement, and the rounds that fit the budget
    numbers, per_call = {}, {}
    for impl in impls:
        prog.detail(f"calibrating {impl.name}")
        numbers[impl.name], per_call[impl.name] = _calibrate(impl.fn, settings.min_time)
    # One untimed call before each measurement of a short call: it absorbs the switch from
    # the previous implementation (another OpenMP runtime's threads still spinning, caches).
    warm = {name: t < settings.warm_below for name, t in per_call.items()}
    round_time = sum(per_call[n] * (numbers[n] + warm[n]) for n in per_call)
    rounds = max(settings.min_rounds,
                 min(settings.max_rounds, int(settings.budget / max(round_time, 1e-9))))

    times = {impl.name: [] for impl in impls}
    load = _OtherLoad()
    snap = load.snapshot()
    gcold = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            prog.detail(f"round {r + 1}/{rounds}")
            k = r % len(impls)
            for impl in impls[k:] + impls[:k]:
                n = numbers[impl.name]
                if warm[impl.name]:
                    impl.fn()
                times[impl.name].append(_time_calls(impl.fn, n) / n)
    finally:
        if gcold:
            gc.enable()
    row["other_load"] = load.share(snap, load.snapshot())
    row["rounds"] = rounds

    for impl in impls:
        info = row["impls"][impl.name]
        info["number"] = numbers[impl.name]
        info["times_s"] = times[impl.name]
        info["best_s"] = min(times[impl.name])
        nbytes = row["copy_bytes"] if impl.name == COPY else row["bytes"]
        info["gbps"] = nbytes / info["best_s"] / 1e9
    prog.detail("memory")
    for impl in impls:
        if impl.name in (FASTLOSS, FASTLOSS_OUT, "torch"):
            peak, out = mem.measure(impl.fn)
            out = out if impl.fresh_output else 0
            row["impls"][impl.name].update(peak_extra_bytes=peak, output_bytes=out)
    _derive(row, case, form)
    del impls
    return row


def _best(row, name):
    return row["impls"].get(name, {}).get("best_s")


def _derive(row, case, form):
    fl = _best(row, FASTLOSS)
    row["fastloss_s"] = fl
    row["ratios"] = {b: _best(row, b) / fl for b in BASELINES if _best(row, b)}
    cp = _best(row, COPY)
    row["x_copy"] = fl / cp if cp else None
    out = _best(row, FASTLOSS_OUT)
    row["x_copy_out"] = out / cp if (cp and out) else None
    one = _best(row, FASTLOSS_1T)
    row["scaling"] = one / fl if one else None
    targets = []
    for t in case.targets:
        if t.form != form:
            continue
        if t.kind == "vs_torch":
            value = row["ratios"].get("torch")
            met = None if value is None else value >= t.bound
        elif t.kind == "copy":
            value = row["x_copy_out"] if row["x_copy_out"] is not None else row["x_copy"]
            met = None if value is None else value <= t.bound
        elif t.kind == "us_per_call":
            value = fl * 1e6
            met = value <= t.bound
        else:
            value = row["scaling"]
            met = None if value is None else value >= t.bound
        targets.append({"kind": t.kind, "bound": t.bound, "target": t.describe(),
                        "value": value, "met": met})
    row["targets"] = targets


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def _fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_x(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}x"


def _ratio_cell(row, name):
    info = row["impls"].get(name)
    if info is None:
        return "-"
    if "error" in info:
        return "ERR"
    if "skipped" in info:
        return "skip" if info["skipped"].startswith("skipped") else "-"
    r = row["ratios"].get(name)
    cell = "-" if r is None else (f"{r:.0f}x" if r >= 100 else f"{r:.1f}x")
    if info.get("check", "ok") != "ok":
        cell += "!"
    return cell


def _target_cell(row):
    ts = row.get("targets") or []
    if not ts:
        return ""
    met = [t["met"] for t in ts]
    if any(m is False for m in met):
        missed = [t["kind"] for t in ts if t["met"] is False]
        return "NOT MET (" + ", ".join(missed) + ")"
    if any(m is None for m in met):
        return "n/a (" + ", ".join(t["kind"] for t in ts if t["met"] is None) + ")"
    return "met"


def _mib(v):
    return "-" if v is None else f"{max(v, 0) / _M:.1f}"  # < 0: pages reused, not new


def format_table(res: dict) -> str:
    """The results as the text table ``main`` prints."""
    meta, rows = res["meta"], res["results"]
    v = meta["versions"]
    lines = []
    ver = ", ".join(f"{k} {v[k]}" for k in ("fastloss", "numpy", "torch", "sklearn", "jax")
                    if v.get(k)) or "-"
    missing = [k for k in ("torch", "sklearn", "jax") if not v.get(k)]
    lines.append(f"fastloss bench{' --quick' if meta['quick'] else ''}   {meta['date']}")
    lines.append(f"versions: {ver}, python {v['python']}"
                 + (f"   (not installed: {', '.join(missing)})" if missing else ""))
    lines.append(f"cpu: {meta['cpu']}, {meta['cpu_count']} usable cores; threads: "
                 + (f"n_threads={meta['n_threads']} for fastloss, torch, sklearn and the copy"
                    if meta["n_threads"] else
                    f"fastloss default (n_threads=None), {meta['threads_used']} for torch, "
                    "sklearn and the copy"))
    cfg = _config_line(meta.get("show_config"))
    if cfg:
        lines.append(f"fastloss: {cfg}")
    notes = {}
    for row in rows:
        for name, info in row["impls"].items():
            if info.get("note") and name in (COPY, "torch", "sklearn", "jax"):
                notes.setdefault(name, info["note"].split(", n_threads")[0]
                                 if name == "sklearn" else info["note"])
    if COPY in notes:
        lines.append(f"copy baseline: {notes[COPY]}")
    if meta.get("other_load") is not None:
        lines.append(f"other processes used {meta['other_load']:.0%} of the CPU time during the "
                     f"{meta['wall_s']:.1f} s run"
                     + ("  <-- BUSY MACHINE: multi-threaded timings are unreliable"
                        if meta["other_load"] > BUSY else ""))
    lines.append("")

    one = rows and any(r.get("scaling") for r in rows)
    header = ["case", "shape", "dtype", "form", "fastloss", "GB/s", "x copy", "out= x copy"]
    if one:
        header.append("1->n thr")
    header += list(BASELINES) + ["+MiB", "issue-3 target"]
    table = [header]
    for row in rows:
        fl = row.get("fastloss_s")
        info = row["impls"].get(FASTLOSS, {})
        cells = [row["case"], "x".join(map(str, row["shape"])),
                 row["dtype"].replace("float", "f"), FORM_SHORT[row["form"]]]
        if fl is None:
            why = info.get("error") or info.get("skipped") or "not timed"
            cells += [f"FAILED: {why}"]
            table.append(cells)
            continue
        gbps = info.get("gbps")
        cells += [_fmt_time(fl), f"{gbps:.1f}" if gbps else "-", _fmt_x(row["x_copy"], 2),
                  _fmt_x(row["x_copy_out"], 2)]
        if one:
            cells.append(_fmt_x(row["scaling"], 2))
        cells += [_ratio_cell(row, b) for b in BASELINES]
        pk = info.get("peak_extra_bytes")
        cells.append(_mib(None if pk is None else pk - info.get("output_bytes", 0)))
        cells.append(_target_cell(row))
        table.append(cells)
    widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(len(header))]
    for k, r in enumerate(table):
        if len(r) == 5 and r[4].startswith("FAILED"):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        else:
            lines.append("  ".join(c.rjust(w) if 4 <= i < len(r) - 1 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("-" * len(lines[-1]))

    trows = [(row, t) for row in rows for t in row.get("targets", [])]
    if trows:
        lines.append("")
        lines.append("issue-3 targets" + (" (at --quick sizes: indicative only)"
                                          if meta["quick"] else ""))
        for row, t in trows:
            val = t["value"]
            if val is None:
                shown, mark = "-", "n/a"
            else:
                shown = f"{val:.2f} us" if t["kind"] == "us_per_call" else f"{val:.2f}x"
                mark = "met" if t["met"] else "NOT MET"
            extra = ""
            if t["kind"] == "copy" and row.get("x_copy") is not None:
                extra = f"   (default call, fresh gradient: {row['x_copy']:.2f}x)"
            lines.append(f"  {mark:<8} {row['case']:<26} {t['target']:<32} {shown:>9}{extra}")
        met = sum(t["met"] is True for _, t in trows)
        lines.append(f"  {met}/{len(trows)} met")

    problems = []
    loads = [r["other_load"] for r in rows if (r.get("other_load") or 0) > BUSY]
    busy = [f"{r['case']} {FORM_SHORT[r['form']]} ({r['other_load']:.0%})" for r in rows
            if (r.get("other_load") or 0) > BUSY]
    if busy and len(busy) == len(rows):
        problems.append(f"  every case was timed while other processes used {min(loads):.0%} to "
                        f"{max(loads):.0%} of the CPU: rerun on a quiet machine")
    elif busy:
        problems.extend(textwrap.wrap(
            f"timed while other processes used more than {BUSY:.0%} of the CPU (their share in "
            "brackets; rerun on a quiet machine): " + ", ".join(busy), width=100,
            initial_indent="  ", subsequent_indent="    "))
    for row in rows:
        for name, info in row["impls"].items():
            if info.get("check", "ok") != "ok":
                problems.append(f"  {row['case']} {FORM_SHORT[row['form']]}: {name} disagrees "
                                f"with fastloss: {info['check']}")
            if "error" in info:
                problems.append(f"  {row['case']} {FORM_SHORT[row['form']]}: {name} failed: "
                                f"{info['error']}")
    if problems:
        lines.append("")
        lines.append("PROBLEMS:")
        lines.extend(problems)

    lines.append("")
    lines += [
        "How to read:",
        "  fastloss     best time of one default call (it allocates the gradient); all columns "
        "come from one",
        "               process, implementations interleaved round-robin, best of several rounds",
        "  GB/s         bytes the op reads and writes (logits + targets, + gradient for v+g) / "
        "time",
        "  x copy       fastloss time / time to copy the logits into a preallocated array "
        "(1.0 = memory-copy",
        "               speed; v+g moves the same bytes as the copy, value-only about half)",
        "  out= x copy  the same with out= given (no fresh gradient: like the copy, no page "
        "faults)",
    ]
    if one:
        lines.append("  1->n thr     fastloss time with n_threads=1 / time with the default "
                     "threads")
    lines += [
        "  numpy..jax   baseline time / fastloss time: > 1 means fastloss is faster. '!' its "
        "result disagrees",
        "               with fastloss (see PROBLEMS); skip: estimated too slow; -: not "
        "installed / not applicable",
        "               numpy = fastloss.reference (one thread); python = plain-Python loops "
        "(small sizes);",
        "               torch = forward (+ autograd.grad), set_num_threads; sklearn = "
        "sklearn._loss Half* losses;",
        "               jax = jit(value_and_grad) (compile excluded, XLA's own threads)",
        "  +MiB         peak extra memory of the default fastloss call minus its returned "
        "gradient, measured",
        f"               as {meta['memory_method']}",
    ]
    return "\n".join(lines)


def write_plot(res: dict, path: str) -> None:
    """Throughput (GB/s) against bytes moved, one panel per series, one line per impl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res["results"] if r.get("series") and r["form"] == "value_and_grad"
            and r.get("fastloss_s")]
    series = sorted({r["series"] for r in rows})
    if not series:
        rows = [r for r in res["results"] if r.get("fastloss_s")]
        series = ["all cases"]
    fig, axes = plt.subplots(1, len(series), figsize=(6.5 * len(series), 4.8), squeeze=False)
    names = [FASTLOSS, FASTLOSS_OUT, COPY, *BASELINES]
    styles = {FASTLOSS: "o-", FASTLOSS_OUT: "o--", COPY: "k:", "numpy": "s-", "python": "x-",
              "torch": "^-", "sklearn": "v-", "jax": "d-"}
    for ax, s in zip(axes[0], series):
        pts = sorted((r for r in rows if s == "all cases" or r["series"] == s),
                     key=lambda r: r["bytes"])
        for name in names:
            xs, ys = [], []
            for r in pts:
                g = r["impls"].get(name, {}).get("gbps")
                if g:
                    xs.append(r["bytes"])
                    ys.append(g)
            if xs:
                ax.plot(xs, ys, styles.get(name, "o-"), label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bytes read + written per call")
        ax.set_ylabel("GB/s")
        ax.set_title(f"{s}, value and gradient")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = res["meta"]
    busy = m.get("other_load")
    fig.suptitle(f"fastloss bench{' --quick' if m['quick'] else ''}: {m['cpu']}, "
                 f"{m['threads_used']} threads"
                 + (f" (BUSY machine: other processes used {busy:.0%} of the CPU)"
                    if busy is not None and busy > BUSY else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastloss bench",
        description="Time fastloss against NumPy, plain Python, PyTorch, scikit-learn and JAX "
                    "(whichever are installed) and a memory copy, in one process.")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer rounds (every case; under a minute)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="write a throughput-vs-size plot "
                   "(needs matplotlib)")
    p.add_argument("--cases", metavar="PATTERN", help="comma-separated name patterns "
                   "(fnmatch or substring), e.g. 'softmax*,mse'")
    p.add_argument("--threads", type=int, metavar="N", help="n_threads for fastloss, torch, "
                   "sklearn and the copy (default: fastloss's default; all cores for others)")
    p.add_argument("--baselines", metavar="LIST", help=f"comma-separated subset of "
                   f"{','.join(BASELINES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return p


def main(argv=None) -> int:
    """``python -m fastloss bench [options]``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.list:
        for c in select_cases(args.cases):
            tg = "; ".join(t.describe() for t in c.targets)
            print(f"{c.name:<28} {c.loss:<11} {'x'.join(map(str, c.shape)):>12} "
                  f"(quick {'x'.join(map(str, c.quick_shape))}) {c.dtype}"
                  + (f"  target: {tg}" if tg else ""))
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib, which is not installed: `pip install matplotlib` "
                  "(or drop --plot).", file=sys.stderr)
            return 2
    if args.threads is not None and args.threads < 1:
        print("--threads must be >= 1", file=sys.stderr)
        return 2
    baselines = None
    if args.baselines is not None:
        baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    try:
        res = run(args.cases, quick=args.quick, n_threads=args.threads, baselines=baselines,
                  seed=args.seed, progress=not args.no_progress)
    except (RuntimeError, ValueError) as e:
        print(f"fastloss bench: {e}", file=sys.stderr)
        return 2
    try:
        print(format_table(res), flush=True)
    except BrokenPipeError:  # e.g. `| head`: not an error of the benchmark
        sys.stdout = open(os.devnull, "w")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_jsonable(res), f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        write_plot(res, args.plot)
        print(f"wrote {args.plot}")
    failed = any(row.get("fastloss_s") is None for row in res["results"])
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
