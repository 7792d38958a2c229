/*
 * dispatch.c -- the public C API: argument checks, label prepass, the one
 * parallel loop over reduction blocks, and the choice of SIMD kernels.
 * Compiled once, for the baseline target, with OpenMP when available.
 */
#include <stdlib.h>
#include <string.h>
#include "fl_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------ SIMD */

static const fl_kernel_table *const fl_tables[] = {
    &fl_table_baseline,
#ifdef FL_HAVE_AVX2
    &fl_table_avx2,
#endif
#ifdef FL_HAVE_AVX512
    &fl_table_avx512,
#endif
};
#define FL_N_TABLES ((int)(sizeof(fl_tables) / sizeof(fl_tables[0])))

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
/* F16C (half <-> float conversions, used by the AVX2 target): CPUID.1:ECX bit 29.
 * (__builtin_cpu_supports has no "f16c" on every compiler.) */
static int fl_cpu_has_f16c(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1u;
}
#endif

static int fl_cpu_supports(const char *name)
{
    if (strcmp(name, "baseline") == 0) return 1;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && fl_cpu_has_f16c();
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return 0;
}

static const fl_kernel_table *volatile fl_active = NULL;

static const fl_kernel_table *fl_best_table(void)
{
    int i;
    for (i = FL_N_TABLES - 1; i > 0; --i)
        if (fl_cpu_supports(fl_tables[i]->name)) return fl_tables[i];
    return fl_tables[0];
}

int fl_set_simd(const char *name)
{
    int i;
    if (name == NULL || strcmp(name, "best") == 0 || name[0] == '\0') {
        fl_active = fl_best_table();
        return 0;
    }
    for (i = 0; i < FL_N_TABLES; ++i)
        if (strcmp(fl_tables[i]->name, name) == 0) {
            if (!fl_cpu_supports(name)) return 2;   /* built, but this CPU cannot run it */
            fl_active = fl_tables[i];
            return 0;
        }
    return 1;                                         /* not built */
}

static const fl_kernel_table *fl_table(void)
{
    const fl_kernel_table *t = fl_active;
    if (t == NULL) {
        /* First use: FASTLOSS_SIMD forces a path; an unusable value means "best". */
        const char *env = getenv("FASTLOSS_SIMD");
        if (env == NULL || fl_set_simd(env) != 0) fl_set_simd("best");
        t = fl_active;
    }
    return t;
}

const char *fl_simd_in_use(void) { return fl_table()->name; }

static char fl_built_names[64], fl_supported_names[64];

static const char *fl_join_names(char *buf, int only_supported)
{
    int i;
    buf[0] = '\0';
    for (i = 0; i < FL_N_TABLES; ++i) {
        if (only_supported && !fl_cpu_supports(fl_tables[i]->name)) continue;
        if (buf[0]) strcat(buf, ",");
        strcat(buf, fl_tables[i]->name);
    }
    return buf;
}

const char *fl_simd_built(void) { return fl_join_names(fl_built_names, 0); }
const char *fl_simd_supported(void) { return fl_join_names(fl_supported_names, 1); }

/* --------------------------------------------------------------- threads */

int fl_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Fork safety.  GNU libgomp's thread pool does not survive fork(): a child
 * that enters a parallel region after its parent used the pool can hang
 * forever.  So we note when the pool has been used, and a child forked after
 * that runs every kernel serially (the same bits: blocks do not depend on the
 * thread count).  Threads come back in the child's own children only if they
 * fork before using the pool, which they cannot detect; they stay serial. */
#if defined(_OPENMP) && !defined(_WIN32)
#include <pthread.h>
static volatile int fl_pool_used = 0;      /* this process entered a parallel region */
static volatile int fl_serial_only = 0;    /* forked after the pool was used */
static pthread_once_t fl_atfork_once = PTHREAD_ONCE_INIT;

static void fl_atfork_child(void)
{
    if (fl_pool_used) fl_serial_only = 1;
}

static void fl_register_atfork(void) { pthread_atfork(NULL, NULL, fl_atfork_child); }

static int fl_may_fork_threads(void)
{
    pthread_once(&fl_atfork_once, fl_register_atfork);
    if (fl_serial_only) return 0;
    fl_pool_used = 1;
    return 1;
}
#else
static int fl_may_fork_threads(void) { return 1; }
#endif

