/*
 * fl_internal.h -- what dispatch.c and the per-target kernels share.
 * Not installed; the public API is fastloss.h.
 */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fastloss.h"
#include "fl_math.h"

/* Vectorised reductions without -ffast-math: `#pragma omp simd reduction`
 * (compiled with -fopenmp-simd, which needs no OpenMP runtime) lets the
 * compiler keep one partial per vector lane for THAT loop only; the lane
 * order is fixed per build, so results stay deterministic.  Compilers that
 * do not know the pragma (MSVC) run the same loops in scalar order. */
#if defined(__GNUC__) || defined(__clang__)
#define FL_PRAGMA_(x) _Pragma(#x)
#define FL_SIMD FL_PRAGMA_(omp simd)
#define FL_SIMD_SUM(...) FL_PRAGMA_(omp simd reduction(+ : __VA_ARGS__))
#define FL_SIMD_MAX(v) FL_PRAGMA_(omp simd reduction(max : v))
#define FL_SIMD_MIN_MAX(a, b) FL_PRAGMA_(omp simd reduction(min : a) reduction(max : b))
#define FL_SIMD_SUM_MAX(m, ...) \
    FL_PRAGMA_(omp simd reduction(max : m) reduction(+ : __VA_ARGS__))
#define FL_PRAGMA_SIMD_TOPK_ARGMAX \
    FL_PRAGMA_(omp simd reduction(+ : cnt) reduction(min : first) reduction(max : nan))
#define FL_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define FL_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#else
#define FL_SIMD
#define FL_SIMD_SUM(...)
#define FL_SIMD_MAX(v)
#define FL_SIMD_MIN_MAX(a, b)
#define FL_SIMD_SUM_MAX(m, ...)
#define FL_PRAGMA_SIMD_TOPK_ARGMAX
#define FL_PREFETCH(p) ((void)(p))
#define FL_PREFETCH_L2(p) ((void)(p))
#endif
/* Elements per chunk of an elementwise kernel (on-stack loss buffer). */
#define FL_CHUNK 256
/* Target work (elements) of one reduction block.  Blocks depend only on the
 * shape, never on the thread count: that is what makes sums deterministic. */
#define FL_BLOCK_ELEMS 16384
/* Gradients at least this large (bytes) are written with non-temporal stores. */
#define FL_STREAM_BYTES (16.0 * 1024.0 * 1024.0)
/* Below this many elements a call runs on one thread (no fork/join). */
#define FL_MIN_PARALLEL_ELEMS 32768

/* Softmax layout drivers.  Classes last with C >= FL_SHORT_C: long rows, one
 * at a time.  Otherwise tiles of up to fl_tile_lanes(C) rows ("lanes"),
 * vectors along the lanes: contiguous inner positions of a class axis with
 * inner > 1, or short rows transposed through the thread's buffer. */
#define FL_SHORT_C 64
#define FL_TILE_LANES 256
#define FL_TILE_ELEMS 8192

static inline int fl_sce_long(int64_t n_classes, int64_t inner)
{
    return inner == 1 && n_classes >= FL_SHORT_C;
}

static inline int64_t fl_tile_lanes(int64_t n_classes)
{
    int64_t l = FL_TILE_ELEMS / n_classes;
    return l < 1 ? 1 : (l > FL_TILE_LANES ? FL_TILE_LANES : l);
}

/* Per-lane statistics and epilogue results of a tile (softmax_ce.h). */
typedef struct {
    double m[FL_TILE_LANES], rest[FL_TILE_LANES], neq[FL_TILE_LANES], zy[FL_TILE_LANES];
    double ey[FL_TILE_LANES], S1[FL_TILE_LANES], B[FL_TILE_LANES], Pn[FL_TILE_LANES];
    double e2[FL_TILE_LANES], ed[FL_TILE_LANES], cnt[FL_TILE_LANES], xyr[FL_TILE_LANES];
    double logs[FL_TILE_LANES], live[FL_TILE_LANES], sw[FL_TILE_LANES], wy[FL_TILE_LANES];
    double loss[FL_TILE_LANES], lse[FL_TILE_LANES], cp[FL_TILE_LANES], ct[FL_TILE_LANES];
    double cb[FL_TILE_LANES], gy[FL_TILE_LANES], kh[FL_TILE_LANES], hy[FL_TILE_LANES];
    double fill[FL_TILE_LANES], st0[FL_TILE_LANES], st1[FL_TILE_LANES], st2[FL_TILE_LANES];
    double invs[FL_TILE_LANES];
    int64_t y[FL_TILE_LANES];
} fl_sce_lanes;

