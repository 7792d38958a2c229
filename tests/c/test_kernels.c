/*
 * test_kernels.c -- drives every entry point of src_c/fastloss.h on small data,
 * for the sanitizer pass (tests/c/run_sanitizers.sh): both dtypes, every loss,
 * every option, every reduction, NULL and non-NULL outputs, in-place
 * gradients, inner > 1 layouts, empty inputs, bad labels and bad arguments,
 * 1 and 2 threads, every SIMD table this build and CPU have.  Values are
 * checked against a plain double reference (and the option gradients
 * against central differences of the kernel's own value in float64).
 *
 * Every buffer is malloc'ed with its exact size, so AddressSanitizer reports
 * a read or write one element past any array.
 *
 * Build (see run_sanitizers.sh for the sanitizer flags):
 *   cc -Isrc_c -fopenmp -fopenmp-simd src_c/dispatch.c src_c/kernels.c \
 *      tests/c/test_kernels.c -lm && ./a.out
 * Exit status 0 when every check passes; the failed checks are printed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastloss.h"

static long n_checks = 0, n_fails = 0;
static const char *ctx_name = "";

static void fail(const char *fmt, ...)
{
    va_list ap;
    n_fails++;
    if (n_fails > 60) return;
    fprintf(stderr, "FAIL [%s] ", ctx_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond, ...)                       \
    do {                                       \
        n_checks++;                            \
        if (!(cond)) fail(__VA_ARGS__);        \
    } while (0)

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void)   /* [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* exact-size allocation (malloc(0) is a valid, zero-byte block under ASan) */
static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL && n) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static size_t esz(int dt) { return dt ? sizeof(double) : sizeof(float); }

/* a dtype buffer holding v (rounded to the dtype) */
static void *to_dt(const double *v, int64_t n, int dt)
{
    void *p = xmalloc((size_t)n * esz(dt));
    int64_t i;
    for (i = 0; i < n; ++i) {
        if (dt) ((double *)p)[i] = v[i];
        else ((float *)p)[i] = (float)v[i];
    }
    return p;
}

