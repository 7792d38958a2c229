"""Per-row statistics of the kernels' pass (the evaluation metrics' inputs): argmax_out and
stats_out of the softmax kernel, argmax_out of the hinge kernel, through fastloss._core."""

import numpy as np
import pytest

from fastloss import _core


def _softmax_stats(x, y, axis=-1, softcap=0.0, n_threads=1):
    xm = np.ascontiguousarray(x)
    C = x.shape[axis]
    ax = axis % x.ndim
    outer = int(np.prod(x.shape[:ax]))
    inner = int(np.prod(x.shape[ax + 1:]))
    n = outer * inner
    argmax = np.full(n, -7, dtype=np.int64)
    stats = np.full(3 * n, -7.0)
    lse = np.empty(n)
    res = _core.softmax_ce(logits=xm, labels=np.ascontiguousarray(y, dtype=np.int64),
                           outer=outer, n_classes=C, inner=inner, reduction=0,
                           n_threads=n_threads, softcap=softcap, lse_out=lse,
                           argmax_out=argmax, stats_out=stats)
    assert res.status == 0
    return argmax, stats.reshape(n, 3), lse


def _expected(rows, softcap=0.0):
    r = rows.astype(np.float64)
    z = softcap * np.tanh(r / softcap) if softcap else r
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    ent[np.isnan(p).any(axis=1)] = np.nan
    return np.argmax(rows, axis=1), np.stack([p.max(axis=1), (p * p).sum(axis=1), ent], axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((50, 7), -1), ((20, 300), -1), ((3, 9, 11), 1)])
@pytest.mark.parametrize("softcap", [0.0, 2.0])
def test_softmax_row_stats_match_numpy(dtype, shape, axis, softcap):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    C = shape[axis]
    rows = np.moveaxis(x, axis, -1).reshape(-1, C)
    # ties: the first index wins; a NaN counts as the maximum; ignored rows are written too
    rows_view = np.moveaxis(x, axis, -1).reshape(-1, C) if axis == -1 else None
    if rows_view is not None:
        x.reshape(-1, C)[0, 1] = x.reshape(-1, C)[0, 4] = x.reshape(-1, C)[0].max() + 1
        x.reshape(-1, C)[1, 2] = np.nan
        x.reshape(-1, C)[2, :] = x.reshape(-1, C)[2, 0]
        rows = x.reshape(-1, C)
    y = rng.integers(0, C, rows.shape[0])
    y[3] = -100
    argmax, stats, _ = _softmax_stats(x, y.reshape(np.moveaxis(x, axis, -1).shape[:-1]), axis,
                                      softcap)
    exp_arg, exp_stats = _expected(rows, softcap)
    np.testing.assert_array_equal(argmax, exp_arg)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(stats, exp_stats, rtol=tol, atol=tol)


def test_softmax_row_stats_limits():
    x = np.array([[0.0, np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 2.0, np.inf]])
    argmax, stats, lse = _softmax_stats(x, np.array([0, 0, 0]))
    np.testing.assert_array_equal(argmax, [1, 0, 0])
    np.testing.assert_array_equal(stats[0], [1.0, 1.0, 0.0])      # one-hot at the +inf
    assert np.isnan(stats[1:]).all()                               # no softmax exists there
    np.testing.assert_array_equal(lse, [np.inf, -np.inf, np.inf])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_softmax_row_stats_do_not_depend_on_threads(n_threads):
    x = np.random.default_rng(6).standard_normal((3000, 33)).astype(np.float32)
    y = np.zeros(3000, dtype=np.int64)
    a1, s1, _ = _softmax_stats(x, y, n_threads=1)
    a2, s2, _ = _softmax_stats(x, y, n_threads=n_threads)
    np.testing.assert_array_equal(a1, a2)
    assert s1.tobytes() == s2.tobytes()


@pytest.mark.parametrize("shape, axis", [((40, 6), -1), ((4, 6, 5), 1)])
def test_hinge_argmax(shape, axis):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    if axis == -1:
        x[0, 3] = np.nan
        x[1, 2] = x[1, 4] = 9.0
    ax = axis % x.ndim
    C = shape[ax]
    outer = int(np.prod(shape[:ax]))
    inner = int(np.prod(shape[ax + 1:]))
    y = np.zeros(outer * inner, dtype=np.int64)
    argmax = np.full(outer * inner, -7, dtype=np.int64)
    res = _core.hinge(scores=x, labels=y, outer=outer, n_classes=C, inner=inner, mode=1,
                      reduction=0, n_threads=1, argmax_out=argmax)
    assert res.status == 0
    np.testing.assert_array_equal(argmax, np.argmax(np.moveaxis(x, ax, -1), axis=-1).reshape(-1))
