"""The error contract of the public API: the right exception, a message that names what was
wrong, and no partial result (a caller's ``out`` buffer is left untouched)."""

import re

import numpy as np
import pytest

from .cases import FORMS, LOSSES, REPRESENTATIVE, call, public

SENTINEL = -12345.0


def _valid_inputs(loss):
    """Small valid (pred, target, kwargs) for each loss, float64."""
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((6, 5))
    if loss == "softmax_cross_entropy":
        return pred, np.array([0, 1, 2, 3, 4, 0]), {}
    if loss == "hinge":
        return pred, np.array([0, 1, 2, 3, 4, 0]), {"multiclass": "weston_watkins"}
    return pred, rng.uniform(size=(6, 5)), {}


def _assert_raises_leaving_out_untouched(exc, match, loss, form, pred, target, kwargs):
    """Raise ``exc`` matching ``match`` in every form; with ``out``, the buffer keeps its
    sentinel."""
    fl = public()
    with pytest.raises(exc, match=match):
        call(fl, loss, form, pred, target, kwargs)
    if form == "value":
        return
    shape = np.shape(pred)
    dtype = np.asarray(pred).dtype
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    out = np.full(shape, SENTINEL, dtype=dtype)
    with pytest.raises(exc, match=match):
        call(fl, loss, form, pred, target, kwargs, out=out)
    assert np.all(out == SENTINEL), "a raised error must leave out untouched"


# ---------------------------------------------------------------------------------------------
# pred dtype
# ---------------------------------------------------------------------------------------------

BAD_DTYPES = ["float16", "int32", "int64", "uint8", "bool", "complex64", "complex128", "object",
              "longdouble"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bad_dtype", BAD_DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_wrong_pred_dtype_is_a_type_error_naming_it(loss, bad_dtype, form):
    pred, target, kwargs = _valid_inputs(loss)
    bad = pred.astype(bad_dtype)
    name = np.dtype(bad_dtype).name
    with pytest.raises(TypeError) as info:
        call(public(), loss, form, bad, target, kwargs)
    message = str(info.value)
    assert name in message, message
    assert "float32" in message and "float64" in message, "say what is accepted: " + message


@pytest.mark.parametrize("loss", LOSSES)
def test_python_lists_of_floats_are_accepted_as_float64(loss):
    """A list is not an error: np.asarray gives float64 (nothing is truncated)."""
    pred, target, kwargs = _valid_inputs(loss)
    fl = public()
    expected = getattr(fl, loss)(pred, target, **kwargs)
    assert getattr(fl, loss)(pred.tolist(), target, **kwargs) == expected


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------

BAD_SHAPES = [
    # (loss, pred shape, target, kwargs)
    ("softmax_cross_entropy", (6, 4), np.zeros(5, dtype=np.int64), {}),
    ("softmax_cross_entropy", (6, 4), np.zeros((6, 1), dtype=np.int64), {}),
    ("softmax_cross_entropy", (6, 4), np.full((6, 3), 0.25), {}),
    ("softmax_cross_entropy", (3, 4, 2), np.zeros((3, 4), dtype=np.int64), {"axis": 1}),
    ("sigmoid_cross_entropy", (3, 4), np.zeros((4, 3)), {}),
    ("sigmoid_cross_entropy", (3, 4), np.zeros(4), {}),
    ("hinge", (6, 4), np.zeros(5, dtype=np.int64), {}),
    ("hinge", (6,), np.zeros(5, dtype=np.int64), {}),
    ("mse", (3,), np.zeros(4), {}),
    ("mse", (2, 3), np.zeros((3, 2)), {}),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss, shape, target, kwargs", BAD_SHAPES,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_SHAPES)])
def test_shape_mismatch_names_both_shapes(loss, shape, target, kwargs, form):
    pred = np.zeros(shape)
    with pytest.raises(ValueError) as info:
        call(public(), loss, form, pred, target, kwargs)
    message = str(info.value)
    assert str(shape) in message, message
    assert str(target.shape) in message, message
    _assert_raises_leaving_out_untouched(ValueError, None, loss, form, pred, target, kwargs)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "hinge"])
