"""fastloss.Evaluator: chunked evaluation equals one call over the concatenation."""

import math
import pickle
import zlib

import numpy as np
import pytest

import fastloss
from fastloss import Evaluator
from fastloss.evaluate import LOSSES, EvalResult, resolve_loss

RTOL = 1e-12


def _rng(seed=0):
    return np.random.default_rng(seed)


def _splits(n, rng, n_chunks=6):
    """Random chunk boundaries over n rows, empty and one-row chunks included."""
    cuts = np.sort(rng.integers(0, n + 1, n_chunks - 3))
    return sorted([0, 0, 1, *cuts.tolist(), n])


def _case(name, dtype, rng):
    """(loss, constructor options, pred, target, per-row array or None) of one scenario."""
    n, c = 203, 7
    x = rng.standard_normal((n, c)).astype(dtype) * 3
    y = rng.integers(0, c, n)
    sw = rng.uniform(0.1, 2.0, n)
    if name == "softmax":
        return "softmax_cross_entropy", {}, x, y, None
    if name == "softmax_all_options":
        y = y.copy()
        y[::9] = 3            # ignore_index below
        return ("softmax_cross_entropy",
                {"weight": rng.uniform(0.5, 2, c), "ignore_index": 3, "label_smoothing": 0.1},
                x, y, sw)
    if name == "softmax_extras":             # the options beyond PyTorch's
        return ("softmax_cross_entropy", {"z_loss": 1e-3, "softcap": 5.0, "focal_gamma": 2.0,
                                          "poly1_epsilon": 0.5}, x, y, sw)
    if name == "softmax_axis1":
        x3 = rng.standard_normal((n, c, 3)).astype(dtype)
        return ("softmax_cross_entropy", {"axis": 1}, x3, rng.integers(0, c, (n, 3)),
                rng.uniform(0.1, 2.0, (n, 3)))
    if name == "softmax_probs":
        p = rng.dirichlet(np.ones(c), n).astype(dtype)
        return "softmax_cross_entropy", {"label_smoothing": 0.05}, x, p, sw
    if name == "sigmoid":
        t = (rng.random((n, c)) < 0.3).astype(dtype)
        return "sigmoid_cross_entropy", {"pos_weight": rng.uniform(0.5, 2, c)}, x, t, \
            rng.uniform(0, 1, (n, c))
    if name == "sigmoid_extras":             # the options beyond PyTorch's
        t = (rng.random((n, c)) < 0.3).astype(dtype)
        return ("sigmoid_cross_entropy", {"focal_gamma": 2.0, "focal_alpha": 0.25,
                                          "poly1_epsilon": 0.5}, x, t, rng.uniform(0, 1, (n, c)))
    if name == "sigmoid_row_weight":
        t = rng.random((n, c)).astype(dtype)
        return "sigmoid_cross_entropy", {"weight": rng.uniform(0.5, 2, c)}, x, t, None
    if name == "hinge_ovr":
        return "hinge", {"weight": rng.uniform(0.5, 2, c)}, x, y, sw
    if name == "hinge_ww":
        return "hinge", {"multiclass": "weston_watkins", "squared": True, "margin": 0.5}, \
            x, y, None
    if name == "hinge_cs":
        return "hinge", {"multiclass": "crammer_singer"}, x, y, sw
    if name == "hinge_binary":
        return "hinge", {}, x[:, 0], np.where(y % 2 == 0, 1, -1), sw
    if name == "hinge_multilabel":
        return "hinge", {}, x, (rng.random((n, c)) < 0.4).astype(np.int8), sw
    if name == "mse":
        return "mse", {}, x, rng.standard_normal((n, c)).astype(dtype), rng.uniform(0, 1, (n, c))
    if name == "mse_1d":
        return "mse", {}, x[:, 0], rng.standard_normal(n).astype(dtype), None
    raise AssertionError(name)


CASES = ["softmax", "softmax_all_options", "softmax_axis1", "softmax_probs", "sigmoid",
         "sigmoid_row_weight", "hinge_ovr", "hinge_ww", "hinge_cs", "hinge_binary",
         "hinge_multilabel", "mse", "mse_1d"]
if "z_loss" in LOSSES["softmax_cross_entropy"].extra:
    CASES.append("softmax_extras")
