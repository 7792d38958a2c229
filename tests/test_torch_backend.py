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


def test_forward_saves_the_gradient_and_references_only():
    """The kernel's gradient is the one array forward allocates; the input and target are
    kept by reference (no copy) for a create_graph backward."""
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    loss = flt.cross_entropy(x, y)
    saved_input, saved_target, kernel_grad = loss.grad_fn.saved_tensors
    assert saved_input is x and saved_target is y
    assert kernel_grad.shape == x.shape
    t = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    saved_input, saved_target, _ = flt.cross_entropy(x, t).grad_fn.saved_tensors
    assert saved_input is x and saved_target is t


def test_backward_hands_the_kernel_gradient_to_grad_without_a_copy():
    """The saved gradient is freed with the graph, so loss.backward() steals it into .grad."""
    try:
        import ml_dtypes  # noqa: F401  (bfloat16 arrays need it)
        dtypes = (torch.float32, torch.bfloat16)
    except ImportError:
        dtypes = (torch.float32,)
    for dt in dtypes:
        x = torch.randn(6, 4, dtype=dt, requires_grad=True)
        loss = flt.cross_entropy(x, torch.tensor([0, 1, 2, 3, 0, 1]))
        ptr = loss.grad_fn.saved_tensors[2].data_ptr()
        loss.backward()
        assert x.grad.data_ptr() == ptr and x.grad.dtype == dt


# ---------------------------------------------------------------- second derivatives

_W5 = torch.tensor([0.5, 1.5, 1.0, 2.0, 0.7], dtype=torch.float64)
_Y4 = torch.tensor([0, 2, 4, 1])
_P45 = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(3),
                                 dtype=torch.float64), 1)
# (id, fastloss function of x, torch's own (None: torch has no double backward for it))
SECOND_ORDER = [
    ("ce", lambda a: flt.cross_entropy(a, _Y4), lambda a: F.cross_entropy(a, _Y4)),
    ("ce-weight-smoothing-ignore-none",
     lambda a: flt.cross_entropy(a, _Y4, weight=_W5, label_smoothing=0.1, ignore_index=2,
                                 reduction="none"),
     lambda a: F.cross_entropy(a, _Y4, weight=_W5, label_smoothing=0.1, ignore_index=2,
                               reduction="none")),
    ("ce-probs", lambda a: flt.cross_entropy(a, _P45, reduction="sum"),
     lambda a: F.cross_entropy(a, _P45, reduction="sum")),
    ("ce-nchw", lambda a: flt.cross_entropy(a.reshape(2, 5, 2), _Y4.reshape(2, 2) % 5),
     lambda a: F.cross_entropy(a.reshape(2, 5, 2), _Y4.reshape(2, 2) % 5)),
    ("bce", lambda a: flt.binary_cross_entropy_with_logits(a, _P45, weight=_W5,
                                                          pos_weight=_W5 * 2),
     lambda a: F.binary_cross_entropy_with_logits(a, _P45, weight=_W5, pos_weight=_W5 * 2)),
    ("margin-p1", lambda a: flt.multi_margin_loss(a, _Y4), None),
    ("margin-p2", lambda a: flt.multi_margin_loss(a, _Y4, p=2, margin=0.7, weight=_W5,
                                                  reduction="none"), None),
    ("mse", lambda a: flt.mse_loss(a, _P45), lambda a: F.mse_loss(a, _P45)),
    ("mse-weight", lambda a: flt.mse_loss(a, _P45, weight=_W5, reduction="sum"),
     lambda a: F.mse_loss(a, _P45, weight=_W5.expand(4, 5), reduction="sum")),
    ("focal", lambda a: flt.sigmoid_focal_loss(a, (_P45 > 0.2).double(), reduction="mean"),
     None),
    ("focal-no-alpha", lambda a: flt.sigmoid_focal_loss(a, (_P45 > 0.2).double(), alpha=-1,
                                                        gamma=1.5, reduction="sum"), None),
]
for _opts in ({"z_loss": 0.1}, {"softcap": 2.0}, {"focal_gamma": 2.0},
              {"poly1_epsilon": 0.5, "label_smoothing": 0.1},
              {"z_loss": 0.1, "softcap": 3.0, "poly1_epsilon": -0.5, "weight": _W5,
               "ignore_index": 1, "reduction": "none"}):
    SECOND_ORDER.append(("ce-" + "-".join(k for k in _opts if k not in ("weight", "reduction")),
                         lambda a, o=_opts: flt.cross_entropy(a, _Y4, **o), None))
