"""Evaluator(metrics=...): every metric against scikit-learn (and torchmetrics' definitions
written in NumPy), with ignored rows, ties, both dtypes, chunks, merges, threads, Dask and
the CLI; the binned AUC's error bound."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastloss
from fastloss import Evaluator, _api
from fastloss.eval_cli import main
from fastloss.metrics import METRICS, binned_auc, binned_average_precision

M = pytest.importorskip("sklearn.metrics")

LABELS_IGNORE = -100


# ------------------------------------------------------------ references

def softmax64(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def tm_calibration(conf, correct, n_bins):
    """torchmetrics' _binning_bucketize + _ce_compute (l1 and max), in NumPy float64."""
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.searchsorted(edges, conf, side="right") - 1       # bucketize(right=True) - 1
    cnt = np.zeros(n_bins + 1)
    cb = np.zeros(n_bins + 1)
    ab = np.zeros(n_bins + 1)
    np.add.at(cnt, idx, 1)
    np.add.at(cb, idx, conf)
    np.add.at(ab, idx, correct.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        cb = np.nan_to_num(cb / cnt)
        ab = np.nan_to_num(ab / cnt)
    prop = cnt / cnt.sum()
    return float(np.sum(np.abs(ab - cb) * prop)), float(np.max(np.abs(ab - cb)))


def class_reference(scores, y, probs=None, n_bins=15, top_k=5):
    """Every class metric from scikit-learn / NumPy on the kept rows."""
    C = scores.shape[1]
    labels = np.arange(C)
    pred = np.argmax(scores, axis=1)                  # first maximum
    ref = {"accuracy": M.accuracy_score(y, pred),
           "confusion_matrix": M.confusion_matrix(y, pred, labels=labels),
           "macro_f1": M.f1_score(y, pred, average="macro", zero_division=0)}
    p_, r_, f_, _ = M.precision_recall_fscore_support(y, pred, labels=labels, average=None,
                                                      zero_division=0)
    ref.update(precision=p_, recall=r_, f1=f_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # "y_pred contains classes not in y_true"
        ref["balanced_accuracy"] = M.balanced_accuracy_score(y, pred)
    # top-k with ties counted as hits (as the kernel): rows with fewer than k higher scores
    sy = scores[np.arange(len(y)), y]
    ref["top_k_accuracy"] = float(np.mean((scores > sy[:, None]).sum(axis=1) < top_k))
    if probs is not None:
        py = probs[np.arange(len(y)), y]
        ref["nll"] = float(np.mean(-np.log(py)))
        ref["perplexity"] = float(np.exp(ref["nll"]))
        ref["brier"] = float(np.mean(np.sum((probs - np.eye(C)[y]) ** 2, axis=1)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ref["entropy"] = float(np.mean(-np.sum(np.where(probs > 0, probs * np.log(probs),
                                                            0.0), axis=1)))
        ref["ece"], ref["mce"] = tm_calibration(probs.max(axis=1), pred == y, n_bins)
    return ref


def assert_metrics(got, ref, rtol, names=None):
    for k in (names or ref):
        g, r = got[k], ref[k]
        if k == "confusion_matrix":
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, r)
        elif k in ("accuracy", "top_k_accuracy", "balanced_accuracy"):
            assert g == pytest.approx(r, rel=1e-12), k          # ratios of counts
        else:
            np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * 1e-3, err_msg=k)


def softmax_data(rng, dtype, n=700, C=9, ties=False):
    x = (rng.standard_normal((n, C)) * 2).astype(dtype)
    y = rng.integers(0, C, n)
    x[np.arange(n), y] += 1.5
    if ties:
        x = np.round(x).astype(dtype)        # many rows whose maximum is shared
        x[:5] = 0                            # all tied: prediction 0
    y[::11] = LABELS_IGNORE
    return x, y


RTOL = {np.float32: 2e-6, np.float64: 1e-11}


# ------------------------------------------------------------- softmax CE

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_softmax_all_metrics_equal_sklearn(dtype, ties):
    rng = np.random.default_rng(1 + ties)
    x, y = softmax_data(rng, dtype, ties=ties)
    r = Evaluator("softmax", metrics="all").update(x, y).result()
    assert set(r.metrics) == set(METRICS["softmax_cross_entropy"])
    keep = y != LABELS_IGNORE
    ref = class_reference(x[keep].astype(np.float64), y[keep], softmax64(x[keep]))
    assert_metrics(r.metrics, ref, RTOL[dtype])
    if ties:      # the first maximum is the prediction: row 0 (all tied) predicts class 0
        assert np.argmax(x[0]) == 0 and (x[0] == x[0].max()).all()
    # the log-loss of scikit-learn (it clips probabilities only at 1e-15)
    assert r.metrics["nll"] == pytest.approx(
        M.log_loss(y[keep], softmax64(x[keep]), labels=np.arange(x.shape[1])),
        rel=RTOL[dtype])
    # accuracy and top-k of the loss path agree with the metrics where there are no ties
    if not ties:
        assert r.accuracy == pytest.approx(r.metrics["accuracy"], rel=1e-12)
        assert r.metrics["top_k_accuracy"] == pytest.approx(
            M.top_k_accuracy_score(y[keep], x[keep], k=5, labels=np.arange(x.shape[1])),
            rel=1e-12)


def test_softmax_metrics_do_not_change_the_loss():
    rng = np.random.default_rng(3)
    x, y = softmax_data(rng, np.float32, n=3000, C=50)
    a = Evaluator("softmax").update(x, y).result()
    b = Evaluator("softmax", metrics="all").update(x, y).result()
    assert (a.loss, a.loss_sum, a.accuracy, a.top_k_accuracy) == \
        (b.loss, b.loss_sum, b.accuracy, b.top_k_accuracy)


def test_softmax_options_axis1_and_softcap():
    rng = np.random.default_rng(4)
    n, C, d = 120, 6, 3
    x = rng.standard_normal((n, C, d)) * 3
    y = rng.integers(0, C, (n, d))
    y[::7, 1] = 2                        # ignore_index=2 below
    opts = {"axis": 1, "ignore_index": 2, "weight": rng.uniform(0.5, 2, C),
            "label_smoothing": 0.1}
    r = Evaluator("softmax", metrics="all", **opts).update(x, y).result()
    flat = np.moveaxis(x, 1, -1).reshape(-1, C)
    yf = y.reshape(-1)
    keep = yf != 2
    # metrics are unweighted and ignore the smoothing: plain definitions on the kept rows
    assert_metrics(r.metrics, class_reference(flat[keep], yf[keep], softmax64(flat[keep])),
                   1e-11)
    # soft-capped logits: probabilities of cap * tanh(x / cap), the prediction of the raw x
    cap = 2.0
    x2 = rng.standard_normal((300, 8)) * 4
    y2 = rng.integers(0, 8, 300)
    r2 = Evaluator("softmax", metrics="all", softcap=cap).update(x2, y2).result()
    ref = class_reference(x2, y2, softmax64(cap * np.tanh(x2 / cap)))
    assert_metrics(r2.metrics, ref, 1e-6)


def test_softmax_special_rows_nan_inf():
    x = np.array([[0.0, np.inf, 1.0], [1.0, 2.0, 2.0], [np.nan, 5.0, 1.0], [-np.inf] * 3,
                  [3.0, np.nan, np.nan]])
    am = np.empty(5, np.int64)
    st = np.empty((5, 3))
    y = np.array([1, 2, 1, 0, -100])
    _api._softmax(x, y, reduction="sum", argmax_out=am, stats_out=st)
    np.testing.assert_array_equal(am, np.argmax(x, axis=1))     # NaN counts as the maximum
    np.testing.assert_array_equal(st[0], [1.0, 1.0, 0.0])       # one +inf: one-hot
    p = softmax64(x[1])
    np.testing.assert_allclose(st[1], [p.max(), (p * p).sum(), -(p * np.log(p)).sum()],
                               rtol=1e-14)
    assert np.isnan(st[2]).all() and np.isnan(st[4]).all()      # a NaN row; an ignored row


@pytest.mark.parametrize("top_k", [0, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_argmax_is_numpys(top_k, dtype):
    # NaN after, before and instead of the maximum; ties; -inf rows; one class; long rows
    rows = [[1, 5, np.nan], [np.nan, 5, 1], [5, 5, 1], [1, 5, 5], [-np.inf] * 3,
            [np.nan] * 3, [np.inf, 1, np.inf], [0, -0.0, 0]]
    x = np.array(rows, dtype=dtype)
    rng = np.random.default_rng(16)
    big = np.round(rng.standard_normal((50, 2000)) * 3).astype(dtype)
    big[7, 1500] = np.nan
    for arr in (x, big, x[:, :1]):
        y = np.zeros(arr.shape[0], np.int64)
        am = np.empty(arr.shape[0], np.int64)
        _api._softmax(arr, y, reduction="sum", top_k=top_k, argmax_out=am)
        np.testing.assert_array_equal(am, np.argmax(arr, axis=1))
        am2 = np.empty(arr.shape[0], np.int64)
        _api._hinge(arr, y, multiclass="weston_watkins", reduction="sum", top_k=top_k,
                    argmax_out=am2)
        np.testing.assert_array_equal(am2, np.argmax(arr, axis=1))


def test_result_arrays_are_snapshots():
    rng = np.random.default_rng(17)
    x, y = softmax_data(rng, np.float64, n=300, C=5)
    ev = Evaluator("softmax", metrics="all").update(x[:100], y[:100])
    first = ev.result().metrics["confusion_matrix"]
    kept = first.copy()
    ev.update(x[100:], y[100:])
    np.testing.assert_array_equal(first, kept)          # not changed by the later update
    assert ev.result().metrics["confusion_matrix"].sum() == (y != LABELS_IGNORE).sum()
    with pytest.raises(ValueError):
        first[0, 0] = 1                                   # read-only: the state's own


def test_argmax_before_an_in_place_gradient_and_hinge_modes():
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((400, 7)) * 2)
    y = rng.integers(0, 7, 400)
    want = np.argmax(x, axis=1)
    am = np.empty(400, np.int64)
    g = x.copy()
    _api._softmax(g, y, reduction="mean", grad=True, out=g, argmax_out=am)
    np.testing.assert_array_equal(am, want)
    for mode in ("ovr", "weston_watkins", "crammer_singer"):
        r = Evaluator("hinge", multiclass=mode, metrics="all").update(x, y).result()
        assert set(r.metrics) == set(METRICS["hinge"])
        assert_metrics(r.metrics, class_reference(x, y), 1e-12)


# -------------------------------------------------- chunks, merges, threads

def _vector_equal(a, b):
    return np.array_equal(a._state_vector(), b._state_vector(), equal_nan=True)


@pytest.mark.parametrize("loss", ["softmax", "hinge", "sigmoid", "mse"])
def test_chunked_merged_and_threads(loss):
    rng = np.random.default_rng(6)
    n, C = 1500, 12
    x = (rng.standard_normal((n, C)) * 2).astype(np.float32)
    if loss in ("softmax", "hinge"):
        t = rng.integers(0, C, n)
        if loss == "softmax":
            t[::9] = LABELS_IGNORE
    elif loss == "sigmoid":
        t = (rng.random((n, C)) < 0.3).astype(np.float32)
    else:
        t = rng.standard_normal((n, C)).astype(np.float32) + 3
    whole = Evaluator(loss, metrics="all").update(x, t).result().metrics
    ev = Evaluator(loss, metrics="all", n_threads=1)
    workers = [Evaluator(loss, metrics="all", n_threads=2) for _ in range(3)]
    cuts = [0, 0, 1, 200, 777, 778, 1300, n]
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        ev.update(x[a:b], t[a:b])
        workers[i % 3].update(x[a:b], t[a:b])
    merged = workers[0].merge(workers[1]).merge(workers[2]).result().metrics
    for got in (ev.result().metrics, merged):
        assert set(got) == set(whole)
        for k, v in whole.items():
            if isinstance(v, np.ndarray) and v.dtype.kind == "i":
                np.testing.assert_array_equal(got[k], v)
            else:
                np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-15, err_msg=k)
    # the thread count changes nothing, bitwise
    e1 = Evaluator(loss, metrics="all", n_threads=1).update(x, t)
    e2 = Evaluator(loss, metrics="all", n_threads=2).update(x, t)
    assert _vector_equal(e1, e2)
    # the state vector (Dask's form) restores the result
    back = Evaluator(loss, metrics="all")
    back._signature = e1._signature
    back._merge_state_vector(e1._state_vector())
    for k, v in e1.result().metrics.items():
        np.testing.assert_array_equal(back.result().metrics[k], v)


def test_threads_bitwise_in_the_kernel():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5000, 300)).astype(np.float32)
    y = rng.integers(0, 300, 5000)
    outs = []
    for nt in (1, 2, 3):
        am = np.empty(5000, np.int64)
        st = np.empty((5000, 3))
        _api._softmax(x, y, reduction="sum", n_threads=nt, argmax_out=am, stats_out=st)
        outs.append((am, st))
    for am, st in outs[1:]:
        assert np.array_equal(am, outs[0][0]) and np.array_equal(st, outs[0][1])


