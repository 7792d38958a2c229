"""The NumPy reference (fastloss.reference) agrees with PyTorch, values and gradients.

Every case of the table is compared in float64 with its torch equivalent (torch's own loss
function where torch has it, see ``torch_equivalents``), for every reduction.
"""

import numpy as np
import pytest

import fastloss.reference as reference

from .cases import CASE_IDS, CASES, TORCH_REDUCTIONS, assert_results_close, call

torch = pytest.importorskip("torch")
from .torch_equivalents import torch_value_and_grad, uses_torch_function  # noqa: E402


@pytest.mark.parametrize("reduction", TORCH_REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_matches_torch(case, reduction):
    pred, target, kwargs = case.make(np.float64)
    expected = torch_value_and_grad(case, pred, target, kwargs, reduction)
    actual = call(reference, case.loss, "value_and_grad", pred, target, kwargs,
                  reduction=reduction)
    assert_results_close(actual, expected, np.float64, case.loss, pred, target, kwargs,
                         reduction, err_msg=f"case {case.id}, reduction {reduction}")


def test_torch_functions_cover_every_loss():
    """The comparison above is against torch's own functions for every loss, not only against
    formulas written with torch ops."""
    covered = {case.loss for case in CASES if uses_torch_function(case)}
    assert covered == {"softmax_cross_entropy", "sigmoid_cross_entropy", "hinge", "mse"}
