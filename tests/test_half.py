"""Half precision: float16 and bfloat16 predictions read directly, computed in float32.

The reference is the float64 computation on the same (already rounded) half values: losses
within float32 rounding of it, gradients within one rounding to the half dtype.  Where the
tiles of a half call are the float32 call's own blocks (class axis last, elementwise losses),
the half call must also give exactly the float32 kernel's bits on the upcast values, with the
gradient rounded once to nearest even.
"""
import json
import tracemalloc

import numpy as np
import pytest

import fastloss as fl
from fastloss import _api, _core
from fastloss import reference as ref

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
HALVES = [F16, BF16]
HALF_IDS = ["float16", "bfloat16"]


def half_ulp(v, dt):
    """The spacing of the half dtype at |v| (the step up from |v| rounded to dt)."""
    a = np.abs(np.asarray(v, np.float64))
    h = a.astype(np.float32).astype(dt)
    bits = h.view(np.uint16)
    up = (bits + 1).astype(np.uint16).view(dt).astype(np.float64)
    return up - h.astype(np.float64)


def assert_grad_close(g, expected, dt):
    """Within one rounding to the half dtype (plus float32's own few ULP) of the float64 value."""
    assert g.dtype == dt
    g64 = g.astype(np.float64)
    e = np.asarray(expected, np.float64)
    fin = np.isfinite(e)
    assert np.array_equal(np.isnan(g64), np.isnan(e))
    assert np.array_equal(g64[np.isinf(e)], e[np.isinf(e)])
    err = np.abs(g64[fin] - e[fin])
    tol = half_ulp(e[fin], dt) + 1e-6 * np.abs(e[fin])
    bad = err > tol
    assert not bad.any(), (g64[fin][bad][:5], e[fin][bad][:5])


def assert_loss_close(v, expected, scale=None):
    v = np.asarray(v, np.float64)
    e = np.asarray(expected, np.float64)
    s = np.abs(e) if scale is None else scale
    assert np.allclose(v, e, rtol=2e-5, atol=1e-6 * np.max(np.atleast_1d(s)) + 1e-30,
                       equal_nan=True), (v, e)


def rounded(x, dt):
    return np.asarray(x, np.float32).astype(dt)


# ---------------------------------------------------------------- cases

rng0 = np.random.default_rng(1234)


