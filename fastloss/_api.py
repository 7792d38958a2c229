"""Public functions: argument checks, defaults, output allocation.

This layer owns every decision about shapes, dtypes and options and hands
the C kernels C-contiguous, aligned, native-endian arrays; the kernels then
compute in one pass (see src_c/fastloss.h).  Errors are raised here, or from
the kernel's label check, before any output buffer is written.

Half precision: predictions may be float16 or bfloat16 (``ml_dtypes.bfloat16``
arrays, or torch tensors of either dtype; ml_dtypes is imported only when a
bfloat16 array is met).  They are handed to the kernels as they are (no float32
copy): each element is computed in float32 and sums in float64; ``mean`` /
``sum`` are Python floats, ``reduction="none"`` losses float32, gradients and
``out=`` in the predictions' dtype (rounded once, to nearest even).  A floating
target of the predictions' half dtype or float32 is used as it is; weights of
elementwise losses are passed as float32.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Literal, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core, _registry

# A reduced loss (a float for "mean" and "sum") or the per-row losses ("none").
_Value = Union[float, NDArray[np.floating]]
# (unions of one-value Literals: at run time, as for the type checker, a typing.Union)
_Reduction = Union[Literal["mean"], Literal["sum"], Literal["none"], Literal["batchmean"],
                   Literal["fullmean"]]
_HingeMode = Union[Literal["ovr"], Literal["weston_watkins"], Literal["crammer_singer"]]

# The common call (default options, C-contiguous float32 / float64 predictions) of every
# form is recognised and computed in C: each public function hands its arguments as given
# to _core's fast path, which passes any other call to the loss's general path
# (``_softmax_form`` etc.: the driver, then the form's result).
_VALUE, _GRAD, _BOTH = _core.FORM_VALUE, _core.FORM_GRAD, _core.FORM_VALUE_AND_GRAD


def _form_result(form, r):
    """A driver's _Out as the public function of `form` returns it."""
    if form == _VALUE:
        return r.value
    if form == _GRAD:
        return r.grad
    return r.value, r.grad

_REDUCTIONS = {"none": 0, "sum": 1, "mean": 2, "batchmean": 3, "fullmean": 4}
_HINGE_MODES = {"ovr": 0, "weston_watkins": 1, "crammer_singer": 2}
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)


# ---------------------------------------------------------------- checks

_F16 = np.dtype(np.float16)


def _bfloat16():
    """ml_dtypes' bfloat16 dtype (imported only when a bfloat16 array is met or asked for)."""
    try:
        import ml_dtypes
    except ImportError:     # pragma: no cover - depends on the environment
        raise TypeError("bfloat16 needs the ml_dtypes package (pip install ml_dtypes)") from None
    return np.dtype(ml_dtypes.bfloat16)


# bfloat16 bit patterns without ml_dtypes: a 2-byte void dtype with a tag in its metadata
# (views, reshapes and np.empty of it keep the tag).  The torch drop-ins hand a bfloat16
# tensor's storage to the kernels as this; it never reaches the user.
_BF16_BITS = np.dtype((np.void, 2), metadata={"fastloss": "bfloat16"})


def _is_bf16(dt):
    """ml_dtypes' bfloat16, or the tagged bit-pattern dtype above."""
    if dt.kind != "V" or dt.itemsize != 2:
        return False
    if dt.name == "bfloat16":
        return True
    md = dt.metadata
    return md is not None and md.get("fastloss") == "bfloat16"


def _bf16_as_f32(t):
    """A bfloat16 array (either dtype) as float32 values (exact: the bits shifted up)."""
    bits = np.ascontiguousarray(t).view(np.uint16)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _is_half(dt):
    """float16 or bfloat16 (the half dtypes the kernels read directly)."""
    return dt == _F16 or _is_bf16(dt)


def _torch_half(x, bits=False):
    """A torch CPU tensor of dtype bfloat16 / float16 as a NumPy view of its storage
    (DLPack cannot carry bfloat16 into NumPy: view it as int16 and tag the dtype), or None.
    bfloat16 is tagged with ml_dtypes' dtype, or with ``bits``, the tagged bit-pattern
    dtype (no ml_dtypes needed: for callers that turn results back into tensors)."""
    if type(x).__module__.split(".")[0] != "torch" or not hasattr(x, "dtype"):
        return None
    name = str(x.dtype)
    if name not in ("torch.bfloat16", "torch.float16"):
        return None
    if getattr(x, "device", None) is not None and x.device.type != "cpu":
        return None
    import torch
    if x.requires_grad:
        x = x.detach()
    if x.is_conj() or x.is_neg():
        x = x.resolve_conj().resolve_neg()
    v = x.view(torch.int16).numpy()
    if name == "torch.float16":
        return v.view(_F16)
    return v.view(_BF16_BITS if bits else _bfloat16())


