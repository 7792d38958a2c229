"""fastloss.losses, the one description of every loss, and what is derived from it: the public
functions' signatures agree with it, the Evaluator's options, ``fastloss eval``'s flags, the
Dask path, the case table; a toy loss added to a COPY of the registry appears in all of them
without another edit. Also the one-request / one-result bridge to C (fastloss._core) and the
fast path of the common call."""

import inspect
import json
import math
import types

import numpy as np
import pytest

import fastloss
from fastloss import _api, _core, _registry, eval_cli
from fastloss.evaluate import LOSSES as EVAL_SPECS
from fastloss.evaluate import Evaluator

from .cases import CASES

COMMON = {"reduction", "n_threads", "out", "hess_out"}


# ---------------------------------------------------------------------------------- registry

def test_losses_is_a_read_only_mapping_of_every_loss():
    assert list(fastloss.losses) == ["softmax_cross_entropy", "sigmoid_cross_entropy", "hinge",
                                     "mse"]
    with pytest.raises(TypeError):
        fastloss.losses["x"] = None
    info = fastloss.losses["softmax_cross_entropy"]
    with pytest.raises(TypeError):
        info.options["z_loss"] = 1.0
    with pytest.raises(AttributeError):
        info.name = "other"
    assert info.options["label_smoothing"] == 0.0
    assert info.options["ignore_index"] == -100
    assert fastloss.losses["hinge"].options["multiclass"] == "ovr"
    # read as a mapping too
    assert fastloss.losses["mse"]["options"] == {"weight": None}
    assert fastloss.losses["mse"]["functions"]["value"] is fastloss.mse
    assert set(dict(fastloss.losses["mse"])) >= {"options", "functions", "forms"}
    with pytest.raises(KeyError):
        fastloss.losses["mse"]["nothing"]


@pytest.mark.parametrize("name", list(fastloss.losses))
def test_functions_by_form_are_the_public_ones(name):
    info = fastloss.losses[name]
    assert set(info.functions) == set(info.forms)
    for form, fn in info.functions.items():
        assert fn is getattr(fastloss, info.function_name(form))
        assert info.function_name(form) in fastloss.__all__
    assert ("grad_hess" in info.forms) == hasattr(fastloss, name + "_grad_hess")
    assert set(info.reference) >= {"value", "grad", "value_and_grad"}


@pytest.mark.parametrize("name", list(fastloss.losses))
def test_signatures_agree_with_the_registry(name):
    """Every option of the registry is a keyword of the value, grad and value_and_grad
    forms with the registry's default, and they have no other keyword."""
    info = fastloss.losses[name]
    for form in ("value", "grad", "value_and_grad"):
        params = inspect.signature(info.functions[form]).parameters
        first = list(params)[0]
        assert first == info.pred, (form, first)
        keywords = {k: p.default for k, p in params.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
        options = {k: v for k, v in keywords.items() if k not in COMMON}
        assert options == dict(info.options), form
        ref = inspect.signature(info.reference[form]).parameters
        assert set(info.options) <= set(ref), "the reference has every option"


@pytest.mark.parametrize("name", list(fastloss.losses))
def test_evaluator_spec_is_derived(name):
    info = fastloss.losses[name]
    spec = EVAL_SPECS[name]
    assert spec.chunk_option == info.chunk_option
    assert spec.classes == info.classes
    assert list(spec.defaults) == [k for k, o in info.option_info.items() if o.scope == "loss"]
    assert set(spec.extra) == {k for k in spec.defaults if info.option_info[k].beyond_torch}
    for alias in info.aliases:
        assert fastloss.evaluate.resolve_loss(alias) == name


def test_cli_flags_are_derived():
    text = eval_cli._parser().format_help()
    for info in fastloss.losses.values():
        for opt, o in info.option_info.items():
            if o.scope != "out":
                assert "--" + opt.replace("_", "-") in text, opt
    for name in fastloss.losses:
        assert name in text


@pytest.mark.parametrize("name", list(fastloss.losses))
def test_every_scalar_option_example_is_in_the_case_table(name):
    info = fastloss.losses[name]
    ids = {c.id for c in CASES}
    for opt, o in info.option_info.items():
        for example in o.examples if o.kind not in ("array", "out") else ():
            assert f"{name}-option_{opt}={example}" in ids


def _plain_inputs(info, dtype=np.float64):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5)).astype(dtype)
    if "labels" in info.targets:
        return x, rng.integers(0, 5, 6)
    return x, rng.uniform(size=(6, 5))