static double get(const void *p, int64_t i, int dt)
{
    return dt ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* v rounded to the dtype, in place (the reference sees the numbers the kernel sees) */
static void round_dt(double *v, int64_t n, int dt)
{
    int64_t i;
    if (!dt)
        for (i = 0; i < n; ++i) v[i] = (double)(float)v[i];
}

static void *filled(int64_t n, int dt, double value)
{
    double *tmp = (double *)xmalloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    int64_t i;
    void *p;
    for (i = 0; i < n; ++i) tmp[i] = value;
    p = to_dt(tmp, n, dt);
    free(tmp);
    return p;
}

static double *dfilled(int64_t n, double value)
{
    double *p = (double *)xmalloc((size_t)n * sizeof(double));
    int64_t i;
    for (i = 0; i < n; ++i) p[i] = value;
    return p;
}

static int same_bits(const void *a, const void *b, size_t n) { return n == 0 || memcmp(a, b, n) == 0; }

static int all_equal(const void *p, int64_t n, int dt, double value)
{
    int64_t i;
    for (i = 0; i < n; ++i)
        if (get(p, i, dt) != value) return 0;
    return 1;
}

static double tol_of(int dt) { return dt ? 1e-11 : 3e-5; }

static int close_to(double a, double e, double scale, int dt)
{
    if (isnan(e)) return isnan(a);
    if (isinf(e)) return a == e;
    return fabs(a - e) <= tol_of(dt) * (fabs(e) + scale) + 1e-300;
}

/* elementwise check of a buffer (read as dtype dt) against a double reference, with the
 * tolerance of dtype tol_dt */
static void check_array_tol(const char *what, const void *p, const double *ref, int64_t n,
                            int dt, int tol_dt);

static void check_array(const char *what, const void *p, const double *ref, int64_t n, int dt)
{
    check_array_tol(what, p, ref, n, dt, dt);
}

static double term_scale = 0.0;   /* magnitude of the terms an element is a difference of */

static void check_array_tol(const char *what, const void *p, const double *ref, int64_t n,
                            int dt, int tol_dt)
{
    double scale = term_scale;
    int64_t i;
    for (i = 0; i < n; ++i)
        if (isfinite(ref[i]) && fabs(ref[i]) > scale) scale = fabs(ref[i]);
    for (i = 0; i < n; ++i) {
        double a = get(p, i, dt);
        if (!close_to(a, ref[i], scale, tol_dt)) {
            fail("%s[%lld] = %.17g, expected %.17g", what, (long long)i, a, ref[i]);
            n_checks++;
            return;
        }
    }
    n_checks++;
}

static void check_value(const char *what, double a, double e, double scale, int dt)
{
    CHECK(close_to(a, e, scale, dt), "%s = %.17g, expected %.17g", what, a, e);
}

static double reduce_ref(int reduction, double sum, double denom)
{
    if (reduction == FL_REDUCE_MEAN) return denom == 0.0 ? NAN : sum / denom;
    return sum;
}

static double grad_scale_ref(int reduction, double denom)
{
    if (reduction != FL_REDUCE_MEAN) return 1.0;
    return denom == 0.0 ? INFINITY : 1.0 / denom;
}

/* =================================================== softmax cross-entropy */

typedef struct {
    int64_t outer, C, inner;
    int probs;           /* probability targets instead of labels */
    int ignore;          /* some rows carry ignore_index */
    int weight, sample_weight;
    double eps;
    int reduction;
    double z_loss, softcap, focal, poly1;
    int lse, top_k;
} sce_case;

typedef struct {
    double *x, *t, *w, *sw;     /* double inputs (x, t rounded to the dtype) */
    int64_t *labels;
    int64_t ignore_index;
} sce_inputs;

static void sce_make(const sce_case *c, int dt, sce_inputs *in)
{
    int64_t n = c->outer * c->C * c->inner, rows = c->outer * c->inner, i, k;
    in->x = (double *)xmalloc((size_t)n * sizeof(double));
    for (i = 0; i < n; ++i) in->x[i] = 2.0 * nrand();
    round_dt(in->x, n, dt);
    in->ignore_index = c->C > 2 ? 1 : -100;
    in->labels = NULL;
    in->t = NULL;
    if (c->probs) {
        in->t = (double *)xmalloc((size_t)n * sizeof(double));
        for (i = 0; i < rows; ++i) {
            int64_t o = i / c->inner, j = i % c->inner;
            double s = 0.0;
            for (k = 0; k < c->C; ++k) s += in->t[o * c->C * c->inner + k * c->inner + j] = urand();
            for (k = 0; k < c->C; ++k) in->t[o * c->C * c->inner + k * c->inner + j] /= s;
        }
        round_dt(in->t, n, dt);
    } else {
        in->labels = (int64_t *)xmalloc((size_t)rows * sizeof(int64_t));
        for (i = 0; i < rows; ++i) {
            in->labels[i] = (int64_t)(urand() * (double)c->C);
            if (c->ignore && i % 3 == 0) in->labels[i] = in->ignore_index;
        }
    }
    in->w = NULL;
    if (c->weight) {
        in->w = (double *)xmalloc((size_t)c->C * sizeof(double));
        for (k = 0; k < c->C; ++k) in->w[k] = 0.5 + 1.5 * urand();
    }
    in->sw = NULL;
    if (c->sample_weight) {
        in->sw = (double *)xmalloc((size_t)rows * sizeof(double));
        for (i = 0; i < rows; ++i) in->sw[i] = 0.25 + 2.0 * urand();
    }
}

static void sce_free(sce_inputs *in)
{
    free(in->x);
    free(in->t);
    free(in->labels);
    free(in->w);
    free(in->sw);
}

/* The reference: row losses, gradient, Hessian, lse per row, value, denominator. */
static void sce_reference(const sce_case *c, const sce_inputs *in, double *row_loss,
                          double *grad, double *hess, double *lse_out, double *value,
                          double *loss_sum, double *denom_out, int64_t *top1, int64_t *topk)
{
    const int64_t C = c->C, inner = c->inner, rows = c->outer * inner;
    double denom = 0.0, sum = 0.0;
    int64_t r, k;
    double *z = (double *)xmalloc((size_t)C * sizeof(double) + 1);
    double *p = (double *)xmalloc((size_t)C * sizeof(double) + 1);
    double *a = (double *)xmalloc((size_t)C * sizeof(double) + 1);
    double *tt = (double *)xmalloc((size_t)C * sizeof(double) + 1);
    *top1 = *topk = 0;
    for (r = 0; r < rows; ++r) {
        int64_t y = in->labels ? in->labels[r] : -1;
        double s = in->sw ? in->sw[r] : 1.0;
        if (in->labels && y == in->ignore_index) continue;
        denom += in->labels ? s * (in->w ? in->w[y] : 1.0) : s;
    }
    for (r = 0; r < rows; ++r) {
        int64_t o = r / inner, j = r % inner, y = in->labels ? in->labels[r] : -1;
        double s = in->sw ? in->sw[r] : 1.0, m = -INFINITY, se = 0.0, A = 0.0, l = 0.0;
        const double *x = in->x + o * C * inner + j;
        double wy = y >= 0 ? (in->w ? in->w[y] : 1.0) : 1.0, roww, lse, pt = 0.0;
        if (in->labels && y == in->ignore_index) {
            row_loss[r] = 0.0;
            for (k = 0; k < C; ++k) grad[o * C * inner + k * inner + j] = 0.0;
            for (k = 0; k < C; ++k) hess[o * C * inner + k * inner + j] = 0.0;
            /* lse of ignored rows is still reported */
        }
        for (k = 0; k < C; ++k) {
            z[k] = c->softcap > 0 ? c->softcap * tanh(x[k * inner] / c->softcap) : x[k * inner];
            if (z[k] > m) m = z[k];
        }
        for (k = 0; k < C; ++k) se += exp(z[k] - m);
        lse = m + log(se);
        if (lse_out) lse_out[r] = lse;
        if (in->labels && y == in->ignore_index) continue;
        if (in->labels && c->top_k > 0) {
            int64_t cnt = 0;
            for (k = 0; k < C; ++k) cnt += x[k * inner] > x[y * inner];
            *top1 += cnt < 1;
            *topk += cnt < c->top_k;
        }
        for (k = 0; k < C; ++k) {
            double tk = in->labels ? (k == y) : in->t[o * C * inner + k * inner + j];
            tt[k] = (1.0 - c->eps) * tk + c->eps / (double)C;
            a[k] = (in->w ? in->w[k] : 1.0) * tt[k];
            A += a[k];
            p[k] = exp(z[k] - lse);
            pt += tt[k] * p[k];
        }
        roww = in->labels ? wy * s : s;
        if (c->focal != 0.0) {
            double omq = 1.0 - p[y];
            l = roww * pow(omq, c->focal) * (lse - z[y]);
        } else {
            for (k = 0; k < C; ++k) l += a[k] * (lse - z[k]);
            l *= s;
        }
        l += roww * (c->z_loss * lse * lse + c->poly1 * (1.0 - pt));
        row_loss[r] = l;
        sum += l;
        for (k = 0; k < C; ++k) {
            /* the plain gradient and Hessian only; option gradients are checked by
             * finite differences */
            double sc = grad_scale_ref(c->reduction, denom) * s;
            grad[o * C * inner + k * inner + j] = sc * (A * p[k] - a[k]);
            hess[o * C * inner + k * inner + j] = sc * A * p[k] * (1.0 - p[k]);
        }
    }
    *value = reduce_ref(c->reduction, sum, denom);
    *loss_sum = sum;
    *denom_out = denom;
    free(z);
    free(p);
    free(a);
    free(tt);
}

static fl_status sce_call(int dt, const fl_softmax_ce_args *a, fl_result *r)
{
    return dt ? fl_softmax_ce_f64(a, r) : fl_softmax_ce_f32(a, r);
}

static void sce_args_init(fl_softmax_ce_args *a, const sce_case *c, const sce_inputs *in,
                          const void *X, const void *T, int n_threads)
{
    memset(a, 0, sizeof(*a));
    a->outer = c->outer;
    a->n_classes = c->C;
    a->inner = c->inner;
    a->logits = X;
    a->labels = in->labels;
    a->probs = c->probs ? T : NULL;
    a->class_weight = in->w;
    a->sample_weight = in->sw;
    a->ignore_index = in->ignore_index;
    a->label_smoothing = c->eps;
    a->reduction = c->reduction;
    a->top_k = c->top_k;
    a->n_threads = n_threads;
    a->z_loss = c->z_loss;
    a->softcap = c->softcap;
    a->focal_gamma = c->focal;
    a->poly1_epsilon = c->poly1;
}

static int sce_has_options(const sce_case *c)
{
    return c->z_loss != 0.0 || c->softcap > 0.0 || c->focal != 0.0 || c->poly1 != 0.0;
}

/* f64 central differences of the kernel's own value along a random direction,
 * against <grad, d> (option gradients, for which the reference has no formula). */
static void sce_fd_check(const sce_case *c, const sce_inputs *in, const void *T,
                         const double *grad)
{
    int64_t n = c->outer * c->C * c->inner, i;
    double *d = (double *)xmalloc((size_t)n * sizeof(double) + 8);
    double *xp = (double *)xmalloc((size_t)n * sizeof(double) + 8);
    double *xm = (double *)xmalloc((size_t)n * sizeof(double) + 8);
    double h = 1e-6, dot = 0.0, norm = 0.0, gmax = 0.0, fp, fm;
    fl_softmax_ce_args a;
    fl_result r;
    sce_case cc = *c;
    if (cc.reduction == FL_REDUCE_NONE) cc.reduction = FL_REDUCE_SUM;
    for (i = 0; i < n; ++i) {
        d[i] = nrand();
        norm += d[i] * d[i];
    }
    norm = sqrt(norm);
    for (i = 0; i < n; ++i) {
        d[i] /= norm;
        xp[i] = in->x[i] + h * d[i];
        xm[i] = in->x[i] - h * d[i];
        dot += grad[i] * d[i];
        if (fabs(grad[i]) > gmax) gmax = fabs(grad[i]);
    }
    sce_args_init(&a, &cc, in, xp, T, 1);
    sce_call(1, &a, &r);
    fp = r.value;
    a.logits = xm;
    sce_call(1, &a, &r);
    fm = r.value;
    if (isnan(fp) && isnan(fm)) {      /* every row ignored: MEAN is NaN, the gradient 0 */
        free(d);
        free(xp);
        free(xm);
        return;
    }
    CHECK(fabs((fp - fm) / (2 * h) - dot) <= 1e-6 * (1.0 + fabs(dot) + gmax),
          "finite differences %.12g vs <grad, d> %.12g", (fp - fm) / (2 * h), dot);
    free(d);
    free(xp);
    free(xm);
}

/* out_mode: 0 none, 1 row_loss only, 2 grad only, 3 grad + hess, 4 grad in place,
 * 5 everything (row_loss, grad, hess / lse) */
static void run_sce(const sce_case *c, int dt, int out_mode, int n_threads)
{
    const int64_t n = c->outer * c->C * c->inner, rows = c->outer * c->inner;
    sce_inputs in;
    void *X, *T = NULL, *RL = NULL, *G = NULL, *H = NULL;
    double *lse = NULL;
    double *ref_rl, *ref_g, *ref_h, *ref_lse, value, loss_sum, denom;
    int64_t top1, topk;
    fl_softmax_ce_args a;
    fl_result r;
    fl_status st;
    int opts = sce_has_options(c);
    int want_hess = (out_mode == 3 || out_mode == 5) && !opts;
    char name[256];
    snprintf(name, sizeof name,
             "softmax %s outer=%lld C=%lld inner=%lld probs=%d ignore=%d w=%d sw=%d eps=%g "
             "red=%d z=%g cap=%g focal=%g poly=%g lse=%d topk=%d out=%d nt=%d",
             dt ? "f64" : "f32", (long long)c->outer, (long long)c->C, (long long)c->inner,
             c->probs, c->ignore, c->weight, c->sample_weight, c->eps, c->reduction, c->z_loss,
             c->softcap, c->focal, c->poly1, c->lse, (int)c->top_k, out_mode, n_threads);
    ctx_name = name;
    sce_make(c, dt, &in);
    X = to_dt(in.x, n, dt);
    if (c->probs) T = to_dt(in.t, n, dt);
    ref_rl = dfilled(rows, 0.0);
    ref_g = dfilled(n, 0.0);
    ref_h = dfilled(n, 0.0);
    ref_lse = dfilled(rows, 0.0);
    sce_reference(c, &in, ref_rl, ref_g, ref_h, ref_lse, &value, &loss_sum, &denom, &top1,
                  &topk);
    sce_args_init(&a, c, &in, X, T, n_threads);
    if (out_mode == 1 || out_mode == 5) a.row_loss = RL = filled(rows, dt, 77.0);
    if (out_mode >= 2 && out_mode != 4) a.grad = G = filled(n, dt, 77.0);
    if (want_hess) a.hess = H = filled(n, dt, 77.0);
    if (out_mode == 4) {
        G = to_dt(in.x, n, dt);
        a.logits = G;
        a.grad = G;
    }
    if (c->lse) a.lse_out = lse = dfilled(rows, 77.0);
    st = sce_call(dt, &a, &r);
    CHECK(st == FL_OK, "status %d", (int)st);
    if (st == FL_OK) {
        double scale = 0.0;
        int64_t i;
        for (i = 0; i < rows; ++i) scale += fabs(ref_rl[i]);
        if (c->reduction == FL_REDUCE_MEAN && denom != 0.0) scale /= denom;
        check_value("value", r.value, value, scale, dt);
        check_value("loss_sum", r.loss_sum, loss_sum, scale * (denom ? denom : 1), dt);
        CHECK(r.weight_sum == denom || fabs(r.weight_sum - denom) <= 1e-12 * denom,
              "weight_sum %.17g, expected %.17g", r.weight_sum, denom);
        CHECK(r.n_rows == rows, "n_rows %lld", (long long)r.n_rows);
        if (c->top_k > 0 && !c->probs)
            CHECK(r.n_top1 == top1 && r.n_topk == topk, "top1 %lld/%lld topk %lld/%lld",
                  (long long)r.n_top1, (long long)top1, (long long)r.n_topk, (long long)topk);
        if (RL) check_array("row_loss", RL, ref_rl, rows, dt);
        if (lse) check_array_tol("lse_out", lse, ref_lse, rows, 1, dt);   /* dt's precision */
        {
            /* g = s * scale * (A p - a): |A p| + |a| <= 2 A s scale */
            double ts = 0.0, A = 0.0;
            int64_t k;
            for (k = 0; k < c->C; ++k) A += in.w ? in.w[k] : 1.0;
            ts = 2.0 * A * grad_scale_ref(c->reduction, denom);
            if (in.sw) {
                double mx = 0.0;
                for (i = 0; i < rows; ++i) mx = in.sw[i] > mx ? in.sw[i] : mx;
                ts *= mx;
            }
            term_scale = isfinite(ts) ? ts : 0.0;
            if (G && !opts) check_array("grad", G, ref_g, n, dt);
            if (H) check_array("hess", H, ref_h, n, dt);
            term_scale = 0.0;
        }
        if (G && opts && dt == 1) {
            double *gd = (double *)xmalloc((size_t)n * sizeof(double) + 8);
            for (i = 0; i < n; ++i) gd[i] = get(G, i, dt);
            sce_fd_check(c, &in, T, gd);
            free(gd);
        }
        if (G) {
            /* the gradient is the same in place and out of place, bitwise */
            void *G2 = filled(n, dt, 55.0);
            fl_result r2;
            fl_softmax_ce_args b = a;
            double *lse2 = c->lse ? dfilled(rows, 66.0) : NULL;
            if (out_mode == 4) {
                b.logits = X;
                b.grad = G2;
            } else {
                memcpy(G2, X, (size_t)n * esz(dt));
                b.logits = G2;
                b.grad = G2;
            }
            b.row_loss = NULL;   /* (the Hessian stays: it selects the kernel's path) */
            b.lse_out = lse2;
            st = sce_call(dt, &b, &r2);
            CHECK(st == FL_OK && same_bits(G, G2, (size_t)n * esz(dt)),
                  "in-place and separate gradients differ");
            CHECK(r2.value == r.value || (isnan(r2.value) && isnan(r.value)),
                  "value differs with other outputs: %.17g vs %.17g", r2.value, r.value);
            if (lse) CHECK(same_bits(lse, lse2, (size_t)rows * 8), "lse_out differs");
            free(G2);
            free(lse2);
        }
    }
    free(X);
    free(T);
    free(RL);
    free(G);
    free(H);
    free(lse);
    free(ref_rl);
    free(ref_g);
    free(ref_h);
    free(ref_lse);
    sce_free(&in);
}

static void test_softmax(int dt, int n_threads)
{
    static const int64_t outers[] = {0, 1, 5};
    static const int64_t classes[] = {1, 2, 7, 40};
    static const int64_t inners[] = {1, 3};
    int io, ic, ii, tk, red, counter = 0;
    for (io = 0; io < 3; ++io)
        for (ic = 0; ic < 4; ++ic)
            for (ii = 0; ii < 2; ++ii)
                for (tk = 0; tk < 3; ++tk)
                    for (red = 0; red < 3; ++red) {
                        sce_case c;
                        memset(&c, 0, sizeof c);
                        c.outer = outers[io];
                        c.C = classes[ic];
                        c.inner = inners[ii];
                        c.probs = tk == 2;
                        c.ignore = tk == 1;
                        c.reduction = red;
                        c.weight = counter & 1;
                        c.sample_weight = (counter >> 1) & 1;
                        c.eps = (counter >> 2) & 1 ? 0.1 : 0.0;
                        c.top_k = (counter % 7 == 0 && !c.probs) ? 2 : 0;
                        c.lse = counter % 5 == 0;
                        run_sce(&c, dt, counter % 6, n_threads);
                        counter++;
                        /* the options beyond PyTorch, one at a time and together */
                        if (c.outer == 0 || c.C == 1 || ii == 1 ? 0 : 1) {
                            int opt;
                            for (opt = 0; opt < 6; ++opt) {
                                sce_case o = c;
                                o.z_loss = (opt == 0 || opt == 5) ? 0.01 : 0.0;
                                o.softcap = (opt == 1 || opt == 5) ? 3.0 : 0.0;
                                o.focal = (opt == 2 && !o.probs && o.eps == 0.0) ? 2.0 : 0.0;
                                o.poly1 = (opt == 3 || opt == 5) ? 0.5 : 0.0;
                                o.lse = opt >= 4;
                                run_sce(&o, dt, (opt % 2) ? 5 : 4, n_threads);
                            }
                        }
                    }
    /* inner > 1 with options (the strided path of the option kernel) */
    {
        sce_case c;
        memset(&c, 0, sizeof c);
        c.outer = 3;
        c.C = 6;
        c.inner = 4;
        c.z_loss = 0.02;
        c.softcap = 2.0;
        c.poly1 = 1.0;
        c.lse = 1;
        c.reduction = FL_REDUCE_MEAN;
        c.weight = c.sample_weight = 1;
        c.ignore = 1;
        run_sce(&c, dt, 5, n_threads);
        run_sce(&c, dt, 4, n_threads);
        c.probs = 1;
        c.ignore = 0;
        run_sce(&c, dt, 5, n_threads);
    }
}

/* special rows: +inf, -inf, NaN, all -inf */
static void test_softmax_special(int dt)
{
    const double inf = INFINITY;
    double x[5][4] = {{inf, 0, 1, 2}, {-inf, 0, 1, 2}, {NAN, 0, 1, 2}, {-inf, -inf, -inf, -inf},
                      {inf, inf, 0, 0}};
    int64_t labels[5] = {0, 0, 0, 0, 0};
    double xs[20];
    void *X, *G, *RL;
    double *lse;
    fl_softmax_ce_args a;
    fl_result r;
    int opt;
    ctx_name = dt ? "softmax special f64" : "softmax special f32";
    memcpy(xs, x, sizeof xs);
    X = to_dt(xs, 20, dt);
    for (opt = 0; opt < 5; ++opt) {
        G = filled(20, dt, 77.0);
        RL = filled(5, dt, 77.0);
        lse = dfilled(5, 77.0);
        memset(&a, 0, sizeof a);
        a.outer = 5;
        a.n_classes = 4;
        a.inner = 1;
        a.logits = X;
        a.labels = labels;
        a.ignore_index = -100;
        a.reduction = FL_REDUCE_NONE;
        a.row_loss = RL;
        a.grad = G;
        a.lse_out = lse;
        a.z_loss = opt == 1 ? 0.1 : 0.0;
        a.poly1_epsilon = opt == 2 ? 1.0 : 0.0;
        a.focal_gamma = opt == 3 ? 2.0 : 0.0;
        a.softcap = opt == 4 ? 5.0 : 0.0;
        CHECK(sce_call(dt, &a, &r) == FL_OK, "status (opt %d)", opt);
        /* (softcap maps +-inf to +-cap: those rows are finite; z_loss of lse = +inf is +inf) */
        if (opt != 4 && opt != 1)
            CHECK(get(RL, 0, dt) == 0.0, "+inf target row loss %g (opt %d)", get(RL, 0, dt), opt);
        if (opt != 4) {
            CHECK(isinf(get(RL, 1, dt)), "-inf target row loss %g (opt %d)", get(RL, 1, dt), opt);
            CHECK(isnan(get(RL, 3, dt)), "all -inf row loss %g (opt %d)", get(RL, 3, dt), opt);
        }
        CHECK(isnan(get(RL, 2, dt)), "NaN row loss %g (opt %d)", get(RL, 2, dt), opt);
        /* every row's lse_out entry is written, whatever the row holds */
        {
            int i;
            for (i = 0; i < 5; ++i)
                CHECK(lse[i] != 77.0, "lse_out[%d] left unwritten (opt %d: z_loss=%g "
                      "poly1=%g focal=%g softcap=%g)", i, opt, a.z_loss, a.poly1_epsilon,
                      a.focal_gamma, a.softcap);
            for (i = 0; i < 20; ++i)
                CHECK(get(G, i, dt) != 77.0, "grad[%d] left unwritten (opt %d)", i, opt);
        }
        free(G);
        free(RL);
        free(lse);
    }
    free(X);
}

/* ================================================== sigmoid cross-entropy */

static fl_status sig_call(int dt, const fl_sigmoid_ce_args *a, fl_result *r)
{
    return dt ? fl_sigmoid_ce_f64(a, r) : fl_sigmoid_ce_f32(a, r);
}

static double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* wmode: 0 none, 1 full weight, 2 one row broadcast (stride 0); gam / alpha / eps: the
 * focal and poly-1 options (alpha < 0: no alpha weighting) */
typedef struct {
    int64_t n_rows, row_len;
    int wmode, pw, reduction;
    double gam, alpha, eps;
} sig_case;

static void sig_args_init(fl_sigmoid_ce_args *a, const sig_case *c, const void *X,
                          const void *T, const void *W, const void *PW, int n_threads)
{
    memset(a, 0, sizeof *a);
    a->n_rows = c->n_rows;
    a->row_len = c->row_len;
    a->logits = X;
    a->target = T;
    a->weight = W;
    a->weight_row_stride = c->wmode == 1 ? c->row_len : 0;
    a->pos_weight = PW;
    a->reduction = c->reduction;
    a->n_threads = n_threads;
    a->focal_gamma = c->gam;
    a->focal_alpha = c->alpha;
    a->poly1_epsilon = c->eps;
}

static void run_sig(const sig_case *c, int out_mode, int dt, int n_threads)
{
    const int64_t n_rows = c->n_rows, row_len = c->row_len, n = n_rows * row_len;
    const int wmode = c->wmode, reduction = c->reduction;
    const int64_t wn = wmode == 1 ? n : row_len;
    const int opts = c->gam != 0.0 || c->alpha >= 0.0 || c->eps != 0.0;
    double *x = dfilled(n, 0), *t = dfilled(n, 0), *w = dfilled(wn, 1), *p = dfilled(row_len, 1);
    double *rl = dfilled(n, 0), *rg = dfilled(n, 0), *rh = dfilled(n, 0), sum = 0, scale = 0;
    void *X, *T, *W = NULL, *PW = NULL, *L = NULL, *G = NULL, *H = NULL;
    fl_sigmoid_ce_args a;
    fl_result r;
    fl_status st;
    int64_t i;
    char name[200];
    snprintf(name, sizeof name, "sigmoid %s %lldx%lld wmode=%d pw=%d red=%d gamma=%g alpha=%g "
             "poly=%g out=%d nt=%d", dt ? "f64" : "f32", (long long)n_rows, (long long)row_len,
             wmode, c->pw, reduction, c->gam, c->alpha, c->eps, out_mode, n_threads);
    ctx_name = name;
    for (i = 0; i < n; ++i) {
        x[i] = 3.0 * nrand();
        t[i] = urand();
    }
    for (i = 0; i < wn; ++i) w[i] = wmode ? 0.5 + urand() : 1.0;
    for (i = 0; i < row_len; ++i) p[i] = c->pw ? 0.5 + 2 * urand() : 1.0;
    round_dt(x, n, dt);
    round_dt(t, n, dt);
    round_dt(w, wn, dt);
    round_dt(p, row_len, dt);
    {
        double gs = grad_scale_ref(reduction, (double)n);
        for (i = 0; i < n; ++i) {
            int64_t k = row_len ? i % row_len : 0;
            double wi = wmode == 1 ? w[i] : (wmode == 2 ? w[k] : 1.0), s = sigm(x[i]);
            double ce = p[k] * t[i] * softplus(-x[i]) + (1 - t[i]) * softplus(x[i]);
            double omp = t[i] * (1 - s) + (1 - t[i]) * s;
            double at = c->alpha < 0 ? 1.0 : c->alpha * t[i] + (1 - c->alpha) * (1 - t[i]);
            rl[i] = opts ? wi * (at * pow(omp, c->gam) * ce + c->eps * omp) : wi * ce;
            rg[i] = gs * wi * ((1 - t[i]) * s - p[k] * t[i] * (1 - s));
            rh[i] = gs * wi * ((1 - t[i]) + p[k] * t[i]) * s * (1 - s);
            sum += rl[i];
            scale += fabs(rl[i]);
        }
    }
    X = to_dt(x, n, dt);
    T = to_dt(t, n, dt);
    if (wmode) W = to_dt(w, wn, dt);
    if (c->pw) PW = to_dt(p, row_len, dt);
    sig_args_init(&a, c, X, T, W, PW, n_threads);
    if (out_mode == 1 || out_mode == 5) a.loss = L = filled(n, dt, 77);
    if (out_mode == 2 || out_mode == 3 || out_mode == 5) a.grad = G = filled(n, dt, 77);
    if ((out_mode == 3 || out_mode == 5) && !opts) a.hess = H = filled(n, dt, 77);
    if (out_mode == 4) {
        G = to_dt(x, n, dt);
        a.logits = G;
        a.grad = G;
    }
    st = sig_call(dt, &a, &r);
    CHECK(st == FL_OK, "status %d", (int)st);
    if (st == FL_OK) {
        double sc = reduction == FL_REDUCE_MEAN && n ? scale / (double)n : scale;
        check_value("value", r.value, reduce_ref(reduction, sum, (double)n), sc, dt);
        if (L) check_array("loss", L, rl, n, dt);
        if (G && !opts) check_array("grad", G, rg, n, dt);
        if (H) check_array("hess", H, rh, n, dt);
        if (G && opts && dt == 1 && n > 0) {
            /* central differences of each element's loss (reduction none) */
            double *xp = dfilled(n, 0), *xm = dfilled(n, 0), *lp = dfilled(n, 0);
            double *lm = dfilled(n, 0), h = 1e-6, gs = grad_scale_ref(reduction, (double)n);
            fl_sigmoid_ce_args b;
            sig_case cn = *c;
            cn.reduction = FL_REDUCE_NONE;
            for (i = 0; i < n; ++i) {
                xp[i] = x[i] + h;
                xm[i] = x[i] - h;
            }
            sig_args_init(&b, &cn, xp, T, W, PW, 1);
            b.loss = lp;
            sig_call(1, &b, &r);
            b.logits = xm;
            b.loss = lm;
            sig_call(1, &b, &r);
            for (i = 0; i < n; ++i) {
                double fd = gs * (lp[i] - lm[i]) / (2 * h), g = get(G, i, 1);
                if (!(fabs(fd - g) <= 1e-6 * (1 + fabs(g)) * (gs > 0 ? gs : 1))) {
                    fail("grad[%lld] = %.12g, finite differences %.12g", (long long)i, g, fd);
                    break;
                }
            }
            n_checks++;
            free(xp); free(xm); free(lp); free(lm);
        }
    }
    free(x); free(t); free(w); free(p); free(rl); free(rg); free(rh);
    free(X); free(T); free(W); free(PW); free(L); free(G); free(H);
}

static void test_sigmoid(int dt, int n_threads)
{
    static const int64_t shapes[][2] = {{0, 5}, {3, 0}, {1, 1}, {4, 7}, {2, 300}, {2, 20000}};
    static const double opts[][3] = {{0, -1, 0}, {2, -1, 0}, {2, 0.25, 0}, {0, 0.25, 0},
                                     {0, -1, 1}, {1.5, 0.75, -0.5}};
    int s, wm, pw, red, o, counter = 0;
    for (s = 0; s < 6; ++s)
        for (wm = 0; wm < 3; ++wm)
            for (pw = 0; pw < 2; ++pw)
                for (red = 0; red < 3; ++red)
                    for (o = 0; o < 6; ++o) {
                        sig_case c;
                        if (o && (s == 5 || (counter + o) % 3)) continue;   /* a sample */
                        c.n_rows = shapes[s][0];
                        c.row_len = shapes[s][1];
                        c.wmode = wm;
                        c.pw = pw;
                        c.reduction = red;
                        c.gam = opts[o][0];
                        c.alpha = opts[o][1];
                        c.eps = opts[o][2];
                        run_sig(&c, counter++ % 6, dt, n_threads);
                    }
    /* the limits at +-inf and the tiny loss of a confident prediction */
    {
        double x[4] = {INFINITY, -INFINITY, 33.3, NAN}, t[4] = {1, 1, 1, 0};
        void *X = to_dt(x, 4, dt), *T = to_dt(t, 4, dt), *L = filled(4, dt, 7), *G = filled(4, dt, 7);
        fl_sigmoid_ce_args a;
        fl_result r;
        sig_case c = {1, 4, 0, 0, FL_REDUCE_NONE, 0.0, -1.0, 0.0};
        int o;
        ctx_name = "sigmoid special";
        for (o = 0; o < 3; ++o) {
            c.gam = o == 1 ? 2.0 : 0.0;
            c.alpha = o == 1 ? 0.25 : -1.0;
            c.eps = o == 2 ? 1.0 : 0.0;
            sig_args_init(&a, &c, X, T, NULL, NULL, 0);
            a.loss = L;
            a.grad = G;
            CHECK(sig_call(dt, &a, &r) == FL_OK, "status");
            CHECK(get(L, 0, dt) == 0.0 && isinf(get(L, 1, dt)) && isnan(get(L, 3, dt)),
                  "limits %g %g %g (options %d)", get(L, 0, dt), get(L, 1, dt), get(L, 3, dt), o);
            if (dt && o == 0)
                CHECK(fabs(get(L, 2, dt) - 3.45138774437421e-15) < 1e-27, "x=33.3: %.17g",
                      get(L, 2, dt));
            CHECK(get(G, 0, dt) == 0.0 && isfinite(get(G, 1, dt)),
                  "gradient limits %g %g (options %d)", get(G, 0, dt), get(G, 1, dt), o);
        }
        free(X); free(T); free(L); free(G);
    }
}

/* Sigmoid evaluation metrics (fl_sigmoid_metrics) against a scalar reference:
 * rows of labels, rows split into several blocks, every element a row of its
 * own (n_labels 1), ignored elements; the same bits for 1 and 2 threads. */
static void test_sigmoid_metrics(int dt)
{
    static const int64_t shapes[][3] = {{50, 7, 7}, {2, 40000, 40000}, {1, 30000, 1},
                                        {0, 4, 4}, {9, 1, 1}};
    const int64_t NB = 10, B = 20;
    const double thr = 0.4;
    int s, ig, th;
    ctx_name = "sigmoid metrics";
    for (s = 0; s < 5; ++s)
        for (ig = 0; ig < 2; ++ig) {
            const int64_t R = shapes[s][0], L = shapes[s][1], NL = shapes[s][2], n = R * L;
            const int64_t S = 3 + 2 * B, nlc = NL * S;
            double *x = (double *)malloc((size_t)(n + 1) * sizeof(double));
            double *t = (double *)malloc((size_t)(n + 1) * sizeof(double));
            int64_t *rlc = (int64_t *)calloc((size_t)nlc + 1, sizeof(int64_t));
            int64_t rc[3 + 2 * 11] = {0};
            double rs[1 + 11] = {0};
            int64_t i, r, k;
            void *X, *T;
            for (i = 0; i < n; ++i) {
                t[i] = urand() < 0.3 ? 1.0 : 0.0;
                if (ig && urand() < 0.2) t[i] = -1.0;
                x[i] = 2.0 * nrand() + (t[i] == 1.0 ? 1.0 : -0.5);
                if (dt == 0) x[i] = (double)(float)x[i];
            }
            if (n > 2) {
                x[0] = 0.0;                                  /* p = 1/2 */
                x[1] = 800.0;                                /* p = 1: the last bin */
            }
            /* the reference, in the kernel's definitions */
            for (r = 0; r < (NL == 1 ? n : R); ++r) {
                const int64_t len = NL == 1 ? 1 : L;
                int64_t nv = 0, nw = 0;
                for (k = 0; k < len; ++k) {
                    const int64_t e = r * len + k, lab = NL == 1 ? 0 : k;
                    double p = 1.0 / (1.0 + exp(-x[e]));
                    int pos, pred;
                    int64_t j = 0, h;
                    if (ig && t[e] == -1.0) continue;
                    pos = t[e] == 1.0;
                    pred = p >= thr;
                    while (j < NB && (j + 1 == NB ? 1.0 : (double)(j + 1) * (1.0 / NB)) <= p) ++j;
                    h = (int64_t)(p * B);
                    if (h > B - 1) h = B - 1;
                    rlc[lab * S + 0] += pos & pred;
                    rlc[lab * S + 1] += pos;
                    rlc[lab * S + 2] += pred;
                    rlc[lab * S + 3 + pos * B + h] += 1;
                    rc[3 + j] += 1;
                    rc[3 + NB + 1 + j] += pos;
                    rs[1 + j] += p;
                    rs[0] += (p - pos) * (p - pos);
                    nv += 1;
                    nw += pos != pred;
                }
                rc[0] += nv;
                rc[1] += nv > 0;
                rc[2] += nv > 0 && nw == 0;
            }
            X = to_dt(x, n, dt);
            T = to_dt(t, n, dt);
            {
                int64_t *glc[2], gc[2][3 + 2 * 11];
                double gs[2][1 + 11];
                for (th = 0; th < 2; ++th) {
                    fl_sigmoid_ce_args a;
                    fl_sigmoid_metrics m;
                    fl_result res;
                    glc[th] = (int64_t *)malloc((size_t)nlc * sizeof(int64_t) + 8);
                    memset(&a, 0, sizeof a);
                    memset(&m, 0, sizeof m);
                    a.n_rows = R;
                    a.row_len = L;
                    a.logits = X;
                    a.target = T;
                    a.reduction = FL_REDUCE_SUM;
                    a.n_threads = th + 1;
                    a.has_ignore = ig;
                    a.ignore_value = -1.0;
                    a.focal_alpha = -1.0;
                    m.threshold = thr;
                    m.n_bins = NB;
                    m.auc_bins = B;
                    m.n_labels = NL;
                    m.label_counts = glc[th];
                    m.counts = gc[th];
                    m.sums = gs[th];
                    a.metrics = &m;
                    CHECK(sig_call(dt, &a, &res) == FL_OK, "status %lldx%lld", (long long)R,
                          (long long)L);
                    CHECK(memcmp(glc[th], rlc, (size_t)nlc * sizeof(int64_t)) == 0,
                          "label counts %lldx%lld ignore %d threads %d", (long long)R,
                          (long long)L, ig, th + 1);
                    CHECK(memcmp(gc[th], rc, sizeof rc) == 0,
                          "counts %lldx%lld ignore %d threads %d: %lld %lld %lld vs %lld %lld %lld",
                          (long long)R, (long long)L, ig, th + 1, (long long)gc[th][0],
                          (long long)gc[th][1], (long long)gc[th][2], (long long)rc[0],
                          (long long)rc[1], (long long)rc[2]);
                    for (k = 0; k < 1 + NB + 1; ++k)
                        CHECK(fabs(gs[th][k] - rs[k]) <= 1e-9 * (1.0 + fabs(rs[k])),
                              "sum %lld: %.17g vs %.17g", (long long)k, gs[th][k], rs[k]);
                }
                CHECK(memcmp(gs[0], gs[1], sizeof gs[0]) == 0, "sums differ between 1 and 2 "
                      "threads (%lldx%lld)", (long long)R, (long long)L);
                free(glc[0]);
                free(glc[1]);
            }
            free(X); free(T); free(x); free(t); free(rlc);
        }
    {   /* requests outside the domain */
        fl_sigmoid_ce_args a;
        fl_sigmoid_metrics m;
        fl_result res;
        int64_t lc[3 * 4], c[3 + 2 * 16];
        double sm[1 + 16], xv[4] = {0, 0, 0, 0};
        void *X = to_dt(xv, 4, dt);
        memset(&a, 0, sizeof a);
        memset(&m, 0, sizeof m);
        a.n_rows = 1;
        a.row_len = 4;
        a.logits = X;
        a.target = X;
        a.reduction = FL_REDUCE_SUM;
        a.focal_alpha = -1.0;
        a.metrics = &m;
        m.threshold = 0.5;
        m.n_bins = 15;
        m.n_labels = 4;
        m.label_counts = lc;
        m.counts = c;
        m.sums = sm;
        CHECK(sig_call(dt, &a, &res) == FL_OK && c[0] == 4 && c[1] == 1, "metrics 1x4");
        m.n_labels = 2;
        CHECK(sig_call(dt, &a, &res) == FL_ERR_ARG && res.bad_value == FL_FIELD_METRICS,
              "metrics n_labels 2");
        m.n_labels = 4;
        m.threshold = NAN;
        CHECK(sig_call(dt, &a, &res) == FL_ERR_ARG, "metrics threshold NaN");
        m.threshold = 0.5;
        m.sums = NULL;
        CHECK(sig_call(dt, &a, &res) == FL_ERR_ARG, "metrics sums NULL");
        free(X);
    }
}

/* ================================================================= hinge */

static fl_status hinge_call(int dt, const fl_hinge_args *a, fl_result *r)
{
    return dt ? fl_hinge_f64(a, r) : fl_hinge_f32(a, r);
}

static double hh(double v, int sq) { double h = v > 0 ? v : 0; return sq ? h * h : h; }
static double hd(double v, int sq) { return v > 0 ? (sq ? 2 * v : 1.0) : 0.0; }

/* tmode: 0 labels, 1 +-1 target (ovr only) */
static void run_hinge(int64_t outer, int64_t C, int64_t inner, int mode, int tmode, int sq,
                      double margin, int weight, int sw_on, int reduction, int out_mode, int dt,
                      int n_threads, int64_t top_k)
{
    int64_t top1 = 0, topk = 0;
    const int64_t n = outer * C * inner, rows = outer * inner;
    double *x = dfilled(n, 0), *t = dfilled(n, 0), *w = dfilled(C, 1), *sw = dfilled(rows, 1);
    double *rl = dfilled(rows, 0), *rg = dfilled(n, 0), sum = 0, denom = 0, scale = 0;
    int64_t *labels = (int64_t *)xmalloc((size_t)rows * sizeof(int64_t));
    void *X, *T = NULL, *RL = NULL, *G = NULL;
    fl_hinge_args a;
    fl_result r;
    fl_status st;
    int64_t i, k;
    char name[200];
    snprintf(name, sizeof name, "hinge %s %lldx%lldx%lld mode=%d tmode=%d sq=%d margin=%g w=%d "
             "sw=%d red=%d out=%d nt=%d", dt ? "f64" : "f32", (long long)outer, (long long)C,
             (long long)inner, mode, tmode, sq, margin, weight, sw_on, reduction, out_mode,
             n_threads);
    ctx_name = name;
    /* scores on a grid of eighths: kinks are decided exactly in both precisions */
    for (i = 0; i < n; ++i) x[i] = (double)((int)(urand() * 40) - 20) / 8.0 + 1.0 / 64.0;
    for (i = 0; i < n; ++i) t[i] = urand() < 0.5 ? -1.0 : 1.0;
    for (k = 0; k < C; ++k) w[k] = weight ? 0.5 + (double)(k % 3) * 0.5 : 1.0;
    for (i = 0; i < rows; ++i) {
        labels[i] = (int64_t)(urand() * (double)C);
        sw[i] = sw_on ? 0.5 + (double)(i % 4) * 0.25 : 1.0;
        denom += sw[i];
    }
    for (i = 0; i < rows; ++i) {
        int64_t o = i / inner, j = i % inner, y = labels[i];
        const double *xr = x + o * C * inner + j;
        double *gr = rg + o * C * inner + j, l = 0;
        double gs = grad_scale_ref(reduction, denom) * sw[i];
        if (mode == FL_HINGE_OVR) {
            for (k = 0; k < C; ++k) {
                double tc = tmode ? t[o * C * inner + k * inner + j] : (k == y ? 1.0 : -1.0);
                double v = margin - tc * xr[k * inner];
                l += w[k] * hh(v, sq);
                gr[k * inner] = -gs * w[k] * tc * hd(v, sq);
            }
        } else if (mode == FL_HINGE_WESTON_WATKINS) {
            double gy = 0;
            for (k = 0; k < C; ++k) {
                double v = margin - xr[y * inner] + xr[k * inner];
                if (k == y) continue;
                l += hh(v, sq);
                gr[k * inner] = gs * w[y] / (double)C * hd(v, sq);
                gy -= gr[k * inner];
            }
            l *= w[y] / (double)C;
            gr[y * inner] = gy;
        } else {
            int64_t jm = -1;
            double mx = -INFINITY, v;
            for (k = 0; k < C; ++k)
                if (k != y && (jm < 0 || xr[k * inner] > mx)) { mx = xr[k * inner]; jm = k; }
            v = jm < 0 ? -INFINITY : margin + mx - xr[y * inner];
            l = w[y] * hh(v, sq);
            for (k = 0; k < C; ++k) gr[k * inner] = 0;
            if (jm >= 0) {
                gr[jm * inner] = gs * w[y] * hd(v, sq);
                gr[y * inner] = -gs * w[y] * hd(v, sq);
            }
        }
        rl[i] = sw[i] * l;
        sum += rl[i];
        scale += fabs(rl[i]);
        if (top_k > 0 && !tmode) {
            int64_t cnt = 0;
            for (k = 0; k < C; ++k) cnt += xr[k * inner] > xr[y * inner];
            top1 += cnt < 1;
            topk += cnt < top_k;
        }
    }
    X = to_dt(x, n, dt);
    if (tmode) T = to_dt(t, n, dt);
    memset(&a, 0, sizeof a);
    a.outer = outer;
    a.n_classes = C;
    a.inner = inner;
    a.scores = X;
    a.labels = tmode ? NULL : labels;
    a.target = T;
    a.class_weight = weight ? w : NULL;
    a.sample_weight = sw_on ? sw : NULL;
    a.margin = margin;
    a.squared = sq;
    a.mode = mode;
    a.reduction = reduction;
    a.n_threads = n_threads;
    a.top_k = tmode ? 0 : top_k;
    if (out_mode == 1 || out_mode == 3) a.row_loss = RL = filled(rows, dt, 77);
    if (out_mode == 2 || out_mode == 3) a.grad = G = filled(n, dt, 77);
    if (out_mode == 4) {
        G = to_dt(x, n, dt);
        a.scores = G;
        a.grad = G;
    }
    st = hinge_call(dt, &a, &r);
    CHECK(st == FL_OK, "status %d", (int)st);
    if (st == FL_OK) {
        double sc = reduction == FL_REDUCE_MEAN && denom ? scale / denom : scale;
        check_value("value", r.value, reduce_ref(reduction, sum, denom), sc, dt);
        if (RL) check_array("row_loss", RL, rl, rows, dt);
        if (G) check_array("grad", G, rg, n, dt);
        if (top_k > 0 && !tmode)
            CHECK(r.n_top1 == top1 && r.n_topk == topk, "top1 %lld/%lld topk %lld/%lld",
                  (long long)r.n_top1, (long long)top1, (long long)r.n_topk, (long long)topk);
    }
    free(x); free(t); free(w); free(sw); free(rl); free(rg); free(labels);
    free(X); free(T); free(RL); free(G);
}

static void test_hinge(int dt, int n_threads)
{
    static const int64_t outers[] = {0, 1, 6};
    static const int64_t classes[] = {1, 2, 5, 33};
    static const int64_t inners[] = {1, 3};
    int io, ic, ii, mode, counter = 0;
    for (io = 0; io < 3; ++io)
        for (ic = 0; ic < 4; ++ic)
            for (ii = 0; ii < 2; ++ii)
                for (mode = 0; mode < 4; ++mode) {   /* 3: ovr with a +-1 target */
                    int m = mode == 3 ? 0 : mode, red;
                    for (red = 0; red < 3; ++red) {
                        run_hinge(outers[io], classes[ic], inners[ii], m, mode == 3,
                                  counter & 1, (counter >> 1) & 1 ? 1.0 : 0.5,
                                  (counter >> 2) & 1, (counter >> 3) & 1, red, counter % 5, dt,
                                  n_threads, counter % 3 == 0 ? 2 : 0);
                        counter++;
                    }
                }
    /* binary hinge: C == 1 with a +-1 target, margin 2, squared */
    run_hinge(9, 1, 1, FL_HINGE_OVR, 1, 1, 2.0, 0, 1, FL_REDUCE_MEAN, 3, dt, n_threads, 0);
    /* a long row */
    run_hinge(2, 1001, 1, FL_HINGE_WESTON_WATKINS, 0, 1, 1.0, 1, 1, FL_REDUCE_SUM, 3, dt,
              n_threads, 5);
    run_hinge(2, 1001, 1, FL_HINGE_CRAMMER_SINGER, 0, 0, 1.0, 1, 1, FL_REDUCE_SUM, 3, dt,
              n_threads, 1);
}

/* =================================================================== mse */

static fl_status mse_call(int dt, const fl_mse_args *a, fl_result *r)
{
    return dt ? fl_mse_f64(a, r) : fl_mse_f32(a, r);
}

static void run_mse(int64_t n_rows, int64_t row_len, int wmode, int reduction, int out_mode,
                    int dt, int n_threads)
{
    const int64_t n = n_rows * row_len, wn = wmode == 1 ? n : row_len;
    double *x = dfilled(n, 0), *t = dfilled(n, 0), *w = dfilled(wn, 1);
    double *rl = dfilled(n, 0), *rg = dfilled(n, 0), *rh = dfilled(n, 0);
    double sum = 0, wsum = 0, scale = 0, gs;
    void *X, *T, *W = NULL, *L = NULL, *G = NULL, *H = NULL;
    fl_mse_args a;
    fl_result r;
    fl_status st;
    int64_t i;
    char name[200];
    snprintf(name, sizeof name, "mse %s %lldx%lld wmode=%d red=%d out=%d nt=%d",
             dt ? "f64" : "f32", (long long)n_rows, (long long)row_len, wmode, reduction,
             out_mode, n_threads);
    ctx_name = name;
    for (i = 0; i < n; ++i) {
        x[i] = 2 * nrand();
        t[i] = nrand();
    }
    for (i = 0; i < wn; ++i) w[i] = wmode ? 0.25 + urand() : 1.0;
    round_dt(x, n, dt);
    round_dt(t, n, dt);
    round_dt(w, wn, dt);
    for (i = 0; i < n; ++i) wsum += wmode == 1 ? w[i] : (wmode == 2 ? w[i % row_len] : 1.0);
    gs = grad_scale_ref(reduction, wsum);
    for (i = 0; i < n; ++i) {
        double wi = wmode == 1 ? w[i] : (wmode == 2 ? w[i % row_len] : 1.0), d = x[i] - t[i];
        rl[i] = wi * d * d;
        rg[i] = gs * 2 * wi * d;
        rh[i] = gs * 2 * wi;
        sum += rl[i];
        scale += fabs(rl[i]);
    }
    X = to_dt(x, n, dt);
    T = to_dt(t, n, dt);
    if (wmode) W = to_dt(w, wn, dt);
    memset(&a, 0, sizeof a);
    a.n_rows = n_rows;
    a.row_len = row_len;
    a.pred = X;
    a.target = T;
    a.weight = W;
    a.weight_row_stride = wmode == 1 ? row_len : 0;
    a.reduction = reduction;
    a.n_threads = n_threads;
    if (out_mode == 1 || out_mode == 5) a.loss = L = filled(n, dt, 77);
    if (out_mode == 2 || out_mode == 3 || out_mode == 5) a.grad = G = filled(n, dt, 77);
    if (out_mode == 3 || out_mode == 5) a.hess = H = filled(n, dt, 77);
    if (out_mode == 4) {
        G = to_dt(x, n, dt);
        a.pred = G;
        a.grad = G;
    }
    st = mse_call(dt, &a, &r);
    CHECK(st == FL_OK, "status %d", (int)st);
    if (st == FL_OK) {
        double sc = reduction == FL_REDUCE_MEAN && wsum ? scale / wsum : scale;
        check_value("value", r.value, reduce_ref(reduction, sum, wsum), sc, dt);
        if (L) check_array("loss", L, rl, n, dt);
        if (G) check_array("grad", G, rg, n, dt);
        if (H) check_array("hess", H, rh, n, dt);
    }
    free(x); free(t); free(w); free(rl); free(rg); free(rh);
    free(X); free(T); free(W); free(L); free(G); free(H);
}

static void test_mse(int dt, int n_threads)
{
    static const int64_t shapes[][2] = {{0, 5}, {3, 0}, {1, 1}, {4, 7}, {2, 300}, {2, 20000}};
    int s, wm, red, counter = 0;
    for (s = 0; s < 6; ++s)
        for (wm = 0; wm < 3; ++wm)
            for (red = 0; red < 3; ++red) run_mse(shapes[s][0], shapes[s][1], wm, red,
                                                  counter++ % 6, dt, n_threads);
    /* documented values */
    {
        double x[2] = {1, 2}, t[2] = {0, 0};
        void *X = to_dt(x, 2, dt), *T = to_dt(t, 2, dt);
        fl_mse_args a;
        fl_result r;
        ctx_name = "mse doc";
        memset(&a, 0, sizeof a);
        a.n_rows = 1;
        a.row_len = 2;
        a.pred = X;
        a.target = T;
        a.reduction = FL_REDUCE_MEAN;
        CHECK(mse_call(dt, &a, &r) == FL_OK && r.value == 2.5, "mse([1,2],[0,0]) = %g", r.value);
        free(X);
        free(T);
    }
}

/* ======================================================= errors and limits */

static void test_errors(int dt)
{
    double xs[12];
    int64_t labels[4] = {0, 1, 3, 1};   /* 3 is out of range for C = 3 */
    void *X, *G, *RL, *H;
    double *lse;
    fl_softmax_ce_args a;
    fl_hinge_args h;
    fl_sigmoid_ce_args s;
    fl_mse_args m;
    fl_result r;
    int i;
    ctx_name = dt ? "errors f64" : "errors f32";
    for (i = 0; i < 12; ++i) xs[i] = nrand();
    X = to_dt(xs, 12, dt);
    G = filled(12, dt, 77);
    RL = filled(4, dt, 77);
    H = filled(12, dt, 77);
    lse = dfilled(4, 77);

    memset(&a, 0, sizeof a);
    a.outer = 4;
    a.n_classes = 3;
    a.inner = 1;
    a.logits = X;
    a.labels = labels;
    a.ignore_index = -100;
    a.reduction = FL_REDUCE_MEAN;
    a.grad = G;
    a.row_loss = RL;
    a.hess = H;
    a.lse_out = lse;
    CHECK(sce_call(dt, &a, &r) == FL_ERR_LABEL && r.bad_index == 2 && r.bad_value == 3,
          "bad label: status/bad_index %lld bad_value %lld", (long long)r.bad_index,
          (long long)r.bad_value);
    labels[2] = -7;
    CHECK(sce_call(dt, &a, &r) == FL_ERR_LABEL && r.bad_index == 2 && r.bad_value == -7,
          "negative label");
    labels[2] = INT64_MIN;
    CHECK(sce_call(dt, &a, &r) == FL_ERR_LABEL && r.bad_value == INT64_MIN, "INT64_MIN label");
    labels[2] = -100;                    /* ignore_index: fine */
    a.hess = NULL;
    a.lse_out = NULL;
    CHECK(sce_call(dt, &a, &r) == FL_OK && r.n_ignored == 1, "ignore_index row");
    {
        void *G0 = filled(12, dt, 77);
        void *R0 = filled(4, dt, 77);
        memcpy(G, G0, 12 * esz(dt));
        memcpy(RL, R0, 4 * esz(dt));
        free(G0);
        free(R0);
    }
    a.hess = H;
    a.lse_out = lse;
    labels[2] = 3;
    /* arguments outside their domain: FL_ERR_ARG and nothing written */
    {
        fl_softmax_ce_args b;
        b = a; b.n_classes = 0; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "C = 0");
        b = a; b.outer = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "outer < 0");
        b = a; b.inner = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "inner < 0");
        b = a; b.reduction = 5; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "reduction 5");
        b = a; b.reduction = FL_REDUCE_BATCHMEAN; b.batch_size = -1;
        CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "batchmean with batch_size -1");
        b = a; b.reduction = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "reduction -1");
        b = a; b.labels = NULL; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "no target");
        b = a; b.probs = X; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "two targets");
        b = a; b.label_smoothing = 1.5; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "eps 1.5");
        b = a; b.label_smoothing = NAN; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "eps NaN");
        b = a; b.top_k = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "top_k -1");
        b = a; b.z_loss = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "z_loss -1");
        b = a; b.z_loss = NAN; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "z_loss NaN");
        b = a; b.softcap = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "softcap -1");
        b = a; b.focal_gamma = -1; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "gamma -1");
        b = a; b.poly1_epsilon = NAN; CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "poly NaN");
        b = a; b.z_loss = 0.1; labels[2] = 0;
        CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "hess with z_loss");
        b.hess = NULL; b.focal_gamma = 1; b.label_smoothing = 0.1;
        CHECK(sce_call(dt, &b, &r) == FL_ERR_ARG, "focal with smoothing");
        labels[2] = 3;
        CHECK(all_equal(G, 12, dt, 77) && all_equal(RL, 4, dt, 77) && all_equal(H, 12, dt, 77),
              "an output was written before an error");
        for (i = 0; i < 4; ++i) CHECK(lse[i] == 77, "lse_out written before an error");
    }
    /* hinge */
    memset(&h, 0, sizeof h);
    h.outer = 4;
    h.n_classes = 3;
    h.inner = 1;
    h.scores = X;
    h.labels = labels;
    h.margin = 1;
    h.reduction = FL_REDUCE_SUM;
    h.grad = G;
    h.row_loss = RL;
    for (i = 0; i < 3; ++i) {
        h.mode = i;
        CHECK(hinge_call(dt, &h, &r) == FL_ERR_LABEL && r.bad_index == 2 && r.bad_value == 3,
              "hinge bad label (mode %d)", i);
    }
    {
        fl_hinge_args b;
        b = h; b.mode = 3; CHECK(hinge_call(dt, &b, &r) == FL_ERR_ARG, "hinge mode 3");
        b = h; b.labels = NULL; CHECK(hinge_call(dt, &b, &r) == FL_ERR_ARG, "hinge no target");
        b = h; b.target = X; b.labels = NULL; b.mode = FL_HINGE_WESTON_WATKINS;
        CHECK(hinge_call(dt, &b, &r) == FL_ERR_ARG, "hinge +-1 target with ww");
        b = h; b.n_classes = 0; CHECK(hinge_call(dt, &b, &r) == FL_ERR_ARG, "hinge C = 0");
        b = h; b.reduction = 7; CHECK(hinge_call(dt, &b, &r) == FL_ERR_ARG, "hinge red 7");
        b = h; b.top_k = -1; CHECK(hinge_call(dt, &b, &r) == FL_ERR_ARG, "hinge top_k -1");
        CHECK(all_equal(G, 12, dt, 77) && all_equal(RL, 4, dt, 77),
              "hinge wrote an output before an error");
    }
    /* elementwise */
    memset(&s, 0, sizeof s);
    s.focal_alpha = -1.0;
    s.n_rows = 3;
    s.row_len = 4;
    s.logits = X;
    s.target = X;
    s.weight = X;
    s.weight_row_stride = 5;
    s.grad = G;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid weight stride 5");
    s.weight_row_stride = 4;
    s.reduction = 5;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid reduction 5");
    s.reduction = 0;
    s.has_ignore = 1;
    s.ignore_value = NAN;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid ignore_value NaN");
    s.has_ignore = 0;
    s.n_rows = -1;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid n_rows -1");
    s.n_rows = 3;
    s.focal_gamma = -1;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid gamma -1");
    s.focal_gamma = 2;
    s.focal_alpha = 1.5;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid alpha 1.5");
    s.focal_alpha = NAN;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid alpha NaN");
    s.focal_alpha = 0.25;
    s.hess = H;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid Hessian with focal");
    s.focal_gamma = 0;
    s.focal_alpha = -1;
    s.poly1_epsilon = NAN;
    s.hess = NULL;
    CHECK(sig_call(dt, &s, &r) == FL_ERR_ARG, "sigmoid poly1 NaN");
    CHECK(all_equal(H, 12, dt, 77), "sigmoid wrote the Hessian before an error");
    memset(&m, 0, sizeof m);
    m.n_rows = 3;
    m.row_len = 4;
    m.pred = X;
    m.target = X;
    m.weight = X;
    m.weight_row_stride = 1;
    m.grad = G;
    CHECK(mse_call(dt, &m, &r) == FL_ERR_ARG, "mse weight stride 1");
    m.weight_row_stride = 0;
    m.row_len = -4;
    CHECK(mse_call(dt, &m, &r) == FL_ERR_ARG, "mse row_len -4");
    CHECK(all_equal(G, 12, dt, 77), "elementwise wrote an output before an error");
    free(X); free(G); free(RL); free(H); free(lse);
}

