/*
 * fastloss.h -- the public C API of fastloss.
 *
 * Raw pointers, int64 sizes, status codes; no Python.  Every loss is ONE
 * kernel whose outputs are switched on by non-NULL pointers: per-row loss,
 * gradient (may be the logits buffer itself), diagonal Hessian, and (class
 * losses) top-1 / top-k hit counts.  The reduced value and its denominator
 * come back in an fl_result.
 *
 * Arrays are C-contiguous.  A class loss sees its input as (outer, C, inner):
 * inner == 1 is the "classes last" layout, PyTorch's (N, C, d1, ...) is
 * inner = d1 * ... .  A "row" is one (outer, inner) position; rows are
 * numbered r = o * inner + j.
 *
 * Sums are accumulated in double in fixed blocks of rows that do not depend on
 * the thread count, and the block partials are added in block order, so every
 * result is bitwise identical for any n_threads.
 *
 * Errors are detected before anything is written: on a non-FL_OK status no
 * output buffer has been touched.
 */
#ifndef FASTLOSS_H
#define FASTLOSS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASTLOSS_C_API_VERSION 2

typedef enum {
    FL_OK = 0,
    FL_ERR_LABEL = 1,     /* a label outside [0, C) that is not ignore_index */
    FL_ERR_NOMEM = 2,     /* a scratch allocation failed */
    FL_ERR_ARG = 3        /* an argument outside its domain: fl_result.bad_value says which */
} fl_status;

/* With FL_ERR_ARG, fl_result.bad_value holds the first field found outside its
 * domain (bad_index is -1), so that a caller can name it without repeating
 * the checks.  (fl_result keeps its size: callers built against an earlier
 * version of this header keep working.) */
typedef enum {
    FL_FIELD_NONE = 0,
    FL_FIELD_SIZES = 1,            /* outer / inner / n_rows / row_len < 0 */
    FL_FIELD_N_CLASSES = 2,        /* n_classes < 1 */
    FL_FIELD_REDUCTION = 3,        /* not an fl_reduction, or BATCHMEAN with batch_size < 0 */
    FL_FIELD_TARGET = 4,           /* labels and probs (target) both given or both NULL */
    FL_FIELD_LABEL_SMOOTHING = 5,  /* outside [0, 1] or NaN */
    FL_FIELD_TOP_K = 6,            /* < 0 */
    FL_FIELD_Z_LOSS = 7,           /* < 0, infinite or NaN */
    FL_FIELD_SOFTCAP = 8,          /* < 0 or NaN */
    FL_FIELD_FOCAL_GAMMA = 9,      /* < 0, infinite or NaN */
    FL_FIELD_POLY1_EPSILON = 10,   /* not finite */
    FL_FIELD_FOCAL_TARGET = 11,    /* focal_gamma != 0 with probabilities or label smoothing */
    FL_FIELD_HESS = 12,            /* hess requested together with an option that has none */
    FL_FIELD_MODE = 13,            /* not an fl_hinge_mode, or a +-1 target with a mode but ovr */
    FL_FIELD_WEIGHT_STRIDE = 14,   /* weight_row_stride neither 0 nor row_len */
    FL_FIELD_FOCAL_ALPHA = 15,     /* > 1 or NaN (negative: off) */
    FL_FIELD_IGNORE_VALUE = 16,    /* has_ignore with a NaN ignore_value */
    FL_FIELD_TARGET_DTYPE = 17,    /* half entry points: target_dtype not an fl_target_dtype */
    FL_FIELD_METRICS = 18          /* fl_sigmoid_metrics: a field outside its domain, or an
                                    * output NULL */
} fl_field;

/* Half entry points (*_f16, *_bf16): the dtype of the floating target
 * (probabilities, sigmoid / MSE targets, +-1 hinge targets). */
typedef enum {
    FL_TARGET_SAME = 0,   /* the predictions' half dtype */
    FL_TARGET_F32 = 1     /* float32 */
} fl_target_dtype;

typedef enum {
    FL_REDUCE_NONE = 0,
    FL_REDUCE_SUM = 1,
    FL_REDUCE_MEAN = 2,
    FL_REDUCE_BATCHMEAN = 3,  /* the sum / batch_size (Caffe's BATCH_SIZE normalization) */
    FL_REDUCE_FULLMEAN = 4    /* the sum / every output location, ignored ones included (Caffe's FULL) */
} fl_reduction;

