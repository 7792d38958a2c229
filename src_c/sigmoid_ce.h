/*
 * sigmoid_ce.h -- sigmoid (binary / multi-label) cross-entropy, elementwise.
 * A template: kernels.c includes it once per dtype (FL_T) and SIMD target.
 *
 * With u = exp(-|x|) in (0, 1] and L = log1p(u):
 *   softplus(x) = max(x, 0) + L,  softplus(-x) = max(-x, 0) + L
 *   sigmoid(x) = 1 / (1 + u) for x >= 0, u / (1 + u) otherwise, and
 *   1 - sigmoid(x) the other one: no 1 - s cancellation, so x = 33.3, t = 1
 *   keeps loss 3.45e-15 and gradient -3.45e-15 (scikit-learn's sign branch).
 * l = w (pw t softplus(-x) + (1 - t) softplus(x)), evaluated as
 *   w ((1 + (pw - 1) t) L + (x > 0 ? (1 - t) x : pw t (-x)))
 * so that the two softplus terms never cancel: x = 0, t = 1e15 gives w log 2
 * exactly (targets outside [0, 1] are legal, as in torch).  A term whose
 * coefficient is exactly 0 contributes 0, so x = +-inf gives the limits, not 0 * inf.
 * dl/dx = w ((1 - t) sigmoid(x) - pw t (1 - sigmoid(x))),
 * d2l/dx2 = w ((1 - t) + pw t) sigmoid(x) (1 - sigmoid(x)).
 */

/* The element from one exp: returns the loss, sets sigmoid(x) and
 * 1 - sigmoid(x) (each without cancellation).  In the input's precision:
 * float32 elements in float32 (tests/test_sigmoid_accuracy.py sweeps x and t
 * against the float64 reference). */
FL_INLINE FL_T FL_NAME(sig_elem)(FL_T x, FL_T t, FL_T pw, FL_T *sg, FL_T *one_m)
{
    FL_T ax = x < 0 ? -x : x;
    FL_T u = FL_EXPN(-ax);                             /* NaN stays NaN */
    FL_T lg = FL_LOG1P01(u);
    FL_T inv = (FL_T)1 / ((FL_T)1 + u);
    FL_T cpos = pw * t, cneg = (FL_T)1 - t;
    FL_T lw = (FL_T)1 + (pw - (FL_T)1) * t;            /* cpos + cneg, without cancellation */
    FL_T lin = x > 0 ? (cneg == 0 ? (FL_T)0 : cneg * x)
                     : (x < 0 ? (cpos == 0 ? (FL_T)0 : cpos * -x) : (FL_T)0);
    FL_T a = x >= 0 ? inv : u * inv;
    *sg = x != x ? x : a;
    *one_m = x >= 0 ? u * inv : inv;
    return x != x ? x : lw * lg + lin;
}

/* o if b = 1, 1 if b = 0, exactly, without a select on a loop-invariant
 * condition (GCC does not vectorise those); o is made finite first (an
 * infinite power of 1 - p_t needs a target beyond 2^16). */
FL_INLINE FL_T FL_NAME(sig_pick)(FL_T o, FL_T b)
{
    const FL_T big = (FL_T)(sizeof(FL_T) == 4 ? 3.4028234663852886e38 : 1.7976931348623157e308);
    FL_T of = o <= big ? o : big;
    return of * b + ((FL_T)1 - b);
}

/* Focal / poly-1 element with an integer gamma k in [0, 16], in the input's
 * precision: (1 - p_t)^(k - 1) by squaring, its bits kb[0..3] (0 or 1) picking
 * omp, omp^2, omp^4, omp^8, then (1 - p_t)^k = that times omp (kb[4] = 1) or
 * 1 (k = 0, kb[4] = 0); kb[5] is the power where omp <= 0 (1 for k = 0, else
 * 0).  Each power is a few roundings of 1 - p_t, whatever its size.  The
 * same formulas and limits as sig_opt below. */