int fl_default_threads(void)
{
#ifdef _OPENMP
#if !defined(_WIN32)
    if (fl_serial_only) return 1;
#endif
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int fl_threads_for(int n_threads, int64_t work, int64_t n_blocks)
{
    int64_t nt;
    /* small work runs serially: decided before asking OpenMP anything (omp_get_num_procs
     * is a system call, which would cost a tiny call more than its arithmetic) */
    if (work < FL_MIN_PARALLEL_ELEMS || n_blocks <= 1) return 1;
    nt = n_threads > 0 ? n_threads : fl_default_threads();
#ifdef _OPENMP
    /* more threads than 4 per processor only costs (results do not depend on it) */
    if (nt > 4 * (int64_t)omp_get_num_procs()) nt = 4 * (int64_t)omp_get_num_procs();
#endif
    if (work < FL_MIN_PARALLEL_ELEMS) nt = 1;
    if (nt > n_blocks) nt = n_blocks;
    if (nt > 1 && !fl_may_fork_threads()) nt = 1;
    return nt < 1 ? 1 : (int)nt;
}

/* The calling thread's scratch, kept between calls.  A small call (its cost is
 * mostly fixed) would otherwise malloc and free up to a few hundred KB each
 * time.  Each thread keeps one buffer of FL_SCRATCH_KEEP bytes (pages it never
 * touches cost nothing), freed when the thread ends; larger scratch is
 * allocated per call.  A call takes the buffer
 * out of the thread's slot while it runs, so a nested call finds the slot
 * empty and allocates its own.  Without POSIX threads every call allocates. */
#define FL_SCRATCH_KEEP ((size_t)1 << 20)
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FL_HAVE_SCRATCH_CACHE 1
static pthread_key_t fl_scratch_key;
static pthread_once_t fl_scratch_once = PTHREAD_ONCE_INIT;
static int fl_scratch_key_ok;

/* A kept buffer holds FL_SCRATCH_KEEP in its first 8 bytes (any other holds 0)
 * and its scratch 64 bytes in. */
static void fl_scratch_drop(void *mem) { free(mem); }
static void fl_scratch_key_init(void)
{
    fl_scratch_key_ok = pthread_key_create(&fl_scratch_key, fl_scratch_drop) == 0;
}
#endif

/* 64-byte aligned scratch of n > 0 bytes; *mem is what fl_scratch_put takes back. */
static char *fl_scratch_get(size_t n, void **mem)
{
    char *m;
#ifdef FL_HAVE_SCRATCH_CACHE
    if (n <= FL_SCRATCH_KEEP) {
        pthread_once(&fl_scratch_once, fl_scratch_key_init);
        if (fl_scratch_key_ok) {
            m = (char *)pthread_getspecific(fl_scratch_key);
            if (m != NULL) {
                pthread_setspecific(fl_scratch_key, NULL);
            } else {
                if (posix_memalign((void **)&m, 64, FL_SCRATCH_KEEP + 64) != 0) return NULL;
                *(size_t *)m = FL_SCRATCH_KEEP;
            }
            *mem = m;
            return m + 64;
        }
    }
#endif
    m = (char *)malloc(n + 64);
    *mem = m;
    if (m == NULL) return NULL;
    *(size_t *)m = 0;              /* not a kept buffer (malloc aligns to >= 8 bytes) */
    return m + (64 - ((uintptr_t)m & 63));
}

static void fl_scratch_put(void *mem)
{
#ifdef FL_HAVE_SCRATCH_CACHE
    /* a kept buffer goes back to an empty slot (a nested call's may be there) */
    if (mem != NULL && fl_scratch_key_ok && *(size_t *)mem == FL_SCRATCH_KEEP
            && pthread_getspecific(fl_scratch_key) == NULL
            && pthread_setspecific(fl_scratch_key, mem) == 0)
        return;
#endif
    free(mem);
}

/* Evaluation metrics of a block loop (fl_partial.sums / counts): each block
 * gets n_sums zeroed doubles of its own, each thread n_counts zeroed int64
 * counts.  After the loop the threads' counts are added into counts_out
 * (integers: exact in any order) and the blocks' sums are left in
 * *block_sums, n_blocks rows of n_sums (the caller frees it). */
typedef struct {
    int64_t n_sums, n_counts;
    int64_t *counts_out;
    double *block_sums;
} fl_block_ext;

/* Run fn over blocks [0, n_blocks) and add the partials in block order.
 * The partition never depends on the thread count, so neither do the sums.
 * Each thread gets scratch_bytes of private scratch (64-byte aligned). */
static fl_status fl_run_blocks_ext(fl_block_fn fn, const void *ctx, int64_t n_blocks,
                                   int n_threads, int64_t work, size_t scratch_bytes,
                                   fl_partial *total, fl_block_ext *ext)
{
    fl_partial stack_parts[64];
    fl_partial *parts = stack_parts;
    void *scratch_mem = NULL;
    char *scratch = NULL;
    double *bsums = NULL;
    int64_t *tcounts = NULL;
    int64_t b;
    int nt = fl_threads_for(n_threads, work, n_blocks);
    memset(total, 0, sizeof(*total));
    total->bad = -1;
    if (ext) {
        ext->block_sums = NULL;
        if (ext->n_counts) memset(ext->counts_out, 0, (size_t)ext->n_counts * sizeof(int64_t));
    }
    if (n_blocks <= 0) return FL_OK;
    scratch_bytes = (scratch_bytes + 63) & ~(size_t)63;
    if (n_blocks > 64) {
        parts = (fl_partial *)malloc((size_t)n_blocks * sizeof(fl_partial));
        if (parts == NULL) return FL_ERR_NOMEM;
    }
    if (scratch_bytes) {
        scratch = fl_scratch_get(scratch_bytes * (size_t)nt, &scratch_mem);
        if (scratch == NULL) {
            if (parts != stack_parts) free(parts);
            return FL_ERR_NOMEM;
        }
    }
    if (ext) {
        bsums = (double *)calloc((size_t)(n_blocks * ext->n_sums) + 1, sizeof(double));
        tcounts = (int64_t *)calloc((size_t)(nt * ext->n_counts) + 1, sizeof(int64_t));
        if (bsums == NULL || tcounts == NULL) {
            free(bsums);
            free(tcounts);
            if (parts != stack_parts) free(parts);
            fl_scratch_put(scratch_mem);
            return FL_ERR_NOMEM;
        }
    }
    for (b = 0; b < n_blocks; ++b) {
        memset(&parts[b], 0, sizeof(fl_partial));
        parts[b].bad = -1;
        if (ext) {
            parts[b].sums = bsums + b * ext->n_sums;
            parts[b].counts = tcounts;
        }
    }
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            const int me = omp_get_thread_num();
            void *mine = scratch ? scratch + scratch_bytes * (size_t)me : NULL;
            int64_t *my_counts = ext ? tcounts + (int64_t)me * ext->n_counts : NULL;
#pragma omp for schedule(static)
            for (b = 0; b < n_blocks; ++b) {
                if (ext) parts[b].counts = my_counts;
                fn(ctx, b, &parts[b], mine);
            }
        }
    } else
#endif
    {
        for (b = 0; b < n_blocks; ++b) fn(ctx, b, &parts[b], scratch);
    }
    for (b = 0; b < n_blocks; ++b) {
        total->loss += parts[b].loss;
        total->weight += parts[b].weight;
        total->top1 += parts[b].top1;
        total->topk += parts[b].topk;
        total->ignored += parts[b].ignored;
        if (total->bad < 0 && parts[b].bad >= 0) total->bad = parts[b].bad;
    }
    if (ext) {
        int th;
        int64_t k;
        for (th = 0; th < nt; ++th)
            for (k = 0; k < ext->n_counts; ++k)
                ext->counts_out[k] += tcounts[(int64_t)th * ext->n_counts + k];
        free(tcounts);
        ext->block_sums = bsums;
    }
    if (parts != stack_parts) free(parts);
    fl_scratch_put(scratch_mem);
    return FL_OK;
}

static fl_status fl_run_blocks(fl_block_fn fn, const void *ctx, int64_t n_blocks,
                               int n_threads, int64_t work, size_t scratch_bytes,
                               fl_partial *total)
{
    return fl_run_blocks_ext(fn, ctx, n_blocks, n_threads, work, scratch_bytes, total, NULL);
}

/* ---------------------------------------------------------- label prepass */

/* Validates the labels of a block of rows and sums the MEAN denominator
 * sum_i s_i w_{y_i} over rows that are not ignored. */
typedef struct {
    const int64_t *labels;
    const double *class_weight, *sample_weight;
    int64_t n_rows, rows_per_block, n_classes, ignore_index;
    int has_ignore;
} fl_prepass_ctx;

static void fl_prepass_block(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_prepass_ctx *p = (const fl_prepass_ctx *)vctx;
    int64_t r0 = b * p->rows_per_block;
    int64_t r1 = r0 + p->rows_per_block < p->n_rows ? r0 + p->rows_per_block : p->n_rows;
    double wsum = 0.0, ignored = 0.0;
    int64_t r;
    for (r = r0; r < r1; ++r) {
        int64_t y = p->labels ? p->labels[r] : 0;
        double w = p->sample_weight ? p->sample_weight[r] : 1.0;
        if (p->labels) {
            if (p->has_ignore && y == p->ignore_index) {
                ignored += 1.0;
                continue;
            }
            if (y < 0 || y >= p->n_classes) {
                if (part->bad < 0) part->bad = r;
                continue;
            }
            if (p->class_weight) w *= p->class_weight[y];
        }
        wsum += w;
    }
    part->weight = wsum;
    part->ignored = ignored;
}