def test_merge_checks_the_metric_settings():
    a = Evaluator("softmax", metrics="all")
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Evaluator("softmax", metrics=["accuracy"]))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Evaluator("softmax", metrics="all", n_bins=10))


def test_empty_and_all_ignored():
    r = Evaluator("softmax", metrics="all").result()
    assert np.isnan(r.metrics["accuracy"]) and np.isnan(r.metrics["ece"])
    x = np.zeros((3, 4))
    r = Evaluator("softmax", metrics="all").update(x, np.full(3, -100)).result()
    assert np.isnan(r.metrics["nll"])
    assert r.metrics["confusion_matrix"].shape == (4, 4) and r.metrics["confusion_matrix"].sum() == 0


def test_all_has_the_confusion_matrix_up_to_1024_classes():
    x = np.random.default_rng(8).standard_normal((4, 1025)).astype(np.float32)
    y = np.array([0, 1, 2, 1024])
    assert "confusion_matrix" not in Evaluator("softmax", metrics="all").update(x, y).result().metrics
    cm = Evaluator("softmax", metrics=["confusion_matrix"]).update(x, y).result() \
        .metrics["confusion_matrix"]
    np.testing.assert_array_equal(cm, M.confusion_matrix(y, x.argmax(1), labels=np.arange(1025)))


