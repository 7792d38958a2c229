"""Property tests: random shapes, dtypes, axes, options and values against the reference."""

import numpy as np
import pytest

import fastloss.reference as reference

from .cases import (
    REDUCTIONS,
    assert_array_close,
    assert_value_close,
    call,
    grad_term_scale,
    public,
    value_scale,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
dtypes = st.sampled_from([np.float32, np.float64])
reductions = st.sampled_from(REDUCTIONS)


def _compare(loss, pred, target, kwargs, reduction):
    dtype = pred.dtype
    value, grad = call(public(), loss, "value_and_grad", pred, target, kwargs,
                       reduction=reduction)
    # fastloss converts floating targets to pred's dtype (the user guide's "Where PyTorch
    # is silent or wrong": dtypes of targets and weights);
    # the float64 reference sees the same converted numbers.
    if np.asarray(target).dtype.kind == "f":
        target = np.asarray(target).astype(dtype)
    ref_value, ref_grad = call(reference, loss, "value_and_grad", pred, target, kwargs,
                               reduction=reduction)
    assert_array_close(grad, ref_grad, dtype, err_msg="gradient",
                       term_scale=grad_term_scale(loss, pred, target, kwargs, reduction))
    if reduction == "none":
        assert_array_close(value, ref_value, dtype, err_msg="values")
    else:
        scale = value_scale(loss, pred, target, kwargs, reduction)
        assert_value_close(value, ref_value, dtype, scale, np.size(pred))


@st.composite
def logits_and_labels(draw):
    dtype = draw(dtypes)
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    axis = draw(st.sampled_from([-1] + ([1] if ndim >= 2 else [])))
    n_classes = draw(st.integers(1, 40))
    shape = list(shape)
    shape[axis] = n_classes
    shape = tuple(shape)
    scale = draw(st.sampled_from([1.0, 10.0, 60.0]))
    pred = draw(hnp.arrays(dtype, shape, elements=st.floats(-1, 1, width=32))) * dtype(scale)
    row_shape = shape[:axis % ndim] + shape[axis % ndim + 1:]
    kwargs = {"axis": axis}
    if draw(st.booleans()):
        labels = draw(hnp.arrays(np.int64, row_shape, elements=st.integers(-1, n_classes - 1)))
        target = np.where(labels < 0, -100, labels)  # some rows ignored
    else:
        target = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1, width=32)))
    if draw(st.booleans()):
        kwargs["weight"] = draw(hnp.arrays(np.float64, (n_classes,),
                                           elements=st.floats(0.25, 4)))
    if draw(st.booleans()):
        kwargs["sample_weight"] = draw(hnp.arrays(np.float64, row_shape,
                                                  elements=st.floats(0.25, 4)))
    kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5]))
    return pred, target, kwargs


@SETTINGS
@given(data=logits_and_labels(), reduction=reductions)
def test_softmax_cross_entropy_property(data, reduction):
    pred, target, kwargs = data
    _compare("softmax_cross_entropy", pred, target, kwargs, reduction)


@st.composite
def elementwise_inputs(draw, loss):
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
    scale = draw(st.sampled_from([1.0, 10.0, 40.0]))
    pred = draw(hnp.arrays(dtype, shape, elements=st.floats(-1, 1, width=32))) * dtype(scale)
    # Targets representable in pred's dtype: the API may cast the target to pred's dtype, which
    # is not what is compared here.
    if loss == "sigmoid_cross_entropy":
        target = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1, width=32)))
    else:
        target = draw(hnp.arrays(np.float64, shape, elements=st.floats(-5, 5, width=32)))
    kwargs = {}
    if draw(st.booleans()):  # weight of a shape that broadcasts to pred's
        weight_shape = tuple(draw(st.sampled_from([1, n])) for n in shape)
        weight_shape = weight_shape[draw(st.integers(0, len(weight_shape))):]
        kwargs["weight"] = draw(hnp.arrays(np.float64, weight_shape,
                                           elements=st.floats(0.25, 4)))
    if loss == "sigmoid_cross_entropy" and shape and draw(st.booleans()):
        kwargs["pos_weight"] = draw(hnp.arrays(np.float64, shape[-1:],
                                               elements=st.floats(0.25, 4)))
    return pred, target, kwargs


@SETTINGS
@given(data=elementwise_inputs("sigmoid_cross_entropy"), reduction=reductions)
def test_sigmoid_cross_entropy_property(data, reduction):
    _compare("sigmoid_cross_entropy", *data, reduction)


@SETTINGS
@given(data=elementwise_inputs("mse"), reduction=reductions)
def test_mse_property(data, reduction):
    _compare("mse", *data, reduction)


@st.composite
def hinge_inputs(draw):
    """Scores on a grid of eighths: every margin violation is computed exactly in either
    precision, so kink decisions cannot differ between implementations by rounding."""
    dtype = draw(dtypes)
    multiclass = draw(st.sampled_from(["ovr", "weston_watkins", "crammer_singer", "binary"]))
    eighths = st.integers(-40, 40).map(lambda k: k / 8)
    kwargs = {"margin": draw(st.sampled_from([0, 1, 1.5, 2.0])),
              "squared": draw(st.booleans())}
    if multiclass == "binary":
        shape = draw(st.sampled_from([(), (0,), (1,), (5,), (33,)]))
        pred = draw(hnp.arrays(dtype, shape, elements=eighths))
        target = draw(hnp.arrays(np.int64, shape, elements=st.sampled_from([-1, 1])))
        if draw(st.booleans()):
            kwargs["sample_weight"] = draw(hnp.arrays(np.float64, shape, elements=eighths.map(
                lambda v: abs(v) + 0.125)))
        return pred, target, kwargs
    kwargs["multiclass"] = multiclass
    n_rows, n_classes = draw(st.integers(0, 6)), draw(st.integers(1, 20))
    pred = draw(hnp.arrays(dtype, (n_rows, n_classes), elements=eighths))
    target = draw(hnp.arrays(np.int64, (n_rows,), elements=st.integers(0, n_classes - 1)))
    if draw(st.booleans()):
        kwargs["weight"] = draw(hnp.arrays(np.float64, (n_classes,),
                                           elements=st.sampled_from([0.5, 1.0, 2.0])))
    return pred, target, kwargs


@SETTINGS
@given(data=hinge_inputs(), reduction=reductions)
def test_hinge_property(data, reduction):
    _compare("hinge", *data, reduction)