static fl_status fl_prepass(const int64_t *labels, const double *class_weight,
                            const double *sample_weight, int64_t n_rows, int64_t n_classes,
                            int has_ignore, int64_t ignore_index, int n_threads,
                            fl_partial *total)
{
    fl_prepass_ctx p;
    p.labels = labels;
    p.class_weight = class_weight;
    p.sample_weight = sample_weight;
    p.n_rows = n_rows;
    p.rows_per_block = FL_BLOCK_ELEMS;
    p.n_classes = n_classes;
    p.ignore_index = ignore_index;
    p.has_ignore = has_ignore;
    if (labels == NULL && sample_weight == NULL) {   /* denominator = number of rows */
        memset(total, 0, sizeof(*total));
        total->bad = -1;
        total->weight = (double)n_rows;
        return FL_OK;
    }
    return fl_run_blocks(fl_prepass_block, &p, (n_rows + FL_BLOCK_ELEMS - 1) / FL_BLOCK_ELEMS,
                         n_threads, n_rows, 0, total);
}

static void fl_result_init(fl_result *res, int64_t n_rows)
{
    memset(res, 0, sizeof(*res));
    res->n_rows = n_rows;
    res->bad_index = -1;
    res->bad_value = 0;
}

/* MEAN, BATCHMEAN and FULLMEAN divide the sum; SUM and NONE do not. */
static int fl_divides(int reduction) { return reduction >= FL_REDUCE_MEAN; }

static int fl_reduction_ok(int reduction, int64_t batch_size)
{
    return reduction >= FL_REDUCE_NONE && reduction <= FL_REDUCE_FULLMEAN
           && (reduction != FL_REDUCE_BATCHMEAN || batch_size >= 0);
}

/* The divisor of a dividing reduction: MEAN's own denominator, the batch
 * size (BATCHMEAN) or the number of output locations (FULLMEAN). */
static double fl_denominator(int reduction, double mean_denom, int64_t batch_size,
                             int64_t n_locations)
{
    if (reduction == FL_REDUCE_BATCHMEAN) return (double)batch_size;
    if (reduction == FL_REDUCE_FULLMEAN) return (double)n_locations;
    return mean_denom;
}

static double fl_reduce_value(int reduction, double loss_sum, double weight_sum)
{
    if (fl_divides(reduction)) return weight_sum == 0.0 ? (double)NAN : loss_sum / weight_sum;
    return loss_sum;
}

/* 1 / denominator for the dividing reductions (inf for a zero denominator:
 * its rows then turn NaN, as torch's do; all-ignored rows are written as
 * exact zeros). */
static double fl_grad_scale(int reduction, double weight_sum)
{
    if (!fl_divides(reduction)) return 1.0;
    return weight_sum == 0.0 ? (double)INFINITY : 1.0 / weight_sum;
}

static int64_t fl_rows_per_block(int64_t n_classes)
{
    int64_t rpb = FL_BLOCK_ELEMS / (n_classes > 0 ? n_classes : 1);
    return rpb < 1 ? 1 : rpb;
}

/* --------------------------------------------------------- class losses */

/* dt: 0 float, 1 double, 2 float16, 3 bfloat16 (see "half precision" below). */
static fl_status fl_half_class_run(const void *args, int loss, int kind, const fl_rows_ctx *ctx,
                                   int64_t outer, int64_t C, int64_t inner, int target_half,
                                   size_t kscratch, int n_threads, fl_partial *tot);
static fl_status fl_half_elem_run(const void *args, int loss, int kind, const fl_elem_ctx *ctx,
                                  int64_t n_blocks, int target_half, int n_threads,
                                  fl_partial *tot, fl_block_ext *ext);
static fl_status fl_half_ignored_run(const fl_sigmoid_ce_args *a, int kind,
                                     const fl_elem_ctx *ctx, int64_t n_blocks, fl_partial *tot);

/* Argument validation: the first field outside its domain is reported in
 * res->bad_value (an fl_field) with FL_ERR_ARG, before anything is written. */
static fl_status fl_bad_arg(fl_result *res, fl_field field)
{
    fl_result_init(res, 0);
    res->bad_value = (int64_t)field;
    return FL_ERR_ARG;
}
#define FL_CHECK(ok, field) do { if (!(ok)) return fl_bad_arg(res, (field)); } while (0)

static fl_status fl_softmax_ce(const fl_softmax_ce_args *a, fl_result *res, int dt)
{
    fl_partial pre, tot;
    fl_rows_ctx ctx;
    fl_status st;
    int64_t n_rows, c;
    double denom;
    int opts = a->z_loss != 0.0 || a->softcap > 0.0 || a->focal_gamma != 0.0
               || a->poly1_epsilon != 0.0;
    FL_CHECK(a->outer >= 0 && a->inner >= 0, FL_FIELD_SIZES);
    FL_CHECK(a->n_classes >= 1, FL_FIELD_N_CLASSES);
    FL_CHECK(fl_reduction_ok(a->reduction, a->batch_size), FL_FIELD_REDUCTION);
    FL_CHECK((a->labels == NULL) != (a->probs == NULL), FL_FIELD_TARGET);
    FL_CHECK(a->label_smoothing >= 0.0 && a->label_smoothing <= 1.0, FL_FIELD_LABEL_SMOOTHING);
    FL_CHECK(a->top_k >= 0, FL_FIELD_TOP_K);
    FL_CHECK(a->z_loss >= 0.0 && a->z_loss - a->z_loss == 0.0, FL_FIELD_Z_LOSS);
    FL_CHECK(a->softcap >= 0.0, FL_FIELD_SOFTCAP);
    FL_CHECK(a->focal_gamma >= 0.0 && a->focal_gamma - a->focal_gamma == 0.0,
             FL_FIELD_FOCAL_GAMMA);
    FL_CHECK(a->poly1_epsilon - a->poly1_epsilon == 0.0, FL_FIELD_POLY1_EPSILON);
    FL_CHECK(a->focal_gamma == 0.0 || (a->probs == NULL && a->label_smoothing == 0.0),
             FL_FIELD_FOCAL_TARGET);
    FL_CHECK(a->hess == NULL || !opts, FL_FIELD_HESS);
    FL_CHECK(dt < 2 || a->target_dtype == FL_TARGET_SAME || a->target_dtype == FL_TARGET_F32,
             FL_FIELD_TARGET_DTYPE);
    n_rows = a->outer * a->inner;
    fl_result_init(res, n_rows);
    st = fl_prepass(a->labels, a->class_weight, a->sample_weight, n_rows, a->n_classes, 1,
                    a->ignore_index, a->n_threads, &pre);
    if (st != FL_OK) return st;
    if (pre.bad >= 0) {
        res->bad_index = pre.bad;
        res->bad_value = a->labels[pre.bad];
        return FL_ERR_LABEL;
    }
    denom = fl_denominator(a->reduction, pre.weight, a->batch_size, n_rows);
    ctx.args = a;
    ctx.n_rows = n_rows;
    ctx.rows_per_block = fl_rows_per_block(a->n_classes);
    ctx.grad_scale = fl_grad_scale(a->reduction, denom);
    /* sum of class weights: only label smoothing uses it, and only rows need it */
    ctx.class_weight_sum = 0.0;
    if (n_rows > 0 && a->label_smoothing != 0.0) {
        if (a->class_weight)
            for (c = 0; c < a->n_classes; ++c) ctx.class_weight_sum += a->class_weight[c];
        else
            ctx.class_weight_sum = (double)a->n_classes;
    }
    /* The long-row driver builds each row's gradient in the thread's buffer
     * and streams large gradients out with non-temporal stores: no
     * read-for-ownership of the output, so the memory traffic is one read of
     * the logits and one write of the gradient.  Half predictions: the float32
     * kernel runs on tiles of (nr, C, 1) or (1, C, jn), with scratch for either. */
    if (dt >= 2) {
        size_t k1 = fl_sce_scratch(a->n_classes, a->inner, a->softcap > 0.0, sizeof(float));
        size_t k2 = fl_sce_scratch(a->n_classes, 1, a->softcap > 0.0, sizeof(float));
        st = fl_half_class_run(a, 0, dt - 2, &ctx, a->outer, a->n_classes, a->inner,
                               a->probs != NULL && a->target_dtype == FL_TARGET_SAME,
                               k1 > k2 ? k1 : k2, a->n_threads, &tot);
    } else {
        size_t esz = dt ? sizeof(double) : sizeof(float);
        size_t scratch = fl_sce_scratch(a->n_classes, a->inner, a->softcap > 0.0, esz);
        ctx.stream = a->grad != NULL && a->grad != a->logits
                     && (double)n_rows * (double)a->n_classes * (double)esz >= FL_STREAM_BYTES;
        st = fl_run_blocks(fl_table()->softmax_ce[dt], &ctx,
                           (n_rows + ctx.rows_per_block - 1) / ctx.rows_per_block, a->n_threads,
                           n_rows * a->n_classes, n_rows > 0 ? scratch : 0, &tot);
    }
    if (st != FL_OK) return st;
    res->loss_sum = tot.loss;
    res->weight_sum = denom;
    res->value = fl_reduce_value(a->reduction, tot.loss, denom);
    res->n_ignored = (int64_t)pre.ignored;
    res->n_top1 = (int64_t)tot.top1;
    res->n_topk = (int64_t)tot.topk;
    return FL_OK;
}