/* empty batches: MEAN NaN, SUM 0; all rows ignored: MEAN NaN, gradient zeros */
static void test_empty(int dt)
{
    double one = 1.0;
    int64_t labels[2] = {-100, -100};
    void *X = to_dt(&one, 1, dt), *X2 = filled(6, dt, 0.5), *G2 = filled(6, dt, 77);
    fl_softmax_ce_args a;
    fl_result r;
    int red;
    ctx_name = dt ? "empty f64" : "empty f32";
    for (red = 0; red < 3; ++red) {
        memset(&a, 0, sizeof a);
        a.outer = 0;
        a.n_classes = 1000000;     /* a large C with no rows: no work, no reads */
        a.inner = 1;
        a.logits = X;
        a.labels = labels;
        a.ignore_index = -100;
        a.reduction = red;
        CHECK(sce_call(dt, &a, &r) == FL_OK, "empty status");
        CHECK(red == FL_REDUCE_MEAN ? isnan(r.value) : r.value == 0.0, "empty value %g", r.value);
        a.outer = 2;
        a.n_classes = 3;
        a.logits = X2;
        a.grad = G2;
        CHECK(sce_call(dt, &a, &r) == FL_OK, "all ignored status");
        CHECK(red == FL_REDUCE_MEAN ? isnan(r.value) : r.value == 0.0,
              "all ignored value %g", r.value);
        CHECK(all_equal(G2, 6, dt, 0.0), "all ignored: gradient not zero");
    }
    free(X);
    free(X2);
    free(G2);
}

