"""The one table of losses and options that drives the parametrised tests.

Every test that compares numbers loops over :data:`CASES` (a loss with one combination of options,
target kind and shape) times the forms, reductions and dtypes below. A failing test's id names the
case, so the input that failed can be rebuilt with ``case.make(dtype)``.
"""

import math
from dataclasses import dataclass, field

import numpy as np

import fastloss.reference as reference

LOSSES = ("softmax_cross_entropy", "sigmoid_cross_entropy", "hinge", "mse")
CLASS_LOSSES = ("softmax_cross_entropy", "hinge")
FORMS = ("value", "grad", "value_and_grad")
REDUCTIONS = ("mean", "sum", "none", "batchmean", "fullmean")
DIVIDING = ("mean", "batchmean", "fullmean")   # the reductions that divide the sum
TORCH_REDUCTIONS = ("mean", "sum", "none")      # the ones torch has (Caffe's are fastloss's own)
DTYPES = (np.float32, np.float64)


def public():
    """The compiled public API, imported lazily so the table can be collected without it."""
    import fastloss

    return fastloss


@dataclass(frozen=True)
class Case:
    """One loss with one set of options.

    ``target`` names how the target is generated (see :meth:`make_target`), ``arrays`` maps an
    array-valued option to the shape it is generated with: ``"classes"`` (C,), ``"rows"`` the row
    shape (pred's shape without the class axis), ``"pred"`` pred's shape, ``"last"``
    (pred.shape[-1],), ``"col"`` pred.shape[:-1] + (1,), ``"scalar"`` a 0-d array.
    """

    loss: str
    name: str
    shape: tuple
    target: str
    options: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    target_dtype: str = "int64"
    seed: int = 0

    @property
    def id(self):
        return f"{self.loss}-{self.name}"

    @property
    def is_class_loss(self):
        return self.loss in CLASS_LOSSES and not self.is_binary_hinge

    @property
    def is_binary_hinge(self):
        return self.loss == "hinge" and self.target in ("pm1", "binary01")

    @property
    def class_axis(self):
        return self.options.get("axis", -1) % len(self.shape)

    @property
    def n_classes(self):
        return self.shape[self.class_axis]

    @property
    def row_shape(self):
        """Shape of reduction="none" values: pred's shape without the class axis (class losses),
        pred's shape (elementwise losses and binary hinge)."""
        if not self.is_class_loss:
            return self.shape
        return self.shape[: self.class_axis] + self.shape[self.class_axis + 1:]

    def make(self, dtype=np.float64, seed=None):
        """(pred, target, kwargs) for this case; pred in ``dtype``, everything else float64 or
        the case's integer dtype."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        pred = np.asarray((2.0 * rng.standard_normal(self.shape)).astype(dtype))
        target = np.asarray(self.make_target(rng))
        kwargs = dict(self.options)
        for name, kind in self.arrays.items():
            kwargs[name] = np.asarray(self.make_array(rng, kind))
        return pred, target, kwargs

    def make_target(self, rng):
        kind, shape, n_classes = self.target, self.shape, None
        if self.is_class_loss:
            n_classes = self.n_classes
        if kind == "labels":
            return rng.integers(0, n_classes, size=self.row_shape).astype(self.target_dtype)
        if kind == "labels_ignored":
            labels = rng.integers(0, n_classes, size=self.row_shape).astype(self.target_dtype)
            flat = labels.reshape(-1)
            ignore_index = self.options.get("ignore_index", -100)
            flat[::3] = ignore_index  # rows 0, 3, 6, ... ignored; the others kept
            return labels
        if kind == "probs":
            raw = rng.uniform(0.0, 1.0, size=shape)
            return raw / raw.sum(axis=self.class_axis, keepdims=True)
        if kind == "soft_unnormalized":  # rows need not sum to 1, entries may be negative
            return rng.uniform(-0.5, 1.5, size=shape)
        if kind == "probs01":
            return rng.uniform(0.0, 1.0, size=shape)
        if kind == "binary01":
            return rng.integers(0, 2, size=shape).astype(self.target_dtype)
        if kind == "pm1":
            return (2 * rng.integers(0, 2, size=shape) - 1).astype(self.target_dtype)
        if kind == "multilabel":
            return rng.integers(0, 2, size=shape).astype(self.target_dtype)
        if kind == "real":
            return rng.standard_normal(shape)
        raise AssertionError(f"unknown target kind {kind!r}")

    def make_array(self, rng, kind):
        shapes = {
            "classes": lambda: (self.n_classes,),
            "rows": lambda: self.row_shape,
            "pred": lambda: self.shape,
            "last": lambda: self.shape[-1:],
            "col": lambda: self.shape[:-1] + (1,),
            "scalar": lambda: (),
        }
        return rng.uniform(0.5, 2.0, size=shapes[kind]())


def _cases():
    sce, sig, hin, mse = LOSSES
    n, c = 7, 5
    nd = (3, 5, 2, 4)  # torch's (N, C, d1, d2) layout, used with axis=1
    ax1 = {"axis": 1}
    return [
        # softmax cross-entropy, integer targets
        Case(sce, "labels", (n, c), "labels"),
        Case(sce, "labels_int32", (n, c), "labels", target_dtype="int32"),
        Case(sce, "labels_uint8", (n, c), "labels", target_dtype="uint8"),
        Case(sce, "labels_int8", (n, c), "labels", target_dtype="int8"),
        Case(sce, "labels_uint64", (n, c), "labels", target_dtype="uint64"),
        Case(sce, "labels_int16_ignore", (n, c), "labels_ignored", target_dtype="int16"),
        Case(sce, "weight", (n, c), "labels", arrays={"weight": "classes"}),
        Case(sce, "sample_weight", (n, c), "labels", arrays={"sample_weight": "rows"}),
        Case(sce, "ignore", (n, c), "labels_ignored"),
        Case(sce, "ignore_class_1", (n, c), "labels_ignored", {"ignore_index": 1}),
        Case(sce, "smoothing", (n, c), "labels", {"label_smoothing": 0.1}),
        Case(sce, "all_options", (n, c), "labels_ignored", {"label_smoothing": 0.2},
             {"weight": "classes", "sample_weight": "rows"}),
        Case(sce, "one_row_1d", (c,), "labels"),
        Case(sce, "leading_axes_3d", (2, 3, c), "labels", arrays={"weight": "classes"}),
        Case(sce, "one_class", (n, 1), "labels"),
        Case(sce, "odd_classes", (4, 37), "labels", {"label_smoothing": 0.05}),
        Case(sce, "wide_all_options", (5, 257), "labels_ignored", {"label_smoothing": 0.1},
             {"weight": "classes", "sample_weight": "rows"}),
        Case(sce, "wide_probs", (5, 257), "probs", arrays={"weight": "classes"}),
        Case(sce, "axis1", nd, "labels", ax1),
        Case(sce, "axis1_all_options", nd, "labels_ignored", {"axis": 1, "label_smoothing": 0.1},
             {"weight": "classes", "sample_weight": "rows"}),
        # softmax cross-entropy, probability targets
        Case(sce, "probs", (n, c), "probs"),
        Case(sce, "probs_weight_smoothing", (n, c), "probs", {"label_smoothing": 0.15},
             {"weight": "classes"}),
        Case(sce, "probs_sample_weight", (n, c), "probs", arrays={"sample_weight": "rows"}),
        Case(sce, "soft_unnormalized", (n, c), "soft_unnormalized", arrays={"weight": "classes"}),
        Case(sce, "probs_one_row_1d", (c,), "probs"),
        Case(sce, "probs_axis1", nd, "probs", ax1, {"weight": "classes"}),
        # sigmoid cross-entropy
        Case(sig, "probs", (n, c), "probs01"),
        Case(sig, "binary", (n, c), "binary01", target_dtype="float64"),
        Case(sig, "scalar_0d", (), "probs01"),
        Case(sig, "vector_1d", (9,), "probs01"),
        Case(sig, "tensor_3d", (2, 3, 4), "probs01"),
        Case(sig, "weight_full", (n, c), "probs01", arrays={"weight": "pred"}),
        Case(sig, "weight_col", (n, c), "probs01", arrays={"weight": "col"}),
        Case(sig, "weight_last", (n, c), "probs01", arrays={"weight": "last"}),
        Case(sig, "weight_scalar", (n, c), "probs01", arrays={"weight": "scalar"}),
        Case(sig, "pos_weight", (n, c), "binary01", arrays={"pos_weight": "last"},
             target_dtype="float64"),
        Case(sig, "weight_pos_weight", (2, 3, 4), "probs01",
             arrays={"weight": "pred", "pos_weight": "last"}),
        # hinge, binary
        Case(hin, "binary_pm1", (9,), "pm1"),
        Case(hin, "binary_01", (9,), "binary01"),
        Case(hin, "binary_pm1_float", (9,), "pm1", target_dtype="float64"),
        Case(hin, "binary_01_float32_target", (9,), "binary01", target_dtype="float32"),
        Case(hin, "binary_0d", (), "pm1"),
        Case(hin, "binary_sample_weight", (9,), "pm1", arrays={"sample_weight": "pred"}),
        Case(hin, "binary_squared_int_margin", (9,), "binary01", {"squared": True, "margin": 2}),
        Case(hin, "binary_margin_half", (9,), "pm1", {"margin": 0.5}),
        # hinge, one-vs-rest
        Case(hin, "ovr", (n, c), "labels"),
        Case(hin, "ovr_weight_sample_weight", (n, c), "labels", {},
             {"weight": "classes", "sample_weight": "rows"}),
        Case(hin, "ovr_squared_margin", (n, c), "labels", {"squared": True, "margin": 1.5}),
        Case(hin, "ovr_multilabel", (n, c), "multilabel"),
        Case(hin, "cs_labels_uint16", (n, c), "labels", {"multiclass": "crammer_singer"},
             target_dtype="uint16"),
        Case(hin, "ovr_multilabel_float_weight", (n, c), "multilabel", {},
             {"weight": "classes"}, target_dtype="float64"),
        Case(hin, "ovr_one_row_1d", (c,), "labels"),
        Case(hin, "ovr_axis1", nd, "labels", ax1, {"sample_weight": "rows"}),
        Case(hin, "ovr_wide_squared", (5, 257), "labels", {"squared": True},
             {"weight": "classes"}),
        # hinge, Weston-Watkins (torch's multi_margin_loss)
        Case(hin, "ww", (n, c), "labels", {"multiclass": "weston_watkins"}),
        Case(hin, "ww_squared_weight_margin", (n, c), "labels",
             {"multiclass": "weston_watkins", "squared": True, "margin": 0.5},
             {"weight": "classes"}),
        Case(hin, "ww_sample_weight", (n, c), "labels", {"multiclass": "weston_watkins"},
             {"sample_weight": "rows"}),
        Case(hin, "ww_one_row_1d", (c,), "labels", {"multiclass": "weston_watkins", "margin": 3}),
        Case(hin, "ww_axis1", nd, "labels", {"multiclass": "weston_watkins", "axis": 1}),
        Case(hin, "ww_wide", (5, 257), "labels", {"multiclass": "weston_watkins"},
             {"weight": "classes"}),
        Case(hin, "ww_wide_squared", (5, 257), "labels",
             {"multiclass": "weston_watkins", "squared": True}),
        # hinge, Crammer-Singer
        Case(hin, "cs", (n, c), "labels", {"multiclass": "crammer_singer"}),
        Case(hin, "cs_squared_weight_sample_weight", (n, c), "labels",
             {"multiclass": "crammer_singer", "squared": True},
             {"weight": "classes", "sample_weight": "rows"}),
        Case(hin, "cs_axis1", nd, "labels", {"multiclass": "crammer_singer", "axis": 1,
                                              "margin": 2.0}),
        Case(hin, "cs_wide", (5, 257), "labels", {"multiclass": "crammer_singer"}),
        Case(hin, "binary_long", (1001,), "pm1", arrays={"sample_weight": "pred"}),
        Case(sig, "wide_weights", (3, 1001), "probs01", {},
             {"weight": "col", "pos_weight": "last"}),
        # mean squared error
        Case(mse, "basic", (n, c), "real"),
        Case(mse, "scalar_0d", (), "real"),
        Case(mse, "tensor_3d", (2, 3, 4), "real"),
        Case(mse, "weight_full", (n, c), "real", arrays={"weight": "pred"}),
        Case(mse, "weight_col", (n, c), "real", arrays={"weight": "col"}),
        Case(mse, "weight_last", (n, c), "real", arrays={"weight": "last"}),
        Case(mse, "weight_scalar", (n, c), "real", arrays={"weight": "scalar"}),
        Case(mse, "wide_weight", (3, 1001), "real", arrays={"weight": "pred"}),
    ]


CASES = _cases()
CASE_IDS = [case.id for case in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "case ids must be unique"

# One representative case per loss (and per hinge mode), for the more expensive tests.
REPRESENTATIVE = [
    case for case in CASES
    if case.id in {
        "softmax_cross_entropy-all_options",
        "softmax_cross_entropy-probs_weight_smoothing",
        "softmax_cross_entropy-axis1_all_options",
        "sigmoid_cross_entropy-weight_pos_weight",
        "hinge-binary_sample_weight",
        "hinge-ovr_weight_sample_weight",
        "hinge-ovr_multilabel",
        "hinge-ww_squared_weight_margin",
        "hinge-cs_squared_weight_sample_weight",
        "mse-weight_col",
    }
]
assert len(REPRESENTATIVE) == 10


def case_by_id(case_id):
    return next(case for case in CASES if case.id == case_id)


# ---------------------------------------------------------------------------------------------
# Calling a loss in one of its three forms
# ---------------------------------------------------------------------------------------------


def call(module, loss, form, pred, target, kwargs, **extra):
    """Call ``loss`` of ``module`` in ``form``; returns (value, grad) with None for what the
    form does not compute."""
    kwargs = {**kwargs, **extra}
    if form == "value":
        return getattr(module, loss)(pred, target, **kwargs), None
    if form == "grad":
        return None, getattr(module, loss + "_grad")(pred, target, **kwargs)
    if form == "value_and_grad":
        result = getattr(module, loss + "_value_and_grad")(pred, target, **kwargs)
        assert isinstance(result, tuple) and len(result) == 2
        return result
    raise AssertionError(f"unknown form {form!r}")


def reference_value_and_grad(loss, pred, target, kwargs, **extra):
    return call(reference, loss, "value_and_grad", pred, target, kwargs, **extra)


# ---------------------------------------------------------------------------------------------
# Tolerances
# ---------------------------------------------------------------------------------------------

# Error budget, in units of the result dtype's machine epsilon. SPEC promises per-element results
# within a few ULP of the exact value; on top of that, evaluating at rounded intermediates (x - max,
# margin - t * x) costs a few ULP of the inputs' magnitude, and a float64 sum of N terms costs up
# to about log2(N) (pairwise) ... N (sequential) ULP of the sum of |terms|. The suites use at most a
# few hundred terms, so 64 ULP (float32, where per-element errors dominate) and 256 ULP (float64,
# where the accumulation order can dominate) bound every legitimate difference; a wrong formula
# is off by far more.
ULPS = {np.dtype(np.float32): 64, np.dtype(np.float64): 256}


def tolerance(dtype):
    dtype = np.dtype(dtype)
    return ULPS[dtype] * float(np.finfo(dtype).eps)


def underflow(dtype):
    """Absolute error allowed per term for values below the dtype's normal range, which it
    cannot represent to relative precision (SPEC: "wherever it is representable")."""
    return 4 * float(np.finfo(dtype).tiny)


def assert_array_close(actual, expected, dtype, err_msg="", term_scale=0.0):
    """Elementwise: |a - e| <= tol * (|e| + S) + underflow with S = max(max|e|, term_scale): the
    error of an element is relative to its own magnitude and to that of the terms it was computed
    from, estimated by the array's largest element or given as ``term_scale`` (see
    :func:`grad_term_scale`). NaN must match NaN and infinities must match exactly."""
    assert isinstance(actual, np.ndarray), f"expected an ndarray, got {type(actual)}"
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    finite = np.isfinite(expected)
    scale = max(float(np.max(np.abs(expected[finite]), initial=0.0)), term_scale)
    tol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale + underflow(dtype),
                               equal_nan=True, err_msg=err_msg)


def assert_value_close(actual, expected, dtype, scale, n_terms=1, err_msg=""):
    """A reduced loss (Python float): |a - e| <= tol * scale + n_terms * underflow, where
    ``scale`` is the reduction of |terms| (see :func:`value_scale`)."""
    assert type(actual) is float, f"expected a Python float, got {type(actual)} {err_msg}"
    assert type(expected) is float
    if math.isnan(expected) or math.isinf(expected):
        assert actual == expected or (math.isnan(actual) and math.isnan(expected)), (
            f"{actual!r} != {expected!r} {err_msg}"
        )
        return
    bound = tolerance(dtype) * max(scale, abs(expected)) + n_terms * underflow(dtype)
    assert abs(actual - expected) <= bound, (
        f"{actual!r} != {expected!r} (|diff| = {abs(actual - expected):.3g} > {bound:.3g}) "
        f"{err_msg}"
    )


def value_scale(loss, pred, target, kwargs, reduction):
    """Magnitude that bounds the rounding error of a reduced loss: the same reduction applied to
    the absolute values of the terms (sum|l_i|, or sum|l_i| / |denominator| for the mean)."""
    terms = getattr(reference, loss)(pred, target, **{**kwargs, "reduction": "none"})
    terms = np.asarray(terms, dtype=np.float64)
    total_abs = float(np.sum(np.abs(terms[np.isfinite(terms)])))
    if reduction not in DIVIDING:
        return total_abs
    total = getattr(reference, loss)(pred, target, **{**kwargs, "reduction": "sum"})
    mean = getattr(reference, loss)(pred, target, **{**kwargs, "reduction": reduction})
    if total == 0 or not math.isfinite(total) or not math.isfinite(mean):
        return total_abs
    return total_abs * abs(mean / total)


def _mean_factor(loss, pred, target, kwargs, reduction="mean"):
    """1 / |denominator| of a dividing reduction, read off the reference as |mean / sum| (1 when
    undefined)."""
    total = getattr(reference, loss)(pred, target, **{**kwargs, "reduction": "sum"})
    mean = getattr(reference, loss)(pred, target, **{**kwargs, "reduction": reduction})
    if total == 0 or not math.isfinite(total) or not math.isfinite(mean):
        return 1.0
    return abs(mean / total)


def grad_term_scale(loss, pred, target, kwargs, reduction):
    """Largest magnitude of the two terms whose difference is a gradient element, for the losses
    whose gradient is such a difference (it can cancel to 0 exactly, e.g. uniform logits with a
    uniform target): softmax CE p_k * sum(a) - a_k, sigmoid CE
    w (1 - t) sigmoid(x) - w pw t (1 - sigmoid(x)). 0 for the other losses."""
    x = np.asarray(pred, dtype=np.float64)
    if x.size == 0 or loss not in ("softmax_cross_entropy", "sigmoid_cross_entropy"):
        return 0.0
    t = np.asarray(target)
    if loss == "softmax_cross_entropy":
        axis = kwargs.get("axis", -1) % x.ndim
        n_classes = x.shape[axis]
        along_axis = [-1 if d == axis else 1 for d in range(x.ndim)]
        if np.issubdtype(t.dtype, np.integer):
            t = (np.expand_dims(t, axis) == np.arange(n_classes).reshape(along_axis)) * 1.0
        eps = kwargs.get("label_smoothing", 0.0)
        a = np.abs((1 - eps) * t + eps / n_classes)
        if kwargs.get("weight") is not None:
            a = a * np.abs(np.asarray(kwargs["weight"])).reshape(along_axis)
        rows = a.sum(axis=axis) + a.max(axis=axis)  # |p_k A| <= sum|a|, plus |a_k|
        if kwargs.get("sample_weight") is not None:
            rows = rows * np.abs(kwargs["sample_weight"])
        scale = float(np.max(rows))
    else:
        t = t.astype(np.float64)
        w = 1.0 if kwargs.get("weight") is None else np.abs(kwargs["weight"])
        pw = 1.0 if kwargs.get("pos_weight") is None else np.abs(kwargs["pos_weight"])
        scale = float(np.max(np.broadcast_to(w * (np.abs(1 - t) + pw * np.abs(t)), x.shape)))
    if reduction in DIVIDING:
        scale *= _mean_factor(loss, pred, target, kwargs, reduction)
    return scale


def assert_results_close(actual, expected, dtype, loss, pred, target, kwargs, reduction,
                         err_msg=""):
    """Compare (value, grad) pairs; None entries (not computed by a form) are skipped."""
    value, grad = actual
    ref_value, ref_grad = expected
    if value is not None:
        if reduction == "none":
            assert value.dtype == np.dtype(dtype), f"none values have dtype {value.dtype}"
            assert_array_close(value, ref_value, dtype, err_msg=f"loss values {err_msg}")
        else:
            scale = value_scale(loss, pred, target, kwargs, reduction)
            assert_value_close(value, ref_value, dtype, scale, np.size(pred),
                               err_msg=f"loss {err_msg}")
    if grad is not None:
        assert grad.dtype == np.dtype(dtype), f"gradient has dtype {grad.dtype} {err_msg}"
        assert grad.shape == np.shape(ref_grad), f"gradient has shape {grad.shape} {err_msg}"
        term_scale = grad_term_scale(loss, pred, target, kwargs, reduction)
        assert_array_close(grad, ref_grad, dtype, err_msg=f"gradient {err_msg}",
                           term_scale=term_scale)


def assert_identical(actual, expected, err_msg=""):
    """Bitwise equality of (value, grad) pairs, NaN included."""
    for a, e, what in zip(actual, expected, ("loss", "gradient")):
        if a is None or e is None:
            continue
        if isinstance(e, float):
            assert type(a) is float, f"{what}: {type(a)} {err_msg}"
            assert np.float64(a).tobytes() == np.float64(e).tobytes(), (
                f"{what}: {a!r} != {e!r} {err_msg}"
            )
        else:
            assert isinstance(a, np.ndarray), f"{what}: {type(a)} {err_msg}"
            assert a.dtype == e.dtype and a.shape == e.shape, f"{what} {err_msg}"
            assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(e).tobytes(), (
                f"{what} differs bitwise {err_msg}"
            )


def numerical_grad(f, x, h=1e-6):
    """Central finite differences of the scalar function f at float64 x (one coordinate at a
    time, as scikit-learn's ``numerical_derivative``). Error: O(h**2 f''') + O(eps |f| / h)."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2.0 * h)
    return grad


def numerical_directional_derivative(f, x, direction, h=1e-6):
    """(f(x + h d) - f(x - h d)) / 2h along a unit-norm direction d, to be compared with
    <grad, d>; same error terms as numerical_grad."""
    x = np.array(x, dtype=np.float64)
    return (f(x + h * direction) - f(x - h * direction)) / (2.0 * h)


def reduced_scalar(value):
    """The scalar a gradient is taken of: the value itself, or the sum of reduction="none"."""
    if isinstance(value, np.ndarray):
        return float(np.sum(value, dtype=np.float64))
    return float(value)