def _array(x):
    """Any array-like as an ndarray, without a copy where the producer allows one:
    DLPack (PyTorch CPU tensors, JAX CPU arrays, CuPy refuses: not on the CPU),
    the buffer protocol and ``__array__`` (memory maps, array subclasses);
    half-precision torch tensors as a view of their storage."""
    if type(x) is np.ndarray:
        return x
    h = _torch_half(x)
    if h is not None:
        return h
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
    """pred-like input -> C-contiguous aligned native float32/float64/float16/bfloat16
    array (half precision is read directly by the kernels: never upcast here)."""
    arr = x if type(x) is np.ndarray else _array(x)
    dt = arr.dtype
    if dt is not _F32 and dt is not _F64:
        if dt.kind == "f" and dt.itemsize in (2, 4, 8):   # float16, non-native byte order
            dt = dt.newbyteorder("=")
        elif not _is_bf16(dt):
            raise TypeError(
                "%s has dtype %s; fastloss accepts float32, float64, float16 or bfloat16 "
                "(ml_dtypes) (cast with .astype(np.float32))" % (name, arr.dtype))
    flags = arr.flags
    if not (flags.c_contiguous and flags.aligned) or arr.dtype is not dt:
        arr = np.require(arr, dtype=dt, requirements=["C", "A"])
    return arr


def _aux_dtype(x):
    """dtype of the floating side inputs (weights, pos_weight, +-1 targets) and of
    per-element losses: pred's, or float32 for half-precision predictions."""
    return _F32 if _is_half(x.dtype) else x.dtype


def _target_float(t, x, name="target"):
    """A floating target for pred x -> (array, target_dtype code).  Half predictions
    take a target of their own dtype or float32 as it is (code 0 / 1); anything else
    is converted to float32 (float / float64 predictions: to pred's dtype, code 0)."""
    dt = t.dtype
    if not _is_half(x.dtype):
        if _is_bf16(dt):
            t = _bf16_as_f32(t)
        return _as_dtype(t, x.dtype, name), 0
    if dt.kind == "f" and dt.byteorder not in "=|":
        t = t.astype(dt.newbyteorder("="))
        dt = t.dtype
    if dt == x.dtype or (_is_bf16(dt) and _is_bf16(x.dtype)):
        return np.require(t, requirements=["C", "A"]), _core.TARGET_SAME
    if dt == _F32:
        return np.require(t, requirements=["C", "A"]), _core.TARGET_F32
    if _is_bf16(dt):
        return np.require(_bf16_as_f32(t), requirements=["C", "A"]), _core.TARGET_F32
    if dt == _F16:
        return np.require(t.astype(np.float32), requirements=["C", "A"]), _core.TARGET_F32
    return _as_dtype(t, _F32, name), _core.TARGET_F32


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
    pos = np.unravel_index(res.bad_index, target_shape) if target_shape else ()
    pos = tuple(int(p) for p in pos)
    return ValueError("%s has label %d at position %s, outside [0, %d) and not ignore_index"
                      % (name, res.bad_value, pos, n_classes))


def _domain(loss, name):
    return _registry.LOSSES[loss].option_info[name].domain


def _number(value, loss, name):
    """A float option as a float; its domain is checked by the kernel (C), which names the
    field that is outside it (see _check)."""
    if type(value) is float:
        return value
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            pass
    raise ValueError("%s must be %s, not %r" % (name, _domain(loss, name), value))


def _check(res, loss, given, row_shape=None, n_classes=0):
    """Raise the error a kernel's status stands for, named from the caller's arguments:
    ``given`` maps the option names to the values the caller passed."""
    st = res.status
    if st == _core.FL_STATUS_OK:
        return
    if st == _core.FL_STATUS_LABEL:
        raise _label_error(res, row_shape, "target", n_classes)
    if st == _core.FL_STATUS_NOMEM:
        raise MemoryError("fastloss: a scratch allocation failed")
    field = res.bad_field if st == _core.FL_STATUS_ARG else ""
    if field in given:
        raise ValueError("%s must be %s, not %r" % (field, _domain(loss, field), given[field]))
    if field == "n_classes":
        name = _registry.LOSSES[loss].pred
        raise ValueError("%s has shape %s: 0 classes along axis %d"
                         % (name, given["shape"], given["axis"]))
    if field == "focal_target":
        raise ValueError("focal_gamma=%r needs integer labels and label_smoothing=0 (focal "
                         "loss has no accepted definition with %s)"
                         % (given["focal_gamma_given"], "probability targets"
                            if given["probs"] else "label smoothing"))
    raise RuntimeError("fastloss: the kernel rejected its arguments (status %d%s); "
                       "please report this" % (st, ", field " + field if field else ""))


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
    """A float option checked here against its domain (ValueError naming it): for the
    options whose "off" value (None) the kernel receives as a sentinel in its domain."""
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
        return np.require(row, dtype=_aux_dtype(x), requirements=["C", "A"]), 0
    full = np.broadcast_to(w, x.shape)
    return np.require(full, dtype=_aux_dtype(x), requirements=["C", "A"]), row_len


