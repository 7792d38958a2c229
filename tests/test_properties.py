"""Property tests that tests/test_hypothesis.py (values against the reference) does not
already make: the three forms agree bitwise, softmax cross-entropy is invariant to adding a
constant to a row and its gradient rows sum to 0, sigmoid cross-entropy of (x, t) equals that of
(-x, 1 - t), reduction="sum" of a concatenation is the sum of the parts, and every gradient
matches central finite differences in float64 -- over random shapes (0 rows, 1 class, 1 element,
0-d), dtypes, class axes and option combinations, the options beyond PyTorch included."""

import inspect
import math

import numpy as np
import pytest

from .cases import assert_array_close, assert_identical, public, tolerance

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
DTYPES = st.sampled_from([np.float32, np.float64])
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


def _has_option(function, name):
    return name in inspect.signature(getattr(public(), function)).parameters


# ------------------------------------------------------------------------------ strategies
# Values come from a NumPy generator seeded by hypothesis: continuous random numbers keep the
# finite-difference tests away from the kinks of the hinge losses, and the shapes and options
# are what hypothesis explores (and shrinks).

ROWS = st.sampled_from([0, 1, 1, 2, 3, 5, 8])
CLASSES = st.sampled_from([1, 1, 2, 3, 5, 17, 40])


@st.composite
def softmax_inputs(draw, dtype=None, options=True, labels=None, exclude=()):
    dtype = draw(DTYPES) if dtype is None else dtype
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_rows, n_classes = draw(ROWS), draw(CLASSES)
    layout = draw(st.sampled_from(["2d", "1d", "3d", "axis1"]))
    if layout == "2d":
        shape, axis = (n_rows, n_classes), -1
    elif layout == "1d":
        shape, axis = (n_classes,), -1
    elif layout == "3d":
        shape, axis = (2, n_rows, n_classes), -1
    else:
        shape, axis = (n_rows, n_classes, 3), 1
    scale = draw(st.sampled_from([1.0, 3.0, 20.0]))
    pred = np.asarray(scale * rng.standard_normal(shape), dtype=dtype)
    row_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    kwargs = {"axis": axis} if axis != -1 else {}
    use_labels = draw(st.booleans()) if labels is None else labels
    if use_labels:
        target = rng.integers(0, n_classes, size=row_shape)
        if draw(st.booleans()) and target.size:
            target.reshape(-1)[::3] = -100                     # some rows ignored
    else:
        raw = rng.uniform(0, 1, size=shape)
        if draw(st.booleans()):                                # rows summing to 1
            raw = raw / raw.sum(axis=axis, keepdims=True)
        target = raw
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.25, 2.0, size=n_classes)
    if draw(st.booleans()):
        kwargs["sample_weight"] = rng.uniform(0.25, 2.0, size=row_shape)
    if draw(st.booleans()):
        kwargs["label_smoothing"] = draw(st.sampled_from([0.1, 0.5, 1.0]))
    if options:
        fn = "softmax_cross_entropy"
        if _has_option(fn, "z_loss") and "z_loss" not in exclude and draw(st.booleans()):
            kwargs["z_loss"] = draw(st.sampled_from([1e-4, 0.1]))
        if _has_option(fn, "softcap") and "softcap" not in exclude and draw(st.booleans()):
            kwargs["softcap"] = draw(st.sampled_from([2.0, 30.0]))
        if _has_option(fn, "poly1_epsilon") and draw(st.booleans()):
            kwargs["poly1_epsilon"] = draw(st.sampled_from([-0.5, 1.0]))
        if (_has_option(fn, "focal_gamma") and use_labels
                and not kwargs.get("label_smoothing") and draw(st.booleans())):
            kwargs["focal_gamma"] = draw(st.sampled_from([1.0, 2.0, 3.5]))
    return pred, target, kwargs


