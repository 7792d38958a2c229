"""Custom objectives for gradient boosting (LightGBM, XGBoost) on the fastloss kernels.

A gradient-boosting library asks a custom objective for the gradient and the
diagonal Hessian of each sample's loss at the current raw scores.  fastloss
computes both in one pass (``softmax_cross_entropy_grad_hess``,
``sigmoid_cross_entropy_grad_hess``, ``mse_grad_hess``); this module reads the
labels and sample weights from the library's data object and puts the result
in the layout the library expects.

- softmax (multiclass): loss ``-s log p_y`` with ``p = softmax(x)``;
  gradient ``s (p - onehot(y))``, Hessian ``s p (1 - p)``.
- logistic (binary, ``y`` in [0, 1]): loss ``s (softplus(x) - y x)``;
  gradient ``s (q - y)``, Hessian ``s q (1 - q)`` with ``q = sigmoid(x)``.
- squared error: loss ``s (x - y)**2``; gradient ``2 s (x - y)``, Hessian ``2 s``.

These are the exact derivatives of the losses above: LightGBM's built-in
multiclass objective scales its Hessian by ``K / (K - 1)``, XGBoost's by 2,
and both libraries' built-in squared error is half of the one here; the
Newton steps differ accordingly (by a constant factor against the
regularisation), the models reach the same quality.  With a custom objective
the libraries start from raw score 0 (LightGBM) or ``base_score``; the
predictions they return are raw scores (apply softmax / sigmoid yourself).

Three ways in:

- Native APIs, ``(preds, data)``: :func:`lightgbm_softmax` (and ``_logistic``,
  ``_squared_error``) for ``lightgbm.train(params={"objective": ...})``;
  :func:`xgboost_softmax` (and ...) for ``xgboost.train(params, dtrain, obj=...)``.
  Labels and sample weights come from the ``Dataset`` / ``DMatrix``.
- scikit-learn APIs, ``(y_true, y_pred, sample_weight=None)``:
  :func:`softmax_objective` (and ...) for ``LGBMClassifier(objective=...)``
  and ``XGBClassifier(objective=...)`` alike.
- Arrays: :func:`softmax_grad_hess` (and ...) with every option of the kernel
  (``label_smoothing``, class ``weight``, ``n_threads``) and an explicit layout.

Layouts of multiclass scores: ``"row_major"``, an ``(n_samples, n_classes)``
array or the same values flattened row by row (XGBoost; LightGBM >= 4 gives
2-D arrays), and ``"class_major"``, the flattened array of LightGBM < 4 that
holds all samples' scores of class 0, then of class 1, ...  (index
``k * n_samples + i``).  Both are handed to the kernel without a copy
(``class_major`` as an ``(n_classes, n_samples)`` view with the class axis 0).
Results have the shape of the scores given.

Example::

    import lightgbm as lgb, fastloss.boosting as flb
    booster = lgb.train({"objective": flb.lightgbm_softmax, "num_class": 10},
                        lgb.Dataset(X, y, weight=w), num_boost_round=100)
    proba = scipy.special.softmax(booster.predict(X_test), axis=1)
"""
from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _api

# (gradient, diagonal Hessian), float32 or float64 arrays of the scores' shape
_GradHess = Tuple[NDArray[np.floating], NDArray[np.floating]]

__all__ = [
    "softmax_grad_hess",
    "logistic_grad_hess",
    "squared_error_grad_hess",
    "softmax_objective",
    "logistic_objective",
    "squared_error_objective",
    "lightgbm_softmax",
    "lightgbm_logistic",
    "lightgbm_squared_error",
    "xgboost_softmax",
    "xgboost_logistic",
    "xgboost_squared_error",
]

_LAYOUTS = ("row_major", "class_major")


# ---------------------------------------------------------------- arrays

