"""``out=``: the gradient is written into the caller's buffer, which is returned; ``out=pred``
overwrites the logits with their gradient and gives the same numbers."""

import numpy as np
import pytest

import fastloss.reference as reference

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "weight": "w"}])
def test_streamed_gradient_equals_in_place_gradient(dtype, options):
    """Gradients of 16 MiB and more leave through a row buffer with non-temporal
    stores; in place they do not.  Both must give the same bits."""
    fl = public()
    rng = np.random.default_rng(3)
    n_rows, n_classes = 2100, 2048 if dtype == np.float32 else 1024
    logits = rng.standard_normal((n_rows, n_classes)).astype(dtype)
    labels = rng.integers(0, n_classes, n_rows)
    opts = dict(options)
    if opts.get("weight") == "w":
        opts["weight"] = rng.random(n_classes)
    assert logits.nbytes >= 16 * 2**20
    value, streamed = fl.softmax_cross_entropy_value_and_grad(logits, labels, **opts)
    in_place = logits.copy()
    value2, _ = fl.softmax_cross_entropy_value_and_grad(in_place, labels, out=in_place, **opts)
    assert value == value2
    assert streamed.tobytes() == in_place.tobytes()
    expected = reference.softmax_cross_entropy_grad(logits, labels, **opts)
    np.testing.assert_allclose(streamed, expected, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-9 / n_rows)
