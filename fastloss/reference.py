"""Readable pure-NumPy reference implementations of every fastloss loss.

This module is the oracle the test-suite compares the compiled kernels against (in the spirit of
bottleneck's ``bottleneck/slow``). It never imports the compiled extension. Every function has the
same signature as its public counterpart in :mod:`fastloss`; ``n_threads`` is accepted and ignored.

Conventions:

* all arithmetic is done in float64, whatever the input dtype; results come back in ``pred``'s
  dtype (float32 in, float32 out); ``mean`` and ``sum`` losses are Python floats, and the sum
  over elements is correctly rounded (:func:`math.fsum`) whenever it is finite;
* ``reduction="none"`` returns the per-row (class losses) or per-element (elementwise losses)
  values, and the ``_grad`` of ``"none"`` is the gradient of the SUM of those values;
* the options beyond PyTorch (z-loss, soft-capping, ``lse_out``, focal and poly-1) are
  written as their definitions, one term each, with their derivatives in closed form;
* the stable formulas are written so that tiny true values survive: ``softplus`` uses
  ``log1p(exp(-|x|))`` (via :func:`numpy.logaddexp`), the log-sum-exp is shifted by the row maximum
  and its remainder taken with ``log1p``, and the gradient at the argmax is formed from the sum of
  the other probabilities instead of as ``p - 1``.

Only as much argument checking is done as is needed to be a correct baseline; the public API owns
the error contract.
"""

import math

import numpy as np

__all__ = [
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_value_and_grad",
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_cross_entropy_value_and_grad",
    "hinge",
    "hinge_grad",
    "hinge_value_and_grad",
    "mse",
    "mse_grad",
    "mse_value_and_grad",
]

_REDUCTIONS = ("mean", "sum", "none", "batchmean", "fullmean")
_MULTICLASS = ("ovr", "weston_watkins", "crammer_singer")


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _result_dtype(pred):
    """The dtype results come back in: pred's own float dtype (float64 for anything else)."""
    dtype = np.asarray(pred).dtype
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _exact_sum(values):
    """Correctly rounded float64 sum (falls back to np.sum when inf/NaN are involved)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if np.all(np.isfinite(values)):
        return math.fsum(values)
    return float(np.sum(values))


def _divide(numerator, denominator):
    """IEEE division of two floats: 0/0 is NaN and x/0 is +-inf, never an exception."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(numerator) / np.float64(denominator))


def _denominator(denominator, reduction, shape):
    """The divisor of a dividing reduction; ``shape`` is the shape of the per-row (class losses)
    or per-element losses.  ``mean``: the loss's own denominator; ``batchmean``: the first axis
    of ``shape`` (1 for a single row or element); ``fullmean``: every location of ``shape``."""
    if reduction == "batchmean":
        return shape[0] if len(shape) else 1
    if reduction == "fullmean":
        return math.prod(shape)
    return denominator


def _reduce(losses, denominator, reduction, dtype, shape):
    """Reduce float64 per-row/per-element losses (of ``shape``) as the public API does."""
    if reduction == "none":
        return np.asarray(np.asarray(losses, dtype=np.float64).reshape(shape).astype(dtype))
    total = _exact_sum(losses)
    if reduction == "sum":
        return total
    return _divide(total, _denominator(denominator, reduction, shape))


def _scale_grad(grad, denominator, reduction, shape):
    """Gradient of the reduced loss from the gradient of the sum (``shape`` as in _reduce).

    With a zero mean denominator (empty batch, all rows ignored) the gradient of the sum is all
    zeros and stays so (NaN rows stay NaN) instead of becoming 0/0.
    """
    if reduction in ("sum", "none"):
        return grad
    denominator = _denominator(denominator, reduction, shape)
    if denominator == 0:
        return grad * 0.0
    return grad / denominator


def _deliver_grad(grad, dtype, shape, out):
    """Return the float64 gradient in pred's dtype and shape, written into ``out`` if given."""
    grad = np.asarray(grad, dtype=np.float64).reshape(shape)
    if out is None:
        return grad.astype(dtype)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError("out must be an ndarray of pred's shape and dtype")
    out[...] = grad
    return out


def _normalize_axis(axis, ndim):
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for pred with {ndim} dimensions")
    return axis % ndim


def _is_integer_target(target):
    return np.issubdtype(target.dtype, np.integer)


def _check_labels(labels, n_classes, ignore_index=None):
    """Raise ValueError naming the first label outside [0, C) that is not ignore_index."""
    flat = labels.ravel()
    bad = (flat < 0) | (flat >= n_classes)
    if ignore_index is not None:
        bad &= flat != ignore_index
    if np.any(bad):
        position = np.unravel_index(int(np.argmax(bad)), labels.shape)
        value = int(flat[np.argmax(bad)])
        raise ValueError(
            f"target has label {value} at position {tuple(int(i) for i in position)}, "
            f"outside [0, {n_classes})"
        )


