"""Memory layouts: any layout of any input gives the same numbers as C-contiguous input, inputs
are never modified, and axis=1 takes PyTorch's (N, C, d1, ...) layout as it is."""

import numpy as np
import pytest

from .cases import (
    CASE_IDS,
    CASES,
    DTYPES,
    FORMS,
    REDUCTIONS,
    assert_array_close,
    assert_identical,
    assert_results_close,
    call,
    public,
)

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]


def fortran(a):
    return np.asfortranarray(a)


def sliced(a):
    """A non-contiguous view: every other element of a twice-as-large array along each axis."""
    big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def reversed_strides(a):
    """A view with negative strides along every axis holding the same values."""
    flipped = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
    return flipped[tuple(slice(None, None, -1) for _ in a.shape)]


def read_only(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def unaligned(a):
    """The same values in a buffer that starts one byte past an aligned address."""
    raw = np.zeros(a.nbytes + a.itemsize + 1, dtype=np.uint8)
    view = raw[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def byteswapped(a):
    """Non-native byte order with the same values."""
    return a.astype(a.dtype.newbyteorder())


LAYOUTS = {
    "fortran": fortran,
    "sliced": sliced,
    "negative_strides": reversed_strides,
    "read_only": read_only,
    "unaligned": unaligned,
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_helpers_build_what_they_say(layout):
    a = np.arange(12.0).reshape(3, 4)
    b = LAYOUTS[layout](a)
    np.testing.assert_array_equal(a, b)
    if layout == "fortran":
        assert b.flags.f_contiguous and not b.flags.c_contiguous
    elif layout in ("sliced", "negative_strides"):
        assert not b.flags.c_contiguous and not b.flags.f_contiguous
        if layout == "negative_strides":
            assert all(s < 0 for s in b.strides)
    elif layout == "read_only":
        assert not b.flags.writeable
    else:
        assert not b.flags.aligned


def _applies(layout, a):
    """0-d arrays have no strides to vary: only read-only and unaligned apply to them."""
    return isinstance(a, np.ndarray) and (a.ndim >= 1 or layout in ("read_only", "unaligned"))


def _with_layout(layout, pred, target, kwargs, which):
    """Apply ``layout`` to pred, target or the array options (``which``); None when it applies
    to none of them."""
    transform = LAYOUTS[layout]
    if which == "pred":
        return (transform(pred), target, kwargs) if _applies(layout, pred) else None
    if which == "target":
        return (pred, transform(target), kwargs) if _applies(layout, target) else None
    if not any(_applies(layout, v) for v in kwargs.values()):
        return None
    return pred, target, {k: transform(v) if _applies(layout, v) else v
                          for k, v in kwargs.items()}


@pytest.mark.parametrize("which", ["pred", "target", "options"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_any_layout_gives_the_same_numbers(case, dtype, layout, which):
    fl = public()
    pred, target, kwargs = case.make(dtype)
    other = _with_layout(layout, pred, target, kwargs, which)
    if other is None:
        return
    for reduction in REDUCTIONS:
        expected = call(fl, case.loss, "value_and_grad", pred, target, kwargs,
                        reduction=reduction)
        actual = call(fl, case.loss, "value_and_grad", *other, reduction=reduction)
        assert_identical(actual, expected, err_msg=f"{case.id} {layout} {which} {reduction}")
        assert actual[1].flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_non_native_byte_order_gives_the_same_numbers(case, dtype):
    fl = public()
    pred, target, kwargs = case.make(dtype)
    expected = call(fl, case.loss, "value_and_grad", pred, target, kwargs, reduction="none")
    actual = call(fl, case.loss, "value_and_grad", byteswapped(pred), target, kwargs,
                  reduction="none")
    assert actual[1].dtype == np.dtype(dtype)  # native float32/float64 back
    assert_identical(actual, expected)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("layout", ["contiguous"] + list(LAYOUTS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_inputs_are_never_modified(case, layout, form):
    fl = public()
    pred, target, kwargs = case.make(np.float64)
    if layout != "contiguous" and _applies(layout, pred):
        pred, target, kwargs = _with_layout(layout, pred, target, kwargs, "pred")
    arrays = {"pred": pred, "target": target,
              **{k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}}
    before = {k: (v.copy(), v.strides) for k, v in arrays.items()}
    for reduction in REDUCTIONS:
        call(fl, case.loss, form, pred, target, kwargs, reduction=reduction)
    for name, array in arrays.items():
        copy, strides = before[name]
        assert array.strides == strides
        assert array.tobytes() == copy.tobytes(), f"{name} was modified"


# ---------------------------------------------------------------------------------------------
# axis=1: PyTorch's (N, C, d1, d2) layout equals moving the class axis last
# ---------------------------------------------------------------------------------------------

AXIS1_CASES = [case for case in CASES if case.options.get("axis") == 1]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", AXIS1_CASES, ids=[c.id for c in AXIS1_CASES])
def test_axis1_equals_moving_the_class_axis_last(case, dtype, reduction):
    fl = public()
    pred, target, kwargs = case.make(dtype)
    moved_kwargs = {**kwargs, "axis": -1}
    moved_pred = np.ascontiguousarray(np.moveaxis(pred, 1, -1))
    moved_target = target
    if target.shape == pred.shape:
        moved_target = np.ascontiguousarray(np.moveaxis(target, 1, -1))
    value, grad = call(fl, case.loss, "value_and_grad", pred, target, kwargs,
                       reduction=reduction)
    moved_value, moved_grad = call(fl, case.loss, "value_and_grad", moved_pred, moved_target,
                                   moved_kwargs, reduction=reduction)
    expected = (moved_value, np.ascontiguousarray(np.moveaxis(moved_grad, -1, 1)))
    assert_results_close((value, grad), expected, dtype, case.loss, moved_pred, moved_target,
                         moved_kwargs, reduction, err_msg=case.id)


@pytest.mark.parametrize("axis", [0, 1, 2, -2, -3])
def test_any_class_axis(axis):
    """Any axis is accepted as the class axis (not only -1 and 1)."""
    fl = public()
    rng = np.random.default_rng(5)
    pred = rng.standard_normal((3, 4, 5))
    ax = axis % 3
    labels = rng.integers(0, pred.shape[ax], size=np.delete(pred.shape, ax))
    value, grad = fl.softmax_cross_entropy_value_and_grad(pred, labels, axis=axis,
                                                          reduction="none")
    moved = np.moveaxis(pred, ax, -1)
    ref_value, ref_grad = fl.softmax_cross_entropy_value_and_grad(moved, labels,
                                                                  reduction="none")
    assert_array_close(value, ref_value, np.float64)
    assert_array_close(grad, np.moveaxis(ref_grad, -1, ax), np.float64)
