"""Accuracy at scale: the float32 mean over 10**8 elements is within 1e-7 relative of
the float64 truth (SPEC: sums and means accumulate in float64 whatever the input dtype).

The truth is computed in float64 from the same float32 inputs, chunk by chunk (np.sum is
pairwise within a chunk, math.fsum adds the chunk sums exactly): its own error is ~1e-15. A
float32 running sum is off by ~0.3 here (it stalls once the sum reaches 2**24 times the
terms), a float32 pairwise sum by up to ~1e-7; fastloss measures ~3e-10 (the rounding of each
float32 element loss, unbiased, averages out). The 10**7 versions run by default, the 10**8
ones with --runslow."""

import math

import numpy as np
import pytest

from .cases import public

CHUNK = 10**7
RTOL = 1e-7


def _sizes():
    return [pytest.param(10**7, id="1e7"),
            pytest.param(10**8, id="1e8", marks=pytest.mark.slow)]


def _float32_data(n, seed, kind):
    rng = np.random.default_rng(seed)
    x = np.empty(n, dtype=np.float32)
    t = np.empty(n, dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        rng.standard_normal(stop - start, dtype=np.float32, out=x[start:stop])
        x[start:stop] *= np.float32(3.0)
        if kind == "probability":
            rng.random(stop - start, dtype=np.float32, out=t[start:stop])
        else:
            rng.standard_normal(stop - start, dtype=np.float32, out=t[start:stop])
    return x, t


def _chunked_mean(n, term):
    """sum of term(start, stop) (float64 arrays) over chunks, / n, exactly added."""
    return math.fsum(float(np.sum(term(start, min(n, start + CHUNK))))
                     for start in range(0, n, CHUNK)) / n


def _assert_close(actual, truth):
    assert type(actual) is float
    assert abs(actual - truth) <= RTOL * abs(truth), (
        f"{actual!r} vs float64 truth {truth!r}: relative error "
        f"{abs(actual - truth) / abs(truth):.3g} > {RTOL}")


@pytest.mark.parametrize("n", _sizes())
def test_sigmoid_cross_entropy_float32_mean(n):
    x, t = _float32_data(n, 0, "probability")

    def term(a, b):
        xd, td = x[a:b].astype(np.float64), t[a:b].astype(np.float64)
        return np.maximum(xd, 0) - xd * td + np.log1p(np.exp(-np.abs(xd)))

    _assert_close(public().sigmoid_cross_entropy(x, t), _chunked_mean(n, term))


@pytest.mark.parametrize("n", _sizes())
def test_mse_float32_mean(n):
    x, t = _float32_data(n, 1, "real")

    def term(a, b):
        d = x[a:b].astype(np.float64) - t[a:b].astype(np.float64)
        return d * d

    _assert_close(public().mse(x, t), _chunked_mean(n, term))


@pytest.mark.parametrize("n", _sizes())
def test_binary_hinge_float32_mean(n):
    x, t = _float32_data(n, 2, "probability")
    sign = np.where(t < 0.5, np.float32(-1), np.float32(1))

    def term(a, b):
        return np.maximum(0.0, 1.0 - sign[a:b].astype(np.float64) * x[a:b].astype(np.float64))

    _assert_close(public().hinge(x, sign), _chunked_mean(n, term))


@pytest.mark.parametrize("n", _sizes())
def test_softmax_cross_entropy_float32_mean(n):
    """(n / 1000) rows of 1000 float32 logits: the mean of the row losses."""
    n_classes = 1000
    x, _ = _float32_data(n, 3, "real")
    x = x.reshape(-1, n_classes)
    labels = np.random.default_rng(4).integers(0, n_classes, size=x.shape[0])
    rows = CHUNK // n_classes

    def term(a, b):
        r0, r1 = a // n_classes, b // n_classes
        xd = x[r0:r1].astype(np.float64)
        m = xd.max(axis=1)
        lse = m + np.log(np.sum(np.exp(xd - m[:, None]), axis=1))
        return lse - xd[np.arange(r1 - r0), labels[r0:r1]]

    assert CHUNK % n_classes == 0 and rows > 0
    truth = _chunked_mean(n, term) * n_classes        # per row, not per element
    _assert_close(public().softmax_cross_entropy(x, labels), truth)
