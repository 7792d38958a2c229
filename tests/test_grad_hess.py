"""``*_grad_hess`` (softmax CE, sigmoid CE, MSE): the gradient of the SUM of the per-sample losses
and the diagonal of its Hessian, for gradient boosting. The gradient equals ``_grad`` with
reduction="none"; the Hessian diagonal equals central differences of that gradient."""

import numpy as np
import pytest

import inspect

from .cases import CASES, DTYPES, REGISTRY, assert_array_close, call, public

GRAD_HESS_LOSSES = tuple(name for name, info in REGISTRY.items() if "grad_hess" in info.forms)
GH_CASES = [case for case in CASES if case.loss in GRAD_HESS_LOSSES
            and set(case.options) <= set(inspect.signature(
                REGISTRY[case.loss].functions["grad_hess"]).parameters)]
GH_IDS = [case.id for case in GH_CASES]
DTYPE_IDS = [np.dtype(d).name for d in DTYPES]


def grad_hess(loss):
    function = getattr(public(), loss + "_grad_hess", None)
    if function is None:
        pytest.skip(f"fastloss has no {loss}_grad_hess")
    return function


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", GH_CASES, ids=GH_IDS)
def test_gradient_equals_grad_of_none(case, dtype):
    pred, target, kwargs = case.make(dtype)
    grad, hess = grad_hess(case.loss)(pred, target, **kwargs)
    _, expected = call(public(), case.loss, "grad", pred, target, kwargs, reduction="none")
    assert grad.dtype == hess.dtype == np.dtype(dtype)
    assert grad.shape == hess.shape == pred.shape
    assert_array_close(grad, expected, dtype)


@pytest.mark.parametrize("case", GH_CASES, ids=GH_IDS)
def test_hessian_diagonal_matches_finite_differences(case):
    """d grad_k / d x_k by central differences (h = 1e-6, float64): error O(h**2) + O(eps/h)
    relative to the gradient's scale; 1e-7 (1 + max|hess|) bounds both."""
    pred, target, kwargs = case.make(np.float64)
    _, hess = grad_hess(case.loss)(pred, target, **kwargs)
    flat = pred.reshape(-1)
    indices = range(flat.size) if flat.size <= 256 else \
        np.random.default_rng(0).choice(flat.size, 64, replace=False)
    h = 1e-6
    for k in indices:
        plus, minus = flat.copy(), flat.copy()
        plus[k] += h
        minus[k] -= h
        g_plus = call(public(), case.loss, "grad", plus.reshape(pred.shape), target, kwargs,
                      reduction="none")[1].reshape(-1)[k]
        g_minus = call(public(), case.loss, "grad", minus.reshape(pred.shape), target, kwargs,
                       reduction="none")[1].reshape(-1)[k]
        expected = (g_plus - g_minus) / (2 * h)
        actual = hess.reshape(-1)[k]
        assert abs(actual - expected) <= 1e-6 * abs(expected) + 1e-7 * (1 + np.max(np.abs(hess))), (
            f"{case.id}: hess[{k}] = {actual!r}, finite differences {expected!r}")


@pytest.mark.parametrize("case", GH_CASES[:1], ids=GH_IDS[:1])
def test_out_and_hess_out_are_filled_and_returned(case):
    pred, target, kwargs = case.make(np.float64)
    expected = grad_hess(case.loss)(pred, target, **kwargs)
    out, hess_out = np.empty_like(pred), np.empty_like(pred)
    grad, hess = grad_hess(case.loss)(pred, target, **kwargs, out=out, hess_out=hess_out)
    assert grad is out and hess is hess_out
    np.testing.assert_array_equal(grad, expected[0])
    np.testing.assert_array_equal(hess, expected[1])
