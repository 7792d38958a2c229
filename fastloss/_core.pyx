# cython: language_level=3
"""Thin bridge from NumPy arrays to the C kernels of fastloss.h.

The Python layer (_api.py) has already checked dtypes and shapes and made
every array C-contiguous, aligned and of the kernel's dtype; here we only
take pointers, release the GIL and call C.

One request in: each kernel is called with keyword arguments named as the
fields of its C argument struct (the float type follows the dtype of the
first array).  One named result out: a :class:`Result` (the kernel's
fl_result and its status).  With ``status == FL_STATUS_ARG`` the result's
``bad_field`` names the argument C found outside its domain (``FIELDS``),
so the Python layer formats the message without repeating C's checks.

The fast path (``*_fast`` below) is the common call with default options,
any form, done in C: it hands any other call to the general path the caller
gives it (which also reports every error).
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uint16_t, uint64_t
from libc.string cimport memset
from libc.math cimport signbit, fabs, isfinite, exp
from cpython.float cimport PyFloat_AS_DOUBLE
import numpy as np
from fastloss.capi cimport *

cnp.import_array()

FL_STATUS_OK = FL_OK
FL_STATUS_LABEL = FL_ERR_LABEL
FL_STATUS_NOMEM = FL_ERR_NOMEM
FL_STATUS_ARG = FL_ERR_ARG

# fl_field code -> the struct field (or fields) that C found outside its domain
FIELDS = {
    FL_FIELD_NONE: "", FL_FIELD_SIZES: "sizes", FL_FIELD_N_CLASSES: "n_classes",
    FL_FIELD_REDUCTION: "reduction", FL_FIELD_TARGET: "target",
    FL_FIELD_LABEL_SMOOTHING: "label_smoothing", FL_FIELD_TOP_K: "top_k",
    FL_FIELD_Z_LOSS: "z_loss", FL_FIELD_SOFTCAP: "softcap", FL_FIELD_FOCAL_GAMMA: "focal_gamma",
    FL_FIELD_POLY1_EPSILON: "poly1_epsilon", FL_FIELD_FOCAL_TARGET: "focal_target",
    FL_FIELD_HESS: "hess", FL_FIELD_MODE: "mode", FL_FIELD_WEIGHT_STRIDE: "weight_row_stride",
    FL_FIELD_FOCAL_ALPHA: "focal_alpha", FL_FIELD_IGNORE_VALUE: "ignore_value",
    FL_FIELD_TARGET_DTYPE: "target_dtype", FL_FIELD_METRICS: "metrics",
}
TARGET_SAME = FL_TARGET_SAME
TARGET_F32 = FL_TARGET_F32


@cython.auto_pickle(False)
@cython.final
cdef class Result:
    """What a kernel returned: its status and its fl_result, by name."""
    cdef readonly int status
    cdef readonly double value, loss_sum, weight_sum
    cdef readonly int64_t n_rows, n_ignored, n_top1, n_topk, bad_index, bad_value

    @property
    def bad_field(self):
        """With FL_STATUS_ARG: the name of the argument outside its domain (FIELDS)."""
        if self.status != FL_ERR_ARG:
            return ""
        return FIELDS.get(self.bad_value, "unknown field %d" % self.bad_value)

    def __repr__(self):
        return ("Result(status=%d, value=%r, loss_sum=%r, weight_sum=%r, n_rows=%d, "
                "n_ignored=%d, n_top1=%d, n_topk=%d, bad_index=%d, bad_value=%d)"
                % (self.status, self.value, self.loss_sum, self.weight_sum, self.n_rows,
                   self.n_ignored, self.n_top1, self.n_topk, self.bad_index, self.bad_value))


cdef inline Result _result(fl_status st, fl_result *r):
    cdef Result res = Result.__new__(Result)
    res.status = <int>st
    res.value = r.value
    res.loss_sum = r.loss_sum
    res.weight_sum = r.weight_sum
    res.n_rows = r.n_rows
    res.n_ignored = r.n_ignored
    res.n_top1 = r.n_top1
    res.n_topk = r.n_topk
    res.bad_index = r.bad_index
    res.bad_value = r.bad_value
    return res


cdef inline void *_ptr(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int _kind(object a) except -1:
    """0 float32, 1 float64, 2 float16, 3 bfloat16 (ml_dtypes' bfloat16, or the
    2-byte void dtype tagged {"fastloss": "bfloat16"} that carries a torch bfloat16
    tensor's bits without ml_dtypes)."""
    cdef int tn
    if type(a) is not cnp.ndarray:
        raise TypeError("expected an ndarray, not %s" % type(a).__name__)
    tn = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if tn == cnp.NPY_FLOAT64:
        return 1
    if tn == cnp.NPY_FLOAT32:
        return 0
    if tn == cnp.NPY_FLOAT16:
        return 2
    if cnp.PyArray_ITEMSIZE(<cnp.ndarray>a) == 2:
        dt = (<cnp.ndarray>a).dtype
        if dt.name == "bfloat16":
            return 3
        if tn == cnp.NPY_VOID and dt.metadata is not None \
                and dt.metadata.get("fastloss") == "bfloat16":
            return 3
    raise TypeError("expected float32, float64, float16 or bfloat16, not %s" % (<cnp.ndarray>a).dtype)


# ------------------------------------------------------------------ requests

def softmax_ce(*, object logits, object labels=None, object probs=None,
               object class_weight=None, object sample_weight=None, int64_t outer,
               int64_t n_classes, int64_t inner, int64_t ignore_index=-100,
               double label_smoothing=0.0, int reduction=FL_REDUCE_MEAN, int64_t top_k=0,
               object row_loss=None, object grad=None, object hess=None, int n_threads=0,
               double z_loss=0.0, double softcap=0.0, double focal_gamma=0.0,
               double poly1_epsilon=0.0, object lse_out=None, int target_dtype=0,
               int64_t batch_size=0, object argmax_out=None, object stats_out=None):
    cdef fl_softmax_ce_args a
    cdef fl_result r
    cdef fl_status st
    cdef int k = _kind(logits)
    memset(&a, 0, sizeof(a))
    a.batch_size = batch_size
    a.outer = outer
    a.n_classes = n_classes
    a.inner = inner
    a.logits = _ptr(logits)
    a.labels = <const int64_t *>_ptr(labels)
    a.probs = _ptr(probs)
    a.class_weight = <const double *>_ptr(class_weight)
    a.sample_weight = <const double *>_ptr(sample_weight)
    a.ignore_index = ignore_index
    a.label_smoothing = label_smoothing
    a.reduction = reduction
    a.top_k = top_k
    a.n_threads = n_threads
    a.row_loss = _ptr(row_loss)
    a.grad = _ptr(grad)
    a.hess = _ptr(hess)
    a.z_loss = z_loss
    a.softcap = softcap
    a.focal_gamma = focal_gamma
    a.poly1_epsilon = poly1_epsilon
    a.lse_out = <double *>_ptr(lse_out)
    a.target_dtype = target_dtype
    a.argmax_out = <int64_t *>_ptr(argmax_out)
    a.stats_out = <double *>_ptr(stats_out)
    with nogil:
        if k == 0:
            st = fl_softmax_ce_f32(&a, &r)
        elif k == 1:
            st = fl_softmax_ce_f64(&a, &r)
        elif k == 2:
            st = fl_softmax_ce_f16(&a, &r)
        else:
            st = fl_softmax_ce_bf16(&a, &r)
    return _result(st, &r)


def sigmoid_ce(*, object logits, object target, object weight=None,
               int64_t weight_row_stride=0, object pos_weight=None, int64_t n_rows,
               int64_t row_len, int reduction=FL_REDUCE_MEAN, object loss=None,
               object grad=None, object hess=None, int n_threads=0, double focal_gamma=0.0,
               double focal_alpha=-1.0, double poly1_epsilon=0.0, int target_dtype=0,
               int64_t batch_size=0, bint has_ignore=False, double ignore_value=0.0,
               object metrics=None):
    """``metrics``: None, or (threshold, n_bins, auc_bins, n_labels, label_counts,
    counts, sums), the fields of fl_sigmoid_metrics (int64 / float64 C-contiguous
    outputs of the sizes fastloss.h gives; the caller checked them)."""
    cdef fl_sigmoid_ce_args a
    cdef fl_sigmoid_metrics m
    cdef fl_result r
    cdef fl_status st
    cdef int k = _kind(logits)
    memset(&a, 0, sizeof(a))
    if metrics is not None:
        memset(&m, 0, sizeof(m))
        m.threshold = metrics[0]
        m.n_bins = metrics[1]
        m.auc_bins = metrics[2]
        m.n_labels = metrics[3]
        m.label_counts = <int64_t *>_ptr(metrics[4])
        m.counts = <int64_t *>_ptr(metrics[5])
        m.sums = <double *>_ptr(metrics[6])
        a.metrics = &m
    a.batch_size = batch_size
    a.has_ignore = has_ignore
    a.ignore_value = ignore_value
    a.n_rows = n_rows
    a.row_len = row_len
    a.logits = _ptr(logits)
    a.target = _ptr(target)
    a.weight = _ptr(weight)
    a.weight_row_stride = weight_row_stride
    a.pos_weight = _ptr(pos_weight)
    a.reduction = reduction
    a.n_threads = n_threads
    a.loss = _ptr(loss)
    a.grad = _ptr(grad)
    a.hess = _ptr(hess)
    a.focal_gamma = focal_gamma
    a.focal_alpha = focal_alpha
    a.poly1_epsilon = poly1_epsilon
    a.target_dtype = target_dtype
    with nogil:
        if k == 0:
            st = fl_sigmoid_ce_f32(&a, &r)
        elif k == 1:
            st = fl_sigmoid_ce_f64(&a, &r)
        elif k == 2:
            st = fl_sigmoid_ce_f16(&a, &r)
        else:
            st = fl_sigmoid_ce_bf16(&a, &r)
    return _result(st, &r)


def hinge(*, object scores, object labels=None, object target=None, object class_weight=None,
          object sample_weight=None, int64_t outer, int64_t n_classes, int64_t inner,
          double margin=1.0, bint squared=False, int mode=FL_HINGE_OVR,
          int reduction=FL_REDUCE_MEAN, object row_loss=None, object grad=None,
          int n_threads=0, int64_t top_k=0, int target_dtype=0, int64_t batch_size=0,
          object argmax_out=None):
    cdef fl_hinge_args a
    cdef fl_result r
    cdef fl_status st
    cdef int k = _kind(scores)
    memset(&a, 0, sizeof(a))
    a.batch_size = batch_size
    a.outer = outer
    a.n_classes = n_classes
    a.inner = inner
    a.scores = _ptr(scores)
    a.labels = <const int64_t *>_ptr(labels)
    a.target = _ptr(target)
    a.class_weight = <const double *>_ptr(class_weight)
    a.sample_weight = <const double *>_ptr(sample_weight)
    a.margin = margin
    a.squared = squared
    a.mode = mode
    a.reduction = reduction
    a.n_threads = n_threads
    a.row_loss = _ptr(row_loss)
    a.grad = _ptr(grad)
    a.top_k = top_k
    a.target_dtype = target_dtype
    a.argmax_out = <int64_t *>_ptr(argmax_out)
    with nogil:
        if k == 0:
            st = fl_hinge_f32(&a, &r)
        elif k == 1:
            st = fl_hinge_f64(&a, &r)
        elif k == 2:
            st = fl_hinge_f16(&a, &r)
        else:
            st = fl_hinge_bf16(&a, &r)
    return _result(st, &r)


def mse(*, object pred, object target, object weight=None, int64_t weight_row_stride=0,
        int64_t n_rows, int64_t row_len, int reduction=FL_REDUCE_MEAN, object loss=None,
        object grad=None, object hess=None, int n_threads=0, int target_dtype=0,
        int64_t batch_size=0):
    cdef fl_mse_args a
    cdef fl_result r
    cdef fl_status st
    cdef int k = _kind(pred)
    memset(&a, 0, sizeof(a))
    a.batch_size = batch_size
    a.n_rows = n_rows
    a.row_len = row_len
    a.pred = _ptr(pred)
    a.target = _ptr(target)
    a.weight = _ptr(weight)
    a.weight_row_stride = weight_row_stride
    a.reduction = reduction
    a.n_threads = n_threads
    a.loss = _ptr(loss)
    a.grad = _ptr(grad)
    a.hess = _ptr(hess)
    a.target_dtype = target_dtype
    with nogil:
        if k == 0:
            st = fl_mse_f32(&a, &r)
        elif k == 1:
            st = fl_mse_f64(&a, &r)
        elif k == 2:
            st = fl_mse_f16(&a, &r)
        else:
            st = fl_mse_bf16(&a, &r)
    return _result(st, &r)


# ----------------------------------------------------------------- fast path
#
# The common call of every form (FORM_VALUE, FORM_GRAD, FORM_VALUE_AND_GRAD):
# C-contiguous, aligned, native float32 / float64 predictions, int64 labels of
# the row shape or a target of the predictions' dtype and shape, every option
# at its default value (None, 0.0, -100, "mean", the last axis), no ``out``.
# The options arrive as the caller passed them, positionally, and are recognised
# here in a few C comparisons.  Any other call, and a kernel error, goes to the
# general path the caller passed (``general``, with the same arguments): it runs
# the same kernel with the same arguments (the same bits) and reports the error
# in full.  A gradient is allocated only
# once the call is known to be the common one.

FORM_VALUE = 0
FORM_GRAD = 1
FORM_VALUE_AND_GRAD = 2

cdef int _FAST_FLAGS = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED


cdef inline int _fast_float(object a):
    """0 float32, 1 float64, -1 not a fast-path prediction array."""
    cdef cnp.ndarray x
    cdef int tn
    if type(a) is not cnp.ndarray:
        return -1
    x = <cnp.ndarray>a
    if not cnp.PyArray_CHKFLAGS(x, _FAST_FLAGS) or not cnp.PyArray_ISNOTSWAPPED(x):
        return -1
    tn = cnp.PyArray_TYPE(x)
    if tn == cnp.NPY_FLOAT32:
        return 0
    if tn == cnp.NPY_FLOAT64:
        return 1
    return -1


cdef inline bint _fast_same(cnp.ndarray x, object b, int typenum, int ndim_less):
    """b is a fast-path array of type `typenum` with x's shape (without its last axis)."""
    cdef cnp.ndarray t
    cdef int i, nd
    if type(b) is not cnp.ndarray:
        return False
    t = <cnp.ndarray>b
    if cnp.PyArray_TYPE(t) != typenum or not cnp.PyArray_CHKFLAGS(t, _FAST_FLAGS) \
            or not cnp.PyArray_ISNOTSWAPPED(t):
        return False
    nd = cnp.PyArray_NDIM(x) - ndim_less
    if cnp.PyArray_NDIM(t) != nd:
        return False
    for i in range(nd):
        if cnp.PyArray_DIM(t, i) != cnp.PyArray_DIM(x, i):
            return False
    return True


cdef inline bint _zero(object o):
    """o is the float +0.0 (a float option's default)."""
    cdef double v
    if type(o) is not float:
        return False
    v = PyFloat_AS_DOUBLE(o)
    return v == 0.0 and not signbit(v)


cdef inline bint _mean(object o):
    return type(o) is str and o == "mean"


cdef inline int64_t _batch(cnp.ndarray x, int ndim_less):
    """The general path's batch_size: the first axis of the row shape, 1 without one."""
    return cnp.PyArray_DIM(x, 0) if cnp.PyArray_NDIM(x) - ndim_less > 0 else 1


cdef object _DECLINE = object()      # a fast-path check failed: the general path decides


cdef inline int _bytes_meet(cnp.ndarray a, cnp.ndarray b):
    """overlap() for two C-contiguous arrays: 0 disjoint, 1 overlapping, 2 the same buffer."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    if na == 0 or nb == 0:
        return 0
    if pa == pb and na == nb:
        return 2
    return 1 if pa < pb + nb and pb < pa + na else 0


cdef inline object _fast_grad(int form, cnp.ndarray x, object target, object out, void **data):
    """The gradient array of a form that has one (x's shape and dtype), else None.
    A caller's `out` is taken when it is a plain, writable, C-contiguous, aligned,
    native array of x's shape and dtype that is x itself (in place) or shares no byte
    with x or the target; any other `out` gives _DECLINE (the general path accepts it
    or says what is wrong with it)."""
    cdef cnp.ndarray g
    if form == FORM_VALUE:
        data[0] = NULL
        return None
    if out is None:
        g = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), 0)
    else:
        if not _fast_same(x, out, cnp.PyArray_TYPE(x), 0) \
                or not cnp.PyArray_CHKFLAGS(<cnp.ndarray>out, cnp.NPY_ARRAY_WRITEABLE):
            return _DECLINE
        g = <cnp.ndarray>out
        if _bytes_meet(g, x) == 1 or _bytes_meet(g, <cnp.ndarray>target) != 0:
            return _DECLINE
    data[0] = cnp.PyArray_DATA(g)
    return g


cdef inline object _fast_return(int form, fl_status st, fl_result *r, object g):
    if st != FL_OK:
        return None
    if form == FORM_VALUE:
        return r.value
    if form == FORM_GRAD:
        return g
    return (r.value, g)


cdef object _softmax_ce_common(int form, object logits, object target, object axis,
                               object out):
    cdef int f64 = _fast_float(logits)
    cdef cnp.ndarray x
    cdef fl_softmax_ce_args a
    cdef fl_result r
    cdef fl_status st
    cdef int nd
    if f64 < 0:
        return None
    x = <cnp.ndarray>logits
    nd = cnp.PyArray_NDIM(x)
    if nd < 1 or cnp.PyArray_DIM(x, nd - 1) < 1 or type(axis) is not int \
            or not (axis == -1 or axis == nd - 1):
        return None
    memset(&a, 0, sizeof(a))      # no weights, no outputs, no options: the defaults
    if _fast_same(x, target, cnp.NPY_INT64, 1):
        a.labels = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>target)
    elif _fast_same(x, target, cnp.PyArray_TYPE(x), 0):
        a.probs = cnp.PyArray_DATA(<cnp.ndarray>target)
    else:
        return None
    a.n_classes = cnp.PyArray_DIM(x, nd - 1)
    a.outer = cnp.PyArray_SIZE(x) // a.n_classes
    a.inner = 1
    a.logits = cnp.PyArray_DATA(x)
    a.ignore_index = -100
    a.reduction = FL_REDUCE_MEAN
    a.batch_size = _batch(x, 1)
    g = _fast_grad(form, x, target, out, &a.grad)
    if g is _DECLINE:
        return None
    with nogil:
        st = fl_softmax_ce_f64(&a, &r) if f64 else fl_softmax_ce_f32(&a, &r)
    return _fast_return(form, st, &r, g)


def softmax_ce_fast(object general, int form, object logits, object target, object weight,
                    object sample_weight, object ignore_index, object label_smoothing,
                    object reduction, object axis, object n_threads, object z_loss,
                    object softcap, object lse_out, object focal_gamma, object poly1_epsilon,
                    object out):
    """A softmax_cross_entropy form: the common call (class axis last) here, any other
    call (and an error) by ``general``, called with the same arguments but itself."""
    cdef object res = None
    if (weight is None and sample_weight is None and n_threads is None and softcap is None
            and lse_out is None and type(ignore_index) is int
            and ignore_index == -100 and _zero(label_smoothing) and _zero(z_loss)
            and _zero(focal_gamma) and _zero(poly1_epsilon) and _mean(reduction)):
        res = _softmax_ce_common(form, logits, target, axis, out)
    if res is None:
        return general(form, logits, target, weight, sample_weight, ignore_index,
                       label_smoothing, reduction, axis, n_threads, z_loss, softcap, lse_out,
                       focal_gamma, poly1_epsilon, out)
    return res


cdef inline bint _fast_elem(object pred, object target, int64_t *n_rows, int64_t *row_len):
    cdef cnp.ndarray x = <cnp.ndarray>pred
    cdef int nd = cnp.PyArray_NDIM(x)
    if not _fast_same(x, target, cnp.PyArray_TYPE(x), 0):
        return False
    if nd == 0:
        n_rows[0] = 1
        row_len[0] = 1
        return True
    row_len[0] = cnp.PyArray_DIM(x, nd - 1)
    if row_len[0] == 0:
        return False            # nothing to compute: the general path says so
    n_rows[0] = cnp.PyArray_SIZE(x) // row_len[0]
    return True


cdef object _sigmoid_ce_common(int form, object logits, object target, object out):
    cdef int f64 = _fast_float(logits)
    cdef fl_sigmoid_ce_args a
    cdef fl_result r
    cdef fl_status st
    memset(&a, 0, sizeof(a))      # no weights, no outputs, no ignore value: the defaults
    if f64 < 0 or not _fast_elem(logits, target, &a.n_rows, &a.row_len):
        return None
    a.logits = cnp.PyArray_DATA(<cnp.ndarray>logits)
    a.target = cnp.PyArray_DATA(<cnp.ndarray>target)
    a.reduction = FL_REDUCE_MEAN
    a.focal_alpha = -1.0
    a.batch_size = _batch(<cnp.ndarray>logits, 0)
    g = _fast_grad(form, <cnp.ndarray>logits, target, out, &a.grad)
    if g is _DECLINE:
        return None
    with nogil:
        st = fl_sigmoid_ce_f64(&a, &r) if f64 else fl_sigmoid_ce_f32(&a, &r)
    return _fast_return(form, st, &r, g)


def sigmoid_ce_fast(object general, int form, object logits, object target, object weight,
                    object pos_weight, object reduction, object n_threads, object focal_gamma,
                    object focal_alpha, object poly1_epsilon, object ignore_index, object out):
    """A sigmoid_cross_entropy form: the common call here, any other by ``general``."""
    cdef object res = None
    if (weight is None and pos_weight is None and n_threads is None and focal_alpha is None
            and ignore_index is None and _zero(focal_gamma)
            and _zero(poly1_epsilon) and _mean(reduction)):
        res = _sigmoid_ce_common(form, logits, target, out)
    if res is None:
        return general(form, logits, target, weight, pos_weight, reduction, n_threads,
                       focal_gamma, focal_alpha, poly1_epsilon, ignore_index, out)
    return res


cdef object _mse_common(int form, object pred, object target, object out):
    cdef int f64 = _fast_float(pred)
    cdef fl_mse_args a
    cdef fl_result r
    cdef fl_status st
    memset(&a, 0, sizeof(a))      # no weights, no outputs: the defaults
    if f64 < 0 or not _fast_elem(pred, target, &a.n_rows, &a.row_len):
        return None
    a.pred = cnp.PyArray_DATA(<cnp.ndarray>pred)
    a.target = cnp.PyArray_DATA(<cnp.ndarray>target)
    a.reduction = FL_REDUCE_MEAN
    a.batch_size = _batch(<cnp.ndarray>pred, 0)
    g = _fast_grad(form, <cnp.ndarray>pred, target, out, &a.grad)
    if g is _DECLINE:
        return None
    with nogil:
        st = fl_mse_f64(&a, &r) if f64 else fl_mse_f32(&a, &r)
    return _fast_return(form, st, &r, g)


def mse_fast(object general, int form, object pred, object target, object weight,
             object reduction, object n_threads, object out):
    """An mse form: the common call here, any other by ``general``."""
    cdef object res = None
    if weight is None and n_threads is None and _mean(reduction):
        res = _mse_common(form, pred, target, out)
    if res is None:
        return general(form, pred, target, weight, reduction, n_threads, out)
    return res


def parallel_copy(cnp.ndarray src, cnp.ndarray dst, n_threads=None):
    """Copy C-contiguous src into dst (same byte size) with OpenMP threads.

    The bandwidth yardstick of the benchmark: a loss kernel that reads its
    input once and writes its gradient once cannot beat this copy."""
    cdef int nt = 0 if n_threads is None else int(n_threads)
    cdef int64_t nbytes = src.nbytes
    if not (src.flags.c_contiguous and dst.flags.c_contiguous and dst.flags.writeable):
        raise ValueError("parallel_copy needs C-contiguous arrays and a writable dst")
    if dst.nbytes != nbytes:
        raise ValueError("dst has %d bytes but src has %d" % (dst.nbytes, nbytes))
    cdef void *d = cnp.PyArray_DATA(dst)
    cdef const void *s = cnp.PyArray_DATA(src)
    with nogil:
        fl_parallel_copy(d, s, nbytes, nt)


def parallel_read(cnp.ndarray src, n_threads=None):
    """Read every byte of C-contiguous src with OpenMP threads; returns a checksum of them.

    The read-only yardstick of the benchmark: a value-only kernel reads its input once."""
    cdef int nt = 0 if n_threads is None else int(n_threads)
    cdef int64_t nbytes = src.nbytes
    cdef uint64_t total
    if not src.flags.c_contiguous:
        raise ValueError("parallel_read needs a C-contiguous array")
    cdef const void *s = cnp.PyArray_DATA(src)
    with nogil:
        total = fl_parallel_read(s, nbytes, nt)
    return total
def half_to_f32(int kind, cnp.ndarray src, cnp.ndarray dst):
    """Convert C-contiguous 2-byte half bit patterns (kind 0 float16, 1 bfloat16)
    into the float32 array dst with the active SIMD path's conversion."""
    if src.itemsize != 2 or dst.dtype != np.float32 or src.size != dst.size \
            or not (src.flags.c_contiguous and dst.flags.c_contiguous and dst.flags.writeable):
        raise ValueError("half_to_f32 needs C-contiguous 2-byte src and float32 dst of its size")
    cdef const uint16_t *s = <const uint16_t *>cnp.PyArray_DATA(src)
    cdef float *d = <float *>cnp.PyArray_DATA(dst)
    cdef int64_t n = src.size
    with nogil:
        fl_half_to_f32(kind, s, d, n)


def f32_to_half(int kind, cnp.ndarray src, cnp.ndarray dst):
    """Round float32 src into 2-byte half bit patterns dst (nearest even)."""
    if dst.itemsize != 2 or src.dtype != np.float32 or src.size != dst.size \
            or not (src.flags.c_contiguous and dst.flags.c_contiguous and dst.flags.writeable):
        raise ValueError("f32_to_half needs C-contiguous float32 src and 2-byte dst of its size")
    cdef const float *s = <const float *>cnp.PyArray_DATA(src)
    cdef uint16_t *d = <uint16_t *>cnp.PyArray_DATA(dst)
    cdef int64_t n = src.size
    with nogil:
        fl_f32_to_half(kind, s, d, n)


def openmp_enabled():
    return bool(fl_openmp_enabled())


def default_threads():
    return fl_default_threads()


def simd_in_use():
    return fl_simd_in_use().decode()


def simd_built():
    return fl_simd_built().decode().split(",")


def simd_supported():
    return fl_simd_supported().decode().split(",")


def set_simd(str name):
    """Force a SIMD path ("baseline", "avx2", "avx512" or "best")."""
    cdef bytes b = name.encode()
    cdef int rc = fl_set_simd(b)
    if rc == 1:
        raise ValueError("SIMD path %r is not built; built: %s" % (name, ", ".join(simd_built())))
    if rc == 2:
        raise ValueError("SIMD path %r is built but this CPU cannot run it; supported: %s"
                         % (name, ", ".join(simd_supported())))


def overlap(cnp.ndarray a, cnp.ndarray b):
    """For C-contiguous arrays: 0 if their bytes are disjoint, 1 if they
    overlap, 2 if they are the same buffer (same start and size)."""
    return _bytes_meet(a, b)


# ---- the C API for other extensions (src_c/fastloss_api.h): a capsule of function pointers
from cpython.pycapsule cimport PyCapsule_New

cdef fl_api_table _api_table
_api_table.version = FASTLOSS_API_VERSION
_api_table.softmax_ce_f32 = fl_softmax_ce_f32
_api_table.softmax_ce_f64 = fl_softmax_ce_f64
_api_table.sigmoid_ce_f32 = fl_sigmoid_ce_f32
_api_table.sigmoid_ce_f64 = fl_sigmoid_ce_f64
_api_table.hinge_f32 = fl_hinge_f32
_api_table.hinge_f64 = fl_hinge_f64
_api_table.mse_f32 = fl_mse_f32
_api_table.mse_f64 = fl_mse_f64
_api_table.softmax_ce_f16 = fl_softmax_ce_f16
_api_table.softmax_ce_bf16 = fl_softmax_ce_bf16
_api_table.sigmoid_ce_f16 = fl_sigmoid_ce_f16
_api_table.sigmoid_ce_bf16 = fl_sigmoid_ce_bf16
_api_table.hinge_f16 = fl_hinge_f16
_api_table.hinge_bf16 = fl_hinge_bf16
_api_table.mse_f16 = fl_mse_f16
_api_table.mse_bf16 = fl_mse_bf16
_C_API = PyCapsule_New(<void *>&_api_table, b"fastloss._core._C_API", NULL)


cdef inline void _neumaier(double *s, double *c, double x) noexcept nogil:
    cdef double t = s[0] + x
    if fabs(s[0]) >= fabs(x):
        c[0] += (s[0] - t) + x
    else:
        c[0] += (x - t) + s[0]
    s[0] = t


cdef inline double _neumaier_total(double s, double c) noexcept nogil:
    return s + c if isfinite(s) else s


@cython.boundscheck(False)
@cython.wraparound(False)
def class_counts(const int64_t[::1] y, const int64_t[::1] pred, int64_t[::1] tp,
                 int64_t[::1] n_true, int64_t[::1] n_pred, int64_t[::1] confusion=None,
                 const double[:, ::1] stats=None, const double[::1] nll=None,
                 const double[::1] edges=None, int64_t[::1] bin_count=None,
                 int64_t[::1] bin_correct=None, double[::1] bin_conf=None):
    """One pass over a chunk's rows for the class metrics (fastloss.metrics.ClassMetrics).

    Adds to the per-class counts ``tp``, ``n_true``, ``n_pred`` (and the flattened
    C x C ``confusion``, rows true) from the labels ``y`` and the predictions ``pred``.
    With the kernel's per-row ``stats`` (max_k p_k, sum_k p_k^2, entropy): adds to the
    calibration bins of the confidence, ``edges`` being np.linspace(0, 1, n_bins + 1)
    (the bin j with edges[j] <= conf < edges[j + 1]; conf >= 1 and NaN in bin n_bins):
    ``bin_count``, ``bin_correct`` (rows with pred == y) and ``bin_conf`` (the confidence
    sums of this chunk, added in row order); and returns the chunk's sums of the entropy,
    of ``nll`` (-log p_y) and of the Brier terms sum_k p_k^2 - 2 p_y + 1 (p_y = exp(-nll)),
    compensated (Neumaier), NaN when not asked for.
    """
    cdef Py_ssize_t n = y.shape[0], i
    cdef int64_t C = tp.shape[0], nb = 0, b, yi, pi
    cdef int h
    cdef double conf, t, ent_s = 0, ent_c = 0, nll_s = 0, nll_c = 0, br_s = 0, br_c = 0, v
    cdef bint has_cm = confusion is not None, has_st = stats is not None
    cdef bint has_nll = nll is not None
    if pred.shape[0] != n or n_true.shape[0] != C or n_pred.shape[0] != C \
            or (has_cm and confusion.shape[0] != C * C):
        raise ValueError("class_counts: sizes disagree")
    if has_st:
        nb = edges.shape[0] - 1
        if stats.shape[0] != n or stats.shape[1] != 3 or nb < 1 \
                or bin_count.shape[0] != nb + 1 or bin_correct.shape[0] != nb + 1 \
                or bin_conf.shape[0] != nb + 1 or (has_nll and nll.shape[0] != n):
            raise ValueError("class_counts: sizes disagree")
    for i in range(n):
        if not (0 <= y[i] < C and 0 <= pred[i] < C):
            raise ValueError("class_counts: a label or prediction outside [0, %d)" % C)
    with nogil:
        for i in range(n):
            yi = y[i]
            pi = pred[i]
            h = yi == pi
            n_true[yi] += 1
            n_pred[pi] += 1
            tp[yi] += h
            if has_cm:
                confusion[yi * C + pi] += 1
            if has_st:
                conf = stats[i, 0]
                t = conf * nb
                if t != t or t >= nb:
                    b = nb
                elif t <= 0:
                    b = 0
                else:
                    b = <int64_t>t        # the bin up to rounding: one edge either side
                    if b > 0 and edges[b] > conf:
                        b -= 1
                    elif b < nb and edges[b + 1] <= conf:
                        b += 1
                bin_count[b] += 1
                bin_correct[b] += h
                bin_conf[b] += conf
                _neumaier(&ent_s, &ent_c, stats[i, 2])
                if has_nll:
                    v = nll[i]
                    _neumaier(&nll_s, &nll_c, v)
                    _neumaier(&br_s, &br_c, stats[i, 1] - 2.0 * exp(-v) + 1.0)
    nan = float("nan")
    return (_neumaier_total(ent_s, ent_c) if has_st else nan,
            _neumaier_total(nll_s, nll_c) if has_nll else nan,
            _neumaier_total(br_s, br_c) if has_nll else nan)