fl_status fl_softmax_ce_f32(const fl_softmax_ce_args *a, fl_result *r) { return fl_softmax_ce(a, r, 0); }
fl_status fl_softmax_ce_f64(const fl_softmax_ce_args *a, fl_result *r) { return fl_softmax_ce(a, r, 1); }
fl_status fl_softmax_ce_f16(const fl_softmax_ce_args *a, fl_result *r) { return fl_softmax_ce(a, r, 2); }
fl_status fl_softmax_ce_bf16(const fl_softmax_ce_args *a, fl_result *r) { return fl_softmax_ce(a, r, 3); }

static fl_status fl_hinge(const fl_hinge_args *a, fl_result *res, int dt)
{
    fl_partial pre, tot;
    fl_rows_ctx ctx;
    fl_status st;
    int64_t n_rows;
    double denom;
    FL_CHECK(a->outer >= 0 && a->inner >= 0, FL_FIELD_SIZES);
    FL_CHECK(a->n_classes >= 1, FL_FIELD_N_CLASSES);
    FL_CHECK(fl_reduction_ok(a->reduction, a->batch_size), FL_FIELD_REDUCTION);
    FL_CHECK((a->labels == NULL) != (a->target == NULL), FL_FIELD_TARGET);
    FL_CHECK(a->top_k >= 0, FL_FIELD_TOP_K);
    FL_CHECK(a->mode >= 0 && a->mode <= 2 && (a->target == NULL || a->mode == FL_HINGE_OVR),
             FL_FIELD_MODE);
    FL_CHECK(dt < 2 || a->target_dtype == FL_TARGET_SAME || a->target_dtype == FL_TARGET_F32,
             FL_FIELD_TARGET_DTYPE);
    n_rows = a->outer * a->inner;
    fl_result_init(res, n_rows);
    st = fl_prepass(a->labels, NULL, a->sample_weight, n_rows, a->n_classes, 0, 0, a->n_threads,
                    &pre);
    if (st != FL_OK) return st;
    if (pre.bad >= 0) {
        res->bad_index = pre.bad;
        res->bad_value = a->labels[pre.bad];
        return FL_ERR_LABEL;
    }
    denom = fl_denominator(a->reduction, pre.weight, a->batch_size, n_rows);
    ctx.args = a;
    ctx.n_rows = n_rows;
    ctx.rows_per_block = fl_rows_per_block(a->n_classes);
    ctx.grad_scale = fl_grad_scale(a->reduction, denom);
    ctx.class_weight_sum = 0.0;
    ctx.stream = 0;
    if (dt >= 2)
        st = fl_half_class_run(a, 1, dt - 2, &ctx, a->outer, a->n_classes, a->inner,
                               a->target != NULL && a->target_dtype == FL_TARGET_SAME, 0,
                               a->n_threads, &tot);
    else
        st = fl_run_blocks(fl_table()->hinge[dt], &ctx,
                           (n_rows + ctx.rows_per_block - 1) / ctx.rows_per_block, a->n_threads,
                           n_rows * a->n_classes, 0, &tot);
    if (st != FL_OK) return st;
    res->loss_sum = tot.loss;
    res->weight_sum = denom;
    res->value = fl_reduce_value(a->reduction, tot.loss, denom);
    res->n_top1 = (int64_t)tot.top1;
    res->n_topk = (int64_t)tot.topk;
    return FL_OK;
}

fl_status fl_hinge_f32(const fl_hinge_args *a, fl_result *r) { return fl_hinge(a, r, 0); }
fl_status fl_hinge_f64(const fl_hinge_args *a, fl_result *r) { return fl_hinge(a, r, 1); }
fl_status fl_hinge_f16(const fl_hinge_args *a, fl_result *r) { return fl_hinge(a, r, 2); }
fl_status fl_hinge_bf16(const fl_hinge_args *a, fl_result *r) { return fl_hinge(a, r, 3); }

/* ---------------------------------------------------- elementwise losses */

static void fl_elem_ctx_init(fl_elem_ctx *ctx, const void *args, int64_t n_rows, int64_t row_len,
                             int64_t *n_blocks)
{
    ctx->args = args;
    ctx->n_rows = n_rows;
    ctx->row_len = row_len;
    ctx->grad_scale = 1.0;
    if (row_len < FL_BLOCK_ELEMS) {
        ctx->rows_per_block = row_len > 0 ? FL_BLOCK_ELEMS / row_len : 1;
        ctx->cols_per_block = row_len;
        ctx->blocks_per_row = 1;
        *n_blocks = row_len > 0 ? (n_rows + ctx->rows_per_block - 1) / ctx->rows_per_block : 0;
    } else {
        ctx->rows_per_block = 0;
        ctx->cols_per_block = FL_BLOCK_ELEMS;
        ctx->blocks_per_row = (row_len + FL_BLOCK_ELEMS - 1) / FL_BLOCK_ELEMS;
        *n_blocks = n_rows * ctx->blocks_per_row;
    }
}

/* Bins of the sigmoid metrics at most this many (int32 bin codes in the kernel). */
#define FL_SM_MAX_BINS ((int64_t)1 << 24)

/* The sigmoid metrics' outputs from the blocks' sums, added in block order
 * (and freed).  Blocks that are pieces of one row (long rows) are combined
 * per row: a row counts when a piece has a counted element, and is right
 * when no piece has a wrong one. */