@st.composite
def sigmoid_inputs(draw, dtype=None, options=True, pos_weight=True):
    dtype = draw(DTYPES) if dtype is None else dtype
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from([(), (1,), (0,), (5,), (0, 4), (3, 1), (4, 6), (2, 3, 5)]))
    pred = np.asarray(draw(st.sampled_from([1.0, 4.0, 30.0])) * rng.standard_normal(shape),
                      dtype=dtype)
    # targets on a grid of 1/64: 1 - t is exact in either dtype
    target = np.asarray(rng.integers(0, 65, size=shape) / 64.0)
    kwargs = {}
    if draw(st.booleans()):
        wshape = draw(st.sampled_from([shape, shape[-1:], ()]))
        kwargs["weight"] = rng.uniform(0.25, 2.0, size=wshape)
    if pos_weight and shape and draw(st.booleans()):
        kwargs["pos_weight"] = rng.uniform(0.25, 3.0, size=shape[-1:])
    if options:
        fn = "sigmoid_cross_entropy"
        if _has_option(fn, "focal_gamma") and draw(st.booleans()):
            kwargs["focal_gamma"] = draw(st.sampled_from([1.0, 2.0]))
        if _has_option(fn, "focal_alpha") and draw(st.booleans()):
            kwargs["focal_alpha"] = draw(st.sampled_from([0.25, 0.5]))
        if _has_option(fn, "poly1_epsilon") and draw(st.booleans()):
            kwargs["poly1_epsilon"] = draw(st.sampled_from([-0.5, 1.0]))
    return pred, target, kwargs


@st.composite
def hinge_inputs(draw, dtype=None, **_):
    dtype = draw(DTYPES) if dtype is None else dtype
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["binary", "ovr", "ovr_multilabel", "weston_watkins",
                                 "crammer_singer"]))
    kwargs = {"margin": draw(st.sampled_from([0.5, 1.0, 2])),
              "squared": draw(st.booleans())}
    if mode == "binary":
        shape = draw(st.sampled_from([(), (0,), (1,), (7,)]))
        pred = np.asarray(2 * rng.standard_normal(shape), dtype=dtype)
        target = np.asarray(2 * rng.integers(0, 2, size=shape) - 1)
        if draw(st.booleans()):
            kwargs["sample_weight"] = rng.uniform(0.25, 2.0, size=shape)
        return pred, target, kwargs
    n_rows, n_classes = draw(ROWS), draw(CLASSES)
    pred = (2 * rng.standard_normal((n_rows, n_classes))).astype(dtype)
    if mode == "ovr_multilabel":
        target = rng.integers(0, 2, size=(n_rows, n_classes))
        assume(n_classes > 1 or n_rows == 0)   # (N, 1) with a (N, 1) target is ambiguous
    else:
        target = rng.integers(0, n_classes, size=n_rows)
        kwargs["multiclass"] = mode
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.25, 2.0, size=n_classes)
    if draw(st.booleans()):
        kwargs["sample_weight"] = rng.uniform(0.25, 2.0, size=n_rows)
    return pred, target, kwargs


@st.composite
def mse_inputs(draw, dtype=None, **_):
    dtype = draw(DTYPES) if dtype is None else dtype
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from([(), (1,), (0,), (6,), (0, 3), (4, 5), (2, 3, 4)]))
    pred = np.asarray(3 * rng.standard_normal(shape), dtype=dtype)
    target = np.asarray(rng.standard_normal(shape))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.25, 2.0, size=draw(st.sampled_from(
            [shape, shape[-1:], ()])))
    return pred, target, kwargs


STRATEGIES = {
    "softmax_cross_entropy": softmax_inputs,
    "sigmoid_cross_entropy": sigmoid_inputs,
    "hinge": hinge_inputs,
    "mse": mse_inputs,
}
LOSSES = list(STRATEGIES)


def _any_inputs(dtype=None, losses=LOSSES, options=True):
    return st.sampled_from(losses).flatmap(
        lambda loss: STRATEGIES[loss](dtype=dtype, options=options).map(
            lambda data: (loss,) + data))


# ------------------------------------------------------------------------------- the forms

@SETTINGS
@given(data=_any_inputs(), reduction=REDUCTIONS)
def test_three_forms_agree_bitwise(data, reduction):
    """L, L_grad and L_value_and_grad share one kernel: the same bits, also with out=."""
    loss, pred, target, kwargs = data
    fl = public()
    kw = {**kwargs, "reduction": reduction}
    value, grad = getattr(fl, loss + "_value_and_grad")(pred, target, **kw)
    assert_identical((getattr(fl, loss)(pred, target, **kw), None), (value, None))
    assert_identical((None, getattr(fl, loss + "_grad")(pred, target, **kw)), (None, grad))
    out = np.full(pred.shape, 7.0, dtype=pred.dtype)
    both = getattr(fl, loss + "_value_and_grad")(pred, target, **kw, out=out)
    assert both[1] is out
    assert_identical(both, (value, grad))
    in_place = pred.copy()
    assert_identical(getattr(fl, loss + "_value_and_grad")(in_place, target, **kw,
                                                           out=in_place), (value, grad))


_GRAD_HESS_OPTIONS = {"softmax_cross_entropy": {"weight", "sample_weight", "label_smoothing",
                                                "axis", "ignore_index"},
                      "sigmoid_cross_entropy": {"weight", "pos_weight"},
                      "mse": {"weight"}}


