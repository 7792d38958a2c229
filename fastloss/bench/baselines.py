"""What the bench times: fastloss, the machine's limits and the baselines.

Every implementation is an :class:`Impl`: a call without arguments on data prepared outside it,
and a way to read its result as (mean loss, gradient of the mean or None) in fastloss's
convention, so that the harness can check each baseline against fastloss on the same data.

fastloss
    ``fastloss`` (the default call: a fresh gradient), ``fastloss[out=]`` (the gradient written
    into a preallocated array) and ``fastloss[1 thread]`` (``n_threads=1``, with ``out=`` for
    the gradient forms).  Half-precision cases also time ``fastloss.torch``, the PyTorch
    drop-in on the same half tensor (forward + ``torch.autograd.grad``), beside ``torch``.
limits (the machine, measured in the same process)
    ``memcpy``: ``fastloss._core.parallel_copy`` of the predictions into a preallocated array,
    split over the threads: the bytes a gradient pass must read and write at least.
    ``read pass``: ``fastloss._core.parallel_read`` of the predictions (a read-only pass over
    the same bytes, split over the threads): the floor of a value-only call.
    ``numpy call``: ``np.exp`` on the same array: what one NumPy ufunc call costs (the tiny case).
baselines
    ``torch``: PyTorch CPU, forward + ``torch.autograd.grad`` (value and gradient) or the
    forward under ``torch.no_grad()`` (value), ``torch.set_num_threads`` set to the same
    threads; for options beyond PyTorch's functions, the same loss written with torch
    operations. ``jax``: ``jax.jit(jax.value_and_grad(loss))`` (or ``jax.jit(loss)``), compile
    time excluded. ``sklearn``: scikit-learn's ``sklearn._loss`` losses
    (``HalfMultinomialLoss``, ``HalfBinomialLoss``, ``HalfSquaredError``). ``numpy``:
    ``fastloss.reference``, the readable NumPy twins (one thread). ``python``: plain-Python
    loops over lists, small sizes only.
metrics cases (:mod:`.metric_impls`)
    ``fastloss`` is ``Evaluator(metrics="all")``, ``evaluator loss only`` the loss-only
    Evaluator (the row's yardstick, a limit), ``sklearn`` and ``torchmetrics`` the same
    metrics from the same logits.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import os
import sys
from typing import Any, Callable

import numpy as np

from .cases import HALF_DTYPES, Case, Unavailable, loss_function
from .metric_impls import EVAL_LOSS, METRIC_BASELINES, build_metric_impl

__all__ = ["FASTLOSS", "FASTLOSS_OUT", "FASTLOSS_1T", "FASTLOSS_TORCH", "MEMCPY", "READ",
           "NPCALL", "EVAL_LOSS", "LIMITS", "BASELINES", "Impl", "impl_names", "build_impl", "moved_bytes",
           "compare", "cpu_count"]

FASTLOSS = "fastloss"
FASTLOSS_OUT = "fastloss[out=]"
FASTLOSS_1T = "fastloss[1 thread]"
FASTLOSS_TORCH = "fastloss.torch"
MEMCPY = "memcpy"
READ = "read pass"
NPCALL = "numpy call"
LIMITS = (MEMCPY, READ, NPCALL, EVAL_LOSS)
BASELINES = ("torch", "jax", "sklearn", "numpy", "python", "torchmetrics")


@dataclasses.dataclass
class Impl:
    """A timed call. ``fn()`` takes no argument. For a loss, ``convert(fn())`` gives (loss, grad
    or None) in fastloss's convention; for a limit ``convert`` is None and ``verify(fn())``
    returns None when the call did its work, else what went wrong."""

    name: str
    fn: Callable[[], Any]
    convert: Callable[[Any], Any] | None
    fresh_output: bool = True     # result holds newly allocated arrays (for the memory figure)
    note: str = ""
    verify: Callable[[Any], str | None] | None = None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def impl_names(case: Case, form: str, n_threads: int | None = None) -> list[str]:
    """The implementations timed for ``case`` and ``form``: fastloss first (the headline call:
    ``out=`` for gradient forms), then the limit, then the baselines."""
    if case.metrics:       # Evaluator(metrics="all"), its loss-only yardstick, the baselines
        return [FASTLOSS, EVAL_LOSS, *METRIC_BASELINES]
    names = [FASTLOSS]
    if form != "value":
        names = [FASTLOSS_OUT] + ([FASTLOSS] if case.default_call else [])
    if case.scaling and (n_threads or cpu_count()) > 1:
        names.append(FASTLOSS_1T)
    if case.tiny:
        names.append(NPCALL)
    else:
        names.append(READ if form == "value" else MEMCPY)
    names.extend(b for b in BASELINES if b != "torchmetrics")     # metrics cases only
    if case.dtype in HALF_DTYPES and form == "value_and_grad":
        names.append(FASTLOSS_TORCH)
    return names


def moved_bytes(pred, target, form) -> int:
    """Bytes the operation must read and write: pred and target, plus the gradient."""
    return pred.nbytes + target.nbytes + (pred.nbytes if form != "value" else 0)


def compare(result, expected, dtype) -> str | None:
    """None if (loss, grad) ``result`` agrees with ``expected``, else a description."""
    loss, grad = result
    eloss, egrad = expected
    # loose: this catches a wrong function or loss; tests/ check accuracy.  Half precision:
    # a baseline may compute in the half dtype itself (torch rounds its bfloat16 loss).
    rtol = {"float64": 1e-9, "float32": 1e-3, "float16": 5e-3}.get(np.dtype(dtype).name, 2e-2)
    if not abs(loss - eloss) <= rtol * abs(eloss) + 1e-30:
        return f"loss {loss:.9g} != {eloss:.9g}"
    if egrad is not None and grad is not None:
        grad = np.asarray(grad)
        if grad.shape != egrad.shape:
            return f"gradient shape {grad.shape} != {egrad.shape}"
        scale = float(np.max(np.abs(egrad))) if egrad.size else 0.0
        err = float(np.max(np.abs(grad.astype(np.float64) - egrad))) if egrad.size else 0.0
        # a half gradient is rounded once to its dtype: where it is subnormal (a mean over
        # millions of elements in float16) the rounding step is absolute, not relative
        tiny = float(np.finfo(np.float16).smallest_subnormal) if np.dtype(dtype).name == \
            "float16" else 0.0
        if not err <= rtol * scale + tiny + 1e-30:
            return f"gradient off by {err:.3g} (max |grad| {scale:.3g})"
    return None


def _conv_value(r):
    return float(r), None


def _conv_vg(r):
    return float(r[0]), np.asarray(r[1])


def _rows(case: Case, a: np.ndarray) -> np.ndarray:
    """The class rows of ``a`` (class axis last, 2-D), a view when the class axis is last."""
    return np.moveaxis(a, case.axis, -1).reshape(-1, a.shape[case.axis])


def _unrows(case: Case, g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    moved = np.moveaxis(np.empty(shape, dtype=bool), case.axis, -1).shape
    return np.moveaxis(np.asarray(g).reshape(moved), -1, case.axis)


# ---- fastloss and the limits ----

def _fastloss_impl(name, case, form, pred, target, n_threads):
    f = loss_function(case.loss, form)
    kw = case.kwargs
    if name == FASTLOSS_1T:
        kw["n_threads"] = 1
    elif n_threads is not None:
        kw["n_threads"] = n_threads
    conv = _conv_value if form == "value" else _conv_vg
    if name == FASTLOSS_OUT or (name == FASTLOSS_1T and form != "value"):
        out = np.empty_like(pred)
        out[...] = 0  # touch the pages: out= means reused memory
        return Impl(name, functools.partial(f, pred, target, out=out, **kw), conv,
                    fresh_output=False)
    return Impl(name, functools.partial(f, pred, target, **kw), conv)


def _limit_impl(name, pred, n_threads):
    nt = n_threads or cpu_count()
    if name == NPCALL:
        expected = np.exp(pred)

        def same_exp(r):
            return None if np.array_equal(r, expected) else "np.exp gave another result"
        return Impl(NPCALL, functools.partial(np.exp, pred), None, note="np.exp(pred)",
                    verify=same_exp)
    from fastloss import _core

    if name == READ:
        read = getattr(_core, "parallel_read", None)
        if read is None:
            raise Unavailable("this build of fastloss has no _core.parallel_read")
        checksum = read(pred, 1)

        def same_checksum(r):
            return None if r == checksum else "the read pass gave another checksum"
        return Impl(READ, functools.partial(read, pred, nt), None, fresh_output=False,
                    note=f"fastloss._core.parallel_read, {nt} threads", verify=same_checksum)
    dst = np.empty_like(pred)
    dst[...] = 0   # touch the pages: the copy writes into memory already mapped

    def verify(r):
        return None if np.array_equal(dst, pred) else "the copy differs from its source"
    copy = getattr(_core, "parallel_copy", None)
    if copy is None:
        return Impl(MEMCPY, functools.partial(np.copyto, dst, pred), None, fresh_output=False,
                    note="np.copyto (fastloss._core.parallel_copy missing: 1 thread)",
                    verify=verify)
    return Impl(MEMCPY, functools.partial(copy, pred, dst, n_threads=nt), None,
                fresh_output=False, note=f"fastloss._core.parallel_copy, {nt} threads",
                verify=verify)


# ---- NumPy reference ----

def _numpy_impl(case, form, pred, target):
    from fastloss import reference

    fname = case.loss if form == "value" else f"{case.loss}_{form}"
    f = getattr(reference, fname, None)
    if f is None:
        raise Unavailable(f"fastloss.reference has no {fname}")
    params = inspect.signature(f).parameters
    missing = [k for k in case.kwargs if k not in params]
    if missing:
        raise Unavailable(f"fastloss.reference.{fname} has no {', '.join(missing)}")
    conv = _conv_value if form == "value" else _conv_vg
    return Impl("numpy", functools.partial(f, pred, target, **case.kwargs), conv,
                note="fastloss.reference")


# ---- plain Python loops (the "no library at all" baseline) ----

def _py_softmax_ce(x, y, want_grad):
    n = len(x)
    total = 0.0
    grad: list | None = [] if want_grad else None
    exp, log = math.exp, math.log
    for row, t in zip(x, y):
        m = max(row)
        e = [exp(v - m) for v in row]
        s = sum(e)
        total += log(s) + m - row[t]
        if grad is not None:
            inv = 1.0 / (s * n)
            g = [v * inv for v in e]
            g[t] -= 1.0 / n
            grad.append(g)
    return total / n, grad


def _py_sigmoid_ce(x, t, want_grad):
    n = len(x)
    total = 0.0
    grad: list | None = [] if want_grad else None
    exp, log1p = math.exp, math.log1p
    for xi, ti in zip(x, t):
        total += max(xi, 0.0) - xi * ti + log1p(exp(-abs(xi)))
        if grad is not None:
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
    grad: list | None = [] if want_grad else None
    for xi, ti in zip(x, t):
        d = xi - ti
        total += d * d
        if grad is not None:
            grad.append(2.0 * d / n)
    return total / n, grad


def _py_hinge_ww(x, y, want_grad, margin=1.0):
    # torch.nn.functional.multi_margin_loss: sum_{c != y} max(0, margin - x_y + x_c) / C
    n = len(x)
    total = 0.0
    grad: list | None = [] if want_grad else None
    for row, t in zip(x, y):
        c = len(row)
        xy = row[t]
        g = [0.0] * c if grad is not None else None
        for j, v in enumerate(row):
            if j != t:
                m = margin - xy + v
                if m > 0:
                    total += m / c
                    if g is not None:
                        g[j] += 1.0 / (c * n)
                        g[t] -= 1.0 / (c * n)
        if grad is not None:
            grad.append(g)
    return total / n, grad


def _python_impl(case, form, pred, target):
    if case.formula:
        raise Unavailable("no plain-Python loop for options beyond PyTorch")
    if case.loss == "softmax_cross_entropy" and not case.options:
        loop, rowwise = _py_softmax_ce, True
    elif case.loss == "hinge" and dict(case.options) == {"multiclass": "weston_watkins"}:
        loop, rowwise = _py_hinge_ww, True
    elif case.loss == "sigmoid_cross_entropy" and not case.options:
        loop, rowwise = _py_sigmoid_ce, False
    elif case.loss == "mse" and not case.options:
        loop, rowwise = _py_mse, False
    else:
        raise Unavailable(f"no plain-Python loop for {case.name}")
    if rowwise:
        xs, ts = _rows(case, pred).tolist(), target.reshape(-1).tolist()
    else:
        xs, ts = pred.ravel().tolist(), target.ravel().tolist()
    want_grad = form != "value"
    shape, dtype = pred.shape, pred.dtype

    def conv(r):
        loss, grad = r
        if not want_grad:
            return float(loss), None
        g = np.asarray(grad, dtype=dtype)
        return float(loss), _unrows(case, g, shape) if rowwise else g.reshape(shape)

    return Impl("python", functools.partial(loop, xs, ts, want_grad), conv,
                note="lists + math.exp loops")


# ---- PyTorch ----

def _import_torch(n_threads):
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise Unavailable("torch is not installed") from None
    torch.set_num_threads(n_threads or cpu_count())
    return torch


def _torch_capz(torch, F, z, t, cap=30.0, z_loss=1e-4):
    """Soft-capped logits + cross-entropy + z-loss, as written with torch ops."""
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


def _torch_forward(case, torch, t):
    F = torch.nn.functional
    kw = dict(case.options)
    if case.loss == "softmax_cross_entropy":
        if case.formula:
            if set(kw) != {"softcap", "z_loss"}:
                raise Unavailable(f"no torch formula for {sorted(kw)}")
            return lambda z: _torch_capz(torch, F, z, t, kw["softcap"], kw["z_loss"])
        if kw:
            raise Unavailable(f"no torch equivalent of {sorted(kw)} here")
        if t.ndim > 1 and case.axis == -1:   # channels-last: the rows, as a user writes it
            tt = t.reshape(-1)
            return lambda z: F.cross_entropy(z.reshape(-1, z.shape[-1]), tt)
        return lambda z: F.cross_entropy(z, t)     # NCHW: torch's class axis is 1
    if case.loss == "sigmoid_cross_entropy":
        if case.formula:
            if set(kw) != {"focal_gamma", "focal_alpha"}:
                raise Unavailable(f"no torch formula for {sorted(kw)}")
            return lambda z: _torch_focal(torch, F, z, t, kw["focal_alpha"], kw["focal_gamma"])
        return lambda z: F.binary_cross_entropy_with_logits(z, t)
    if case.loss == "mse" and not kw:
        return lambda z: F.mse_loss(z, t)
    if case.loss == "hinge" and kw == {"multiclass": "weston_watkins"}:
        return lambda z: F.multi_margin_loss(z, t)
    raise Unavailable(f"no torch baseline for {case.name}")


def _to_torch(torch, a):
    """An array as a tensor on the same memory; ml_dtypes' bfloat16 as torch.bfloat16."""
    if a.dtype.kind == "V" and a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _tensor_array(t):
    """A result tensor as a float64 array (half tensors widened exactly)."""
    return t.detach().double().numpy()


