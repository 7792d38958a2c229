/*
 * test_half.c -- the half <-> float32 conversions of every SIMD path this CPU
 * runs, against the portable conversion and against an independent oracle:
 *   - all 65536 float16 and bfloat16 bit patterns to float32 (exact values;
 *     NaN stays NaN, made quiet);
 *   - float32 to half, round to nearest even, on every half value, every
 *     midpoint between neighbours (the ties) and its float32 neighbours, the
 *     overflow range, subnormals, infinities, NaN payloads and a large random
 *     sample of bit patterns; the oracle picks the nearest half by comparing
 *     exact distances in double.
 * Exit status 0 only when every check passes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_internal.h"

static long n_checks = 0, n_fails = 0;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        ++n_checks;                                             \
        if (!(cond)) {                                          \
            if (++n_fails <= 40) {                              \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);     \
                printf(__VA_ARGS__);                            \
                printf("\n");                                   \
            }                                                   \
        }                                                       \
    } while (0)

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Exact value of a half pattern (kind 0 float16, 1 bfloat16), by formula. */
static double half_value(int kind, uint32_t h)
{
    int ebits = kind ? 8 : 5, mbits = kind ? 7 : 10, bias = kind ? 127 : 15;
    uint32_t s = h >> 15, e = (h >> mbits) & ((1u << ebits) - 1), m = h & ((1u << mbits) - 1);
    double v;
    if (e == (1u << ebits) - 1) return m ? NAN : (s ? -INFINITY : INFINITY);
    if (e == 0) v = ldexp((double)m, 1 - bias - mbits);
    else v = ldexp((double)(m | (1u << mbits)), (int)e - bias - mbits);
    return s ? -v : v;
}

/* The nearest half to the float32 x, ties to even, by exact distances; the
 * pattern just past the largest finite one stands for 2^(emax + 1) (inf). */
static uint16_t oracle_round(int kind, float x)
{
    uint32_t inf = kind ? 0x7f80u : 0x7c00u, lo = 0, hi = inf, sign = f2u(x) >> 31 ? 0x8000u : 0;
    double ax = fabs((double)x), top = kind ? ldexp(1.0, 128) : 65536.0, vlo, vhi;
    if (ax >= top) return (uint16_t)(sign | inf);
    while (hi - lo > 1) {                 /* value(lo) <= ax < value(hi) */
        uint32_t mid = (lo + hi) / 2;
        if (half_value(kind, mid) <= ax) lo = mid;
        else hi = mid;
    }
    vlo = half_value(kind, lo);
    vhi = hi == inf ? top : half_value(kind, hi);
    if (ax - vlo < vhi - ax) return (uint16_t)(sign | lo);
    if (ax - vlo > vhi - ax) return (uint16_t)(sign | hi);
    return (uint16_t)(sign | ((lo & 1) ? hi : lo));
}

static int is_nan_half(int kind, uint16_t h)
{
    return kind ? ((h & 0x7f80u) == 0x7f80u && (h & 0x7fu)) : ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu));
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t rnd32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* float32 inputs for the rounding checks */
static float *make_sample(int64_t *n_out)
{
    int64_t cap = 4 * 65536 * 6 + 4000000, n = 0;
    float *v = (float *)malloc((size_t)cap * sizeof(float));
    uint32_t h;
    int kind, i;
    for (kind = 0; kind < 2; ++kind)
        for (h = 0; h < 0x10000u; ++h) {
            double a = half_value(kind, h), b;
            uint16_t nb = (uint16_t)(h + 1);
            if (a != a || isinf(a)) continue;
            v[n++] = (float)a;
            if ((h & 0x7fffu) + 1 >= (kind ? 0x7f80u : 0x7c00u)) continue;
            b = half_value(kind, nb);
            if (b != b || isinf(b)) continue;
            {
                float mid = (float)((a + b) / 2);   /* exact: halves have few digits */
                v[n++] = mid;
                v[n++] = nextafterf(mid, INFINITY);
                v[n++] = nextafterf(mid, -INFINITY);
            }
        }
    /* overflow range, subnormals and specials */
    for (i = 0; i < 2000; ++i) {
        v[n++] = 65504.0f + (float)i * 0.03125f;
        v[n++] = -(65504.0f + (float)i * 0.03125f);
        v[n++] = u2f(0x7f7f0000u + (uint32_t)i * 37u);
    }
    v[n++] = INFINITY;
    v[n++] = -INFINITY;
    v[n++] = 0.0f;
    v[n++] = -0.0f;
    v[n++] = u2f(1);                       /* smallest float32 subnormal */
    v[n++] = u2f(0x807fffffu);
    v[n++] = u2f(0x33000000u);             /* 2^-25: the tie below the smallest half subnormal */
    v[n++] = u2f(0x33000001u);
    for (i = 0; i < 2000000; ++i) v[n++] = u2f(rnd32());
    for (i = 0; i < 2000000; ++i) v[n++] = u2f(0x7f800001u + rnd32() % 0x7fffffu);  /* NaN payloads */
    *n_out = n;
    return v;
}