typedef enum {
    FL_HINGE_OVR = 0,             /* one-vs-all, Caffe's HingeLoss; binary hinge is OVR with C == 1 */
    FL_HINGE_WESTON_WATKINS = 1,  /* torch.nn.functional.multi_margin_loss */
    FL_HINGE_CRAMMER_SINGER = 2
} fl_hinge_mode;

typedef struct {
    double value;       /* SUM, NONE: the sum; MEAN, BATCHMEAN, FULLMEAN: sum / weight_sum (NaN when 0) */
    double loss_sum;    /* sum of the weighted per-row (per-element) losses, in double */
    double weight_sum;  /* the denominator of MEAN, BATCHMEAN (batch_size) or FULLMEAN (n_rows) */
    int64_t n_rows;     /* rows (class losses) or elements (elementwise losses) */
    int64_t n_ignored;  /* rows whose label was ignore_index */
    int64_t n_top1;     /* rows whose target class has the highest score (top_k > 0) */
    int64_t n_topk;     /* rows whose target class is among the top_k scores (top_k > 0) */
    int64_t bad_index;  /* FL_ERR_LABEL: flat row index of the first bad label, else -1 */
    int64_t bad_value;  /* FL_ERR_LABEL: its value; FL_ERR_ARG: the fl_field at fault */
} fl_result;

/* Softmax cross-entropy.  Row loss l = s_i * sum_k a_k (lse - x_k) with
 * a_k = w_k * ((1 - eps) t_k + eps / C), t the one-hot label or the given
 * probabilities, w the class weights, s_i the sample weight.  MEAN divides by
 * sum_i s_i w_{y_i} over non-ignored rows (integer labels) or sum_i s_i
 * (probabilities): torch.nn.functional.cross_entropy's rule.
 * z-loss, focal and poly-1 terms carry the row weight w_y s_i (labels) or
 * s_i (probabilities) and are reduced like the cross-entropy.  The Hessian
 * is not computed with those options (hess must be NULL). */
typedef struct {
    int64_t outer, n_classes, inner;
    const void *logits;           /* float or double, outer * C * inner */
    const int64_t *labels;        /* outer * inner labels, or NULL when probs is given */
    const void *probs;            /* logits' dtype and shape, or NULL */
    const double *class_weight;   /* C values or NULL */
    const double *sample_weight;  /* outer * inner values or NULL */
    int64_t ignore_index;         /* labels only */
    double label_smoothing;       /* eps in [0, 1] */
    int reduction;                /* fl_reduction */
    int64_t top_k;                /* > 0: count top-1 and top-k hits (labels only) */
    int n_threads;                /* <= 0: the OpenMP default */
    void *row_loss;               /* out: outer * inner per-row losses (logits' dtype) or NULL */
    void *grad;                   /* out: d(reduced loss)/d(logits), may equal logits, or NULL */
    void *hess;                   /* out: diagonal Hessian of the reduced loss, or NULL */
    /* Options beyond PyTorch, all off at 0 (each fused into the same pass): */
    double z_loss;                /* + z_loss * lse^2 per row (PaLM) */
    double softcap;               /* > 0: logits -> softcap * tanh(x / softcap) first (Gemma 2) */
    double focal_gamma;           /* focal loss (1 - p_y)^gamma * CE (labels, no smoothing) */
    double poly1_epsilon;         /* + epsilon * (1 - p_t) per row (PolyLoss) */
    double *lse_out;              /* out: outer * inner log-sum-exps (of the capped logits) or NULL */
    int64_t batch_size;           /* BATCHMEAN: the divisor (pred's first axis), >= 0 */
    int target_dtype;             /* half entry points only: probs' fl_target_dtype */
    /* Per-row statistics for evaluation metrics, written for every row
     * (ignored rows included) when not NULL: */
    int64_t *argmax_out;          /* out: first index of the row's maximum raw logit (a NaN counts
                                   * as the maximum, as numpy.argmax) */
    double *stats_out;            /* out: 3 per row: max_k p_k, sum_k p_k^2, -sum_k p_k log p_k,
                                   * p the softmax of the (capped) logits */
} fl_softmax_ce_args;

/* Evaluation statistics of sigmoid cross-entropy, gathered in the loss's pass
 * (fl_sigmoid_ce_args.metrics).  Unweighted; elements whose target equals the
 * ignore value are left out; a target of exactly 1 is a positive, any other a
 * negative.  With p = 1 / (1 + exp(-x)) in double, an element is predicted
 * positive where p >= threshold.  Calibration bin j (0 <= j <= n_bins) holds
 * j / n_bins <= p < (j + 1) / n_bins, with the edges as numpy.linspace(0, 1,
 * n_bins + 1) computes them; p == 1 falls in bin n_bins.  Histogram bin
 * min(floor(p * auc_bins), auc_bins - 1).  A NaN logit gives p = NaN: predicted
 * negative, calibration bin n_bins, the top histogram bin, and a NaN Brier sum.
 * A "row" is n_labels consecutive elements.  Every output is overwritten by the
 * call (counts from 0), and none depends on n_threads: counts are integers,
 * sums are added in block order. */
