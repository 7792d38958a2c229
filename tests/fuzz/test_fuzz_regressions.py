"""Regression tests for what the hardening work found (tests/fuzz/fuzz_api.py, the
sanitizer driver tests/c/test_kernels.c): each failed when written; the fix is the lead's.

The SPEC contract they hold the API to: a call either returns the right numbers or raises
TypeError / ValueError naming the problem; it never raises anything else (OverflowError,
MemoryError on an empty input), never hangs, never hands back a wrong number, and never leaves
an output buffer partly unwritten."""

import inspect
import time
import tracemalloc

import numpy as np
import pytest

from ..cases import assert_identical, public

X = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
Y = np.array([0, 2])
HUGE_INT = 10**400           # a Python int that no float can hold


def _calls():
    """(name, pred, target) for one call of every loss."""
    return [("softmax_cross_entropy", X, Y), ("hinge", X, Y),
            ("sigmoid_cross_entropy", X, np.full(X.shape, 0.25)),
            ("mse", X, np.zeros(X.shape))]


def _value_error_or(expected, fn, *args, **kwargs):
    """fn(*args, **kwargs) raises ValueError (with a message) or returns `expected`'s bits."""
    try:
        result = fn(*args, **kwargs)
    except ValueError as exc:
        assert str(exc), "ValueError without a message"
        return
    assert_identical(result if isinstance(result, tuple) else (result, None),
                     expected if isinstance(expected, tuple) else (expected, None))


# ------------------------------------------------ integers too large for C (OverflowError)

@pytest.mark.parametrize("ignore_index", [2**63, -(2**63) - 1, 2**70])
@pytest.mark.parametrize("form", ["", "_grad", "_value_and_grad", "_grad_hess"])
def test_ignore_index_outside_int64(form, ignore_index):
    """Found by the fuzzer: OverflowError('Python int too large to convert to C long') from
    the Cython bridge. No int64 label can equal such an ignore_index: the call must ignore
    nothing (or reject the value with ValueError)."""
    fn = getattr(public(), "softmax_cross_entropy" + form)
    _value_error_or(fn(X, Y), fn, X, Y, ignore_index=ignore_index)


@pytest.mark.parametrize("n_threads", [2**31, 2**63, 10**30])
@pytest.mark.parametrize("name, pred, target", _calls())
def test_n_threads_beyond_int(name, pred, target, n_threads):
    """Found by the fuzzer: OverflowError('value too large to convert to int') for
    n_threads >= 2**31 (the C API takes an int). Expected: ValueError, or the thread count
    capped (the result does not depend on it)."""
    fn = getattr(public(), name + "_value_and_grad")
    _value_error_or(fn(pred, target), fn, pred, target, n_threads=n_threads)


def _float_options():
    fl = public()
    out = [("hinge", "margin")]
    for name in ("softmax_cross_entropy", "sigmoid_cross_entropy"):
        params = inspect.signature(getattr(fl, name)).parameters
        for opt in ("label_smoothing", "z_loss", "softcap", "focal_gamma", "focal_alpha",
                    "poly1_epsilon"):
            if opt in params:
                out.append((name, opt))
    return out


@pytest.mark.parametrize("name, option", _float_options())
def test_float_option_given_an_int_too_large_for_a_float(name, option):
    """Found by the fuzzer: float(10**400) raises OverflowError, which the option checks
    (except (TypeError, ValueError)) let through. Expected: ValueError naming the option."""
    pred, target = next((p, t) for n, p, t in _calls() if n == name)
    with pytest.raises(ValueError, match=option):
        getattr(public(), name)(pred, target, **{option: HUGE_INT})


# --------------------------------------------- empty inputs: no memory or time per class

@pytest.mark.parametrize("name, weight_kw", [("mse", "weight"),
                                             ("sigmoid_cross_entropy", "weight"),
                                             ("sigmoid_cross_entropy", "pos_weight")])
def test_empty_pred_with_a_broadcast_weight_allocates_nothing(name, weight_kw):
    """Found by the fuzzer (as MemoryError / libFuzzer OOM): pred of shape (0, 2**31 + 1)
    with weight=np.ones(1) makes fastloss copy the weight broadcast to one row of 2**31 + 1
    elements (8 GiB) although there is nothing to weigh. Here the row has 10**7 elements: the
    call on an empty array must not allocate megabytes."""
    row = 10**7
    pred = np.empty((0, row), dtype=np.float32)
    fl = public()
    if weight_kw == "pos_weight" and weight_kw not in inspect.signature(
            getattr(fl, name)).parameters:
        pytest.skip("no pos_weight")
    tracemalloc.start()
    try:
        value = getattr(fl, name)(pred, pred, reduction="sum", **{weight_kw: np.ones(1)})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value == 0.0
    assert peak < 2**20, f"an empty call allocated {peak / 2**20:.1f} MiB"


