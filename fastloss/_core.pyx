# cython: language_level=3
"""Thin bridge from NumPy arrays to the C kernels of fastloss.h.

The Python layer (_api.py) has already checked dtypes, shapes and options and
made every array C-contiguous, aligned and of the kernel's dtype; here we only
take pointers, release the GIL and call C.  Every function returns the
kernel's fl_result as a tuple: (status, value, loss_sum, weight_sum,
n_ignored, n_top1, n_topk, bad_index, bad_value).
"""
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset
from fastloss.capi cimport *

cnp.import_array()

FL_STATUS_OK = FL_OK
FL_STATUS_LABEL = FL_ERR_LABEL
FL_STATUS_NOMEM = FL_ERR_NOMEM
FL_STATUS_ARG = FL_ERR_ARG


cdef inline void *_ptr(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline tuple _result(fl_status st, fl_result *r):
    return (<int>st, r.value, r.loss_sum, r.weight_sum, r.n_ignored, r.n_top1, r.n_topk,
            r.bad_index, r.bad_value)


def softmax_ce(bint f64, object logits, object labels, object probs, object class_weight,
               object sample_weight, int64_t outer, int64_t n_classes, int64_t inner,
               int64_t ignore_index, double label_smoothing, int reduction, int64_t top_k,
               object row_loss, object grad, object hess, int n_threads, double z_loss=0.0,
               double softcap=0.0, double focal_gamma=0.0, double poly1_epsilon=0.0,
               object lse_out=None, int64_t batch_size=0, object argmax_out=None,
               object stats_out=None):
    cdef fl_softmax_ce_args a
    cdef fl_result r
    cdef fl_status st
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
    a.argmax_out = <int64_t *>_ptr(argmax_out)
    a.stats_out = <double *>_ptr(stats_out)
    with nogil:
        st = fl_softmax_ce_f64(&a, &r) if f64 else fl_softmax_ce_f32(&a, &r)
    return _result(st, &r)


def sigmoid_ce(bint f64, object logits, object target, object weight, int64_t weight_row_stride,
               object pos_weight, int64_t n_rows, int64_t row_len, int reduction,
               object loss, object grad, object hess, int n_threads, double focal_gamma=0.0,
               double focal_alpha=-1.0, double poly1_epsilon=0.0, int64_t batch_size=0,
               object ignore_value=None):
    cdef fl_sigmoid_ce_args a
    cdef fl_result r
    cdef fl_status st
    memset(&a, 0, sizeof(a))
    a.batch_size = batch_size
    a.has_ignore = ignore_value is not None
    a.ignore_value = 0.0 if ignore_value is None else <double>ignore_value
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
    with nogil:
        st = fl_sigmoid_ce_f64(&a, &r) if f64 else fl_sigmoid_ce_f32(&a, &r)
    return _result(st, &r)


def hinge(bint f64, object scores, object labels, object target, object class_weight,
          object sample_weight, int64_t outer, int64_t n_classes, int64_t inner, double margin,
          bint squared, int mode, int reduction, object row_loss, object grad, int n_threads,
          int64_t top_k=0, int64_t batch_size=0, object argmax_out=None):
    cdef fl_hinge_args a
    cdef fl_result r
    cdef fl_status st
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
    a.argmax_out = <int64_t *>_ptr(argmax_out)
    with nogil:
        st = fl_hinge_f64(&a, &r) if f64 else fl_hinge_f32(&a, &r)
    return _result(st, &r)


def mse(bint f64, object pred, object target, object weight, int64_t weight_row_stride,
        int64_t n_rows, int64_t row_len, int reduction, object loss, object grad, object hess,
        int n_threads, int64_t batch_size=0):
    cdef fl_mse_args a
    cdef fl_result r
    cdef fl_status st
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
    with nogil:
        st = fl_mse_f64(&a, &r) if f64 else fl_mse_f32(&a, &r)
    return _result(st, &r)


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
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    if na == 0 or nb == 0:
        return 0
    if pa == pb and na == nb:
        return 2
    if pa < pb + nb and pb < pa + na:
        return 1
    return 0


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
_C_API = PyCapsule_New(<void *>&_api_table, b"fastloss._core._C_API", NULL)