/* Scratch bytes per thread of the softmax drivers (esz: element bytes). */
static inline size_t fl_sce_scratch(int64_t n_classes, int64_t inner, int capped, size_t esz)
{
    if (fl_sce_long(n_classes, inner))
        return ((size_t)n_classes * (capped ? 2 : 1) + 1024) * esz;
    return ((sizeof(fl_sce_lanes) + 63) & ~(size_t)63)
           + 6 * (size_t)(fl_tile_lanes(n_classes) * n_classes) * esz;
}

/* One block's contribution to the reduction, added in block order. */
typedef struct {
    double loss;      /* sum of weighted losses */
    double weight;    /* sum of weights (prepass: the MEAN denominator) */
    double top1;      /* top-1 hits */
    double topk;      /* top-k hits */
    double ignored;   /* ignored rows */
    int64_t bad;      /* prepass: first bad label's row, or -1 */
    /* Evaluation metrics (sigmoid cross-entropy), NULL when off: */
    double *sums;     /* this block's float sums and counts, added in block order */
    int64_t *counts;  /* the running thread's integer counts (exact in any order) */
    int64_t col0;     /* a staging driver's piece of a row starts at this column */
} fl_partial;

/* Per-block sums of the sigmoid metrics (fl_partial.sums), in this order:
 * sum (p - t)^2; whole-row blocks: rows with a counted element, those all
 * right, rows without a wrong element (a block that is a piece of one row:
 * the same three as 0 / 1 flags); elements counted; then per calibration bin
 * (n_bins + 1 each) the elements, the positives and the sum of p. */
enum { FL_SM_BRIER, FL_SM_ROWS, FL_SM_RIGHT, FL_SM_OK, FL_SM_N, FL_SM_BINS };
static inline int64_t fl_sm_sums(int64_t n_bins) { return FL_SM_BINS + 3 * (n_bins + 1); }

/* A block kernel.  scratch: scratch_bytes of 64-byte aligned memory private to
 * the calling thread (NULL when none was asked for). */
typedef void (*fl_block_fn)(const void *ctx, int64_t block, fl_partial *part, void *scratch);

/* Blocks of rows (class losses). */
typedef struct {
    const void *args;           /* fl_softmax_ce_args or fl_hinge_args */
    int64_t n_rows;
    int64_t rows_per_block;
    double grad_scale;          /* 1 / MEAN denominator, or 1 */
    double class_weight_sum;    /* sum of class weights (C without weights) */
    int stream;                 /* write the gradient with non-temporal stores */
} fl_rows_ctx;

/* Blocks of an elementwise array viewed as (n_rows, row_len): either whole
 * rows (rows_per_block > 0) or pieces of one row (cols_per_block). */
typedef struct {
    const void *args;
    int64_t n_rows, row_len;
    int64_t rows_per_block;     /* > 0: each block is this many whole rows */
    int64_t cols_per_block;     /* rows_per_block == 0: blocks split each row */
    int64_t blocks_per_row;
    double grad_scale;
} fl_elem_ctx;