FL_INLINE FL_T FL_NAME(sig_opti)(FL_T x, FL_T t, FL_T pw, const FL_T *kb, FL_T gam, FL_T alpha,
                                 FL_T eps, FL_T *gout)
{
    FL_T ax = x < 0 ? -x : x;
    FL_T u = FL_EXPN(-ax);
    FL_T inv = (FL_T)1 / ((FL_T)1 + u);
    FL_T p = x >= 0 ? inv : u * inv;
    FL_T q = x >= 0 ? u * inv : inv;                   /* 1 - p */
    FL_T lg = FL_LOG1P01(u);
    FL_T cpos = pw * t, cneg = (FL_T)1 - t;
    FL_T ce = ((FL_T)1 + (pw - (FL_T)1) * t) * lg
              + (x > 0 ? (cneg == 0 ? (FL_T)0 : cneg * x)
                       : (x < 0 ? (cpos == 0 ? (FL_T)0 : cpos * -x) : (FL_T)0));
    FL_T dce = cneg * p - cpos * q;
    FL_T omp = t * q + ((FL_T)1 - t) * p;             /* 1 - p_t */
    FL_T domp = ((FL_T)1 - (FL_T)2 * t) * p * q;      /* d(1 - p_t)/dx */
    FL_T o2 = omp * omp, o4 = o2 * o2, o8 = o4 * o4;
    FL_T f1 = (FL_NAME(sig_pick)(omp, kb[0]) * FL_NAME(sig_pick)(o2, kb[1]))
              * (FL_NAME(sig_pick)(o4, kb[2]) * FL_NAME(sig_pick)(o8, kb[3]));
    FL_T fg = omp > 0 ? f1 * FL_NAME(sig_pick)(omp, kb[4]) : kb[5];
    FL_T fg1 = omp > 0 ? f1 : (FL_T)0;
    FL_T at = alpha < 0 ? (FL_T)1 : alpha * t + ((FL_T)1 - alpha) * ((FL_T)1 - t);
    FL_T l = at * fg * ce + eps * omp;
    FL_T g = at * (fg * dce + (domp == 0 ? (FL_T)0 : gam * fg1 * domp * ce)) + eps * domp;
    /* domp = 0 at x = +-inf, where ce may be inf; gamma = 0 gives 0 * finite */
    *gout = x != x ? x : g;
    return x != x ? x : l;
}

/* Focal / poly-1 element in double (any gamma): loss, and dloss/dx through *gout.
 * 1 - p_t = t (1 - p) + (1 - t) p from the cancellation-free sigmoid pair;
 * (1 - p_t)^gamma and (1 - p_t)^(gamma - 1) from its logarithm. */
FL_INLINE double FL_NAME(sig_opt)(double x, double t, double pw, double gam, double alpha,
                                  double eps, double *gout)
{
    double ax = x < 0 ? -x : x;
    double u = fl_exp_f64(-ax);
    double inv = 1.0 / (1.0 + u);
    double p = x >= 0 ? inv : u * inv;
    double q = x >= 0 ? u * inv : inv;                 /* 1 - p */
    double lg = fl_log1p01_f64(u);
    double cpos = pw * t, cneg = 1.0 - t;
    double ce = (1.0 + (pw - 1.0) * t) * lg
                + (x > 0 ? (cneg == 0.0 ? 0.0 : cneg * x)
                         : (x < 0 ? (cpos == 0.0 ? 0.0 : cpos * -x) : 0.0));
    double dce = cneg * p - cpos * q;
    double omp = t * q + (1.0 - t) * p;                /* 1 - p_t */
    double domp = (1.0 - 2.0 * t) * p * q;             /* d(1 - p_t)/dx */
    double lo = fl_log_f64(omp);
    double fg = gam == 0.0 ? 1.0 : (omp > 0.0 ? fl_exp_f64(gam * lo) : 0.0);
    double fg1 = omp > 0.0 ? fl_exp_f64((gam - 1.0) * lo) : 0.0;
    double at = alpha < 0.0 ? 1.0 : alpha * t + (1.0 - alpha) * (1.0 - t);
    double l = at * fg * ce + eps * omp;
    double g = at * (fg * dce + ((gam == 0.0 || domp == 0.0) ? 0.0 : gam * fg1 * domp * ce))
               + eps * domp;   /* domp = 0 at x = +-inf, where ce may be inf */
    l = x != x ? x : l;
    *gout = x != x ? x : g;
    return l;
}