@pytest.mark.parametrize("name", list(fastloss.losses))
def test_every_invalid_option_value_is_a_value_error_naming_it(name):
    info = fastloss.losses[name]
    x, t = _plain_inputs(info)
    checked = 0
    for opt, o in info.option_info.items():
        for bad in o.invalid:
            for form in ("value", "grad", "value_and_grad"):
                with pytest.raises(ValueError, match=opt):
                    info.functions[form](x, t, **{opt: bad})
                checked += 1
    assert checked or not any(o.invalid for o in info.option_info.values())


# ----------------------------------------------------------------- a toy loss, in a copy

def _toy_driver(pred, target, *, scale=1.0, weight=None, reduction="mean", n_threads=None,
                out=None, value=True, grad=False, hess=False, hess_out=None, top_k=0):
    """scale * w * |pred - target|, elementwise (pure NumPy: a loss without C)."""
    x = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if t.shape != x.shape:
        raise ValueError("target has shape %s but pred has shape %s" % (t.shape, x.shape))
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
        raise ValueError("scale must be a number > 0, not %r" % (scale,))
    w = np.ones(x.shape) if weight is None else np.broadcast_to(np.asarray(weight), x.shape)
    per = scale * w * np.abs(x - t)
    loss_sum, weight_sum = float(per.sum()), float(w.sum())
    v = {"none": per, "sum": loss_sum,
         "mean": loss_sum / weight_sum if weight_sum else math.nan}[reduction]
    g = scale * w * np.sign(x - t) / (weight_sum if reduction == "mean" else 1.0)
    stats = {"loss_sum": loss_sum, "weight_sum": weight_sum, "n_rows": x.size, "n_ignored": 0,
             "n_top1": 0, "n_topk": 0}
    return types.SimpleNamespace(value=v, grad=g if grad else None, hess=None, stats=stats)


def _toy_loss():
    def toy(pred, target, *, scale=1.0, weight=None, reduction="mean", n_threads=None):
        return _toy_driver(pred, target, scale=scale, weight=weight, reduction=reduction).value

    def toy_grad(pred, target, *, scale=1.0, weight=None, reduction="mean", n_threads=None,
                 out=None):
        return _toy_driver(pred, target, scale=scale, weight=weight, reduction=reduction,
                           grad=True).grad

    def toy_value_and_grad(pred, target, *, scale=1.0, weight=None, reduction="mean",
                           n_threads=None, out=None):
        r = _toy_driver(pred, target, scale=scale, weight=weight, reduction=reduction,
                        grad=True)
        return r.value, r.grad

    return _registry.Loss(
        name="toy_abs", summary="scaled absolute error", pred="pred", targets=("same_shape",),
        classes=False,
        option_info=types.MappingProxyType({
            "weight": _registry.Option("weight", None, "None or an array", "elementwise weight",
                                       kind="array", shape="pred"),
            "scale": _registry.Option("scale", 1.0, "a number > 0", "the scale of the loss",
                                      examples=(2.0,), invalid=(-1.0,)),
        }),
        forms=("value", "grad", "value_and_grad"), aliases=("toy", "l1_toy"),
        chunk_option="weight",
        callables={"value": toy, "grad": toy_grad, "value_and_grad": toy_value_and_grad},
        driver_callable=_toy_driver)