if "focal_gamma" in LOSSES["sigmoid_cross_entropy"].extra:
    CASES.append("sigmoid_extras")


def _one_call(loss, opts, x, t, per_row, reduction):
    fn = getattr(fastloss, loss)
    kw = dict(opts)
    if per_row is not None:
        kw["sample_weight" if loss in ("softmax_cross_entropy", "hinge") else "weight"] = per_row
    return fn(x, t, reduction=reduction, **kw)


def _chunked(loss, opts, x, t, per_row, bounds, **ev_kw):
    ev = Evaluator(loss, **opts, **ev_kw)
    key = "sample_weight" if loss in ("softmax_cross_entropy", "hinge") else "weight"
    for a, b in zip(bounds[:-1], bounds[1:]):
        kw = {} if per_row is None else {key: per_row[a:b]}
        ev.update(x[a:b], t[a:b], **kw)
    return ev


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_chunked_equals_one_call(case, dtype, reduction):
    rng = _rng(zlib.crc32((case + reduction).encode()))
    loss, opts, x, t, per_row = _case(case, dtype, rng)
    bounds = _splits(len(x), rng)
    res = _chunked(loss, opts, x, t, per_row, bounds, reduction=reduction).result()
    want = _one_call(loss, opts, x, t, per_row, reduction)
    assert res.loss == pytest.approx(want, rel=RTOL, abs=0)
    assert res.loss_name == loss and res.reduction == reduction
    n_rows = x.size if loss in ("sigmoid_cross_entropy", "mse") else \
        (x.size if x.ndim == 1 else x.size // x.shape[opts.get("axis", -1)])
    assert res.n_rows == n_rows
    assert res.loss_sum / res.weight_sum == pytest.approx(
        _one_call(loss, opts, x, t, per_row, "mean"), rel=RTOL)


def _numpy_hits(x, y, k, ignore=None, axis=-1):
    ax = axis % x.ndim
    xy = np.take_along_axis(x, np.expand_dims(y, ax), axis=ax)
    higher = (x > xy).sum(axis=ax)
    keep = ~np.isnan(np.squeeze(xy, ax))
    counted = np.ones(y.shape, bool) if ignore is None else ignore
    return (((higher < 1) & keep & counted).sum() / counted.sum(),
            ((higher < k) & keep & counted).sum() / counted.sum())


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "hinge"])
@pytest.mark.parametrize("k", [1, 3, 9])
def test_accuracy_and_top_k(loss, k):
    rng = _rng(3)
    x = rng.integers(-3, 4, (500, 8)).astype(np.float32)      # many ties: ties count as hits
    x[5, 2] = np.nan
    y = rng.integers(0, 8, 500)
    y[5] = 2                                                  # NaN target score: a miss
    opts = {}
    counted = None
    if loss == "softmax_cross_entropy":
        y[::10] = -100
        counted = y != -100
        opts = {"ignore_index": -100}
    ev = _chunked(loss, opts, x, y, None, [0, 17, 17, 260, 500], top_k=k)
    res = ev.result()
    acc, topk = _numpy_hits(x, np.where(y < 0, 0, y), k, counted)
    assert res.accuracy == pytest.approx(acc, rel=1e-15)
    assert res.top_k_accuracy == pytest.approx(topk, rel=1e-15)
    assert res.top_k == k
    assert res.n_ignored == (0 if counted is None else (~counted).sum())


def test_accuracy_axis1_layout():
    rng = _rng(4)
    x = rng.standard_normal((50, 6, 4))
    y = rng.integers(0, 6, (50, 4))
    for loss in ("softmax_cross_entropy", "hinge"):
        res = _chunked(loss, {"axis": 1}, x, y, None, [0, 20, 50], top_k=2).result()
        acc, topk = _numpy_hits(x, y, 2, axis=1)
        assert (res.accuracy, res.top_k_accuracy) == pytest.approx((acc, topk), rel=1e-15)
        assert res.n_rows == 200