def _class_labels(labels):
    """Class labels as int64; the libraries store them as floats."""
    y = np.asarray(labels)
    if y.dtype.kind == "f":
        yi = y.astype(np.int64)
        bad = np.flatnonzero(yi != y)
        if bad.size:
            raise ValueError("labels must be whole class numbers 0, 1, ..., n_classes - 1; "
                             "label %r at position %d is not" % (y.flat[bad[0]], bad[0]))
        return yi
    if y.dtype.kind not in "iu":
        raise TypeError("labels have dtype %s; expected class numbers" % y.dtype)
    return y


def _sample_weight(sample_weight, n):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.size == 0:             # XGBoost: a DMatrix without weights gives []
        return None
    if w.size != n:
        raise ValueError("sample_weight has %d values but there are %d samples" % (w.size, n))
    return w


def softmax_grad_hess(raw_scores: ArrayLike, labels: ArrayLike,
                      sample_weight: Optional[ArrayLike] = None, *, layout: str = "row_major",
                      weight: Optional[ArrayLike] = None, label_smoothing: float = 0.0,
                      n_threads: Optional[int] = None) -> _GradHess:
    """Gradient and diagonal Hessian of the multiclass softmax cross-entropy.

    ``grad = s * (p - onehot(y))`` and ``hess = s * p * (1 - p)`` per sample
    and class (with ``label_smoothing`` / class ``weight`` as in
    :func:`fastloss.softmax_cross_entropy_grad_hess`).

    Parameters
    ----------
    raw_scores : array of float32 or float64
        ``layout="row_major"``: shape ``(n_samples, n_classes)`` or those values
        flattened row by row; ``layout="class_major"``: shape
        ``(n_classes, n_samples)`` or flattened class by class (LightGBM < 4).
    labels : array of shape (n_samples,)
        Class numbers (floats holding whole numbers are accepted).
    sample_weight : array of shape (n_samples,), optional
    layout : {"row_major", "class_major"}
    weight, label_smoothing, n_threads
        As in :func:`fastloss.softmax_cross_entropy`.

    Returns
    -------
    (grad, hess) : arrays of raw_scores' shape and dtype (float64 for other dtypes).
    """
    if layout not in _LAYOUTS:
        raise ValueError("layout must be 'row_major' or 'class_major', not %r" % (layout,))
    y = _class_labels(labels).reshape(-1)
    n = y.size
    x = np.asarray(raw_scores)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    shape = x.shape
    if n == 0 or x.size % n or x.size == 0:
        raise ValueError("raw_scores has %d values, which is not n_classes times the %d labels"
                         % (x.size, n))
    n_classes = x.size // n
    if layout == "row_major":
        x2, axis = x.reshape(n, n_classes), 1
    else:
        x2, axis = x.reshape(n_classes, n), 0
    grad, hess = _api.softmax_cross_entropy_grad_hess(
        x2, y, weight=weight, sample_weight=_sample_weight(sample_weight, n),
        label_smoothing=label_smoothing, axis=axis, n_threads=n_threads)
    return grad.reshape(shape), hess.reshape(shape)


def logistic_grad_hess(raw_scores: ArrayLike, labels: ArrayLike,
                       sample_weight: Optional[ArrayLike] = None, *,
                       n_threads: Optional[int] = None) -> _GradHess:
    """Gradient and Hessian of the binary logistic loss (sigmoid cross-entropy).

    ``grad = s * (sigmoid(x) - y)``, ``hess = s * sigmoid(x) * (1 - sigmoid(x))``
    for labels ``y`` in [0, 1] of raw_scores' size (any shape: several binary
    outputs work too).
    """
    x = _scores(raw_scores)
    y = np.asarray(labels).reshape(x.shape)
    w = _sample_weight(sample_weight, x.shape[0] if x.ndim else 1)
    if w is not None and x.ndim > 1:
        w = w.reshape((-1,) + (1,) * (x.ndim - 1))
    return _api.sigmoid_cross_entropy_grad_hess(x, y, weight=w, n_threads=n_threads)


