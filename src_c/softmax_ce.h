/*
 * softmax_ce.h -- softmax cross-entropy, one pass family per row.
 * A template: kernels.c includes it once per dtype (FL_T) and SIMD target.
 *
 * Row math (x the logits of a row, m = max x, e_k = exp(x_k - m)):
 *   lse - x_k = (m - x_k) + log s,  s = sum_k e_k
 *   log s = log1p(rest), rest = sum_{x_k != m} e_k + (#{x_k == m} - 1)
 * so a confidently right row keeps its tiny loss (log1p, not log of 1 + tiny).
 * Loss l = s_i * sum_k a_k (lse - x_k), a_k = w_k ((1 - eps) t_k + eps / C);
 * split as a_k = b_k + (1 - eps) w_y [k == y] for integer labels (b_k the
 * smoothing part), a_k = b_k for probability targets.
 * Gradient s_i * scale * (A p - a), A = sum_k a_k; the target entry uses
 * 1 - p_y computed without cancellation.
 * Passes over a row: max (read), exp + sums (read; write e into grad), then
 * scale (read/write grad, still in cache).  In place (grad == logits) works:
 * each pass reads x_k before it writes g_k, and x_y is read first.
 */

/* Pass 1: max over the row.  Whether a NaN wins or not, a NaN row turns NaN
 * in pass 2 (exp(NaN) is NaN). */
FL_INLINE FL_T FL_NAME(sce_max)(const FL_T *x, int64_t C, int64_t st)
{
    FL_T m = (FL_T)-INFINITY;
    int64_t c;
    FL_SIMD_MAX(m)
    for (c = 0; c < C; ++c) {
        FL_T v = x[c * st];
        m = v > m ? v : m;
    }
    return m;
}

/* Pass 2: e_k = exp(x_k - m), written into g when g != NULL (g may be x).
 * rest = sum of the e_k != 1 and neq = #{e_k == 1}, so that s - 1 = rest +
 * (neq - 1) keeps its low digits (the argmax adds exactly 1 to s). */
FL_INLINE void FL_NAME(sce_expsum)(const FL_T *x, FL_T *g, int64_t C, int64_t st, FL_T m,
                                   double *rest_out, double *neq_out)
{
    double rest = 0.0, neq = 0.0;
    int64_t c;
    if (g) {
        FL_SIMD_SUM(rest, neq)
        for (c = 0; c < C; ++c) {
            FL_T e = FL_EXP(x[c * st] - m);
            g[c * st] = e;
            rest += e == (FL_T)1 ? 0.0 : (double)e;
            neq += e == (FL_T)1 ? 1.0 : 0.0;
        }
    } else {
        FL_SIMD_SUM(rest, neq)
        for (c = 0; c < C; ++c) {
            FL_T e = FL_EXP(x[c * st] - m);
            rest += e == (FL_T)1 ? 0.0 : (double)e;
            neq += e == (FL_T)1 ? 1.0 : 0.0;
        }
    }
    *rest_out = rest;
    *neq_out = neq;
}

/* First index of the row's maximum m of the raw scores, a NaN counting as the
 * maximum (NumPy's argmax): the first NaN if there is one, else the first x_k == m
 * (m from sce_max, which skips NaNs; an all -inf row gives 0). */
FL_INLINE int64_t FL_NAME(sce_first_nan)(const FL_T *x, int64_t C, int64_t st)
{
    int64_t c;
    for (c = 0; c < C && x[c * st] == x[c * st]; ++c) {}
    return c;
}

FL_INLINE int64_t FL_NAME(sce_argmax)(const FL_T *x, int64_t C, int64_t st, FL_T m)
{
    int64_t c;
    if (C <= INT32_MAX) {
        /* one pass in 32-bit lanes (as many as the float lanes): the first x_k == m, and
         * whether the row has a NaN (then the first NaN, in a scalar pass: rare) */
        int32_t first = (int32_t)C, nan = 0;
        FL_SIMD_MIN_MAX(first, nan)
        for (c = 0; c < C; ++c) {
            FL_T v = x[c * st];
            int32_t i = v == m ? (int32_t)c : (int32_t)C;
            int32_t n = v != v;
            first = i < first ? i : first;
            nan = n > nan ? n : nan;
        }
        return nan ? FL_NAME(sce_first_nan)(x, C, st) : (int64_t)first;
    }
    {
        int64_t fn = FL_NAME(sce_first_nan)(x, C, st);
        if (fn < C) return fn;
        for (c = 0; c < C && x[c * st] != m; ++c) {}
        return c;
    }
}

/* sce_expsum plus the sums of the metrics: e2 = sum_k e_k^2 and
 * ed = sum_k e_k (x_k - m) (a zero e_k contributes 0, also at x_k = -inf); each term
 * in the input precision (as e_k itself), summed in double. */