def test_no_accuracy_where_it_does_not_apply():
    rng = _rng(5)
    x = rng.standard_normal((20, 4))
    for loss, t in [("softmax_cross_entropy", rng.dirichlet(np.ones(4), 20)),
                    ("sigmoid_cross_entropy", rng.random((20, 4))),
                    ("mse", rng.random((20, 4))),
                    ("hinge", (rng.random((20, 4)) < 0.5).astype(int))]:
        res = Evaluator(loss).update(x, t).result()
        assert res.accuracy is None and res.top_k_accuracy is None and res.top_k is None
    res = Evaluator("hinge").update(x[:, 0], np.sign(x[:, 1])).result()
    assert res.accuracy is None
    res = Evaluator("softmax_cross_entropy", top_k=None).update(x, np.zeros(20, int)).result()
    assert res.accuracy is None


def test_merge_equals_one_evaluator():
    rng = _rng(6)
    loss, opts, x, y, sw = _case("softmax_all_options", np.float32, rng)
    a = _chunked(loss, opts, x[:80], y[:80], sw[:80], [0, 30, 80], top_k=2)
    b = _chunked(loss, opts, x[80:], y[80:], sw[80:], [0, 50, 123], top_k=2)
    c = Evaluator(loss, **opts, top_k=2)              # empty: merging it changes nothing
    merged = a.merge(b).merge(c).result()
    whole = _chunked(loss, opts, x, y, sw, [0, len(x)], top_k=2).result()
    assert merged.loss == pytest.approx(whole.loss, rel=RTOL)
    assert (merged.n_rows, merged.n_ignored, merged.accuracy, merged.top_k_accuracy) == \
        (whole.n_rows, whole.n_ignored, whole.accuracy, whole.top_k_accuracy)
    assert merged.loss == pytest.approx(
        fastloss.softmax_cross_entropy(x, y, sample_weight=sw, **opts), rel=RTOL)


def test_merge_rejects_different_settings():
    x, y = np.zeros((3, 4)), np.zeros(3, int)
    a = Evaluator("softmax_cross_entropy").update(x, y)
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Evaluator("softmax_cross_entropy", label_smoothing=0.1))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Evaluator("softmax_cross_entropy", weight=np.ones(4)))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Evaluator("mse"))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(Evaluator("softmax_cross_entropy", top_k=2))
    with pytest.raises(ValueError, match="dtype"):
        a.merge(Evaluator("softmax_cross_entropy").update(x.astype(np.float32), y))
    with pytest.raises(TypeError, match="Evaluator"):
        a.merge(3)
    w = Evaluator("softmax_cross_entropy", weight=[1.0, 2, 3, 4])
    w.merge(Evaluator("softmax_cross_entropy", weight=np.array([1.0, 2, 3, 4])))


def test_empty_and_all_ignored():
    for red, want in (("mean", math.nan), ("sum", 0.0)):
        res = Evaluator("softmax_cross_entropy", reduction=red).result()
        assert res.loss == want or (math.isnan(want) and math.isnan(res.loss))
        assert res.n_rows == 0 and math.isnan(res.accuracy)
    ev = Evaluator("softmax_cross_entropy").update(np.ones((4, 3)), np.full(4, -100))
    res = ev.result()
    assert math.isnan(res.loss) and math.isnan(res.accuracy)
    assert (res.n_rows, res.n_ignored) == (4, 4)
    assert Evaluator("mse", reduction="sum").update(np.empty((0, 3)), np.empty((0, 3))) \
        .result().loss == 0.0


def test_non_finite_losses_propagate():
    ev = Evaluator("softmax_cross_entropy")
    ev.update(np.array([[0.0, 1.0]]), np.array([0]))
    ev.update(np.array([[-np.inf, 1.0]]), np.array([0]))       # +inf loss
    ev.update(np.array([[0.0, 1.0]]), np.array([1]))
    assert ev.result().loss == np.inf
    ev.update(np.array([[np.nan, 1.0]]), np.array([1]))
    assert math.isnan(ev.result().loss)