def test_zero_classes_is_a_value_error(loss, form):
    _assert_raises_leaving_out_untouched(ValueError, None, loss, form, np.zeros((3, 0)),
                                         np.zeros(3, dtype=np.int64), {})


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------

# label 17 at position 4 (C == 6): the message must contain both numbers as whole words
BAD_LABELS = [
    ("softmax_cross_entropy", {}),
    ("softmax_cross_entropy", {"ignore_index": 17 - 1}),
    ("softmax_cross_entropy", {"label_smoothing": 0.1, "weight": np.ones(6)}),
    ("hinge", {}),
    ("hinge", {"multiclass": "weston_watkins"}),
    ("hinge", {"multiclass": "crammer_singer"}),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bad_label", [17, 6, -3, -100])
@pytest.mark.parametrize("label_dtype", ["int64", "int32", "int16", "uint64"])
@pytest.mark.parametrize("loss, kwargs", BAD_LABELS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_LABELS)])
def test_label_out_of_range_names_position_and_value(loss, kwargs, label_dtype, bad_label, form):
    if bad_label == -100 and loss == "softmax_cross_entropy" and "ignore_index" not in kwargs:
        return  # -100 is the default ignore_index there, a valid label
    if bad_label < 0 and label_dtype.startswith("u"):
        return
    pred = np.random.default_rng(1).standard_normal((8, 6))
    labels = np.array([0, 1, 2, 3, bad_label, 5, 0, 1], dtype=label_dtype)
    with pytest.raises(ValueError) as info:
        call(public(), loss, form, pred, labels, kwargs)
    message = str(info.value)
    assert re.search(rf"(?<![\d.]){bad_label}(?![\d.])", message), message
    assert re.search(r"(?<![\d.])4(?![\d.])", message), message
    assert "np." not in message, "numbers are printed plainly, not as NumPy scalar reprs"
    _assert_raises_leaving_out_untouched(ValueError, None, loss, form, pred, labels, kwargs)


@pytest.mark.parametrize("huge", [2**64 - 1, 2**63, 2**63 + 5])
def test_huge_unsigned_label_is_reported_with_its_true_value(huge):
    """uint64 labels beyond the int64 range are not wrapped to negative numbers."""
    labels = np.array([0, 1, huge], dtype=np.uint64)
    for loss in ("softmax_cross_entropy", "hinge"):
        with pytest.raises(ValueError) as info:
            getattr(public(), loss)(np.zeros((3, 4)), labels)
        message = str(info.value)
        assert str(huge) in message, message
        assert "np." not in message, message


def test_label_position_in_multi_dimensional_target():
    """The position of a bad label in an (N, d1) target is reported, as the index tuple (1, 4)
    or as the flat index 9."""
    pred = np.zeros((2, 3, 5))  # axis=1: C == 3, labels of shape (2, 5)
    labels = np.zeros((2, 5), dtype=np.int64)
    labels[1, 4] = 7
    with pytest.raises(ValueError) as info:
        public().softmax_cross_entropy(pred, labels, axis=1)
    message = str(info.value)
    assert re.search(r"(?<![\d.])7(?![\d.])", message), message
    assert "(1, 4)" in message or re.search(r"(?<![\d.(])9(?![\d.])", message), message
    assert "np." not in message, message


@pytest.mark.parametrize("target_dtype", ["float64", "float32", "int64"])
def test_binary_hinge_target_values_are_checked(target_dtype):
    pred = np.zeros(4)
    with pytest.raises(ValueError):
        public().hinge(pred, np.array([1, -1, 2, 1], dtype=target_dtype))


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("reduction", ["avg", "Mean", "", None, 1])
@pytest.mark.parametrize("loss", LOSSES)
def test_bad_reduction(loss, reduction, form):
    pred, target, kwargs = _valid_inputs(loss)
    _assert_raises_leaving_out_untouched(ValueError, None, loss, form, pred, target,
                                         {**kwargs, "reduction": reduction})


