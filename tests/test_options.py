"""Options beyond PyTorch (SPEC "Options beyond PyTorch"): z-loss, soft-capping,
lse_out, focal and poly-1 on softmax cross-entropy, each against the same formula
written with torch ops and autograd in float64."""

import math

import numpy as np
import pytest

import fastloss

torch = pytest.importorskip("torch")
F = torch.nn.functional

N, C = 7, 5


def _torch_softmax(x, target, *, weight=None, sample_weight=None, ignore_index=-100,
                   label_smoothing=0.0, reduction="mean", axis=-1, z_loss=0.0, softcap=None,
                   focal_gamma=0.0, poly1_epsilon=0.0):
    """The composition a user writes today, in float64 with autograd."""
    xt = torch.tensor(np.moveaxis(x, axis, -1), dtype=torch.float64, requires_grad=True)
    z = xt if softcap is None else softcap * torch.tanh(xt / softcap)
    z2 = z.reshape(-1, z.shape[-1])
    c = z2.shape[-1]
    lse = torch.logsumexp(z2, -1)
    logp = z2 - lse[:, None]
    w = torch.ones(c, dtype=torch.float64) if weight is None else torch.tensor(weight)
    sw = (torch.ones(z2.shape[0], dtype=torch.float64) if sample_weight is None
          else torch.tensor(np.asarray(sample_weight, dtype=np.float64).reshape(-1)))
    t = np.asarray(target)
    if t.dtype.kind in "iu":
        y = torch.tensor(t.reshape(-1))
        keep = y != ignore_index
        ys = torch.where(keep, y, torch.zeros_like(y))
        tprime = (1 - label_smoothing) * F.one_hot(ys, c).double() + label_smoothing / c
        wy = w[ys] * keep
        if focal_gamma:
            lpy = logp.gather(1, ys[:, None])[:, 0]
            ce = -(1 - lpy.exp()) ** focal_gamma * lpy * w[ys]
        else:
            ce = -(tprime * w * logp).sum(-1)
        roww = wy * sw
        denom = roww.sum()
    else:
        tt = torch.tensor(np.moveaxis(t, axis, -1).reshape(-1, c))
        tprime = (1 - label_smoothing) * tt + label_smoothing / c
        ce = -(tprime * w * logp).sum(-1)
        keep = torch.ones(z2.shape[0], dtype=torch.bool)
        roww = sw
        denom = sw.sum()
    pt = (tprime * logp.exp()).sum(-1)
    rows = (ce * sw * keep + roww * (z_loss * lse ** 2 + poly1_epsilon * (1 - pt))) * keep
    if reduction == "mean":
        loss = rows.sum() / denom
    elif reduction == "sum":
        loss = rows.sum()
    else:
        loss = rows
    loss.sum().backward()
    grad = np.moveaxis(xt.grad.numpy(), -1, axis)
    value = loss.detach().numpy()
    rows_shape = np.moveaxis(x, axis, -1).shape[:-1]
    return (value.reshape(rows_shape) if reduction == "none" else float(value)), grad, \
        lse.detach().numpy().reshape(rows_shape)


OPTIONS = [
    {"z_loss": 1e-2},
    {"z_loss": 0.3, "softcap": 2.0},
    {"softcap": 1.5},
    {"focal_gamma": 2.0},
    {"focal_gamma": 0.5},
    {"focal_gamma": 1.5, "poly1_epsilon": 0.7},
    {"poly1_epsilon": 1.0},
    {"poly1_epsilon": -0.5, "z_loss": 1e-3},
    {"z_loss": 0.1, "softcap": 3.0, "poly1_epsilon": 0.5},
]
COMBOS = [
    {},
    {"weight": "w"},
    {"sample_weight": "s"},
    {"ignore_index": 1},
    {"label_smoothing": 0.2},
    {"weight": "w", "label_smoothing": 0.1, "sample_weight": "s", "ignore_index": 2},
    {"probs": True},
    {"probs": True, "weight": "w", "label_smoothing": 0.1, "sample_weight": "s"},
]