def _torch_impl(case, form, pred, target, n_threads, dropin=False):
    torch = _import_torch(n_threads)
    x = _to_torch(torch, pred)
    t = _to_torch(torch, target)
    if dropin:
        if case.formula or case.options or case.axis != -1:
            raise Unavailable(f"no fastloss.torch drop-in timed for {case.name}")
        import fastloss.torch as flt
        if case.loss == "softmax_cross_entropy":
            def fwd(z):
                return flt.cross_entropy(z, t)
        elif case.loss == "sigmoid_cross_entropy":
            def fwd(z):
                return flt.binary_cross_entropy_with_logits(z, t)
        else:
            raise Unavailable(f"no fastloss.torch drop-in timed for {case.name}")
        note = f"fastloss.torch drop-in on {x.dtype}, forward + autograd.grad"
    else:
        fwd = _torch_forward(case, torch, t)
        note = f"torch.set_num_threads({torch.get_num_threads()})"
    if form == "value":
        no_grad = torch.no_grad

        def forward():
            with no_grad():
                return fwd(x).item()
        return Impl("torch", forward, _conv_value, fresh_output=False, note=note + ", no_grad "
                    "forward")
    if form != "value_and_grad":
        raise Unavailable(f"no torch baseline for form {form}")
    xg = x.detach().requires_grad_(True)
    grad = torch.autograd.grad

    def fn():
        loss = fwd(xg)
        (g,) = grad(loss, xg)
        return loss.item(), g

    if dropin:
        return Impl(FASTLOSS_TORCH, fn, lambda r: (float(r[0]), _tensor_array(r[1])), note=note)
    return Impl("torch", fn, lambda r: (float(r[0]), _tensor_array(r[1])),
                note=note + ", forward + autograd.grad")


