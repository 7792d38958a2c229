"""The torch drop-ins on bfloat16 tensors without ml_dtypes.

A bfloat16 tensor's storage reaches the kernels as its 16-bit patterns (viewed, never
upcast) with the bfloat16 dtype code: ml_dtypes is not needed and not imported.  Every
test here hides ml_dtypes (``sys.modules["ml_dtypes"] = None`` makes ``import ml_dtypes``
raise ImportError) and checks the drop-ins against the float32 computation on the same
half values, rounded once to bfloat16.
"""
import sys

import numpy as np
import pytest

from fastloss import _api

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import fastloss.torch as flt  # noqa: E402

BF = torch.bfloat16


@pytest.fixture(autouse=True)
def no_ml_dtypes(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(ImportError):
        import ml_dtypes  # noqa: F401
    yield


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _grad(loss, x):
    (g,) = torch.autograd.grad(loss.float().sum(), x)
    return g


def _pair(x32, f):
    """(loss, grad) of f on the bfloat16 tensor and on its float32 values."""
    xb = x32.to(BF).requires_grad_(True)
    xf = xb.detach().float().requires_grad_(True)
    lb = f(xb)
    lf = f(xf)
    return lb, _grad(lb, xb), lf, _grad(lf, xf)


def test_the_array_path_still_asks_for_ml_dtypes():
    """A NumPy result of bfloat16 needs a NumPy bfloat16 dtype: the array-in path says so."""
    import fastloss as fl
    x = torch.zeros(3, 4, dtype=BF)
    with pytest.raises(TypeError, match="ml_dtypes"):
        fl.softmax_cross_entropy(x, torch.zeros(3, dtype=torch.int64))


def test_bits_dtype_is_read_without_a_copy():
    x = (torch.randn(8, 16, generator=_gen(0)) * 3).to(BF)
    a = flt._pred_array(x)
    assert _api._is_bf16(a.dtype) and a.dtype.kind == "V" and a.itemsize == 2
    assert a.ctypes.data == x.data_ptr()
    back = flt._tensor(a)
    assert back.dtype == BF and torch.equal(back, x)
    # the exact values
    assert np.array_equal(_api._bf16_as_f32(a), x.float().numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_labels_and_probabilities(reduction):
    g = _gen(1)
    x32 = torch.randn(24, 37, generator=g) * 4
    y = torch.randint(0, 37, (24,), generator=g)
    p = torch.softmax(torch.randn(24, 37, generator=g), -1)
    for tgt in (y, p.to(BF), p):
        def f(x, tgt=tgt):
            t = tgt
            if t.is_floating_point() and x.dtype == torch.float32:
                t = t.float()
            return flt.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1)
        lb, gb, lf, gf = _pair(x32, f)
        assert lb.dtype == BF and gb.dtype == BF
        # the float32 kernel's bits, rounded once
        assert torch.equal(gb, gf.to(BF))
        if reduction == "none":     # float32 row losses, rounded once
            assert torch.equal(lb, lf.to(BF))
        else:                       # the float64 sum, rounded once
            assert torch.allclose(lb.float(), lf, rtol=4e-3, atol=0)
        # and torch's own float32 function on the same values
        t_ref = tgt.float() if tgt.is_floating_point() else tgt
        ref = F.cross_entropy(x32.to(BF).float(), t_ref, reduction=reduction,
                              label_smoothing=0.1)
        assert torch.allclose(lf, ref, rtol=1e-5, atol=1e-6)


def test_cross_entropy_class_axis_1_and_weights():
    g = _gen(2)
    x32 = torch.randn(4, 9, 5, 3, generator=g) * 2
    y = torch.randint(0, 9, (4, 5, 3), generator=g)
    y[0, 0, 0] = -100
    w = torch.rand(9, generator=g).to(BF)
    lb, gb, lf, gf = _pair(x32, lambda x: flt.cross_entropy(x, y, weight=w.to(x.dtype)
                                                            if x.dtype == BF else w.float()))
    assert lb.dtype == BF and gb.dtype == BF
    assert torch.equal(gb, gf.to(BF))
    ref = F.cross_entropy(x32.to(BF).float(), y, weight=w.float())
    assert torch.allclose(lf, ref, rtol=1e-5)


@pytest.mark.parametrize("tdt", [BF, torch.float32, torch.float16])
def test_bce_with_logits_targets_of_any_float_dtype(tdt):
    g = _gen(3)
    x32 = torch.randn(10, 33, generator=g) * 3
    t = torch.rand(10, 33, generator=g).to(tdt)
    pw = torch.rand(33, generator=g) + 0.5
    lb, gb, lf, gf = _pair(x32, lambda x: flt.binary_cross_entropy_with_logits(
        x, t if x.dtype == BF else t.float(), pos_weight=pw))
    assert lb.dtype == BF and gb.dtype == BF
    assert torch.equal(gb, gf.to(BF))
    ref = F.binary_cross_entropy_with_logits(x32.to(BF).float(), t.float(), pos_weight=pw)
    assert torch.allclose(lf, ref, rtol=1e-5)


def test_float16_input_with_bfloat16_target():
    g = _gen(4)
    x = (torch.randn(6, 7, generator=g) * 2).half().requires_grad_(True)
    t = torch.rand(6, 7, generator=g).to(BF)
    mine = flt.binary_cross_entropy_with_logits(x, t)
    assert mine.dtype == torch.float16
    ref = F.binary_cross_entropy_with_logits(x.detach().float(), t.float())
    assert torch.allclose(mine.float(), ref, rtol=2e-3)


def test_mse_hinge_and_focal():
    g = _gen(5)
    x32 = torch.randn(12, 6, generator=g) * 2
    t = torch.randn(12, 6, generator=g).to(BF)
    y = torch.randint(0, 6, (12,), generator=g)
    tb = (torch.rand(12, 6, generator=g) < 0.3).to(BF)
    cases = [
        (lambda x: flt.mse_loss(x, t.to(x.dtype)),
         lambda x: F.mse_loss(x, t.float())),
        (lambda x: flt.multi_margin_loss(x, y),
         lambda x: F.multi_margin_loss(x, y)),
        (lambda x: flt.sigmoid_focal_loss(x, tb.to(x.dtype), reduction="mean"),
         None),
    ]
    for mine_f, ref_f in cases:
        lb, gb, lf, gf = _pair(x32, mine_f)
        assert lb.dtype == BF and gb.dtype == BF
        assert torch.equal(gb, gf.to(BF))
        if ref_f is not None:
            assert torch.allclose(lf, ref_f(x32.to(BF).float()), rtol=1e-5)


def test_modules_and_autocast():
    g = _gen(6)
    x = (torch.randn(16, 11, generator=g) * 3).to(BF).requires_grad_(True)
    y = torch.randint(0, 11, (16,), generator=g)
    mine = flt.CrossEntropyLoss()(x, y)
    assert mine.dtype == BF
    with torch.autocast("cpu", dtype=BF):
        mine = flt.cross_entropy(x, y)
        theirs = F.cross_entropy(x, y)
    assert mine.dtype == theirs.dtype == torch.float32
    assert torch.allclose(mine, theirs, rtol=1e-5)
    (gm,) = torch.autograd.grad(mine, x)
    (gt,) = torch.autograd.grad(theirs, x)
    assert gm.dtype == BF and torch.equal(gm, gt)


def test_bad_dtype_still_refused():
    with pytest.raises(TypeError, match="dtype"):
        flt.cross_entropy(torch.zeros(3, 4, dtype=torch.int16), torch.zeros(3, dtype=torch.int64))