def _case(loss, kind, dt):
    rng = np.random.default_rng(abs(hash((loss, kind))) % 2**32)
    if loss == "softmax_cross_entropy":
        x = rounded(rng.standard_normal((37, 11)) * 3, dt)
        if kind == "labels":
            return x, rng.integers(0, 11, 37), {}
        if kind == "labels_opts":
            y = rng.integers(0, 11, 37)
            y[3] = -100
            return x, y, {"weight": rng.random(11) + 0.5, "sample_weight": rng.random(37),
                          "label_smoothing": 0.1}
        if kind == "probs_half":
            return x, rounded(rng.dirichlet(np.ones(11), 37), dt), {}
        if kind == "probs_f32":
            return x, rng.dirichlet(np.ones(11), 37).astype(np.float32), {}
        if kind == "axis1":
            x = rounded(rng.standard_normal((3, 7, 29)) * 2, dt)
            return x, rng.integers(0, 7, (3, 29)), {"axis": 1}
        if kind == "axis1_probs":
            x = rounded(rng.standard_normal((3, 7, 29)) * 2, dt)
            p = rng.dirichlet(np.ones(7), (3, 29)).transpose(0, 2, 1)
            return x, rounded(p, dt), {"axis": 1}
        if kind == "z_softcap":
            return x, rng.integers(0, 11, 37), {"z_loss": 1e-3, "softcap": 4.0}
        if kind == "focal_poly":
            return x, rng.integers(0, 11, 37), {"focal_gamma": 2.0, "poly1_epsilon": 0.5}
    if loss == "sigmoid_cross_entropy":
        x = rounded(rng.standard_normal((13, 17)) * 4, dt)
        t = (rng.random((13, 17)) < 0.3).astype(np.float32)
        if kind == "plain":
            return x, rounded(t, dt), {}
        if kind == "f32_target":
            return x, rng.random((13, 17)).astype(np.float32), {}
        if kind == "weights":
            return x, rounded(t, dt), {"weight": rng.random(17), "pos_weight": rng.random(17) * 3}
        if kind == "focal":
            return x, rounded(t, dt), {"focal_gamma": 2.0, "focal_alpha": 0.25}
    if loss == "hinge":
        if kind == "binary":
            x = rounded(rng.standard_normal(41) * 2, dt)
            return x, np.where(rng.random(41) < 0.5, -1, 1), {}
        x = rounded(rng.standard_normal((23, 9)) * 2, dt)
        y = rng.integers(0, 9, 23)
        if kind == "ovr":
            return x, y, {"squared": True}
        if kind == "weston_watkins":
            return x, y, {"multiclass": "weston_watkins", "weight": rng.random(9) + 0.5}
        if kind == "crammer_singer":
            return x, y, {"multiclass": "crammer_singer", "sample_weight": rng.random(23)}
        if kind == "multilabel":
            return x, (rng.random((23, 9)) < 0.3).astype(np.int64), {"margin": 0.5}
    if loss == "mse":
        x = rounded(rng.standard_normal((19, 23)), dt)
        if kind == "plain":
            return x, rounded(rng.standard_normal((19, 23)), dt), {}
        if kind == "f32_target":
            return x, rng.standard_normal((19, 23)).astype(np.float32), {}
        if kind == "weight":
            return x, rounded(rng.standard_normal((19, 23)), dt), {"weight": rng.random(23)}
    raise AssertionError((loss, kind))


CASES = [("softmax_cross_entropy", k) for k in
         ("labels", "labels_opts", "probs_half", "probs_f32", "axis1", "axis1_probs", "z_softcap",
          "focal_poly")] + \
        [("sigmoid_cross_entropy", k) for k in ("plain", "f32_target", "weights", "focal")] + \
        [("hinge", k) for k in ("binary", "ovr", "weston_watkins", "crammer_singer",
                                "multilabel")] + \
        [("mse", k) for k in ("plain", "f32_target", "weight")]
HESS = {"softmax_cross_entropy", "sigmoid_cross_entropy", "mse"}


def _f64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype.kind in "fV" else a


def _f32(a):
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype.kind in "fV" else a


def _no_hess_opts(loss, kw):
    return not any(k in kw for k in ("z_loss", "softcap", "focal_gamma", "poly1_epsilon",
                                     "focal_alpha"))


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_every_loss_and_form_against_float64_on_the_rounded_values(loss, kind, reduction, dt):
    x, t, kw = _case(loss, kind, dt)
    kw = dict(kw, reduction=reduction)
    f = getattr(fl, loss)
    rf = getattr(ref, loss)
    rv, rg = getattr(ref, loss + "_value_and_grad")(_f64(x), _f64(t), **kw)
    v = f(x, t, **kw)
    if reduction == "none":
        assert isinstance(v, np.ndarray) and v.dtype == np.float32
        assert v.shape == np.shape(rv)
        assert_loss_close(v, rv, scale=np.max(np.abs(rv)) if np.size(rv) else 1.0)
    else:
        assert type(v) is float
        assert_loss_close(v, rv)
    g = getattr(fl, loss + "_grad")(x, t, **kw)
    assert g.shape == x.shape
    assert_grad_close(g, rg, dt)
    v2, g2 = getattr(fl, loss + "_value_and_grad")(x, t, **kw)
    assert np.array_equal(np.asarray(v2), np.asarray(v), equal_nan=True)
    assert g2.tobytes() == g.tobytes()
    assert rf is not None
    if loss in HESS and reduction == "none" and _no_hess_opts(loss, kw):
        kh = {k: v for k, v in kw.items() if k != "reduction"}
        gh, hh = getattr(fl, loss + "_grad_hess")(x, t, **kh)
        assert gh.tobytes() == g.tobytes()
        # the Hessian has no float64 reference: the float32 kernel on the same values
        _, h32 = getattr(fl, loss + "_grad_hess")(x.astype(np.float32), _f32(t), **kh)
        assert_grad_close(hh, h32, dt)


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
@pytest.mark.parametrize("loss,kind", [c for c in CASES if c[1] not in ("axis1", "axis1_probs")],
                         ids=["%s-%s" % c for c in CASES if c[1] not in ("axis1", "axis1_probs")])