def test_failed_chunk_leaves_state_unchanged():
    ev = Evaluator("softmax_cross_entropy").update(np.ones((2, 3)), np.array([0, 1]))
    before = ev.result()
    with pytest.raises(ValueError, match="label 7"):
        ev.update(np.ones((2, 3)), np.array([0, 7]))
    with pytest.raises(ValueError, match="shape"):
        ev.update(np.ones((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="dtype float32 but the earlier chunks had float64"):
        ev.update(np.ones((2, 3), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="probabilities but the earlier chunks held integer"):
        ev.update(np.ones((2, 3)), np.ones((2, 3)) / 3)
    with pytest.raises(TypeError, match="float16"):
        ev.update(np.ones((2, 3), np.float16), np.array([0, 1]))
    assert ev.result() == before


def test_first_failed_chunk_sets_nothing():
    ev = Evaluator("softmax_cross_entropy")
    with pytest.raises(ValueError):
        ev.update(np.ones((2, 3), np.float32), np.array([0, 9]))
    ev.update(np.ones((2, 3)), np.array([0, 1]))       # float64 is fine afterwards
    assert ev.result().n_rows == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "nope"}, "unknown loss 'nope'"),
    ({"loss": "mse", "label_smoothing": 0.1}, "mse takes no option 'label_smoothing'"),
    ({"loss": "softmax_cross_entropy", "sample_weight": [1.0]}, "per row: pass it with each"),
    ({"loss": "mse", "reduction": "none"}, "does not keep"),
    ({"loss": "mse", "reduction": "avg"}, "reduction must be 'mean', 'sum', 'batchmean', 'fullmean'"),
    ({"loss": "hinge", "top_k": 0}, "top_k must be a positive integer"),
    ({"loss": "hinge", "top_k": 1.5}, "top_k must be a positive integer"),
    ({"loss": "hinge", "n_threads": 0}, "n_threads"),
    ({"loss": "hinge", "axis": "last"}, "axis must be an integer"),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Evaluator(**kwargs)


def test_update_errors():
    with pytest.raises(ValueError, match="class axis"):
        Evaluator("softmax_cross_entropy", axis=0).update(np.ones((3, 2)), np.zeros(2, int))
    with pytest.raises(ValueError, match="class axis"):
        Evaluator("softmax_cross_entropy").update(np.ones(3), np.array(0))
    with pytest.raises(ValueError, match="per-chunk weight"):
        Evaluator("hinge").update(np.ones((3, 2)), np.zeros(3, int), weight=np.ones(3))
    with pytest.raises(ValueError, match="cannot give another"):
        Evaluator("mse", weight=2.0).update(np.ones(3), np.ones(3), weight=np.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        Evaluator("softmax_cross_entropy", label_smoothing=2).update(np.ones((3, 2)),
                                                                     np.zeros(3, int))


def test_aliases_functions_and_scalars():
    assert resolve_loss(fastloss.hinge) == "hinge"
    assert resolve_loss("CE") == resolve_loss("softmax") == "softmax_cross_entropy"
    assert resolve_loss("bce") == "sigmoid_cross_entropy"
    ev = Evaluator(fastloss.mse)
    ev.update(np.float64(2.0), np.float64(0.0))          # a 0-d chunk is one element
    ev.update(np.array([1.0]), np.array([0.0]))
    assert ev.result().loss == pytest.approx(2.5, rel=RTOL)


def test_pickle_reset_and_result_type():
    rng = _rng(8)
    x, y = rng.standard_normal((10, 3)), rng.integers(0, 3, 10)
    ev = Evaluator("softmax_cross_entropy", weight=[1.0, 2.0, 3.0]).update(x, y)
    ev2 = pickle.loads(pickle.dumps(ev))
    assert ev2.result() == ev.result()
    assert isinstance(ev.result(), EvalResult)
    assert ev.result().as_dict()["n_rows"] == 10
    assert ev.reset().result().n_rows == 0
    assert "softmax_cross_entropy" in repr(ev)


def test_many_chunks_keep_float64_accuracy():
    """10,000 one-row chunks: compensated sums stay at the single call's rounding."""
    rng = _rng(9)
    x = (rng.standard_normal((10_000, 5)) * 10).astype(np.float32)
    y = rng.integers(0, 5, 10_000)
    ev = Evaluator("softmax_cross_entropy", reduction="sum", top_k=None)
    for i in range(10_000):
        ev.update(x[i:i + 1], y[i:i + 1])
    assert ev.result().loss == pytest.approx(
        fastloss.softmax_cross_entropy(x, y, reduction="sum"), rel=RTOL)


def test_input_not_modified_and_n_threads():
    rng = _rng(10)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    x0 = x.copy()
    r1 = Evaluator("softmax_cross_entropy", n_threads=1).update(x, y).result()
    r2 = Evaluator("softmax_cross_entropy", n_threads=2).update(x, y).result()
    assert r1 == r2
    np.testing.assert_array_equal(x, x0)
