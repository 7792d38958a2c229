"""Sigmoid cross-entropy (and its focal / poly-1 options) computes float32 elements in float32.

The proof that this keeps the SPEC's accuracy: a dense sweep of x (every 1/1000 on [-100, 100],
and tiny magnitudes down to the smallest subnormal) times targets inside and outside [0, 1],
with and without pos_weight, comparing each float32 element loss and gradient against the
float64 reference on the same float32 inputs, relative to the element's own magnitude (and,
for the gradient, to the two terms it is a difference of). The suite's float32 tolerance
bounds the error; a second, tighter bound (measured maxima plus margin) catches a loss of
accuracy that the suite's tolerance would still let through. Also: the chunks of a block that
cross row boundaries (per-column weights gathered), and the streamed gradient of a large
array, against the in-place one bit for bit.
"""

import numpy as np
import pytest

import fastloss.reference as reference

from .cases import public, tolerance, underflow

EPS32 = float(np.finfo(np.float32).eps)
TINY = underflow(np.float32)


def _grid():
    dense = np.arange(-100_000, 100_001, dtype=np.float64) / 1000.0
    tiny = np.logspace(-45.5, 0, 4000)
    x = np.concatenate([dense, tiny, -tiny, [0.0, -0.0]]).astype(np.float32)
    return x


X = _grid()
TARGETS = [0.0, 1.0, 0.3, -0.5, 1.7, 1e4]


def _worst(actual, expected, scale):
    """Largest |actual - expected| / (eps32 * scale) over the elements (0 where both are 0)."""
    err = np.abs(actual.astype(np.float64) - expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(err <= TINY, 0.0, err / (EPS32 * scale))
    return float(np.max(r))


def _check(name, loss32, grad32, loss64, grad64, loss_terms, grad_terms, ulps):
    """Each element within the suite's float32 tolerance (and within ``ulps``) of its float64
    value, relative to the sum of the magnitudes of the terms it adds up (its own magnitude
    where the terms have one sign: targets in [0, 1])."""
    tol = tolerance(np.float32)
    assert loss32.dtype == np.float32 and grad32.dtype == np.float32
    lscale = np.abs(loss64) + loss_terms
    gscale = np.abs(grad64) + grad_terms
    assert np.all(np.abs(loss32.astype(np.float64) - loss64) <= tol * lscale + TINY), name
    assert np.all(np.abs(grad32.astype(np.float64) - grad64) <= tol * gscale + TINY), name
    # the measured accuracy, with a margin
    assert _worst(loss32, loss64, lscale) <= ulps, name
    assert _worst(grad32, grad64, gscale) <= ulps, name


@pytest.mark.parametrize("pw", [None, 2.5], ids=["no_pos_weight", "pos_weight"])
@pytest.mark.parametrize("t", TARGETS)
def test_float32_elements_match_float64_reference(t, pw):
    fl = public()
    x = X
    target = np.full(x.shape, t, dtype=np.float32)
    pos_weight = None if pw is None else np.full(x.shape, pw, dtype=np.float32)
    loss32, grad32 = fl.sigmoid_cross_entropy_value_and_grad(
        x, target, pos_weight=pos_weight, reduction="none")
    x64, t64 = x.astype(np.float64), target.astype(np.float64)
    pw64 = None if pw is None else pos_weight.astype(np.float64)
    loss64 = reference.sigmoid_cross_entropy(x64, t64, pos_weight=pw64, reduction="none")
    grad64 = reference.sigmoid_cross_entropy_grad(x64, t64, pos_weight=pw64, reduction="sum")
    p = 1.0 / (1.0 + np.exp(-x64))
    q = 1.0 / (1.0 + np.exp(x64))
    pwv = 1.0 if pw is None else pw
    terms = np.abs((1.0 - t64) * p) + np.abs(pwv * t64 * q)
    sp = np.logaddexp(0.0, x64)          # softplus(x); softplus(-x) = sp - x
    lterms = np.abs(pwv * t64 * (sp - x64)) + np.abs((1.0 - t64) * sp)
    # measured (in units of eps32 times the scale): loss <= 0.91, gradient <= 0.92
    _check(f"t={t} pw={pw}", loss32, grad32, loss64, grad64, lterms, terms, ulps=2.0)


@pytest.mark.parametrize("opts", [
    {"focal_gamma": 2.0, "focal_alpha": 0.25},
    {"focal_gamma": 1.0},
    {"focal_gamma": 3.0, "poly1_epsilon": 0.5},
    {"focal_gamma": 0.0, "focal_alpha": 0.75, "poly1_epsilon": -0.3},
    {"focal_gamma": 2.5, "focal_alpha": 0.25},        # not an integer: the float64 path
], ids=["g2a", "g1", "g3e", "a_e", "g2.5a"])
@pytest.mark.parametrize("t", [0.0, 1.0, 0.3])
def test_float32_focal_elements_match_float64_reference(t, opts):
    fl = public()
    x = X[np.abs(X) <= 60]         # beyond, (1 - p_t)^gamma of a right answer underflows
    target = np.full(x.shape, t, dtype=np.float32)
    loss32, grad32 = fl.sigmoid_cross_entropy_value_and_grad(x, target, reduction="none",
                                                             **opts)
    x64, t64 = x.astype(np.float64), target.astype(np.float64)
    loss64 = reference.sigmoid_cross_entropy(x64, t64, reduction="none", **opts)
    grad64 = reference.sigmoid_cross_entropy_grad(x64, t64, reduction="sum", **opts)
    # the gradient is alpha_t ((1 - p_t)^g ce' + g (1 - p_t)^(g-1) ce d(1 - p_t)) + eps d(1 - p_t):
    # its error is relative to those terms
    g = opts.get("focal_gamma", 0.0)
    alpha = opts.get("focal_alpha")
    e = opts.get("poly1_epsilon", 0.0)
    p = 1.0 / (1.0 + np.exp(-x64))
    q = 1.0 / (1.0 + np.exp(x64))
    omp = t64 * q + (1.0 - t64) * p
    ce = reference.sigmoid_cross_entropy(x64, t64, reduction="none")
    at = 1.0 if alpha is None else alpha * t64 + (1.0 - alpha) * (1.0 - t64)
    dce = np.abs((1.0 - t64) * p) + np.abs(t64 * q)
    domp = np.abs((1.0 - 2.0 * t64) * p * q)
    terms = at * (omp ** g * dce + g * np.where(omp > 0, omp ** max(g - 1.0, 0.0), 0.0)
                  * domp * ce) + abs(e) * domp
    lterms = at * omp ** g * ce + abs(e) * omp
    # measured (eps32 times the scale): <= 2.2 for the loss, <= 2.5 for the gradient (the
    # powers of 1 - p_t add a few roundings)
    _check(f"t={t} {opts}", loss32, grad32, loss64, grad64, lterms, terms, ulps=4.0)


@pytest.mark.parametrize("weight_kind", ["none", "per_element", "per_column"])
def test_chunks_crossing_rows_gather_the_column_weights(weight_kind):
    """Short rows (37 columns): the kernel's chunks span rows, so pos_weight and a per-column
    weight are gathered for each chunk; every element must see its own column's weights."""
    fl = public()
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((301, 37)) * 3).astype(np.float32)
    t = (rng.random((301, 37)) < 0.4).astype(np.float32)
    pw = rng.uniform(0.5, 3.0, 37).astype(np.float32)
    w = {"none": None,
         "per_element": rng.uniform(0.1, 2.0, (301, 37)).astype(np.float32),
         "per_column": rng.uniform(0.1, 2.0, 37).astype(np.float32)}[weight_kind]
    loss, grad = fl.sigmoid_cross_entropy_value_and_grad(x, t, weight=w, pos_weight=pw,
                                                         reduction="none")
    w64 = None if w is None else w.astype(np.float64)
    args = (x.astype(np.float64), t.astype(np.float64))
    kw = {"weight": w64, "pos_weight": pw.astype(np.float64)}
    tol = tolerance(np.float32)
    loss64 = reference.sigmoid_cross_entropy(*args, reduction="none", **kw)
    grad64 = reference.sigmoid_cross_entropy_grad(*args, reduction="sum", **kw)
    np.testing.assert_allclose(loss, loss64, rtol=tol, atol=TINY)
    np.testing.assert_allclose(grad, grad64, rtol=tol, atol=tol * np.max(np.abs(grad64)))
    # the sum: the same elements
    total = fl.sigmoid_cross_entropy(x, t, weight=w, pos_weight=pw, reduction="sum")
    assert abs(total - float(np.sum(loss64))) <= tol * float(np.sum(np.abs(loss64)))


