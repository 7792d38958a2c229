"""The benchmark cases: which loss, options, layout and sizes each one times.

A case names its loss by the public name (``"softmax_cross_entropy"``, ``"hinge"``, ...) and
its forms by the registry's form names (``"value"``, ``"value_and_grad"``); the callables come
from :func:`loss_function`, the one lookup, so the bench times exactly what users call.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable

import numpy as np

__all__ = ["FORMS", "FORM_SHORT", "HALF_DTYPES", "Case", "CASES", "Unavailable",
           "loss_function", "select_cases", "make_data", "case_dtype"]

FORMS = ("value_and_grad", "value")
FORM_SHORT = {"value_and_grad": "v+g", "value": "value"}
HALF_DTYPES = ("float16", "bfloat16")
_M = 1 << 20


class Unavailable(Exception):
    """An implementation cannot run here (package missing, case not supported, too slow)."""


def loss_function(name: str, form: str) -> Callable[..., Any]:
    """The public fastloss callable of loss ``name`` in ``form``.

    Uses the loss registry ``fastloss.losses[name]["functions"][form]`` when this build has it,
    else the module attribute (``name`` for the value, ``name + "_" + form`` otherwise).
    Raises :class:`Unavailable` when the loss or the form does not exist.
    """
    import fastloss

    registry = getattr(fastloss, "losses", None)
    if registry is not None:
        try:
            functions = registry[name]["functions"]
        except KeyError:
            raise Unavailable(f"fastloss.losses has no loss {name!r}") from None
        try:
            return functions[form]
        except KeyError:
            raise Unavailable(f"fastloss.losses[{name!r}] has no form {form!r}") from None
    attr = name if form == "value" else f"{name}_{form}"
    f = getattr(fastloss, attr, None)
    if f is None:
        raise Unavailable(f"fastloss.{attr} does not exist")
    return f


def loss_options(name: str) -> dict[str, Any] | None:
    """The options (name -> default) of loss ``name`` from the registry, or None without one."""
    import fastloss

    registry = getattr(fastloss, "losses", None)
    if registry is None:
        return None
    return dict(registry[name]["options"])


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``loss`` is the public loss name, ``options`` the keyword arguments of the call (a tuple of
    pairs so that a case is hashable), ``target`` the kind of target the data has
    (``"labels"``, ``"binary"`` or ``"real"``), ``axis`` the class axis. Shapes are the full
    size, the ``--quick`` size and the small size the smoke tests check against the reference.
    ``dtype`` is pred's: float32, float64, float16 or bfloat16 (ml_dtypes' arrays; the case is
    unavailable without ml_dtypes).
    ``formula`` marks options beyond PyTorch's own functions: the PyTorch baseline is then the
    same loss written with torch operations. ``scaling`` also times fastloss on one thread.
    ``default_call`` also reports the v+g call without ``out=`` (a fresh gradient) as its own
    line.  ``metrics`` makes the case one of the metrics family: ``Evaluator(metrics="all")``
    (the headline) beside the loss-only Evaluator, scikit-learn and torchmetrics
    (:mod:`.metric_impls`).
    """

    name: str
    loss: str
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    check_shape: tuple[int, ...]
    target: str = "labels"
    options: tuple[tuple[str, Any], ...] = ()
    dtype: str = "float32"
    axis: int = -1
    forms: tuple[str, ...] = FORMS
    formula: bool = False
    scaling: bool = False
    default_call: bool = False
    tiny: bool = False
    metrics: bool = False

    @property
    def kwargs(self) -> dict[str, Any]:
        kw = dict(self.options)
        if self.axis != -1:
            kw["axis"] = self.axis
        return kw

    def shape_for(self, size: str) -> tuple[int, ...]:
        return {"full": self.shape, "quick": self.quick_shape, "check": self.check_shape}[size]


_SOFTMAX = "softmax_cross_entropy"
_SIGMOID = "sigmoid_cross_entropy"