def test_same_bits_as_the_float32_kernel_on_the_upcast_values(loss, kind, dt):
    """Class axis last and elementwise: the tiles are the float32 call's blocks."""
    x, t, kw = _case(loss, kind, dt)
    v, g = getattr(fl, loss + "_value_and_grad")(x, t, **kw)
    v32, g32 = getattr(fl, loss + "_value_and_grad")(x.astype(np.float32), _f32(t), **kw)
    assert np.float64(v).tobytes() == np.float64(v32).tobytes()
    assert g.tobytes() == g32.astype(dt).tobytes()        # NumPy / ml_dtypes round to nearest even
    rows = getattr(fl, loss)(x, t, **dict(kw, reduction="none"))
    rows32 = getattr(fl, loss)(x.astype(np.float32), _f32(t), **dict(kw, reduction="none"))
    assert rows.tobytes() == rows32.tobytes()


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
def test_subnormal_gradients(dt):
    """Mean over many elements: float16 gradients deep in the subnormal range."""
    rng = np.random.default_rng(5)
    n = 1 << 16
    x = rounded(rng.standard_normal(n) * 0.1, dt)
    t = np.zeros(n, np.float32)
    g = fl.mse_grad(x, t)
    e = 2.0 * x.astype(np.float64) / n
    if dt == F16:
        sub = (np.abs(e) < 2.0 ** -14) & (e != 0)
        assert sub.mean() > 0.9 and (g[sub] != 0).any()
    assert_grad_close(g, e, dt)
    gs = fl.softmax_cross_entropy_grad(rounded(rng.standard_normal((4096, 8)), dt),
                                       rng.integers(0, 8, 4096))
    assert gs.dtype == dt and np.isfinite(gs.astype(np.float64)).all()


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
def test_inf_and_nan_limits(dt):
    x = np.array([[np.inf, 0.0, 1.0], [0.0, -np.inf, 2.0], [np.nan, 0.0, 0.0], [1.0, 2.0, 3.0]],
                 np.float32).astype(dt)
    y = np.array([0, 2, 1, 2])
    rows = fl.softmax_cross_entropy(x, y, reduction="none")
    g = fl.softmax_cross_entropy_grad(x, y, reduction="sum")
    rows32 = fl.softmax_cross_entropy(x.astype(np.float32), y, reduction="none")
    g32 = fl.softmax_cross_entropy_grad(x.astype(np.float32), y, reduction="sum")
    assert rows.tobytes() == rows32.tobytes()
    assert g.tobytes() == g32.astype(dt).tobytes()
    assert rows[0] == 0.0 and np.isnan(rows[2]) and np.isfinite(rows[1])
    xs = np.array([np.inf, -np.inf, 33.3, np.nan], np.float32).astype(dt)
    ts = np.array([1.0, 0.0, 1.0, 1.0], np.float32).astype(dt)
    ls = fl.sigmoid_cross_entropy(xs, ts, reduction="none")
    assert ls[0] == 0.0 and ls[1] == 0.0 and np.isnan(ls[3]) and 0 < ls[2] < 1e-13
    # half-range overflow: +-inf only where the float32 gradient exceeds the range
    if dt == F16:
        xo = np.array([60000.0, 30000.0, -60000.0], np.float16)
        to = np.array([-60000.0, 0.0, 0.0], np.float32)
        go = fl.mse_grad(xo, to, reduction="sum")
        assert go[0] == np.inf and go[1] == 60000.0 and go[2] == -np.inf
        assert fl.mse(xo, to, reduction="none").dtype == np.float32
        assert np.isfinite(fl.mse(xo, to, reduction="none")).all()


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
@pytest.mark.parametrize("loss,kind", [("softmax_cross_entropy", "labels"),
                                       ("softmax_cross_entropy", "axis1"),
                                       ("sigmoid_cross_entropy", "plain"), ("hinge", "ovr"),
                                       ("mse", "plain")])