FL_INLINE void FL_NAME(sce_expsum_stats)(const FL_T *x, FL_T *g, int64_t C, int64_t st, FL_T m,
                                         double *rest_out, double *neq_out, double *e2_out,
                                         double *ed_out)
{
    double rest = 0.0, neq = 0.0, e2 = 0.0, ed = 0.0;
    int64_t c;
    if (g) {
        FL_SIMD_SUM(rest, neq, e2, ed)
        for (c = 0; c < C; ++c) {
            FL_T d = x[c * st] - m;
            FL_T e = FL_EXP(d);
            g[c * st] = e;
            rest += e == (FL_T)1 ? 0.0 : (double)e;
            neq += e == (FL_T)1 ? 1.0 : 0.0;
            e2 += (double)(e * e);
            ed += (double)(e == (FL_T)0 ? (FL_T)0 : e * d);
        }
    } else {
        FL_SIMD_SUM(rest, neq, e2, ed)
        for (c = 0; c < C; ++c) {
            FL_T d = x[c * st] - m;
            FL_T e = FL_EXP(d);
            rest += e == (FL_T)1 ? 0.0 : (double)e;
            neq += e == (FL_T)1 ? 1.0 : 0.0;
            e2 += (double)(e * e);
            ed += (double)(e == (FL_T)0 ? (FL_T)0 : e * d);
        }
    }
    *rest_out = rest;
    *neq_out = neq;
    *e2_out = e2;
    *ed_out = ed;
}

/* A row's metrics statistics from s = sum_k e_k and the sums above:
 * max_k p_k = 1 / s (e = 1 at the argmax), sum_k p_k^2 = e2 / s^2,
 * -sum_k p_k log p_k = log s - ed / s. */
FL_INLINE void FL_NAME(sce_put_stats)(double *out, double s, double logs, double e2, double ed)
{
    out[0] = 1.0 / s;
    out[1] = e2 / (s * s);
    out[2] = logs - ed / s;
}

/* The metrics' sums from the stored e_k (stride 1), in a loop of their own so that the
 * loss's sums keep their order: float partials over 128 classes (as precise as e_k
 * itself), added in double. */
FL_INLINE void FL_NAME(sce_stats_from_e)(const FL_T *x, const FL_T *e, int64_t C, FL_T m,
                                         double *e2_out, double *ed_out)
{
    double e2 = 0.0, ed = 0.0;
    int64_t c0, c;
    for (c0 = 0; c0 < C; c0 += 128) {
        const int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
        FL_T f2 = 0, fd = 0;
        FL_SIMD_SUM(f2, fd)
        for (c = c0; c < c1; ++c) {
            FL_T ec = e[c], d = x[c] - m;
            f2 += ec * ec;
            fd += ec == (FL_T)0 ? (FL_T)0 : ec * d;
        }
        e2 += (double)f2;
        ed += (double)fd;
    }
    *e2_out = e2;
    *ed_out = ed;
}

/* A row whose maximum is +inf: p is one-hot at the single +inf (no NaN),
 * else undefined (NaN). */
FL_INLINE void FL_NAME(sce_inf_stats)(double *out, const FL_T *x, int64_t C, int64_t st)
{
    int64_t k, ninf = 0;
    int nan = 0;
    for (k = 0; k < C; ++k) {
        ninf += x[k * st] == (FL_T)INFINITY;
        nan |= x[k * st] != x[k * st];
    }
    out[0] = out[1] = (nan || ninf != 1) ? NAN : 1.0;
    out[2] = (nan || ninf != 1) ? NAN : 0.0;
}

/* Top-1 / top-k hits of a row: fewer than 1 (k) classes score strictly higher
 * than the target's x_y (ties count as hits; a NaN x_y is a miss). */
FL_INLINE void FL_NAME(sce_topk)(const FL_T *x, int64_t C, int64_t st, FL_T xy, int64_t k,
                                 double *top1, double *topk)
{
    double cnt = 0.0;
    int64_t c;
    FL_SIMD_SUM(cnt)
    for (c = 0; c < C; ++c) cnt += x[c * st] > xy ? 1.0 : 0.0;
    if (xy == xy) {
        *top1 += cnt < 1.0 ? 1.0 : 0.0;
        *topk += cnt < (double)k ? 1.0 : 0.0;
    }
}

/* The first x_k == m of a row known to hold no NaN: blocks of 64 tested with one vector
 * OR each, stopping at the first block that holds it (on average half the row, read from
 * cache right after the exp pass). */
FL_INLINE int64_t FL_NAME(sce_argmax_scan)(const FL_T *x, int64_t C, int64_t st, FL_T m)
{
    int64_t c0, c;
    for (c0 = 0; c0 < C; c0 += 64) {
        const int64_t c1 = c0 + 64 < C ? c0 + 64 : C;
        int32_t hit = 0;
        FL_SIMD_MAX(hit)
        for (c = c0; c < c1; ++c) {
            int32_t h = x[c * st] == m;
            hit = h > hit ? h : hit;
        }
        if (hit) {
            for (c = c0; c < c1 && x[c * st] != m; ++c) {}
            return c;
        }
    }
    return FL_NAME(sce_argmax)(x, C, st, m);      /* not reached for a NaN-free row */
}

/* sce_topk and sce_argmax in one pass over the row (top_k > 0, C <= INT32_MAX). */
FL_INLINE int64_t FL_NAME(sce_topk_argmax)(const FL_T *x, int64_t C, int64_t st, FL_T xy,
                                           int64_t k, FL_T m, double *top1, double *topk)
{
    double cnt = 0.0;
    int32_t first = (int32_t)C, nan = 0;
    int64_t c;
    FL_PRAGMA_SIMD_TOPK_ARGMAX
    for (c = 0; c < C; ++c) {
        FL_T v = x[c * st];
        int32_t i = v == m ? (int32_t)c : (int32_t)C;
        int32_t n = v != v;
        cnt += v > xy ? 1.0 : 0.0;
        first = i < first ? i : first;
        nan = n > nan ? n : nan;
    }
    if (xy == xy) {
        *top1 += cnt < 1.0 ? 1.0 : 0.0;
        *topk += cnt < (double)k ? 1.0 : 0.0;
    }
    return nan ? FL_NAME(sce_first_nan)(x, C, st) : (int64_t)first;
}