int main(void)
{
    char names[64];
    char *name, *save = NULL;
    int64_t n_sample, i;
    float *sample = make_sample(&n_sample);
    uint16_t *all = (uint16_t *)malloc(65536 * sizeof(uint16_t));
    float *f = (float *)malloc(65536 * sizeof(float));
    uint16_t *back = (uint16_t *)malloc((size_t)n_sample * sizeof(uint16_t));
    uint16_t *ref_f16 = (uint16_t *)malloc((size_t)n_sample * sizeof(uint16_t));
    uint16_t *ref_bf16 = (uint16_t *)malloc((size_t)n_sample * sizeof(uint16_t));
    uint32_t h;
    for (h = 0; h < 0x10000u; ++h) all[h] = (uint16_t)h;

    /* the portable conversion against the oracle */
    for (i = 0; i < n_sample; ++i) {
        float x = sample[i];
        ref_f16[i] = fl_f32_to_f16_scalar(x);
        ref_bf16[i] = fl_f32_to_bf16_scalar(x);
        if (x != x) {
            CHECK(is_nan_half(0, ref_f16[i]) && (ref_f16[i] & 0x200u) && (ref_f16[i] >> 15) == (f2u(x) >> 31),
                  "f16(NaN 0x%08x) = 0x%04x", f2u(x), ref_f16[i]);
            CHECK(is_nan_half(1, ref_bf16[i]) && (ref_bf16[i] & 0x40u) && (ref_bf16[i] >> 15) == (f2u(x) >> 31),
                  "bf16(NaN 0x%08x) = 0x%04x", f2u(x), ref_bf16[i]);
        } else {
            CHECK(ref_f16[i] == oracle_round(0, x), "f16(%.9g = 0x%08x) = 0x%04x, expected 0x%04x",
                  x, f2u(x), ref_f16[i], oracle_round(0, x));
            CHECK(ref_bf16[i] == oracle_round(1, x), "bf16(%.9g = 0x%08x) = 0x%04x, expected 0x%04x",
                  x, f2u(x), ref_bf16[i], oracle_round(1, x));
        }
    }
    for (h = 0; h < 0x10000u; ++h) {
        int kind;
        for (kind = 0; kind < 2; ++kind) {
            float g = kind ? fl_bf16_to_f32_scalar((uint16_t)h) : fl_f16_to_f32_scalar((uint16_t)h);
            double e = half_value(kind, h);
            if (e != e)
                CHECK(g != g && (f2u(g) >> 31) == (h >> 15), "kind %d: 0x%04x -> %g", kind, h, g);
            else
                CHECK((double)g == e && !signbit(g) == !signbit(e), "kind %d: 0x%04x -> %.9g, expected %.9g",
                      kind, h, g, e);
        }
    }
    printf("  portable conversion checked against the oracle\n");

    /* bfloat16 rounding, by hand: ties to even, carries into the exponent,
     * overflow, subnormals and NaN payloads (quiet, sign and top payload bits kept) */
    {
        static const uint32_t bf_in[][2] = {
            {0x3f808000u, 0x3f80u}, {0x3f818000u, 0x3f82u}, {0x3f808001u, 0x3f81u},
            {0x3f807fffu, 0x3f80u}, {0xbf808000u, 0xbf80u}, {0xbf818000u, 0xbf82u},
            {0x3fffffffu, 0x4000u}, {0x7f7fffffu, 0x7f80u}, {0x7f7f7fffu, 0x7f7fu},
            {0x7f7f8000u, 0x7f80u}, {0xff7f8000u, 0xff80u}, {0x7f800000u, 0x7f80u},
            {0xff800000u, 0xff80u}, {0x00000000u, 0x0000u}, {0x80000000u, 0x8000u},
            {0x00000001u, 0x0000u}, {0x00008000u, 0x0000u}, {0x00018000u, 0x0002u},
            {0x00008001u, 0x0001u}, {0x807fffffu, 0x8080u}, {0x007f7fffu, 0x007fu},
            {0x7f800001u, 0x7fc0u}, {0xff800001u, 0xffc0u}, {0x7fc00000u, 0x7fc0u},
            {0x7fbfffffu, 0x7fffu}, {0xffffffffu, 0xffffu}, {0x7f810000u, 0x7fc1u},
            {0x7fff0001u, 0x7fffu}, {0x7f80ffffu, 0x7fc0u},
        };
        const int n_bf = (int)(sizeof(bf_in) / sizeof(bf_in[0]));
        float xin[64];
        uint16_t got[64];
        int k;
        for (k = 0; k < n_bf; ++k) {
            xin[k] = u2f(bf_in[k][0]);
            CHECK(fl_f32_to_bf16_scalar(xin[k]) == bf_in[k][1], "portable bf16(0x%08x) = 0x%04x, expected 0x%04x",
                  bf_in[k][0], fl_f32_to_bf16_scalar(xin[k]), bf_in[k][1]);
        }
        strncpy(names, fl_simd_supported(), sizeof(names) - 1);
        names[sizeof(names) - 1] = '\0';
        for (name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
            int len;
            if (fl_set_simd(name) != 0) continue;
            /* every length: the bodies (16 lanes) and every tail see each case */
            for (len = 1; len <= n_bf; ++len) {
                memset(got, 0xa5, sizeof(got));
                fl_f32_to_half(1, xin, got, len);
                for (k = 0; k < len; ++k)
                    CHECK(got[k] == bf_in[k][1], "%s bf16(0x%08x) = 0x%04x, expected 0x%04x (n=%d)", name,
                          bf_in[k][0], got[k], bf_in[k][1], len);
                CHECK(got[len] == 0xa5a5u, "%s: bf16 wrote past n=%d", name, len);
            }
            /* each case in every lane of the vector bodies and the tails */
            for (k = 0; k < n_bf; ++k) {
                float rep[48];
                uint16_t out[48];
                int j;
                for (j = 0; j < 48; ++j) rep[j] = xin[k];
                fl_f32_to_half(1, rep, out, 45);
                for (j = 0; j < 45; ++j)
                    CHECK(out[j] == bf_in[k][1], "%s bf16(0x%08x) = 0x%04x at %d, expected 0x%04x", name,
                          bf_in[k][0], out[j], j, bf_in[k][1]);
            }
        }
        save = NULL;
        fl_set_simd("best");
    }
    printf("  bfloat16 edge cases checked on every path\n");

    /* every SIMD path: the same bits as the portable conversion */
    strncpy(names, fl_simd_supported(), sizeof(names) - 1);
    names[sizeof(names) - 1] = '\0';
    for (name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int kind;
        long before = n_fails;
        if (fl_set_simd(name) != 0) {
            CHECK(0, "cannot select %s", name);
            continue;
        }
        for (kind = 0; kind < 2; ++kind) {
            /* all patterns, and every offset / length (tails) */
            fl_half_to_f32(kind, all, f, 65536);
            for (h = 0; h < 0x10000u; ++h) {
                float e = kind ? fl_bf16_to_f32_scalar((uint16_t)h) : fl_f16_to_f32_scalar((uint16_t)h);
                CHECK(f2u(f[h]) == f2u(e), "%s kind %d: 0x%04x -> 0x%08x, portable 0x%08x", name, kind,
                      h, f2u(f[h]), f2u(e));
            }
            for (i = 0; i < 40; ++i) {
                float part[40];
                fl_half_to_f32(kind, all + 1000 + i, part, i);
                CHECK(i == 0 || memcmp(part, f + 1000 + i, (size_t)i * 4) == 0, "%s kind %d: tail of %d",
                      name, kind, (int)i);
            }
            fl_f32_to_half(kind, sample, back, n_sample);
            for (i = 0; i < n_sample; ++i) {
                uint16_t e = kind ? ref_bf16[i] : ref_f16[i];
                CHECK(back[i] == e, "%s kind %d: 0x%08x -> 0x%04x, portable 0x%04x", name, kind,
                      f2u(sample[i]), back[i], e);
            }
            for (i = 0; i < 40; ++i) {
                uint16_t part[40];
                fl_f32_to_half(kind, sample + 777 + i, part, i);
                CHECK(i == 0 || memcmp(part, (kind ? ref_bf16 : ref_f16) + 777 + i, (size_t)i * 2) == 0,
                      "%s kind %d: tail of %d", name, kind, (int)i);
            }
        }
        printf("  %s: %s\n", name, n_fails == before ? "ok" : "FAILED");
    }
    fl_set_simd("best");
    printf("%ld checks, %ld failures (%lld float32 inputs)\n", n_checks, n_fails, (long long)n_sample);
    free(sample);
    free(all);
    free(f);
    free(back);
    free(ref_f16);
    free(ref_bf16);
    return n_fails ? 1 : 0;
}