/* Caffe's ignore_label: elements whose target equals ign contribute exactly 0
 * (also where the computed value is inf or NaN), after the chunk is computed. */
FL_INLINE void FL_NAME(sig_mask)(const FL_T *t, FL_T ign, FL_T *lo, FL_T *g, FL_T *h, int64_t n)
{
    int64_t i;
    if (lo) {
        FL_SIMD
        for (i = 0; i < n; ++i) lo[i] = t[i] == ign ? (FL_T)0 : lo[i];
    }
    if (g) {
        FL_SIMD
        for (i = 0; i < n; ++i) g[i] = t[i] == ign ? (FL_T)0 : g[i];
    }
    if (h) {
        FL_SIMD
        for (i = 0; i < n; ++i) h[i] = t[i] == ign ? (FL_T)0 : h[i];
    }
}

/* Evaluation statistics (fastloss.h, fl_sigmoid_metrics) of n elements of one
 * row, the first of label lab0 (per_elem: every element a row of its own, of
 * label 0).  Reads x and t only, before the chunk writes anything (the
 * gradient may overwrite x).  S: the block's sums (fl_internal.h, FL_SM_*);
 * cnt: the thread's label counts; *valid, *wrong: the row's running counts.
 * p in double, as 1 / (1 + exp(-x)); the calibration bin is floor(p n_bins)
 * moved by at most one step to agree with numpy.linspace's edges j * (1 /
 * n_bins) (p == 1 in bin n_bins, as numpy.searchsorted over those edges). */