/* b_k: the part of a_k that is not the integer label's one-hot. */
FL_INLINE double FL_NAME(sce_b)(const FL_T *t, const double *w, int64_t k, int64_t st,
                                double keep, double spread)
{
    double tk = t ? keep * (double)t[k * st] + spread : spread;
    return w ? w[k] * tk : tk;
}

/* The general pass 2 (weights, smoothing or probability targets) adds
 * S1 = sum_k b_k (m - x_k) (a zero b_k contributes 0, also at x_k = -inf)
 * and B = sum_k b_k.  Scalar double accumulation: these options are the
 * vector lanes, fixed order. */
FL_INLINE void FL_NAME(sce_bsums)(const FL_T *x, const FL_T *t, const double *w, int64_t C,
                                  int64_t st, FL_T m, double keep, double spread, double wsum,
                                  double *S1_out, double *B_out)
{
    double S1 = 0.0, B = 0.0;
    int64_t k;
    if (t == NULL) {
        /* labels: b_k = spread w_k, so B = spread * sum(w) exactly as the
         * caller summed it once, and spread multiplies the sum once */
        FL_SIMD_SUM(S1)
        for (k = 0; k < C; ++k) {
            double wk = w ? w[k] : 1.0;
            double d = (double)m - (double)x[k * st];
            S1 += wk == 0.0 ? 0.0 : wk * d;
        }
        *S1_out = spread == 0.0 ? 0.0 : spread * S1;
        *B_out = spread * wsum;
        return;
    }
    FL_SIMD_SUM(S1, B)
    for (k = 0; k < C; ++k) {
        double b = FL_NAME(sce_b)(t, w, k, st, keep, spread);
        double d = (double)m - (double)x[k * st];
        S1 += b == 0.0 ? 0.0 : b * d;
        B += b;
    }
    *S1_out = S1;
    *B_out = B;
}

/* A row whose maximum is +inf: the limit exists only for exactly one +inf
 * and no NaN; then p is one-hot at the +inf. */
FL_INLINE double FL_NAME(sce_row_inf)(const fl_softmax_ce_args *a, const FL_T *x, const FL_T *t,
                                      FL_T *g, FL_T *h, int64_t C, int64_t st, int64_t y,
                                      double sw, double scale, double keep, double spread)
{
    const double *w = a->class_weight;
    int64_t k, kinf = -1, ninf = 0, nnan = 0;
    for (k = 0; k < C; ++k) {
        FL_T v = x[k * st];
        if (v != v) nnan++;
        if (v == (FL_T)INFINITY) { ninf++; kinf = k; }
    }
    if (nnan || ninf != 1) {
        for (k = 0; k < C; ++k) {
            if (g) g[k * st] = (FL_T)NAN;
            if (h) h[k * st] = (FL_T)NAN;
        }
        return NAN;
    }
    double A = 0.0, loss = 0.0, wy1 = 0.0;
    if (y >= 0) wy1 = (1.0 - a->label_smoothing) * (w ? w[y] : 1.0);
    for (k = 0; k < C; ++k) {
        double ak = FL_NAME(sce_b)(t, w, k, st, keep, spread) + (k == y ? wy1 : 0.0);
        A += ak;
        if (k != kinf && ak != 0.0) loss += ak * INFINITY;
    }
    for (k = 0; k < C; ++k) {
        double ak = FL_NAME(sce_b)(t, w, k, st, keep, spread) + (k == y ? wy1 : 0.0);
        if (g) g[k * st] = (FL_T)(scale * sw * ((k == kinf ? A : 0.0) - ak));
        if (h) h[k * st] = (FL_T)0;
    }
    return sw * loss;
}