SECOND_ORDER.append(("ce-probs-z-softcap", lambda a: flt.cross_entropy(
    a, _P45, z_loss=0.2, softcap=2.5, poly1_epsilon=0.3, label_smoothing=0.1), None))


def _x45():
    return (torch.randn(4, 5, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
            * 2).requires_grad_()


@pytest.mark.parametrize("case", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_double_backward(case):
    """create_graph=True gives a gradient that is itself differentiable and right: equal to
    the kernel's first-order gradient, its derivative checked by gradgradcheck, and the
    Hessian equal to torch's where torch has one (a gradient penalty is never a constant)."""
    _, fn, ref = case
    x = _x45()
    plain, = torch.autograd.grad(fn(x).sum(), x)
    graph, = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    assert graph.requires_grad
    torch.testing.assert_close(graph, plain, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradgradcheck(fn, (x,))
    hess = torch.autograd.functional.hessian(lambda a: fn(a).sum(), x.detach())
    assert hess.abs().max() > 0 or case[0].startswith("margin-p1")
    if ref is not None:
        torch.testing.assert_close(
            hess, torch.autograd.functional.hessian(lambda a: ref(a).sum(), x.detach()),
            rtol=1e-10, atol=1e-12)


def test_double_backward_gradient_penalty():
    """The issue's example: d/dx of sum(grad**2) is not zero, and equals torch's."""
    def penalty(fn):
        x = _x45()
        g, = torch.autograd.grad(fn(x, _Y4), x, create_graph=True)
        (g ** 2).sum().backward()
        return x.grad
    torch.testing.assert_close(penalty(flt.cross_entropy), penalty(F.cross_entropy))
    assert penalty(flt.cross_entropy).abs().max() > 0


def test_double_backward_through_floating_targets():
    x = _x45()
    t = _P45.clone().requires_grad_()
    for fn in (lambda a, b: flt.cross_entropy(a, b, label_smoothing=0.2, weight=_W5),
               lambda a, b: flt.binary_cross_entropy_with_logits(a, b, weight=_W5),
               lambda a, b: flt.mse_loss(a, b, reduction="none")):
        assert torch.autograd.gradgradcheck(fn, (x, t))
    # float32 too: the second derivatives follow the input's dtype
    x32 = x.detach().float().requires_grad_()
    g, = torch.autograd.grad(flt.cross_entropy(x32, _Y4), x32, create_graph=True)
    h, = torch.autograd.grad((g ** 2).sum(), x32)
    x32r = x.detach().float().requires_grad_()
    gr, = torch.autograd.grad(F.cross_entropy(x32r, _Y4), x32r, create_graph=True)
    hr, = torch.autograd.grad((gr ** 2).sum(), x32r)
    torch.testing.assert_close(h, hr)


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
    """examples/plot_pytorch_digits.py: both losses reach the same accuracy (it asserts so)."""
    pytest.importorskip("sklearn")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import pathlib
    import runpy
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "plot_pytorch_digits.py"
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        torch.set_num_threads(threads)     # the example sets 1
    import matplotlib.pyplot as plt
    plt.close("all")
    out = capsys.readouterr().out
    assert "accuracy difference: 0.00" in out and "time ratio fastloss / torch" in out