BAD_OPTIONS = [
    ("softmax_cross_entropy", {"weight": np.ones(6)}),
    ("softmax_cross_entropy", {"weight": np.ones((5, 1))}),
    ("softmax_cross_entropy", {"sample_weight": np.ones(5)}),
    ("softmax_cross_entropy", {"sample_weight": np.ones((6, 5))}),
    ("softmax_cross_entropy", {"axis": 2}),
    ("sigmoid_cross_entropy", {"weight": np.ones(4)}),
    ("sigmoid_cross_entropy", {"weight": np.ones((6, 5, 2))}),
    ("sigmoid_cross_entropy", {"pos_weight": np.ones(6)}),
    ("hinge", {"weight": np.ones(4)}),
    ("hinge", {"sample_weight": np.ones(7)}),
    ("hinge", {"multiclass": "one_vs_one"}),
    ("hinge", {"margin": float("nan")}),
    ("mse", {"weight": np.ones(6)}),
    ("mse", {"weight": np.ones((2, 6, 5))}),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss, options", BAD_OPTIONS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_OPTIONS)])
def test_bad_option_is_a_value_error(loss, options, form):
    pred, target, kwargs = _valid_inputs(loss)
    _assert_raises_leaving_out_untouched(ValueError, None, loss, form, pred, target,
                                         {**kwargs, **options})


@pytest.mark.parametrize("form", FORMS)
def test_binary_hinge_rejects_class_weight(form):
    pred = np.array([0.5, -0.5, 2.0])
    target = np.array([1, -1, 1])
    _assert_raises_leaving_out_untouched(ValueError, "sample_weight", "hinge", form, pred, target,
                                         {"weight": np.ones(3)})


@pytest.mark.parametrize("multiclass", ["weston_watkins", "crammer_singer"])
def test_multilabel_hinge_needs_ovr(multiclass):
    pred = np.zeros((4, 3))
    target = np.zeros((4, 3), dtype=np.int64)
    with pytest.raises(ValueError):
        public().hinge(pred, target, multiclass=multiclass)


# ---------------------------------------------------------------------------------------------
# out
# ---------------------------------------------------------------------------------------------


def _bad_outs(pred):
    """Buffers that are not C-contiguous writable arrays of pred's shape and dtype."""
    other = np.float32 if pred.dtype == np.float64 else np.float64
    read_only = np.zeros_like(pred)
    read_only.flags.writeable = False
    wide = np.zeros(pred.shape[:-1] + (2 * pred.shape[-1],), dtype=pred.dtype)
    return {
        "wrong_shape": np.zeros(pred.shape[:-1] + (pred.shape[-1] + 1,), dtype=pred.dtype),
        "transposed_shape": np.zeros(pred.shape[::-1], dtype=pred.dtype),
        "wrong_dtype": np.zeros(pred.shape, dtype=other),
        "non_contiguous": wide[..., ::2],
        "fortran": np.asfortranarray(np.zeros(pred.shape, dtype=pred.dtype)),
        "read_only": read_only,
        "list": np.zeros(pred.shape).tolist(),
    }


BAD_OUT_NAMES = list(_bad_outs(np.zeros((2, 3))))


@pytest.mark.parametrize("form", ["grad", "value_and_grad"])
@pytest.mark.parametrize("bad", BAD_OUT_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", REPRESENTATIVE, ids=[c.id for c in REPRESENTATIVE])
def test_bad_out_is_a_value_error(case, dtype, bad, form):
    pred, target, kwargs = case.make(dtype)
    if pred.ndim < 2 and bad in ("fortran", "transposed_shape"):
        return  # 1-D arrays are both C- and F-contiguous; their transpose is themselves
    out = _bad_outs(pred)[bad]
    before = np.array(out, copy=True)
    with pytest.raises(ValueError):
        call(public(), case.loss, form, pred, target, kwargs, out=out)
    np.testing.assert_array_equal(np.asarray(out), before)


def test_out_must_not_overlap_other_inputs_partially():
    """out=pred is allowed; out aliasing the target is either handled or refused, never wrong."""
    fl = public()
    pred = np.random.default_rng(0).standard_normal((4, 3))
    target = np.random.default_rng(1).standard_normal((4, 3))
    expected = fl.mse_grad(pred, target.copy())
    try:
        result = fl.mse_grad(pred, target, out=target)
    except ValueError:
        return
    np.testing.assert_array_equal(result, expected)


# ---------------------------------------------------------------------------------------------
# integer options: a bool is not an integer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("option", [{"ignore_index": True}, {"ignore_index": np.True_},
                                    {"ignore_index": False}, {"n_threads": True},
                                    {"axis": True}])