def test_a_toy_loss_added_to_a_copy_of_the_registry_appears_everywhere(tmp_path, capsys):
    toy = _toy_loss()
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((40, 3)), rng.standard_normal((40, 3))
    assert "toy_abs" not in fastloss.losses
    with _registry.using(_registry.copy(toy_abs=toy)):
        info = _registry.current()["toy_abs"]
        # its forms
        assert set(info.functions) == {"value", "grad", "value_and_grad"}
        expected = info.functions["value"](x, t, scale=2.0)
        assert expected == pytest.approx(2.0 * np.abs(x - t).mean(), rel=1e-15)
        # the Evaluator: spec, aliases, options, chunks
        spec = EVAL_SPECS["toy_abs"]
        assert spec.defaults == {"weight": None, "scale": 1.0} and not spec.classes
        ev = Evaluator("toy", scale=2.0)
        for i in range(0, 40, 15):
            ev.update(x[i:i + 15], t[i:i + 15])
        assert ev.result().loss == pytest.approx(expected, rel=1e-14)
        assert ev.result().n_rows == x.size
        with pytest.raises(ValueError, match="takes no option 'margin'"):
            Evaluator("toy_abs", margin=1.0)
        # the command line: the flag, its help, an evaluation from files
        help_text = eval_cli._parser().format_help()
        assert "--scale" in help_text and "the scale of the loss" in help_text
        assert "toy_abs" in help_text
        np.save(tmp_path / "x.npy", x)
        np.save(tmp_path / "t.npy", t)
        code = eval_cli.main([str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), "--loss",
                              "l1_toy", "--scale", "2", "--json", "--chunk-rows", "7"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert json.loads(captured.out)["loss"] == pytest.approx(expected, rel=1e-14)
        code = eval_cli.main([str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), "--loss", "mse",
                              "--scale", "2"])
        assert code == 2 and "--scale applies to toy_abs" in capsys.readouterr().err
        # the Dask path
        da = pytest.importorskip("dask.array")
        fl_dask = pytest.importorskip("fastloss.dask")
        r = fl_dask.evaluate(da.from_array(x, chunks=(9, 3)), da.from_array(t, chunks=9),
                                   loss="toy_abs", scale=2.0)
        assert r.loss == pytest.approx(expected, rel=1e-14)
    # gone again outside the block
    assert "toy_abs" not in _registry.current()
    with pytest.raises(ValueError, match="unknown loss"):
        Evaluator("toy_abs")


# -------------------------------------------------------------- one request, one result

def test_core_returns_one_named_result():
    x = np.random.default_rng(0).standard_normal((4, 3))
    labels = np.array([0, 1, 2, 0])
    r = _core.softmax_ce(logits=x, labels=labels, outer=4, n_classes=3, inner=1, reduction=1,
                         top_k=1)
    assert isinstance(r, _core.Result)
    assert r.status == _core.FL_STATUS_OK and r.bad_field == ""
    assert r.n_rows == 4 and r.weight_sum == 4.0 and r.n_ignored == 0
    assert r.value == pytest.approx(fastloss.softmax_cross_entropy(x, labels, reduction="sum"))
    assert "n_top1=" in repr(r)
    with pytest.raises(TypeError):
        _core.softmax_ce(x, labels)            # no positional arguments: one named request


@pytest.mark.parametrize("request_, field", [
    ({"n_classes": 0}, "n_classes"),
    ({"reduction": 7}, "reduction"),
    ({"label_smoothing": 1.5}, "label_smoothing"),
    ({"label_smoothing": float("nan")}, "label_smoothing"),
    ({"z_loss": -1.0}, "z_loss"),
    ({"softcap": -1.0}, "softcap"),
    ({"focal_gamma": float("inf")}, "focal_gamma"),
    ({"poly1_epsilon": float("inf")}, "poly1_epsilon"),
    ({"focal_gamma": 1.0, "label_smoothing": 0.1}, "focal_target"),
    ({"top_k": -1}, "top_k"),
    ({"labels": None}, "target"),
])
def test_core_names_the_field_c_refused(request_, field):
    x = np.zeros((2, 3))
    args = dict(logits=x, labels=np.array([0, 1]), outer=2, n_classes=3, inner=1)
    args.update(request_)
    r = _core.softmax_ce(**args)
    assert r.status == _core.FL_STATUS_ARG
    assert r.bad_field == field


def test_core_names_fields_of_the_other_kernels():
    x = np.zeros((2, 3))
    r = _core.sigmoid_ce(logits=x, target=x, n_rows=2, row_len=3, focal_alpha=2.0)
    assert (r.status, r.bad_field) == (_core.FL_STATUS_ARG, "focal_alpha")
    r = _core.sigmoid_ce(logits=x, target=x, weight=x, weight_row_stride=2, n_rows=2, row_len=3)
    assert r.bad_field == "weight_row_stride"
    r = _core.hinge(scores=x, labels=np.array([0, 1]), outer=2, n_classes=3, inner=1, mode=5)
    assert r.bad_field == "mode"
    r = _core.mse(pred=x, target=x, n_rows=-1, row_len=3)
    assert r.bad_field == "sizes"
    r = _core.mse(pred=x, target=x, n_rows=2, row_len=3, reduction=-1)
    assert r.bad_field == "reduction"


def test_a_field_the_python_layer_does_not_own_is_reported_not_hidden():
    class Refused:
        status = _core.FL_STATUS_ARG
        bad_field = "hess"
    with pytest.raises(RuntimeError, match="field hess"):
        _api._check(Refused(), "mse", {})