def test_out_and_in_place(loss, kind, dt):
    x, t, kw = _case(loss, kind, dt)
    v, g = getattr(fl, loss + "_value_and_grad")(x, t, **kw)
    out = np.full_like(x, 7)
    v2, g2 = getattr(fl, loss + "_value_and_grad")(x, t, out=out, **kw)
    assert g2 is out and out.tobytes() == g.tobytes() and v2 == v
    xc = x.copy()
    v3, g3 = getattr(fl, loss + "_value_and_grad")(xc, t, out=xc, **kw)
    assert g3 is xc and xc.tobytes() == g.tobytes() and v3 == v
    with pytest.raises(ValueError, match="dtype"):
        getattr(fl, loss + "_grad")(x, t, out=np.empty(x.shape, np.float32), **kw)


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
@pytest.mark.parametrize("shape,axis", [((300, 1000), -1), ((6, 50, 400), 1), ((3, 40000), -1)])
def test_threads_give_the_same_bits(shape, axis, dt):
    rng = np.random.default_rng(7)
    x = rounded(rng.standard_normal(shape) * 3, dt)
    row_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    y = rng.integers(0, shape[axis], row_shape)
    r1 = fl.softmax_cross_entropy_value_and_grad(x, y, axis=axis, n_threads=1)
    r2 = fl.softmax_cross_entropy_value_and_grad(x, y, axis=axis, n_threads=2)
    r3 = fl.softmax_cross_entropy_value_and_grad(x, y, axis=axis, n_threads=3)
    assert r1[0] == r2[0] == r3[0] and r1[1].tobytes() == r2[1].tobytes() == r3[1].tobytes()
    t = rounded(rng.random(shape), dt)
    s1 = fl.sigmoid_cross_entropy_value_and_grad(x, t, n_threads=1)
    s2 = fl.sigmoid_cross_entropy_value_and_grad(x, t, n_threads=2)
    assert s1[0] == s2[0] and s1[1].tobytes() == s2[1].tobytes()


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
def test_large_gradient_streamed_out_equals_in_place(dt):
    """>= 16 MiB of half gradient into a separate buffer leaves with non-temporal stores;
    in place it does not: the same bits either way, on every SIMD path."""
    rng = np.random.default_rng(21)
    x = rounded(rng.standard_normal((1024, 8195)) * 3, dt)    # odd row length: unaligned rows
    y = rng.integers(0, 8195, 1024)
    before = _core.simd_in_use()
    try:
        for p in _core.simd_supported():
            _core.set_simd(p)
            v1, g1 = fl.softmax_cross_entropy_value_and_grad(x, y)
            xc = x.copy()
            v2, g2 = fl.softmax_cross_entropy_value_and_grad(xc, y, out=xc)
            assert v1 == v2 and g1.tobytes() == g2.tobytes(), p
            t = rounded(rng.random(x.shape), dt)
            s1 = fl.sigmoid_cross_entropy_grad(x, t)
            s2 = fl.sigmoid_cross_entropy_grad(xc := x.copy(), t, out=xc)
            assert s1.tobytes() == s2.tobytes(), p
    finally:
        _core.set_simd(before)