def test_bool_is_not_an_integer_option(option, form):
    """ignore_index=True used to mean label 1 (and n_threads=True one thread, axis=True
    axis 1): a bool is refused."""
    pred, target, _ = _valid_inputs("softmax_cross_entropy")
    _assert_raises_leaving_out_untouched(ValueError, next(iter(option)),
                                         "softmax_cross_entropy", form, pred, target, option)


def test_bool_ignore_index_refused_by_the_evaluator_and_the_drop_in():
    fl = public()
    with pytest.raises(ValueError, match="ignore_index"):
        fl.Evaluator("softmax_cross_entropy", ignore_index=True)
    with pytest.raises(ValueError, match="top_k"):
        fl.Evaluator("softmax_cross_entropy", top_k=True)
    with pytest.raises(ValueError, match="axis"):
        fl.Evaluator("softmax_cross_entropy", axis=True)
    with pytest.raises(ValueError, match="n_threads"):
        fl.Evaluator("softmax_cross_entropy", n_threads=True)
    torch = pytest.importorskip("torch")
    import fastloss.torch as flt
    with pytest.raises(ValueError, match="ignore_index"):
        flt.cross_entropy(torch.zeros(2, 3, requires_grad=True), torch.tensor([0, 1]),
                          ignore_index=True)


# ---------------------------------------------------------------------------------------------
# out / hess_out overlap
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy", "mse"])
def test_hess_out_sharing_out_says_what_is_allowed(loss):
    """hess_out may never alias anything (not even the predictions): the message says so
    instead of offering hess_out=logits, which is refused too."""
    fl = public()
    pred, target, _ = _valid_inputs(loss)
    fn = getattr(fl, loss + "_grad_hess")
    o = np.empty_like(pred)
    with pytest.raises(ValueError) as info:
        fn(pred, target, out=o, hess_out=o)
    msg = str(info.value)
    assert "hess_out" in msg and "buffer of its own" in msg and "=logits" not in msg
    with pytest.raises(ValueError, match="hess_out"):
        fn(pred, target, hess_out=pred)


@pytest.mark.parametrize("wdtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("loss, form", [("softmax_cross_entropy", "grad"),
                                        ("softmax_cross_entropy", "value_and_grad"),
                                        ("softmax_cross_entropy", "grad_hess"),
                                        ("hinge", "grad"), ("hinge", "value_and_grad")])
def test_out_overlapping_the_callers_class_weight_is_refused(loss, form, wdtype):
    """A class weight of another dtype is converted to a float64 copy; out= overlapping the
    caller's own array was accepted and overwrote it. Refused whatever the dtype."""
    fl = public()
    pred, target, kwargs = _valid_inputs(loss)
    raw = np.zeros(pred.size * 8 + 64, dtype=np.uint8)      # out, then weight over its end
    out = raw[:pred.size * 8].view(pred.dtype).reshape(pred.shape)
    start = pred.size * 8 - 8
    weight = raw[start:start + 5 * np.dtype(wdtype).itemsize].view(wdtype)
    weight[...] = 1
    before = weight.copy()
    fn = getattr(fl, loss + "_" + form)
    kwargs = {**kwargs, "weight": weight, "out": out}
    if form == "grad_hess":
        kwargs.pop("multiclass", None)
    with pytest.raises(ValueError, match="weight"):
        fn(pred, target, **kwargs)
    np.testing.assert_array_equal(weight, before)


# ---------------------------------------------------------------------------------------------
# hinge targets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, said", [([-1, 0], "mixes -1 and 0"),
                                          ([0, 1, -1], "mixes -1, 0 and 1")])
def test_binary_and_multilabel_hinge_mixed_targets_name_the_values_present(values, said):
    fl = public()
    t = np.resize(np.array(values), 6)
    with pytest.raises(ValueError) as info:
        fl.hinge(np.zeros(6), t)
    assert said in str(info.value)
    with pytest.raises(ValueError) as info:
        fl.hinge(np.zeros((2, 3)), t.reshape(2, 3))
    assert said in str(info.value) and "multi-label" in str(info.value)
