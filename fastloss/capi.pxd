# Cython declarations of fastloss's public C API (src_c/fastloss.h, fastloss_api.h).
# Other Cython modules call the kernels through the function table that
# fastloss._core exports (no link-time dependency), compiled with
# include_dirs=[fastloss.get_include()]:
#
#     from fastloss.capi cimport *
#     if fl_import() < 0: raise ImportError("fastloss")
#     cdef fl_softmax_ce_args a   # fill it (zero the struct first)
#     cdef fl_result r
#     with nogil:
#         st = FL_API.softmax_ce_f64(&a, &r)
from libc.stdint cimport int64_t, uint16_t, uint64_t

cdef extern from "fastloss.h" nogil:
    ctypedef enum fl_status:
        FL_OK
        FL_ERR_LABEL
        FL_ERR_NOMEM
        FL_ERR_ARG

    ctypedef enum fl_field:
        FL_FIELD_NONE
        FL_FIELD_SIZES
        FL_FIELD_N_CLASSES
        FL_FIELD_REDUCTION
        FL_FIELD_TARGET
        FL_FIELD_LABEL_SMOOTHING
        FL_FIELD_TOP_K
        FL_FIELD_Z_LOSS
        FL_FIELD_SOFTCAP
        FL_FIELD_FOCAL_GAMMA
        FL_FIELD_POLY1_EPSILON
        FL_FIELD_FOCAL_TARGET
        FL_FIELD_HESS
        FL_FIELD_MODE
        FL_FIELD_WEIGHT_STRIDE
        FL_FIELD_FOCAL_ALPHA
        FL_FIELD_IGNORE_VALUE
        FL_FIELD_TARGET_DTYPE
        FL_FIELD_METRICS

    ctypedef enum fl_target_dtype:
        FL_TARGET_SAME
        FL_TARGET_F32

    ctypedef enum fl_reduction:
        FL_REDUCE_NONE
        FL_REDUCE_SUM
        FL_REDUCE_MEAN
        FL_REDUCE_BATCHMEAN
        FL_REDUCE_FULLMEAN

    ctypedef enum fl_hinge_mode:
        FL_HINGE_OVR
        FL_HINGE_WESTON_WATKINS
        FL_HINGE_CRAMMER_SINGER

    ctypedef struct fl_result:
        double value
        double loss_sum
        double weight_sum
        int64_t n_rows
        int64_t n_ignored
        int64_t n_top1
        int64_t n_topk
        int64_t bad_index
        int64_t bad_value

    ctypedef struct fl_softmax_ce_args:
        int64_t outer, n_classes, inner
        const void *logits
        const int64_t *labels
        const void *probs
        const double *class_weight
        const double *sample_weight
        int64_t ignore_index
        double label_smoothing
        int reduction
        int64_t top_k
        int n_threads
        void *row_loss
        void *grad
        void *hess
        double z_loss
        double softcap
        double focal_gamma
        double poly1_epsilon
        double *lse_out
        int64_t batch_size
        int target_dtype
        int64_t *argmax_out
        double *stats_out

    ctypedef struct fl_sigmoid_metrics:
        double threshold
        int64_t n_bins
        int64_t auc_bins
        int64_t n_labels
        int64_t *label_counts
        int64_t *counts
        double *sums

    ctypedef struct fl_sigmoid_ce_args:
        int64_t n_rows, row_len
        const void *logits
        const void *target
        const void *weight
        int64_t weight_row_stride
        const void *pos_weight
        int reduction
        int n_threads
        void *loss
        void *grad
        void *hess
        double focal_gamma
        double focal_alpha
        double poly1_epsilon
        int64_t batch_size
        int has_ignore
        double ignore_value
        int target_dtype
        fl_sigmoid_metrics *metrics

    ctypedef struct fl_hinge_args:
        int64_t outer, n_classes, inner
        const void *scores
        const int64_t *labels
        const void *target
        const double *class_weight
        const double *sample_weight
        double margin
        int squared
        int mode
        int reduction
        int n_threads
        void *row_loss
        void *grad
        int64_t top_k
        int64_t batch_size
        int target_dtype
        int64_t *argmax_out

    ctypedef struct fl_mse_args:
        int64_t n_rows, row_len
        const void *pred
        const void *target
        const void *weight
        int64_t weight_row_stride
        int reduction
        int n_threads
        void *loss
        void *grad
        void *hess
        int64_t batch_size
        int target_dtype

    fl_status fl_softmax_ce_f32(const fl_softmax_ce_args *args, fl_result *result)
    fl_status fl_softmax_ce_f64(const fl_softmax_ce_args *args, fl_result *result)
    fl_status fl_sigmoid_ce_f32(const fl_sigmoid_ce_args *args, fl_result *result)
    fl_status fl_sigmoid_ce_f64(const fl_sigmoid_ce_args *args, fl_result *result)
    fl_status fl_hinge_f32(const fl_hinge_args *args, fl_result *result)
    fl_status fl_hinge_f64(const fl_hinge_args *args, fl_result *result)
    fl_status fl_mse_f32(const fl_mse_args *args, fl_result *result)
    fl_status fl_mse_f64(const fl_mse_args *args, fl_result *result)
    fl_status fl_softmax_ce_f16(const fl_softmax_ce_args *args, fl_result *result)
    fl_status fl_softmax_ce_bf16(const fl_softmax_ce_args *args, fl_result *result)
    fl_status fl_sigmoid_ce_f16(const fl_sigmoid_ce_args *args, fl_result *result)
    fl_status fl_sigmoid_ce_bf16(const fl_sigmoid_ce_args *args, fl_result *result)
    fl_status fl_hinge_f16(const fl_hinge_args *args, fl_result *result)
    fl_status fl_hinge_bf16(const fl_hinge_args *args, fl_result *result)
    fl_status fl_mse_f16(const fl_mse_args *args, fl_result *result)
    fl_status fl_mse_bf16(const fl_mse_args *args, fl_result *result)
    void fl_half_to_f32(int kind, const uint16_t *src, float *dst, int64_t n)
    void fl_f32_to_half(int kind, const float *src, uint16_t *dst, int64_t n)

    void fl_parallel_copy(void *dst, const void *src, int64_t nbytes, int n_threads)
    uint64_t fl_parallel_read(const void *src, int64_t nbytes, int n_threads)
    int fl_openmp_enabled()
    int fl_default_threads()
    const char *fl_simd_in_use()
    const char *fl_simd_built()
    const char *fl_simd_supported()
    int fl_set_simd(const char *name)