static void fl_sig_metrics_finish(fl_sigmoid_metrics *M, const fl_elem_ctx *ctx,
                                  int64_t n_blocks, double *bs)
{
    const int64_t ns = fl_sm_sums(M->n_bins), nb1 = M->n_bins + 1;
    const int pieces = ctx->rows_per_block == 0 && M->n_labels != 1;
    double tot[FL_SM_BINS], rows = 0.0, right = 0.0;
    int64_t b, k;
    memset(tot, 0, sizeof(tot));
    for (k = 0; k < 3 * nb1; ++k) {
        double v = 0.0;
        for (b = 0; b < n_blocks; ++b) v += bs[b * ns + FL_SM_BINS + k];
        if (k < 2 * nb1)
            M->counts[3 + k] = (int64_t)v;
        else
            M->sums[1 + k - 2 * nb1] = v;
    }
    for (b = 0; b < n_blocks; ++b) {
        const double *s = bs + b * ns;
        for (k = 0; k < FL_SM_BINS; ++k) tot[k] += s[k];
    }
    if (pieces) {
        /* blocks b0 .. b0 + blocks_per_row - 1 are row r's pieces, in order */
        for (b = 0; b < n_blocks; b += ctx->blocks_per_row) {
            double any = 0.0, ok = 1.0;
            for (k = b; k < b + ctx->blocks_per_row && k < n_blocks; ++k) {
                any = bs[k * ns + FL_SM_ROWS] > 0.0 ? 1.0 : any;
                ok = bs[k * ns + FL_SM_OK] > 0.0 ? ok : 0.0;
            }
            rows += any;
            right += any * ok;
        }
    } else {
        rows = tot[FL_SM_ROWS];
        right = tot[FL_SM_RIGHT];
    }
    M->counts[0] = (int64_t)tot[FL_SM_N];
    M->counts[1] = (int64_t)rows;
    M->counts[2] = (int64_t)right;
    M->sums[0] = tot[FL_SM_BRIER];
    free(bs);
}

static fl_status fl_sigmoid_ce(const fl_sigmoid_ce_args *a, fl_result *res, int dt)
{
    fl_elem_ctx ctx;
    fl_partial tot, ign;
    fl_block_ext ext;
    fl_sigmoid_metrics *M = a->metrics;
    fl_status st;
    int64_t n_blocks, n;
    double denom, n_ignored = 0.0;
    FL_CHECK(a->n_rows >= 0 && a->row_len >= 0, FL_FIELD_SIZES);
    FL_CHECK(fl_reduction_ok(a->reduction, a->batch_size), FL_FIELD_REDUCTION);
    FL_CHECK(a->weight == NULL || a->weight_row_stride == 0 || a->weight_row_stride == a->row_len,
             FL_FIELD_WEIGHT_STRIDE);
    FL_CHECK(a->focal_gamma >= 0.0 && a->focal_gamma - a->focal_gamma == 0.0,
             FL_FIELD_FOCAL_GAMMA);
    FL_CHECK(!(a->focal_alpha > 1.0) && a->focal_alpha == a->focal_alpha, FL_FIELD_FOCAL_ALPHA);
    FL_CHECK(a->poly1_epsilon - a->poly1_epsilon == 0.0, FL_FIELD_POLY1_EPSILON);
    FL_CHECK(!a->has_ignore || a->ignore_value == a->ignore_value, FL_FIELD_IGNORE_VALUE);
    FL_CHECK(a->hess == NULL || (a->focal_gamma == 0.0 && a->focal_alpha < 0.0
                                 && a->poly1_epsilon == 0.0), FL_FIELD_HESS);
    FL_CHECK(dt < 2 || a->target_dtype == FL_TARGET_SAME || a->target_dtype == FL_TARGET_F32,
             FL_FIELD_TARGET_DTYPE);
    FL_CHECK(M == NULL || (M->threshold >= 0.0 && M->threshold <= 1.0 && M->n_bins >= 1
                           && M->n_bins <= FL_SM_MAX_BINS && M->auc_bins >= 0
                           && M->auc_bins <= FL_SM_MAX_BINS
                           && (M->n_labels == a->row_len || M->n_labels == 1)
                           && M->label_counts != NULL && M->counts != NULL && M->sums != NULL),
             FL_FIELD_METRICS);
    n = a->n_rows * a->row_len;
    fl_result_init(res, n);
    fl_elem_ctx_init(&ctx, a, a->n_rows, a->row_len, &n_blocks);
    if (a->has_ignore) {
        /* MEAN divides by the elements not ignored: count them first */
        if (dt >= 2)
            st = fl_half_ignored_run(a, dt - 2, &ctx, n_blocks, &ign);
        else
            st = fl_run_blocks(fl_table()->sigmoid_ignored[dt], &ctx, n_blocks, a->n_threads, n,
                               0, &ign);
        if (st != FL_OK) return st;
        n_ignored = ign.ignored;
    }
    denom = fl_denominator(a->reduction, (double)n - n_ignored, a->batch_size, n);
    ctx.grad_scale = fl_grad_scale(a->reduction, denom);
    if (M) {
        ext.n_sums = fl_sm_sums(M->n_bins);
        ext.n_counts = M->n_labels * (3 + 2 * M->auc_bins);
        ext.counts_out = M->label_counts;
    }
    if (dt >= 2)
        st = fl_half_elem_run(a, 2, dt - 2, &ctx, n_blocks, a->target_dtype == FL_TARGET_SAME,
                              a->n_threads, &tot, M ? &ext : NULL);
    else
        st = fl_run_blocks_ext(fl_table()->sigmoid_ce[dt], &ctx, n_blocks, a->n_threads, n, 0,
                               &tot, M ? &ext : NULL);
    if (st != FL_OK) return st;
    if (M) fl_sig_metrics_finish(M, &ctx, n_blocks, ext.block_sums);
    res->loss_sum = tot.loss;
    res->weight_sum = denom;
    res->value = fl_reduce_value(a->reduction, tot.loss, denom);
    res->n_ignored = (int64_t)n_ignored;
    return FL_OK;
}

fl_status fl_sigmoid_ce_f32(const fl_sigmoid_ce_args *a, fl_result *r) { return fl_sigmoid_ce(a, r, 0); }
fl_status fl_sigmoid_ce_f64(const fl_sigmoid_ce_args *a, fl_result *r) { return fl_sigmoid_ce(a, r, 1); }
fl_status fl_sigmoid_ce_f16(const fl_sigmoid_ce_args *a, fl_result *r) { return fl_sigmoid_ce(a, r, 2); }
fl_status fl_sigmoid_ce_bf16(const fl_sigmoid_ce_args *a, fl_result *r) { return fl_sigmoid_ce(a, r, 3); }