/* results do not depend on the thread count, bitwise; a large gradient takes the
 * streamed path and equals the in-place one */
static void test_threads(int dt)
{
    const int64_t N = 600, C = 120, n = N * C;
    double *x = dfilled(n, 0), *w = dfilled(C, 0), *sw = dfilled(N, 0);
    int64_t *labels = (int64_t *)xmalloc((size_t)N * sizeof(int64_t)), i;
    void *X, *G1, *G2, *L1, *L2;
    fl_result r1, r2;
    int nt;
    ctx_name = dt ? "threads f64" : "threads f32";
    for (i = 0; i < n; ++i) x[i] = 3 * nrand();
    for (i = 0; i < C; ++i) w[i] = 0.5 + urand();
    for (i = 0; i < N; ++i) {
        labels[i] = (int64_t)(urand() * C);
        sw[i] = urand();
        if (i % 7 == 0) labels[i] = -100;
    }
    X = to_dt(x, n, dt);
    G1 = filled(n, dt, 0);
    G2 = filled(n, dt, 0);
    L1 = filled(n, dt, 0);
    L2 = filled(n, dt, 0);
    for (nt = 2; nt <= 3; ++nt) {
        fl_softmax_ce_args a;
        fl_sigmoid_ce_args s;
        fl_hinge_args h;
        fl_mse_args m;
        int mode;
        memset(&a, 0, sizeof a);
        a.outer = N; a.n_classes = C; a.inner = 1; a.logits = X; a.labels = labels;
        a.class_weight = w; a.sample_weight = sw; a.ignore_index = -100;
        a.label_smoothing = 0.1; a.reduction = FL_REDUCE_MEAN; a.grad = G1; a.row_loss = L1;
        a.n_threads = 1;
        sce_call(dt, &a, &r1);
        a.grad = G2; a.row_loss = L2; a.n_threads = nt;
        sce_call(dt, &a, &r2);
        CHECK(r1.value == r2.value && same_bits(G1, G2, n * esz(dt))
              && same_bits(L1, L2, N * esz(dt)), "softmax: n_threads=%d differs", nt);
        a.z_loss = 0.01; a.softcap = 4; a.n_threads = 1; a.grad = G1;
        sce_call(dt, &a, &r1);
        a.n_threads = nt; a.grad = G2;
        sce_call(dt, &a, &r2);
        CHECK(r1.value == r2.value && same_bits(G1, G2, n * esz(dt)),
              "softmax with options: n_threads=%d differs", nt);

        memset(&s, 0, sizeof s);
        s.focal_alpha = -1.0;
        s.n_rows = N; s.row_len = C; s.logits = X; s.target = X; s.reduction = FL_REDUCE_SUM;
        s.grad = G1; s.loss = L1; s.n_threads = 1;
        sig_call(dt, &s, &r1);
        s.grad = G2; s.loss = L2; s.n_threads = nt;
        sig_call(dt, &s, &r2);
        CHECK(r1.value == r2.value && same_bits(G1, G2, n * esz(dt))
              && same_bits(L1, L2, n * esz(dt)), "sigmoid: n_threads=%d differs", nt);
        s.focal_gamma = 2; s.focal_alpha = 0.25; s.poly1_epsilon = 0.5; s.n_threads = 1;
        s.grad = G1;
        sig_call(dt, &s, &r1);
        s.grad = G2; s.n_threads = nt;
        sig_call(dt, &s, &r2);
        CHECK(r1.value == r2.value && same_bits(G1, G2, n * esz(dt)),
              "sigmoid with options: n_threads=%d differs", nt);

        for (mode = 0; mode < 3; ++mode) {
            memset(&h, 0, sizeof h);
            h.outer = N; h.n_classes = C; h.inner = 1; h.scores = X; h.labels = labels;
            h.margin = 1; h.mode = mode; h.reduction = FL_REDUCE_MEAN; h.sample_weight = sw;
            for (i = 0; i < N; ++i) if (labels[i] < 0) labels[i] = 0;
            h.grad = G1; h.n_threads = 1;
            hinge_call(dt, &h, &r1);
            h.grad = G2; h.n_threads = nt;
            hinge_call(dt, &h, &r2);
            CHECK(r1.value == r2.value && same_bits(G1, G2, n * esz(dt)),
                  "hinge mode %d: n_threads=%d differs", mode, nt);
        }
        memset(&m, 0, sizeof m);
        m.n_rows = N; m.row_len = C; m.pred = X; m.target = G2; m.weight = X;
        m.weight_row_stride = C; m.reduction = FL_REDUCE_MEAN; m.grad = G1; m.n_threads = 1;
        mse_call(dt, &m, &r1);
        m.grad = L1; m.n_threads = nt;
        mse_call(dt, &m, &r2);
        CHECK(r1.value == r2.value && same_bits(G1, L1, n * esz(dt)),
              "mse: n_threads=%d differs", nt);
    }
    /* the streamed gradient (>= 16 MB, out of place) equals the in-place one */
    {
        const int64_t NB = dt ? 2100 : 4200, CB = 1000, nb = NB * CB;
        int64_t *lb = (int64_t *)xmalloc((size_t)NB * sizeof(int64_t));
        void *XB = xmalloc((size_t)nb * esz(dt)), *GB = xmalloc((size_t)nb * esz(dt));
        void *IB = xmalloc((size_t)nb * esz(dt));
        fl_softmax_ce_args a;
        for (i = 0; i < nb; ++i) {      /* cheap values: this runs once per SIMD table */
            double v = (double)((i * 2654435761u) % 1000) / 125.0 - 4.0;
            if (dt) ((double *)XB)[i] = v;
            else ((float *)XB)[i] = (float)v;
        }
        memcpy(IB, XB, (size_t)nb * esz(dt));
        for (i = 0; i < NB; ++i) lb[i] = i % CB;
        memset(&a, 0, sizeof a);
        a.outer = NB; a.n_classes = CB; a.inner = 1; a.logits = XB; a.labels = lb;
        a.ignore_index = -100; a.reduction = FL_REDUCE_MEAN; a.grad = GB; a.n_threads = 2;
        sce_call(dt, &a, &r1);
        a.logits = IB; a.grad = IB;
        sce_call(dt, &a, &r2);
        CHECK(r1.value == r2.value && same_bits(GB, IB, nb * esz(dt)),
              "streamed and in-place gradients differ");
        free(lb); free(XB); free(GB); free(IB);
    }
    free(x); free(w); free(sw); free(labels); free(X); free(G1); free(G2); free(L1); free(L2);
}