def test_empty_batch_with_a_huge_class_count_takes_no_time():
    """Found by the fuzzer (as a libFuzzer timeout): softmax cross-entropy of logits of shape
    (0, C) loops over the C classes (dispatch.c sums the class weights, 1.0 each without
    weights, before looking at the rows): C = 2**33 takes ~10 s, C = 10**12 a quarter of an
    hour, for an empty batch. Expected: no work proportional to C when there are no rows."""
    pred = np.empty((0, 2**33), dtype=np.float32)
    labels = np.empty((0,), dtype=np.int64)
    start = time.perf_counter()
    value = public().softmax_cross_entropy(pred, labels, reduction="sum")
    elapsed = time.perf_counter() - start
    assert value == 0.0
    assert elapsed < 1.0, f"an empty batch took {elapsed:.1f} s"


# ------------------------------------------------------------ wrong numbers, silently

def test_mse_grad_hess_with_hess_out_pred_returns_the_right_gradient():
    """Found by the fuzzer: mse_grad_hess(x, t, hess_out=x) is accepted, and the kernel
    writes the Hessian (2 w) into x before it reads x for the gradient: the gradient comes
    back as 2 (2 - t) instead of 2 (x - t). Expected: the right gradient, or ValueError
    (hess_out may not alias pred)."""
    fl = public()
    x = np.array([1.0, 2.0, 3.0])
    t = np.zeros(3)
    expected = fl.mse_grad_hess(x.copy(), t)
    buffer = x.copy()
    try:
        grad, hess = fl.mse_grad_hess(buffer, t, hess_out=buffer)
    except ValueError:
        return
    np.testing.assert_array_equal(grad, expected[0])
    np.testing.assert_array_equal(hess, expected[1])


@pytest.mark.parametrize("row", [[np.inf, np.inf, 0.0], [np.inf, np.nan, 0.0]],
                         ids=["two_plus_inf", "plus_inf_and_nan"])
@pytest.mark.parametrize("option", ["z_loss", "poly1_epsilon", "focal_gamma"])
def test_lse_out_is_written_for_rows_without_a_limit(option, row):
    """Found by the sanitizer driver (tests/c/test_kernels.c, "lse_out left unwritten"): with
    z_loss, poly1_epsilon or focal_gamma, a row whose maximum is +inf without a limit (two
    +inf, or +inf and NaN) returns early in sce_row_opt (softmax_ce.h) before it writes
    lse_out[r]: the caller's buffer keeps whatever it held (np.empty: garbage). Without the
    options the same row gets lse_out = inf (two +inf) or NaN. Expected: the same lse_out
    with and without the option."""
    fl = public()
    params = inspect.signature(fl.softmax_cross_entropy).parameters
    if option not in params or "lse_out" not in params:
        pytest.skip(f"no {option} / lse_out")
    x = np.array([row, [0.5, 1.0, 2.0]])
    y = np.array([2, 0])
    plain = np.full(2, 123.0)
    fl.softmax_cross_entropy(x, y, reduction="none", lse_out=plain)
    with_option = np.full(2, 123.0)
    fl.softmax_cross_entropy(x, y, reduction="none", lse_out=with_option, **{option: 0.5})
    assert with_option[0] != 123.0, "lse_out[0] was not written"
    np.testing.assert_array_equal(with_option, plain)


# ------------------------------------------------ out= aliasing an input that was converted

def test_out_aliasing_a_zero_one_hinge_target_is_rejected():
    """Found by the fuzzer: the {-1, +1} target of hinge is rejected as out= ("out shares
    memory with target"), but a {0, 1} target is converted to +-1 first and the overlap check
    sees only the converted copy: hinge_grad(x, t, out=t) succeeds and overwrites the caller's
    target with the gradient. Expected: ValueError, as for a +-1 target."""
    fl = public()
    for x, t in ((np.array([[0.5, -1.0, 2.0]]), np.array([[1.0, 0.0, 1.0]])),
                 (np.array([0.5, -1.0]), np.array([1.0, 0.0]))):
        before = t.copy()
        with pytest.raises(ValueError, match="target"):
            fl.hinge_grad(x, t, out=t)
        np.testing.assert_array_equal(t, before)


@pytest.mark.parametrize("name", ["mse", "sigmoid_cross_entropy"])
@pytest.mark.parametrize("which", ["target", "weight"])
def test_out_aliasing_the_bytes_of_a_converted_input_is_rejected(name, which):
    """Found by the fuzzer: float32 pred, float64 target (or weight); out is a float32 view of
    the target's (weight's) bytes. The API converts the target to float32 and checks out
    against that copy only, so the call succeeds and overwrites the caller's array.
    Expected: ValueError (out shares memory with an input)."""
    fl = public()
    x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    arrays = {"target": np.array([0.5, 0.25, 1.0, 0.75]), "weight": np.ones(4)}
    before = arrays[which].copy()
    out = arrays[which].view(np.float32)[:4]
    assert np.shares_memory(out, arrays[which])
    with pytest.raises(ValueError):
        getattr(fl, name + "_grad")(x, arrays["target"], weight=arrays["weight"], out=out)
    np.testing.assert_array_equal(arrays[which], before)


