"""Caffe's loss normalization modes and SigmoidCrossEntropyLoss's ignore_label.

Caffe's ``LossParameter.normalization`` -> fastloss's ``reduction``:
FULL -> "fullmean", VALID -> "mean", BATCH_SIZE -> "batchmean", NONE -> "sum".
The layer tests of Caffe (``test_sigmoid_cross_entropy_loss_layer.cpp``,
``test_softmax_with_loss_layer.cpp``) are re-expressed here in NumPy; every loss and mode is
also checked against the reference module in the generic tests (tests/cases.py REDUCTIONS).
"""

import json
import math

import numpy as np
import pytest

import fastloss
import fastloss.reference as reference
from fastloss import Evaluator
from fastloss.eval_cli import main

from .cases import DTYPES, tolerance

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]


def _caffe_sigmoid_ce_reference(x, t, num):
    """SigmoidCrossEntropyLossReference of Caffe's layer test: the sum over every element of
    -t log p - (1 - t) log(1 - p), divided by num (BATCH_SIZE normalization)."""
    p = 1.0 / (1.0 + np.exp(-x))
    loss = -(t * np.log(p + (t == 0)) + (1 - t) * np.log(1 - p + (t == 1)))
    return loss.sum() / num


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_caffe_sigmoid_forward_is_batchmean(dtype):
    """Caffe's TestSigmoidCrossEntropyLoss: (10, 5) data, uniform targets, loss / num."""
    rng = np.random.default_rng(1701)
    for _ in range(3):
        x = rng.normal(0.0, 1.0, (10, 5)).astype(dtype)
        t = rng.uniform(0.0, 1.0, (10, 5)).astype(dtype)
        want = _caffe_sigmoid_ce_reference(x.astype(np.float64), t.astype(np.float64), 10)
        got = fastloss.sigmoid_cross_entropy(x, t, reduction="batchmean")
        assert abs(got - want) <= 50 * tolerance(dtype) * abs(want)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("form", ["grad", "value_and_grad", "grad_hess"])
