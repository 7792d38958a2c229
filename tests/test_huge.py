"""Huge C (>= 1,000,000 classes) and huge N (> 2**31 elements) work: no int32 overflow."""

import math

import numpy as np
import pytest

import fastloss.reference as reference

from .cases import assert_array_close, call, public

BIG_C = 1_000_000


@pytest.mark.parametrize("loss, options", [
    ("softmax_cross_entropy", {}),
    ("softmax_cross_entropy", {"label_smoothing": 0.1}),
    ("hinge", {"multiclass": "ovr"}),
    ("hinge", {"multiclass": "weston_watkins"}),
    ("hinge", {"multiclass": "crammer_singer"}),
])
def test_a_million_classes(loss, options):
    """Indexing with C = 10**6 (an overflow would be off by O(1)). A row's value sums C terms;
    the tolerance here is the bound of a sequential float64 sum, C * eps (accuracy beyond that
    is checked by test_sums_over_a_million_classes_are_accurate)."""
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((3, BIG_C))
    labels = np.array([0, BIG_C - 1, BIG_C // 2 + 1])
    for reduction in ("none", "mean"):
        actual = call(public(), loss, "value_and_grad", pred, labels, options,
                      reduction=reduction)
        expected = call(reference, loss, "value_and_grad", pred, labels, options,
                        reduction=reduction)
        tol = BIG_C * np.finfo(np.float64).eps
        grad_scale = float(np.max(np.abs(expected[1])))
        np.testing.assert_allclose(actual[1], expected[1], rtol=tol, atol=tol * grad_scale)
        if reduction == "none":
            np.testing.assert_allclose(actual[0], expected[0], rtol=tol)
        else:
            assert abs(actual[0] - expected[0]) <= tol * abs(expected[0])


@pytest.mark.parametrize("loss, options", [
    ("softmax_cross_entropy", {"label_smoothing": 0.1}),
    ("hinge", {"multiclass": "weston_watkins"}),
])
def test_sums_over_a_million_classes_are_accurate(loss, options):
    """SPEC: per-row losses and gradients within a few ULP of the exact value. A row of 10**6
    terms summed pairwise (or compensated) errs by about log2(C) = 20 ULP; the reference
    (np.sum, pairwise) is within 1 ULP of a math.fsum evaluation here. The suite's float64 budget
    (256 ULP) applies; a plain sequential sum can be off by ~10**4 ULP."""
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((3, BIG_C))
    labels = np.array([0, BIG_C - 1, BIG_C // 2 + 1])
    actual = call(public(), loss, "value_and_grad", pred, labels, options, reduction="none")
    expected = call(reference, loss, "value_and_grad", pred, labels, options, reduction="none")
    assert_array_close(actual[0], expected[0], np.float64, err_msg="row losses")
    assert_array_close(actual[1], expected[1], np.float64, err_msg="gradient")


def _gigabytes_available():
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


needs_memory = pytest.mark.skipif(_gigabytes_available() < 14,
                                  reason="needs about 10 GB of free memory")


@pytest.mark.slow
@needs_memory
def test_more_than_2_to_the_31_elements_softmax():
    """2**21 + 1 rows of 1024 float32 logits: element offsets of the last row pass 2**31.
    np.zeros memory is mapped lazily, so only the rows written here take memory."""
    n_rows, n_classes = 2**21 + 1, 1024
    assert n_rows * n_classes > 2**31
    fl = public()
    pred = np.zeros((n_rows, n_classes), dtype=np.float32)
    labels = np.zeros(n_rows, dtype=np.int64)
    rng = np.random.default_rng(0)
    pred[-2:] = rng.standard_normal((2, n_classes)).astype(np.float32)
    labels[-2:] = [n_classes - 1, 7]
    values = fl.softmax_cross_entropy(pred, labels, reduction="none")
    expected_tail = reference.softmax_cross_entropy(pred[-2:], labels[-2:], reduction="none")
    assert_array_close(values[-2:], expected_tail, np.float32)
    assert np.all(values[:-2] == np.float32(math.log(n_classes)))
    total = fl.softmax_cross_entropy(pred, labels, reduction="sum")
    expected_total = (n_rows - 2) * float(np.float32(math.log(n_classes))) + float(
        np.sum(expected_tail, dtype=np.float64))
    assert abs(total - expected_total) <= 1e-6 * expected_total


@pytest.mark.slow
@needs_memory
def test_more_than_2_to_the_31_elements_elementwise():
    """An elementwise loss over 2**31 + 8 float32 elements, gradient written in place."""
    n = 2**31 + 8
    fl = public()
    pred = np.zeros(n, dtype=np.float32)
    target = np.zeros(n, dtype=np.float32)
    pred[-8:] = np.arange(1, 9, dtype=np.float32)
    total = fl.mse(pred, target, reduction="sum")
    assert total == float(np.sum(np.arange(1, 9) ** 2))
    grad = fl.mse_grad(pred, target, reduction="sum", out=pred)
    assert grad is pred
    np.testing.assert_array_equal(grad[-8:], 2 * np.arange(1, 9, dtype=np.float32))
    assert not np.any(grad[:-8:2**20])
