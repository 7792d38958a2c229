"""fastloss.torch against torch.nn.functional: values, gradients (input and floating targets,
every reduction, with a random incoming gradient for reduction="none"), the modules,
torch.autograd.gradcheck in float64, and the errors. Skipped where torch is not installed."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import fastloss.torch as flt  # noqa: E402

REDUCTIONS = ("mean", "sum", "none")
DTYPES = (torch.float32, torch.float64)
DTYPE_IDS = ("float32", "float64")


def _rtol(dtype):
    return 2e-5 if dtype == torch.float32 else 1e-11


# Each case: (id, loss name, function of (generator, dtype) -> (input, target, kwargs)).

def _ce(shape, target="int", ignore=(), **options):
    def make(g, dtype):
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) * 2
        c = shape[1] if len(shape) > 1 else shape[0]
        kwargs = dict(options)
        if "weight" in kwargs:
            kwargs["weight"] = (torch.rand(c, generator=g, dtype=torch.float64) + 0.5).to(dtype)
        if target == "int":
            row_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
            t = torch.randint(0, c, row_shape, generator=g)
            for pos in ignore:
                t[pos] = kwargs.get("ignore_index", -100)
        else:
            t = torch.rand(shape, generator=g, dtype=torch.float64)
            t = (t / t.sum(dim=1 if len(shape) > 1 else 0, keepdim=True)).to(dtype)
        return x, t, kwargs
    return make


def _bce(shape, weight=None, pos_weight=False):
    def make(g, dtype):
        x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
        t = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
        kwargs = {}
        if weight is not None:
            w = torch.rand(weight, generator=g, dtype=torch.float64) + 0.5
            kwargs["weight"] = w.to(dtype)
        if pos_weight:
            kwargs["pos_weight"] = (torch.rand(shape[-1], generator=g, dtype=torch.float64)
                                    * 3).to(dtype)
        return x, t, kwargs
    return make


def _margin(shape, **options):
    def make(g, dtype):
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        c = shape[-1]
        t = torch.randint(0, c, shape[:-1], generator=g)
        kwargs = dict(options)
        if "weight" in kwargs:
            kwargs["weight"] = (torch.rand(c, generator=g, dtype=torch.float64) + 0.5).to(dtype)
        return x, t, kwargs
    return make


def _mse(shape, weight=False):
    def make(g, dtype):
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        t = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        kwargs = {}
        if weight:
            kwargs["weight"] = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
        return x, t, kwargs
    return make


CASES = [
    ("ce-plain", "cross_entropy", _ce((8, 5))),
    ("ce-unbatched", "cross_entropy", _ce((7,))),
    ("ce-weight-ignore", "cross_entropy", _ce((9, 4), ignore=(1, 5), weight=True)),
    ("ce-ignore-index-2", "cross_entropy", _ce((9, 4), ignore=(0,), ignore_index=2)),
    ("ce-smoothing", "cross_entropy", _ce((8, 6), label_smoothing=0.2)),
    ("ce-weight-smoothing-ignore", "cross_entropy",
     _ce((10, 6), ignore=(3,), weight=True, label_smoothing=0.15)),
    ("ce-nchw", "cross_entropy", _ce((2, 5, 3, 4), ignore=((0, 1, 2),), weight=True,
                                     label_smoothing=0.1)),
    ("ce-ncd", "cross_entropy", _ce((3, 4, 5))),
    ("ce-probs", "cross_entropy", _ce((8, 5), target="prob")),
    ("ce-probs-weight-smoothing", "cross_entropy",
     _ce((8, 5), target="prob", weight=True, label_smoothing=0.3)),
    ("ce-probs-nchw", "cross_entropy", _ce((2, 4, 3, 2), target="prob", weight=True)),
    ("ce-probs-unbatched", "cross_entropy", _ce((6,), target="prob")),
    ("bce-plain", "binary_cross_entropy_with_logits", _bce((6, 4))),
    ("bce-1d", "binary_cross_entropy_with_logits", _bce((11,))),
    ("bce-weight-row", "binary_cross_entropy_with_logits", _bce((6, 4), weight=(4,))),
    ("bce-weight-full", "binary_cross_entropy_with_logits", _bce((6, 4), weight=(6, 4))),
    ("bce-pos-weight", "binary_cross_entropy_with_logits", _bce((6, 4), pos_weight=True)),
    ("bce-both-4d", "binary_cross_entropy_with_logits",
     _bce((2, 3, 4, 5), weight=(3, 1, 1), pos_weight=True)),
    ("margin-p1", "multi_margin_loss", _margin((8, 5))),
    ("margin-p2-weight", "multi_margin_loss", _margin((8, 5), p=2, margin=0.7, weight=True)),
    ("margin-unbatched", "multi_margin_loss", _margin((6,), margin=2)),
    ("mse-plain", "mse_loss", _mse((5, 3))),
    ("mse-0d", "mse_loss", _mse(())),
    ("mse-weight", "mse_loss", _mse((4, 3, 2), weight=True)),
]
CASE_IDS = [c[0] for c in CASES]


def _floating_target(name, target):
    return target.is_floating_point() and name != "multi_margin_loss"


def _run(fn, x, t, kwargs, reduction, grad_output, target_grad):
    x = x.detach().clone().requires_grad_(True)
    t = t.detach().clone().requires_grad_(target_grad)
    loss = fn(x, t, reduction=reduction, **kwargs)
    loss.backward(grad_output)
    return loss.detach(), x.grad, (t.grad if target_grad else None)


def _assert_close(actual, expected, dtype, what):
    assert actual.dtype == expected.dtype, (what, actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    rtol = _rtol(dtype)
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-30),
                               msg=lambda m: "%s: %s" % (what, m))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_torch(case, reduction, dtype):
    case_id, name, make = case
    g = torch.Generator().manual_seed(len(case_id))
    x, t, kwargs = make(g, dtype)
    target_grad = _floating_target(name, t)
    expected_loss = getattr(F, name)(x, t, reduction=reduction, **kwargs)
    # a random incoming gradient: every row of reduction="none" is scaled by its own
    grad_output = torch.randn(expected_loss.shape, generator=g, dtype=torch.float64).to(dtype)
    expected = _run(getattr(F, name), x, t, kwargs, reduction, grad_output, target_grad)
    actual = _run(getattr(flt, name), x, t, kwargs, reduction, grad_output, target_grad)
    for what, a, e in zip(("loss", "input grad", "target grad"), actual, expected):
        if e is not None:
            _assert_close(a, e, dtype, "%s %s %s" % (case_id, reduction, what))


def _module_pairs(dtype):
    w = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=dtype)
    return [
        (torch.nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1),
         flt.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1), "int"),
        (torch.nn.BCEWithLogitsLoss(weight=w, pos_weight=w * 2, reduction="sum"),
         flt.BCEWithLogitsLoss(weight=w, pos_weight=w * 2, reduction="sum"), "prob"),
        (torch.nn.MultiMarginLoss(p=2, margin=0.5, weight=w),
         flt.MultiMarginLoss(p=2, margin=0.5, weight=w), "int"),
        (torch.nn.MSELoss(reduction="none"), flt.MSELoss(reduction="none"), "real"),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_modules_match_torch_modules(dtype):
    g = torch.Generator().manual_seed(3)
    for theirs, ours, kind in _module_pairs(dtype):
        assert isinstance(ours, type(theirs))
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        x = torch.randn(6, 4, generator=g, dtype=torch.float64).to(dtype)
        t = {"int": torch.randint(0, 4, (6,), generator=g),
             "prob": torch.rand(6, 4, generator=g, dtype=torch.float64).to(dtype),
             "real": torch.randn(6, 4, generator=g, dtype=torch.float64).to(dtype)}[kind]
        xt, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
        lt, lo = theirs(xt, t), ours(xo, t)
        lt.sum().backward()
        lo.sum().backward()
        _assert_close(lo.detach(), lt.detach(), dtype, type(ours).__name__ + " loss")
        _assert_close(xo.grad, xt.grad, dtype, type(ours).__name__ + " grad")
        assert lo.grad_fn._forward_cls.__module__ == "fastloss.torch"   # not torch's kernel


GRADCHECK_CASES = [c for c in CASES if c[0] in {
    "ce-plain", "ce-weight-smoothing-ignore", "ce-nchw", "ce-probs-weight-smoothing",
    "ce-probs-nchw", "ce-unbatched", "bce-weight-full", "bce-both-4d", "margin-p1",
    "margin-p2-weight", "mse-weight", "mse-0d"}]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_gradcheck_float64(case, reduction):
    case_id, name, make = case
    g = torch.Generator().manual_seed(7)
    x, t, kwargs = make(g, torch.float64)
    fn = getattr(flt, name)
    x = x.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda xx: fn(xx, t, reduction=reduction, **kwargs), (x,))
    if _floating_target(name, t):
        t = t.detach().clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda xx, tt: fn(xx, tt, reduction=reduction, **kwargs), (x, t))
        # the target alone (the input needs no gradient)
        assert torch.autograd.gradcheck(
            lambda tt: fn(x.detach(), tt, reduction=reduction, **kwargs), (t,))


def test_forward_saves_only_the_gradient():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    loss = flt.cross_entropy(x, torch.tensor([0, 1, 2, 0, 1]))
    grad, saved_input = loss.grad_fn.saved_tensors
    assert saved_input is None and grad.shape == x.shape
    # a probability target that needs a gradient also keeps the logits, nothing else
    t = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    grad, saved_input = flt.cross_entropy(x, t).grad_fn.saved_tensors
    assert saved_input is x and grad.shape == x.shape


def test_no_grad_computes_the_value_only():
    x = torch.randn(5, 3, requires_grad=True)
    t = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        loss = flt.cross_entropy(x, t)
    assert loss.grad_fn is None and not loss.requires_grad
    assert abs(loss.item() - F.cross_entropy(x, t).item()) < 1e-5
    loss = flt.mse_loss(x.detach(), torch.zeros(5, 3))
    assert loss.grad_fn is None


def test_retain_graph_backward_twice():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    loss = flt.cross_entropy(x, torch.tensor([0, 1, 2, 0]))
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_contiguous_input_is_not_copied(monkeypatch):
    """The kernel sees the tensor's own memory (no copy) for a C-contiguous input."""
    import fastloss._api as api
    seen = []
    real = api.softmax_cross_entropy_value_and_grad

    def spy(logits, target, **kwargs):
        seen.append(logits)
        return real(logits, target, **kwargs)

    monkeypatch.setattr(api, "softmax_cross_entropy_value_and_grad", spy)
    x = torch.randn(2, 5, 3, 3, requires_grad=True)
    flt.cross_entropy(x, torch.randint(0, 5, (2, 3, 3))).backward()
    assert seen and seen[0].ctypes.data == x.data_ptr() and seen[0].shape == (2, 5, 3, 3)


