"""fastloss.dask.evaluate: blocks on the workers, a tree of states, the in-memory result."""

import math

import numpy as np
import pytest

import fastloss
from fastloss import Evaluator

from .test_evaluator import CASES, _case

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
fdask = pytest.importorskip("fastloss.dask")     # skips where Dask is not installed

RTOL = 1e-12


@pytest.fixture
def sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def _in_memory(loss, opts, x, t, per_row, **kw):
    key = "sample_weight" if loss in ("softmax_cross_entropy", "hinge") else "weight"
    extra = {} if per_row is None else {key: per_row}
    return Evaluator(loss, **opts, **kw).update(x, t, **extra).result()


def _same(got, want):
    assert got.loss == pytest.approx(want.loss, rel=RTOL, abs=0)
    assert got.loss_sum == pytest.approx(want.loss_sum, rel=RTOL, abs=0)
    assert got.weight_sum == pytest.approx(want.weight_sum, rel=RTOL, abs=0)
    assert (got.n_rows, got.n_ignored, got.accuracy, got.top_k, got.top_k_accuracy) == \
        (want.n_rows, want.n_ignored, want.accuracy, want.top_k, want.top_k_accuracy)


@pytest.mark.parametrize("case", CASES)
def test_equals_in_memory(sync, case):
    rng = np.random.default_rng(len(case))
    loss, opts, x, t, per_row = _case(case, np.float32, rng)
    rows = (1, 50, 0, 100, x.shape[0] - 151)                    # uneven blocks, one empty
    dx = da.from_array(x, chunks=(rows,) + x.shape[1:])
    dt = da.from_array(t, chunks=(37,) + t.shape[1:])           # other blocks: rechunked
    key = "sample_weight" if loss in ("softmax_cross_entropy", "hinge") else "weight"
    kw = {} if per_row is None else {key: da.from_array(per_row, chunks=60)}
    for reduction in ("mean", "sum"):
        got = fdask.evaluate(dx, dt, loss=loss, reduction=reduction, top_k=2, split_every=2,
                             **opts, **kw)
        _same(got, _in_memory(loss, opts, x, t, per_row, reduction=reduction, top_k=2))
    assert got.loss == pytest.approx(
        getattr(fastloss, loss)(x, t, reduction="sum", **opts,
                                **({} if per_row is None else {key: per_row})), rel=RTOL)


def test_numpy_inputs_class_axis_blocks_and_3d(sync):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 9, 5))
    y = rng.integers(0, 9, (120, 5))
    dx = da.from_array(x, chunks=(25, 4, 2))         # split along classes: merged per block
    got = fdask.evaluate(dx, y, loss="ce", axis=1, weight=np.linspace(1, 2, 9))
    _same(got, _in_memory("softmax_cross_entropy", {"axis": 1, "weight": np.linspace(1, 2, 9)},
                          x, y, None))
    assert got.n_rows == 600


def test_elementwise_weights(sync):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    t = rng.random((200, 6)).astype(np.float32)
    w_full = rng.random((200, 6))
    w_col = rng.random(6)
    dx = da.from_array(x, chunks=(30, 6))
    for w in (w_full, da.from_array(w_full, chunks=(70, 3)), w_col):
        for loss, fn in (("sigmoid_cross_entropy", fastloss.sigmoid_cross_entropy),
                         ("mse", fastloss.mse)):
            got = fdask.evaluate(dx, t, loss=loss, weight=w)
            assert got.loss == pytest.approx(fn(x, t, weight=np.asarray(w)), rel=RTOL)


def test_one_dimensional_and_empty(sync):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000)
    t = rng.standard_normal(1000)
    got = fdask.evaluate(da.from_array(x, chunks=128), da.from_array(t, chunks=128), loss="mse")
    assert got.loss == pytest.approx(fastloss.mse(x, t), rel=RTOL) and got.n_rows == 1000
    e = fdask.evaluate(da.zeros((0, 4), chunks=(1, 4)), np.zeros(0, int))
    assert math.isnan(e.loss) and e.n_rows == 0


