/*
 * fl_math.h -- branch-free elementary functions for the loss kernels.
 *
 * Written so that GCC and Clang vectorise the loops that call them WITHOUT
 * -ffast-math: no libm calls, no data-dependent branches (only selects), no
 * float->int conversions (the integer part of x/ln2 is read from the bits of
 * a "magic number" sum), unsigned integer arithmetic only (no UB on NaN).
 * IEEE special values are handled explicitly, so the kernels keep the documented
 * inf/NaN contract.
 *
 * Accuracy, measured by tests/c/test_math.c on dense grids against libm and
 * long double (run in CI):
 *   fl_exp_f32    max 1.0 ulp on [-103, 88]
 *   fl_exp_f64    max 1.15 ulp on [-745, 709]
 *   fl_log1p01_*  log1p(u) for u in [0, 1]: max 1.94 ulp
 *   fl_log1p_f64  log1p(u) for u >= 0: max 2.0 ulp
 * Method: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, Taylor
 * polynomial for exp(r) (degree 7 for float, 13 for double: truncation
 * error below half an ulp), scaling by 2^n in two steps so that subnormal
 * results round once.  log1p(u) = 2 atanh(s), s = u / (2 + u), after folding
 * u > 1/2 onto (u - 1) / 2 (exact by Sterbenz) plus ln 2, so |s| <= 0.2.
 */
#ifndef FL_MATH_H
#define FL_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER)
#define FL_INLINE static __forceinline
#else
#define FL_INLINE static inline __attribute__((always_inline))
#endif

FL_INLINE uint32_t fl_bits_f32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
FL_INLINE float fl_from_bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
FL_INLINE uint64_t fl_bits_f64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
FL_INLINE double fl_from_bits_f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/* The exp of an argument already clamped to the range where the scaling below
 * is valid (float: [-104, 89]; double: [-746, 710]; NaN passes through to a
 * NaN).  fl_exp_* and fl_expn_* differ only in the clamps they apply first. */