def squared_error_grad_hess(raw_scores: ArrayLike, labels: ArrayLike,
                            sample_weight: Optional[ArrayLike] = None, *,
                            n_threads: Optional[int] = None) -> _GradHess:
    """Gradient and Hessian of the squared error ``s * (x - y)**2``: ``2 s (x - y)``, ``2 s``."""
    x = _scores(raw_scores)
    y = np.asarray(labels).reshape(x.shape)
    w = _sample_weight(sample_weight, x.shape[0] if x.ndim else 1)
    if w is not None and x.ndim > 1:
        w = w.reshape((-1,) + (1,) * (x.ndim - 1))
    return _api.mse_grad_hess(x, y, weight=w, n_threads=n_threads)


def _scores(raw_scores):
    x = np.asarray(raw_scores)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


# ---------------------------------------------------------------- scikit-learn APIs

def softmax_objective(y_true: ArrayLike, y_pred: ArrayLike,
                      sample_weight: Optional[ArrayLike] = None) -> _GradHess:
    """Multiclass softmax objective for ``LGBMClassifier(objective=...)`` and
    ``XGBClassifier(objective=...)``.

    ``y_pred`` is ``(n_samples, n_classes)`` (LightGBM >= 4, XGBoost); a flat
    array is taken as LightGBM < 4's class-major layout.  LightGBM passes the
    sample weights as the third argument, XGBoost as ``sample_weight=``.
    """
    layout = "row_major" if np.ndim(y_pred) == 2 else "class_major"
    return softmax_grad_hess(y_pred, y_true, sample_weight, layout=layout)


def logistic_objective(y_true: ArrayLike, y_pred: ArrayLike,
                       sample_weight: Optional[ArrayLike] = None) -> _GradHess:
    """Binary logistic objective for ``LGBMClassifier`` / ``XGBClassifier`` (labels 0/1)."""
    return logistic_grad_hess(y_pred, y_true, sample_weight)


def squared_error_objective(y_true: ArrayLike, y_pred: ArrayLike,
                            sample_weight: Optional[ArrayLike] = None) -> _GradHess:
    """Squared-error objective for ``LGBMRegressor`` / ``XGBRegressor``."""
    return squared_error_grad_hess(y_pred, y_true, sample_weight)


# ---------------------------------------------------------------- native APIs

def lightgbm_softmax(preds: ArrayLike, train_data: Any) -> _GradHess:
    """Multiclass softmax objective for ``lightgbm.train(params={"objective": this,
    "num_class": K})``: 2-D scores (LightGBM >= 4) or flat class-major ones
    (LightGBM < 4, its ``fobj`` argument); weights from the Dataset."""
    layout = "row_major" if np.ndim(preds) == 2 else "class_major"
    return softmax_grad_hess(preds, train_data.get_label(), train_data.get_weight(),
                             layout=layout)


def lightgbm_logistic(preds: ArrayLike, train_data: Any) -> _GradHess:
    """Binary logistic objective for ``lightgbm.train`` (labels 0/1)."""
    return logistic_grad_hess(preds, train_data.get_label(), train_data.get_weight())


def lightgbm_squared_error(preds: ArrayLike, train_data: Any) -> _GradHess:
    """Squared-error objective for ``lightgbm.train``."""
    return squared_error_grad_hess(preds, train_data.get_label(), train_data.get_weight())


def xgboost_softmax(predt: ArrayLike, dtrain: Any) -> _GradHess:
    """Multiclass softmax objective for ``xgboost.train({"num_class": K, ...}, dtrain,
    obj=this)``: ``(n_samples, n_classes)`` scores, or flat row-major ones
    (older XGBoost); weights from the DMatrix."""
    return softmax_grad_hess(predt, dtrain.get_label(), dtrain.get_weight(), layout="row_major")


def xgboost_logistic(predt: ArrayLike, dtrain: Any) -> _GradHess:
    """Binary logistic objective for ``xgboost.train(..., obj=this)`` (labels 0/1)."""
    return logistic_grad_hess(predt, dtrain.get_label(), dtrain.get_weight())


def xgboost_squared_error(predt: ArrayLike, dtrain: Any) -> _GradHess:
    """Squared-error objective for ``xgboost.train(..., obj=this)``."""
    return squared_error_grad_hess(predt, dtrain.get_label(), dtrain.get_weight())
