"""The generic test: every loss x option (the table in ``cases``) x form x reduction x dtype of the
compiled API against the NumPy reference, plus the checks that tie the forms together
(fused == separate, gradient == finite differences, float32 ~ float64)."""

import numpy as np
import pytest

import fastloss.reference as reference

from .cases import (
    CASE_IDS,
    CASES,
    DIVIDING,
    DTYPES,
    FORMS,
    REDUCTIONS,
    assert_identical,
    assert_results_close,
    call,
    numerical_directional_derivative,
    numerical_grad,
    public,
    reduced_scalar,
    reference_value_and_grad,
    tolerance,
)

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_reference(case, form, reduction, dtype):
    pred, target, kwargs = case.make(dtype)
    expected = reference_value_and_grad(case.loss, pred, target, kwargs, reduction=reduction)
    actual = call(public(), case.loss, form, pred, target, kwargs, reduction=reduction)
    assert_results_close(actual, expected, dtype, case.loss, pred, target, kwargs, reduction,
                         err_msg=f"case {case.id}, form {form}, reduction {reduction}")
    if reduction == "none":
        value = actual[0]
        if value is not None:
            assert value.shape == case.row_shape


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_value_and_grad_equals_separate_forms(case, reduction, dtype):
    """The fused form gives the same bits as the value form and the gradient form."""
    fl = public()
    pred, target, kwargs = case.make(dtype)
    value, _ = call(fl, case.loss, "value", pred, target, kwargs, reduction=reduction)
    _, grad = call(fl, case.loss, "grad", pred, target, kwargs, reduction=reduction)
    fused = call(fl, case.loss, "value_and_grad", pred, target, kwargs, reduction=reduction)
    assert_identical(fused, (value, grad), err_msg=f"case {case.id}, reduction {reduction}")


# Central differences with h = 1e-6 in float64 err by O(h**2 |f'''|) ~ 1e-12 (truncation) plus
# O(eps |f| / h) ~ 2e-10 |f| (rounding); 1e-8 (1 + |f|) bounds both with a wide margin, while a
# wrong gradient (a missing factor, a wrong denominator) is off by far more.
def _assert_matches_finite_differences(module, case, reduction):
    pred, target, kwargs = case.make(np.float64)

    def f(x):
        value, _ = call(module, case.loss, "value", x, target, kwargs, reduction=reduction)
        return reduced_scalar(value)

    _, grad = call(module, case.loss, "grad", pred, target, kwargs, reduction=reduction)
    atol = 1e-8 * (1.0 + abs(f(pred)))
    if pred.size <= 256:
        expected = numerical_grad(f, pred)
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=atol,
                                   err_msg=f"case {case.id}, reduction {reduction}")
        return
    # big inputs: directional derivatives along a few random unit directions
    rng = np.random.default_rng(1)
    for _ in range(4):
        direction = rng.standard_normal(pred.shape)
        direction /= np.linalg.norm(direction)
        expected = numerical_directional_derivative(f, pred, direction)
        actual = float(np.sum(grad * direction))
        assert abs(actual - expected) <= 1e-6 * abs(expected) + atol, (
            f"case {case.id}, reduction {reduction}: <grad, d> = {actual!r}, finite "
            f"differences {expected!r}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradient_matches_finite_differences(case, reduction):
    _assert_matches_finite_differences(public(), case, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_gradient_matches_finite_differences(case, reduction):
    _assert_matches_finite_differences(reference, case, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float32_agrees_with_float64(case, reduction):
    """float32 input gives float32 results within float32 tolerance of the float64 results on
    the same (exactly representable) input values."""
    fl = public()
    pred32, target, kwargs = case.make(np.float32)
    pred64 = pred32.astype(np.float64)
    value32, grad32 = call(fl, case.loss, "value_and_grad", pred32, target, kwargs,
                           reduction=reduction)
    value64, grad64 = call(fl, case.loss, "value_and_grad", pred64, target, kwargs,
                           reduction=reduction)
    assert grad32.dtype == np.float32 and grad64.dtype == np.float64
    tol = tolerance(np.float32)
    np.testing.assert_allclose(grad32, grad64, rtol=tol,
                               atol=tol * float(np.max(np.abs(grad64), initial=0.0)))
    if reduction == "none":
        assert value32.dtype == np.float32 and value64.dtype == np.float64
        np.testing.assert_allclose(value32, value64, rtol=tol,
                                   atol=tol * float(np.max(np.abs(value64), initial=0.0)))
    else:
        assert type(value32) is float and type(value64) is float
        terms = np.asarray(call(fl, case.loss, "value", pred64, target, kwargs,
                                reduction="none")[0])
        scale = float(np.sum(np.abs(terms)))
        if reduction in DIVIDING:
            total = call(fl, case.loss, "value", pred64, target, kwargs, reduction="sum")[0]
            scale *= abs(value64 / total) if total else 1.0
        assert abs(value32 - value64) <= tol * max(scale, abs(value64))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_forms_agree(case):
    """The reference's own three forms agree (they share one implementation)."""
    pred, target, kwargs = case.make(np.float64)
    value, _ = call(reference, case.loss, "value", pred, target, kwargs)
    _, grad = call(reference, case.loss, "grad", pred, target, kwargs)
    assert_identical(call(reference, case.loss, "value_and_grad", pred, target, kwargs),
                     (value, grad))