FL_INLINE float fl_exp_core_f32(float xc)
{
    const float magic = 12582912.0f;              /* 1.5 * 2^23 */
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;            /* 9 significant bits: n * ln2_hi exact */
    const float ln2_lo = -2.12194440e-4f;
    float t = xc * log2e + magic;                 /* round to nearest integer */
    float n = t - magic;
    uint32_t nb = fl_bits_f32(t) - fl_bits_f32(magic);   /* n as two's complement */
    float r = (xc - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n = 2^n1 * 2^n2 with n1 = n/2 (arithmetic shift), each a normal power of 2 */
    uint32_t n1 = (uint32_t)((int32_t)nb >> 1);
    uint32_t n2 = nb - n1;
    float s1 = fl_from_bits_f32((n1 + 127u) << 23);
    float s2 = fl_from_bits_f32((n2 + 127u) << 23);
    return (p * s1) * s2;
}

FL_INLINE double fl_exp_core_f64(double xc)
{
    const double magic = 6755399441055744.0;      /* 1.5 * 2^52 */
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;   /* 32 significant bits */
    const double ln2_lo = 1.90821492927058770002e-10;
    double t = xc * log2e + magic;
    double n = t - magic;
    uint64_t nb = fl_bits_f64(t) - fl_bits_f64(magic);
    double r = (xc - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t n1 = (uint64_t)((int64_t)nb >> 1);
    uint64_t n2 = nb - n1;
    double s1 = fl_from_bits_f64((n1 + 1023u) << 52);
    double s2 = fl_from_bits_f64((n2 + 1023u) << 52);
    return (p * s1) * s2;
}

/* exp(x) in float.  exp(-inf) = 0, exp(+inf) = inf, exp(NaN) = NaN. */
FL_INLINE float fl_exp_f32(float x)
{
    float xc = x < -104.0f ? -104.0f : x;
    xc = xc > 89.0f ? 89.0f : xc;
    xc = (x != x) ? 0.0f : xc;                    /* NaN: compute anything, select at the end */
    float y = fl_exp_core_f32(xc);
    return (x != x) ? x : y;
}

/* exp(x) in double.  Same contract as fl_exp_f32. */
FL_INLINE double fl_exp_f64(double x)
{
    double xc = x < -746.0 ? -746.0 : x;
    xc = xc > 710.0 ? 710.0 : xc;
    xc = (x != x) ? 0.0 : xc;
    double y = fl_exp_core_f64(xc);
    return (x != x) ? x : y;
}

/* exp(x) for x <= 0 (the softmax's z - max z, tanh's exp(-2|u|), the sigmoid's
 * exp(-|x|)): the same core as fl_exp_* with the lower clamp only.  No upper
 * clamp (x <= 0 cannot overflow) and no NaN select: a NaN argument propagates
 * through the arithmetic to a NaN result (its payload is not kept).  Equal to
 * fl_exp_* bit for bit on [-inf, 0] (tests/c/test_math.c); about a third fewer
 * instructions. */
FL_INLINE float fl_expn_f32(float x)
{
    return fl_exp_core_f32(x < -104.0f ? -104.0f : x);    /* NaN stays NaN */
}

FL_INLINE double fl_expn_f64(double x)
{
    return fl_exp_core_f64(x < -746.0 ? -746.0 : x);
}

/* log1p(u) for u in [0, 1] (the softplus term log1p(exp(-|x|))). */
FL_INLINE float fl_log1p01_f32(float u)
{
    int big = u > 0.5f;
    float w = big ? (u - 1.0f) * 0.5f : u;        /* log1p(u) = ln2 + log1p((u-1)/2) */
    float k = big ? 0.693147180559945309f : 0.0f;
    float s = w / (2.0f + w);
    float z = s * s;
    float p = 1.0f / 11.0f;
    p = p * z + 1.0f / 9.0f;
    p = p * z + 1.0f / 7.0f;
    p = p * z + 1.0f / 5.0f;
    p = p * z + 1.0f / 3.0f;
    p = p * z;
    return k + (2.0f * s + 2.0f * s * p);
}

/* 2 atanh(s) = log((1 + s) / (1 - s)) for |s| <= 0.2, in double: the odd
 * series to s^23 (truncation below 1e-17 relative). */
FL_INLINE double fl_2atanh_f64(double s)
{
    double z = s * s;
    double p = 1.0 / 23.0;
    p = p * z + 1.0 / 21.0;
    p = p * z + 1.0 / 19.0;
    p = p * z + 1.0 / 17.0;
    p = p * z + 1.0 / 15.0;
    p = p * z + 1.0 / 13.0;
    p = p * z + 1.0 / 11.0;
    p = p * z + 1.0 / 9.0;
    p = p * z + 1.0 / 7.0;
    p = p * z + 1.0 / 5.0;
    p = p * z + 1.0 / 3.0;
    p = p * z;
    return 2.0 * s + 2.0 * s * p;
}

FL_INLINE double fl_log1p01_f64(double u)
{
    int big = u > 0.5;
    double w = big ? (u - 1.0) * 0.5 : u;
    double k = big ? 0.69314718055994530942 : 0.0;
    double s = w / (2.0 + w);
    return k + fl_2atanh_f64(s);
}

/* log1p(u) for any u >= 0 (also +inf and NaN), branch-free, in double:
 * log1p01 for u <= 1 (keeps tiny u exact); otherwise s = 1 + u is split as
 * 2^k f with f in [sqrt(1/2), sqrt(2)) and log s = k ln2 + 2 atanh((f-1)/(f+1)). */
FL_INLINE double fl_log1p_f64(double u)
{
    double small = fl_log1p01_f64(u <= 1.0 ? u : 1.0);
    double sv = 1.0 + (u > 1.0 ? u : 1.0);
    uint64_t b = fl_bits_f64(sv);
    /* bias the exponent so that f lands in [sqrt(1/2), sqrt(2)) */
    uint64_t bb = b + (0x3ff0000000000000ULL - 0x3fe6a09e667f3bcdULL);
    int64_t k = (int64_t)(bb >> 52) - 0x3ff;
    double f = fl_from_bits_f64((bb & 0x000fffffffffffffULL) + 0x3fe6a09e667f3bcdULL);
    double s = (f - 1.0) / (f + 1.0);
    double big = (double)k * 0.69314718055994530942 + fl_2atanh_f64(s);
    big = u == (double)INFINITY ? u : big;
    double r = u <= 1.0 ? small : big;
    return u != u ? u : r;
}

/* log(v) for v >= 0 in double, branch-free: v = 2^k f, f in [sqrt(1/2),
 * sqrt(2)), log v = k ln2 + 2 atanh((f - 1) / (f + 1)); subnormal v is
 * scaled by 2^64 first.  log(0) = -inf, log(inf) = inf, NaN and v < 0 -> NaN. */
FL_INLINE double fl_log_f64(double v)
{
    int sub = v < 2.2250738585072014e-308;
    double vs = sub ? v * 18446744073709551616.0 : v;
    uint64_t b = fl_bits_f64(vs) + (0x3ff0000000000000ULL - 0x3fe6a09e667f3bcdULL);
    int64_t k = (int64_t)(b >> 52) - 0x3ff - (sub ? 64 : 0);
    double f = fl_from_bits_f64((b & 0x000fffffffffffffULL) + 0x3fe6a09e667f3bcdULL);
    double s = (f - 1.0) / (f + 1.0);
    double r = (double)k * 0.69314718055994530942 + fl_2atanh_f64(s);
    r = v == 0.0 ? -(double)INFINITY : r;
    r = v == (double)INFINITY ? v : r;
    return (v != v || v < 0.0) ? (double)NAN : r;
}

#endif /* FL_MATH_H */