/* One row: returns its (weighted) loss, writes its gradient / Hessian. */
FL_INLINE double FL_NAME(sce_row)(const fl_rows_ctx *ctx, const FL_T *x, const FL_T *t, FL_T *g,
                                  FL_T *h, int64_t st, int64_t r, int64_t y, double *top1,
                                  double *topk, FL_T *ebuf)
{
    const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)ctx->args;
    const double *w = a->class_weight;
    const int64_t C = a->n_classes;
    const double eps = a->label_smoothing;
    const double sw = a->sample_weight ? a->sample_weight[r] : 1.0;
    const double scale = ctx->grad_scale;
    const int labels = a->labels != NULL;
    /* b_k = w_k (keep * t_k + spread): the smoothing part of a label row, all of a probability row */
    const double keep = 1.0 - eps, spread = eps / (double)C;
    const int general = (w != NULL) || (eps != 0.0) || !labels;
    int64_t k;

    /* the max pass streams the row in first; x_y is read after it (no lone
     * cache miss), and before anything is written (g may be x) */
    FL_T m = FL_NAME(sce_max)(x, C, st);
    FL_T xy = labels ? x[y * st] : (FL_T)0;
    /* the argmax: after the exp pass (which tells whether the row has a NaN) when the
     * logits survive it, else here, before the gradient overwrites them */
    const int late = a->argmax_out && (void *)g != (const void *)x;
    if (a->argmax_out && !late && labels && a->top_k > 0 && C <= INT32_MAX)
        a->argmax_out[r] = FL_NAME(sce_topk_argmax)(x, C, st, xy, a->top_k, m, top1, topk);
    else {
        if (labels && a->top_k > 0) FL_NAME(sce_topk)(x, C, st, xy, a->top_k, top1, topk);
        if (a->argmax_out && !late) a->argmax_out[r] = FL_NAME(sce_argmax)(x, C, st, m);
    }

    if (m == (FL_T)INFINITY) {
        if (late) a->argmax_out[r] = FL_NAME(sce_argmax)(x, C, st, m);
        if (a->stats_out) FL_NAME(sce_inf_stats)(a->stats_out + 3 * r, x, C, st);
        if (a->lse_out) {
            int nan = 0;
            for (k = 0; k < C; ++k) nan |= x[k * st] != x[k * st];
            a->lse_out[r] = nan ? NAN : INFINITY;
        }
        return FL_NAME(sce_row_inf)(a, x, t, g, h, C, st, labels ? y : -1, sw, scale, keep, spread);
    }

    double S1 = 0.0, B = 0.0;
    if (general)
        FL_NAME(sce_bsums)(x, t, w, C, st, m, keep, spread, ctx->class_weight_sum, &S1, &B);
    double rest, neq, e2 = 0.0, ed = 0.0;
    /* the metrics' sums: from the e_k stored in g or the thread's buffer (the loss's sums
     * as without them); fused into the exp pass for an in-place or strided row */
    FL_T *ev = (st == 1 && (void *)g != (const void *)x) ? (g ? g : ebuf) : NULL;
    if (a->stats_out && !ev)
        FL_NAME(sce_expsum_stats)(x, g, C, st, m, &rest, &neq, &e2, &ed);
    else
        FL_NAME(sce_expsum)(x, a->stats_out ? ev : g, C, st, m, &rest, &neq);  /* g: e (x may be gone) */
    if (a->stats_out && ev) FL_NAME(sce_stats_from_e)(x, ev, C, m, &e2, &ed);
    if (late)       /* rest is NaN iff the row has a NaN (or is all -inf) */
        a->argmax_out[r] = rest == rest ? FL_NAME(sce_argmax_scan)(x, C, st, m)
                                        : FL_NAME(sce_argmax)(x, C, st, m);
    double rest1 = rest + (neq - 1.0);                   /* s - 1 */
    double s = 1.0 + rest1;
    double logs = log1p(rest1);
    if (a->stats_out) FL_NAME(sce_put_stats)(a->stats_out + 3 * r, s, logs, e2, ed);
    if (a->lse_out) a->lse_out[r] = (double)m + logs;

    double wy1 = 0.0, A = B, loss = B * logs + S1;
    if (labels) {
        wy1 = keep * (w ? w[y] : 1.0);
        A += wy1;
        double dy = (double)m - (double)xy;
        loss += wy1 == 0.0 ? 0.0 : wy1 * (dy + logs);
    }
    loss *= sw;

    if (g || h) {
        const double k1 = scale * sw * A / s;            /* g_c = k1 e_c - kb b_c */
        const double kb = scale * sw;
        double one_m_py = 0.0, py = 0.0, by = 0.0;
        if (labels) {
            /* 1 - p_y without cancellation: exact rest when y is an argmax */
            FL_T ey = FL_EXP((FL_T)(xy - m));
            py = (ey == (FL_T)1) ? 1.0 / s : (double)ey / s;
            one_m_py = (ey == (FL_T)1) ? rest1 / s : (s - (double)ey) / s;
            by = general ? FL_NAME(sce_b)(t, w, y, st, keep, spread) : 0.0;
        }
        if (h) {
            const double kh = scale * sw * A;
            const double inv_s = 1.0 / s;
            FL_SIMD
            for (k = 0; k < C; ++k) {
                double p = (double)(g ? g[k * st] : FL_EXP(x[k * st] - m)) * inv_s;
                h[k * st] = (FL_T)(kh * p * (1.0 - p));
            }
            if (labels) h[y * st] = (FL_T)(kh * py * one_m_py);
        }
        if (g) {
            if (!general) {
                const FL_T k1t = (FL_T)k1;
                FL_SIMD
                for (k = 0; k < C; ++k) g[k * st] = k1t * g[k * st];
            } else {
                for (k = 0; k < C; ++k)
                    g[k * st] = (FL_T)(k1 * (double)g[k * st]
                                       - kb * FL_NAME(sce_b)(t, w, k, st, keep, spread));
            }
            if (labels) g[y * st] = (FL_T)(kb * (B * py - by - wy1 * one_m_py));
        }
    }
    return loss;
}


/* ----- options beyond PyTorch: z-loss, soft-capping, focal, poly-1 ----- */

/* tanh, branch-free: an odd series below 1/8, (1 - e) / (1 + e) with
 * e = exp(-2|u|) above (no cancellation there); tanh(+-inf) = +-1. */
FL_INLINE FL_T FL_NAME(sce_tanh)(FL_T u)
{
    FL_T au = u < 0 ? -u : u;
    FL_T e = FL_EXP((FL_T)-2 * au);
    FL_T big = ((FL_T)1 - e) / ((FL_T)1 + e);
    FL_T z2 = au * au;
    FL_T p = (FL_T)(6404582.0 / 10854718875.0);
    p = p * z2 - (FL_T)(929569.0 / 638512875.0);
    p = p * z2 + (FL_T)(21844.0 / 6081075.0);
    p = p * z2 - (FL_T)(1382.0 / 155925.0);
    p = p * z2 + (FL_T)(62.0 / 2835.0);
    p = p * z2 - (FL_T)(17.0 / 315.0);
    p = p * z2 + (FL_T)(2.0 / 15.0);
    p = p * z2 - (FL_T)(1.0 / 3.0);
    FL_T small = au + au * z2 * p;
    FL_T r = au < (FL_T)0.125 ? small : big;
    r = u < 0 ? -r : r;
    return u != u ? u : r;
}