def _make(combo, rng, shape=(N, C), axis=-1):
    x = rng.standard_normal(shape) * 3
    c = shape[axis]
    rows = np.moveaxis(x, axis, -1).shape[:-1]
    kw = {}
    if combo.get("probs"):
        t = rng.random(shape)
        target = t / t.sum(axis=axis, keepdims=True)
    else:
        target = rng.integers(0, c, rows)
    if combo.get("weight"):
        kw["weight"] = rng.random(c) + 0.5
    if combo.get("sample_weight"):
        kw["sample_weight"] = rng.random(rows) + 0.5
    for key in ("ignore_index", "label_smoothing"):
        if key in combo:
            kw[key] = combo[key]
    return x, target, kw


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(sorted(c)) or "plain")
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join("%s=%s" % kv for kv in o.items()))
def test_options_equal_torch_composition(opts, combo, reduction):
    focal = opts.get("focal_gamma", 0.0) != 0.0
    if focal and (combo.get("probs") or combo.get("label_smoothing")):
        pytest.skip("focal has no definition with probabilities or smoothing (a ValueError)")
    rng = np.random.default_rng(7)
    x, target, kw = _make(combo, rng)
    exp_value, exp_grad, exp_lse = _torch_softmax(x, target, reduction=reduction, **kw, **opts)
    lse = np.empty(x.shape[:-1])
    value, grad = fastloss.softmax_cross_entropy_value_and_grad(
        x, target, reduction=reduction, lse_out=lse, **kw, **opts)
    np.testing.assert_allclose(value, exp_value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, exp_grad, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(lse, exp_lse, rtol=1e-14)
    # float32: the same within float32 rounding
    value32, grad32 = fastloss.softmax_cross_entropy_value_and_grad(
        x.astype(np.float32), target if combo.get("probs") is None else target.astype(np.float32),
        reduction=reduction, **kw, **opts)
    np.testing.assert_allclose(value32, exp_value, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(grad32, exp_grad, rtol=1e-4, atol=2e-6)
    # the three forms agree
    assert_same = np.testing.assert_array_equal
    assert_same(fastloss.softmax_cross_entropy(x, target, reduction=reduction, **kw, **opts),
                value)
    assert_same(fastloss.softmax_cross_entropy_grad(x, target, reduction=reduction, **kw, **opts),
                grad)


@pytest.mark.parametrize("opts", OPTIONS[:3] + OPTIONS[6:7],
                         ids=lambda o: "-".join("%s=%s" % kv for kv in o.items()))
def test_options_axis1_layout(opts):
    rng = np.random.default_rng(8)
    x, target, kw = _make({"weight": "w"}, rng, shape=(3, C, 2, 4), axis=1)
    exp_value, exp_grad, _ = _torch_softmax(x, target, axis=1, **kw, **opts)
    value, grad = fastloss.softmax_cross_entropy_value_and_grad(x, target, axis=1, **kw, **opts)
    np.testing.assert_allclose(value, exp_value, rtol=1e-12)
    np.testing.assert_allclose(grad, exp_grad, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_options_are_bitwise_the_plain_loss(dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((300, 17)).astype(dtype)
    y = rng.integers(0, 17, 300)
    plain = fastloss.softmax_cross_entropy_value_and_grad(x, y, label_smoothing=0.1)
    off = fastloss.softmax_cross_entropy_value_and_grad(
        x, y, label_smoothing=0.1, z_loss=0.0, softcap=None, focal_gamma=0.0, poly1_epsilon=0.0)
    assert plain[0] == off[0]
    assert plain[1].tobytes() == off[1].tobytes()


def test_finite_differences_with_every_option():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 6)) * 2
    y = np.array([0, 5, 2, 3])
    opts = {"z_loss": 0.05, "softcap": 2.5, "focal_gamma": 1.7, "poly1_epsilon": 0.3}
    grad = fastloss.softmax_cross_entropy_grad(x, y, **opts)
    h = 1e-6
    for i, j in [(0, 0), (1, 5), (2, 1), (3, 3)]:
        xp, xm = x.copy(), x.copy()
        xp[i, j] += h
        xm[i, j] -= h
        fd = (fastloss.softmax_cross_entropy(xp, y, **opts)
              - fastloss.softmax_cross_entropy(xm, y, **opts)) / (2 * h)
        assert abs(fd - grad[i, j]) <= 1e-7 * max(1.0, abs(fd))


def test_softcap_turns_plus_inf_into_the_cap():
    x = np.array([[np.inf, 0.0, -np.inf], [1.0, 2.0, 3.0]])
    y = np.array([0, 1])
    value, grad = fastloss.softmax_cross_entropy_value_and_grad(x, y, softcap=5.0,
                                                                reduction="none")
    capped = 5.0 * np.tanh(np.array([[np.inf, 0.0, -np.inf], [1.0, 2.0, 3.0]]) / 5.0)
    expected = -(capped - np.log(np.exp(capped).sum(1, keepdims=True)))[[0, 1], [0, 1]]
    # the loss is a difference of terms of size ~cap: allow a few ulp of cap
    np.testing.assert_allclose(value, expected, rtol=0, atol=8 * np.finfo(float).eps * 5.0)
    assert np.all(np.isfinite(grad))
    assert grad[0, 0] == 0.0 and grad[0, 2] == 0.0   # tanh is flat at +-inf


def test_focal_of_a_confident_row_keeps_its_tiny_value():
    # p_y = 1 - 2e-15: (1 - p_y)^2 * -log p_y ~ 4e-30 * 2e-15, computed in log space
    x = np.array([[0.0, -35.0, -35.0]])
    value = fastloss.softmax_cross_entropy(x, np.array([0]), focal_gamma=2.0, reduction="sum")
    rest = 2 * math.exp(-35.0)
    expected = rest ** 2 * math.log1p(rest)     # (1-p)^2 ~ rest^2, -log p = log1p(rest)
    assert value == pytest.approx(expected, rel=1e-12)
    assert value > 0


@pytest.mark.parametrize("bad, match", [
    ({"focal_gamma": -1.0}, "focal_gamma"),
    ({"softcap": 0.0}, "softcap"),
    ({"softcap": -2.0}, "softcap"),
    ({"z_loss": -0.1}, "z_loss"),
    ({"z_loss": float("nan")}, "z_loss"),
    # softcap is a finite number > 0 or None: inf (and every other infinite option) gave NaN
    ({"softcap": float("inf")}, "softcap must be None or a finite number > 0"),
    ({"softcap": float("nan")}, "softcap"),
    ({"softcap": np.float32("inf")}, "softcap"),
    ({"z_loss": float("inf")}, "z_loss must be a finite number"),
    ({"focal_gamma": float("inf")}, "focal_gamma must be a finite number"),
    ({"poly1_epsilon": float("inf")}, "poly1_epsilon"),
    ({"focal_gamma": 2.0, "label_smoothing": 0.1}, "focal_gamma"),
    ({"lse_out": np.empty(3, dtype=np.float32)}, "lse_out"),
    ({"lse_out": np.empty(4)}, "lse_out"),
])
def test_bad_options_raise_and_write_nothing(bad, match):
    x = np.random.default_rng(0).standard_normal((3, 4))
    out = np.full_like(x, 7.0)
    with pytest.raises(ValueError, match=match):
        fastloss.softmax_cross_entropy_grad(x, np.array([0, 1, 2]), out=out, **bad)
    assert np.all(out == 7.0)


def test_focal_with_probability_targets_is_refused():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="focal_gamma"):
        fastloss.softmax_cross_entropy(x, np.full((2, 3), 1 / 3), focal_gamma=1.0)


# ---------------------------------------------------------------- sigmoid: focal, poly-1

def _torch_sigmoid(x, t, *, weight=None, pos_weight=None, reduction="mean", focal_gamma=0.0,
                   focal_alpha=None, poly1_epsilon=0.0, ignore_index=None):
    """torchvision's sigmoid_focal_loss formula (plus poly-1) in torch ops; elements whose
    target equals ignore_index (Caffe's ignore_label) masked out of the loss and the mean."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64)
    p = torch.sigmoid(xt)
    ce = F.binary_cross_entropy_with_logits(
        xt, tt, reduction="none", pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    p_t = p * tt + (1 - p) * (1 - tt)
    loss = ce * (1 - p_t) ** focal_gamma
    if focal_alpha is not None:
        loss = loss * (focal_alpha * tt + (1 - focal_alpha) * (1 - tt))
    loss = loss + poly1_epsilon * (1 - p_t)
    if weight is not None:
        loss = loss * torch.tensor(weight)
    if ignore_index is not None:
        kept = tt != ignore_index
        loss = torch.where(kept, loss, torch.zeros_like(loss))
        total = {"mean": lambda: loss.sum() / kept.sum(), "sum": loss.sum,
                 "none": lambda: loss}[reduction]()
    else:
        total = {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()
    total.sum().backward()
    value = total.detach().numpy()
    return value if reduction == "none" else float(value), xt.grad.numpy()


SIG_OPTIONS = [
    {"focal_gamma": 2.0, "focal_alpha": 0.25},
    {"focal_gamma": 0.5},
    {"focal_alpha": 0.75},
    {"poly1_epsilon": 1.0},
    {"focal_gamma": 2.0, "focal_alpha": 0.25, "poly1_epsilon": -0.3},
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weights", [{}, {"weight": True}, {"pos_weight": True},
                                     {"weight": True, "pos_weight": True}],
                         ids=lambda w: "-".join(sorted(w)) or "plain")
@pytest.mark.parametrize("opts", SIG_OPTIONS,
                         ids=lambda o: "-".join("%s=%s" % kv for kv in o.items()))
def test_sigmoid_options_equal_torch_composition(opts, weights, reduction):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 5)) * 4
    x[0, :3] = [40.0, -40.0, 0.0]
    t = (rng.random((6, 5)) < 0.4).astype(np.float64)
    t[1] = 0.3                                    # soft targets too
    kw = {}
    if weights.get("weight"):
        kw["weight"] = rng.random(5) + 0.5
    if weights.get("pos_weight"):
        kw["pos_weight"] = rng.random(5) + 0.5
    exp_value, exp_grad = _torch_sigmoid(x, t, reduction=reduction, **kw, **opts)
    value, grad = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, reduction=reduction,
                                                                **kw, **opts)
    np.testing.assert_allclose(value, exp_value, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(grad, exp_grad, rtol=1e-11, atol=1e-16)
    value32, grad32 = fastloss.sigmoid_cross_entropy_value_and_grad(
        x.astype(np.float32), t.astype(np.float32), reduction=reduction,
        **{k: v.astype(np.float32) for k, v in kw.items()}, **opts)
    np.testing.assert_allclose(value32, exp_value, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(grad32, exp_grad, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(
        fastloss.sigmoid_cross_entropy(x, t, reduction=reduction, **kw, **opts), value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_zero_options_are_bitwise_the_plain_loss(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((100, 7)).astype(dtype)
    t = (rng.random((100, 7)) < 0.5).astype(dtype)
    plain = fastloss.sigmoid_cross_entropy_value_and_grad(x, t)
    off = fastloss.sigmoid_cross_entropy_value_and_grad(x, t, focal_gamma=0.0, focal_alpha=None,
                                                        poly1_epsilon=0.0)
    assert plain[0] == off[0] and plain[1].tobytes() == off[1].tobytes()


def test_sigmoid_focal_keeps_limits_at_infinity():
    x = np.array([np.inf, np.inf, -np.inf, -np.inf])
    t = np.array([1.0, 0.0, 1.0, 0.0])
    value, grad = fastloss.sigmoid_cross_entropy_value_and_grad(
        x, t, focal_gamma=2.0, focal_alpha=0.25, reduction="none")
    np.testing.assert_array_equal(value, [0.0, np.inf, np.inf, 0.0])
    assert not np.isnan(grad).any()


@pytest.mark.parametrize("bad, match", [
    ({"focal_gamma": -0.5}, "focal_gamma"),
    ({"focal_alpha": 1.5}, "focal_alpha"),
    ({"focal_alpha": -0.1}, "focal_alpha"),
    ({"poly1_epsilon": float("nan")}, "poly1_epsilon"),
])
def test_sigmoid_bad_options(bad, match):
    x = np.zeros((2, 3))
    out = np.full_like(x, 5.0)
    with pytest.raises(ValueError, match=match):
        fastloss.sigmoid_cross_entropy_grad(x, np.ones((2, 3)), out=out, **bad)
    assert np.all(out == 5.0)


# ---------------------------------------------------------------- fastloss.torch with options

def _torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, as torchvision writes it."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2), (-1, 2), (0.5, 0), (0.75, 1.5)])
def test_torch_sigmoid_focal_loss_is_a_drop_in(alpha, gamma, reduction):
    fl_torch = pytest.importorskip("fastloss.torch")
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(9, 4, generator=g, dtype=torch.float64) * 3).requires_grad_()
    t = (torch.rand(9, 4, generator=g, dtype=torch.float64) < 0.3).double()
    expected = _torchvision_sigmoid_focal_loss(x, t, alpha, gamma, reduction)
    got = fl_torch.sigmoid_focal_loss(x, t, alpha, gamma, reduction)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)
    weights = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    (ge,) = torch.autograd.grad((expected * weights).sum(), x)
    (gg,) = torch.autograd.grad((got * weights).sum(), x)
    torch.testing.assert_close(gg, ge, rtol=1e-11, atol=1e-15)
    assert torch.autograd.gradcheck(
        lambda inp: fl_torch.sigmoid_focal_loss(inp, t, alpha, gamma, reduction),
        (x.detach().clone().requires_grad_(),))


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join("%s=%s" % kv for kv in o.items()))
def test_torch_cross_entropy_takes_the_options(opts):
    fl_torch = pytest.importorskip("fastloss.torch")
    rng = np.random.default_rng(13)
    x, target, kw = _make({"weight": "w"}, rng, shape=(4, C, 3), axis=1)
    exp_value, exp_grad, _ = _torch_softmax(x, target, axis=1, **kw, **opts)
    xt = torch.tensor(x, requires_grad=True)
    loss = fl_torch.cross_entropy(xt, torch.tensor(target), weight=torch.tensor(kw["weight"]),
                                  **opts)
    loss.backward()
    assert loss.item() == pytest.approx(exp_value, rel=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), exp_grad, rtol=1e-11, atol=1e-14)
    assert torch.autograd.gradcheck(
        lambda inp: fl_torch.cross_entropy(inp, torch.tensor(target), **opts),
        (torch.tensor(x, requires_grad=True),))


@pytest.mark.parametrize("bad", [{"focal_gamma": float("inf")}, {"focal_gamma": float("nan")},
                                 {"poly1_epsilon": float("-inf")}, {"focal_alpha": 1.5}])
def test_bad_sigmoid_options_raise(bad):
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=next(iter(bad))):
        fastloss.sigmoid_cross_entropy_grad(x, np.ones((2, 3)), **bad)


@pytest.mark.parametrize("bad", [{"softcap": float("inf")}, {"softcap": float("nan")},
                                 {"z_loss": float("inf")}])
def test_infinite_options_refused_by_the_drop_in_and_the_evaluator(bad):
    """The same domain everywhere the options enter: torch drop-in, Evaluator (at
    construction, before any chunk)."""
    import fastloss.torch as flt
    x = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=next(iter(bad))):
        flt.cross_entropy(x, torch.tensor([0, 1]), **bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        fastloss.Evaluator("softmax_cross_entropy", **bad)


# ---------------------------------------------------------------------------------------------
# lse_out at the limits, and rows whose loss is NaN
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((4, 80), -1), ((2, 5, 3), 1)])
def test_lse_of_an_all_minus_inf_row_is_minus_inf(dtype, shape, axis):
    """torch.logsumexp of a row of -inf is -inf; also for an ignored row and under softcap
    (there the capped logits are -softcap each: lse = -softcap + log C, as torch gives)."""
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    C = shape[axis]
    rows = np.moveaxis(x, axis, -1)           # a view: writes go to x
    rows[0] = -np.inf                          # row 0: all -inf, label kept
    rows[1] = -np.inf                          # row 1: all -inf, ignored
    y = np.zeros(rows.shape[:-1], dtype=np.int64)
    y.reshape(-1)[1] = -100
    for softcap in (None, 7.0):
        lse = np.empty(y.shape)
        fastloss.softmax_cross_entropy_value_and_grad(x, y, axis=axis, reduction="none",
                                                      softcap=softcap, lse_out=lse)
        t = torch.from_numpy(np.moveaxis(x, axis, -1).astype(np.float64))
        if softcap is not None:
            t = softcap * torch.tanh(t / softcap)
        expected = torch.logsumexp(t, dim=-1).numpy()
        if softcap is None:
            assert lse.reshape(-1)[0] == -np.inf and lse.reshape(-1)[1] == -np.inf
        else:
            np.testing.assert_allclose(lse.reshape(-1)[:2], -softcap + np.log(C), rtol=1e-6)
        np.testing.assert_allclose(lse, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [3, 100])
def test_zero_weight_target_with_smoothing_is_nan_throughout(dtype, C):
    """Every target's class weight 0 and label smoothing > 0, reduction mean: the loss is
    0/0 = NaN, and so is every gradient entry (torch gives NaN throughout, not +inf)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, C)).astype(dtype)
    y = np.zeros(5, dtype=np.int64)
    w = np.ones(C)
    w[0] = 0.0
    value, grad = fastloss.softmax_cross_entropy_value_and_grad(x, y, weight=w,
                                                                label_smoothing=0.1)
    assert np.isnan(value)
    assert np.isnan(grad).all()
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(xt, torch.from_numpy(y), weight=torch.from_numpy(w),
                                             label_smoothing=0.1)
    loss.backward()
    assert torch.isnan(xt.grad).all()