@SETTINGS
@given(data=_any_inputs(losses=list(_GRAD_HESS_OPTIONS), options=False))
def test_grad_hess_gradient_is_the_gradient_of_the_sum(data):
    """*_grad_hess's gradient is L_grad(reduction="none")'s (the derivative of the sum)."""
    loss, pred, target, kwargs = data
    assume(loss in _GRAD_HESS_OPTIONS and set(kwargs) <= _GRAD_HESS_OPTIONS[loss])
    fl = public()
    grad, hess = getattr(fl, loss + "_grad_hess")(pred, target, **kwargs)
    expected = getattr(fl, loss + "_grad")(pred, target, reduction="none", **kwargs)
    assert grad.shape == hess.shape == pred.shape and grad.dtype == hess.dtype == pred.dtype
    assert_array_close(grad, expected, pred.dtype, term_scale=float(np.max(
        np.abs(expected), initial=0.0)) + 1.0)
    assert np.all(hess >= 0), "a diagonal Hessian of these convex losses is >= 0"


# -------------------------------------------------------------------- softmax invariances

@SETTINGS
@given(data=softmax_inputs(options=False), shift=st.integers(-1000, 1000),
       per_row=st.booleans(), reduction=REDUCTIONS)
def test_softmax_invariant_to_adding_a_constant_to_a_row(data, shift, per_row, reduction):
    """log-softmax(x + c) = log-softmax(x). Logits on a grid of 1/1024 and integer shifts
    make x + c exact in either dtype, so only the kernel's rounding can differ."""
    pred, target, kwargs = data
    fl = public()
    dtype = pred.dtype
    pred = (np.round(pred.astype(np.float64) * 1024) / 1024).astype(dtype)
    axis = kwargs.get("axis", -1) % pred.ndim
    if per_row:            # a different constant per row
        shape = list(pred.shape)
        shape[axis] = 1
        c = np.random.default_rng(shift + 5000).integers(-1000, 1001, size=shape)
    else:
        c = shift
    shifted = (pred.astype(np.float64) + c).astype(dtype)
    assert np.array_equal(shifted.astype(np.float64) - c, pred.astype(np.float64))
    v0, g0 = fl.softmax_cross_entropy_value_and_grad(pred, target, reduction=reduction, **kwargs)
    v1, g1 = fl.softmax_cross_entropy_value_and_grad(shifted, target, reduction=reduction,
                                                     **kwargs)
    tol = tolerance(dtype)
    assert_array_close(g1, g0, dtype, term_scale=float(np.max(np.abs(g0), initial=0.0)))
    if reduction == "none":
        assert_array_close(v1, v0, dtype, term_scale=float(np.max(np.abs(v0), initial=1.0)))
    elif not math.isnan(v0):
        # the losses are differences x_max - x_k of about 2**11: their rounding is relative
        # to that size, not to the loss
        assert abs(v1 - v0) <= tol * (abs(v0) + 2048.0 * max(1, pred.size)), (v0, v1)
    else:
        assert math.isnan(v1)


@SETTINGS
@given(data=softmax_inputs(exclude=("z_loss", "softcap")), reduction=REDUCTIONS)
def test_softmax_gradient_rows_sum_to_zero(data, reduction):
    """sum_k (A p_k - a_k) = A - sum_k a_k = 0 for any targets and weights (one-hot, smoothed,
    probability rows summing to 1 or not); focal and poly-1 terms depend on x only through p,
    so their gradients sum to 0 too. z-loss (lse**2) and soft-capping move the sum."""
    pred, target, kwargs = data
    grad = public().softmax_cross_entropy_grad(pred, target, reduction=reduction, **kwargs)
    axis = kwargs.get("axis", -1)
    sums = np.sum(grad.astype(np.float64), axis=axis)
    scale = np.sum(np.abs(grad.astype(np.float64)), axis=axis)
    bound = 4 * pred.shape[axis] * np.finfo(pred.dtype).eps * scale + 1e-300
    assert np.all(np.abs(sums) <= bound), (sums, scale)


# ------------------------------------------------------------------------- sigmoid symmetry

