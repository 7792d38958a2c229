"""SPEC's edge cases, each a test, for the compiled API and for the reference alike (the ``impl``
fixture runs every test on both)."""

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from .cases import (
    DTYPES,
    FORMS,
    REDUCTIONS,
    REPRESENTATIVE,
    assert_array_close,
    assert_identical,
    call,
    tolerance,
)

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
INF, NAN = np.inf, np.nan


def vg(impl, loss, pred, target, reduction="none", **kwargs):
    return call(impl, loss, "value_and_grad", pred, target, kwargs, reduction=reduction)


# ---------------------------------------------------------------------------------------------
# NaN isolation
# ---------------------------------------------------------------------------------------------


def _affected_mask(case, flat_row):
    """Boolean mask over pred of the row (class losses) or element (elementwise losses) with
    flat index ``flat_row`` in the reduction="none" shape."""
    mask = np.zeros(case.row_shape, dtype=bool)
    mask.reshape(-1)[flat_row] = True
    if not case.is_class_loss:
        return mask
    return np.repeat(np.expand_dims(mask, case.class_axis), case.n_classes, axis=case.class_axis)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", REPRESENTATIVE, ids=[c.id for c in REPRESENTATIVE])
def test_nan_stays_in_its_row(impl, case, dtype, reduction):
    pred, target, kwargs = case.make(dtype)
    flat_row = 1
    if case.target == "labels_ignored":
        flat_row = 2  # rows 0, 3, 6, ... are ignored
    row = _affected_mask(case, flat_row)
    nan_at = np.flatnonzero(row)[len(np.flatnonzero(row)) // 2]
    dirty = pred.copy()
    dirty.reshape(-1)[nan_at] = np.nan

    clean_value, clean_grad = vg(impl, case.loss, pred, target, reduction, **kwargs)
    value, grad = vg(impl, case.loss, dirty, target, reduction, **kwargs)

    if reduction == "none":
        nan_rows = np.zeros(case.row_shape, dtype=bool)
        nan_rows.reshape(-1)[flat_row] = True
        assert np.all(np.isnan(value[nan_rows]))
        assert_identical((None, value[~nan_rows]), (None, clean_value[~nan_rows]))
    else:
        assert math.isnan(value)
    # Other rows' gradients are untouched (the mean's denominator does not depend on pred).
    assert_identical((None, grad[~row]), (None, clean_grad[~row]))
    assert np.isnan(grad.reshape(-1)[nan_at])
    if case.loss == "softmax_cross_entropy":
        assert np.all(np.isnan(grad[row])), "the whole softmax row is NaN"


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy: infinite logits
# ---------------------------------------------------------------------------------------------


def _softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("probability_target", [False, True], ids=["labels", "probs"])
def test_softmax_minus_inf_is_a_mask(impl, dtype, probability_target):
    """A -inf logit has probability 0 and gradient 0: the row equals the row without it."""
    rng = np.random.default_rng(3)
    finite = rng.standard_normal((4, 5)).astype(dtype)
    masked = np.insert(finite, 2, -np.inf, axis=1)  # column 2 is -inf in every row
    if probability_target:
        t = rng.uniform(size=(4, 5))
        t /= t.sum(axis=1, keepdims=True)
        target_finite, target_masked = t, np.insert(t, 2, 0.0, axis=1)
    else:
        target_finite = np.array([0, 3, 2, 4])
        target_masked = np.where(target_finite >= 2, target_finite + 1, target_finite)
    for reduction in REDUCTIONS:
        value, grad = vg(impl, "softmax_cross_entropy", masked, target_masked, reduction)
        ref_value, ref_grad = vg(impl, "softmax_cross_entropy", finite, target_finite, reduction)
        assert np.all(grad[:, 2] == 0)
        assert_array_close(np.delete(grad, 2, axis=1), ref_grad, dtype)
        if reduction == "none":
            assert_array_close(value, ref_value, dtype)
        else:
            assert abs(value - ref_value) <= tolerance(dtype) * abs(ref_value)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_minus_inf_target_logit(impl, dtype):
    """Loss +inf with a finite gradient p - onehot (p of the target is 0)."""
    logits = np.array([[-INF, 0.5, -1.0, 2.0]], dtype=dtype)
    value, grad = vg(impl, "softmax_cross_entropy", logits, np.array([0]))
    assert value.dtype == dtype and value.shape == (1,)
    assert value[0] == INF
    expected = np.concatenate([[-1.0], _softmax(np.array([0.5, -1.0, 2.0]))])
    assert np.all(np.isfinite(grad))
    assert_array_close(grad[0], expected.astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_single_plus_inf(impl, dtype):
    """One +inf takes probability 1: loss 0 when it is the target, +inf otherwise; the gradient
    is p - onehot with p the one-hot of the +inf."""
    logits = np.array([[INF, 0.0, 1.0], [INF, 0.0, 1.0], [0.5, INF, -INF]], dtype=dtype)
    labels = np.array([0, 1, 2])
    value, grad = vg(impl, "softmax_cross_entropy", logits, labels)
    np.testing.assert_array_equal(value, np.array([0.0, INF, INF], dtype=dtype))
    expected = np.array([[0.0, 0, 0], [1, -1, 0], [0, 1, -1]], dtype=dtype)
    np.testing.assert_array_equal(grad, expected)
    assert impl.softmax_cross_entropy(logits[:1], labels[:1], reduction="sum") == 0.0
    # probability target: gradient p * sum(t) - t
    t = np.array([[0.5, 0.5, 0.0]])
    value, grad = vg(impl, "softmax_cross_entropy", logits[:1], t)
    assert value[0] == INF
    np.testing.assert_array_equal(grad, np.array([[0.5, -0.5, 0.0]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("bad_row", [[-INF, -INF, -INF], [INF, 0.0, INF], [0.0, NAN, 1.0]],
                         ids=["all_minus_inf", "two_plus_inf", "nan"])
def test_softmax_rows_without_limit_are_nan(impl, dtype, bad_row):
    logits = np.array([[0.1, 0.2, 0.3], bad_row, [1.0, -1.0, 0.0]], dtype=dtype)
    labels = np.array([0, 1, 2])
    value, grad = vg(impl, "softmax_cross_entropy", logits, labels)
    assert np.isnan(value[1]) and np.all(np.isnan(grad[1]))
    clean = logits[[0, 2]]
    ref_value, ref_grad = vg(impl, "softmax_cross_entropy", clean, labels[[0, 2]])
    assert_identical((value[[0, 2]], grad[[0, 2]]), (ref_value, ref_grad))
    for reduction in ("mean", "sum"):
        assert math.isnan(impl.softmax_cross_entropy(logits, labels, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_huge_logits_do_not_overflow(impl, dtype):
    big = 1000.0 if dtype == np.float64 else 80.0
    logits = np.array([[big, 0.0], [-big, big]], dtype=dtype)
    value, grad = vg(impl, "softmax_cross_entropy", logits, np.array([1, 1]))
    np.testing.assert_array_equal(value, np.array([big, 0.0], dtype=dtype))
    np.testing.assert_array_equal(grad, np.array([[1.0, -1.0], [0.0, 0.0]], dtype=dtype))


# ---------------------------------------------------------------------------------------------
# Sigmoid cross-entropy: limits at +-inf
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_sigmoid_infinite_logits_give_limits(impl, dtype, pos_weight):
    x = np.array([INF, INF, -INF, -INF, INF, -INF], dtype=dtype)
    t = np.array([1.0, 0.0, 1.0, 0.0, 0.25, 0.25])
    kwargs = {} if pos_weight is None else {"pos_weight": np.array([pos_weight])}
    pw = 1.0 if pos_weight is None else pos_weight
    value, grad = vg(impl, "sigmoid_cross_entropy", x, t, **kwargs)
    np.testing.assert_array_equal(value, np.array([0, INF, INF, 0, INF, INF], dtype=dtype))
    # (1 - t) * sigmoid(x) - pos_weight * t * (1 - sigmoid(x))
    expected = np.array([0.0, 1.0, -pw, 0.0, 0.75, -0.25 * pw], dtype=dtype)
    np.testing.assert_array_equal(grad, expected)
    assert impl.sigmoid_cross_entropy(x[[0, 3]], t[[0, 3]], reduction="sum") == 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sigmoid_huge_logits(impl, dtype):
    big = 1000.0 if dtype == np.float64 else 80.0
    x = np.array([big, -big, big, -big], dtype=dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0])
    value, grad = vg(impl, "sigmoid_cross_entropy", x, t)
    np.testing.assert_array_equal(value[:2], np.array([big, big], dtype=dtype))
    assert np.all(value[2:] >= 0) and np.all(value[2:] < 1e-30)
    np.testing.assert_array_equal(grad[:2], np.array([1.0, -1.0], dtype=dtype))


# ---------------------------------------------------------------------------------------------
# Tiny true values of confident predictions (exact values from decimal arithmetic)
# ---------------------------------------------------------------------------------------------

getcontext().prec = 60
FEW_ULP = 4


def _assert_within_ulp(actual, exact, dtype, ulps=FEW_ULP):
    actual = np.asarray(actual, dtype=dtype)
    exact_rounded = np.asarray(float(exact), dtype=dtype)
    assert exact_rounded != 0, "test value must be representable"
    spacing = np.spacing(np.abs(exact_rounded))
    error = abs(Decimal(float(actual)) - exact)
    assert error <= ulps * Decimal(float(spacing)), (
        f"{float(actual)!r} is {float(error / Decimal(float(spacing))):.1f} ULP from "
        f"{float(exact)!r}"
    )


def _exact_sigmoid_terms(x):
    """exact log(1 + exp(-x)) and -1 / (1 + exp(x)) at the binary value x."""
    e = (-Decimal(float(x))).exp()
    return (1 + e).ln(), -e / (1 + e)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("x", [33.3, 20.0, 60.0])
def test_sigmoid_confident_right_keeps_tiny_values(impl, dtype, x):
    """x = 33.3, y = 1 gives 3.45e-15 (not 0), gradient -3.45e-15; mirrored for y = 0."""
    for sign, y in ((1.0, 1.0), (-1.0, 0.0)):
        logits = np.array([sign * x], dtype=dtype)
        exact_loss, exact_grad = _exact_sigmoid_terms(logits[0] * sign)
        value, grad = vg(impl, "sigmoid_cross_entropy", logits, np.array([y]))
        _assert_within_ulp(value[0], exact_loss, dtype)
        _assert_within_ulp(grad[0], Decimal(sign) * exact_grad, dtype)
        total = impl.sigmoid_cross_entropy(logits, np.array([y]), reduction="sum")
        _assert_within_ulp(total, exact_loss, dtype)
    if x == 33.3:
        assert abs(float(exact_loss) - 3.45e-15) < 0.01e-15


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("logits", [[33.3, 0.0], [40.0, 0.0, 1.5, 5.0], [25.0, -3.0, 2.0]])
def test_softmax_confident_right_keeps_tiny_values(impl, dtype, logits):
    logits = np.array([logits], dtype=dtype)
    x = [Decimal(float(v)) for v in logits[0]]
    others = [(v - x[0]).exp() for v in x[1:]]
    s = sum(others)
    exact_loss = (1 + s).ln()
    exact_grad = [-s / (1 + s)] + [o / (1 + s) for o in others]
    value, grad = vg(impl, "softmax_cross_entropy", logits, np.array([0]))
    _assert_within_ulp(value[0], exact_loss, dtype)
    for g, exact in zip(grad[0], exact_grad):
        _assert_within_ulp(g, exact, dtype)


# ---------------------------------------------------------------------------------------------
# Hinge kinks: the subgradient at a kink is 0
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_hinge_subgradient_at_kink_is_zero(impl, dtype, squared):
    scores = np.array([1.0, -1.0, 2.0], dtype=dtype)  # margin - t * x == 0, 0, -1
    value, grad = vg(impl, "hinge", scores, np.array([1, 0, 1]), squared=squared)
    np.testing.assert_array_equal(value, np.zeros(3, dtype=dtype))
    np.testing.assert_array_equal(grad, np.zeros(3, dtype=dtype))
    rows = np.array([[2.0, 1.0, 0.5]], dtype=dtype)  # margin - x_y + x_1 == 0
    for multiclass in ("weston_watkins", "crammer_singer"):
        value, grad = vg(impl, "hinge", rows, np.array([0]), squared=squared,
                         multiclass=multiclass)
        np.testing.assert_array_equal(value, np.zeros(1, dtype=dtype))
        np.testing.assert_array_equal(grad, np.zeros((1, 3), dtype=dtype))
    # ovr: x_y == margin and x_c == -margin are kinks too
    value, grad = vg(impl, "hinge", np.array([[1.0, -1.0]], dtype=dtype), np.array([0]),
                     squared=squared)
    np.testing.assert_array_equal(value, np.zeros(1, dtype=dtype))
    np.testing.assert_array_equal(grad, np.zeros((1, 2), dtype=dtype))


def test_crammer_singer_gradient_goes_to_first_argmax(impl):
    scores = np.array([[0.0, 2.0, 1.0, 2.0]])
    value, grad = vg(impl, "hinge", scores, np.array([2]), multiclass="crammer_singer")
    np.testing.assert_array_equal(value, [2.0])
    np.testing.assert_array_equal(grad, [[0.0, 1.0, -1.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# Empty batches and all-ignored batches
# ---------------------------------------------------------------------------------------------

# (loss, pred shape, target, options, shape of the reduction="none" result)
EMPTY = [
    ("softmax_cross_entropy", (0, 5), np.zeros(0, dtype=np.int64), {}, (0,)),
    ("softmax_cross_entropy", (0, 5), np.zeros((0, 5)), {}, (0,)),
    ("softmax_cross_entropy", (0, 5, 2), np.zeros((0, 2), dtype=np.int64), {"axis": 1}, (0, 2)),
    ("softmax_cross_entropy", (3, 0, 4), np.zeros((3, 0), dtype=np.int64), {}, (3, 0)),
    ("softmax_cross_entropy", (2, 3, 0), np.zeros((2, 0), dtype=np.int64), {"axis": 1}, (2, 0)),
    ("softmax_cross_entropy", (0, 3, 0), np.zeros((0, 3, 0)), {"axis": 1}, (0, 0)),
    ("hinge", (2, 3, 0), np.zeros((2, 0), dtype=np.int64), {"axis": 1}, (2, 0)),
    ("hinge", (2, 3, 0), np.zeros((2, 3, 0), dtype=np.int64), {"axis": 1}, (2, 0)),
    ("sigmoid_cross_entropy", (0,), np.zeros(0), {}, (0,)),
    ("sigmoid_cross_entropy", (0, 3), np.zeros((0, 3)), {"pos_weight": np.ones(3)}, (0, 3)),
    ("hinge", (0,), np.zeros(0, dtype=np.int64), {}, (0,)),
    ("hinge", (0, 4), np.zeros(0, dtype=np.int64), {"multiclass": "weston_watkins"}, (0,)),
    ("hinge", (0, 4), np.zeros(0, dtype=np.int64), {"multiclass": "crammer_singer"}, (0,)),
    ("mse", (0,), np.zeros(0), {}, (0,)),
    ("mse", (2, 0), np.zeros((2, 0)), {"weight": np.ones(0)}, (2, 0)),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("loss, shape, target, kwargs, none_shape", EMPTY,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(EMPTY)])
def test_empty_batch(impl, loss, shape, target, kwargs, none_shape, dtype, form):
    """mean is NaN, sum is 0, none is an empty array, gradients are empty arrays; fullmean is
    NaN (0 / 0 locations) and batchmean 0 / N: NaN for N = 0 rows, 0 for rows of no locations."""
    pred = np.zeros(shape, dtype=dtype)
    results = {r: call(impl, loss, form, pred, target, kwargs, reduction=r) for r in REDUCTIONS}
    if form != "grad":
        mean, total, none = (results[r][0] for r in ("mean", "sum", "none"))
        assert type(mean) is float and math.isnan(mean)
        assert type(total) is float and total == 0.0
        assert isinstance(none, np.ndarray) and none.dtype == dtype
        assert none.shape == none_shape
        full, batch = results["fullmean"][0], results["batchmean"][0]
        assert type(full) is float and math.isnan(full)
        n_batch = none_shape[0] if none_shape else 1
        assert type(batch) is float and (math.isnan(batch) if n_batch == 0 else batch == 0.0)
    if form != "value":
        for reduction in REDUCTIONS:
            grad = results[reduction][1]
            assert grad.shape == shape and grad.dtype == dtype


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("options", [{}, {"ignore_index": 2}, {"label_smoothing": 0.1},
                                     {"weight": np.array([1.0, 2.0, 3.0, 4.0])}],
                         ids=["default", "ignore_2", "smoothing", "weight"])
def test_all_rows_ignored(impl, options, dtype, form):
    """mean is NaN (0/0), sum is 0, batchmean and fullmean 0 (0/3: they count ignored rows),
    none is zeros, the gradient is all zeros."""
    ignore_index = options.get("ignore_index", -100)
    logits = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    labels = np.full(3, ignore_index)
    results = {r: call(impl, "softmax_cross_entropy", form, logits, labels, options,
                       reduction=r) for r in REDUCTIONS}
    if form != "grad":
        mean, total, none = (results[r][0] for r in ("mean", "sum", "none"))
        assert type(mean) is float and math.isnan(mean)
        assert type(total) is float and total == 0.0
        assert results["batchmean"][0] == 0.0 and results["fullmean"][0] == 0.0
        np.testing.assert_array_equal(none, np.zeros(3, dtype=dtype))
        assert none.dtype == dtype
    if form != "value":
        for reduction in REDUCTIONS:
            grad = results[reduction][1]
            assert grad.dtype == dtype
            np.testing.assert_array_equal(grad, np.zeros((3, 4), dtype=dtype))


def test_ignored_rows_contribute_nothing(impl):
    """An ignored row has loss 0 and gradient 0, whatever its logits (finite ones here)."""
    logits = np.array([[1.0, 2.0, 3.0], [100.0, -50.0, 3.0]])
    value, grad = vg(impl, "softmax_cross_entropy", logits, np.array([0, -100]),
                     label_smoothing=0.2)
    assert value[1] == 0.0
    np.testing.assert_array_equal(grad[1], np.zeros(3))
    mean = impl.softmax_cross_entropy(logits, np.array([0, -100]))
    assert mean == impl.softmax_cross_entropy(logits[:1], np.array([0]))


# ---------------------------------------------------------------------------------------------
# 0-d and 1-D shapes of the reduction="none" result
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_none_returns_zero_dim_arrays(impl, dtype):
    x0 = np.array(0.5, dtype=dtype)
    for loss, target in (("sigmoid_cross_entropy", np.array(1.0)), ("mse", np.array(0.25)),
                         ("hinge", np.array(1))):
        value, grad = vg(impl, loss, x0, target)
        assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == dtype
        assert isinstance(grad, np.ndarray) and grad.shape == () and grad.dtype == dtype
    logits = np.array([0.5, 1.0, -1.0], dtype=dtype)
    for loss, target in (("softmax_cross_entropy", np.array(2)), ("hinge", np.array(2)),
                         ("softmax_cross_entropy", np.array([0.2, 0.3, 0.5]))):
        value, grad = vg(impl, loss, logits, target)
        assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == dtype
        assert grad.shape == (3,) and grad.dtype == dtype


# ---------------------------------------------------------------------------------------------
# squared hinge near the largest float32: h' = 2 v is scaled (1/C, 1/N, weights) before it
# could overflow, as torch's multi_margin_loss(p=2) does
# ---------------------------------------------------------------------------------------------


def test_squared_weston_watkins_gradient_does_not_overflow_in_float32():
    import fastloss
    x = np.array([[0, -2e38 / 1.5, 5e37]], dtype=np.float32)
    _, g = fastloss.hinge_value_and_grad(x, np.array([1]), multiclass="weston_watkins",
                                         squared=True, reduction="sum")
    assert np.all(np.isfinite(g)), g
    # torch's multi_margin_loss(p=2): 2 z / C per class, the label's the negated sum
    z = np.array([1 + 2e38 / 1.5, 1 + 2e38 / 1.5 + 5e37])
    expected = np.array([2 * z[0] / 3, -2 * z.sum() / 3, 2 * z[1] / 3])
    np.testing.assert_allclose(g[0], expected, rtol=1e-6)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.multi_margin_loss(xt, torch.tensor([1]), p=2, reduction="sum").backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("multiclass, x, y, expected", [
    # ovr, mean over 3 rows: -2 (1 + 2e38) / 3 for the label's column, 2 / 3 for the others
    ("ovr", [[-2e38, 0, 0]] * 3, [0] * 3, [-2 * (1 + 2e38) / 3, 2 / 3, 2 / 3]),
    # crammer_singer, mean over 4 rows: 2 (1 + 1.4e38 + 1e38) / 4 = 1.2e38
    ("crammer_singer", [[1.4e38, 0, -1e38]] * 4, [2] * 4, [1.2e38, 0, -1.2e38]),
])
def test_squared_hinge_gradients_do_not_overflow_in_float32(multiclass, x, y, expected):
    import fastloss
    _, g = fastloss.hinge_value_and_grad(np.array(x, dtype=np.float32), np.array(y),
                                         multiclass=multiclass, squared=True)
    assert np.all(np.isfinite(g)), g
    np.testing.assert_allclose(g[0], expected, rtol=1e-6)
    # binary hinge, the same ovr loop
    _, g = fastloss.hinge_value_and_grad(np.full(3, -2e38, np.float32), np.ones(3),
                                         squared=True)
    np.testing.assert_allclose(g, -2 * (1 + 2e38) / 3, rtol=1e-6)


@pytest.mark.parametrize("nan_at", [0, 1])
def test_weston_watkins_nan_score_gives_nan_row(nan_at):
    """A documented difference from torch's multi_margin_loss, which skips the NaN terms."""
    import fastloss
    x = np.array([[0.0, 0.5, 1.0], [0.2, 0.1, -0.3]])
    x[0, nan_at] = np.nan
    loss, g = fastloss.hinge_value_and_grad(x, np.array([0, 1]), multiclass="weston_watkins",
                                            reduction="none")
    assert np.isnan(loss[0]) and np.isfinite(loss[1])
    assert np.isnan(g[0]).any() and np.all(np.isfinite(g[1]))


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("fn, target_dtype", [
    ("hinge_value_and_grad", np.uint8), ("hinge", np.uint8),
    ("softmax_cross_entropy_value_and_grad", np.float32), ("softmax_cross_entropy", np.float32)])
def test_zero_classes_is_refused_before_any_row_output(fn, target_dtype, reduction):
    """0 classes along the class axis of a zero-size view with 2**55 rows: a ValueError naming
    the shape, not a MemoryError from allocating the per-row losses first."""
    import fastloss as fl
    shape = (8, 2 ** 52, 0)
    pred = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0, 0, 0))
    target = np.lib.stride_tricks.as_strided(np.zeros(1, target_dtype), shape, (0, 0, 0))
    with pytest.raises(ValueError, match=r"0 classes along axis 2"):
        getattr(fl, fn)(pred, target, reduction=reduction)


@pytest.mark.parametrize("shape", [(0, 2, 4), (2, 4)])
@pytest.mark.parametrize("pos_weight", [-1 + 0j, np.complex64(2), "2", None])
def test_sigmoid_pos_weight_of_no_real_dtype_is_a_type_error(shape, pos_weight):
    """pos_weight is checked for real numbers also on empty logits, as weight is."""
    import fastloss as fl
    x = np.zeros(shape)
    if pos_weight is None:
        pos_weight = np.array([object()] * 4)
    with pytest.raises(TypeError, match="pos_weight has dtype"):
        fl.sigmoid_cross_entropy_grad(x, np.zeros(shape), pos_weight=pos_weight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("t", [1e15, -1e15, 3e7, -2.5])
def test_sigmoid_targets_outside_unit_interval_do_not_cancel(dtype, t):
    """softplus(-x) t + softplus(x) (1 - t) at x = 0 is log 2 for every t (the two terms'
    log1p parts are summed with coefficient 1, not as t log 2 + (1 - t) log 2), here and in
    the reference; with pos_weight the coefficient is 1 + (pw - 1) t."""
    import fastloss as fl
    import fastloss.reference as ref
    x = np.zeros(6, dtype)
    target = np.full(6, t, dtype)
    tol = 4 * np.finfo(dtype).eps
    for impl in (fl, ref):
        got = impl.sigmoid_cross_entropy(x, target, reduction="none")
        np.testing.assert_allclose(got, math.log(2.0), rtol=tol, atol=0)
        pw = np.full(6, 3.0, dtype)
        got = impl.sigmoid_cross_entropy(x, target, pos_weight=pw, reduction="none")
        expect = (1.0 + 2.0 * float(target[0])) * math.log(2.0)
        np.testing.assert_allclose(got, expect, rtol=tol, atol=0)