cdef extern from "fastloss_api.h":
    ctypedef struct fl_api_table:
        int version
        fl_status (*softmax_ce_f32)(const fl_softmax_ce_args *, fl_result *) nogil
        fl_status (*softmax_ce_f64)(const fl_softmax_ce_args *, fl_result *) nogil
        fl_status (*sigmoid_ce_f32)(const fl_sigmoid_ce_args *, fl_result *) nogil
        fl_status (*sigmoid_ce_f64)(const fl_sigmoid_ce_args *, fl_result *) nogil
        fl_status (*hinge_f32)(const fl_hinge_args *, fl_result *) nogil
        fl_status (*hinge_f64)(const fl_hinge_args *, fl_result *) nogil
        fl_status (*mse_f32)(const fl_mse_args *, fl_result *) nogil
        fl_status (*mse_f64)(const fl_mse_args *, fl_result *) nogil
        fl_status (*softmax_ce_f16)(const fl_softmax_ce_args *, fl_result *) nogil
        fl_status (*softmax_ce_bf16)(const fl_softmax_ce_args *, fl_result *) nogil
        fl_status (*sigmoid_ce_f16)(const fl_sigmoid_ce_args *, fl_result *) nogil
        fl_status (*sigmoid_ce_bf16)(const fl_sigmoid_ce_args *, fl_result *) nogil
        fl_status (*hinge_f16)(const fl_hinge_args *, fl_result *) nogil
        fl_status (*hinge_bf16)(const fl_hinge_args *, fl_result *) nogil
        fl_status (*mse_f16)(const fl_mse_args *, fl_result *) nogil
        fl_status (*mse_bf16)(const fl_mse_args *, fl_result *) nogil
    int FASTLOSS_API_VERSION
    const fl_api_table *FL_API
    int fl_import() except -1