FL_INLINE void FL_NAME(sig_metrics)(const fl_sigmoid_metrics *M, const FL_T *x, const FL_T *t,
                                    int has_ign, FL_T ign, int64_t n, int64_t lab0, int per_elem,
                                    double *S, int64_t *cnt, int64_t *valid, int64_t *wrong)
{
    double p[FL_CHUNK];
    int32_t jb[FL_CHUNK], hb[FL_CHUNK], okv[FL_CHUNK], posv[FL_CHUNK], predv[FL_CHUNK];
    const double thr = M->threshold, nbd = (double)M->n_bins, step = 1.0 / nbd;
    const int64_t NB = M->n_bins, B = M->auc_bins, stride = 3 + 2 * B;
    const double Bm = (double)(B > 0 ? B - 1 : 0), Bd = (double)B;
    double *Sn = S + FL_SM_BINS, *Sp = Sn + (NB + 1), *Sc = Sp + (NB + 1);
    double br = 0.0;
    int64_t i, j, nv = 0, nw = 0;
    /* vector pass: p, the flags, the bins (double selects only) */
    FL_SIMD_SUM(br, nv, nw)
    for (i = 0; i < n; ++i) {
        const double pv = 1.0 / (1.0 + fl_exp_f64(-(double)x[i]));
        const int32_t ok = (has_ign && t[i] == ign) ? 0 : 1;
        const int32_t pos = t[i] == (FL_T)1 ? ok : 0;
        const int32_t pred = pv >= thr ? ok : 0;
        const double d = pv - (pos ? 1.0 : 0.0);
        double jd = pv * nbd, hd = pv * Bd, jf, ej, ej1;
        br += ok ? d * d : 0.0;
        nv += ok;
        nw += pos != pred;
        jd = jd >= 0.0 ? (jd < nbd ? jd : nbd) : 0.0;              /* NaN: 0, then nbd */
        jf = (double)(int32_t)jd;
        ej = jf >= nbd ? 1.0 : jf * step;
        ej1 = jf + 1.0 >= nbd ? 1.0 : (jf + 1.0) * step;
        jf = ej > pv ? jf - 1.0 : ((jf < nbd && ej1 <= pv) ? jf + 1.0 : jf);
        jf = pv != pv ? nbd : jf;
        hd = hd >= 0.0 ? (hd < Bm ? hd : Bm) : Bm;                  /* NaN: the top bin */
        jb[i] = (int32_t)jf;
        hb[i] = (int32_t)hd;
        okv[i] = ok;
        posv[i] = pos;
        predv[i] = pred;
        p[i] = pv;
    }
    /* label counts: distinct labels along a row (no conflicts); one label when
     * every element is a row of its own */
    if (!per_elem) {
        int64_t *lc = cnt + lab0 * stride;
        FL_SIMD
        for (i = 0; i < n; ++i) {
            lc[i * stride] += posv[i] & predv[i];
            lc[i * stride + 1] += posv[i];
            lc[i * stride + 2] += predv[i];
        }
        if (B) {
            FL_SIMD
            for (i = 0; i < n; ++i) lc[i * stride + 3 + posv[i] * B + hb[i]] += okv[i];
        }
    } else {
        int64_t tp = 0, np_ = 0, npr = 0;
        FL_SIMD_SUM(tp, np_, npr)
        for (i = 0; i < n; ++i) {
            tp += posv[i] & predv[i];
            np_ += posv[i];
            npr += predv[i];
        }
        cnt[0] += tp;
        cnt[1] += np_;
        cnt[2] += npr;
        if (B)
            for (i = 0; i < n; ++i) cnt[3 + posv[i] * B + hb[i]] += okv[i];
        S[FL_SM_ROWS] += (double)nv;
        S[FL_SM_RIGHT] += (double)(nv - nw);
    }
    /* calibration bins, in element order; few bins: four interleaved
     * accumulators (no store-to-load chain when neighbours share a bin) */
    if (NB < 64) {
        double an[4][64], ap[4][64], ac[4][64];
        int k;
        for (k = 0; k < 4; ++k)
            for (j = 0; j <= NB; ++j) an[k][j] = ap[k][j] = ac[k][j] = 0.0;
        for (i = 0; i < n; ++i) {
            const int k4 = (int)(i & 3);
            const double o = (double)okv[i];
            an[k4][jb[i]] += o;
            ap[k4][jb[i]] += (double)posv[i];
            ac[k4][jb[i]] += okv[i] ? p[i] : 0.0;
        }
        for (j = 0; j <= NB; ++j) {
            Sn[j] += (an[0][j] + an[1][j]) + (an[2][j] + an[3][j]);
            Sp[j] += (ap[0][j] + ap[1][j]) + (ap[2][j] + ap[3][j]);
            Sc[j] += (ac[0][j] + ac[1][j]) + (ac[2][j] + ac[3][j]);
        }
    } else {
        for (i = 0; i < n; ++i) {
            if (!okv[i]) continue;
            Sn[jb[i]] += 1.0;
            Sp[jb[i]] += (double)posv[i];
            Sc[jb[i]] += p[i];
        }
    }
    S[FL_SM_N] += (double)nv;
    S[FL_SM_BRIER] += br;
    *valid += nv;
    *wrong += nw;
}

/* Prepass of the ignore mask: the number of ignored elements of a block
 * (the MEAN denominator is the number of the others). */
void FL_NAME(fl_sig_ignored_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_elem_ctx *ctx = (const fl_elem_ctx *)vctx;
    const fl_sigmoid_ce_args *a = (const fl_sigmoid_ce_args *)ctx->args;
    const FL_T *T = (const FL_T *)a->target;
    const FL_T ign = (FL_T)a->ignore_value;
    int64_t r0, r1, c0, c1, r, i;
    double cnt = 0.0;
    fl_elem_block_range(ctx, b, &r0, &r1, &c0, &c1);
    for (r = r0; r < r1; ++r) {
        const FL_T *t = T + r * ctx->row_len;
        FL_SIMD_SUM(cnt)
        for (i = c0; i < c1; ++i) cnt += t[i] == ign ? 1.0 : 0.0;
    }
    part->ignored = cnt;
}

/* What a chunk needs besides its data. */
typedef struct {
    FL_T scale, ign, gamf, alphaf, epsf;
    double gam, alpha, eps;
    FL_T kb[6];                            /* sig_opti's bits of an integer gamma */
    int opt, ipow, has_ign, stream;
    FL_T *out, *grad, *hess;               /* the arrays (NULL when not asked for) */
} FL_NAME(sig_par);