def test_delayed(sync):
    x = np.random.default_rng(4).standard_normal((64, 3))
    y = np.arange(64) % 3
    d = fdask.evaluate(da.from_array(x, chunks=16), y, compute=False)
    assert hasattr(d, "compute")
    _same(d.compute(), _in_memory("softmax_cross_entropy", {}, x, y, None))


def test_errors(sync):
    x = da.zeros((10, 3), chunks=5)
    with pytest.raises(ValueError, match="same number of rows"):
        fdask.evaluate(x, np.zeros(9, int))
    with pytest.raises(ValueError, match="axis 0, which holds the rows"):
        fdask.evaluate(x, np.zeros(3, int), axis=0)
    with pytest.raises(ValueError, match="unknown loss"):
        fdask.evaluate(x, np.zeros(10, int), loss="nope")
    with pytest.raises(ValueError, match="one value per class"):
        fdask.evaluate(x, np.zeros(10, int), weight=np.ones(4))
    with pytest.raises(TypeError, match="float16"):
        fdask.evaluate(x.astype(np.float16), np.zeros(10, int))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fdask.evaluate(x[x[:, 0] > -1], np.zeros(10, int))
    with pytest.raises(ValueError, match="label 5"):
        fdask.evaluate(x, np.full(10, 5))
    with pytest.raises(ValueError, match="no sample_weight"):
        fdask.evaluate(x, x, loss="mse", sample_weight=np.ones(10))


def test_local_cluster_two_processes():
    """The real thing: two worker processes, blocks made and evaluated on the workers."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        x = da.random.default_rng(5).standard_normal((40_000, 50), chunks=(5_000, 50),
                                                     dtype=np.float32)
        y = da.random.default_rng(6).integers(0, 50, 40_000, chunks=5_000)
        x, y = client.persist([x, y])
        distributed.wait([x, y])
        with distributed.get_task_stream(client) as ts:
            got = fdask.evaluate(x, y, loss="softmax_cross_entropy", top_k=5,
                                 label_smoothing=0.1)
        # the per-block kernel calls (fused by Dask with the first level of the tree)
        ours = [t for t in ts.data if "fastloss-eval" in str(t["key"])]
        assert {t["worker"] for t in ours} == set(client.scheduler_info()["workers"])
        xn, yn = client.compute([x, y], sync=True)
    _same(got, Evaluator("softmax_cross_entropy", top_k=5, label_smoothing=0.1)
          .update(xn, yn).result())
    assert got.loss == pytest.approx(
        fastloss.softmax_cross_entropy(xn, yn, label_smoothing=0.1), rel=RTOL)


@pytest.mark.parametrize("loss, options", [("softmax_cross_entropy", {}),
                                           ("hinge", {"multiclass": "weston_watkins"})])
def test_bad_label_is_reported_at_its_position_in_the_array(sync, loss, options):
    """Not at its position inside its Dask block (the in-memory call and the CLI agree)."""
    x = da.zeros((1000, 3), chunks=250)
    y = np.arange(1000) % 3
    y[777] = 7
    with pytest.raises(ValueError, match=r"label 7 at position \(777,\)"):
        fdask.evaluate(x, y, loss=loss, **options)
    # a multi-dimensional row shape: the row index moves, the others stay
    x4 = da.zeros((40, 3, 2), chunks=(10, 3, 2))
    y4 = np.zeros((40, 2), dtype=np.int64)
    y4[27, 1] = -5
    with pytest.raises(ValueError, match=r"label -5 at position \(27, 1\)"):
        fdask.evaluate(x4, y4, axis=1, loss=loss, **options)
    # a block that starts at 0 keeps its positions
    y[777], y[3] = 0, 9
    with pytest.raises(ValueError, match=r"label 9 at position \(3,\)"):
        fdask.evaluate(x, y, loss=loss, **options)