FL_INLINE FL_T FL_NAME(sce_cap)(FL_T x, FL_T cap, FL_T inv_cap)
{
    return cap > 0 ? cap * FL_NAME(sce_tanh)(x * inv_cap) : x;
}

FL_INLINE int FL_NAME(sce_has_options)(const fl_softmax_ce_args *a)
{
    return a->z_loss != 0.0 || a->softcap > 0.0 || a->focal_gamma != 0.0
           || a->poly1_epsilon != 0.0;
}

/* The log-sum-exp of a row of (capped) logits, for rows whose loss is
 * not computed (ignored rows still report their normaliser). */
FL_INLINE double FL_NAME(sce_lse)(const fl_softmax_ce_args *a, const FL_T *x, int64_t C,
                                  int64_t st)
{
    const FL_T cap = (FL_T)(a->softcap > 0.0 ? a->softcap : 0.0);
    const FL_T inv_cap = cap > 0 ? (FL_T)(1.0 / a->softcap) : (FL_T)0;
    FL_T m = FL_NAME(sce_max)(x, C, st);
    double rest = 0.0, neq = 0.0;
    int nan = 0;
    int64_t k;
    for (k = 0; k < C; ++k) nan |= x[k * st] != x[k * st];
    if (nan) return NAN;
    if (cap > 0) m = FL_NAME(sce_cap)(m, cap, inv_cap);
    else if (m == (FL_T)INFINITY || m == (FL_T)-INFINITY) return (double)m;
    for (k = 0; k < C; ++k) {
        FL_T e = FL_EXP(FL_NAME(sce_cap)(x[k * st], cap, inv_cap) - m);
        rest += e == (FL_T)1 ? 0.0 : (double)e;
        neq += e == (FL_T)1 ? 1.0 : 0.0;
    }
    return (double)m + log1p(rest + (neq - 1.0));
}

/* One row with options.  z = capped logits; everything of sce_row is done
 * on z, then the chain rule multiplies by dz/dx = 1 - (z / cap)^2.
 * zbuf (C values, the thread's scratch; NULL without softcap) holds z: it is
 * computed once, so the value and gradient forms see the same bits, and it
 * survives an in-place gradient. */