@pytest.mark.parametrize("kwargs, match", [
    ({"metrics": ["accuracy", "rmse"]}, "no metric 'rmse'"),
    ({"metrics": 3}, "metrics must be"),
    ({"metrics": ["top_k_accuracy"], "top_k": None}, "needs top_k"),
    ({"metrics": "all", "n_bins": 0}, "n_bins"),
    ({"metrics": "all", "auc_bins": 1.5}, "auc_bins"),
    ({"metrics": "all", "threshold": 2}, "threshold"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Evaluator("softmax", **kwargs)


def test_targets_the_metrics_cannot_use():
    x = np.zeros((4, 3))
    ev = Evaluator("softmax", metrics="all")
    with pytest.raises(ValueError, match="integer class labels"):
        ev.update(x, np.full((4, 3), 1 / 3))
    ev = Evaluator("sigmoid", metrics="all")
    with pytest.raises(ValueError, match="0 or 1"):
        ev.update(x, np.full((4, 3), 0.3))
    assert ev.n_rows == 0 and ev.result().metrics["accuracy"] != ev.result().metrics["accuracy"]
    with pytest.raises(ValueError, match="integer class labels"):
        Evaluator("hinge", metrics="all").update(np.zeros(4), np.array([1, -1, 1, 1]))


# ------------------------------------------------------------- sigmoid CE

def sigmoid_data(rng, dtype, n=2000, L=6):
    t = (rng.random((n, L)) < rng.uniform(0.1, 0.5, L)).astype(dtype)
    x = (rng.standard_normal((n, L)) * 1.5 + 1.2 * (2 * t - 1)).astype(dtype)
    return x, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_metrics_equal_sklearn(dtype):
    rng = np.random.default_rng(9)
    x, t = sigmoid_data(rng, dtype)
    thr = 0.4
    r = Evaluator("sigmoid", metrics="all", threshold=thr).update(x, t).result()
    assert set(r.metrics) == set(METRICS["sigmoid_cross_entropy"])
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    pred = (p >= thr).astype(int)
    ti = t.astype(int)
    m = r.metrics
    assert m["accuracy"] == pytest.approx(np.mean(pred == ti), rel=1e-12)
    assert m["hamming_loss"] == pytest.approx(M.hamming_loss(ti, pred), rel=1e-12)
    assert m["subset_accuracy"] == pytest.approx(M.accuracy_score(ti, pred), rel=1e-12)
    pr, rc, f1, _ = M.precision_recall_fscore_support(ti, pred, average=None, zero_division=0)
    np.testing.assert_allclose(m["precision"], pr, rtol=1e-12)
    np.testing.assert_allclose(m["recall"], rc, rtol=1e-12)
    np.testing.assert_allclose(m["f1"], f1, rtol=1e-12)
    assert m["micro_f1"] == pytest.approx(M.f1_score(ti, pred, average="micro"), rel=1e-12)
    assert m["macro_f1"] == pytest.approx(M.f1_score(ti, pred, average="macro"), rel=1e-12)
    assert m["brier"] == pytest.approx(np.mean((p - t) ** 2), rel=1e-10)
    # torchmetrics' BinaryCalibrationError over all elements: confidence p, accuracy t
    assert m["ece"] == pytest.approx(tm_calibration(p.ravel(), t.ravel() == 1, 15)[0],
                                     rel=1e-9)
    auc = M.roc_auc_score(ti, p, average=None)
    ap = M.average_precision_score(ti, p, average=None)
    assert np.max(np.abs(m["roc_auc"] - auc)) < 0.005
    assert np.max(np.abs(m["average_precision"] - ap)) < 0.01
    assert abs(m["macro_roc_auc"] - auc.mean()) < 0.005
    assert abs(m["macro_average_precision"] - ap.mean()) < 0.01


def test_sigmoid_binary_one_dimensional_and_missing_positives():
    rng = np.random.default_rng(10)
    t = (rng.random(3000) < 0.3).astype(np.float64)
    x = rng.standard_normal(3000) + t
    m = Evaluator("bce", metrics="all").update(x, t).result().metrics
    p = 1 / (1 + np.exp(-x))
    assert m["roc_auc"].shape == (1,)
    assert abs(m["roc_auc"][0] - M.roc_auc_score(t, p)) < 0.005
    assert abs(m["average_precision"][0] - M.average_precision_score(t, p)) < 0.01
    assert m["subset_accuracy"] == m["accuracy"]
    # a label without positives: AUC / AP undefined (NaN), left out of the macro means
    x2 = rng.standard_normal((500, 3))
    t2 = (rng.random((500, 3)) < 0.4).astype(float)
    t2[:, 1] = 0
    m2 = Evaluator("sigmoid", metrics=["roc_auc", "macro_roc_auc"]).update(x2, t2).result().metrics
    assert np.isnan(m2["roc_auc"][1])
    assert m2["macro_roc_auc"] == pytest.approx(np.mean(m2["roc_auc"][[0, 2]]), rel=1e-12)


def test_sigmoid_ignore_index_leaves_elements_out():
    if "ignore_index" not in fastloss.evaluate.LOSSES["sigmoid_cross_entropy"].extra:
        pytest.skip("this build's sigmoid_cross_entropy has no ignore_index")
    rng = np.random.default_rng(18)
    x, t = sigmoid_data(rng, np.float64, n=600, L=4)
    t = t.copy()
    mask = rng.random(t.shape) < 0.2
    t[mask] = -1
    m = Evaluator("sigmoid", metrics="all", ignore_index=-1).update(x, t).result().metrics
    p = 1 / (1 + np.exp(-x))
    keep = ~mask
    pred = p >= 0.5
    assert m["accuracy"] == pytest.approx(np.mean((pred == (t == 1))[keep]), rel=1e-12)
    assert m["brier"] == pytest.approx(np.mean(((p - t) ** 2)[keep]), rel=1e-12)
    rows = keep.any(axis=1)
    right = ((pred == (t == 1)) | mask).all(axis=1)
    assert m["subset_accuracy"] == pytest.approx(np.sum(right & rows) / rows.sum(), rel=1e-12)
    for j in range(4):
        kj = keep[:, j]
        tj, pj = (t[kj, j] == 1).astype(int), pred[kj, j].astype(int)
        assert m["f1"][j] == pytest.approx(M.f1_score(tj, pj, zero_division=0), rel=1e-12)
        assert abs(m["roc_auc"][j] - M.roc_auc_score(tj, p[kj, j])) < 0.005
    assert m["ece"] == pytest.approx(tm_calibration(p[keep], t[keep] == 1, 15)[0], rel=1e-9)


@pytest.mark.parametrize("auc_bins", [10, 100, 1000])
def test_binned_auc_error_bound(auc_bins):
    """The exact AUC lies between the step sums; the trapezoid's error is at most half the
    fraction of positive-negative pairs that share a bin."""
    rng = np.random.default_rng(auc_bins)
    x, t = sigmoid_data(rng, np.float64, n=4000, L=4)
    ev = Evaluator("sigmoid", metrics=["roc_auc", "average_precision"], auc_bins=auc_bins)
    ev.update(x[:1700], t[:1700]).update(x[1700:], t[1700:])
    hist = ev._mstate.arrays()["hist"]
    auc, low, high = binned_auc(hist[:, 1], hist[:, 0])
    exact = M.roc_auc_score(t, 1 / (1 + np.exp(-x)), average=None)
    pairs_same = (hist[:, 1] * hist[:, 0]).sum(axis=1) / (hist[:, 1].sum(1) * hist[:, 0].sum(1))
    np.testing.assert_allclose(high - low, pairs_same, rtol=1e-12)
    assert np.all(low <= exact + 1e-12) and np.all(exact <= high + 1e-12)
    assert np.all(np.abs(auc - exact) <= (high - low) / 2 + 1e-12)
    np.testing.assert_allclose(ev.result().metrics["roc_auc"], auc, rtol=1e-12)
    if auc_bins == 10:            # the bound is not vacuous: coarse bins do move the AUC
        assert np.max(high - low) > 0.01


def test_binned_auc_exact_when_bins_separate_the_scores():
    # scores on distinct bins: the histogram AUC / AP are scikit-learn's exactly
    pos = np.array([0, 1, 0, 2, 0, 1])
    neg = np.array([3, 0, 1, 0, 1, 0])
    scores = np.repeat(np.arange(6) + 0.5, pos + neg) / 6
    y = np.concatenate([np.r_[np.zeros(neg[b]), np.ones(pos[b])] for b in range(6)])
    auc, low, high = binned_auc(pos, neg)
    assert auc == pytest.approx(M.roc_auc_score(y, scores), rel=1e-12)
    assert low == high
    assert binned_average_precision(pos, neg) == pytest.approx(
        M.average_precision_score(y, scores), rel=1e-12)


# -------------------------------------------------------------------- MSE

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mse_metrics_equal_sklearn(dtype):
    rng = np.random.default_rng(11)
    t = (rng.standard_normal((900, 4)) * 3 + 1e3).astype(dtype)     # a large mean
    x = (t + rng.standard_normal((900, 4))).astype(dtype)
    ev = Evaluator("mse", metrics="all")
    for a, b in ((0, 0), (0, 1), (1, 400), (400, 900)):
        ev.update(x[a:b], t[a:b])
    m = ev.result().metrics
    xf, tf = x.astype(np.float64).ravel(), t.astype(np.float64).ravel()
    rt = 1e-6 if dtype == np.float32 else 1e-11
    assert m["rmse"] == pytest.approx(np.sqrt(M.mean_squared_error(tf, xf)), rel=rt)
    assert m["mae"] == pytest.approx(M.mean_absolute_error(tf, xf), rel=rt)
    assert m["r2"] == pytest.approx(M.r2_score(tf, xf), rel=rt)
    w = Evaluator("mse", metrics="all", weight=np.arange(1, 5)).update(x, t).result().metrics
    assert w["rmse"] == pytest.approx(m["rmse"], rel=rt)           # unweighted
    c = Evaluator("mse", metrics=["r2"]).update(np.ones(5), np.ones(5)).result().metrics
    assert c["r2"] == M.r2_score(np.ones(5), np.ones(5)) == 1.0


# -------------------------------------------------------------------- Dask

def test_dask_metrics_equal_in_memory():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    fdask = pytest.importorskip("fastloss.dask")
    rng = np.random.default_rng(12)
    x, y = softmax_data(rng, np.float32, n=900, C=7)
    t = (rng.random((900, 7)) < 0.3).astype(np.float32)
    with dask.config.set(scheduler="synchronous"):
        for loss, tgt in (("softmax", y), ("sigmoid", t), ("mse", t), ("hinge", np.abs(y) % 7)):
            got = fdask.evaluate(da.from_array(x, chunks=(130, 7)), da.from_array(tgt, chunks=130),
                                 loss=loss, metrics="all", split_every=3)
            want = Evaluator(loss, metrics="all").update(x, tgt).result()
            assert set(got.metrics) == set(want.metrics)
            for k, v in want.metrics.items():
                np.testing.assert_allclose(got.metrics[k], v, rtol=1e-12, atol=1e-15)


def test_dask_metrics_on_a_local_cluster():
    pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    fdask = pytest.importorskip("fastloss.dask")
    rng = np.random.default_rng(13)
    x, y = softmax_data(rng, np.float32, n=4000, C=20)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        got = fdask.evaluate(da.from_array(x, chunks=(700, 20)), da.from_array(y, chunks=700),
                             loss="softmax", metrics=["ece", "f1", "confusion_matrix"])
    want = Evaluator("softmax", metrics=["ece", "f1", "confusion_matrix"]).update(x, y).result()
    np.testing.assert_array_equal(got.metrics["confusion_matrix"],
                                  want.metrics["confusion_matrix"])
    np.testing.assert_allclose(got.metrics["f1"], want.metrics["f1"], rtol=1e-12)
    assert got.metrics["ece"] == pytest.approx(want.metrics["ece"], rel=1e-12)


# --------------------------------------------------------------------- CLI

@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(14)
    x, y = softmax_data(rng, np.float32, n=1000, C=8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, x, y


def test_cli_json_metrics_equal_the_evaluator(files, capsys):
    d, x, y = files
    rc = main([str(d / "x.npy"), str(d / "y.npy"), "--metrics", "all", "--json",
               "--no-progress", "--chunk-rows", "300"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    want = Evaluator("softmax", metrics="all").update(x, y).result().metrics
    assert set(out["metrics"]) == set(want)
    for k, v in want.items():
        np.testing.assert_allclose(np.asarray(out["metrics"][k], dtype=float), v, rtol=1e-12)


def test_cli_text_table_and_plot(files, capsys):
    d, x, y = files
    png = d / "report.png"
    rc = main([str(d / "x.npy"), str(d / "y.npy"), "--metrics", "ece,f1,macro_f1",
               "--plot", str(png), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    for word in ("metrics", "ece", "macro_f1", "class", "f1", "confusion matrix"):
        assert word in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(d.glob("*.tmp-*"))


def test_cli_metrics_errors(files, capsys):
    d, x, y = files
    rc = main([str(d / "x.npy"), str(d / "y.npy"), "--metrics", "acuracy", "--no-progress"])
    assert rc == 2 and "no metric 'acuracy'" in capsys.readouterr().err
    rc = main([str(d / "x.npy"), str(d / "x.npy"), "--loss", "mse", "--plot",
               str(d / "p.png"), "--no-progress"])
    assert rc == 2 and "mse has neither" in capsys.readouterr().err
    assert not (d / "p.png").exists()


def test_cli_imports_matplotlib_only_for_plot(files):
    d, _, _ = files
    code = ("import sys; from fastloss.eval_cli import main; "
            "main([%r, %r, '--metrics', 'all', '--no-progress']); "
            "print('matplotlib' in sys.modules)" % (str(d / "x.npy"), str(d / "y.npy")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


# ------------------------------------------------ torchmetrics, where installed

def test_against_torchmetrics_when_installed():
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(15)
    x, y = softmax_data(rng, np.float32, n=2000, C=10)
    keep = y != LABELS_IGNORE
    m = Evaluator("softmax", metrics="all").update(x, y).result().metrics
    p = torch.from_numpy(x[keep]).double().softmax(1)
    yt = torch.from_numpy(y[keep])
    assert m["ece"] == pytest.approx(float(F.multiclass_calibration_error(
        p, yt, 10, n_bins=15, norm="l1")), rel=1e-6)
    assert m["mce"] == pytest.approx(float(F.multiclass_calibration_error(
        p, yt, 10, n_bins=15, norm="max")), rel=1e-6)
    np.testing.assert_allclose(m["f1"], F.multiclass_f1_score(p, yt, 10, average=None).numpy(),
                               rtol=1e-6)


# ------------------------------------- sigmoid CE: the kernel's pass vs NumPy

def numpy_sigmoid_state(x, t, n_bins=15, threshold=0.5, auc_bins=1000, ignore_index=None):
    """The sigmoid metric state from a NumPy pass over float64 probabilities (the
    implementation the kernel's pass replaced): the same arrays as SigmoidMetrics,
    the compensated pairs as plain float64 sums."""
    L = x.shape[-1] if x.ndim >= 2 else 1
    x = np.asarray(x, dtype=np.float64).reshape(-1, L)
    t = np.asarray(t, dtype=np.float64).reshape(-1, L)
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    tb = (t == 1) & valid
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp(-x))
    pred = (p >= threshold) & valid
    right = (pred == tb) | ~valid
    rows = valid.any(axis=1)
    pv, tv, tbv = p[valid], t[valid], tb[valid]
    lab = np.broadcast_to(np.arange(L), valid.shape)[valid]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, pv, side="right") - 1, 0, n_bins)
    hb = np.minimum((pv * auc_bins).astype(np.int64), auc_bins - 1)
    key = hb + lab * (2 * auc_bins) + tbv * auc_bins
    return {"n": np.count_nonzero(valid), "n_rows": np.count_nonzero(rows),
            "rows_right": np.count_nonzero(right.all(axis=1) & rows),
            "tp": np.count_nonzero(pred & tb, axis=0), "n_true": np.count_nonzero(tb, axis=0),
            "n_pred": np.count_nonzero(pred, axis=0), "brier": np.sum((pv - tv) ** 2),
            "ece_count": np.bincount(b, minlength=n_bins + 1),
            "ece_pos": np.bincount(b[tbv], minlength=n_bins + 1),
            "ece_conf": np.bincount(b, weights=pv, minlength=n_bins + 1),
            "hist": np.bincount(key, minlength=L * 2 * auc_bins).reshape(L, 2, auc_bins)}


def assert_state_equal(ev, ref):
    """Counts exactly, float sums to float64 rounding."""
    from fastloss.metrics import _comp_total
    a = ev._mstate.arrays()
    for k, v in ref.items():
        got = a[k]
        if k in ("brier", "ece_conf"):
            np.testing.assert_allclose(_comp_total(got), v, rtol=1e-12, atol=1e-300, err_msg=k)
        else:
            np.testing.assert_array_equal(np.reshape(got, np.shape(v)), v, err_msg=k)


def edge_logits(x):
    """x with the values at the bins' edges and limits: 0 (p = 1/2), +-inf, +-40, +-800,
    and logits whose p falls on a calibration edge j / 15 or next to it."""
    x = x.copy()
    j = np.arange(1, 15) / 15
    special = np.concatenate([[0, np.inf, -np.inf, 40, -40, 800, -800],
                              np.log(j / (1 - j)), np.nextafter(np.log(j / (1 - j)), 9)])
    flat = x.reshape(-1)
    flat[:special.size] = special.astype(x.dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape", [(700, 5), (2100,), (40, 3, 7), (3, 20000)])
def test_sigmoid_kernel_statistics_equal_the_numpy_pass(dtype, shape):
    """Every count of the kernel's pass equals the NumPy pass exactly, the sums to
    float64 rounding: rows of labels, 1-d binary (every element a row), a label axis
    after other axes, and rows longer than a reduction block (pieces of one row)."""
    rng = np.random.default_rng(31)
    t = (rng.random(shape) < 0.35).astype(dtype)
    x = edge_logits((rng.standard_normal(shape) * 2 + (2 * t - 1)).astype(dtype))
    for kw in ({}, {"threshold": 0.3, "n_bins": 7, "auc_bins": 50}):
        ev = Evaluator("sigmoid", metrics="all", **kw).update(x, t)
        assert_state_equal(ev, numpy_sigmoid_state(x, t, **kw))
        for nt in (1, 2, 3):
            other = Evaluator("sigmoid", metrics="all", n_threads=nt, **kw).update(x, t)
            assert np.array_equal(ev._state_vector(), other._state_vector())


@pytest.mark.parametrize("shape", [(600, 4), (3, 20000), (5000,), (40000,)])
def test_sigmoid_kernel_statistics_ignore_index(shape):
    rng = np.random.default_rng(32)
    t = (rng.random(shape) < 0.4).astype(np.float32)
    t[rng.random(shape) < 0.25] = -1
    if len(shape) == 2:
        t[1] = -1                     # a row with every element ignored
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    ev = Evaluator("sigmoid", metrics="all", ignore_index=-1).update(x, t)
    assert_state_equal(ev, numpy_sigmoid_state(x, t, ignore_index=-1))
    e1 = Evaluator("sigmoid", metrics="all", ignore_index=-1, n_threads=1).update(x, t)
    assert np.array_equal(ev._state_vector(), e1._state_vector())


def test_sigmoid_kernel_statistics_long_rows_subset_accuracy():
    """Rows split into several reduction blocks: a row is right only when every piece
    is; a row whose only wrong element is in its last piece is wrong."""
    n, L = 4, 40000
    t = np.zeros((n, L), np.float64)
    x = np.full((n, L), -3.0)
    x[1, -1] = 3.0                    # row 1 wrong in its last piece only
    x[2, 5] = 3.0                     # row 2 wrong in its first piece
    ev = Evaluator("sigmoid", metrics=["subset_accuracy", "accuracy"]).update(x, t)
    a = ev._mstate.arrays()
    assert int(a["n_rows"][0]) == 4 and int(a["rows_right"][0]) == 2
    assert ev.result().metrics["subset_accuracy"] == 0.5


def test_sigmoid_kernel_statistics_nan_logits():
    """A NaN logit: predicted negative, the last calibration bin, the top AUC bin, and a
    NaN Brier score (the C API documents it)."""
    x = np.array([[np.nan, 1.0], [-1.0, 2.0]])
    t = np.array([[1.0, 1.0], [0.0, 1.0]])
    ev = Evaluator("sigmoid", metrics="all", auc_bins=10).update(x, t)
    a = ev._mstate.arrays()
    np.testing.assert_array_equal(a["n_pred"], [0, 2])
    np.testing.assert_array_equal(a["tp"], [0, 2])
    assert a["ece_count"][15] == 1 and a["ece_count"].sum() == 4
    assert a["hist"][0, 1, 9] == 1
    assert np.isnan(ev.result().metrics["brier"])


def test_sigmoid_kernel_metrics_c_api_checks():
    """The kernel refuses a metrics request outside its domain (FL_FIELD_METRICS)."""
    from fastloss import _core
    from fastloss.metrics import SigmoidMetrics
    x = np.zeros((3, 4), np.float32)
    t = np.zeros((3, 4), np.float32)
    good = SigmoidMetrics.kernel_request(("accuracy",), 4, 15, 0.5, 100)
    r = _core.sigmoid_ce(logits=x, target=t, n_rows=3, row_len=4, metrics=good)
    assert r.status == _core.FL_STATUS_OK
    assert good[5][0] == 12 and good[5][1] == 3
    for bad in (good[:3] + (2,) + good[4:],                 # n_labels neither row_len nor 1
                (1.5,) + good[1:], (0.5, 0) + good[2:]):    # threshold, n_bins
        r = _core.sigmoid_ce(logits=x, target=t, n_rows=3, row_len=4, metrics=bad)
        assert r.status == _core.FL_STATUS_ARG and r.bad_field == "metrics"


def test_class_counts_bins_are_a_search_over_the_edges():
    """_core.class_counts puts each confidence in the bin a search over
    np.linspace(0, 1, n_bins + 1) gives (torch.bucketize(right=True) - 1, clipped), at the
    edges and one ULP either side too; counts are exact and the sums are those of the rows."""
    from fastloss import _core
    rng = np.random.default_rng(5)
    for n_bins in (1, 3, 7, 10, 15, 100):
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        conf = np.concatenate([edges, np.nextafter(edges, -1), np.nextafter(edges, 2),
                               rng.random(500), [0.0, 1.0, np.nan, 1.5, -0.0]])
        n, C = conf.size, 7
        y = rng.integers(0, C, n)
        pred = np.where(rng.random(n) < 0.4, y, rng.integers(0, C, n))
        stats = np.stack([conf, rng.random(n), rng.random(n)], axis=1)
        nll = rng.random(n) * 3
        tp, nt, npr = (np.zeros(C, np.int64) for _ in range(3))
        cm = np.zeros(C * C, np.int64)
        cnt, hit = np.zeros(n_bins + 1, np.int64), np.zeros(n_bins + 1, np.int64)
        csum = np.zeros(n_bins + 1)
        ent, nll_sum, brier = _core.class_counts(y, pred, tp, nt, npr, cm, stats, nll, edges,
                                                 cnt, hit, csum)
        want = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins)
        np.testing.assert_array_equal(cnt, np.bincount(want, minlength=n_bins + 1))
        np.testing.assert_array_equal(hit, np.bincount(want[pred == y], minlength=n_bins + 1))
        finite = ~np.isnan(conf)
        np.testing.assert_allclose(csum[:-1], np.bincount(want[finite], conf[finite],
                                                          minlength=n_bins + 1)[:-1], rtol=1e-14)
        assert np.isnan(csum[-1])                          # the NaN confidence's bin
        np.testing.assert_array_equal(tp, np.bincount(y[pred == y], minlength=C))
        np.testing.assert_array_equal(nt, np.bincount(y, minlength=C))
        np.testing.assert_array_equal(npr, np.bincount(pred, minlength=C))
        np.testing.assert_array_equal(cm.reshape(C, C), M.confusion_matrix(y, pred,
                                                                           labels=range(C)))
        assert ent == pytest.approx(np.sum(stats[:, 2]), rel=1e-14)
        assert nll_sum == pytest.approx(np.sum(nll), rel=1e-14)
        assert brier == pytest.approx(np.sum(stats[:, 1] - 2 * np.exp(-nll) + 1), rel=1e-13)
    with pytest.raises(ValueError, match="outside"):
        _core.class_counts(np.array([0, 7]), np.array([0, 1]), tp, nt, npr)
    np.testing.assert_array_equal(nt, np.bincount(y, minlength=C))    # nothing written


def test_chunked_class_counts_equal_one_shot():
    """Counts, the confusion matrix and the calibration bins from many small chunks (some
    rows ignored) equal one update's exactly, and the float metrics to rounding."""
    rng = np.random.default_rng(11)
    n, C = 3001, 37
    x = rng.standard_normal((n, C)).astype(np.float32) * 2
    y = rng.integers(0, C, n)
    y[rng.random(n) < 0.1] = -100
    one = Evaluator("softmax_cross_entropy", metrics="all").update(x, y)
    many = Evaluator("softmax_cross_entropy", metrics="all")
    for i in range(0, n, 97):
        many.update(x[i:i + 97], y[i:i + 97])
    a, b = one._mstate.arrays(), many._mstate.arrays()
    for k in ("n", "tp", "n_true", "n_pred", "confusion", "ece_count", "ece_correct"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    r1, r2 = one.result().metrics, many.result().metrics
    for k, v in r1.items():
        np.testing.assert_allclose(r2[k], v, rtol=1e-12, atol=1e-15, err_msg=k)
    keep = y != -100
    np.testing.assert_array_equal(r1["confusion_matrix"],
                                  M.confusion_matrix(y[keep], x[keep].argmax(1),
                                                     labels=range(C)))