def test_caffe_sigmoid_ignore_gradient(dtype, form):
    """Caffe's TestIgnoreGradient: ignore_label -1 on the first half of the targets; their
    gradient is exactly 0 and the other half's is not."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, (10, 5)).astype(dtype)
    t = rng.uniform(0.0, 1.0, (10, 5)).astype(dtype)
    t.reshape(-1)[:25] = -1
    if form == "grad":
        g = fastloss.sigmoid_cross_entropy_grad(x, t, ignore_index=-1, reduction="batchmean")
    elif form == "value_and_grad":
        _, g = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, ignore_index=-1)
    else:
        g, h = fastloss.sigmoid_cross_entropy_grad_hess(x, t, ignore_index=-1)
        assert np.all(h.reshape(-1)[:25] == 0) and np.all(h.reshape(-1)[25:] != 0)
    assert np.all(g.reshape(-1)[:25] == 0)
    assert np.all(g.reshape(-1)[25:] != 0)


def _sigmoid_masked(x, t, ignore, **kw):
    """The ignore mask written by hand: the plain loss over the kept elements only."""
    kept = t != ignore
    x64, t64 = x.astype(np.float64), np.where(kept, t, 0).astype(np.float64)
    terms = reference.sigmoid_cross_entropy(x64, t64, reduction="none", **kw)
    grad_sum = reference.sigmoid_cross_entropy_grad(x64, t64, reduction="sum", **kw)
    return np.where(kept, terms, 0.0), np.where(kept, grad_sum, 0.0), int(kept.sum())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("ignore", [-1, 255])
@pytest.mark.parametrize("options", [{}, {"weight": "col"}, {"pos_weight": "last"},
                                     {"focal_gamma": 2.0, "focal_alpha": 0.25},
                                     {"poly1_epsilon": 0.5}],
                         ids=["plain", "weight", "pos_weight", "focal", "poly1"])
def test_sigmoid_ignore_index_every_reduction(dtype, ignore, options):
    """mean divides by the elements not ignored (Caffe's VALID); batchmean by N; fullmean by
    every element; sum and none keep 0 for the ignored ones; the target may be integers."""
    rng = np.random.default_rng(ignore + 1000)
    x = rng.normal(0.0, 2.0, (6, 7)).astype(dtype)
    t = rng.integers(0, 2, (6, 7))
    t[rng.uniform(size=t.shape) < 0.3] = ignore
    t[2] = ignore                                   # a whole row ignored
    x[2, 3] = np.nan                                # ignored elements give 0 even when NaN
    x[4, 1] = np.inf if t[4, 1] == ignore else x[4, 1]
    kw = dict(options)
    if kw.get("weight") == "col":
        kw["weight"] = rng.uniform(0.5, 2.0, (6, 1))
    if kw.get("pos_weight") == "last":
        kw["pos_weight"] = rng.uniform(0.5, 2.0, 7)
    if "focal_gamma" in kw or "poly1_epsilon" in kw:
        kept = t != ignore
        xs = np.where(kept, x, 0).astype(np.float64)
        ts = np.where(kept, t, 0).astype(np.float64)
        # the focal / poly-1 terms through the kernels on the kept elements only (weight 0
        # elsewhere), the same definitions the option tests check against torch
        w = kept.astype(np.float64)
        terms = fastloss.sigmoid_cross_entropy(xs, ts, weight=w, reduction="none", **kw)
        gsum = fastloss.sigmoid_cross_entropy_grad(xs, ts, weight=w, reduction="sum", **kw)
        terms, gsum, count = np.where(kept, terms, 0.0), np.where(kept, gsum, 0.0), kept.sum()
    else:
        terms, gsum, count = _sigmoid_masked(x, t, ignore, **kw)
    total = math.fsum(terms.ravel())
    want = {"sum": total, "mean": total / count, "batchmean": total / 6, "fullmean": total / 42}
    tol = 8 * tolerance(dtype)
    for reduction, value in want.items():
        v, g = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, ignore_index=ignore,
                                                              reduction=reduction, **kw)
        assert abs(v - value) <= tol * abs(value), (reduction, v, value)
        scale = {"sum": 1, "mean": count, "batchmean": 6, "fullmean": 42}[reduction]
        np.testing.assert_allclose(g, gsum / scale, rtol=tol, atol=tol * np.abs(gsum).max())
        assert np.all(g[t == ignore] == 0)
    none = fastloss.sigmoid_cross_entropy(x, t, ignore_index=ignore, reduction="none", **kw)
    assert np.all(none[t == ignore] == 0)
    np.testing.assert_allclose(none, terms, rtol=tol, atol=tol * np.abs(terms).max())


def test_sigmoid_ignore_index_is_bitwise_the_plain_loss_without_ignored_elements():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 9)).astype(np.float32)
    t = rng.integers(0, 2, (50, 9)).astype(np.float32)
    for reduction in ("sum", "mean", "none", "batchmean", "fullmean"):
        a = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, reduction=reduction)
        b = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, reduction=reduction,
                                                          ignore_index=-1)
        if reduction == "none":
            np.testing.assert_array_equal(a[0], b[0])
        else:
            assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])


def test_sigmoid_ignore_index_all_ignored_and_threads():
    x = np.random.default_rng(0).normal(size=(40000, 3)).astype(np.float32)
    t = np.full(x.shape, 255.0, dtype=np.float32)
    assert math.isnan(fastloss.sigmoid_cross_entropy(x, t, ignore_index=255))
    v, g = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, ignore_index=255)
    assert math.isnan(v) and np.all(g == 0)
    assert fastloss.sigmoid_cross_entropy(x, t, ignore_index=255, reduction="sum") == 0.0
    t[::7] = 1.0
    one = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, ignore_index=255, n_threads=1)
    two = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, ignore_index=255, n_threads=2)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])


@pytest.mark.parametrize("bad", [True, np.bool_(False), float("nan"), float("inf"), "255",
                                 0.1, 2 ** 24 + 1, [1]])
def test_sigmoid_ignore_index_errors(bad):
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="ignore_index"):
        fastloss.sigmoid_cross_entropy(x, np.zeros((2, 3)), ignore_index=bad)


def test_reduction_errors_name_the_new_modes():
    with pytest.raises(ValueError, match="'batchmean' or 'fullmean'"):
        fastloss.mse(np.zeros(3), np.zeros(3), reduction="batch_size")


# ------------------------------------------------------------ softmax: SoftmaxWithLoss


def _caffe_softmax_data(dtype):
    """SoftmaxWithLossLayerTest's blobs: data (10, 5, 2, 3), labels (10, 2, 3) in [0, 5)."""
    rng = np.random.default_rng(2016)
    x = rng.normal(0.0, 10.0, (10, 5, 2, 3)).astype(dtype)
    y = rng.integers(0, 5, (10, 2, 3))
    return x, y


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_caffe_softmax_forward_ignore_label(dtype):
    """TestForwardIgnoreLabel (normalize: false, i.e. NONE): ignoring each label in turn and
    adding the losses counts every location all but once: 4 x the full loss."""
    x, y = _caffe_softmax_data(dtype)
    full = fastloss.softmax_cross_entropy(x, y, axis=1, reduction="sum")
    accum = sum(fastloss.softmax_cross_entropy(x, y, axis=1, reduction="sum", ignore_index=k)
                for k in range(5))
    assert abs(4 * full - accum) <= 1e-4 * abs(accum) + 1e-4


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_caffe_softmax_normalizers(dtype):
    """Caffe's get_normalizer: FULL outer*inner, VALID the locations not ignored, BATCH_SIZE
    outer (N), NONE 1; the gradient is divided by the same normalizer."""
    x, y = _caffe_softmax_data(dtype)
    y[0, 0, :] = 3
    ignore = 3
    total, gsum = fastloss.softmax_cross_entropy_value_and_grad(x, y, axis=1, reduction="sum",
                                                                ignore_index=ignore)
    valid = int((y != ignore).sum())
    norm = {"fullmean": 60, "mean": valid, "batchmean": 10, "sum": 1}
    tol = 4 * tolerance(dtype)
    for reduction, n in norm.items():
        v, g = fastloss.softmax_cross_entropy_value_and_grad(x, y, axis=1, reduction=reduction,
                                                             ignore_index=ignore)
        assert abs(v - total / n) <= tol * abs(total / n)
        np.testing.assert_allclose(g, gsum / n, rtol=tol, atol=tol * np.abs(gsum).max() / n)
        assert np.all(g.transpose(0, 2, 3, 1)[y == ignore] == 0)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "hinge", "sigmoid_cross_entropy",
                                  "mse"])
