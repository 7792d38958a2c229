"""``out=``: the gradient is written into the caller's buffer, which is returned; ``out=pred``
overwrites the logits with their gradient and gives the same numbers."""

import numpy as np
import pytest

from .cases import CASE_IDS, CASES, DTYPES, REDUCTIONS, assert_identical, call, public

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
GRAD_FORMS = ("grad", "value_and_grad")


@pytest.mark.parametrize("form", GRAD_FORMS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_out_is_filled_and_returned(case, dtype, reduction, form):
    fl = public()
    pred, target, kwargs = case.make(dtype)
    expected = call(fl, case.loss, form, pred, target, kwargs, reduction=reduction)
    out = np.full(pred.shape, np.nan, dtype=dtype)
    result = call(fl, case.loss, form, pred, target, kwargs, reduction=reduction, out=out)
    assert result[1] is out
    assert_identical(result, expected, err_msg=case.id)


@pytest.mark.parametrize("form", GRAD_FORMS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_out_is_pred_overwrites_logits_with_gradient(case, dtype, reduction, form):
    fl = public()
    pred, target, kwargs = case.make(dtype)
    expected = call(fl, case.loss, form, pred.copy(), target, kwargs, reduction=reduction)
    result = call(fl, case.loss, form, pred, target, kwargs, reduction=reduction, out=pred)
    assert result[1] is pred
    assert_identical(result, expected, err_msg=case.id)


@pytest.mark.parametrize("form", GRAD_FORMS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_new_gradient_shares_no_memory_with_inputs(case, form):
    fl = public()
    pred, target, kwargs = case.make(np.float64)
    value, grad = call(fl, case.loss, form, pred, target, kwargs, reduction="none")
    inputs = [pred, target] + [v for v in kwargs.values() if isinstance(v, np.ndarray)]
    for array in inputs:
        assert not np.shares_memory(grad, array)
        if value is not None:
            assert not np.shares_memory(value, array)
    if value is not None:
        assert not np.shares_memory(value, grad)
    assert grad.flags.c_contiguous and grad.flags.writeable


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_out_shares_memory_only_with_itself(case):
    fl = public()
    pred, target, kwargs = case.make(np.float64)
    out = np.empty_like(pred)
    value, grad = call(fl, case.loss, "value_and_grad", pred, target, kwargs, reduction="none",
                       out=out)
    assert np.shares_memory(grad, out)
    assert not np.shares_memory(grad, pred)
    assert not np.shares_memory(value, out)
    _, in_place = call(fl, case.loss, "grad", pred, target, kwargs, out=pred)
    assert np.shares_memory(in_place, pred) and in_place is pred


def test_out_view_of_a_larger_contiguous_buffer():
    """A C-contiguous view (a block of rows of a bigger array) is a valid out."""
    fl = public()
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((4, 5))
    labels = np.array([0, 1, 2, 3])
    buffer = np.full((10, 5), -1.0)
    out = buffer[3:7]
    assert out.flags.c_contiguous
    result = fl.softmax_cross_entropy_grad(pred, labels, out=out)
    assert result is out
    np.testing.assert_array_equal(out, fl.softmax_cross_entropy_grad(pred, labels))
    assert np.all(buffer[:3] == -1.0) and np.all(buffer[7:] == -1.0)