static fl_status fl_mse(const fl_mse_args *a, fl_result *res, int dt)
{
    fl_elem_ctx ctx;
    fl_partial tot, wtot;
    fl_status st;
    int64_t n_blocks, n;
    double denom;
    FL_CHECK(a->n_rows >= 0 && a->row_len >= 0, FL_FIELD_SIZES);
    FL_CHECK(fl_reduction_ok(a->reduction, a->batch_size), FL_FIELD_REDUCTION);
    FL_CHECK(a->weight == NULL || a->weight_row_stride == 0 || a->weight_row_stride == a->row_len,
             FL_FIELD_WEIGHT_STRIDE);
    FL_CHECK(dt < 2 || a->target_dtype == FL_TARGET_SAME || a->target_dtype == FL_TARGET_F32,
             FL_FIELD_TARGET_DTYPE);
    n = a->n_rows * a->row_len;
    fl_result_init(res, n);
    fl_elem_ctx_init(&ctx, a, a->n_rows, a->row_len, &n_blocks);
    denom = fl_denominator(a->reduction, (double)n, a->batch_size, n);
    if (a->weight != NULL && a->reduction <= FL_REDUCE_MEAN) {
        /* half calls take float32 weights: the float32 weight sum */
        st = fl_run_blocks(fl_table()->mse_weight_sum[dt >= 2 ? 0 : dt], &ctx, n_blocks,
                           a->n_threads, n, 0, &wtot);
        if (st != FL_OK) return st;
        denom = wtot.weight;
    }
    ctx.grad_scale = fl_grad_scale(a->reduction, denom);
    if (dt >= 2)
        st = fl_half_elem_run(a, 3, dt - 2, &ctx, n_blocks, a->target_dtype == FL_TARGET_SAME,
                              a->n_threads, &tot, NULL);
    else
        st = fl_run_blocks(fl_table()->mse[dt], &ctx, n_blocks, a->n_threads, n, 0, &tot);
    if (st != FL_OK) return st;
    res->loss_sum = tot.loss;
    res->weight_sum = denom;
    res->value = fl_reduce_value(a->reduction, tot.loss, denom);
    return FL_OK;
}

fl_status fl_mse_f32(const fl_mse_args *a, fl_result *r) { return fl_mse(a, r, 0); }
fl_status fl_mse_f64(const fl_mse_args *a, fl_result *r) { return fl_mse(a, r, 1); }
fl_status fl_mse_f16(const fl_mse_args *a, fl_result *r) { return fl_mse(a, r, 2); }
fl_status fl_mse_bf16(const fl_mse_args *a, fl_result *r) { return fl_mse(a, r, 3); }


/* -------------------------------------------------------- half precision */

/* A half call is a staging layout driver around the float32 block kernels:
 * the same checks and prepass as float32, then one parallel loop over tiles
 * whose partition depends only on the shape.  Each tile converts its half
 * inputs into thread-private float32 buffers (one reduction block: at most
 * FL_BLOCK_ELEMS elements, or one row when a row is longer), runs the active
 * float32 kernel on them with pointers offset to the tile's rows, and rounds
 * its gradient / Hessian back into the half output once.  A tile is read
 * completely before it is written, so the gradient may overwrite the
 * predictions.  Class losses: inner == 1, a tile is a run of whole rows (the
 * float32 call's own blocks); inner > 1, one outer index and a run of inner
 * positions, gathered as a (C, jn) buffer.  Elementwise losses: the float32
 * call's blocks, each one contiguous run of elements. */

typedef struct {
    const fl_kernel_table *tab;
    int kind;                    /* 0 float16, 1 bfloat16 */
    int loss;                    /* 0 softmax, 1 hinge, 2 sigmoid, 3 mse */
    const void *args;            /* the caller's struct (half pointers) */
    fl_rows_ctx rows;            /* class losses: global grad_scale, class_weight_sum */
    int64_t tiles_per_outer;     /* class losses with inner > 1 */
    fl_elem_ctx elem;            /* elementwise losses: the float32 call's blocks */
    size_t kscratch;             /* bytes of the kernel's own scratch (64-aligned) */
    size_t tile_bytes;           /* bytes of one float32 tile buffer (64-aligned) */
    int target_half;             /* the floating target is half (else float32) */
    int stream;                  /* write the gradient with non-temporal stores */
} fl_half_ctx;

/* Copy-convert `runs` runs of `len` values, run k at src + k * stride, into
 * dst + k * len (float32). */
static void fl_half_gather(const fl_half_ctx *h, const void *src, int is_half, int64_t runs,
                           int64_t len, int64_t stride, float *dst)
{
    int64_t k;
    for (k = 0; k < runs; ++k) {
        if (is_half)
            h->tab->half_to_f32[h->kind]((const uint16_t *)src + k * stride, dst + k * len, len);
        else
            memcpy(dst + k * len, (const float *)src + k * stride, (size_t)len * sizeof(float));
    }
}

static void fl_half_scatter(const fl_half_ctx *h, const float *src, int64_t runs, int64_t len,
                            int64_t stride, void *dst, int stream)
{
    fl_from_f32_fn conv = stream ? h->tab->f32_to_half_stream[h->kind]
                                 : h->tab->f32_to_half[h->kind];
    int64_t k;
    for (k = 0; k < runs; ++k) conv(src + k * len, (uint16_t *)dst + k * stride, len);
}

static void fl_half_class_tile(const void *vctx, int64_t t, fl_partial *part, void *scratch)
{
    const fl_half_ctx *h = (const fl_half_ctx *)vctx;
    const int64_t C = h->loss == 0 ? ((const fl_softmax_ce_args *)h->args)->n_classes
                                   : ((const fl_hinge_args *)h->args)->n_classes;
    const int64_t inner = h->loss == 0 ? ((const fl_softmax_ce_args *)h->args)->inner
                                       : ((const fl_hinge_args *)h->args)->inner;
    const int64_t rpb = h->rows.rows_per_block;
    char *base = (char *)scratch;
    void *kscr = h->kscratch ? base : NULL;
    float *xs = (float *)(base + h->kscratch);
    float *ts = (float *)(base + h->kscratch + h->tile_bytes);
    float *hs = (float *)(base + h->kscratch + 2 * h->tile_bytes);
    int64_t r0, nr, off, runs, len, stride, sub_outer, sub_inner;
    fl_rows_ctx sub = h->rows;
    if (inner == 1) {
        r0 = t * rpb;
        nr = h->rows.n_rows - r0 < rpb ? h->rows.n_rows - r0 : rpb;
        off = r0 * C;
        runs = 1;
        len = nr * C;
        stride = 0;
        sub_outer = nr;
        sub_inner = 1;
    } else {
        int64_t o = t / h->tiles_per_outer, j0 = (t % h->tiles_per_outer) * rpb;
        nr = inner - j0 < rpb ? inner - j0 : rpb;
        r0 = o * inner + j0;
        off = o * C * inner + j0;
        runs = C;
        len = nr;
        stride = inner;
        sub_outer = 1;
        sub_inner = nr;
    }
    sub.n_rows = nr;
    sub.rows_per_block = nr;
    sub.stream = 0;
    if (h->loss == 0) {
        const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)h->args;
        fl_softmax_ce_args s = *a;
        fl_half_gather(h, (const uint16_t *)a->logits + off, 1, runs, len, stride, xs);
        s.outer = sub_outer;
        s.inner = sub_inner;
        s.logits = xs;
        s.labels = a->labels ? a->labels + r0 : NULL;
        s.sample_weight = a->sample_weight ? a->sample_weight + r0 : NULL;
        s.probs = NULL;
        if (a->probs) {
            if (h->target_half) {
                fl_half_gather(h, (const uint16_t *)a->probs + off, 1, runs, len, stride, ts);
                s.probs = ts;
            } else if (runs == 1) {
                s.probs = (const float *)a->probs + off;
            } else {
                fl_half_gather(h, (const float *)a->probs + off, 0, runs, len, stride, ts);
                s.probs = ts;
            }
        }
        s.row_loss = a->row_loss ? (void *)((float *)a->row_loss + r0) : NULL;
        s.lse_out = a->lse_out ? a->lse_out + r0 : NULL;
        s.argmax_out = a->argmax_out ? a->argmax_out + r0 : NULL;
        s.stats_out = a->stats_out ? a->stats_out + 3 * r0 : NULL;
        s.grad = a->grad ? (void *)xs : NULL;
        s.hess = a->hess ? (void *)hs : NULL;
        s.n_threads = 1;
        sub.args = &s;
        h->tab->softmax_ce[0](&sub, 0, part, kscr);
        if (a->grad) fl_half_scatter(h, xs, runs, len, stride, (uint16_t *)a->grad + off, h->stream);
        if (a->hess) fl_half_scatter(h, hs, runs, len, stride, (uint16_t *)a->hess + off, 0);
    } else {
        const fl_hinge_args *a = (const fl_hinge_args *)h->args;
        fl_hinge_args s = *a;
        fl_half_gather(h, (const uint16_t *)a->scores + off, 1, runs, len, stride, xs);
        s.outer = sub_outer;
        s.inner = sub_inner;
        s.scores = xs;
        s.labels = a->labels ? a->labels + r0 : NULL;
        s.sample_weight = a->sample_weight ? a->sample_weight + r0 : NULL;
        s.target = NULL;
        if (a->target) {
            if (h->target_half) {
                fl_half_gather(h, (const uint16_t *)a->target + off, 1, runs, len, stride, ts);
                s.target = ts;
            } else if (runs == 1) {
                s.target = (const float *)a->target + off;
            } else {
                fl_half_gather(h, (const float *)a->target + off, 0, runs, len, stride, ts);
                s.target = ts;
            }
        }
        s.row_loss = a->row_loss ? (void *)((float *)a->row_loss + r0) : NULL;
        s.argmax_out = a->argmax_out ? a->argmax_out + r0 : NULL;
        s.grad = a->grad ? (void *)xs : NULL;
        s.n_threads = 1;
        sub.args = &s;
        h->tab->hinge[0](&sub, 0, part, NULL);
        if (a->grad) fl_half_scatter(h, xs, runs, len, stride, (uint16_t *)a->grad + off, h->stream);
    }
}

