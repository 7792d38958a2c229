"""Public functions: argument checks, defaults, output allocation.

This layer owns every decision about shapes, dtypes and options and hands
the C kernels C-contiguous, aligned, native-endian arrays; the kernels then
compute in one pass (see src_c/fastloss.h).  Errors are raised here, or from
the kernel's label check, before any output buffer is written.
"""
import math
import operator

import numpy as np

from . import _core

_REDUCTIONS = {"none": 0, "sum": 1, "mean": 2, "batchmean": 3, "fullmean": 4}
_HINGE_MODES = {"ovr": 0, "weston_watkins": 1, "crammer_singer": 2}
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)


# ---------------------------------------------------------------- checks

def _array(x):
    """Any array-like as an ndarray, without a copy where the producer allows one:
    DLPack (PyTorch CPU tensors, JAX CPU arrays, CuPy refuses: not on the CPU),
    the buffer protocol and ``__array__`` (memory maps, array subclasses)."""
    if type(x) is np.ndarray:
        return x
    if hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray):
        try:
            return np.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError):
            pass        # e.g. a device array: __array__ below says what is wrong
    return np.asarray(x)


def _ret(out, g):
    """The gradient as returned: the caller's own `out` object when one was given."""
    return g if out is None or type(out) is np.ndarray else out


def _float_array(x, name):
    """pred-like input -> C-contiguous aligned native float32/float64 array."""
    arr = x if type(x) is np.ndarray else _array(x)
    dt = arr.dtype
    if dt is not _F32 and dt is not _F64:
        if dt.kind == "f" and dt.itemsize in (4, 8):      # non-native byte order
            dt = dt.newbyteorder("=")
        else:
            raise TypeError(
                "%s has dtype %s; fastloss accepts float32 or float64 (cast with "
                ".astype(np.float32) or .astype(np.float64))" % (name, arr.dtype))
    flags = arr.flags
    if not (flags.c_contiguous and flags.aligned) or arr.dtype is not dt:
        arr = np.require(arr, dtype=dt, requirements=["C", "A"])
    return arr


def _as_dtype(x, dtype, name, shape=None):
    """Array of `dtype`, C-contiguous and aligned, with an optional shape check."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError("%s has dtype %s; expected real numbers" % (name, arr.dtype))
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError("%s has shape %s but %s is expected" % (name, arr.shape, tuple(shape)))
    return np.require(arr, dtype=dtype, requirements=["C", "A"])


def _int(value):
    """operator.index without bool: True is not an index, a count or an axis."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a bool is not an integer here")
    return operator.index(value)


def _ignore_index(ignore_index):
    """ignore_index as an int64-range int (a bool is refused)."""
    try:
        ignore = _int(ignore_index)
    except TypeError:
        raise ValueError("ignore_index must be an integer, not %r" % (ignore_index,)) from None
    if not -2**63 <= ignore < 2**63:
        raise ValueError("ignore_index must fit in int64 (labels are int64), not %d" % ignore)
    return ignore


def _softmax_options(z_loss, softcap, focal_gamma, poly1_epsilon):
    """The softmax options beyond PyTorch's, checked: (z_loss, softcap or 0, gamma, eps)."""
    if (z_loss == 0.0 and softcap is None and focal_gamma == 0.0 and poly1_epsilon == 0.0
            and type(z_loss) is float and type(focal_gamma) is float
            and type(poly1_epsilon) is float):
        return 0.0, 0.0, 0.0, 0.0           # the defaults: nothing to check
    return (_option(z_loss, "z_loss", _finite_nonneg, "a finite number >= 0"),
            0.0 if softcap is None else _option(softcap, "softcap",
                                                lambda v: 0 < v < math.inf,
                                                "None or a finite number > 0"),
            _option(focal_gamma, "focal_gamma", _finite_nonneg, "a finite number >= 0"),
            _option(poly1_epsilon, "poly1_epsilon", math.isfinite, "a finite number"))


def _sigmoid_options(focal_gamma, focal_alpha, poly1_epsilon):
    """The sigmoid options beyond PyTorch's, checked: (gamma, alpha or -1, eps)."""
    if (focal_gamma == 0.0 and focal_alpha is None and poly1_epsilon == 0.0
            and type(focal_gamma) is float and type(poly1_epsilon) is float):
        return 0.0, -1.0, 0.0               # the defaults: nothing to check
    return (_option(focal_gamma, "focal_gamma", _finite_nonneg, "a finite number >= 0"),
            -1.0 if focal_alpha is None else _option(
                focal_alpha, "focal_alpha", lambda v: 0 <= v <= 1, "None or a number in [0, 1]"),
            _option(poly1_epsilon, "poly1_epsilon", math.isfinite, "a finite number"))


def _finite_nonneg(v):
    return 0 <= v < math.inf


def _margin(margin):
    if isinstance(margin, (bool, np.bool_)) or not isinstance(margin, (int, float, np.integer,
                                                                          np.floating)):
        raise ValueError("margin must be a real number, not %r" % (margin,))
    try:
        m = float(margin)
    except OverflowError:
        raise ValueError("margin must be a real number a float can hold, not %r"
                         % (margin,)) from None
    if m != m:
        raise ValueError("margin must be a real number, not %r" % (margin,))
    return m


def _reduction(reduction):
    try:
        return _REDUCTIONS[reduction]
    except (KeyError, TypeError):
        raise ValueError("reduction must be 'none', 'sum', 'mean', 'batchmean' or 'fullmean', "
                         "not %r" % (reduction,)) from None


def _batch_size(shape):
    """BATCHMEAN's divisor N: the first axis of the per-row (class losses) or
    per-element (elementwise losses) shape; 1 for a single row or 0-d pred."""
    return shape[0] if shape else 1