# ------------------------------------------------------------------------------- fast path

FAST = [
    ("softmax_cross_entropy", (8, 10), "labels"),
    ("softmax_cross_entropy", (10,), "labels"),
    ("softmax_cross_entropy", (2, 3, 7), "labels"),
    ("softmax_cross_entropy", (8, 10), "probs"),
    ("softmax_cross_entropy", (0, 4), "labels"),
    ("sigmoid_cross_entropy", (8, 10), "same"),
    ("sigmoid_cross_entropy", (), "same"),
    ("sigmoid_cross_entropy", (5,), "same"),
    ("mse", (8, 10), "same"),
    ("mse", (2, 3, 4), "same"),
    ("mse", (0, 3), "same"),
]
FORMS = ("value", "grad", "value_and_grad")
DRIVERS = {"softmax_cross_entropy": "_softmax", "sigmoid_cross_entropy": "_sigmoid", "mse": "_mse"}


def _fast_inputs(loss, shape, kind, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "labels":
        return x, rng.integers(0, shape[-1], shape[:-1])
    t = rng.uniform(size=shape).astype(dtype)
    if kind == "probs":
        t /= t.sum(-1, keepdims=True)
    return x, t


def _public(loss, form):
    return getattr(fastloss, loss if form == "value" else loss + "_" + form)


def _general(loss, form, x, t):
    """The general path's (value, grad) of a form (None where the form has none)."""
    r = getattr(_api, DRIVERS[loss])(x, t, value=form != "grad", grad=form != "value")
    return (r.value if form != "grad" else None), r.grad


def _same_bits(got, expected):
    if expected is None:
        return got is None
    if isinstance(expected, float):
        return type(got) is float and np.float64(got).tobytes() == np.float64(expected).tobytes()
    return (type(got) is np.ndarray and got.dtype == expected.dtype
            and got.shape == expected.shape and got.tobytes() == expected.tobytes())


def _split(form, result):
    if form == "value":
        return result, None
    if form == "grad":
        return None, result
    assert type(result) is tuple and len(result) == 2
    return result


def _declined(*args):
    """A general path for _core's fast path that says it was called."""
    return "declined"


def _no_general_path(monkeypatch, loss):
    def refuse(*args, **kwargs):
        raise AssertionError("the common call took the general path")
    monkeypatch.setattr(_api, DRIVERS[loss], refuse)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss, shape, kind", FAST)
def test_fast_path_is_bitwise_the_general_path(loss, shape, kind, dtype, form, monkeypatch):
    x, t = _fast_inputs(loss, shape, kind, dtype)
    expected = _general(loss, form, x, t)
    with monkeypatch.context() as m:
        _no_general_path(m, loss)
        got = _split(form, _public(loss, form)(x, t))
    assert _same_bits(got[0], expected[0]) and _same_bits(got[1], expected[1])
    if got[1] is not None:
        assert got[1] is not x and not np.shares_memory(got[1], x)
    # the value form agrees with the fused form bitwise, as always
    if form == "value_and_grad":
        assert _same_bits(_public(loss, "value")(x, t), got[0])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy", "mse"])
def test_fast_path_takes_options_given_at_their_default_values(loss, form, monkeypatch):
    x, t = _fast_inputs(loss, (8, 10), "labels" if loss.startswith("softmax") else "same",
                        np.float32)
    expected = _general(loss, form, x, t)
    defaults = {k: v for k, v in fastloss.losses[loss].options.items()
                if k in inspect.signature(_public(loss, form)).parameters}
    if loss.startswith("softmax"):
        defaults["axis"] = 1            # the last axis, named from the front
    defaults.update(reduction="mean", n_threads=None)
    if form != "value":
        defaults["out"] = None
    with monkeypatch.context() as m:
        _no_general_path(m, loss)
        got = _split(form, _public(loss, form)(x, t, **defaults))
    assert _same_bits(got[0], expected[0]) and _same_bits(got[1], expected[1])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss, name, value", [
    ("softmax_cross_entropy", "label_smoothing", -0.0),
    ("softmax_cross_entropy", "label_smoothing", 0),
    ("softmax_cross_entropy", "ignore_index", True),
    ("softmax_cross_entropy", "ignore_index", np.int64(-100)),
    ("softmax_cross_entropy", "axis", 0),
    ("softmax_cross_entropy", "reduction", "sum"),
    ("softmax_cross_entropy", "n_threads", 1),
    ("sigmoid_cross_entropy", "focal_gamma", np.float64(0.0)),
    ("sigmoid_cross_entropy", "ignore_index", -1),
    ("mse", "reduction", np.str_("mean")),
    ("mse", "weight", 1.0),
])
def test_fast_path_declines_another_option(loss, name, value, form, monkeypatch):
    x, t = _fast_inputs(loss, (8, 10), "labels" if loss.startswith("softmax") else "same",
                        np.float32)
    core = {"softmax_cross_entropy": _core.softmax_ce_fast,
            "sigmoid_cross_entropy": _core.sigmoid_ce_fast, "mse": _core.mse_fast}[loss]
    params = [p for p in inspect.signature(fastloss.losses[loss].functions["value"]).parameters
              if p not in ("logits", "target", "pred")]
    args = {p: inspect.signature(_public(loss, "value")).parameters[p].default for p in params}
    args[name] = value
    assert core(_declined, _core.FORM_VALUE_AND_GRAD if form == "value_and_grad" else
                _core.FORM_GRAD if form == "grad" else _core.FORM_VALUE,
                x, t, *args.values(), None) == "declined"
    calls = []
    real = getattr(_api, DRIVERS[loss])
    monkeypatch.setattr(_api, DRIVERS[loss], lambda *a, **k: calls.append(1) or real(*a, **k))
    try:
        _public(loss, form)(x, t, **{name: value})
    except (TypeError, ValueError):
        pass
    assert calls == [1]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("make", [
    lambda x, t: (np.asfortranarray(x), t),
    lambda x, t: (x[:, ::2], t),
    lambda x, t: (x.astype(">f4"), t),
    lambda x, t: (x, t.astype(np.int32)),
    lambda x, t: (x, t[:-1]),
    lambda x, t: (x.tolist(), t),
    lambda x, t: (x, t.tolist()),
    lambda x, t: (x.astype(np.float16), t),
    lambda x, t: (x, np.full(x.shape, 0.1, dtype=np.float64)),       # probs of another dtype
    lambda x, t: (x, t.astype(np.float32)),                           # float labels
    lambda x, t: (x[:, :0], t),                                       # no classes
], ids=["fortran", "strided", "big-endian", "int32-labels", "short-target", "list", "list-target",
        "float16", "probs-float64", "float-labels", "no-classes"])