def _class_weight(weight, n_classes):
    if weight is None:
        return np.ones(n_classes)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape != (n_classes,):
        raise ValueError(f"weight has shape {weight.shape}, expected ({n_classes},)")
    return weight


def _row_weight(sample_weight, row_shape):
    """sample_weight (row shape) flattened to one weight per row; ones when None."""
    n_rows = math.prod(row_shape)
    if sample_weight is None:
        return np.ones(n_rows)
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != tuple(row_shape):
        raise ValueError(
            f"sample_weight has shape {sample_weight.shape}, expected {tuple(row_shape)}"
        )
    return sample_weight.reshape(n_rows)


def _class_rows(pred, axis):
    """Move the class axis last and flatten the rest: returns (X[N, C], axis, row_shape)."""
    x = np.asarray(pred, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("class losses need pred with at least 1 dimension (the class axis)")
    axis = _normalize_axis(axis, x.ndim)
    n_classes = x.shape[axis]
    if n_classes == 0:
        raise ValueError(f"pred has shape {x.shape}: the class axis {axis} has C == 0")
    moved = np.moveaxis(x, axis, -1)
    row_shape = moved.shape[:-1]
    return moved.reshape(-1, n_classes), axis, row_shape


def _rows_to_pred_layout(grad_rows, pred_shape, axis):
    """Inverse of _class_rows for a (N, C) array: back to pred's layout."""
    moved_shape = tuple(np.delete(np.array(pred_shape, dtype=np.int64), axis)) + (
        pred_shape[axis],
    )
    return np.moveaxis(grad_rows.reshape(moved_shape), -1, axis)


def _target_rows(target, pred_shape, axis):
    """A probability/multi-label target of pred's shape, as (N, C) rows."""
    target = np.asarray(target, dtype=np.float64)
    if target.shape != tuple(pred_shape):
        raise ValueError(f"target has shape {target.shape} but pred has shape {tuple(pred_shape)}")
    return np.moveaxis(target, axis, -1).reshape(-1, pred_shape[axis])


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy
# ---------------------------------------------------------------------------------------------


def _softmax_ce_regular_rows(x, a):
    """Row losses sum_k a_k * (-log p_k) and gradients p * sum(a) - a for rows with finite max.

    With j the (first) argmax, m = x_j and q = sum_{k != j} exp(x_k - m):
    -log p_k = log1p(q) - (x_k - m), p_k = exp(x_k - m) / (1 + q), and at the argmax
    p_j * A - a_j = -A * q / (1 + q) + sum_{k != j} a_k, which keeps tiny values
    (a confidently right prediction) instead of cancelling 1 - 1.
    -inf logits have p_k = 0; a term whose coefficient a_k is exactly 0 contributes 0.
    """
    n_rows = x.shape[0]
    rows = np.arange(n_rows)
    j = np.argmax(x, axis=1)
    m = x[rows, j]
    z = x - m[:, None]
    e = np.exp(z)
    is_argmax = np.zeros(x.shape, dtype=bool)
    is_argmax[rows, j] = True
    q = np.where(is_argmax, 0.0, e).sum(axis=1)
    neg_log_p = np.log1p(q)[:, None] - z
    p = e / (1.0 + q)[:, None]

    loss = np.where(a != 0, a * neg_log_p, 0.0).sum(axis=1)
    a_sum = a.sum(axis=1)
    grad = p * a_sum[:, None] - a
    a_others = np.where(is_argmax, 0.0, a).sum(axis=1)
    grad[rows, j] = -a_sum * q / (1.0 + q) + a_others
    return loss, grad


def _softmax_ce_special_row(x, a):
    """A row whose maximum is not finite, or that holds a NaN (the edge cases: the limit where one exists, else NaN)."""
    n_pos_inf = int(np.sum(x == np.inf))
    if np.any(np.isnan(x)) or n_pos_inf != 1:
        # NaN, all -inf, or two +inf: no limit exists.
        return np.nan, np.full(x.shape, np.nan)
    # Exactly one +inf: it takes probability 1, every other class probability 0.
    j = int(np.argmax(x == np.inf))
    p = np.zeros(x.shape)
    p[j] = 1.0
    neg_log_p = np.full(x.shape, np.inf)
    neg_log_p[j] = 0.0
    loss = np.sum(np.where(a != 0, a * neg_log_p, 0.0))
    grad = p * a.sum() - a
    return loss, grad


def _softmax_ce(logits, target, weight, sample_weight, ignore_index, label_smoothing, axis,
                z_loss=0.0, softcap=None, focal_gamma=0.0, poly1_epsilon=0.0):
    """Per-row float64 losses, the gradient of their sum (N, C), the mean denominator, the
    per-row log-sum-exps, and the bits needed to put results back in shape."""
    x_raw, axis, row_shape = _class_rows(logits, axis)
    pred_shape = np.shape(logits)
    n_rows, n_classes = x_raw.shape
    target = np.asarray(target)
    class_weight = _class_weight(weight, n_classes)
    row_weight = _row_weight(sample_weight, row_shape)
    eps = float(label_smoothing)

    # Soft-capping (Gemma 2): the loss sees z = c tanh(x / c); dz/dx = 1 - (z / c)**2.
    if softcap is None:
        x, cap_slope = x_raw, None
    else:
        x = softcap * np.tanh(x_raw / softcap)
        cap_slope = 1.0 - np.tanh(x_raw / softcap) ** 2

    if _is_integer_target(target):
        if target.shape != tuple(row_shape):
            raise ValueError(
                f"target has shape {target.shape} but logits of shape {pred_shape} "
                f"need integer targets of shape {tuple(row_shape)}"
            )
        _check_labels(target, n_classes, ignore_index)
        labels = target.reshape(n_rows).astype(np.int64)
        ignored = labels == ignore_index
        safe_labels = np.where(ignored, 0, labels)
        smoothed = np.zeros((n_rows, n_classes))
        smoothed[np.arange(n_rows), safe_labels] = 1.0
        smoothed = (1.0 - eps) * smoothed + eps / n_classes
        smoothed[ignored] = 0.0
        # the weight of a row's own terms (z-loss, poly-1): its label's class weight
        term_weight = np.where(ignored, 0.0, class_weight[safe_labels])
        denominator = _exact_sum(
            np.where(ignored, 0.0, class_weight[safe_labels] * row_weight)
        )
    else:
        if focal_gamma:
            raise ValueError("focal_gamma needs integer labels")
        labels = None
        probabilities = _target_rows(target, pred_shape, axis)
        smoothed = (1.0 - eps) * probabilities + eps / n_classes
        ignored = np.zeros(n_rows, dtype=bool)
        term_weight = np.ones(n_rows)
        denominator = _exact_sum(row_weight)
    if focal_gamma and eps:
        raise ValueError("focal_gamma needs label_smoothing=0")

    a = class_weight * smoothed  # a_k = weight_k * t'_k
    loss = np.zeros(n_rows)
    grad = np.zeros((n_rows, n_classes))
    with np.errstate(all="ignore"):
        row_max = x.max(axis=1) if n_classes else np.zeros(n_rows)
        regular = ~ignored & np.isfinite(row_max) & ~np.any(np.isnan(x), axis=1)
        loss[regular], grad[regular] = _softmax_ce_regular_rows(x[regular], a[regular])
        for i in np.flatnonzero(~ignored & ~regular):
            loss[i], grad[i] = _softmax_ce_special_row(x[i], a[i])
        lse = _logsumexp_rows(x)
        if focal_gamma or z_loss or poly1_epsilon:
            p = np.exp(x - lse[:, None])
            if focal_gamma:
                # Focal (Lin et al. 2017): w_y (1 - p_y)**gamma (-log p_y).  With
                # f(p) = -(1 - p)**g log p:  d f / d x_k = f'(p_y) p_y (delta_ky - p_k),
                # p f'(p) = g (1 - p)**(g - 1) p log p - (1 - p)**g.
                rows = np.arange(n_rows)
                py = p[rows, safe_labels]
                log_py = _log_softmax(x)[rows, safe_labels]
                q = _one_minus_softmax(x)[rows, safe_labels]
                focal_loss = -(q ** focal_gamma) * log_py
                q_gm1 = np.where(q > 0, q ** (focal_gamma - 1.0), 0.0)
                pf = focal_gamma * q_gm1 * py * log_py - q ** focal_gamma
                onehot = np.zeros((n_rows, n_classes))
                onehot[rows, safe_labels] = 1.0
                # onehot - p, with 1 - p_y taken without cancellation
                focal_grad = pf[:, None] * np.where(onehot == 1.0, _one_minus_softmax(x), -p)
                keep = regular
                loss[keep] = (term_weight * focal_loss)[keep]
                grad[keep] = (term_weight[:, None] * focal_grad)[keep]
            if z_loss:
                # z-loss (PaLM): z lse**2 per row; d/dx_k = 2 z lse p_k.
                loss += np.where(ignored, 0.0, term_weight * z_loss * lse ** 2)
                grad += np.where(ignored[:, None], 0.0,
                                 (term_weight * 2.0 * z_loss * lse)[:, None] * p)
            if poly1_epsilon:
                # Poly-1 (Leng et al. 2022): eps (1 - p_t), p_t = sum_k t'_k p_k;
                # d p_t / d x_k = p_k (t'_k - p_t).
                pt = np.sum(smoothed * p, axis=1)
                # 1 - p_t = (1 - sum_k t'_k) + sum_k t'_k (1 - p_k), without cancellation
                one_minus_pt = (1.0 - np.sum(smoothed, axis=1)
                                + np.sum(smoothed * _one_minus_softmax(x), axis=1))
                loss += np.where(ignored, 0.0, term_weight * poly1_epsilon * one_minus_pt)
                grad += np.where(ignored[:, None], 0.0,
                                 (term_weight * poly1_epsilon)[:, None]
                                 * p * (pt[:, None] - smoothed))
        if cap_slope is not None:
            grad = grad * cap_slope
        loss = loss * row_weight
        grad = grad * row_weight[:, None]
    return loss, grad, denominator, lse, row_shape, pred_shape, axis


def _logsumexp_rows(x):
    """log sum_k exp(x_k) of each row, shifted by the row maximum."""
    with np.errstate(all="ignore"):
        m = x.max(axis=1) if x.shape[1] else np.zeros(x.shape[0])
        shift = np.where(np.isfinite(m), m, 0.0)
        return shift + np.log(np.sum(np.exp(x - shift[:, None]), axis=1))


_SOFTMAX_OPTIONS_DOC = """
    Options beyond PyTorch (all off by default), each a term of the same row:
    ``z_loss * lse**2`` (PaLM); ``softcap``: the loss sees ``c * tanh(x / c)``
    (Gemma 2); ``focal_gamma``: the row loss ``w_y (1 - p_y)**gamma (-log p_y)``
    (integer labels, no smoothing); ``poly1_epsilon * (1 - p_t)`` with ``p_t =
    sum_k t'_k p_k``.  The z-loss and poly-1 terms carry the row's weight
    (``weight[y_i] * s_i``, or ``s_i`` for probabilities).  ``lse_out`` receives
    each row's log-sum-exp (of the capped logits).
"""


def softmax_cross_entropy(logits, target, *, weight=None, sample_weight=None, ignore_index=-100,
                          label_smoothing=0.0, reduction="mean", axis=-1, n_threads=None,
                          z_loss=0.0, softcap=None, lse_out=None, focal_gamma=0.0,
                          poly1_epsilon=0.0):
    """Softmax cross-entropy, equal to ``torch.nn.functional.cross_entropy``.

    Row loss ``l_i = s_i * sum_k a_k (lse(x_i) - x_ik)`` with ``a_k = weight_k * t'_k`` and
    ``t' = (1 - eps) * t + eps / C`` (``t`` one-hot of the label, or the probability target).
    ``mean`` divides by ``sum_i weight[y_i] * s_i`` over non-ignored rows (integer targets) or
    by ``sum_i s_i`` (probability targets).
    """
    return _softmax_cross_entropy_impl(
        logits, target, weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction, axis=axis,
        out=None, want_grad=False, z_loss=z_loss, softcap=softcap, lse_out=lse_out,
        focal_gamma=focal_gamma, poly1_epsilon=poly1_epsilon,
    )[0]


def softmax_cross_entropy_grad(logits, target, *, weight=None, sample_weight=None,
                               ignore_index=-100, label_smoothing=0.0, reduction="mean", axis=-1,
                               n_threads=None, out=None, z_loss=0.0, softcap=None, lse_out=None,
                               focal_gamma=0.0, poly1_epsilon=0.0):
    """Gradient of :func:`softmax_cross_entropy` with respect to the logits."""
    return _softmax_cross_entropy_impl(
        logits, target, weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction, axis=axis, out=out,
        z_loss=z_loss, softcap=softcap, lse_out=lse_out, focal_gamma=focal_gamma,
        poly1_epsilon=poly1_epsilon,
    )[1]


def softmax_cross_entropy_value_and_grad(logits, target, *, weight=None, sample_weight=None,
                                         ignore_index=-100, label_smoothing=0.0,
                                         reduction="mean", axis=-1, n_threads=None, out=None,
                                         z_loss=0.0, softcap=None, lse_out=None,
                                         focal_gamma=0.0, poly1_epsilon=0.0):
    """``(softmax_cross_entropy(...), softmax_cross_entropy_grad(...))``."""
    return _softmax_cross_entropy_impl(
        logits, target, weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction, axis=axis, out=out,
        z_loss=z_loss, softcap=softcap, lse_out=lse_out, focal_gamma=focal_gamma,
        poly1_epsilon=poly1_epsilon,
    )


for _f in (softmax_cross_entropy, softmax_cross_entropy_grad,
           softmax_cross_entropy_value_and_grad):
    _f.__doc__ = (_f.__doc__ or "") + _SOFTMAX_OPTIONS_DOC


def _softmax_cross_entropy_impl(logits, target, *, weight, sample_weight, ignore_index,
                                label_smoothing, reduction, axis, out, want_grad=True,
                                z_loss=0.0, softcap=None, lse_out=None, focal_gamma=0.0,
                                poly1_epsilon=0.0):
    _check_reduction(reduction)
    dtype = _result_dtype(logits)
    loss, grad, denominator, lse, row_shape, pred_shape, axis = _softmax_ce(
        logits, target, weight, sample_weight, ignore_index, label_smoothing, axis,
        z_loss=float(z_loss), softcap=None if softcap is None else float(softcap),
        focal_gamma=float(focal_gamma), poly1_epsilon=float(poly1_epsilon),
    )
    if lse_out is not None:
        lse_out[...] = lse.reshape(row_shape)
    value = _reduce(loss, denominator, reduction, dtype, row_shape)
    if not want_grad:
        return value, None
    grad = _rows_to_pred_layout(_scale_grad(grad, denominator, reduction, row_shape), pred_shape,
                                axis)
    return value, _deliver_grad(grad, dtype, pred_shape, out)


# ---------------------------------------------------------------------------------------------
# Sigmoid cross-entropy
# ---------------------------------------------------------------------------------------------


def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact limits at +-inf."""
    return np.logaddexp(0.0, x)


def _one_minus_softmax(x):
    """1 - softmax(x) per row, also where a probability is within rounding of 1: only the
    row's largest entry can exceed 1/2, and its complement is the sum of the others."""
    with np.errstate(all="ignore"):
        e = np.exp(x - x.max(axis=1, keepdims=True)) if x.shape[1] else np.zeros(x.shape)
        s = e.sum(axis=1)
        om = 1.0 - e / s[:, None]
        if x.shape[1] and len(x):
            rows = np.arange(len(x))
            top = np.argmax(e, axis=1)
            others = e.copy()
            others[rows, top] = 0.0
            om[rows, top] = others.sum(axis=1) / s
    return om


def _log_softmax(x):
    """log softmax(x) per row as (x - max) - log1p(sum of the others' exp(x - max)), which
    keeps its relative accuracy where a probability is within rounding of 1."""
    with np.errstate(all="ignore"):
        if not x.shape[1] or not len(x):
            return np.zeros(x.shape)
        m = x.max(axis=1, keepdims=True)
        e = np.exp(x - m)
        rows = np.arange(len(x))
        top = np.argmax(e, axis=1)
        others = e.copy()
        others[rows, top] = 0.0
        return (x - m) - np.log1p(others.sum(axis=1))[:, None]


def _sigmoid(x):
    """1 / (1 + exp(-x)), evaluated without overflow and with full relative accuracy."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _elementwise_weight(weight, shape, name="weight"):
    if weight is None:
        return None
    weight = np.asarray(weight, dtype=np.float64)
    try:
        return np.broadcast_to(weight, shape)
    except ValueError:
        raise ValueError(
            f"{name} has shape {weight.shape}, which does not broadcast to pred's shape {shape}"
        ) from None


def _same_shape_target(target, shape):
    target = np.asarray(target, dtype=np.float64)
    if target.shape != tuple(shape):
        raise ValueError(f"target has shape {target.shape} but pred has shape {tuple(shape)}")
    return target


def sigmoid_cross_entropy(logits, target, *, weight=None, pos_weight=None, reduction="mean",
                          n_threads=None, focal_gamma=0.0, focal_alpha=None, poly1_epsilon=0.0,
                          ignore_index=None):
    """Sigmoid cross-entropy, equal to ``binary_cross_entropy_with_logits``.

    ``l = weight * (pos_weight * t * softplus(-x) + (1 - t) * softplus(x))``; ``mean`` divides
    by the number of elements.  Elements whose target equals ``ignore_index`` (Caffe's
    ``ignore_label``) have loss and gradient 0 and are not counted by ``mean``.  Focal and
    poly-1 as torchvision's ``sigmoid_focal_loss``:
    ``l = weight * (alpha_t (1 - p_t)**gamma ce + epsilon (1 - p_t))`` with ``ce`` the
    (pos-weighted) cross-entropy, ``p_t = p t + (1 - p)(1 - t)`` and ``alpha_t = alpha t +
    (1 - alpha)(1 - t)`` (1 without ``focal_alpha``).  Elements whose target equals
    ``ignore_index`` (Caffe's ``ignore_label``) have loss and gradient 0 and are not counted
    by ``mean``.
    """
    return _sigmoid_cross_entropy_impl(
        logits, target, weight=weight, pos_weight=pos_weight, reduction=reduction, out=None,
        want_grad=False, focal_gamma=focal_gamma, focal_alpha=focal_alpha,
        poly1_epsilon=poly1_epsilon, ignore_index=ignore_index,
    )[0]


def sigmoid_cross_entropy_grad(logits, target, *, weight=None, pos_weight=None, reduction="mean",
                               n_threads=None, out=None, focal_gamma=0.0, focal_alpha=None,
                               poly1_epsilon=0.0, ignore_index=None):
    """Gradient of :func:`sigmoid_cross_entropy` with respect to the logits."""
    return _sigmoid_cross_entropy_impl(
        logits, target, weight=weight, pos_weight=pos_weight, reduction=reduction, out=out,
        focal_gamma=focal_gamma, focal_alpha=focal_alpha, poly1_epsilon=poly1_epsilon,
        ignore_index=ignore_index,
    )[1]


def sigmoid_cross_entropy_value_and_grad(logits, target, *, weight=None, pos_weight=None,
                                         reduction="mean", n_threads=None, out=None,
                                         focal_gamma=0.0, focal_alpha=None, poly1_epsilon=0.0,
                                         ignore_index=None):
    """``(sigmoid_cross_entropy(...), sigmoid_cross_entropy_grad(...))``."""
    return _sigmoid_cross_entropy_impl(
        logits, target, weight=weight, pos_weight=pos_weight, reduction=reduction, out=out,
        focal_gamma=focal_gamma, focal_alpha=focal_alpha, poly1_epsilon=poly1_epsilon,
        ignore_index=ignore_index,
    )


def _sigmoid_cross_entropy_impl(logits, target, *, weight, pos_weight, reduction, out,
                                want_grad=True, focal_gamma=0.0, focal_alpha=None,
                                poly1_epsilon=0.0, ignore_index=None):
    _check_reduction(reduction)
    dtype = _result_dtype(logits)
    x = np.asarray(logits, dtype=np.float64)
    t = _same_shape_target(target, x.shape)
    w = _elementwise_weight(weight, x.shape)
    pw = _elementwise_weight(pos_weight, x.shape, "pos_weight")
    w = np.ones(x.shape) if w is None else w
    pw = np.ones(x.shape) if pw is None else pw

    with np.errstate(all="ignore"):
        positive_coef = w * pw * t  # multiplies softplus(-x) = -log(sigmoid(x))
        negative_coef = w * (1.0 - t)  # multiplies softplus(x) = -log(1 - sigmoid(x))
        # softplus(+-x) = max(+-x, 0) + log1p(exp(-|x|)): the log1p parts of the two terms
        # are summed with the coefficient w (1 + (pw - 1) t), which does not cancel for
        # targets outside [0, 1]; a term whose coefficient is exactly 0 contributes 0
        # (never 0 * inf = NaN).
        log1p_part = np.log1p(np.exp(-np.abs(x)))
        loss = (w * (1.0 + (pw - 1.0) * t) * log1p_part
                + np.where((x > 0) & (negative_coef != 0), negative_coef * x, 0.0)
                + np.where((x < 0) & (positive_coef != 0), positive_coef * -x, 0.0))
        loss = np.where(np.isnan(x), np.nan, loss)
        grad = negative_coef * _sigmoid(x) - positive_coef * _sigmoid(-x)
        if focal_gamma or focal_alpha is not None or poly1_epsilon:
            loss, grad = _sigmoid_options(x, t, w, loss, grad, float(focal_gamma),
                                          focal_alpha, float(poly1_epsilon))
        kept = np.ones(x.shape, dtype=bool) if ignore_index is None else t != ignore_index
        loss = np.where(kept, loss, 0.0)
        count = int(np.count_nonzero(kept))
        value = _reduce(loss, count, reduction, dtype, x.shape)
        if not want_grad:
            return value, None
        grad = _scale_grad(np.where(kept, grad, 0.0), count, reduction, x.shape)
    return value, _deliver_grad(grad, dtype, x.shape, out)


def _sigmoid_options(x, t, w, ce_w, dce_w, gamma, alpha, epsilon):
    """Focal and poly-1 from the weighted cross-entropy ``ce_w = w ce`` and its derivative.

    p = sigmoid(x), p_t = p t + (1 - p)(1 - t), d p_t / dx = (2 t - 1) p (1 - p);
    focal: alpha_t (1 - p_t)**g ce, derivative
    alpha_t ((1 - p_t)**g ce' - g (1 - p_t)**(g - 1) ce d p_t / dx);
    poly-1: epsilon (1 - p_t), derivative -epsilon d p_t / dx.
    """
    p = _sigmoid(x)
    p_neg = _sigmoid(-x)                # 1 - p without the cancellation of 1 - p for large x
    q = t * p_neg + (1.0 - t) * p       # 1 - p_t, both terms >= 0 for t in [0, 1]
    dpt = (2.0 * t - 1.0) * p * p_neg
    alpha_t = 1.0 if alpha is None else alpha * t + (1.0 - alpha) * (1.0 - t)
    qg = q ** gamma
    qg1 = np.where(q != 0, gamma * q ** (gamma - 1.0), 0.0) if gamma else 0.0
    loss = alpha_t * qg * ce_w + w * epsilon * q
    grad = alpha_t * (qg * dce_w - qg1 * ce_w * dpt) - w * epsilon * dpt
    return loss, grad


# ---------------------------------------------------------------------------------------------
# Hinge
# ---------------------------------------------------------------------------------------------


def _hinge_h(v, squared):
    """h(v) = max(0, v) or its square; NaN stays NaN."""
    positive = np.where(v > 0, v, 0.0)
    h = positive * positive if squared else positive
    return np.where(np.isnan(v), np.nan, h)


def _hinge_dh(v, squared):
    """dh/dv with subgradient 0 at the kink (only strictly positive violations count)."""
    dh = np.where(v > 0, 2.0 * v if squared else 1.0, 0.0)
    return np.where(np.isnan(v), np.nan, dh)


def _is_binary_hinge(scores_shape, target_shape):
    return tuple(target_shape) == tuple(scores_shape) and len(scores_shape) <= 1


def _binary_hinge(scores, target, margin, squared, weight, sample_weight):
    """Element losses and gradient of the sum for binary hinge; also the mean denominator."""
    if weight is not None:
        raise ValueError("weight is per class; use sample_weight for binary hinge")
    x = np.asarray(scores, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if not np.all(np.isin(t, (-1.0, 0.0, 1.0))):
        raise ValueError("binary hinge targets must be in {-1, +1} or {0, 1}")
    t = np.where(t == 0, -1.0, t)
    s = _elementwise_weight(sample_weight, x.shape, "sample_weight")
    denominator = x.size if s is None else _exact_sum(s)
    s = np.ones(x.shape) if s is None else s
    violation = margin - t * x
    loss = s * _hinge_h(violation, squared)
    grad = -s * t * _hinge_dh(violation, squared)
    return loss, grad, denominator, x.shape


def _class_hinge(scores, target, margin, squared, multiclass, weight, sample_weight, axis):
    """Row losses and gradient of their sum (pred layout) for class-score hinge losses."""
    x, axis, row_shape = _class_rows(scores, axis)
    pred_shape = np.shape(scores)
    n_rows, n_classes = x.shape
    rows = np.arange(n_rows)
    class_weight = _class_weight(weight, n_classes)
    row_weight = _row_weight(sample_weight, row_shape)
    target = np.asarray(target)

    if target.shape == tuple(pred_shape):
        if multiclass != "ovr":
            raise ValueError(f"multi-label targets need multiclass='ovr', not {multiclass!r}")
        t01 = _target_rows(target, pred_shape, axis)
        if not np.all(np.isin(t01, (0.0, 1.0))):
            raise ValueError("multi-label hinge targets must be in {0, 1}")
        signs = 2.0 * t01 - 1.0
        labels = None
    else:
        if not _is_integer_target(target) or target.shape != tuple(row_shape):
            raise ValueError(
                f"target has shape {target.shape} but scores of shape {pred_shape} need integer "
                f"labels of shape {tuple(row_shape)} or a target of the scores' shape"
            )
        _check_labels(target, n_classes)
        labels = target.reshape(n_rows).astype(np.int64)
        signs = -np.ones((n_rows, n_classes))
        signs[rows, labels] = 1.0

    grad = np.zeros((n_rows, n_classes))
    if multiclass == "ovr":
        violation = margin - signs * x
        loss = (class_weight * _hinge_h(violation, squared)).sum(axis=1)
        grad = -class_weight * signs * _hinge_dh(violation, squared)
    elif multiclass == "weston_watkins":
        # torch's multi_margin_loss: sum_{c != y} weight_y * h(margin - x_y + x_c) / C
        is_label = signs > 0
        violation = margin - x[rows, labels][:, None] + x
        wy = class_weight[labels][:, None] / n_classes
        loss = np.where(is_label, 0.0, wy * _hinge_h(violation, squared)).sum(axis=1)
        dc = np.where(is_label, 0.0, wy * _hinge_dh(violation, squared))
        grad = dc
        grad[rows, labels] = -dc.sum(axis=1)
    elif multiclass == "crammer_singer":
        # weight_y * h(margin + max_{c != y} x_c - x_y); the gradient goes to the first argmax
        loss = np.zeros(n_rows)
        if n_classes > 1:
            others = np.where(signs > 0, -np.inf, x)
            rival = np.argmax(others, axis=1)  # first argmax (first NaN if any)
            violation = margin + x[rows, rival] - x[rows, labels]
            wy = class_weight[labels]
            loss = wy * _hinge_h(violation, squared)
            d = wy * _hinge_dh(violation, squared)
            grad[rows, rival] += d
            grad[rows, labels] -= d
    else:
        raise ValueError(f"multiclass must be one of {_MULTICLASS}, got {multiclass!r}")

    loss = loss * row_weight
    grad = grad * row_weight[:, None]
    denominator = _exact_sum(row_weight)
    return loss, _rows_to_pred_layout(grad, pred_shape, axis), denominator, row_shape


def hinge(scores, target, *, margin=1.0, squared=False, multiclass="ovr", weight=None,
          sample_weight=None, reduction="mean", axis=-1, n_threads=None):
    """Hinge loss: binary, one-vs-rest, Weston-Watkins (torch's multi_margin_loss) or
    Crammer-Singer; ``mean`` = sum(s_i l_i) / sum(s_i)."""
    return _hinge_impl(
        scores, target, margin=margin, squared=squared, multiclass=multiclass, weight=weight,
        sample_weight=sample_weight, reduction=reduction, axis=axis,
        out=None, want_grad=False,
    )[0]


def hinge_grad(scores, target, *, margin=1.0, squared=False, multiclass="ovr", weight=None,
               sample_weight=None, reduction="mean", axis=-1, n_threads=None, out=None):
    """(Sub)gradient of :func:`hinge` with respect to the scores (0 at a kink)."""
    return _hinge_impl(
        scores, target, margin=margin, squared=squared, multiclass=multiclass, weight=weight,
        sample_weight=sample_weight, reduction=reduction, axis=axis, out=out,
    )[1]


def hinge_value_and_grad(scores, target, *, margin=1.0, squared=False, multiclass="ovr",
                         weight=None, sample_weight=None, reduction="mean", axis=-1,
                         n_threads=None, out=None):
    """``(hinge(...), hinge_grad(...))``."""
    return _hinge_impl(
        scores, target, margin=margin, squared=squared, multiclass=multiclass, weight=weight,
        sample_weight=sample_weight, reduction=reduction, axis=axis, out=out,
    )


def _hinge_impl(scores, target, *, margin, squared, multiclass, weight, sample_weight, reduction,
                axis, out, want_grad=True):
    _check_reduction(reduction)
    if multiclass not in _MULTICLASS:
        raise ValueError(f"multiclass must be one of {_MULTICLASS}, got {multiclass!r}")
    dtype = _result_dtype(scores)
    margin = float(margin)
    pred_shape = np.shape(scores)
    with np.errstate(all="ignore"):
        if _is_binary_hinge(pred_shape, np.shape(target)):
            loss, grad, denominator, out_shape = _binary_hinge(
                scores, target, margin, squared, weight, sample_weight
            )
        else:
            loss, grad, denominator, out_shape = _class_hinge(
                scores, target, margin, squared, multiclass, weight, sample_weight, axis
            )
        value = _reduce(loss, denominator, reduction, dtype, out_shape)
        if not want_grad:
            return value, None
        grad = _scale_grad(grad, denominator, reduction, out_shape)
    return value, _deliver_grad(grad, dtype, pred_shape, out)


# ---------------------------------------------------------------------------------------------
# Mean squared error
# ---------------------------------------------------------------------------------------------


def mse(pred, target, *, weight=None, reduction="mean", n_threads=None):
    """Mean squared error, equal to ``torch.nn.functional.mse_loss``.

    ``l = weight * (x - t)**2``; ``mean`` = sum(l) / sum(weight broadcast to pred's shape), or
    sum(l) / numel without weight.
    """
    return _mse_impl(pred, target, weight=weight, reduction=reduction, out=None,
                     want_grad=False)[0]


def mse_grad(pred, target, *, weight=None, reduction="mean", n_threads=None, out=None):
    """Gradient of :func:`mse` with respect to ``pred``: ``2 * weight * (x - t) / denominator``."""
    return _mse_impl(pred, target, weight=weight, reduction=reduction, out=out)[1]


def mse_value_and_grad(pred, target, *, weight=None, reduction="mean", n_threads=None, out=None):
    """``(mse(...), mse_grad(...))``."""
    return _mse_impl(pred, target, weight=weight, reduction=reduction, out=out)


def _mse_impl(pred, target, *, weight, reduction, out, want_grad=True):
    _check_reduction(reduction)
    dtype = _result_dtype(pred)
    x = np.asarray(pred, dtype=np.float64)
    t = _same_shape_target(target, x.shape)
    w = _elementwise_weight(weight, x.shape)
    denominator = x.size if w is None else _exact_sum(w)
    w = np.ones(x.shape) if w is None else w
    with np.errstate(all="ignore"):
        diff = x - t
        loss = w * diff * diff
        value = _reduce(loss, denominator, reduction, dtype, x.shape)
        if not want_grad:
            return value, None
        grad = _scale_grad(2.0 * w * diff, denominator, reduction, x.shape)
    return value, _deliver_grad(grad, dtype, x.shape, out)