def test_conversions_give_the_same_bits_on_every_simd_path():
    paths = _core.simd_supported()
    before = _core.simd_in_use()
    allbits = np.arange(65536, dtype=np.uint16)
    rng = np.random.default_rng(3)
    f = rng.integers(0, 2**32, 200003, dtype=np.uint64).astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        near_ties = allbits.view(np.float16).astype(np.float32) * np.float32(1.0004883)
    f = np.concatenate([f, np.arange(65504, 65540, 0.25, dtype=np.float32), near_ties])
    results = {}
    try:
        for p in paths:
            _core.set_simd(p)
            out = []
            for kind in (0, 1):
                d = np.empty(65536, np.float32)
                _core.half_to_f32(kind, allbits, d)
                h = np.empty(f.size, np.uint16)
                _core.f32_to_half(kind, f, h)
                out.append((d.tobytes(), h.tobytes()))
            results[p] = out
    finally:
        _core.set_simd(before)
    first = results[paths[0]]
    for p in paths[1:]:
        assert results[p] == first, p
    # and NumPy's / ml_dtypes' conversions agree (finite values: NaN payloads may differ)
    d16 = np.frombuffer(first[0][0], np.float32)
    fin = np.isfinite(allbits.view(np.float16))
    assert np.array_equal(d16[fin], allbits.view(np.float16)[fin].astype(np.float32))
    h16 = np.frombuffer(first[0][1], np.uint16)
    ff = np.isfinite(f)
    with np.errstate(over="ignore"):
        assert np.array_equal(h16[ff], f[ff].astype(np.float16).view(np.uint16))
        hb = np.frombuffer(first[1][1], np.uint16)
        assert np.array_equal(hb[ff], f[ff].astype(BF16).view(np.uint16))


def test_no_upcast_copy_of_pred():
    rng = np.random.default_rng(9)
    x = rounded(rng.standard_normal((256, 8192)), F16)         # 4 MiB; a float32 copy is 8 MiB
    y = rng.integers(0, 8192, 256)
    out = np.empty_like(x)
    fl.softmax_cross_entropy_value_and_grad(x, y, out=out)
    tracemalloc.start()
    try:
        fl.softmax_cross_entropy(x, y)
        fl.softmax_cross_entropy_value_and_grad(x, y, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_targets_of_half_or_float32_are_not_copied(monkeypatch):
    x, t, _ = _case("sigmoid_cross_entropy", "plain", BF16)
    seen = []
    real = _core.sigmoid_ce

    def spy(**kw):
        seen.append((kw["target"], kw["target_dtype"]))
        return real(**kw)
    monkeypatch.setattr(_core, "sigmoid_ce", spy)
    fl.sigmoid_cross_entropy(x, t)
    t32 = t.astype(np.float32)
    fl.sigmoid_cross_entropy(x, t32)
    fl.sigmoid_cross_entropy(x, t.astype(np.float64))
    assert seen[0][0] is t and seen[0][1] == _core.TARGET_SAME
    assert seen[1][0] is t32 and seen[1][1] == _core.TARGET_F32
    assert seen[2][0].dtype == np.float32 and seen[2][1] == _core.TARGET_F32


def test_bad_target_dtype_code_is_refused_by_c():
    x = np.zeros((2, 3), np.float16)
    res = _core.sigmoid_ce(logits=x, target=x, n_rows=2, row_len=3, target_dtype=7)
    assert res.status == _core.FL_STATUS_ARG and res.bad_field == "target_dtype"


def test_big_endian_float16_and_other_dtypes():
    x = np.arange(6, dtype=">f2").reshape(2, 3)
    assert fl.softmax_cross_entropy(x, [0, 1]) == fl.softmax_cross_entropy(
        x.astype(np.float32), [0, 1])
    with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
        fl.softmax_cross_entropy(np.zeros((2, 3), np.int16), [0, 1])


# ---------------------------------------------------------------- torch

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("tdt", ["bfloat16", "float16"])
def test_torch_tensors_through_the_array_path(tdt):
    dt = getattr(torch, tdt)
    x = (torch.randn(16, 10, generator=torch.Generator().manual_seed(0)) * 3).to(dt)
    a = _api._array(x)
    assert a.dtype.name == tdt and a.ctypes.data == x.data_ptr()
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1))
    v, g = fl.softmax_cross_entropy_value_and_grad(x, y)
    v32, g32 = fl.softmax_cross_entropy_value_and_grad(x.float(), y)
    assert v == v32
    assert np.array_equal(g.astype(np.float32), g32.astype(a.dtype).astype(np.float32))