typedef struct {
    double threshold;        /* in: in [0, 1] */
    int64_t n_bins;          /* in: >= 1 calibration bins */
    int64_t auc_bins;        /* in: >= 0 histogram bins per label and class (0: no histogram) */
    int64_t n_labels;        /* in: row_len (labels on the last axis) or 1 (each element a row) */
    int64_t *label_counts;   /* out: n_labels * (3 + 2 * auc_bins): per label, true positives,
                              * positives, predicted positives, then the histogram of the
                              * negatives' p, then of the positives' p */
    int64_t *counts;         /* out: 3 + 2 * (n_bins + 1): elements counted, rows with an element
                              * counted, such rows all predicted right; per calibration bin the
                              * elements, then the positives */
    double *sums;            /* out: 1 + (n_bins + 1): sum (p - t)^2, per calibration bin sum p */
} fl_sigmoid_metrics;

/* Sigmoid cross-entropy (binary and multi-label), elementwise over the
 * logits viewed as (n_rows, row_len).  l = w * (pw_c t softplus(-x) + (1 - t) softplus(x)).
 * MEAN divides by the number of elements (torch's rule). */
typedef struct {
    int64_t n_rows, row_len;
    const void *logits;
    const void *target;           /* logits' dtype and shape */
    const void *weight;           /* logits' dtype: weight[r * weight_row_stride + c], or NULL */
    int64_t weight_row_stride;    /* row_len (full weight) or 0 (one row broadcast) */
    const void *pos_weight;       /* logits' dtype, row_len values, or NULL */
    int reduction;
    int n_threads;
    void *loss;                   /* out: elementwise losses or NULL */
    void *grad;
    void *hess;                   /* NULL when an option below is on */
    /* Options beyond PyTorch (off at 0 / negative alpha), torchvision's
     * sigmoid_focal_loss: l = w alpha_t (1 - p_t)^gamma ce + w eps (1 - p_t),
     * p_t = p t + (1 - p)(1 - t), alpha_t = alpha t + (1 - alpha)(1 - t). */
    double focal_gamma;
    double focal_alpha;           /* < 0: no alpha weighting */
    double poly1_epsilon;
    int64_t batch_size;           /* BATCHMEAN: the divisor (pred's first axis), >= 0 */
    /* Caffe's ignore_label: target elements equal to ignore_value (when
     * has_ignore) contribute 0 to the loss, gradient and Hessian; MEAN then
     * divides by the number of elements not ignored (n_ignored reports them). */
    int has_ignore;
    double ignore_value;
    int target_dtype;             /* half entry points only: target's fl_target_dtype */
    fl_sigmoid_metrics *metrics;  /* evaluation statistics of the same pass, or NULL */
} fl_sigmoid_ce_args;

/* Hinge losses over (outer, C, inner) scores.  Binary hinge is OVR with C == 1
 * and a +-1 target.  ovr: l = sum_c w_c h(margin - t_c x_c), t = +-1 from the
 * label or from the given +-1 target; weston_watkins: sum_{c != y} w_y
 * h(margin - x_y + x_c) / C; crammer_singer: w_y h(margin + max_{c != y} x_c - x_y).
 * h(v) = max(0, v) or its square.  Row losses are multiplied by s_i; MEAN
 * divides by sum_i s_i (the number of rows without sample weights). */
typedef struct {
    int64_t outer, n_classes, inner;
    const void *scores;
    const int64_t *labels;        /* or NULL when target is given (ovr only) */
    const void *target;           /* +-1 values in the scores' dtype and shape, or NULL */
    const double *class_weight;   /* C values or NULL */
    const double *sample_weight;  /* outer * inner values or NULL */
    double margin;
    int squared;
    int mode;                     /* fl_hinge_mode */
    int reduction;
    int n_threads;
    void *row_loss;
    void *grad;
    int64_t top_k;                /* > 0: count top-1 and top-k hits (labels only) */
    int64_t batch_size;           /* BATCHMEAN: the divisor (pred's first axis), >= 0 */
    int target_dtype;             /* half entry points only: target's fl_target_dtype */
    int64_t *argmax_out;          /* out: per row, the first index of the maximum score (a NaN
                                   * counts as the maximum, as numpy.argmax), or NULL */
} fl_hinge_args;

