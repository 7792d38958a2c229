/*
 * kernels.c -- instantiates every loss kernel for float and double.
 *
 * setup.py compiles this file once per SIMD target, each time with that
 * target's flags and -DFL_TARGET=<name> (baseline, avx2, avx512), so the same
 * loops become one object per CPU level; dispatch.c picks a table at run time.
 * There is no OpenMP here: the kernels are per-block and serial; the parallel
 * loop over blocks lives in dispatch.c.
 */
#include "fl_internal.h"

#ifndef FL_TARGET
#define FL_TARGET baseline
#endif

#define FL_CAT_(a, b) a##_##b
#define FL_CAT(a, b) FL_CAT_(a, b)
#define FL_STR_(a) #a
#define FL_STR(a) FL_STR_(a)
#define FL_NAME(base) FL_CAT(FL_CAT(base, FL_SFX), FL_TARGET)

/* Sum n values of a buffer in double (vector lanes, fixed order). */
#define FL_LANE_SUM_BODY                                                   \
    double s = 0.0;                                                        \
    int64_t i;                                                             \
    FL_SIMD_SUM(s)                                                         \
    for (i = 0; i < n; ++i) s += (double)v[i];                             \
    return s;

/* Copy a row to memory that is not read soon, without reading it first
 * (non-temporal stores; plain stores where the target has none). */
#if defined(__SSE2__) || defined(_M_X64)
#include <immintrin.h>
#define FL_HAVE_STREAM 1
#endif

static inline void fl_stream_f32(float *dst, const float *src, int64_t n)
{
    int64_t i = 0;
#ifdef FL_HAVE_STREAM
#if defined(__AVX512F__)
    for (; i < n && ((uintptr_t)(dst + i) & 63); ++i) dst[i] = src[i];
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#elif defined(__AVX__)
    for (; i < n && ((uintptr_t)(dst + i) & 31); ++i) dst[i] = src[i];
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
#else
    for (; i < n && ((uintptr_t)(dst + i) & 15); ++i) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
#endif
#endif
    for (; i < n; ++i) dst[i] = src[i];
}

static inline void fl_stream_f64(double *dst, const double *src, int64_t n)
{
    int64_t i = 0;
#ifdef FL_HAVE_STREAM
#if defined(__AVX512F__)
    for (; i < n && ((uintptr_t)(dst + i) & 63); ++i) dst[i] = src[i];
    for (; i + 8 <= n; i += 8) _mm512_stream_pd(dst + i, _mm512_loadu_pd(src + i));
#elif defined(__AVX__)
    for (; i < n && ((uintptr_t)(dst + i) & 31); ++i) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
#else
    for (; i < n && ((uintptr_t)(dst + i) & 15); ++i) dst[i] = src[i];
    for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
#endif
#endif
    for (; i < n; ++i) dst[i] = src[i];
}

/* Make the non-temporal stores of this thread visible before it moves on. */
static inline void fl_stream_fence(void)
{
#ifdef FL_HAVE_STREAM
    _mm_sfence();
#endif
}

/* ---- float ---- */
#define FL_T float
#define FL_C float                     /* the type elements are computed in */
#define FL_LD(p) ((FL_C) * (p))        /* typed element load and store: a half type */
#define FL_ST(p, v) (*(p) = (FL_T)(v)) /* converts here (once, rounding to nearest) */
#define FL_SFX f32
#define FL_STREAM fl_stream_f32
#define FL_EXP fl_exp_f32
#define FL_LOG1P01 fl_log1p01_f32
FL_INLINE double FL_NAME(lane_sum)(const FL_T *v, int64_t n) { FL_LANE_SUM_BODY }
#include "softmax_ce.h"
#include "sigmoid_ce.h"
#include "hinge.h"
#include "mse.h"
#undef FL_T
#undef FL_C
#undef FL_LD
#undef FL_ST
#undef FL_SFX
#undef FL_STREAM
#undef FL_EXP
#undef FL_LOG1P01

/* ---- double ---- */
#define FL_T double
#define FL_C double
#define FL_LD(p) ((FL_C) * (p))
#define FL_ST(p, v) (*(p) = (FL_T)(v))
#define FL_SFX f64
#define FL_STREAM fl_stream_f64
#define FL_EXP fl_exp_f64
#define FL_LOG1P01 fl_log1p01_f64
FL_INLINE double FL_NAME(lane_sum)(const FL_T *v, int64_t n) { FL_LANE_SUM_BODY }
#include "softmax_ce.h"
#include "sigmoid_ce.h"
#include "hinge.h"
#include "mse.h"
#undef FL_T
#undef FL_C
#undef FL_LD
#undef FL_ST
#undef FL_SFX
#undef FL_STREAM
#undef FL_EXP
#undef FL_LOG1P01

#define FL_PAIR(base) { FL_CAT(FL_CAT(base, f32), FL_TARGET), FL_CAT(FL_CAT(base, f64), FL_TARGET) }

const fl_kernel_table FL_CAT(fl_table, FL_TARGET) = {
    FL_STR(FL_TARGET),
    FL_PAIR(fl_sce_block),
    FL_PAIR(fl_sig_block),
    FL_PAIR(fl_hinge_block),
    FL_PAIR(fl_mse_block),
    FL_PAIR(fl_mse_wsum_block),
    FL_PAIR(fl_sig_ignored_block),
};