def test_fast_path_declines_other_calls_and_the_general_path_answers(make, form):
    x, t = _fast_inputs("softmax_cross_entropy", (8, 10), "labels", np.float32)
    x2, t2 = make(x, t)
    assert _core.softmax_ce_fast(_declined, _api._GRAD if form == "grad" else _api._VALUE, x2,
                                 t2, None, None, -100, 0.0, "mean", -1, None, 0.0, None, None,
                                 0.0, 0.0, None) == "declined"
    try:
        expected = _general("softmax_cross_entropy", form, x2, t2)
    except (TypeError, ValueError) as e:
        with pytest.raises(type(e)) as got:
            _public("softmax_cross_entropy", form)(x2, t2)
        assert str(got.value) == str(e)
        return
    got = _split(form, _public("softmax_cross_entropy", form)(x2, t2))
    assert _same_bits(got[0], expected[0]) and _same_bits(got[1], expected[1])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss, x, t", [
    ("softmax_cross_entropy", np.zeros((3, 4), np.float32), np.array([0, 9, 1])),
    ("softmax_cross_entropy", np.zeros((3, 4), np.float64), np.array([0, -1, 1])),
    ("sigmoid_cross_entropy", np.zeros((3, 4), np.float32), np.zeros((3, 5), np.float32)),
    ("mse", np.zeros((3, 4), np.float32), np.zeros(4, np.float32)),
])
def test_fast_path_leaves_errors_to_the_general_path(loss, x, t, form):
    try:
        _general(loss, form, x, t)
    except (TypeError, ValueError) as e:
        expected = e
    else:
        raise AssertionError("the case is no error")
    with pytest.raises(type(expected)) as got:
        _public(loss, form)(x, t)
    assert str(got.value) == str(expected)


def test_fast_path_refuses_a_bad_label_before_writing_a_gradient():
    x = np.zeros((3, 4), dtype=np.float32)
    labels = np.array([0, 9, 1])
    for form in (_core.FORM_VALUE, _core.FORM_GRAD, _core.FORM_VALUE_AND_GRAD):
        assert _core.softmax_ce_fast(_declined, form, x, labels, None, None, -100, 0.0, "mean",
                                     -1, None, 0.0, None, None, 0.0, 0.0, None) == "declined"
    with pytest.raises(ValueError, match="label 9 at position"):
        fastloss.softmax_cross_entropy_value_and_grad(x, labels)