@pytest.mark.parametrize("tdt", ["bfloat16", "float16"])
def test_torch_drop_ins_take_half_tensors(tdt):
    import torch.nn.functional as F

    import fastloss.torch as flt
    dt = getattr(torch, tdt)
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(12, 7, generator=gen) * 2).to(dt).requires_grad_(True)
    y = torch.randint(0, 7, (12,), generator=gen)
    t = torch.rand(12, 7, generator=gen).to(dt)
    for f, tf, tgt in [(flt.cross_entropy, F.cross_entropy, y),
                       (flt.binary_cross_entropy_with_logits,
                        F.binary_cross_entropy_with_logits, t),
                       (flt.mse_loss, F.mse_loss, t)]:
        for red in ("mean", "sum", "none"):
            mine = f(x, tgt, reduction=red)
            assert mine.dtype == dt
            (gm,) = torch.autograd.grad(mine.float().sum(), x)
            assert gm.dtype == dt
            # the float32 computation on the same half values, rounded once
            x32 = x.detach().float().requires_grad_(True)
            theirs = tf(x32, tgt.float() if tgt.is_floating_point() else tgt, reduction=red)
            (g32,) = torch.autograd.grad(theirs.sum(), x32)
            assert torch.allclose(mine.float(), theirs.to(dt).float(), rtol=1e-2, atol=1e-3)
            assert torch.allclose(gm.float(), g32.to(dt).float(), rtol=1e-2, atol=1e-4)


def test_torch_autocast_matches_torch():
    import torch.nn.functional as F

    import fastloss.torch as flt
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(32, 50, generator=gen).to(torch.bfloat16).requires_grad_(True)
    y = torch.randint(0, 50, (32,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mine = flt.cross_entropy(x, y)
        theirs = F.cross_entropy(x, y)
        rows = flt.cross_entropy(x, y, reduction="none")
    assert mine.dtype == theirs.dtype == torch.float32 and rows.dtype == torch.float32
    assert torch.allclose(mine, theirs, rtol=1e-5)
    (gm,) = torch.autograd.grad(mine, x)
    (gt,) = torch.autograd.grad(theirs, x)
    assert gm.dtype == gt.dtype == torch.bfloat16
    assert torch.equal(gm, gt)


def test_bf16_training_step_follows_torch():
    import torch.nn.functional as F

    import fastloss.torch as flt

    def train(loss_fn):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 10)).to(torch.bfloat16)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        gen = torch.Generator().manual_seed(1)
        xs = torch.randn(64, 20, generator=gen).to(torch.bfloat16)
        ys = torch.randint(0, 10, (64,), generator=gen)
        curve = []
        for _ in range(30):
            opt.zero_grad()
            loss = loss_fn(model(xs), ys)
            loss.backward()
            opt.step()
            curve.append(float(loss.detach()))
        return np.array(curve)

    mine = train(flt.cross_entropy)
    theirs = train(F.cross_entropy)
    assert mine[-1] < mine[0] * 0.9
    assert np.allclose(mine, theirs, rtol=3e-2, atol=3e-2), (mine, theirs)


# ---------------------------------------------------------------- evaluator and CLI

@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
def test_evaluator_accepts_half_chunks(dt):
    rng = np.random.default_rng(11)
    x = rounded(rng.standard_normal((200, 9)), dt)
    y = rng.integers(0, 9, 200)
    ev = fl.Evaluator("softmax_cross_entropy")
    ev.update(x[:120], y[:120])
    ev.update(x[120:], y[120:])
    r = ev.result()
    assert abs(r.loss - fl.softmax_cross_entropy(x, y)) < 1e-12
    assert abs(r.loss - fl.softmax_cross_entropy(x.astype(np.float32), y)) < 1e-12


