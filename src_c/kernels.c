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
#define FL_EXPN fl_expn_f32            /* exp of x <= 0 */
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
#undef FL_EXPN
#undef FL_LOG1P01

/* ---- double ---- */
#define FL_T double
#define FL_C double
#define FL_LD(p) ((FL_C) * (p))
#define FL_ST(p, v) (*(p) = (FL_T)(v))
#define FL_SFX f64
#define FL_STREAM fl_stream_f64
#define FL_EXP fl_exp_f64
#define FL_EXPN fl_expn_f64
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
#undef FL_EXPN
#undef FL_LOG1P01

/* ---- half <-> float32 ----
 * float16: AVX-512F's and F16C's conversion instructions where the target has
 * them (tails through the same instruction on a padded copy), the portable
 * bit-exact conversion of fl_internal.h otherwise.  bfloat16: integer
 * arithmetic the compiler vectorises, identical on every target. */
static void FL_CAT(fl_f16_to_f32, FL_TARGET)(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {
        uint16_t tmp[16] = {0};
        float out[16];
        memcpy(tmp, src + i, (size_t)(n - i) * 2);
        _mm512_storeu_ps(out, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tmp)));
        memcpy(dst + i, out, (size_t)(n - i) * 4);
    }
#elif defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    if (i < n) {
        uint16_t tmp[8] = {0};
        float out[8];
        memcpy(tmp, src + i, (size_t)(n - i) * 2);
        _mm256_storeu_ps(out, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)tmp)));
        memcpy(dst + i, out, (size_t)(n - i) * 4);
    }
#else
    for (; i < n; ++i) dst[i] = fl_f16_to_f32_scalar(src[i]);
#endif
}

static void FL_CAT(fl_f32_to_f16, FL_TARGET)(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        float tmp[16] = {0};
        uint16_t out[16];
        memcpy(tmp, src + i, (size_t)(n - i) * 4);
        _mm256_storeu_si256((__m256i *)out,
                            _mm512_cvtps_ph(_mm512_loadu_ps(tmp),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        memcpy(dst + i, out, (size_t)(n - i) * 2);
    }
#elif defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        float tmp[8] = {0};
        uint16_t out[8];
        memcpy(tmp, src + i, (size_t)(n - i) * 4);
        _mm_storeu_si128((__m128i *)out,
                         _mm256_cvtps_ph(_mm256_loadu_ps(tmp),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        memcpy(dst + i, out, (size_t)(n - i) * 2);
    }
#else
    for (; i < n; ++i) dst[i] = fl_f32_to_f16_scalar(src[i]);
#endif
}

static void FL_CAT(fl_bf16_to_f32, FL_TARGET)(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i;
    FL_SIMD
    for (i = 0; i < n; ++i) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, 4);
    }
}

static void FL_CAT(fl_f32_to_bf16, FL_TARGET)(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i;
    FL_SIMD
    for (i = 0; i < n; ++i) {
        uint32_t x, r, q;
        memcpy(&x, src + i, 4);
        r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
        q = (x >> 16) | 0x40u;
        dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : r);
    }
}

/* The same conversions to half, written with non-temporal stores (the output
 * is not read soon: no read-for-ownership of it), the same bits: every value
 * goes through the function above.  Targets without AVX use plain stores. */
#if defined(__AVX__)
#define FL_HALF_STREAM_BODY(conv)                                                  \
    int64_t i = (int64_t)(((32u - ((uintptr_t)dst & 31u)) & 31u) / 2u);            \
    if ((uintptr_t)dst & 1u) i = n;             /* never for uint16 arrays */       \
    if (i > n) i = n;                                                              \
    conv(src, dst, i);                                                             \
    for (; i + 16 <= n; i += 16) {                                                 \
        uint16_t tmp[16];                                                          \
        conv(src + i, tmp, 16);                                                    \
        _mm256_stream_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)tmp)); \
    }                                                                              \
    conv(src + i, dst + i, n - i);                                                 \
    _mm_sfence();
#else
#define FL_HALF_STREAM_BODY(conv) conv(src, dst, n);
#endif

static void FL_CAT(fl_f32_to_f16_stream, FL_TARGET)(const float *src, uint16_t *dst, int64_t n)
{
    FL_HALF_STREAM_BODY(FL_CAT(fl_f32_to_f16, FL_TARGET))
}

static void FL_CAT(fl_f32_to_bf16_stream, FL_TARGET)(const float *src, uint16_t *dst, int64_t n)
{
    FL_HALF_STREAM_BODY(FL_CAT(fl_f32_to_bf16, FL_TARGET))
}

#define FL_PAIR(base) { FL_CAT(FL_CAT(base, f32), FL_TARGET), FL_CAT(FL_CAT(base, f64), FL_TARGET) }

const fl_kernel_table FL_CAT(fl_table, FL_TARGET) = {
    FL_STR(FL_TARGET),
    FL_PAIR(fl_sce_block),
    FL_PAIR(fl_sig_block),
    FL_PAIR(fl_hinge_block),
    FL_PAIR(fl_mse_block),
    FL_PAIR(fl_mse_wsum_block),
    FL_PAIR(fl_sig_ignored_block),
    { FL_CAT(fl_f16_to_f32, FL_TARGET), FL_CAT(fl_bf16_to_f32, FL_TARGET) },
    { FL_CAT(fl_f32_to_f16, FL_TARGET), FL_CAT(fl_f32_to_bf16, FL_TARGET) },
    { FL_CAT(fl_f32_to_f16_stream, FL_TARGET), FL_CAT(fl_f32_to_bf16_stream, FL_TARGET) },
};