@pytest.mark.parametrize("opts", [{}, {"focal_gamma": 2.0, "focal_alpha": 0.25}],
                         ids=["ce", "focal"])
def test_streamed_gradient_equals_in_place(opts):
    """A gradient of 16 MiB or more into a separate array leaves with non-temporal stores: the
    same bits as the gradient written over the logits, and the same loss."""
    fl = public()
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4200, 1003)) * 2).astype(np.float32)   # 16.9 MB
    t = (rng.random(x.shape) < 0.3).astype(np.float32)
    out = np.empty_like(x)
    v1, g1 = fl.sigmoid_cross_entropy_value_and_grad(x, t, out=out, **opts)
    y = x.copy()
    v2, g2 = fl.sigmoid_cross_entropy_value_and_grad(y, t, out=y, **opts)
    assert g1 is out and g2 is y
    assert v1 == v2
    assert np.array_equal(g1, g2)
    k = slice(0, 200)
    g64 = reference.sigmoid_cross_entropy_grad(x[k].astype(np.float64), t[k].astype(np.float64),
                                               reduction="sum", **opts) / x.size
    tol = tolerance(np.float32)
    np.testing.assert_allclose(g1[k], g64, rtol=tol, atol=tol * np.max(np.abs(g64)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("opts", [{}, {"poly1_epsilon": -0.5}, {"focal_gamma": 2.0},
                                  {"focal_gamma": 2.5, "focal_alpha": 0.25}],
                         ids=["ce", "poly1", "focal2", "focal2.5"])
def test_element_values_do_not_depend_on_their_position(opts, dtype):
    """The same (x, t) gives the same bits wherever it sits in the array (the kernel's vector
    body and its remainder must not round differently): what makes the sum of a split equal
    the split of the sum."""
    fl = public()
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(600) * 3).astype(dtype)
    t = rng.random(600).astype(dtype)
    loss = fl.sigmoid_cross_entropy(x, t, reduction="none", **opts)
    grad = fl.sigmoid_cross_entropy_grad(x, t, reduction="sum", **opts)
    for off in range(1, 34):
        assert np.array_equal(fl.sigmoid_cross_entropy(x[off:], t[off:], reduction="none",
                                                       **opts), loss[off:]), off
        assert np.array_equal(fl.sigmoid_cross_entropy_grad(x[off:], t[off:], reduction="sum",
                                                            **opts), grad[off:]), off