def test_any_option_takes_the_general_path(monkeypatch):
    calls = []
    real = _api._softmax

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(_api, "_softmax", spy)
    x, t = _fast_inputs("softmax_cross_entropy", (8, 10), "labels", np.float64)
    fastloss.softmax_cross_entropy(x, t)
    assert calls == []
    for opt, o in fastloss.losses["softmax_cross_entropy"].option_info.items():
        if o.examples and opt != "axis":
            fastloss.softmax_cross_entropy(x, t, **{opt: o.examples[0]})
    assert len(calls) >= 6


class _Sub(np.ndarray):
    pass


@pytest.mark.parametrize("in_place", [False, True], ids=["buffer", "in-place"])
@pytest.mark.parametrize("form", ["grad", "value_and_grad"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss, shape, kind", FAST)
def test_fast_path_writes_the_callers_out(loss, shape, kind, dtype, form, in_place, monkeypatch):
    x, t = _fast_inputs(loss, shape, kind, dtype)
    expected = _general(loss, form, x.copy(), t)
    out = x if in_place else np.full_like(x, np.nan)
    with monkeypatch.context() as m:
        _no_general_path(m, loss)
        got = _split(form, _public(loss, form)(x, t, out=out))
    assert got[1] is out
    assert _same_bits(got[0], expected[0]) and _same_bits(got[1], expected[1])


def _outs(x, t):
    """`out` arguments the fast path must leave to the general path, by name."""
    big = np.zeros(x.size + 1, dtype=x.dtype)
    shared = np.zeros(x.size * 2, dtype=x.dtype)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    return {
        "read-only": (x, t, ro),
        "fortran": (x, t, np.asfortranarray(np.empty_like(x))),
        "other-dtype": (x, t, np.empty(x.shape, np.float64)),
        "other-shape": (x, t, np.empty(x.shape[:-1] + (x.shape[-1] + 1,), x.dtype)),
        "big-endian": (x, t, np.empty(x.shape, x.dtype.newbyteorder())),
        "list": (x, t, x.tolist()),
        "subclass": (x, t, np.empty_like(x).view(_Sub)),
        # shifted by one element over the logits: overlapping without being them
        "overlaps-logits": (big[:-1].reshape(x.shape), t, big[1:].reshape(x.shape)),
        # the target's own buffer
        "is-target": (x, x.copy(), None),
        "overlaps-target": (shared[:x.size].reshape(x.shape),
                            shared[x.size // 2:x.size // 2 + x.size].reshape(x.shape), None),
    }


@pytest.mark.parametrize("form", ["grad", "value_and_grad"])
@pytest.mark.parametrize("case", list(_outs(np.zeros((8, 10), np.float32), None)))
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy", "mse"])
def test_fast_path_declines_an_out_it_cannot_take(loss, case, form, monkeypatch):
    x, t = _fast_inputs(loss, (8, 10), "probs" if loss.startswith("softmax") else "same",
                        np.float32)
    x, tt, out = _outs(x, t)[case]
    if case == "overlaps-logits":
        x[...] = _fast_inputs(loss, (8, 10), "same", np.float32)[0]
    if tt is not t:
        tt[...] = t
    if out is None:                      # the target's bytes as out
        out = tt
    core = {"softmax_cross_entropy": _core.softmax_ce_fast,
            "sigmoid_cross_entropy": _core.sigmoid_ce_fast, "mse": _core.mse_fast}[loss]
    params = [p for p in inspect.signature(fastloss.losses[loss].functions["value"]).parameters
              if p not in ("logits", "target", "pred")]
    args = [inspect.signature(_public(loss, "value")).parameters[p].default for p in params]
    code = _core.FORM_VALUE_AND_GRAD if form == "value_and_grad" else _core.FORM_GRAD
    assert core(_declined, code, x, tt, *args, out) == "declined"
    calls = []
    real = getattr(_api, DRIVERS[loss])
    monkeypatch.setattr(_api, DRIVERS[loss], lambda *a, **k: calls.append(1) or real(*a, **k))
    try:
        _public(loss, form)(x, tt, out=out)
    except (TypeError, ValueError):
        pass
    assert calls == [1]