static void fl_half_elem_tile(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    const fl_half_ctx *h = (const fl_half_ctx *)vctx;
    char *base = (char *)scratch;
    float *xs = (float *)base;
    float *ts = (float *)(base + h->tile_bytes);
    float *hs = (float *)(base + 2 * h->tile_bytes);
    int64_t r0, r1, c0, c1, nr, len, off, n;
    fl_elem_ctx sub = h->elem;
    fl_elem_block_range(&h->elem, b, &r0, &r1, &c0, &c1);
    nr = r1 - r0;
    len = c1 - c0;
    off = r0 * h->elem.row_len + c0;
    n = nr * len;
    sub.n_rows = nr;
    sub.row_len = len;
    sub.rows_per_block = nr;
    sub.cols_per_block = len;
    sub.blocks_per_row = 1;
    if (h->loss == 2) {
        const fl_sigmoid_ce_args *a = (const fl_sigmoid_ce_args *)h->args;
        fl_sigmoid_ce_args s = *a;
        h->tab->half_to_f32[h->kind]((const uint16_t *)a->logits + off, xs, n);
        s.n_rows = nr;
        s.row_len = len;
        s.logits = xs;
        if (h->target_half) {
            h->tab->half_to_f32[h->kind]((const uint16_t *)a->target + off, ts, n);
            s.target = ts;
        } else {
            s.target = (const float *)a->target + off;
        }
        if (a->weight) {
            s.weight = (const float *)a->weight + r0 * a->weight_row_stride + c0;
            s.weight_row_stride = a->weight_row_stride ? len : 0;
        }
        s.pos_weight = a->pos_weight ? (const void *)((const float *)a->pos_weight + c0) : NULL;
        s.loss = a->loss ? (void *)((float *)a->loss + off) : NULL;
        s.grad = a->grad ? (void *)xs : NULL;
        s.hess = a->hess ? (void *)hs : NULL;
        s.n_threads = 1;
        sub.args = &s;
        part->col0 = c0;                /* the metrics' label of the piece's first column */
        h->tab->sigmoid_ce[0](&sub, 0, part, NULL);
        if (a->grad) fl_half_scatter(h, xs, 1, n, 0, (uint16_t *)a->grad + off, h->stream);
        if (a->hess) h->tab->f32_to_half[h->kind](hs, (uint16_t *)a->hess + off, n);
    } else {
        const fl_mse_args *a = (const fl_mse_args *)h->args;
        fl_mse_args s = *a;
        h->tab->half_to_f32[h->kind]((const uint16_t *)a->pred + off, xs, n);
        s.n_rows = nr;
        s.row_len = len;
        s.pred = xs;
        if (h->target_half) {
            h->tab->half_to_f32[h->kind]((const uint16_t *)a->target + off, ts, n);
            s.target = ts;
        } else {
            s.target = (const float *)a->target + off;
        }
        if (a->weight) {
            s.weight = (const float *)a->weight + r0 * a->weight_row_stride + c0;
            s.weight_row_stride = a->weight_row_stride ? len : 0;
        }
        s.loss = a->loss ? (void *)((float *)a->loss + off) : NULL;
        s.grad = a->grad ? (void *)xs : NULL;
        s.hess = a->hess ? (void *)hs : NULL;
        s.n_threads = 1;
        sub.args = &s;
        h->tab->mse[0](&sub, 0, part, NULL);
        if (a->grad) fl_half_scatter(h, xs, 1, n, 0, (uint16_t *)a->grad + off, h->stream);
        if (a->hess) h->tab->f32_to_half[h->kind](hs, (uint16_t *)a->hess + off, n);
    }
}

static size_t fl_align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Scratch of one thread: the kernel's own, then three float32 tile buffers
 * (predictions / gradient, target, Hessian). */
static size_t fl_half_scratch(fl_half_ctx *h, int64_t tile_elems)
{
    h->tile_bytes = fl_align64((size_t)tile_elems * sizeof(float));
    return h->kscratch + 3 * h->tile_bytes;
}

/* A large gradient that does not overwrite the predictions leaves with
 * non-temporal stores (as float32's rows do): the output is never read. */
static int fl_half_stream(const void *args, int loss, int64_t n)
{
    const void *pred, *grad;
    if (loss == 0) {
        pred = ((const fl_softmax_ce_args *)args)->logits;
        grad = ((const fl_softmax_ce_args *)args)->grad;
    } else if (loss == 1) {
        pred = ((const fl_hinge_args *)args)->scores;
        grad = ((const fl_hinge_args *)args)->grad;
    } else if (loss == 2) {
        pred = ((const fl_sigmoid_ce_args *)args)->logits;
        grad = ((const fl_sigmoid_ce_args *)args)->grad;
    } else {
        pred = ((const fl_mse_args *)args)->pred;
        grad = ((const fl_mse_args *)args)->grad;
    }
    return grad != NULL && grad != pred && (double)n * 2.0 >= FL_STREAM_BYTES;
}