/* Row range [*r0, *r1) and column range [*c0, *c1) of an elementwise block. */
static inline void fl_elem_block_range(const fl_elem_ctx *ctx, int64_t b, int64_t *r0,
                                       int64_t *r1, int64_t *c0, int64_t *c1)
{
    if (ctx->rows_per_block > 0) {
        *r0 = b * ctx->rows_per_block;
        *r1 = *r0 + ctx->rows_per_block;
        if (*r1 > ctx->n_rows) *r1 = ctx->n_rows;
        *c0 = 0;
        *c1 = ctx->row_len;
    } else {
        int64_t k = b % ctx->blocks_per_row;
        *r0 = b / ctx->blocks_per_row;
        *r1 = *r0 + 1;
        *c0 = k * ctx->cols_per_block;
        *c1 = *c0 + ctx->cols_per_block;
        if (*c1 > ctx->row_len) *c1 = ctx->row_len;
    }
}

/* Half <-> float32 conversions of n values (index 0: float16, 1: bfloat16). */
typedef void (*fl_to_f32_fn)(const uint16_t *src, float *dst, int64_t n);
typedef void (*fl_from_f32_fn)(const float *src, uint16_t *dst, int64_t n);

/* The kernels of one SIMD target, [0] float, [1] double. */
typedef struct {
    const char *name;
    fl_block_fn softmax_ce[2];
    fl_block_fn sigmoid_ce[2];
    fl_block_fn hinge[2];
    fl_block_fn mse[2];
    fl_block_fn mse_weight_sum[2];
    fl_block_fn sigmoid_ignored[2];     /* prepass: ignored elements of the ignore mask */
    fl_to_f32_fn half_to_f32[2];      /* [0] float16, [1] bfloat16 */
    fl_from_f32_fn f32_to_half[2];    /* round to nearest even, NaN quiet */
    fl_from_f32_fn f32_to_half_stream[2];   /* the same, non-temporal stores */
} fl_kernel_table;

/* Portable scalar conversions (the baseline target; the SIMD targets' tails
 * go through the same instructions as their bodies, and tests check that
 * every target gives these bits). */
static inline uint32_t fl_h_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float fl_h_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* binary16 -> binary32, exact (subnormals normalised; NaN made quiet, payload kept). */
static inline float fl_f16_to_f32_scalar(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return fl_h_float(s | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
    if (e == 0) {
        if (m == 0) return fl_h_float(s);
        e = 113;                              /* 127 - 15 + 1, then normalise */
        while (!(m & 0x400u)) {
            m <<= 1;
            --e;
        }
        return fl_h_float(s | (e << 23) | ((m & 0x3ffu) << 13));
    }
    return fl_h_float(s | ((e + 112) << 23) | (m << 13));
}

/* binary32 -> binary16, round to nearest even (overflow to inf, subnormals,
 * NaN made quiet with the top payload bits kept). */
static inline uint16_t fl_f32_to_f16_scalar(float f)
{
    uint32_t x = fl_h_bits(f);
    uint32_t s = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(s | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(s | 0x7c00u);        /* >= 65520: inf */
    if (ax < 0x38800000u) {                                      /* below 2^-14 */
        uint32_t e = ax >> 23, m, q, rem, half;
        int sh;
        if (ax <= 0x33000000u) return (uint16_t)s;               /* <= 2^-25: 0 (tie to even) */
        m = (ax & 0x7fffffu) | 0x800000u;
        sh = 126 - (int)e;                                       /* 14 .. 24 */
        q = m >> sh;
        rem = m & ((1u << sh) - 1u);
        half = 1u << (sh - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return (uint16_t)(s | q);
    }
    return (uint16_t)(s | ((ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u) >> 13));
}

static inline float fl_bf16_to_f32_scalar(uint16_t h) { return fl_h_float((uint32_t)h << 16); }

/* binary32 -> bfloat16, round to nearest even; NaN made quiet. */
static inline uint16_t fl_f32_to_bf16_scalar(float f)
{
    uint32_t x = fl_h_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

extern const fl_kernel_table fl_table_baseline;
#ifdef FL_HAVE_AVX2
extern const fl_kernel_table fl_table_avx2;
#endif
#ifdef FL_HAVE_AVX512
extern const fl_kernel_table fl_table_avx512;
#endif

#endif /* FL_INTERNAL_H */