/* Lanes of the block's loss sum: acc[j] adds elements j, j + FL_SIG_LANES, ...
 * of each chunk, then the lanes add up in order (a fixed order: the same
 * bits for any thread count). */
#ifndef FL_SIG_LANES
#define FL_SIG_LANES 16
#endif

FL_INLINE void FL_NAME(sig_acc)(double *acc, const FL_T *v, int64_t n)
{
    int64_t i = 0, j;
    for (; i + FL_SIG_LANES <= n; i += FL_SIG_LANES) {
        FL_SIMD
        for (j = 0; j < FL_SIG_LANES; ++j) acc[j] += (double)v[i + j];
    }
    for (j = 0; i + j < n; ++j) acc[j] += (double)v[i + j];
}

/* The element loops over n elements, n a multiple of FL_SIG_LANES (so that
 * every element goes through the same vector code: with FMA contraction a
 * remainder loop may round differently, and an element's value must not
 * depend on its position).  Not inlined: the chunk's body and its padded
 * tail run the same machine code.  scr: n elements of scratch.  Every loop
 * reads x[i] before it writes g[i] (the gradient may overwrite x). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void FL_NAME(sig_run)(const FL_NAME(sig_par) *P, const FL_T *x, const FL_T *t,
                             const FL_T *w, const FL_T *pw, FL_T *lo, FL_T *g, FL_T *h,
                             FL_T *scr, int64_t n)
{
    const FL_T scale = P->scale;
    int64_t i;
    if (P->opt && P->ipow) {
        const FL_T kb[6] = {P->kb[0], P->kb[1], P->kb[2], P->kb[3], P->kb[4], P->kb[5]};
        const FL_T gam = P->gamf, alpha = P->alphaf, eps = P->epsf;
        /* one loop for the value and the gradient forms (the same bits): without a
         * gradient it goes to scr */
        FL_T *gg = g ? g : scr;
        FL_SIMD
        for (i = 0; i < n; ++i) {
            FL_T gi, l = FL_NAME(sig_opti)(x[i], t[i], pw[i], kb, gam, alpha, eps, &gi);
            lo[i] = w[i] * l;
            gg[i] = scale * w[i] * gi;
        }
    } else if (P->opt) {
        FL_SIMD
        for (i = 0; i < n; ++i) {
            double gi;
            lo[i] = (FL_T)((double)w[i] * FL_NAME(sig_opt)((double)x[i], (double)t[i],
                                           (double)pw[i], P->gam, P->alpha, P->eps, &gi));
            if (g) g[i] = (FL_T)((double)scale * (double)w[i] * gi);
        }
    } else if (g && h) {
        FL_SIMD
        for (i = 0; i < n; ++i) {
            FL_T sg, om, cpos = pw[i] * t[i], cneg = (FL_T)1 - t[i];
            FL_T l = FL_NAME(sig_elem)(x[i], t[i], pw[i], &sg, &om);
            lo[i] = w[i] * l;
            h[i] = scale * w[i] * (cneg + cpos) * sg * om;
            g[i] = scale * w[i] * (cneg * sg - cpos * om);
        }
    } else if (g) {
        FL_SIMD
        for (i = 0; i < n; ++i) {
            FL_T sg, om, cpos = pw[i] * t[i], cneg = (FL_T)1 - t[i];
            FL_T l = FL_NAME(sig_elem)(x[i], t[i], pw[i], &sg, &om);
            lo[i] = w[i] * l;
            g[i] = scale * w[i] * (cneg * sg - cpos * om);
        }
    } else {
        FL_SIMD
        for (i = 0; i < n; ++i) {
            FL_T sg, om;
            lo[i] = w[i] * FL_NAME(sig_elem)(x[i], t[i], pw[i], &sg, &om);
        }
    }
}

/* n <= FL_CHUNK elements at flat offset e of x, t, with weights w and pw
 * (already per element): the losses (into the output or buf), the gradient
 * and Hessian, the ignore mask, the sum into acc.  The last n % FL_SIG_LANES
 * elements run through padded copies. */