def test_non_contiguous_input():
    x = torch.randn(5, 8, dtype=torch.float64)[:, ::2].requires_grad_()
    t = torch.tensor([0, 1, 2, 3, 0])
    flt.cross_entropy(x, t).backward()
    x2 = x.detach().clone().requires_grad_()
    F.cross_entropy(x2, t).backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_mse_broadcast_target_warns_and_matches_torch():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="target size"):
        ours = flt.mse_loss(x, t)
    ours.backward()
    gx, gt = x.grad.clone(), t.grad.clone()
    x.grad = t.grad = None
    with pytest.warns(UserWarning, match="target size"):
        F.mse_loss(x, t).backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gt, t.grad)


@pytest.mark.parametrize("dtype", [torch.int32, torch.complex64])
def test_integer_and_complex_input_raise_type_error(dtype):
    x = torch.zeros(4, 3, dtype=dtype)
    with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
        flt.cross_entropy(x, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
        flt.mse_loss(x, x)
    with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
        flt.binary_cross_entropy_with_logits(x, x)


def test_non_cpu_tensor_raises():
    x = torch.empty(4, 3, device="meta")
    with pytest.raises(RuntimeError, match="CPU tensors only.*meta"):
        flt.cross_entropy(x, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        flt.cross_entropy(torch.zeros(4, 3), torch.empty(4, dtype=torch.long, device="meta"))


def test_weight_requiring_grad_raises():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(NotImplementedError, match="weight"):
        flt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=w)
    with torch.no_grad():   # nothing to differentiate: fine
        flt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=w)