FL_INLINE double FL_NAME(sce_row_opt)(const fl_rows_ctx *ctx, const FL_T *x, const FL_T *t,
                                      FL_T *g, FL_T *zbuf, int64_t st, int64_t r, int64_t y,
                                      double *top1, double *topk)
{
    const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)ctx->args;
    const double *w = a->class_weight;
    const int64_t C = a->n_classes;
    const double eps = a->label_smoothing;
    const double sw = a->sample_weight ? a->sample_weight[r] : 1.0;
    const double scale = ctx->grad_scale;
    const int labels = a->labels != NULL;
    const double keep = 1.0 - eps, spread = eps / (double)C;
    const double zl = a->z_loss, gam = a->focal_gamma, pe = a->poly1_epsilon;
    const int focal = gam != 0.0;
    const FL_T cap = (FL_T)(a->softcap > 0.0 ? a->softcap : 0.0);
    const FL_T inv_cap = cap > 0 ? (FL_T)(1.0 / a->softcap) : (FL_T)0;
    const double wy = labels ? (w ? w[y] : 1.0) : 1.0;
    const double roww = labels ? wy * sw : sw;     /* weight of the added per-row terms */
    int64_t k;

    FL_T xy = labels ? x[y * st] : (FL_T)0;
    if (labels && a->top_k > 0) FL_NAME(sce_topk)(x, C, st, xy, a->top_k, top1, topk);
    FL_T mx = FL_NAME(sce_max)(x, C, st);
    if (a->argmax_out) a->argmax_out[r] = FL_NAME(sce_argmax)(x, C, st, mx);
    if (mx == (FL_T)INFINITY && cap == 0) {
        if (a->stats_out) FL_NAME(sce_inf_stats)(a->stats_out + 3 * r, x, C, st);
        /* p is one-hot at the single +inf (else NaN): the cross-entropy limit,
         * focal's factor (1 - p_y)^gamma is 0 or 1, poly-1 adds eps (1 - t'_inf);
         * z-loss has lse = +inf: loss +inf and no finite gradient. */
        int64_t kinf = -1, ninf = 0;
        int nan = 0;
        double l;
        for (k = 0; k < C; ++k) {
            if (x[k * st] == (FL_T)INFINITY) { ninf++; kinf = k; }
            nan |= x[k * st] != x[k * st];
        }
        if (a->lse_out) a->lse_out[r] = nan ? NAN : INFINITY;
        l = FL_NAME(sce_row_inf)(a, x, t, g, NULL, C, st, labels ? y : -1, sw, scale, keep,
                                 spread);
        if (l != l || ninf != 1) return l;
        if (focal && kinf == y) {
            l = 0.0;
            if (g) for (k = 0; k < C; ++k) g[k * st] = (FL_T)0;
        }
        if (pe != 0.0) {
            double tk = labels ? (kinf == y ? keep : 0.0) + spread
                               : keep * (double)t[kinf * st] + spread;
            l += roww * pe * (1.0 - tk);
        }
        if (zl != 0.0) {
            l = INFINITY;
            if (g) for (k = 0; k < C; ++k) g[k * st] = (FL_T)NAN;
        }
        return l;
    }
    const FL_T m = cap > 0 ? FL_NAME(sce_cap)(mx, cap, inv_cap) : mx;
    if (cap > 0) {
        /* the capped row, once, in a loop of its own: every form reads the same z */
        FL_SIMD
        for (k = 0; k < C; ++k) zbuf[k] = cap * FL_NAME(sce_tanh)(x[k * st] * inv_cap);
    }

    /* pass 2: z, e = exp(z - m) (into g), and the sums */
    double rest = 0.0, neq = 0.0, S1 = 0.0, B = 0.0, Pn = 0.0;
    const int fast = labels && !w;     /* b_c = t'_c - label part = spread for every class */
    if (fast) {
        /* vectorised variants: no per-class weights or targets to load */
        double sz = 0.0;
#define FL_SCE_OPT_LOOP(ZEXPR, STORES)                                     \
        FL_SIMD_SUM(rest, neq, sz)                                         \
        for (k = 0; k < C; ++k) {                                          \
            FL_T z = ZEXPR;                                                \
            FL_T e = FL_EXP(z - m);                                        \
            STORES                                                         \
            rest += e == (FL_T)1 ? 0.0 : (double)e;                        \
            neq += e == (FL_T)1 ? 1.0 : 0.0;                               \
            sz += (double)m - (double)z;                                   \
        }
        if (cap > 0) {
            if (g) { FL_SCE_OPT_LOOP(zbuf[k], g[k * st] = e;) }
            else { FL_SCE_OPT_LOOP(zbuf[k], ;) }
        } else {
            if (g) { FL_SCE_OPT_LOOP(x[k * st], g[k * st] = e;) }
            else { FL_SCE_OPT_LOOP(x[k * st], ;) }
        }
#undef FL_SCE_OPT_LOOP
        S1 = spread == 0.0 ? 0.0 : spread * sz;
        B = spread * (double)C;
        Pn = spread * (rest + neq);     /* sum_c spread e_c */
    }
    for (k = 0; !fast && k < C; ++k) {
        FL_T z = cap > 0 ? zbuf[k] : x[k * st];
        FL_T e = FL_EXP(z - m);
        double b = (labels && eps == 0.0 && !w) ? 0.0 : FL_NAME(sce_b)(t, w, k, st, keep, spread);
        double tt = t ? keep * (double)t[k * st] + spread : spread;
        if (g) g[k * st] = e;
        rest += e == (FL_T)1 ? 0.0 : (double)e;
        neq += e == (FL_T)1 ? 1.0 : 0.0;
        S1 += b == 0.0 ? 0.0 : b * ((double)m - (double)z);
        B += b;
        Pn += tt * (double)e;
    }
    const double rest1 = rest + (neq - 1.0);
    const double s = 1.0 + rest1;
    const double logs = log1p(rest1);
    const double lse = (double)m + logs;
    if (a->stats_out) {
        /* the metrics' sums over the (capped) row: a pass of its own (options only) */
        double e2 = 0.0, ed = 0.0;
        for (k = 0; k < C; ++k) {
            FL_T z = cap > 0 ? zbuf[k] : x[k * st];
            FL_T e = FL_EXP(z - m);
            e2 += (double)e * (double)e;
            ed += e == (FL_T)0 ? 0.0 : (double)e * ((double)z - (double)m);
        }
        FL_NAME(sce_put_stats)(a->stats_out + 3 * r, s, logs, e2, ed);
    }
    double zy = 0.0, py = 0.0, omq = 0.0, loss = 0.0, K = 0.0, one_m_pt;
    if (labels) {
        FL_T zyt = FL_NAME(sce_cap)(xy, cap, inv_cap);
        FL_T ey = FL_EXP(zyt - m);
        zy = (double)zyt;
        py = (ey == (FL_T)1) ? 1.0 / s : (double)ey / s;
        omq = (ey == (FL_T)1) ? rest1 / s : (s - (double)ey) / s;
    }
    const double wy1 = labels ? keep * wy : 0.0;
    if (focal) {
        /* (1 - q)^gamma L and its derivative factor K, from 1 - q in log space */
        double L = ((double)m - zy) + logs;
        double lo = omq > 0.0 ? log(omq) : -INFINITY;
        double pw = omq > 0.0 ? exp(gam * lo) : 0.0;
        double pw1 = omq > 0.0 ? exp((gam - 1.0) * lo) : 0.0;
        loss = roww * pw * L;
        K = pw + (omq > 0.0 ? gam * py * pw1 * L : 0.0);
    } else {
        loss = B * logs + S1;
        if (labels) loss += wy1 == 0.0 ? 0.0 : wy1 * (((double)m - zy) + logs);
        loss *= sw;
    }
    if (labels) one_m_pt = keep * omq + eps * (1.0 - 1.0 / (double)C);
    else one_m_pt = 1.0 - Pn / s;
    loss += roww * (zl * lse * lse + pe * one_m_pt);
    if (a->lse_out) a->lse_out[r] = lse;

    if (g) {
        const double pt = 1.0 - one_m_pt;
        const double kb = focal ? 0.0 : scale * sw;
        const double al_lab = focal ? scale * roww * K : kb * wy1;   /* label part of alpha */
        const double al_add = scale * roww * (2.0 * zl * lse + pe * pt);
        const double alpha = (focal ? al_lab : kb * (B + wy1)) + al_add;
        const double kp = scale * roww * pe;      /* poly-1: g_c += kp p_c (p_t - t'_c) */
        const double inv_s = 1.0 / s;
        if (fast) {
            const FL_T k1 = (FL_T)((alpha - kp * spread) * inv_s), k0 = (FL_T)(kb * spread);
            FL_SIMD
            for (k = 0; k < C; ++k) g[k * st] = k1 * g[k * st] - k0;
        }
        for (k = 0; !fast && k < C; ++k) {
            double p = (double)g[k * st] * inv_s;
            double b = (labels && eps == 0.0 && !w) ? 0.0 : FL_NAME(sce_b)(t, w, k, st, keep, spread);
            double tt = t ? keep * (double)t[k * st] + spread : spread;
            g[k * st] = (FL_T)((alpha - kp * tt) * p - kb * b);
        }
        if (labels) {
            double by = (eps == 0.0 && !w) ? 0.0 : FL_NAME(sce_b)(t, w, y, st, keep, spread);
            g[y * st] = (FL_T)(-al_lab * omq + (alpha - al_lab - kp * (spread + keep)) * py
                               - kb * by);
        }
        if (cap > 0) {
            FL_SIMD
            for (k = 0; k < C; ++k) {
                FL_T zr = zbuf[k] * inv_cap;
                g[k * st] = g[k * st] * ((FL_T)1 - zr * zr);
            }
        }
    }
    return loss;
}

