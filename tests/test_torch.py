"""The public fastloss functions against torch.nn.functional directly (values and gradients),
on every case of the table: torch's own loss where torch has it (cross_entropy,
binary_cross_entropy_with_logits, multi_margin_loss, mse_loss), the same formula written with
torch ops and autograd otherwise. Skipped where torch is not installed."""

import numpy as np
import pytest

from .cases import (
    CASE_IDS,
    CASES,
    DTYPES,
    TORCH_REDUCTIONS,
    assert_results_close,
    call,
    public,
    tolerance,
)

torch = pytest.importorskip("torch")
from .torch_equivalents import torch_value_and_grad, uses_torch_function  # noqa: E402

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
TORCH_FUNCTION_CASES = [case for case in CASES if uses_torch_function(case)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", TORCH_REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_torch(case, reduction, dtype):
    pred, target, kwargs = case.make(dtype)
    # torch in float64 on the same (exactly representable) input values
    loss, grad = torch_value_and_grad(case, pred, target, kwargs, reduction)
    if reduction == "none":
        loss = loss.astype(dtype)
    expected = (loss, grad.astype(dtype))
    actual = call(public(), case.loss, "value_and_grad", pred, target, kwargs,
                  reduction=reduction)
    assert_results_close(actual, expected, dtype, case.loss, pred, target, kwargs, reduction,
                         err_msg=f"case {case.id}, reduction {reduction}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_cross_entropy_torch_layout_nchw(dtype):
    """An (N, C, H, W) torch tensor's numpy view with axis=1, as a segmentation model has it."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 3, 4, dtype=dtype, generator=generator, requires_grad=True)
    y = torch.randint(0, 6, (2, 3, 4), generator=generator)
    y[0, 1, 2] = -100
    weight = torch.rand(6, dtype=dtype, generator=generator) + 0.5
    loss = torch.nn.functional.cross_entropy(x, y, weight=weight, label_smoothing=0.1)
    loss.backward()
    fl = public()
    value, grad = fl.softmax_cross_entropy_value_and_grad(
        x.detach().numpy(), y.numpy(), weight=weight.numpy(), label_smoothing=0.1, axis=1)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    assert grad.dtype == np_dtype
    # both torch and fastloss are within the error budget of the dtype
    rtol = 2 * tolerance(np_dtype)
    assert abs(value - loss.item()) <= rtol * abs(loss.item())
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=rtol,
                               atol=rtol * float(x.grad.abs().max()))


def test_every_loss_is_compared_with_a_torch_function():
    assert {case.loss for case in TORCH_FUNCTION_CASES} == {
        "softmax_cross_entropy", "sigmoid_cross_entropy", "hinge", "mse"}