def test_errors_of_the_kernel_reach_the_user():
    with pytest.raises(ValueError, match="outside"):
        flt.cross_entropy(torch.zeros(2, 3, requires_grad=True), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="reduction"):
        flt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="same as input size"):
        flt.binary_cross_entropy_with_logits(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="p == 1 and p == 2"):
        flt.multi_margin_loss(torch.zeros(2, 3), torch.tensor([0, 1]), p=3)


def test_import_fastloss_does_not_import_torch():
    code = "import sys, fastloss; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_numpy_results_are_unchanged_by_the_wrapper():
    """The drop-in is the public kernel: same numbers as fastloss on the arrays."""
    import fastloss
    x = torch.randn(6, 4, 5, dtype=torch.float64)
    t = torch.randint(0, 4, (6, 5))
    value, grad = fastloss.softmax_cross_entropy_value_and_grad(x.numpy(), t.numpy(), axis=1)
    xr = x.clone().requires_grad_()
    loss = flt.cross_entropy(xr, t)
    loss.backward()
    assert loss.item() == value
    assert np.array_equal(xr.grad.numpy(), grad)


def test_digits_example_runs(capsys):
    """examples/train_digits_torch.py: both losses reach the same accuracy (it asserts so)."""
    pytest.importorskip("sklearn")
    import pathlib
    import runpy
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_digits_torch.py"
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        torch.set_num_threads(threads)     # the example sets 1
    out = capsys.readouterr().out
    assert "accuracy difference: 0.00" in out and "time ratio fastloss / torch" in out