# ---- scikit-learn ----

def _sklearn_impl(case, form, pred, target, n_threads):
    if case.formula:
        raise Unavailable(f"scikit-learn has no {case.loss} with {sorted(dict(case.options))}")
    if case.loss == "hinge":
        raise Unavailable("scikit-learn has no multiclass hinge loss function")
    if case.dtype in HALF_DTYPES:
        raise Unavailable(f"sklearn._loss takes float32 / float64, not {case.dtype}")
    if case.loss == "softmax_cross_entropy" and case.axis not in (-1, pred.ndim - 1):
        raise Unavailable("sklearn._loss takes (n_samples, n_classes) rows; class axis 1 "
                          "would need a transposed copy")
    try:
        from sklearn._loss import loss as sk  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise Unavailable("scikit-learn is not installed") from None
    nt = n_threads or cpu_count()
    y = target.astype(pred.dtype).reshape(-1)  # sklearn wants y_true in raw's float dtype
    if case.loss == "softmax_cross_entropy":
        if case.options:
            raise Unavailable(f"no sklearn equivalent of {sorted(dict(case.options))}")
        obj = sk.HalfMultinomialLoss(n_classes=pred.shape[-1])
        raw = pred.reshape(-1, pred.shape[-1])
        scale_l, scale_g = 1.0, 1.0 / raw.shape[0]
        note = "HalfMultinomialLoss"
    elif case.loss == "sigmoid_cross_entropy":
        obj = sk.HalfBinomialLoss()
        raw, scale_l, scale_g = pred.reshape(-1), 1.0, 1.0 / pred.size
        note = "HalfBinomialLoss on the flattened array"
    elif case.loss == "mse":
        obj = sk.HalfSquaredError()  # 0.5 * (y - p)**2: half the loss, half the gradient
        raw, scale_l, scale_g = pred.reshape(-1), 2.0, 2.0 / pred.size
        note = "HalfSquaredError"
    else:
        raise Unavailable(f"scikit-learn has no {case.loss}")
    shape = pred.shape
    note += f", n_threads={nt}"
    if form == "value":
        def value():
            return obj.loss(y_true=y, raw_prediction=raw, n_threads=nt).mean()
        return Impl("sklearn", value, lambda r: (float(r) * scale_l, None), note=note)

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
    if case.formula:
        raise Unavailable("no JAX formula for options beyond PyTorch here")
    kw = dict(case.options)
    ax = case.axis
    if case.loss == "softmax_cross_entropy" and not kw:
        def f(x, y):
            xy = jnp.take_along_axis(x, jnp.expand_dims(y, ax), axis=ax)
            return jnp.mean(jax.nn.logsumexp(x, axis=ax) - jnp.squeeze(xy, ax))
    elif case.loss == "sigmoid_cross_entropy" and not kw:
        def f(x, t):  # softplus: a correct gradient at x == 0, unlike max(x, 0) + ...|x|
            return jnp.mean(jax.nn.softplus(x) - x * t)
    elif case.loss == "mse" and not kw:
        def f(x, t):
            return jnp.mean((x - t) ** 2)
    elif case.loss == "hinge" and kw == {"multiclass": "weston_watkins"}:
        def f(x, y):
            c = x.shape[-1]
            xy = jnp.take_along_axis(x, y[:, None], axis=-1)
            m = 1 - xy + x
            # strict: a zero margin counts 0 (torch's subgradient; jnp.maximum splits ties)
            m = jnp.where((m > 0) & (jnp.arange(c) != y[:, None]), m, 0)
            return jnp.mean(jnp.sum(m, axis=-1) / c)
    else:
        raise Unavailable(f"no JAX baseline for {case.name}")
    return f