@SETTINGS
@given(data=sigmoid_inputs(pos_weight=False), reduction=REDUCTIONS)
def test_sigmoid_of_x_and_t_equals_sigmoid_of_minus_x_and_one_minus_t(data, reduction):
    """BCE(x, t) = BCE(-x, 1 - t) and the gradient flips sign (pos_weight breaks the symmetry;
    focal_alpha swaps with 1 - alpha)."""
    pred, target, kwargs = data
    fl = public()
    mirrored = dict(kwargs)
    if kwargs.get("focal_alpha") is not None:
        mirrored["focal_alpha"] = 1.0 - kwargs["focal_alpha"]
    v0, g0 = fl.sigmoid_cross_entropy_value_and_grad(pred, target, reduction=reduction, **kwargs)
    v1, g1 = fl.sigmoid_cross_entropy_value_and_grad(-pred, 1.0 - target, reduction=reduction,
                                                     **mirrored)
    dtype = pred.dtype
    assert_array_close(np.asarray(-g1), g0, dtype,
                       term_scale=float(np.max(np.abs(g0), initial=0.0)))
    if reduction == "none":
        assert_array_close(v1, v0, dtype)
    elif math.isnan(v0):
        assert math.isnan(v1)
    else:
        assert abs(v1 - v0) <= tolerance(dtype) * max(abs(v0), 1e-300) * 4, (v0, v1)


# ---------------------------------------------------------------- sums of concatenations

def _split(loss, pred, target, kwargs, k):
    """(pred, target, kwargs) of rows [:k] and [k:] along axis 0: per-row and elementwise
    arrays are cut with pred; weights broadcast along axis 0 (or per class) are kept."""
    n = pred.shape[0]
    parts = []
    for sl in (slice(None, k), slice(k, None)):
        kw = dict(kwargs)
        for name, value in kwargs.items():
            if not isinstance(value, np.ndarray):
                continue
            if name == "sample_weight" or (
                    name in ("weight", "pos_weight") and loss in ("sigmoid_cross_entropy", "mse")
                    and value.ndim == pred.ndim and value.shape[0] == n):
                kw[name] = value[sl]
        parts.append((pred[sl], np.asarray(target)[sl], kw))
    return parts


@SETTINGS
@given(data=_any_inputs(), cut=st.floats(0, 1))
def test_sum_of_a_concatenation_is_the_sum_of_the_parts(data, cut):
    """reduction="sum" over rows [0, N) equals the sums over [0, k) and [k, N) added, to
    float64 rounding (the sums accumulate in float64 in blocks)."""
    loss, pred, target, kwargs = data
    # axis 0 holds whole samples (a 1-D softmax input is one row)
    assume(pred.ndim >= 1 and not (loss == "softmax_cross_entropy" and pred.ndim == 1))
    fl = public()
    n = pred.shape[0]
    k = round(cut * n)
    fn = getattr(fl, loss)
    whole = fn(pred, target, reduction="sum", **kwargs)
    (p0, t0, k0), (p1, t1, k1) = _split(loss, pred, target, kwargs, k)
    parts = fn(p0, t0, reduction="sum", **k0) + fn(p1, t1, reduction="sum", **k1)
    terms = np.asarray(fn(pred, target, reduction="none", **kwargs), dtype=np.float64)
    bound = 8 * max(terms.size, 1) * np.finfo(np.float64).eps * float(np.sum(np.abs(terms)))
    assert abs(whole - parts) <= bound + 1e-300, (whole, parts)


# ---------------------------------------------------------------- finite differences

def _directional_check(fn, pred, target, kwargs, reduction, rng):
    x = pred.astype(np.float64)
    if x.size == 0:
        return
    d = rng.standard_normal(x.shape)
    d /= np.linalg.norm(d)

    def f(z):
        v = fn(z, target, reduction=reduction, **kwargs)
        return float(np.sum(v, dtype=np.float64)) if isinstance(v, np.ndarray) else v

    grad = getattr(public(), fn.__name__ + "_grad")(x, target, reduction=reduction, **kwargs)
    h = 1e-6
    fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
    exact = float(np.sum(grad * d))
    if not (math.isfinite(fd) and math.isfinite(exact)):
        assert math.isnan(fd) == math.isnan(exact) or not math.isfinite(f(x))
        return
    scale = abs(f(x)) + float(np.max(np.abs(grad)))
    assert abs(fd - exact) <= 1e-6 * (1.0 + scale), (fd, exact)


@SETTINGS
@given(data=_any_inputs(dtype=np.float64), reduction=REDUCTIONS, seed=st.integers(0, 1000))
def test_gradient_matches_central_differences(data, reduction, seed):
    """<grad, d> = (f(x + h d) - f(x - h d)) / 2h in float64 along a random direction, every
    loss with its options (random continuous scores stay away from the hinge kinks)."""
    loss, pred, target, kwargs = data
    _directional_check(getattr(public(), loss), pred, target, kwargs, reduction,
                       np.random.default_rng(seed))