def _stat_out(a, dtype, shape, name):
    """A per-row statistics output of the metrics (fastloss.evaluate allocates it)."""
    if a is None:
        return None
    if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != tuple(shape)
            or not a.flags.c_contiguous or not a.flags.writeable or not a.flags.aligned):
        raise ValueError("%s must be a writable C-contiguous %s array of shape %s; got %s"
                         % (name, dtype, tuple(shape), _describe(a)))
    return a


class _Out:
    """What one driver call produced: ``value`` (a float, or the per-row array for
    reduction="none"), ``grad``, ``hess`` (None when not asked for) and ``result``, the
    kernel's :class:`fastloss._core.Result` (loss_sum, weight_sum, n_rows, n_ignored, n_top1,
    n_topk)."""
    __slots__ = ("value", "grad", "hess", "result")

    def __init__(self, value, grad, hess, result):
        self.value, self.grad, self.hess, self.result = value, grad, hess, result

    @property
    def stats(self):
        """The kernel's statistics as a dict."""
        r = self.result
        return {"loss_sum": r.loss_sum, "weight_sum": r.weight_sum, "n_rows": r.n_rows,
                "n_ignored": r.n_ignored, "n_top1": r.n_top1, "n_topk": r.n_topk}


def _finish(res, reduction, row_loss, out, g, h):
    return _Out(row_loss if reduction == 0 else res.value, _ret(out, g), h, res)


# --------------------------------------------------- softmax cross-entropy