def _jax_impl(case, form, pred, target, n_threads):
    jax = _import_jax(n_threads)
    f = _jax_loss(case, jax.numpy, jax)
    x, t = jax.device_put(pred), jax.device_put(target)
    block = jax.block_until_ready
    jf = jax.jit(f if form == "value" else jax.value_and_grad(f))

    def fn():
        return block(jf(x, t))
    return Impl("jax", fn, _conv_value if form == "value" else _conv_vg, fresh_output=False,
                note="jit(value_and_grad), XLA's own thread pool")


def build_impl(name: str, case: Case, form: str, pred, target, n_threads=None) -> Impl:
    """Build one implementation for ``case``/``form`` on the given data.

    Raises :class:`Unavailable` when it cannot run here (missing package, unsupported case).
    """
    if case.metrics:
        return build_metric_impl(name, case, pred, target, n_threads)
    if name in (FASTLOSS, FASTLOSS_OUT, FASTLOSS_1T):
        return _fastloss_impl(name, case, form, pred, target, n_threads)
    if name in LIMITS:
        return _limit_impl(name, pred, n_threads)
    if name == "numpy":
        return _numpy_impl(case, form, pred, target)
    if name == "python":
        return _python_impl(case, form, pred, target)
    if name == "torch":
        return _torch_impl(case, form, pred, target, n_threads)
    if name == FASTLOSS_TORCH:
        return _torch_impl(case, form, pred, target, n_threads, dropin=True)
    if name == "sklearn":
        return _sklearn_impl(case, form, pred, target, n_threads)
    if name == "jax":
        return _jax_impl(case, form, pred, target, n_threads)
    raise ValueError(f"unknown implementation {name!r}")