FL_INLINE void FL_NAME(sig_chunk)(const FL_NAME(sig_par) *P, const FL_T *X, const FL_T *T,
                                  int64_t e, const FL_T *w, const FL_T *pw, int64_t n,
                                  FL_T *buf, FL_T *gbuf, FL_T *scr, double *acc)
{
    const FL_T *x = X + e, *t = T + e;
    FL_T *lo = P->out ? P->out + e : buf;
    FL_T *g = P->grad ? (P->stream ? gbuf : P->grad + e) : NULL;
    FL_T *h = P->hess ? P->hess + e : NULL;
    const int64_t n0 = n - n % FL_SIG_LANES, m = n - n0;
    int64_t j;
    if (n0) FL_NAME(sig_run)(P, x, t, w, pw, lo, g, h, scr, n0);
    if (m) {
        FL_T px[FL_SIG_LANES], pt[FL_SIG_LANES], pwt[FL_SIG_LANES], ppw[FL_SIG_LANES];
        FL_T pl[FL_SIG_LANES], pg[FL_SIG_LANES], ph[FL_SIG_LANES];
        for (j = 0; j < FL_SIG_LANES; ++j) {
            px[j] = j < m ? x[n0 + j] : (FL_T)0;
            pt[j] = j < m ? t[n0 + j] : (FL_T)0;
            pwt[j] = j < m ? w[n0 + j] : (FL_T)1;
            ppw[j] = j < m ? pw[n0 + j] : (FL_T)1;
        }
        FL_NAME(sig_run)(P, px, pt, pwt, ppw, pl, g ? pg : NULL, h ? ph : NULL, scr,
                         FL_SIG_LANES);
        for (j = 0; j < m; ++j) lo[n0 + j] = pl[j];
        if (g)
            for (j = 0; j < m; ++j) g[n0 + j] = pg[j];
        if (h)
            for (j = 0; j < m; ++j) h[n0 + j] = ph[j];
    }
    if (P->has_ign) FL_NAME(sig_mask)(t, P->ign, lo, g, h, n);
    FL_NAME(sig_acc)(acc, lo, n);
    if (g && P->stream) FL_STREAM(P->grad + e, gbuf, n);
}

/* A per-column vector (length L) for the n elements from column c on: the
 * vector itself when they stay in one row, else its pieces copied to dst. */
FL_INLINE const FL_T *FL_NAME(sig_cols)(const FL_T *v, int64_t L, int64_t c, int64_t n, FL_T *dst)
{
    int64_t k = 0;
    if (c + n <= L) return v + c;
    while (k < n) {
        int64_t m = L - c < n - k ? L - c : n - k;
        memcpy(dst + k, v + c, (size_t)m * sizeof(FL_T));
        k += m;
        c = 0;
    }
    return dst;
}