def test_batchmean_is_the_first_axis(loss):
    """N is pred's first axis (leading axes of a class loss are not all rows), 1 for one row."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 6))
    if loss in ("softmax_cross_entropy", "hinge"):
        t = rng.integers(0, 6, (3, 4))
        one_x, one_t = x[0, 0], np.array(2)
    else:
        t = rng.uniform(size=x.shape).round()
        one_x, one_t = np.array(0.3), np.array(1.0)
    fn = getattr(fastloss, loss)
    assert fn(x, t, reduction="batchmean") == pytest.approx(fn(x, t, reduction="sum") / 3,
                                                            rel=1e-15)
    assert fn(one_x, one_t, reduction="batchmean") == fn(one_x, one_t, reduction="sum")


def test_caffe_modes_table():
    """One fixed input, every Caffe mode: the table of the documentation."""
    x = np.array([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0], [1.5, 0.5, 3.0], [-1.0, 0.0, 1.0]])
    y = np.array([0, 1, -100, 2])
    got = {r: fastloss.softmax_cross_entropy(x, y, reduction=r)
           for r in ("fullmean", "mean", "batchmean", "sum")}
    total = got["sum"]
    assert got == {"fullmean": total / 4, "mean": total / 3, "batchmean": total / 4,
                   "sum": total}
    t = np.array([[1, 0, 255], [0, 255, 1], [1, 1, 0], [255, 255, 255]])
    sig = {r: fastloss.sigmoid_cross_entropy(x, t, ignore_index=255, reduction=r)
           for r in ("fullmean", "mean", "batchmean", "sum")}
    s = sig["sum"]
    assert sig == {"fullmean": s / 12, "mean": s / 7, "batchmean": s / 4, "sum": s}


# ------------------------------------------------- Evaluator, CLI, Dask


@pytest.mark.parametrize("reduction", ["batchmean", "fullmean"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "hinge", "sigmoid_cross_entropy",
                                  "mse"])
def test_evaluator_chunks_equal_one_call(loss, reduction):
    rng = np.random.default_rng(11)
    if loss in ("softmax_cross_entropy", "hinge"):
        x = rng.normal(size=(101, 4, 3))
        t = rng.integers(0, 4, (101, 3))
        opts = {"axis": 1}
    else:
        x = rng.normal(size=(101, 5))
        t = rng.integers(0, 2, (101, 5)).astype(float)
        opts = {}
    if loss == "softmax_cross_entropy":
        t[::5, 0] = -100
    if loss == "sigmoid_cross_entropy":
        t[::3, 1] = 255
        opts["ignore_index"] = 255
    ev = Evaluator(loss, reduction=reduction, **opts)
    for i in range(0, 101, 30):
        ev.update(x[i:i + 30], t[i:i + 30])
    want = getattr(fastloss, loss)(x, t, reduction=reduction, **opts)
    assert ev.result().loss == pytest.approx(want, rel=1e-13)


def test_evaluator_sigmoid_ignore_mean():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(64, 5))
    t = rng.integers(0, 2, (64, 5))
    t[rng.uniform(size=t.shape) < 0.4] = -1
    ev = Evaluator("sigmoid", ignore_index=-1)
    ev.update(x[:20], t[:20]).update(x[20:], t[20:])
    r = ev.result()
    assert r.loss == pytest.approx(fastloss.sigmoid_cross_entropy(x, t, ignore_index=-1),
                                   rel=1e-13)
    assert r.weight_sum == int((t != -1).sum())


def test_cli_reduction_and_sigmoid_ignore_index(tmp_path, capsys):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    t = rng.integers(0, 2, (300, 6)).astype(np.uint8)
    t[rng.uniform(size=t.shape) < 0.2] = 255
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    for reduction in ("mean", "batchmean", "fullmean"):
        rc = main([str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), "--loss", "sigmoid",
                   "--ignore-index", "255", "--reduction", reduction, "--chunk-rows", "64",
                   "--json", "--no-progress"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        want = fastloss.sigmoid_cross_entropy(x, t, ignore_index=255, reduction=reduction)
        assert json.loads(out)["loss"] == pytest.approx(want, rel=1e-12)
    rc = main([str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), "--loss", "mse",
               "--ignore-index", "255", "--no-progress"])
    _, err = capsys.readouterr()
    assert rc == 2 and "--ignore-index applies to" in err


def test_dask_batchmean_and_ignore_index():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    fdask = pytest.importorskip("fastloss.dask")
    rng = np.random.default_rng(14)
    x = rng.normal(size=(200, 4))
    t = rng.integers(0, 2, (200, 4)).astype(float)
    t[::4, 2] = -1
    with dask.config.set(scheduler="synchronous"):
        for reduction in ("batchmean", "fullmean", "mean"):
            got = fdask.evaluate(da.from_array(x, chunks=(37, 4)), da.from_array(t, chunks=(50, 4)),
                                 loss="sigmoid_cross_entropy", ignore_index=-1,
                                 reduction=reduction)
            want = fastloss.sigmoid_cross_entropy(x, t, ignore_index=-1, reduction=reduction)
            assert got.loss == pytest.approx(want, rel=1e-12)