def _softmax(logits, target, *, weight=None, sample_weight=None, ignore_index=-100,
             label_smoothing=0.0, reduction="mean", axis=-1, n_threads=None, z_loss=0.0,
             softcap=None, lse_out=None, focal_gamma=0.0, poly1_epsilon=0.0, out=None,
             hess_out=None, value=True, grad=False, hess=False, top_k=0, argmax_out=None,
             stats_out=None):
    """The driver of every softmax cross-entropy form: arguments -> one kernel request ->
    an :class:`_Out`.  ``value``, ``grad`` and ``hess`` switch the outputs on;
    ``argmax_out`` and ``stats_out`` receive the per-row statistics of the metrics."""
    x = _float_array(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits is 0-d; softmax cross-entropy needs a class axis")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    ax = _axis(axis, x.ndim, "logits")
    shape = x.shape
    n_classes = shape[ax]
    if n_classes == 0:      # before any per-row output is allocated
        raise ValueError("logits has shape %s: 0 classes along axis %d" % (shape, ax))
    row_shape = shape[:ax] + shape[ax + 1:]
    outer = math.prod(shape[:ax])
    inner = math.prod(shape[ax + 1:])
    t = _array(target)
    labels = probs = None
    tdt = 0
    if t.dtype.kind in "iu":
        labels = _labels(t, row_shape, "target", shape, ax)
        ignore = _ignore_index(ignore_index)
    elif t.dtype.kind == "f" or _is_bf16(t.dtype):
        if t.shape != shape:
            raise ValueError(
                "target has shape %s but probability targets must have the logits' shape %s "
                "(or pass integer labels of shape %s)" % (t.shape, shape, row_shape))
        probs, tdt = _target_float(t, x)
        ignore = -100
    else:
        raise TypeError("target has dtype %s; expected integer class labels or floating "
                        "probabilities" % t.dtype)
    name = "softmax_cross_entropy"
    eps = _number(label_smoothing, name, "label_smoothing")
    w = _class_weight(weight, n_classes)
    sw = _row_weight(sample_weight, row_shape)
    zl = _number(z_loss, name, "z_loss")
    cap = 0.0 if softcap is None else _option(softcap, "softcap", lambda v: 0 < v < math.inf,
                                              _domain(name, "softcap"))
    gam = _number(focal_gamma, name, "focal_gamma")
    pe = _number(poly1_epsilon, name, "poly1_epsilon")
    lse = None
    if lse_out is not None:
        if (not isinstance(lse_out, np.ndarray) or lse_out.dtype != _F64
                or lse_out.shape != row_shape or not lse_out.flags.c_contiguous
                or not lse_out.flags.writeable or not lse_out.flags.aligned):
            raise ValueError("lse_out must be a writable C-contiguous float64 array of the row "
                             "shape %s; got %s" % (row_shape, _describe(lse_out)))
        lse = lse_out
    tgt = probs if probs is not None else labels
    g = None
    if grad:
        g = _grad_out(out, x, [("target", tgt), ("weight", w), ("sample_weight", sw),
                               ("lse_out", lse), ("target", _orig(target, tgt)),
                               ("weight", _orig(weight, w)),
                               ("sample_weight", _orig(sample_weight, sw))], "logits")
    if lse is not None:
        for other_name, other in (("logits", x), ("target", tgt), ("weight", w),
                                  ("sample_weight", sw), ("target", _orig(target, tgt)),
                                  ("sample_weight", _orig(sample_weight, sw)),
                                  ("weight", _orig(weight, w)), ("logits", _orig(logits, x))):
            if other is not None and (_core.overlap(lse, other) if other.flags.c_contiguous
                                      else np.may_share_memory(lse, other)):
                raise ValueError("lse_out shares memory with %s" % other_name)
    h = None
    if hess:
        h = _grad_out(hess_out, x, [("target", tgt), ("weight", w), ("sample_weight", sw),
                                    ("out", g), ("target", _orig(target, tgt)),
                                    ("weight", _orig(weight, w)),
                                    ("sample_weight", _orig(sample_weight, sw))],
                      "logits", "hess_out", in_place=False)
    row_loss = np.empty(row_shape, dtype=_aux_dtype(x)) if (value and red == 0) else None
    res = _core.softmax_ce(
        logits=x, labels=labels, probs=probs, class_weight=w, sample_weight=sw, outer=outer,
        n_classes=n_classes, inner=inner, ignore_index=ignore, label_smoothing=eps,
        reduction=red, top_k=top_k, row_loss=row_loss, grad=g, hess=h, n_threads=nt,
        z_loss=zl, softcap=cap, focal_gamma=gam, poly1_epsilon=pe, lse_out=lse,
        target_dtype=tdt, batch_size=_batch_size(row_shape),
        argmax_out=_stat_out(argmax_out, _I64, row_shape, "argmax_out"),
        stats_out=_stat_out(stats_out, _F64, row_shape + (3,), "stats_out"))
    if res.status != _core.FL_STATUS_OK:
        _check(res, name, {"label_smoothing": label_smoothing, "z_loss": z_loss,
                           "focal_gamma": focal_gamma, "poly1_epsilon": poly1_epsilon,
                           "shape": shape, "axis": ax, "focal_gamma_given": focal_gamma,
                           "probs": probs is not None}, row_shape, n_classes)
    return _finish(res, red, row_loss, out, g, h)


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
    logits : array_like of float32, float64, float16 or bfloat16, shape (..., C) or
        (N, C, d1, ...)
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


def _softmax_form(form, logits, target, weight, sample_weight, ignore_index, label_smoothing,
                  reduction, axis, n_threads, z_loss, softcap, lse_out, focal_gamma,
                  poly1_epsilon, out):
    """The general path of a softmax_cross_entropy form (what the fast path does not take)."""
    return _form_result(form, _softmax(
        logits, target, weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction, axis=axis, n_threads=n_threads,
        z_loss=z_loss, softcap=softcap, lse_out=lse_out, focal_gamma=focal_gamma,
        poly1_epsilon=poly1_epsilon, out=out, value=form != _GRAD, grad=form != _VALUE))


def softmax_cross_entropy(logits: ArrayLike, target: ArrayLike, *,
                          weight: Optional[ArrayLike] = None,
                          sample_weight: Optional[ArrayLike] = None,
                          ignore_index: int = -100, label_smoothing: float = 0.0,
                          reduction: _Reduction = "mean", axis: int = -1,
                          n_threads: Optional[int] = None, z_loss: float = 0.0,
                          softcap: Optional[float] = None,
                          lse_out: Optional[NDArray[np.float64]] = None,
                          focal_gamma: float = 0.0, poly1_epsilon: float = 0.0) -> _Value:
    return _core.softmax_ce_fast(_softmax_form, _VALUE, logits, target, weight, sample_weight,
                                 ignore_index, label_smoothing, reduction, axis, n_threads,
                                 z_loss, softcap, lse_out, focal_gamma, poly1_epsilon, None)


def softmax_cross_entropy_grad(logits: ArrayLike, target: ArrayLike, *,
                               weight: Optional[ArrayLike] = None,
                               sample_weight: Optional[ArrayLike] = None,
                               ignore_index: int = -100, label_smoothing: float = 0.0,
                               reduction: _Reduction = "mean", axis: int = -1,
                               n_threads: Optional[int] = None, out: Optional[Any] = None,
                               z_loss: float = 0.0, softcap: Optional[float] = None,
                               lse_out: Optional[NDArray[np.float64]] = None,
                               focal_gamma: float = 0.0, poly1_epsilon: float = 0.0) -> Any:
    return _core.softmax_ce_fast(_softmax_form, _GRAD, logits, target, weight, sample_weight,
                                 ignore_index, label_smoothing, reduction, axis, n_threads,
                                 z_loss, softcap, lse_out, focal_gamma, poly1_epsilon, out)


def softmax_cross_entropy_value_and_grad(logits: ArrayLike, target: ArrayLike, *,
                                         weight: Optional[ArrayLike] = None,
                                         sample_weight: Optional[ArrayLike] = None,
                                         ignore_index: int = -100, label_smoothing: float = 0.0,
                                         reduction: _Reduction = "mean", axis: int = -1,
                                         n_threads: Optional[int] = None,
                                         out: Optional[Any] = None, z_loss: float = 0.0,
                                         softcap: Optional[float] = None,
                                         lse_out: Optional[NDArray[np.float64]] = None,
                                         focal_gamma: float = 0.0,
                                         poly1_epsilon: float = 0.0) -> Tuple[_Value, Any]:
    return _core.softmax_ce_fast(_softmax_form, _BOTH, logits, target, weight, sample_weight,
                                 ignore_index, label_smoothing, reduction, axis, n_threads,
                                 z_loss, softcap, lse_out, focal_gamma, poly1_epsilon, out)


softmax_cross_entropy.__doc__ = _SOFTMAX_DOC.format(
    summary="Softmax cross-entropy.", out_doc="",
    returns="float for 'mean'/'sum'; for 'none' an ndarray of the row shape in logits' dtype "
            "(float32 for float16 / bfloat16 logits).")
softmax_cross_entropy_grad.__doc__ = _SOFTMAX_DOC.format(
    summary="Gradient of softmax cross-entropy with respect to the logits.", out_doc=_OUT_DOC,
    returns="ndarray of logits' shape and dtype (for 'none': the gradient of the sum).")
softmax_cross_entropy_value_and_grad.__doc__ = _SOFTMAX_DOC.format(
    summary="Softmax cross-entropy and its gradient in one fused pass.", out_doc=_OUT_DOC,
    returns="(loss, grad) as returned by the two functions above.")


# --------------------------------------------------- sigmoid cross-entropy

def _sigmoid(logits, target, *, weight=None, pos_weight=None, reduction="mean",
             n_threads=None, focal_gamma=0.0, focal_alpha=None, poly1_epsilon=0.0,
             ignore_index=None, out=None, hess_out=None, value=True, grad=False, hess=False,
             top_k=0, metrics_out=None):
    """The driver of every sigmoid cross-entropy form (``top_k`` is accepted and unused:
    an elementwise loss counts no hits).  ``metrics_out``: the evaluation statistics of
    the same pass (a request of ``fastloss.metrics.SigmoidMetrics.kernel_request``)."""
    x = _float_array(logits, "logits")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    ign = _ignore_value(ignore_index, x.dtype)
    t = _array(target)
    if t.shape != x.shape:
        raise ValueError("target has shape %s but logits has shape %s; they must be equal"
                         % (t.shape, x.shape))
    t, tdt = _target_float(t, x)
    n_rows, row_len = _elem_view(x)
    w, w_stride = _elem_weight(weight, x)
    pw = None
    if pos_weight is not None:
        p = np.asarray(pos_weight)
        if p.dtype.kind not in "biuf":      # also when there is nothing to weigh
            raise TypeError("pos_weight has dtype %s; expected real numbers" % p.dtype)
        try:
            if np.broadcast_shapes(p.shape, (row_len,)) != (row_len,):
                raise ValueError
        except ValueError:
            raise ValueError("pos_weight has shape %s but must broadcast to the last axis of "
                             "logits, (%d,)" % (p.shape, row_len)) from None
        pw = None if x.size == 0 else _as_dtype(np.broadcast_to(p, (row_len,)), _aux_dtype(x),
                                                 "pos_weight")
    name = "sigmoid_cross_entropy"
    gam = _number(focal_gamma, name, "focal_gamma")
    alpha = -1.0 if focal_alpha is None else _option(
        focal_alpha, "focal_alpha", lambda v: v >= 0, _domain(name, "focal_alpha"))
    pe = _number(poly1_epsilon, name, "poly1_epsilon")
    g = None
    if grad:
        g = _grad_out(out, x, [("target", t), ("weight", w), ("pos_weight", pw),
                               ("target", _orig(target, t)), ("weight", _orig(weight, w)),
                               ("pos_weight", _orig(pos_weight, pw))], "logits")
    h = None
    if hess:
        h = _grad_out(hess_out, x, [("target", t), ("weight", w), ("pos_weight", pw), ("out", g),
                                    ("target", _orig(target, t)), ("weight", _orig(weight, w)),
                                    ("pos_weight", _orig(pos_weight, pw))],
                      "logits", "hess_out", in_place=False)
    loss = np.empty(x.shape, dtype=_aux_dtype(x)) if (value and red == 0) else None
    res = _core.sigmoid_ce(logits=x, target=t, weight=w, weight_row_stride=w_stride,
                           pos_weight=pw, n_rows=n_rows, row_len=row_len, reduction=red,
                           loss=loss, grad=g, hess=h, n_threads=nt, focal_gamma=gam,
                           focal_alpha=alpha, poly1_epsilon=pe, target_dtype=tdt,
                           batch_size=_batch_size(x.shape), has_ignore=ign is not None,
                           ignore_value=0.0 if ign is None else ign, metrics=metrics_out)
    if res.status != _core.FL_STATUS_OK:
        _check(res, name, {"focal_gamma": focal_gamma, "focal_alpha": focal_alpha,
                           "poly1_epsilon": poly1_epsilon})
    return _finish(res, red, loss, out, g, h)


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
    logits : array_like of float32, float64, float16 or bfloat16, any shape (0-d included)
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


def _sigmoid_form(form, logits, target, weight, pos_weight, reduction, n_threads, focal_gamma,
                  focal_alpha, poly1_epsilon, ignore_index, out):
    """The general path of a sigmoid_cross_entropy form."""
    return _form_result(form, _sigmoid(
        logits, target, weight=weight, pos_weight=pos_weight, reduction=reduction,
        n_threads=n_threads, focal_gamma=focal_gamma, focal_alpha=focal_alpha,
        poly1_epsilon=poly1_epsilon, ignore_index=ignore_index, out=out, value=form != _GRAD,
        grad=form != _VALUE))


def sigmoid_cross_entropy(logits: ArrayLike, target: ArrayLike, *,
                          weight: Optional[ArrayLike] = None,
                          pos_weight: Optional[ArrayLike] = None, reduction: _Reduction = "mean",
                          n_threads: Optional[int] = None, focal_gamma: float = 0.0,
                          focal_alpha: Optional[float] = None,
                          poly1_epsilon: float = 0.0,
                          ignore_index: Optional[float] = None) -> _Value:
    return _core.sigmoid_ce_fast(_sigmoid_form, _VALUE, logits, target, weight, pos_weight,
                                 reduction, n_threads, focal_gamma, focal_alpha, poly1_epsilon,
                                 ignore_index, None)


def sigmoid_cross_entropy_grad(logits: ArrayLike, target: ArrayLike, *,
                               weight: Optional[ArrayLike] = None,
                               pos_weight: Optional[ArrayLike] = None,
                               reduction: _Reduction = "mean", n_threads: Optional[int] = None,
                               out: Optional[Any] = None, focal_gamma: float = 0.0,
                               focal_alpha: Optional[float] = None,
                               poly1_epsilon: float = 0.0,
                               ignore_index: Optional[float] = None) -> Any:
    return _core.sigmoid_ce_fast(_sigmoid_form, _GRAD, logits, target, weight, pos_weight,
                                 reduction, n_threads, focal_gamma, focal_alpha, poly1_epsilon,
                                 ignore_index, out)


def sigmoid_cross_entropy_value_and_grad(logits: ArrayLike, target: ArrayLike, *,
                                         weight: Optional[ArrayLike] = None,
                                         pos_weight: Optional[ArrayLike] = None,
                                         reduction: _Reduction = "mean",
                                         n_threads: Optional[int] = None,
                                         out: Optional[Any] = None, focal_gamma: float = 0.0,
                                         focal_alpha: Optional[float] = None,
                                         poly1_epsilon: float = 0.0,
                                         ignore_index: Optional[float] = None
                                         ) -> Tuple[_Value, Any]:
    return _core.sigmoid_ce_fast(_sigmoid_form, _BOTH, logits, target, weight, pos_weight,
                                 reduction, n_threads, focal_gamma, focal_alpha, poly1_epsilon,
                                 ignore_index, out)


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

def _hinge(scores, target, *, margin=1.0, squared=False, multiclass="ovr", weight=None,
           sample_weight=None, reduction="mean", axis=-1, n_threads=None, out=None, value=True,
           grad=False, top_k=0, argmax_out=None):
    """The driver of every hinge form (``top_k`` counts hits for integer labels only)."""
    x = _float_array(scores, "scores")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    if multiclass not in _HINGE_MODES:
        raise ValueError("multiclass must be 'ovr', 'weston_watkins' or 'crammer_singer', not %r"
                         % (multiclass,))
    mode = _HINGE_MODES[multiclass]
    margin = _margin(margin)
    t = _array(target)
    if _is_bf16(t.dtype):
        t = _bf16_as_f32(t)         # +-1 / {0, 1} values: exact
    if t.dtype.kind not in "biuf":
        raise TypeError("target has dtype %s; expected class labels or +-1 / {0, 1} targets"
                        % t.dtype)
    labels = pm = None
    tdt = 0
    if t.shape == x.shape and x.ndim <= 1:
        # binary hinge: one score per example, OVR with one class
        if weight is not None:
            raise ValueError("weight is per class and binary hinge has no classes; use "
                             "sample_weight (shape %s) to weight examples" % (x.shape,))
        pm, tdt = _pm_target(t, x, binary=True)
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
        if n_classes == 0:  # before any per-row output is allocated
            raise ValueError("scores has shape %s: 0 classes along axis %d" % (x.shape, ax))
        row_shape = x.shape[:ax] + x.shape[ax + 1:]
        outer = math.prod(x.shape[:ax])
        inner = math.prod(x.shape[ax + 1:])
        if t.shape == x.shape:
            if mode != 0:
                raise ValueError("a target of the scores' shape %s is a multi-label {0, 1} "
                                 "target, which only multiclass='ovr' takes; %r needs integer "
                                 "labels of shape %s" % (x.shape, multiclass, row_shape))
            pm, tdt = _pm_target(t, x, binary=False)
        elif t.dtype.kind in "iu":
            labels = _labels(t, row_shape, "target", x.shape, ax)
        else:
            raise ValueError("target has shape %s and dtype %s; hinge on scores of shape %s "
                             "takes integer labels of shape %s or a {0, 1} target of shape %s"
                             % (t.shape, t.dtype, x.shape, row_shape, x.shape))
        w = _class_weight(weight, n_classes)
    sw = _row_weight(sample_weight, row_shape)
    g = None
    if grad:
        g = _grad_out(out, x, [("target", pm if pm is not None else labels), ("weight", w),
                               ("sample_weight", sw),
                               ("target", _orig(target, pm if pm is not None else labels)),
                               ("weight", _orig(weight, w)),
                               ("sample_weight", _orig(sample_weight, sw))], "scores")
    row_loss = np.empty(row_shape, dtype=_aux_dtype(x)) if (value and red == 0) else None
    res = _core.hinge(scores=x, labels=labels, target=pm, class_weight=w, sample_weight=sw,
                      outer=outer, n_classes=n_classes, inner=inner, margin=margin,
                      squared=bool(squared), mode=mode, reduction=red, row_loss=row_loss,
                      grad=g, n_threads=nt, top_k=top_k if labels is not None else 0,
                      target_dtype=tdt, batch_size=_batch_size(row_shape),
                      argmax_out=_stat_out(argmax_out, _I64, row_shape, "argmax_out"))
    if res.status != _core.FL_STATUS_OK:
        _check(res, "hinge", {"shape": x.shape, "axis": ax}, row_shape, n_classes)
    return _finish(res, red, row_loss, out, g, None)


def _pm_target(t, x, binary):
    """{-1, +1} or {0, 1} targets as +-1 values -> (array, target_dtype code): of the
    scores' dtype, or for half scores the scores' own half dtype (as given) or float32."""
    dtype = _aux_dtype(x)
    vals = np.unique(t)
    if np.isin(vals, (-1, 1)).all():
        if t.dtype == x.dtype and _is_half(x.dtype):
            return np.require(t, requirements=["C", "A"]), _core.TARGET_SAME
        return np.require(t, dtype=dtype, requirements=["C", "A"]), (
            _core.TARGET_F32 if _is_half(x.dtype) else 0)
    if np.isin(vals, (0, 1)).all():
        return np.require(2 * np.asarray(t, dtype=dtype) - 1, requirements=["C", "A"]), (
            _core.TARGET_F32 if _is_half(x.dtype) else 0)
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
    scores : array_like of float32, float64, float16 or bfloat16
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


def hinge(scores: ArrayLike, target: ArrayLike, *, margin: float = 1.0, squared: bool = False,
          multiclass: _HingeMode = "ovr", weight: Optional[ArrayLike] = None,
          sample_weight: Optional[ArrayLike] = None, reduction: _Reduction = "mean",
          axis: int = -1, n_threads: Optional[int] = None) -> _Value:
    return _hinge(scores, target, margin=margin, squared=squared, multiclass=multiclass,
                  weight=weight, sample_weight=sample_weight, reduction=reduction, axis=axis,
                  n_threads=n_threads).value


def hinge_grad(scores: ArrayLike, target: ArrayLike, *, margin: float = 1.0,
               squared: bool = False, multiclass: _HingeMode = "ovr",
               weight: Optional[ArrayLike] = None, sample_weight: Optional[ArrayLike] = None,
               reduction: _Reduction = "mean", axis: int = -1, n_threads: Optional[int] = None,
               out: Optional[Any] = None) -> Any:
    return _hinge(scores, target, margin=margin, squared=squared, multiclass=multiclass,
                  weight=weight, sample_weight=sample_weight, reduction=reduction, axis=axis,
                  n_threads=n_threads, out=out, value=False, grad=True).grad


def hinge_value_and_grad(scores: ArrayLike, target: ArrayLike, *, margin: float = 1.0,
                         squared: bool = False, multiclass: _HingeMode = "ovr",
                         weight: Optional[ArrayLike] = None,
                         sample_weight: Optional[ArrayLike] = None,
                         reduction: _Reduction = "mean", axis: int = -1,
                         n_threads: Optional[int] = None,
                         out: Optional[Any] = None) -> Tuple[_Value, Any]:
    r = _hinge(scores, target, margin=margin, squared=squared, multiclass=multiclass,
               weight=weight, sample_weight=sample_weight, reduction=reduction, axis=axis,
               n_threads=n_threads, out=out, value=True, grad=True)
    return r.value, r.grad


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

def _mse(pred, target, *, weight=None, reduction="mean", n_threads=None, out=None,
         hess_out=None, value=True, grad=False, hess=False, top_k=0):
    """The driver of every squared-error form (``top_k`` is accepted and unused)."""
    x = _float_array(pred, "pred")
    red = _reduction(reduction)
    nt = _threads(n_threads)
    t = _array(target)
    if t.shape != x.shape:
        raise ValueError("target has shape %s but pred has shape %s; they must be equal"
                         % (t.shape, x.shape))
    t, tdt = _target_float(t, x)
    n_rows, row_len = _elem_view(x)
    w, w_stride = _elem_weight(weight, x)
    g = None
    if grad:
        g = _grad_out(out, x, [("target", t), ("weight", w), ("target", _orig(target, t)),
                               ("weight", _orig(weight, w))], "pred")
    h = None
    if hess:
        h = _grad_out(hess_out, x, [("target", t), ("weight", w), ("out", g),
                                    ("target", _orig(target, t)), ("weight", _orig(weight, w))],
                      "pred", "hess_out", in_place=False)
    loss = np.empty(x.shape, dtype=_aux_dtype(x)) if (value and red == 0) else None
    res = _core.mse(pred=x, target=t, weight=w, weight_row_stride=w_stride, n_rows=n_rows,
                    row_len=row_len, reduction=red, loss=loss, grad=g, hess=h, n_threads=nt,
                    target_dtype=tdt, batch_size=_batch_size(x.shape))
    if res.status != _core.FL_STATUS_OK:
        _check(res, "mse", {})
    return _finish(res, red, loss, out, g, h)


_MSE_DOC = """{summary}

    ``l = weight * (pred - target)**2``, equal to
    ``torch.nn.functional.mse_loss``; ``reduction="mean"`` is
    ``sum(w * l) / sum(w)`` with ``weight`` broadcast to pred's shape
    (``sum(l) / size`` without weights).  Sums accumulate in float64.

    Parameters
    ----------
    pred : array_like of float32, float64, float16 or bfloat16, any shape
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


def _mse_form(form, pred, target, weight, reduction, n_threads, out):
    """The general path of an mse form."""
    return _form_result(form, _mse(pred, target, weight=weight, reduction=reduction,
                                   n_threads=n_threads, out=out, value=form != _GRAD,
                                   grad=form != _VALUE))


def mse(pred: ArrayLike, target: ArrayLike, *, weight: Optional[ArrayLike] = None,
        reduction: _Reduction = "mean", n_threads: Optional[int] = None) -> _Value:
    return _core.mse_fast(_mse_form, _VALUE, pred, target, weight, reduction, n_threads, None)


def mse_grad(pred: ArrayLike, target: ArrayLike, *, weight: Optional[ArrayLike] = None,
             reduction: _Reduction = "mean", n_threads: Optional[int] = None,
             out: Optional[Any] = None) -> Any:
    return _core.mse_fast(_mse_form, _GRAD, pred, target, weight, reduction, n_threads, out)


def mse_value_and_grad(pred: ArrayLike, target: ArrayLike, *,
                       weight: Optional[ArrayLike] = None, reduction: _Reduction = "mean",
                       n_threads: Optional[int] = None,
                       out: Optional[Any] = None) -> Tuple[_Value, Any]:
    return _core.mse_fast(_mse_form, _BOTH, pred, target, weight, reduction, n_threads, out)


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


def softmax_cross_entropy_grad_hess(logits: ArrayLike, target: ArrayLike, *,
                                    weight: Optional[ArrayLike] = None,
                                    sample_weight: Optional[ArrayLike] = None,
                                    ignore_index: int = -100, label_smoothing: float = 0.0,
                                    axis: int = -1, n_threads: Optional[int] = None,
                                    out: Optional[Any] = None,
                                    hess_out: Optional[Any] = None) -> Tuple[Any, Any]:
    r = _softmax(logits, target, weight=weight, sample_weight=sample_weight,
                 ignore_index=ignore_index, label_smoothing=label_smoothing, reduction="none",
                 axis=axis, n_threads=n_threads, out=out, hess_out=hess_out, value=False,
                 grad=True, hess=True)
    return r.grad, r.hess


def sigmoid_cross_entropy_grad_hess(logits: ArrayLike, target: ArrayLike, *,
                                    weight: Optional[ArrayLike] = None,
                                    pos_weight: Optional[ArrayLike] = None,
                                    n_threads: Optional[int] = None, out: Optional[Any] = None,
                                    hess_out: Optional[Any] = None,
                                    ignore_index: Optional[float] = None) -> Tuple[Any, Any]:
    r = _sigmoid(logits, target, weight=weight, pos_weight=pos_weight, reduction="none",
                 n_threads=n_threads, out=out, hess_out=hess_out, value=False, grad=True,
                 hess=True, ignore_index=ignore_index)
    return r.grad, r.hess


def mse_grad_hess(pred: ArrayLike, target: ArrayLike, *, weight: Optional[ArrayLike] = None,
                  n_threads: Optional[int] = None, out: Optional[Any] = None,
                  hess_out: Optional[Any] = None) -> Tuple[Any, Any]:
    r = _mse(pred, target, weight=weight, reduction="none", n_threads=n_threads, out=out,
             hess_out=hess_out, value=False, grad=True, hess=True)
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