def _ignore_value(ignore_index, dtype):
    """sigmoid_cross_entropy's ignore_index as a float of pred's dtype (None: no mask)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(
            ignore_index, (int, float, np.integer, np.floating)):
        raise ValueError("ignore_index must be None or a real number (e.g. -1 or 255), not %r"
                         % (ignore_index,))
    try:
        v = float(ignore_index)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or float(dtype.type(v)) != v or v != ignore_index:
        raise ValueError("ignore_index=%r must be a finite number that %s holds exactly"
                         % (ignore_index, dtype))
    return v


def _threads(n_threads):
    if n_threads is None:
        return 0
    try:
        n = _int(n_threads)
    except TypeError:
        raise ValueError("n_threads must be None or a positive integer, not %r"
                         % (n_threads,)) from None
    if n < 1:
        raise ValueError("n_threads must be None or a positive integer, not %r" % (n_threads,))
    return min(n, 1 << 16)      # the C layer caps it further; results never depend on it


def _axis(axis, ndim, name):
    try:
        ax = _int(axis)
    except TypeError:
        raise ValueError("axis must be an integer, not %r" % (axis,)) from None
    if not -ndim <= ax < ndim:
        raise ValueError("axis %d is out of range for %s with %d dimension(s)" % (ax, name, ndim))
    return ax % ndim


def _grad_out(out, x, inputs, name, out_name="out", in_place=True):
    """Validate `out` (or allocate it) for a gradient of x's shape and dtype."""
    if out is None:
        return np.empty(x.shape, dtype=x.dtype)
    if not isinstance(out, np.ndarray):
        # a tensor / array of another library, written through a zero-copy view
        try:
            view = _array(out)
        except Exception:
            view = None
        if not isinstance(view, np.ndarray) or view.base is None and view is not out:
            raise ValueError("%s must be a NumPy array or an object NumPy can view without a "
                             "copy (DLPack, buffer protocol), not %s"
                             % (out_name, type(out).__name__))
        out = view
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError("%s has shape %s and dtype %s but the gradient of %s needs shape %s "
                         "and dtype %s" % (out_name, out.shape, out.dtype, name, x.shape, x.dtype))
    if not out.flags.c_contiguous or not out.flags.aligned:
        raise ValueError("%s must be C-contiguous and aligned" % out_name)
    if not out.flags.writeable:
        raise ValueError("%s is read-only" % out_name)
    if out.dtype.byteorder not in "=|":
        raise ValueError("%s must be in native byte order" % out_name)
    # every array here is C-contiguous, so byte ranges decide overlap
    if not in_place and _core.overlap(out, x):
        raise ValueError("%s may not share memory with %s (the gradient still needs it)"
                         % (out_name, name))
    if _core.overlap(out, x) == 1:
        raise ValueError("%s overlaps %s without being the same array; pass %s=%s "
                         "for an in-place result or a separate buffer"
                         % (out_name, name, out_name, name))
    for other_name, other in inputs:
        if other is None:
            continue
        # converted inputs are C-contiguous (byte ranges decide); a caller's original
        # that was converted may be any view: ask NumPy
        if (_core.overlap(out, other) if other.flags.c_contiguous
                else np.may_share_memory(out, other)):
            raise ValueError("%s shares memory with %s; %s"
                             % (out_name, other_name,
                                ("only %s=%s is allowed in place" % (out_name, name)) if in_place
                                else "%s must be a buffer of its own" % out_name))
    return out


def _orig(user, converted):
    """The caller's array when fastloss converted it to another buffer, else None."""
    if user is None or converted is None:
        return None
    a = user if type(user) is np.ndarray else np.asarray(user)
    return None if a is converted or a.size == 0 else a


def _labels(target, row_shape, name, x_shape, ax):
    t = _array(target)
    if t.shape != row_shape:
        raise ValueError(
            "%s has shape %s but integer labels for logits of shape %s must have shape %s "
            "(the class axis %d removed)" % (name, t.shape, x_shape, row_shape, ax))
    if t.dtype == np.uint64 and t.size and t.max() > np.uint64(2**63 - 1):
        pos = tuple(int(p) for p in np.unravel_index(int(np.argmax(t)), t.shape))
        raise ValueError("%s has label %d at position %s, outside [0, %d)"
                         % (name, int(t[pos]), pos, x_shape[ax]))
    if t.dtype is _I64 and t.flags.c_contiguous and t.flags.aligned:
        return t
    return np.require(t, dtype=np.int64, requirements=["C", "A"])


def _label_error(res, target_shape, name, n_classes):
    pos = np.unravel_index(res[7], target_shape) if target_shape else ()
    pos = tuple(int(p) for p in pos)
    return ValueError("%s has label %d at position %s, outside [0, %d) and not ignore_index"
                      % (name, res[8], pos, n_classes))


def _check_status(res):
    if res[0] == _core.FL_STATUS_NOMEM:
        raise MemoryError("fastloss: a scratch allocation failed")
    if res[0] != _core.FL_STATUS_OK:
        raise RuntimeError("fastloss: the kernel rejected its arguments (status %d); "
                           "please report this" % res[0])


def _class_weight(weight, n_classes, name="weight"):
    if weight is None:
        return None
    w = np.asarray(weight)
    if w.shape != (n_classes,):
        raise ValueError("%s has shape %s but must have one value per class, shape (%d,)"
                         % (name, w.shape, n_classes))
    return _as_dtype(w, np.float64, name)


def _row_weight(sample_weight, row_shape, name="sample_weight"):
    if sample_weight is None:
        return None
    s = np.asarray(sample_weight)
    if s.shape != row_shape:
        raise ValueError("%s has shape %s but must have the row shape %s"
                         % (name, s.shape, row_shape))
    return _as_dtype(s, np.float64, name)