CASES: tuple[Case, ...] = (
    Case("softmax_ce-2048x32768", _SOFTMAX, (2048, 32768), (256, 32768), (6, 333),
         scaling=True, default_call=True),
    Case("softmax_ce-16384x1000", _SOFTMAX, (16384, 1000), (4096, 1000), (37, 1000),
         scaling=True),
    Case("softmax_ce-262144x10", _SOFTMAX, (262144, 10), (65536, 10), (101, 10), scaling=True),
    Case("softmax_ce-f64-2048x8192", _SOFTMAX, (2048, 8192), (256, 8192), (5, 257),
         dtype="float64", scaling=True),
    Case("softmax_ce-nchw-axis1", _SOFTMAX, (16, 21, 256, 256), (4, 21, 128, 128),
         (2, 21, 3, 5), axis=1, scaling=True),
    Case("softmax_ce-channels_last", _SOFTMAX, (16, 256, 256, 21), (4, 128, 128, 21),
         (2, 3, 5, 21)),
    Case("softmax_ce-f16-2048x32768", _SOFTMAX, (2048, 32768), (256, 32768), (6, 333),
         dtype="float16"),
    Case("softmax_ce-bf16-2048x32768", _SOFTMAX, (2048, 32768), (256, 32768), (6, 333),
         dtype="bfloat16"),
    Case("sigmoid_ce-262144x100", _SIGMOID, (262144, 100), (32768, 100), (13, 100),
         target="binary", scaling=True),
    Case("sigmoid_ce-f16-262144x100", _SIGMOID, (262144, 100), (32768, 100), (13, 100),
         target="binary", dtype="float16"),
    Case("sigmoid_ce-bf16-262144x100", _SIGMOID, (262144, 100), (32768, 100), (13, 100),
         target="binary", dtype="bfloat16"),
    Case("sigmoid_focal-262144x100", _SIGMOID, (262144, 100), (32768, 100), (13, 100),
         target="binary", options=(("focal_gamma", 2.0), ("focal_alpha", 0.25)), formula=True),
    Case("softmax_ce-softcap30-zloss-2048x32768", _SOFTMAX, (2048, 32768), (256, 32768),
         (6, 333), options=(("softcap", 30.0), ("z_loss", 1e-4)), formula=True),
    Case("mse-16M", "mse", (16 * _M,), (2 * _M,), (1001,), target="real", scaling=True),
    Case("hinge_ww-65536x100", "hinge", (65536, 100), (16384, 100), (17, 100),
         options=(("multiclass", "weston_watkins"),), scaling=True),
    Case("metrics-softmax_ce-16384x1000", _SOFTMAX, (16384, 1000), (4096, 1000), (37, 1000),
         forms=("value",), metrics=True),
    Case("metrics-softmax_ce-2048x32768", _SOFTMAX, (2048, 32768), (256, 32768), (6, 333),
         forms=("value",), metrics=True),
    Case("tiny-softmax_ce-8x10", _SOFTMAX, (8, 10), (8, 10), (8, 10),
         forms=("value", "value_and_grad"), tiny=True, default_call=True),
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


def case_dtype(case: Case) -> np.dtype:
    """pred's NumPy dtype for ``case`` (bfloat16: ml_dtypes', :class:`Unavailable` without it)."""
    if case.dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise Unavailable("bfloat16 arrays need the ml_dtypes package") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(case.dtype)


def make_data(case: Case, size: str = "full", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pred, target) for ``case`` at ``size`` ("full", "quick" or "check"), seeded.  Half
    precision cases draw float32 values and round them (targets in pred's dtype too)."""
    rng = np.random.default_rng([seed, sum(map(ord, case.name))])
    shape = case.shape_for(size)
    dtype = case_dtype(case)
    draw = np.float32 if case.dtype in HALF_DTYPES else dtype
    pred = rng.standard_normal(shape, dtype=draw)
    if case.target == "real":
        return pred.astype(dtype, copy=False), rng.standard_normal(shape, dtype=draw).astype(
            dtype, copy=False)
    pred *= 2
    pred = pred.astype(dtype, copy=False)
    if case.target == "binary":
        return pred, (rng.random(shape, dtype=np.float32) < 0.3).astype(dtype)
    ax = case.axis % len(shape)
    label_shape = shape[:ax] + shape[ax + 1:]
    return pred, rng.integers(0, shape[ax], label_shape, dtype=np.int64)