/* Mean squared error, elementwise over (n_rows, row_len).
 * l = w (x - t)^2; MEAN divides by sum(w) over all elements (number of
 * elements without weights): torch.nn.functional.mse_loss's rule. */
typedef struct {
    int64_t n_rows, row_len;
    const void *pred;
    const void *target;
    const void *weight;
    int64_t weight_row_stride;
    int reduction;
    int n_threads;
    void *loss;
    void *grad;
    void *hess;
    int64_t batch_size;           /* BATCHMEAN: the divisor (pred's first axis), >= 0 */
    int target_dtype;             /* half entry points only: target's fl_target_dtype */
} fl_mse_args;

fl_status fl_softmax_ce_f32(const fl_softmax_ce_args *args, fl_result *result);
fl_status fl_softmax_ce_f64(const fl_softmax_ce_args *args, fl_result *result);
fl_status fl_sigmoid_ce_f32(const fl_sigmoid_ce_args *args, fl_result *result);
fl_status fl_sigmoid_ce_f64(const fl_sigmoid_ce_args *args, fl_result *result);
fl_status fl_hinge_f32(const fl_hinge_args *args, fl_result *result);
fl_status fl_hinge_f64(const fl_hinge_args *args, fl_result *result);
fl_status fl_mse_f32(const fl_mse_args *args, fl_result *result);
fl_status fl_mse_f64(const fl_mse_args *args, fl_result *result);

/* Half precision: predictions in IEEE binary16 (_f16) or bfloat16 (_bf16),
 * stored as uint16_t bit patterns, read directly (no float32 copy of the
 * array): each piece of the input is converted into a small per-thread
 * float32 buffer, the float32 kernel runs on it, and the gradient / Hessian
 * are rounded once (to nearest, ties to even) back into the half dtype.
 * The same argument structs, with these dtypes:
 *   logits / scores / pred, grad, hess: the half dtype (grad may equal the
 *       predictions: in place);
 *   probs / target: the half dtype or float32, as target_dtype says;
 *   row_loss / loss (per-row or per-element losses): float32;
 *   sigmoid weight and pos_weight, MSE weight: float32;
 *   class_weight, sample_weight, lse_out: double, as always.
 * Sums are in double and do not depend on n_threads.  The float32 / float64
 * entry points never read target_dtype (callers built against version 1 of
 * this header, whose structs end before it, keep working). */
fl_status fl_softmax_ce_f16(const fl_softmax_ce_args *args, fl_result *result);
fl_status fl_softmax_ce_bf16(const fl_softmax_ce_args *args, fl_result *result);
fl_status fl_sigmoid_ce_f16(const fl_sigmoid_ce_args *args, fl_result *result);
fl_status fl_sigmoid_ce_bf16(const fl_sigmoid_ce_args *args, fl_result *result);
fl_status fl_hinge_f16(const fl_hinge_args *args, fl_result *result);
fl_status fl_hinge_bf16(const fl_hinge_args *args, fl_result *result);
fl_status fl_mse_f16(const fl_mse_args *args, fl_result *result);
fl_status fl_mse_bf16(const fl_mse_args *args, fl_result *result);

/* Conversions of the active SIMD path (the same bits on every path):
 * half (0: float16, 1: bfloat16) bit patterns to float32 and back
 * (round to nearest even; NaN stays NaN, made quiet). */
void fl_half_to_f32(int kind, const uint16_t *src, float *dst, int64_t n);
void fl_f32_to_half(int kind, const float *src, uint16_t *dst, int64_t n);

/* Copy nbytes from src to dst with n_threads threads (the bandwidth yardstick). */
void fl_parallel_copy(void *dst, const void *src, int64_t nbytes, int n_threads);
/* Read nbytes with n_threads threads; returns a checksum (the read-only yardstick). */
uint64_t fl_parallel_read(const void *src, int64_t nbytes, int n_threads);

/* Runtime information and control. */
int fl_openmp_enabled(void);           /* 1 when compiled with OpenMP */
int fl_default_threads(void);          /* omp_get_max_threads(), 1 without OpenMP */
const char *fl_simd_in_use(void);      /* "baseline", "avx2" or "avx512" */
const char *fl_simd_built(void);       /* comma-separated list of compiled paths */
const char *fl_simd_supported(void);   /* built paths this CPU can run */
int fl_set_simd(const char *name);     /* force a path ("best" = the best supported); 0 on success */

#ifdef __cplusplus
}
#endif
#endif /* FASTLOSS_H */