static fl_status fl_half_class_run(const void *args, int loss, int kind, const fl_rows_ctx *ctx,
                                   int64_t outer, int64_t C, int64_t inner, int target_half,
                                   size_t kscratch, int n_threads, fl_partial *tot)
{
    fl_half_ctx h;
    int64_t rpb = ctx->rows_per_block, n_tiles, tile_rows;
    size_t scratch;
    memset(&h, 0, sizeof(h));
    h.tab = fl_table();
    h.kind = kind;
    h.loss = loss;
    h.args = args;
    h.rows = *ctx;
    h.rows.stream = 0;                  /* tiles never stream */
    h.kscratch = fl_align64(kscratch);
    h.target_half = target_half;
    h.stream = fl_half_stream(args, loss, ctx->n_rows * C);
    if (inner == 1) {
        n_tiles = (ctx->n_rows + rpb - 1) / rpb;
        tile_rows = ctx->n_rows < rpb ? ctx->n_rows : rpb;
    } else {
        h.tiles_per_outer = inner > 0 ? (inner + rpb - 1) / rpb : 0;
        n_tiles = outer * h.tiles_per_outer;
        tile_rows = inner < rpb ? inner : rpb;
    }
    scratch = fl_half_scratch(&h, tile_rows * C);
    return fl_run_blocks(fl_half_class_tile, &h, n_tiles, n_threads, ctx->n_rows * C, scratch,
                         tot);
}

static fl_status fl_half_elem_run(const void *args, int loss, int kind, const fl_elem_ctx *ctx,
                                  int64_t n_blocks, int target_half, int n_threads,
                                  fl_partial *tot, fl_block_ext *ext)
{
    fl_half_ctx h;
    int64_t tile_elems;
    size_t scratch;
    memset(&h, 0, sizeof(h));
    h.tab = fl_table();
    h.kind = kind;
    h.loss = loss;
    h.args = args;
    h.elem = *ctx;
    h.target_half = target_half;
    h.stream = fl_half_stream(args, loss, ctx->n_rows * ctx->row_len);
    if (ctx->rows_per_block > 0)
        tile_elems = (ctx->n_rows < ctx->rows_per_block ? ctx->n_rows : ctx->rows_per_block)
                     * ctx->row_len;
    else
        tile_elems = ctx->cols_per_block;
    scratch = fl_half_scratch(&h, tile_elems);
    return fl_run_blocks_ext(fl_half_elem_tile, &h, n_blocks, n_threads,
                             ctx->n_rows * ctx->row_len, scratch, tot, ext);
}

/* The sigmoid ignore mask of a half call: elements whose target equals the
 * ignore value, counted on the target as the float32 kernel sees it. */
static void fl_half_ignored_block(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    const fl_half_ctx *h = (const fl_half_ctx *)vctx;
    const fl_sigmoid_ce_args *a = (const fl_sigmoid_ce_args *)h->args;
    const float ign = (float)a->ignore_value;
    float buf[FL_CHUNK];
    int64_t r0, r1, c0, c1, r, cc, i;
    double cnt = 0.0;
    (void)scratch;
    fl_elem_block_range(&h->elem, b, &r0, &r1, &c0, &c1);
    for (r = r0; r < r1; ++r)
        for (cc = c0; cc < c1; cc += FL_CHUNK) {
            int64_t n = c1 - cc < FL_CHUNK ? c1 - cc : FL_CHUNK;
            h->tab->half_to_f32[h->kind]((const uint16_t *)a->target + r * h->elem.row_len + cc,
                                         buf, n);
            for (i = 0; i < n; ++i) cnt += buf[i] == ign;
        }
    part->ignored = cnt;
}

static fl_status fl_half_ignored_run(const fl_sigmoid_ce_args *a, int kind,
                                     const fl_elem_ctx *ctx, int64_t n_blocks, fl_partial *tot)
{
    fl_half_ctx h;
    if (a->target_dtype == FL_TARGET_F32)      /* a float32 target: the float32 prepass */
        return fl_run_blocks(fl_table()->sigmoid_ignored[0], ctx, n_blocks, a->n_threads,
                             ctx->n_rows * ctx->row_len, 0, tot);
    memset(&h, 0, sizeof(h));
    h.tab = fl_table();
    h.kind = kind;
    h.loss = 2;
    h.args = a;
    h.elem = *ctx;
    return fl_run_blocks(fl_half_ignored_block, &h, n_blocks, a->n_threads,
                         ctx->n_rows * ctx->row_len, 0, tot);
}

void fl_half_to_f32(int kind, const uint16_t *src, float *dst, int64_t n)
{
    fl_table()->half_to_f32[kind ? 1 : 0](src, dst, n);
}

void fl_f32_to_half(int kind, const float *src, uint16_t *dst, int64_t n)
{
    fl_table()->f32_to_half[kind ? 1 : 0](src, dst, n);
}

/* ------------------------------------------------------------------ copy */

static void fl_copy_chunk(void *dst, const void *src, int64_t nbytes, int64_t chunk, int64_t i)
{
    int64_t off = i * chunk;
    int64_t len = nbytes - off < chunk ? nbytes - off : chunk;
    memcpy((char *)dst + off, (const char *)src + off, (size_t)len);
}

void fl_parallel_copy(void *dst, const void *src, int64_t nbytes, int n_threads)
{
    const int64_t chunk = 1 << 20;
    int64_t n_chunks = (nbytes + chunk - 1) / chunk, i;
    int nt = fl_threads_for(n_threads, nbytes / 4, n_chunks);
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (i = 0; i < n_chunks; ++i) fl_copy_chunk(dst, src, nbytes, chunk, i);
        return;
    }
#endif
    (void)nt;
    for (i = 0; i < n_chunks; ++i) fl_copy_chunk(dst, src, nbytes, chunk, i);
}

static uint64_t fl_read_chunk(const void *src, int64_t nbytes, int64_t chunk, int64_t i)
{
    const unsigned char *p = (const unsigned char *)src + i * chunk;
    int64_t len = nbytes - i * chunk < chunk ? nbytes - i * chunk : chunk, k;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, w[4];
    for (k = 0; k + 32 <= len; k += 32) {
        memcpy(w, p + k, 32);
        s0 += w[0]; s1 += w[1]; s2 += w[2]; s3 += w[3];
    }
    for (; k < len; ++k) s0 += p[k];
    return s0 + s1 + s2 + s3;
}

uint64_t fl_parallel_read(const void *src, int64_t nbytes, int n_threads)
{
    const int64_t chunk = 1 << 20;
    int64_t n_chunks = (nbytes + chunk - 1) / chunk, i;
    int nt = fl_threads_for(n_threads, nbytes / 4, n_chunks);
    uint64_t sum = 0;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+:sum)
        for (i = 0; i < n_chunks; ++i) sum += fl_read_chunk(src, nbytes, chunk, i);
        return sum;
    }
#endif
    (void)nt;
    for (i = 0; i < n_chunks; ++i) sum += fl_read_chunk(src, nbytes, chunk, i);
    return sum;
}
