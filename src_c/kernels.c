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
 * bit-exact conversion of fl_internal.h otherwise.  bfloat16: below. */
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

/* bfloat16 -> float32 is the 16-bit pattern shifted into the top half;
 * float32 -> bfloat16 rounds to nearest even by adding 0x7fff plus the kept
 * lowest bit and shifting down, NaN made quiet (0x40 set, payload's top bits
 * kept).  AVX-512: 16 lanes, tails through masked loads and stores; AVX2: 16
 * values per step (two 8-lane halves packed with unsigned saturation, exact:
 * every lane is below 2^16), tails through the portable conversion (the same
 * integer arithmetic); the baseline: a loop the compiler vectorises. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
static inline __m512i fl_bf16_round16(__m512i x)
{
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __m512i q = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_mov_epi32(r, nan, q);
}
#elif defined(__AVX2__)
static inline __m256i fl_bf16_round8(__m256i x)
{
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
    /* |x| as a signed int is >= 0: a signed compare is the unsigned one */
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, q, nan);
}
#endif

static void FL_CAT(fl_bf16_to_f32, FL_TARGET)(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_si512((void *)(dst + i),
                            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                                  (const __m256i *)(src + i))), 16));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_epi32((void *)(dst + i), m,
                                 _mm512_slli_epi32(_mm512_cvtepu16_epi32(
                                     _mm256_maskz_loadu_epi16(m, src + i)), 16));
    }
#elif defined(__AVX2__)
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16));
        _mm256_storeu_si256((__m256i *)(dst + i + 8),
                            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)),
                                              16));
    }
    for (; i < n; ++i) dst[i] = fl_bf16_to_f32_scalar(src[i]);
#else
    FL_SIMD
    for (i = 0; i < n; ++i) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, 4);
    }
#endif
}

static void FL_CAT(fl_f32_to_bf16, FL_TARGET)(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtepi32_epi16(fl_bf16_round16(_mm512_loadu_si512(
                                (const void *)(src + i)))));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_cvtepi32_storeu_epi16((void *)(dst + i), m,
                                          fl_bf16_round16(_mm512_maskz_loadu_epi32(m, src + i)));
    }
#elif defined(__AVX2__)
    for (; i + 16 <= n; i += 16) {
        const __m256i a = fl_bf16_round8(_mm256_loadu_si256((const __m256i *)(src + i)));
        const __m256i b = fl_bf16_round8(_mm256_loadu_si256((const __m256i *)(src + i + 8)));
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8));
    }
    for (; i < n; ++i) dst[i] = fl_f32_to_bf16_scalar(src[i]);
#else
    FL_SIMD
    for (i = 0; i < n; ++i) {
        uint32_t x, r, q;
        memcpy(&x, src + i, 4);
        r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
        q = (x >> 16) | 0x40u;
        dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : r);
    }
#endif
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