def test_cli_on_float16_files(tmp_path, capsys):
    from fastloss.eval_cli import main
    rng = np.random.default_rng(12)
    x = rounded(rng.standard_normal((500, 13)), F16)
    y = rng.integers(0, 13, 500)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "xy.npz", pred=x, target=y)
    expected = fl.softmax_cross_entropy(x.astype(np.float32), y)
    for argv in ([tmp_path / "x.npy", tmp_path / "y.npy", "--chunk-rows", "77"],
                 [tmp_path / "xy.npz"]):
        rc = main([str(a) for a in argv] + ["--json", "--no-progress"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert abs(json.loads(out)["loss"] - expected) < 1e-12


def test_cli_on_bfloat16_files(tmp_path, capsys):
    from fastloss.eval_cli import main
    rng = np.random.default_rng(13)
    x = rounded(rng.standard_normal((300, 7)), BF16)
    y = rng.integers(0, 7, 300)
    np.save(tmp_path / "x.npy", x)               # written with dtype |V2
    np.save(tmp_path / "y.npy", y)
    expected = fl.softmax_cross_entropy(x.astype(np.float32), y)
    rc = main([str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--bfloat16", "--json",
               "--no-progress", "--chunk-rows", "50"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert abs(json.loads(out)["loss"] - expected) < 1e-12
    rc = main([str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 1 and "dtype" in err and "--bfloat16" in err
    np.save(tmp_path / "f.npy", x.astype(np.float32))
    rc = main([str(tmp_path / "f.npy"), str(tmp_path / "y.npy"), "--bfloat16", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 1 and "2-byte void" in err


def test_registry_names_the_half_dtypes_every_loss_takes():
    from fastloss import _registry
    assert set(_registry.PRED_DTYPES) == {"float64", "float32", "float16", "bfloat16"}
    for name, info in fl.losses.items():
        x, t, kw = _case(name, {"softmax_cross_entropy": "labels", "sigmoid_cross_entropy":
                                "plain", "hinge": "ovr", "mse": "plain"}[name], BF16)
        for form, fn in info.functions.items():
            kwf = {} if form == "grad_hess" else kw
            out = fn(x, t, **kwf)
            g = out[-1] if isinstance(out, tuple) else out
            if form != "value":
                assert g.dtype == BF16, (name, form)


@pytest.mark.parametrize("dt", HALVES, ids=HALF_IDS)
@pytest.mark.parametrize("target_f32", [False, True], ids=["half-target", "float32-target"])
def test_sigmoid_ignore_mask_and_caffe_reductions(dt, target_f32):
    rng = np.random.default_rng(31)
    x = rounded(rng.standard_normal((40, 700)) * 2, dt)
    t = (rng.random((40, 700)) < 0.4).astype(np.float32)
    t[rng.random((40, 700)) < 0.2] = -1.0
    tt = t if target_f32 else t.astype(dt)
    for red in ("mean", "sum", "batchmean", "fullmean", "none"):
        v, g = fl.sigmoid_cross_entropy_value_and_grad(x, tt, ignore_index=-1, reduction=red)
        v32, g32 = fl.sigmoid_cross_entropy_value_and_grad(x.astype(np.float32), t,
                                                           ignore_index=-1, reduction=red)
        assert np.asarray(v).tobytes() == np.asarray(v32).tobytes(), red
        assert g.tobytes() == g32.astype(dt).tobytes(), red
        assert (g[t == -1].astype(np.float32) == 0).all()
    y = rng.integers(0, 700, 40)
    for red in ("batchmean", "fullmean"):
        v = fl.softmax_cross_entropy(x, y, reduction=red)
        assert v == fl.softmax_cross_entropy(x.astype(np.float32), y, reduction=red)