/* Small C (classes last, C <= FL_SMALL_C, integer labels, no class weights,
 * no smoothing, no Hessian, no top-k): vectorise ACROSS rows.  A tile of
 * rows is one contiguous run of nr * C logits: the per-row maxima are
 * broadcast into a buffer so that the exp runs as one flat vector loop over
 * the tile, log1p runs as a vector loop over the tile's rows, and the
 * gradient scale is broadcast the same way.  Same formulas as sce_row. */
#define FL_SMALL_C 32
#define FL_TILE 1024

FL_INLINE int FL_NAME(sce_small_ok)(const fl_softmax_ce_args *a)
{
    return a->inner == 1 && a->n_classes <= FL_SMALL_C && a->labels && !a->class_weight
           && a->label_smoothing == 0.0 && !a->hess && a->top_k == 0 && !a->lse_out
           && !a->argmax_out && !a->stats_out && !FL_NAME(sce_has_options)(a);
}

/* Rows [r0, r0 + nr): one tile.  A row whose max is +inf takes sce_row_inf
 * on a private buffer (read before the tile's exp overwrites an in-place
 * row) that is copied out at the end. */
FL_INLINE void FL_NAME(sce_small_tile)(const fl_rows_ctx *ctx, int64_t r0, int64_t nr,
                                       double *lsum)
{
    const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)ctx->args;
    const int64_t C = a->n_classes, n = nr * C;
    const FL_T *x = (const FL_T *)a->logits + r0 * C;
    FL_T *G = (FL_T *)a->grad;
    FL_T *RL = (FL_T *)a->row_loss;
    FL_T ebuf[FL_TILE], mb[FL_TILE];
    FL_T *e = G ? G + r0 * C : ebuf;
    double r1v[FL_TILE / 1], logs[FL_TILE / 1];
    FL_T mrow[FL_TILE], xy[FL_TILE], sg[FL_TILE];
    double sl[FL_TILE];
    int64_t i, c, j, n_inf = 0;
    for (i = 0; i < nr; ++i) {
        const FL_T *xi = x + i * C;
        int64_t y = a->labels[r0 + i];
        FL_T m = (FL_T)-INFINITY;
        for (c = 0; c < C; ++c) m = xi[c] > m ? xi[c] : m;
        if (m == (FL_T)INFINITY && y != a->ignore_index) {
            double sw = a->sample_weight ? a->sample_weight[r0 + i] : 1.0;
            sl[i] = FL_NAME(sce_row_inf)(a, xi, NULL, sg + i * C, NULL, C, 1, y, sw,
                                          ctx->grad_scale, 1.0, 0.0);
            n_inf++;
        }
        mrow[i] = m;
        xy[i] = (y == a->ignore_index) ? (FL_T)0 : xi[y];
        for (c = 0; c < C; ++c) mb[i * C + c] = m;
    }
    FL_SIMD
    for (j = 0; j < n; ++j) e[j] = FL_EXP(x[j] - mb[j]);
    for (i = 0; i < nr; ++i) {
        double rest = 0.0, neq = 0.0;
        for (c = 0; c < C; ++c) {
            FL_T v = e[i * C + c];
            rest += v == (FL_T)1 ? 0.0 : (double)v;
            neq += v == (FL_T)1 ? 1.0 : 0.0;
        }
        r1v[i] = rest + (neq - 1.0);
    }
    FL_SIMD
    for (i = 0; i < nr; ++i) logs[i] = fl_log1p_f64(r1v[i]);
    for (i = 0; i < nr; ++i) {
        const int64_t r = r0 + i, y = a->labels[r];
        const double sw = a->sample_weight ? a->sample_weight[r] : 1.0;
        double s = 1.0 + r1v[i], l = 0.0, k1 = 0.0;
        if (y != a->ignore_index) {
            l = mrow[i] == (FL_T)INFINITY ? sl[i] : sw * (((double)mrow[i] - (double)xy[i]) + logs[i]);
            k1 = ctx->grad_scale * sw / s;
        }
        if (RL) RL[r] = (FL_T)l;
        *lsum += l;
        for (c = 0; c < C; ++c) mb[i * C + c] = (FL_T)k1;
    }
    if (G) {
        FL_SIMD
        for (j = 0; j < n; ++j) e[j] = e[j] * mb[j];
        for (i = 0; i < nr; ++i) {
            const int64_t r = r0 + i, y = a->labels[r];
            const double sw = a->sample_weight ? a->sample_weight[r] : 1.0;
            if (y == a->ignore_index) {
                for (c = 0; c < C; ++c) e[i * C + c] = (FL_T)0;
                continue;
            }
            {
                double s = 1.0 + r1v[i];
                FL_T ey = FL_EXP(xy[i] - mrow[i]);
                double one_m_py = (ey == (FL_T)1) ? r1v[i] / s : (s - (double)ey) / s;
                e[i * C + y] = (FL_T)(-ctx->grad_scale * sw * one_m_py);
            }
        }
        if (n_inf)
            for (i = 0; i < nr; ++i)
                if (mrow[i] == (FL_T)INFINITY && a->labels[r0 + i] != a->ignore_index)
                    for (c = 0; c < C; ++c) e[i * C + c] = sg[i * C + c];
    }
}