# ----------------------------------------------------- the forms agree bitwise, every SIMD path

@pytest.fixture
def each_simd_path():
    from fastloss import _core

    paths = _core.simd_supported()
    try:
        yield paths, _core.set_simd
    finally:
        _core.set_simd("best")


@pytest.mark.parametrize("option", [{"softcap": 5.0}, {"softcap": 30.0, "z_loss": 1e-3},
                                    {"z_loss": 0.01}, {"poly1_epsilon": 1.0},
                                    {"focal_gamma": 2.0}], ids=str)
def test_softmax_value_form_equals_value_and_grad_bitwise(each_simd_path, option):
    """Found by the fuzzer: with softcap, in float64 on the AVX2 and AVX-512 paths (not the
    baseline), softmax_cross_entropy(x, y) and softmax_cross_entropy_value_and_grad(x, y)[0]
    differ in the last bits (~13% of random inputs): the option kernel computes the capped
    logits z = cap * tanh(x / cap) in two code versions (with / without the gradient stores)
    that the compiler contracts into FMAs differently. Expected (SPEC: one kernel, the three
    forms agree): the same bits."""
    fl = public()
    params = inspect.signature(fl.softmax_cross_entropy).parameters
    if not set(option) <= set(params):
        pytest.skip("option not available")
    paths, set_simd = each_simd_path
    rng = np.random.default_rng(0)
    for path in paths:
        set_simd(path)
        for trial in range(30):
            n, c = int(rng.integers(1, 30)), int(rng.integers(2, 40))
            x = rng.standard_normal((n, c)) * rng.choice([1.0, 5.0, 20.0])
            y = rng.integers(0, c, n)
            for dtype in (np.float32, np.float64):
                for reduction in ("none", "sum"):
                    xx = x.astype(dtype)
                    value = fl.softmax_cross_entropy(xx, y, reduction=reduction, **option)
                    both = fl.softmax_cross_entropy_value_and_grad(xx, y, reduction=reduction,
                                                                   **option)
                    assert_identical((value, None), (both[0], None),
                                     err_msg=f"{path} {np.dtype(dtype).name} {reduction} "
                                             f"trial {trial}")


@pytest.mark.parametrize("name, which", [("mse", "target"), ("mse", "weight"),
                                         ("sigmoid_cross_entropy", "target"),
                                         ("softmax_cross_entropy", "target")])
def test_hess_out_aliasing_the_bytes_of_a_converted_input_is_rejected(name, which):
    """Found by the fuzzer after the out= fix (campaign 3): the same hole for hess_out of the
    *_grad_hess functions. float32 pred, float64 target / weight, hess_out a float32 view of
    their bytes: accepted, and the Hessian overwrites the caller's target (weight).
    Expected: ValueError."""
    fl = public()
    x = np.array([[1.0, 2.0], [0.0, 1.0]], dtype=np.float32)
    arrays = {"target": np.array([[0.3, 0.7], [0.5, 0.5]]), "weight": np.ones((2, 2))}
    kwargs = {"weight": arrays["weight"]} if name == "mse" else {}
    before = arrays[which].copy()
    hess_out = arrays[which].reshape(-1).view(np.float32)[:4].reshape(2, 2)
    assert np.shares_memory(hess_out, arrays[which])
    with pytest.raises(ValueError):
        getattr(fl, name + "_grad_hess")(x, arrays["target"], hess_out=hess_out, **kwargs)
    np.testing.assert_array_equal(arrays[which], before)


def test_lse_out_aliasing_converted_probability_targets_is_rejected():
    """Same hole for lse_out: float32 logits, float64 probability targets (converted to a
    float32 copy), lse_out = a float64 view into the caller's targets: accepted, and the
    log-sum-exps overwrite the targets (with float64 logits the same call is rejected,
    "lse_out shares memory with target"). Expected: ValueError."""
    fl = public()
    if "lse_out" not in inspect.signature(fl.softmax_cross_entropy).parameters:
        pytest.skip("no lse_out")
    x = np.array([[1.0, 2.0], [0.0, 1.0]], dtype=np.float32)
    probs = np.array([[0.3, 0.7], [0.5, 0.5]])
    before = probs.copy()
    lse_out = probs.reshape(-1)[:2]
    assert np.shares_memory(lse_out, probs)
    with pytest.raises(ValueError):
        fl.softmax_cross_entropy(x, probs, reduction="none", lse_out=lse_out)
    np.testing.assert_array_equal(probs, before)