def _option(value, name, ok, expected):
    """A float option checked against its domain (ValueError naming it)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("%s must be %s, not %r" % (name, expected, value))
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("%s must be %s, not %r" % (name, expected, value)) from None
    if not (v == v and ok(v)):
        raise ValueError("%s must be %s, not %r" % (name, expected, value))
    return v


def _describe(a):
    if isinstance(a, np.ndarray):
        return "an array of shape %s and dtype %s" % (a.shape, a.dtype)
    return type(a).__name__


def _elem_view(x):
    """(n_rows, row_len) of an elementwise array (a 0-d array is one element)."""
    if x.ndim == 0:
        return 1, 1
    row_len = x.shape[-1]
    return (x.size // row_len if row_len else int(np.prod(x.shape[:-1]))), row_len


def _elem_weight(weight, x, name="weight"):
    """Weight broadcast to x's shape as (array, row_stride): a full array
    (stride row_len) or one row that repeats (stride 0)."""
    if weight is None:
        return None, 0
    w = np.asarray(weight)
    if x.size == 0:         # nothing to weigh: check the shape, allocate nothing
        if w.dtype.kind not in "biuf":
            raise TypeError("%s has dtype %s; expected real numbers" % (name, w.dtype))
        try:
            ok = np.broadcast_shapes(w.shape, x.shape) == x.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("%s has shape %s, which does not broadcast to the shape %s of "
                             "the predictions" % (name, w.shape, x.shape))
        return None, 0
    if w.dtype.kind not in "biuf":
        raise TypeError("%s has dtype %s; expected real numbers" % (name, w.dtype))
    try:
        if np.broadcast_shapes(w.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise ValueError("%s has shape %s, which does not broadcast to the shape %s of the "
                         "predictions" % (name, w.shape, x.shape)) from None
    row_len = x.shape[-1] if x.ndim else 1
    core = w.shape
    while core and core[0] == 1:
        core = core[1:]
    if len(core) <= 1:       # a scalar or one row: repeat it
        row = np.broadcast_to(w.reshape(core), (row_len,))
        return np.require(row, dtype=x.dtype, requirements=["C", "A"]), 0
    full = np.broadcast_to(w, x.shape)
    return np.require(full, dtype=x.dtype, requirements=["C", "A"]), row_len


def _value(res, reduction, row_loss):
    _check_status(res)
    if reduction == 0:
        return row_loss
    return float(res[1])


class _Out:
    """What one kernel call produced: the value, gradient, Hessian and the
    kernel's statistics (loss_sum, weight_sum, n_rows, n_ignored, n_top1, n_topk)."""
    __slots__ = ("value", "grad", "hess", "stats")

    def __init__(self, value, grad, hess, res, n_rows):
        self.value, self.grad, self.hess = value, grad, hess
        self.stats = {"loss_sum": res[2], "weight_sum": res[3], "n_rows": n_rows,
                      "n_ignored": res[4], "n_top1": res[5], "n_topk": res[6]}


# --------------------------------------------------- softmax cross-entropy