void FL_NAME(fl_sce_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    const fl_rows_ctx *ctx = (const fl_rows_ctx *)vctx;
    const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)ctx->args;
    const int64_t C = a->n_classes, inner = a->inner;
    const FL_T *X = (const FL_T *)a->logits;
    const FL_T *T = (const FL_T *)a->probs;
    FL_T *G = (FL_T *)a->grad;
    FL_T *H = (FL_T *)a->hess;
    FL_T *RL = (FL_T *)a->row_loss;
    int64_t r0 = b * ctx->rows_per_block;
    int64_t r1 = r0 + ctx->rows_per_block < ctx->n_rows ? r0 + ctx->rows_per_block : ctx->n_rows;
    double lsum = 0.0, top1 = 0.0, topk = 0.0;
    int64_t r, k;
    if (FL_NAME(sce_small_ok)(a)) {
        const int64_t tile_rows = FL_TILE / C;
        for (r = r0; r < r1; r += tile_rows)
            FL_NAME(sce_small_tile)(ctx, r, r1 - r < tile_rows ? r1 - r : tile_rows, &lsum);
        part->loss = lsum;
        return;
    }
    for (r = r0; r < r1; ++r) {
        int64_t o = r / inner, j = r - o * inner;
        int64_t off = o * C * inner + j;
        int64_t y = -1;
        double l;
        if (a->labels) {
            y = a->labels[r];
            if (y == a->ignore_index) {
                if (a->argmax_out)
                    a->argmax_out[r] = FL_NAME(sce_argmax)(X + off, C, inner,
                                                           FL_NAME(sce_max)(X + off, C, inner));
                if (a->stats_out)
                    a->stats_out[3 * r] = a->stats_out[3 * r + 1] = a->stats_out[3 * r + 2] = NAN;
                if (RL) RL[r] = (FL_T)0;
                if (a->lse_out) a->lse_out[r] = FL_NAME(sce_lse)(a, X + off, C, inner);
                for (k = 0; k < C; ++k) {
                    if (G) G[off + k * inner] = (FL_T)0;
                    if (H) H[off + k * inner] = (FL_T)0;
                }
                continue;
            }
        }
        if (inner == 1 && r + 1 < r1) {
            /* start the next row's first 8 KiB on its way from memory while this
             * row computes: each row otherwise begins with DRAM latency */
            const char *nx = (const char *)(X + off + C);
            int64_t nb = C * (int64_t)sizeof(FL_T) < 8192 ? C * (int64_t)sizeof(FL_T) : 8192, q;
            for (q = 0; q < nb; q += 64) FL_PREFETCH(nx + q);
        }
        if (FL_NAME(sce_has_options)(a)) {
            FL_T *zbuf = a->softcap > 0.0 ? (FL_T *)scratch : NULL;
            if (inner == 1)     /* stride 1 as a constant: the vectorised build of the row */
                l = FL_NAME(sce_row_opt)(ctx, X + off, T ? T + off : NULL, G ? G + off : NULL,
                                         zbuf, 1, r, y, &top1, &topk);
            else
                l = FL_NAME(sce_row_opt)(ctx, X + off, T ? T + off : NULL, G ? G + off : NULL,
                                         zbuf, inner, r, y, &top1, &topk);
        } else if (inner == 1 && scratch && ctx->stream) {
            /* the row's gradient is built in the thread's buffer (L1/L2),
             * then streamed out: the output is never read */
            l = FL_NAME(sce_row)(ctx, X + off, T ? T + off : NULL, (FL_T *)scratch,
                                 H ? H + off : NULL, 1, r, y, &top1, &topk, NULL);
            FL_STREAM(G + off, (const FL_T *)scratch, C);
        } else if (inner == 1)
            l = FL_NAME(sce_row)(ctx, X + off, T ? T + off : NULL, G ? G + off : NULL,
                                 H ? H + off : NULL, 1, r, y, &top1, &topk, (FL_T *)scratch);
        else
            l = FL_NAME(sce_row)(ctx, X + off, T ? T + off : NULL, G ? G + off : NULL,
                                 H ? H + off : NULL, inner, r, y, &top1, &topk, NULL);
        if (RL) RL[r] = (FL_T)l;
        lsum += l;
    }
    if (scratch && ctx->stream) fl_stream_fence();
    part->loss = lsum;
    part->top1 = top1;
    part->topk = topk;
}