void FL_NAME(fl_sig_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_elem_ctx *ctx = (const fl_elem_ctx *)vctx;
    const fl_sigmoid_ce_args *a = (const fl_sigmoid_ce_args *)ctx->args;
    const FL_T *X = (const FL_T *)a->logits;
    const FL_T *T = (const FL_T *)a->target;
    const FL_T *W = (const FL_T *)a->weight;
    const FL_T *PW = (const FL_T *)a->pos_weight;
    const int64_t L = ctx->row_len;
    const FL_T ign = (FL_T)a->ignore_value;
    const fl_sigmoid_metrics *M = part->sums ? a->metrics : NULL;
    const int per_elem = M != NULL && M->n_labels == 1;
    FL_NAME(sig_par) P;
    FL_T ones[FL_CHUNK], buf[FL_CHUNK], gbuf[FL_CHUNK], scr[FL_CHUNK], wbuf[FL_CHUNK];
    FL_T pwbuf[FL_CHUNK];
    double acc[FL_SIG_LANES], lsum = 0.0;
    int64_t r0, r1, c0, c1, r, i;
    P.scale = (FL_T)ctx->grad_scale;
    P.ign = ign;
    P.gam = a->focal_gamma;
    P.alpha = a->focal_alpha;
    P.eps = a->poly1_epsilon;
    P.gamf = (FL_T)P.gam;
    P.alphaf = (FL_T)P.alpha;
    P.epsf = (FL_T)P.eps;
    P.opt = P.gam != 0.0 || P.alpha >= 0.0 || P.eps != 0.0;
    /* an integer gamma up to 16 (focal's usual 0, 1, 2, 3): the powers by
     * squaring in the input's precision; any other gamma: sig_opt in double */
    P.ipow = P.gam <= 16.0 && P.gam == (double)(int)P.gam;
    {
        const int k = P.ipow ? (int)P.gam : 0, k1 = k > 0 ? k - 1 : 0;
        for (i = 0; i < 4; ++i) P.kb[i] = (FL_T)((k1 >> i) & 1);
        P.kb[4] = (FL_T)(k > 0);
        P.kb[5] = (FL_T)(k == 0);
    }
    P.has_ign = a->has_ignore;
    P.out = (FL_T *)a->loss;
    P.grad = (FL_T *)a->grad;
    P.hess = (FL_T *)a->hess;
    /* a large gradient that does not overwrite x leaves with non-temporal
     * stores (no read-for-ownership of memory that is never read) */
    P.stream = P.grad != NULL && (const void *)P.grad != (const void *)X
               && (double)ctx->n_rows * (double)L * (double)sizeof(FL_T) >= FL_STREAM_BYTES;
    for (i = 0; i < FL_CHUNK; ++i) ones[i] = (FL_T)1;
    for (i = 0; i < FL_SIG_LANES; ++i) acc[i] = 0.0;
    fl_elem_block_range(ctx, b, &r0, &r1, &c0, &c1);
    if (!M) {
        /* the block as one run of elements: chunks cross row boundaries (the
         * per-column weights are gathered per chunk), no short row tails */
        const int64_t e0 = r0 * L + c0, e1 = (r1 - 1) * L + c1;
        int64_t e = e0;
        while (e < e1) {
            const int64_t n = e1 - e < FL_CHUNK ? e1 - e : FL_CHUNK;
            const int64_t c = e % L;
            const FL_T *w = !W ? ones : (a->weight_row_stride ? W + e
                                                                : FL_NAME(sig_cols)(W, L, c, n, wbuf));
            const FL_T *pw = PW ? FL_NAME(sig_cols)(PW, L, c, n, pwbuf) : ones;
            FL_NAME(sig_chunk)(&P, X, T, e, w, pw, n, buf, gbuf, scr, acc);
            e += n;
        }
    } else {
        for (r = r0; r < r1; ++r) {
            const int64_t base = r * L;
            int64_t cc = c0, mvalid = 0, mwrong = 0;
            while (cc < c1) {
                /* absent weights read a row of ones: no pointer tests in the loops */
                const FL_T *w = W ? W + r * a->weight_row_stride + cc : ones;
                const FL_T *pw = PW ? PW + cc : ones;
                const int64_t n = c1 - cc < FL_CHUNK ? c1 - cc : FL_CHUNK;
                /* the metrics read x before the chunk writes anything */
                FL_NAME(sig_metrics)(M, X + base + cc, T + base + cc, a->has_ignore, ign, n,
                                     part->col0 + cc, per_elem, part->sums, part->counts,
                                     &mvalid, &mwrong);
                FL_NAME(sig_chunk)(&P, X, T, base + cc, w, pw, n, buf, gbuf, scr, acc);
                cc += n;
            }
            if (!per_elem) {
                part->sums[FL_SM_ROWS] += mvalid > 0 ? 1.0 : 0.0;
                part->sums[FL_SM_RIGHT] += mvalid > 0 && mwrong == 0 ? 1.0 : 0.0;
                part->sums[FL_SM_OK] += mwrong == 0 ? 1.0 : 0.0;
            }
        }
    }
    if (P.stream) fl_stream_fence();
    for (i = 0; i < FL_SIG_LANES; ++i) lsum += acc[i];
    part->loss = lsum;
}