static void test_info_and_copy(void)
{
    const int64_t sizes[] = {0, 1, 7, 3 * 1048576 + 5};
    int i, nt;
    ctx_name = "info";
    CHECK(fl_default_threads() >= 1, "default threads %d", fl_default_threads());
    CHECK(fl_openmp_enabled() == 0 || fl_openmp_enabled() == 1, "openmp flag");
    CHECK(strlen(fl_simd_in_use()) > 0 && strlen(fl_simd_built()) > 0
          && strlen(fl_simd_supported()) > 0, "simd strings");
    CHECK(fl_set_simd("no-such-path") == 1, "unknown SIMD path accepted");
    CHECK(fl_set_simd("best") == 0 && fl_set_simd(NULL) == 0 && fl_set_simd("") == 0,
          "best path");
    ctx_name = "parallel_copy";
    for (i = 0; i < 4; ++i)
        for (nt = 0; nt <= 2; ++nt) {
            unsigned char *s = (unsigned char *)xmalloc((size_t)sizes[i]);
            unsigned char *d = (unsigned char *)xmalloc((size_t)sizes[i]);
            int64_t k;
            for (k = 0; k < sizes[i]; ++k) s[k] = (unsigned char)(k * 31 + 7);
            fl_parallel_copy(d, s, sizes[i], nt);
            CHECK(same_bits(d, s, (size_t)sizes[i]), "copy of %lld bytes", (long long)sizes[i]);
            free(s);
            free(d);
        }
}

int main(int argc, char **argv)
{
    char supported[128];
    char *name, *save = NULL;
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    test_info_and_copy();
    strncpy(supported, fl_simd_supported(), sizeof supported - 1);
    supported[sizeof supported - 1] = '\0';
    printf("SIMD paths built: %s; supported: %s; OpenMP: %d, default threads %d\n",
           fl_simd_built(), supported, fl_openmp_enabled(), fl_default_threads());
    for (name = strtok_r(supported, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int dt;
        long before = n_fails;
        if (fl_set_simd(name) != 0) {
            fail("fl_set_simd(%s) failed", name);
            continue;
        }
        for (dt = 0; dt < 2; ++dt) {
            test_softmax(dt, 0);
            test_softmax_special(dt);
            test_sigmoid(dt, 0);
            test_sigmoid_metrics(dt);
            test_hinge(dt, 0);
            test_mse(dt, 0);
            test_errors(dt);
            test_empty(dt);
            if (!quick) test_threads(dt);
        }
        printf("  %-8s %s\n", name, n_fails == before ? "ok" : "FAILED");
    }
    fl_set_simd("best");
    printf("%ld checks, %ld failed\n", n_checks, n_fails);
    return n_fails != 0;
}