def _softmax(logits, target, weight, sample_weight, ignore_index, label_smoothing, reduction,
             axis, n_threads, want_value, want_grad, out, top_k=0, want_hess=False,
             hess_out=None, full=False, z_loss=0.0, softcap=None, lse_out=None,
             focal_gamma=0.0, poly1_epsilon=0.0):
    x = _float_array(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits is 0-d; softmax cross-entropy needs a class axis")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    ax = _axis(axis, x.ndim, "logits")
    shape = x.shape
    n_classes = shape[ax]
    if n_classes == 0:
        raise ValueError("logits has shape %s: 0 classes along axis %d" % (shape, ax))
    row_shape = shape[:ax] + shape[ax + 1:]
    outer = math.prod(shape[:ax])
    inner = math.prod(shape[ax + 1:])
    t = _array(target)
    labels = probs = None
    if t.dtype.kind in "iu":
        labels = _labels(t, row_shape, "target", shape, ax)
        ignore = _ignore_index(ignore_index)
    elif t.dtype.kind == "f":
        if t.shape != shape:
            raise ValueError(
                "target has shape %s but probability targets must have the logits' shape %s "
                "(or pass integer labels of shape %s)" % (t.shape, shape, row_shape))
        probs = np.require(t, dtype=x.dtype, requirements=["C", "A"])
        ignore = -100
    else:
        raise TypeError("target has dtype %s; expected integer class labels or floating "
                        "probabilities" % t.dtype)
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("label_smoothing must be a number in [0, 1], not %r"
                         % (label_smoothing,)) from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError("label_smoothing must be in [0, 1], not %r" % (label_smoothing,))
    w = _class_weight(weight, n_classes)
    sw = _row_weight(sample_weight, row_shape)
    zl, cap, gam, pe = _softmax_options(z_loss, softcap, focal_gamma, poly1_epsilon)
    if gam != 0.0 and (probs is not None or eps != 0.0):
        raise ValueError("focal_gamma=%r needs integer labels and label_smoothing=0 (focal "
                         "loss has no accepted definition with %s)"
                         % (focal_gamma, "probability targets" if probs is not None
                            else "label smoothing"))
    lse = None
    if lse_out is not None:
        if (not isinstance(lse_out, np.ndarray) or lse_out.dtype != _F64
                or lse_out.shape != row_shape or not lse_out.flags.c_contiguous
                or not lse_out.flags.writeable or not lse_out.flags.aligned):
            raise ValueError("lse_out must be a writable C-contiguous float64 array of the row "
                             "shape %s; got %s" % (row_shape, _describe(lse_out)))
        lse = lse_out
    g = None
    if want_grad:
        g = _grad_out(out, x, [("target", probs if probs is not None else labels),
                               ("weight", w), ("sample_weight", sw), ("lse_out", lse),
                               ("target", _orig(target, probs if probs is not None else labels)),
                               ("weight", _orig(weight, w)),
                               ("sample_weight", _orig(sample_weight, sw))], "logits")
    if lse is not None:
        tgt = probs if probs is not None else labels
        for other_name, other in (("logits", x), ("target", tgt), ("weight", w),
                                  ("sample_weight", sw), ("target", _orig(target, tgt)),
                                  ("sample_weight", _orig(sample_weight, sw)),
                                  ("weight", _orig(weight, w)), ("logits", _orig(logits, x))):
            if other is not None and (_core.overlap(lse, other) if other.flags.c_contiguous
                                      else np.may_share_memory(lse, other)):
                raise ValueError("lse_out shares memory with %s" % other_name)
    h = None
    if want_hess:
        h = _grad_out(hess_out, x, [("target", probs if probs is not None else labels),
                                    ("weight", w), ("sample_weight", sw), ("out", g),
                                    ("target", _orig(target, probs if probs is not None
                                                     else labels)),
                                    ("weight", _orig(weight, w)),
                                    ("sample_weight", _orig(sample_weight, sw))],
                      "logits", "hess_out", in_place=False)
    row_loss = np.empty(row_shape, dtype=x.dtype) if (want_value and red == 0) else None
    res = _core.softmax_ce(x.itemsize == 8, x, labels, probs, w, sw, outer, n_classes, inner,
                           ignore, eps, red, top_k, row_loss, g, h, nt, zl, cap, gam, pe, lse,
                           _batch_size(row_shape))
    if res[0] == _core.FL_STATUS_LABEL:
        raise _label_error(res, row_shape, "target", n_classes)
    value = _value(res, red, row_loss)
    if full:
        return _Out(value, _ret(out, g), h, res, outer * inner)
    return value, _ret(out, g)


_SOFTMAX_DOC = """{summary}

    Integer class labels or probability targets; equal to
    ``torch.nn.functional.cross_entropy`` for every combination of ``weight``,
    ``ignore_index``, ``label_smoothing`` and ``reduction`` that torch accepts.

    With ``a_k = weight_k * ((1 - eps) * t_k + eps / C)`` (``t`` the one-hot
    label or the probability row) the loss of row i is

    .. math:: l_i = s_i \\sum_k a_k (\\log\\sum_j e^{{x_j}} - x_k)

    and ``reduction="mean"`` returns ``sum_i l_i / sum_i s_i weight[y_i]`` over
    non-ignored rows (integer labels) or ``sum_i l_i / sum_i s_i``
    (probabilities).  Sums are accumulated in float64 whatever the input dtype
    and do not depend on the number of threads.

    Parameters
    ----------
    logits : array_like of float32 or float64, shape (..., C) or (N, C, d1, ...)
        Unnormalised scores; the class axis is ``axis``.
    target : array_like
        Integer labels of logits' shape without the class axis, or floating
        probabilities of logits' shape.
    weight : array_like, shape (C,), optional
        Class weights.
    sample_weight : array_like, optional
        One weight per row (logits' shape without the class axis).
    ignore_index : int, default -100
        Rows with this label contribute nothing (integer labels only).
    label_smoothing : float in [0, 1], default 0
    reduction : {{"mean", "sum", "none", "batchmean", "fullmean"}}
    axis : int, default -1
        The class axis; ``axis=1`` takes PyTorch's layout without a copy.
    n_threads : int, optional
        Threads for this call (default: OpenMP's, OMP_NUM_THREADS).{out_doc}
    z_loss : finite float >= 0, default 0
        Adds ``z_loss * lse**2`` per row (PaLM / ST-MoE), ``lse`` the row's
        log-sum-exp of the (capped) logits, weighted like the row.
    softcap : finite float > 0, optional
        Replaces the logits by ``softcap * tanh(x / softcap)`` first (Gemma 2);
        the gradient is with respect to the raw logits; no capped copy is made.
    lse_out : ndarray of float64, row shape, optional
        Receives each row's log-sum-exp (of the capped logits).
    focal_gamma : float >= 0, default 0
        Focal loss (Lin et al. 2017): row loss ``-(1 - p_y)**gamma log p_y``
        (integer labels, no label smoothing).
    poly1_epsilon : float, default 0
        Poly-1 (Leng et al. 2022): adds ``epsilon * (1 - p_t)`` per row, ``p_t =
        sum_c t_c p_c`` with the smoothed or probability target.

    Returns
    -------
    {returns}

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> round(fastloss.softmax_cross_entropy(logits, np.array([0, 2])), 6)
    0.175456
"""

_OUT_DOC = """
    out : ndarray, optional
        C-contiguous writable array of logits' shape and dtype that receives
        the gradient; ``out=logits`` overwrites the logits in place."""


def softmax_cross_entropy(logits, target, *, weight=None, sample_weight=None, ignore_index=-100,
                          label_smoothing=0.0, reduction="mean", axis=-1, n_threads=None,
                          z_loss=0.0, softcap=None, lse_out=None, focal_gamma=0.0,
                          poly1_epsilon=0.0):
    return _softmax(logits, target, weight, sample_weight, ignore_index, label_smoothing,
                    reduction, axis, n_threads, True, False, None, z_loss=z_loss,
                    softcap=softcap, lse_out=lse_out, focal_gamma=focal_gamma,
                    poly1_epsilon=poly1_epsilon)[0]


def softmax_cross_entropy_grad(logits, target, *, weight=None, sample_weight=None,
                               ignore_index=-100, label_smoothing=0.0, reduction="mean", axis=-1,
                               n_threads=None, out=None, z_loss=0.0, softcap=None, lse_out=None,
                               focal_gamma=0.0, poly1_epsilon=0.0):
    return _softmax(logits, target, weight, sample_weight, ignore_index, label_smoothing,
                    reduction, axis, n_threads, False, True, out, z_loss=z_loss,
                    softcap=softcap, lse_out=lse_out, focal_gamma=focal_gamma,
                    poly1_epsilon=poly1_epsilon)[1]


def softmax_cross_entropy_value_and_grad(logits, target, *, weight=None, sample_weight=None,
                                         ignore_index=-100, label_smoothing=0.0,
                                         reduction="mean", axis=-1, n_threads=None, out=None,
                                         z_loss=0.0, softcap=None, lse_out=None,
                                         focal_gamma=0.0, poly1_epsilon=0.0):
    return _softmax(logits, target, weight, sample_weight, ignore_index, label_smoothing,
                    reduction, axis, n_threads, True, True, out, z_loss=z_loss,
                    softcap=softcap, lse_out=lse_out, focal_gamma=focal_gamma,
                    poly1_epsilon=poly1_epsilon)


softmax_cross_entropy.__doc__ = _SOFTMAX_DOC.format(
    summary="Softmax cross-entropy.", out_doc="",
    returns="float for 'mean'/'sum'; for 'none' an ndarray of the row shape in logits' dtype.")
softmax_cross_entropy_grad.__doc__ = _SOFTMAX_DOC.format(
    summary="Gradient of softmax cross-entropy with respect to the logits.", out_doc=_OUT_DOC,
    returns="ndarray of logits' shape and dtype (for 'none': the gradient of the sum).")
softmax_cross_entropy_value_and_grad.__doc__ = _SOFTMAX_DOC.format(
    summary="Softmax cross-entropy and its gradient in one fused pass.", out_doc=_OUT_DOC,
    returns="(loss, grad) as returned by the two functions above.")


# --------------------------------------------------- sigmoid cross-entropy

def _sigmoid(logits, target, weight, pos_weight, reduction, n_threads, want_value, want_grad,
             out, want_hess=False, hess_out=None, full=False, focal_gamma=0.0, focal_alpha=None,
             poly1_epsilon=0.0, ignore_index=None):
    x = _float_array(logits, "logits")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    ign = _ignore_value(ignore_index, x.dtype)
    t = _array(target)
    if t.shape != x.shape:
        raise ValueError("target has shape %s but logits has shape %s; they must be equal"
                         % (t.shape, x.shape))
    t = _as_dtype(t, x.dtype, "target")
    n_rows, row_len = _elem_view(x)
    w, w_stride = _elem_weight(weight, x)
    pw = None
    if pos_weight is not None:
        p = np.asarray(pos_weight)
        try:
            if np.broadcast_shapes(p.shape, (row_len,)) != (row_len,):
                raise ValueError
        except ValueError:
            raise ValueError("pos_weight has shape %s but must broadcast to the last axis of "
                             "logits, (%d,)" % (p.shape, row_len)) from None
        pw = None if x.size == 0 else _as_dtype(np.broadcast_to(p, (row_len,)), x.dtype,
                                                 "pos_weight")
    gam, alpha, pe = _sigmoid_options(focal_gamma, focal_alpha, poly1_epsilon)
    g = None
    if want_grad:
        g = _grad_out(out, x, [("target", t), ("weight", w), ("pos_weight", pw),
                               ("target", _orig(target, t)), ("weight", _orig(weight, w)),
                               ("pos_weight", _orig(pos_weight, pw))], "logits")
    h = None
    if want_hess:
        h = _grad_out(hess_out, x, [("target", t), ("weight", w), ("pos_weight", pw), ("out", g),
                                    ("target", _orig(target, t)), ("weight", _orig(weight, w)),
                                    ("pos_weight", _orig(pos_weight, pw))],
                      "logits", "hess_out", in_place=False)
    loss = np.empty(x.shape, dtype=x.dtype) if (want_value and red == 0) else None
    res = _core.sigmoid_ce(x.itemsize == 8, x, t, w, w_stride, pw, n_rows, row_len, red, loss,
                           g, h, nt, gam, alpha, pe, _batch_size(x.shape), ign)
    if full:
        return _Out(_value(res, red, loss), _ret(out, g), h, res, x.size)
    return _value(res, red, loss), _ret(out, g)


_SIGMOID_DOC = """{summary}

    Binary and multi-label logistic loss, equal to
    ``torch.nn.functional.binary_cross_entropy_with_logits``:

    .. math:: l = w \\, (p_c\\, t \\log(1 + e^{{-x}}) + (1 - t) \\log(1 + e^{{x}}))

    computed as softplus with ``log1p(exp(-|x|))`` (tiny losses of confident
    predictions are kept), with the limits at ``x = +-inf``.
    ``reduction="mean"`` divides by the number of elements, weights or not
    (torch's rule); ``"batchmean"`` by the size of logits' first axis (Caffe's
    BATCH_SIZE) and ``"fullmean"`` by the number of elements, ignored ones
    included (Caffe's FULL).  Sums are accumulated in float64.

    Parameters
    ----------
    logits : array_like of float32 or float64, any shape (0-d included)
    target : array_like of logits' shape, values in [0, 1]
    weight : array_like, optional
        Broadcasts to logits' shape.
    pos_weight : array_like, optional
        Weight of positive examples; broadcasts to the last axis.
    reduction : {{"mean", "sum", "none", "batchmean", "fullmean"}}
    n_threads : int, optional{out_doc}
    focal_gamma, focal_alpha : float, optional
        Focal loss as torchvision's ``sigmoid_focal_loss`` defines it:
        ``alpha_t * (1 - p_t)**gamma * bce`` with ``p_t = p t + (1 - p)(1 - t)``
        and ``alpha_t = alpha t + (1 - alpha)(1 - t)`` (no alpha weighting when
        ``focal_alpha`` is None).
    poly1_epsilon : float, default 0
        Poly-1: adds ``epsilon * (1 - p_t)`` per element.
    ignore_index : float, optional
        Caffe's ``ignore_label``: target elements equal to it (e.g. -1 or 255;
        the target may then be an integer array) contribute 0 to the loss and
        the gradient, and ``reduction="mean"`` divides by the number of
        elements not ignored.

    Returns
    -------
    {returns}

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> float(fastloss.sigmoid_cross_entropy(np.array([33.3]), np.array([1.0]), reduction="sum"))
    3.45138774437421e-15
"""


def sigmoid_cross_entropy(logits, target, *, weight=None, pos_weight=None, reduction="mean",
                          n_threads=None, focal_gamma=0.0, focal_alpha=None, poly1_epsilon=0.0,
                          ignore_index=None):
    return _sigmoid(logits, target, weight, pos_weight, reduction, n_threads, True, False,
                    None, focal_gamma=focal_gamma, focal_alpha=focal_alpha,
                    poly1_epsilon=poly1_epsilon, ignore_index=ignore_index)[0]


def sigmoid_cross_entropy_grad(logits, target, *, weight=None, pos_weight=None, reduction="mean",
                               n_threads=None, out=None, focal_gamma=0.0, focal_alpha=None,
                               poly1_epsilon=0.0, ignore_index=None):
    return _sigmoid(logits, target, weight, pos_weight, reduction, n_threads, False, True, out,
                    focal_gamma=focal_gamma, focal_alpha=focal_alpha,
                    poly1_epsilon=poly1_epsilon, ignore_index=ignore_index)[1]


def sigmoid_cross_entropy_value_and_grad(logits, target, *, weight=None, pos_weight=None,
                                         reduction="mean", n_threads=None, out=None,
                                         focal_gamma=0.0, focal_alpha=None, poly1_epsilon=0.0,
                                         ignore_index=None):
    return _sigmoid(logits, target, weight, pos_weight, reduction, n_threads, True, True, out,
                    focal_gamma=focal_gamma, focal_alpha=focal_alpha,
                    poly1_epsilon=poly1_epsilon, ignore_index=ignore_index)


sigmoid_cross_entropy.__doc__ = _SIGMOID_DOC.format(
    summary="Sigmoid cross-entropy (binary and multi-label).", out_doc="",
    returns="float for 'mean'/'sum'; for 'none' an ndarray of logits' shape.")
sigmoid_cross_entropy_grad.__doc__ = _SIGMOID_DOC.format(
    summary="Gradient of sigmoid cross-entropy with respect to the logits.",
    out_doc=_OUT_DOC, returns="ndarray of logits' shape and dtype.")
sigmoid_cross_entropy_value_and_grad.__doc__ = _SIGMOID_DOC.format(
    summary="Sigmoid cross-entropy and its gradient in one fused pass.", out_doc=_OUT_DOC,
    returns="(loss, grad).")


# ----------------------------------------------------------------- hinge

def _hinge(scores, target, margin, squared, multiclass, weight, sample_weight, reduction, axis,
           n_threads, want_value, want_grad, out, full=False, top_k=0):
    x = _float_array(scores, "scores")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    if multiclass not in _HINGE_MODES:
        raise ValueError("multiclass must be 'ovr', 'weston_watkins' or 'crammer_singer', not %r"
                         % (multiclass,))
    mode = _HINGE_MODES[multiclass]
    margin = _margin(margin)
    t = _array(target)
    if t.dtype.kind not in "biuf":
        raise TypeError("target has dtype %s; expected class labels or +-1 / {0, 1} targets"
                        % t.dtype)
    labels = pm = None
    if t.shape == x.shape and x.ndim <= 1:
        # binary hinge: one score per example, OVR with one class
        if weight is not None:
            raise ValueError("weight is per class and binary hinge has no classes; use "
                             "sample_weight (shape %s) to weight examples" % (x.shape,))
        pm = _pm_target(t, x.dtype, binary=True)
        outer, n_classes, inner = x.size, 1, 1
        row_shape = x.shape
        w = None
        mode = 0
    else:
        if x.ndim == 0:
            raise ValueError("scores is 0-d; binary hinge needs a target of the same shape, "
                             "got shape %s" % (t.shape,))
        ax = _axis(axis, x.ndim, "scores")
        n_classes = x.shape[ax]
        if n_classes == 0:
            raise ValueError("scores has shape %s: 0 classes along axis %d" % (x.shape, ax))
        row_shape = x.shape[:ax] + x.shape[ax + 1:]
        outer = math.prod(x.shape[:ax])
        inner = math.prod(x.shape[ax + 1:])
        if t.shape == x.shape:
            if mode != 0:
                raise ValueError("a target of the scores' shape %s is a multi-label {0, 1} "
                                 "target, which only multiclass='ovr' takes; %r needs integer "
                                 "labels of shape %s" % (x.shape, multiclass, row_shape))
            pm = _pm_target(t, x.dtype, binary=False)
        elif t.dtype.kind in "iu":
            labels = _labels(t, row_shape, "target", x.shape, ax)
        else:
            raise ValueError("target has shape %s and dtype %s; hinge on scores of shape %s "
                             "takes integer labels of shape %s or a {0, 1} target of shape %s"
                             % (t.shape, t.dtype, x.shape, row_shape, x.shape))
        w = _class_weight(weight, n_classes)
    sw = _row_weight(sample_weight, row_shape)
    g = None
    if want_grad:
        g = _grad_out(out, x, [("target", pm if pm is not None else labels), ("weight", w),
                               ("sample_weight", sw),
                               ("target", _orig(target, pm if pm is not None else labels)),
                               ("weight", _orig(weight, w)),
                               ("sample_weight", _orig(sample_weight, sw))], "scores")
    row_loss = np.empty(row_shape, dtype=x.dtype) if (want_value and red == 0) else None
    res = _core.hinge(x.itemsize == 8, x, labels, pm, w, sw, outer, n_classes, inner, margin,
                      bool(squared), mode, red, row_loss, g, nt, top_k if labels is not None else 0,
                      _batch_size(row_shape))
    if res[0] == _core.FL_STATUS_LABEL:
        raise _label_error(res, row_shape, "target", n_classes)
    if full:
        return _Out(_value(res, red, row_loss), _ret(out, g), None, res, outer * inner)
    return _value(res, red, row_loss), _ret(out, g)


def _pm_target(t, dtype, binary):
    """{-1, +1} or {0, 1} targets as +-1 values of the scores' dtype."""
    vals = np.unique(t)
    if np.isin(vals, (-1, 1)).all():
        return np.require(t, dtype=dtype, requirements=["C", "A"])
    if np.isin(vals, (0, 1)).all():
        return np.require(2 * np.asarray(t, dtype=dtype) - 1, requirements=["C", "A"])
    bad = vals[~np.isin(vals, (-1, 0, 1))]
    what = "binary hinge targets" if binary else "a multi-label hinge target"
    if bad.size:
        raise ValueError("%s must be in {-1, +1} or {0, 1}; target has value %r"
                         % (what, bad[0].item()))
    present = [str(int(v)) for v in vals]
    raise ValueError("%s must be all in {-1, +1} or all in {0, 1}; target mixes %s"
                     % (what, ", ".join(present[:-1]) + " and " + present[-1]))


_HINGE_DOC = """{summary}

    Binary hinge ``max(0, margin - t x)`` for 1-D (or 0-d) scores with a
    target of the same shape in {{-1, +1}} or {{0, 1}}; multi-class hinge for
    class scores with integer labels of the scores' shape without the class
    axis (a 0-d label for 1-D scores):

    - ``"ovr"``: ``sum_c weight_c h(margin - t_c x_c)``, t = +1 for the label
      (or where a {{0, 1}} multi-label target is 1), -1 elsewhere (Caffe).
    - ``"weston_watkins"``: ``weight_y / C sum_{{c != y}} h(margin - x_y + x_c)``,
      equal to ``torch.nn.functional.multi_margin_loss`` (p=2 when squared).
    - ``"crammer_singer"``: ``weight_y h(margin + max_{{c != y}} x_c - x_y)``
      (``optax.losses.multiclass_hinge_loss`` at margin 1).

    ``h(v) = max(0, v)``, squared when ``squared=True``.  ``mean`` is
    ``sum_i s_i l_i / sum_i s_i`` with sample weights ``s_i`` (the number of
    rows without them).  At a kink the subgradient is 0.

    Parameters
    ----------
    scores : array_like of float32 or float64
    target : array_like
    margin : float, default 1.0
    squared : bool, default False
    multiclass : {{"ovr", "weston_watkins", "crammer_singer"}}
    weight : array_like, shape (C,), optional
        Class weights (not for binary hinge).
    sample_weight : array_like, optional
        One weight per row (per element for binary hinge).
    reduction : {{"mean", "sum", "none", "batchmean", "fullmean"}}
    axis : int, default -1
    n_threads : int, optional{out_doc}

    Returns
    -------
    {returns}

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> float(fastloss.hinge(np.array([0.5, -2.0]), np.array([1, -1])))
    0.25
"""


def hinge(scores, target, *, margin=1.0, squared=False, multiclass="ovr", weight=None,
          sample_weight=None, reduction="mean", axis=-1, n_threads=None):
    return _hinge(scores, target, margin, squared, multiclass, weight, sample_weight, reduction,
                  axis, n_threads, True, False, None)[0]


def hinge_grad(scores, target, *, margin=1.0, squared=False, multiclass="ovr", weight=None,
               sample_weight=None, reduction="mean", axis=-1, n_threads=None, out=None):
    return _hinge(scores, target, margin, squared, multiclass, weight, sample_weight, reduction,
                  axis, n_threads, False, True, out)[1]


def hinge_value_and_grad(scores, target, *, margin=1.0, squared=False, multiclass="ovr",
                         weight=None, sample_weight=None, reduction="mean", axis=-1,
                         n_threads=None, out=None):
    return _hinge(scores, target, margin, squared, multiclass, weight, sample_weight, reduction,
                  axis, n_threads, True, True, out)


hinge.__doc__ = _HINGE_DOC.format(
    summary="Hinge loss: binary, one-vs-all, Weston-Watkins or Crammer-Singer.", out_doc="",
    returns="float for 'mean'/'sum'; for 'none' an ndarray of the row shape.")
hinge_grad.__doc__ = _HINGE_DOC.format(
    summary="(Sub)gradient of the hinge loss with respect to the scores.", out_doc=_OUT_DOC,
    returns="ndarray of scores' shape and dtype.")
hinge_value_and_grad.__doc__ = _HINGE_DOC.format(
    summary="Hinge loss and its (sub)gradient in one fused pass.", out_doc=_OUT_DOC,
    returns="(loss, grad).")


# -------------------------------------------------------------------- mse

def _mse(pred, target, weight, reduction, n_threads, want_value, want_grad, out,
         want_hess=False, hess_out=None, full=False):
    x = _float_array(pred, "pred")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    t = _array(target)
    if t.shape != x.shape:
        raise ValueError("target has shape %s but pred has shape %s; they must be equal"
                         % (t.shape, x.shape))
    t = _as_dtype(t, x.dtype, "target")
    n_rows, row_len = _elem_view(x)
    w, w_stride = _elem_weight(weight, x)
    g = None
    if want_grad:
        g = _grad_out(out, x, [("target", t), ("weight", w), ("target", _orig(target, t)),
                               ("weight", _orig(weight, w))], "pred")
    h = None
    if want_hess:
        h = _grad_out(hess_out, x, [("target", t), ("weight", w), ("out", g),
                                    ("target", _orig(target, t)), ("weight", _orig(weight, w))],
                      "pred", "hess_out", in_place=False)
    loss = np.empty(x.shape, dtype=x.dtype) if (want_value and red == 0) else None
    res = _core.mse(x.itemsize == 8, x, t, w, w_stride, n_rows, row_len, red, loss, g, h, nt,
                    _batch_size(x.shape))
    if full:
        return _Out(_value(res, red, loss), _ret(out, g), h, res, x.size)
    return _value(res, red, loss), _ret(out, g)


_MSE_DOC = """{summary}

    ``l = weight * (pred - target)**2``, equal to
    ``torch.nn.functional.mse_loss``; ``reduction="mean"`` is
    ``sum(w * l) / sum(w)`` with ``weight`` broadcast to pred's shape
    (``sum(l) / size`` without weights).  Sums accumulate in float64.

    Parameters
    ----------
    pred : array_like of float32 or float64, any shape
    target : array_like of pred's shape
    weight : array_like, optional
        Broadcasts to pred's shape.
    reduction : {{"mean", "sum", "none", "batchmean", "fullmean"}}
    n_threads : int, optional{out_doc}

    Returns
    -------
    {returns}

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> float(fastloss.mse(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
"""


def mse(pred, target, *, weight=None, reduction="mean", n_threads=None):
    return _mse(pred, target, weight, reduction, n_threads, True, False, None)[0]


def mse_grad(pred, target, *, weight=None, reduction="mean", n_threads=None, out=None):
    return _mse(pred, target, weight, reduction, n_threads, False, True, out)[1]


def mse_value_and_grad(pred, target, *, weight=None, reduction="mean", n_threads=None, out=None):
    return _mse(pred, target, weight, reduction, n_threads, True, True, out)


mse.__doc__ = _MSE_DOC.format(summary="Mean squared error.", out_doc="",
                              returns="float for 'mean'/'sum'; for 'none' an ndarray.")
mse_grad.__doc__ = _MSE_DOC.format(summary="Gradient of the squared error.", out_doc=_OUT_DOC,
                                   returns="ndarray of pred's shape and dtype.")
mse_value_and_grad.__doc__ = _MSE_DOC.format(
    summary="Squared error and its gradient in one fused pass.", out_doc=_OUT_DOC,
    returns="(loss, grad).")


# ------------------------------------------------- gradient boosting: grad + Hessian

_GRAD_HESS_DOC = """Per-sample gradient and diagonal Hessian of {what} in one pass.

    For gradient boosting: no reduction (the derivatives of the SUM of the
    per-sample losses), sample weights included.  The diagonal Hessian is
    {hess}.

    Parameters
    ----------
    {params}
    n_threads : int, optional
    out, hess_out : ndarray, optional
        C-contiguous writable arrays of pred's shape and dtype for the results.

    Returns
    -------
    (grad, hess) : ndarrays of pred's shape and dtype.
"""


def softmax_cross_entropy_grad_hess(logits, target, *, weight=None, sample_weight=None,
                                    ignore_index=-100, label_smoothing=0.0, axis=-1,
                                    n_threads=None, out=None, hess_out=None):
    r = _softmax(logits, target, weight, sample_weight, ignore_index, label_smoothing, "none",
                 axis, n_threads, False, True, out, want_hess=True, hess_out=hess_out, full=True)
    return r.grad, r.hess


def sigmoid_cross_entropy_grad_hess(logits, target, *, weight=None, pos_weight=None,
                                    n_threads=None, out=None, hess_out=None, ignore_index=None):
    r = _sigmoid(logits, target, weight, pos_weight, "none", n_threads, False, True, out,
                 want_hess=True, hess_out=hess_out, full=True, ignore_index=ignore_index)
    return r.grad, r.hess


def mse_grad_hess(pred, target, *, weight=None, n_threads=None, out=None, hess_out=None):
    r = _mse(pred, target, weight, "none", n_threads, False, True, out, want_hess=True,
             hess_out=hess_out, full=True)
    return r.grad, r.hess


softmax_cross_entropy_grad_hess.__doc__ = _GRAD_HESS_DOC.format(
    what="softmax cross-entropy",
    hess="``s_i * A * p * (1 - p)`` with ``A = sum_k a_k`` (``s_i * p * (1 - p)`` for plain labels)",
    params="logits, target, weight, sample_weight, ignore_index, label_smoothing, axis :\n"
           "        as in softmax_cross_entropy.")
sigmoid_cross_entropy_grad_hess.__doc__ = _GRAD_HESS_DOC.format(
    what="sigmoid cross-entropy",
    hess="``w * (pw * t + 1 - t) * s * (1 - s)`` with ``s = sigmoid(x)``",
    params="logits, target, weight, pos_weight, ignore_index : as in sigmoid_cross_entropy.")
mse_grad_hess.__doc__ = _GRAD_HESS_DOC.format(
    what="the squared error", hess="``2 * w``",
    params="pred, target, weight : as in mse.")
