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

FL_INLINE FL_T FL_NAME(sig_loss)(FL_T x, FL_T t, FL_T pw)
{
    FL_T ax = x < 0 ? -x : x;
    FL_T lg = FL_LOG1P01(FL_EXP(-ax));
    FL_T cpos = pw * t, cneg = (FL_T)1 - t;
    FL_T lw = (FL_T)1 + (pw - (FL_T)1) * t;            /* cpos + cneg, without cancellation */
    FL_T lin = x > 0 ? (cneg == 0 ? (FL_T)0 : cneg * x)
                     : (x < 0 ? (cpos == 0 ? (FL_T)0 : cpos * -x) : (FL_T)0);
    FL_T l = lw * lg + lin;
    return x != x ? x : l;
}

/* sigmoid(x) and 1 - sigmoid(x), each without cancellation */
FL_INLINE void FL_NAME(sig_sig)(FL_T x, FL_T *sg, FL_T *one_m)
{
    FL_T ax = x < 0 ? -x : x;
    FL_T u = FL_EXP(-ax);
    FL_T inv = (FL_T)1 / ((FL_T)1 + u);
    FL_T a = x >= 0 ? inv : u * inv;
    *sg = x != x ? x : a;
    *one_m = x >= 0 ? u * inv : inv;
}

/* Focal / poly-1 element (in double): loss, and dloss/dx through *gout.
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

void FL_NAME(fl_sig_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_elem_ctx *ctx = (const fl_elem_ctx *)vctx;
    const fl_sigmoid_ce_args *a = (const fl_sigmoid_ce_args *)ctx->args;
    const FL_T *X = (const FL_T *)a->logits;
    const FL_T *T = (const FL_T *)a->target;
    const FL_T *W = (const FL_T *)a->weight;
    const FL_T *PW = (const FL_T *)a->pos_weight;
    FL_T *OUT = (FL_T *)a->loss;
    FL_T *G = (FL_T *)a->grad;
    FL_T *H = (FL_T *)a->hess;
    const FL_T scale = (FL_T)ctx->grad_scale;
    const int64_t L = ctx->row_len;
    const double gam = a->focal_gamma, alpha = a->focal_alpha, eps = a->poly1_epsilon;
    const int opt = gam != 0.0 || alpha >= 0.0 || eps != 0.0;
    const FL_T ign = (FL_T)a->ignore_value;
    const fl_sigmoid_metrics *M = part->sums ? a->metrics : NULL;
    const int per_elem = M != NULL && M->n_labels == 1;
    FL_T ones[FL_CHUNK];
    int64_t r0, r1, c0, c1, r, i;
    double lsum = 0.0;
    for (i = 0; i < FL_CHUNK; ++i) ones[i] = (FL_T)1;
    fl_elem_block_range(ctx, b, &r0, &r1, &c0, &c1);
    for (r = r0; r < r1; ++r) {
        const int64_t base = r * L;
        int64_t cc = c0, mvalid = 0, mwrong = 0;
        while (cc < c1) {
            /* absent weights read a row of ones: no pointer tests in the loops */
            const FL_T *x = X + base + cc, *t = T + base + cc;
            const FL_T *w = W ? W + r * a->weight_row_stride + cc : ones;
            const FL_T *pw = PW ? PW + cc : ones;
            FL_T buf[FL_CHUNK];
            FL_T *lo = OUT ? OUT + base + cc : buf;
            int64_t n = c1 - cc < FL_CHUNK ? c1 - cc : FL_CHUNK;
            if (M)
                FL_NAME(sig_metrics)(M, x, t, a->has_ignore, ign, n, part->col0 + cc, per_elem,
                                     part->sums, part->counts, &mvalid, &mwrong);
            if (opt) {
                /* options: one loop computes both (reads x before writing g) */
                FL_T *g = G ? G + base + cc : NULL;
                FL_SIMD
                for (i = 0; i < n; ++i) {
                    double gi;
                    lo[i] = (FL_T)((double)w[i] * FL_NAME(sig_opt)((double)x[i], (double)t[i],
                                                   (double)pw[i], gam, alpha, eps, &gi));
                    if (g) g[i] = (FL_T)((double)scale * (double)w[i] * gi);
                }
                if (a->has_ignore) FL_NAME(sig_mask)(t, ign, lo, g, NULL, n);
                lsum += FL_NAME(lane_sum)(lo, n);
                cc += n;
                continue;
            }
            /* the loss loop reads x before any gradient store (out may be x) */
            FL_SIMD
            for (i = 0; i < n; ++i) lo[i] = w[i] * FL_NAME(sig_loss)(x[i], t[i], pw[i]);
            if (a->has_ignore) FL_NAME(sig_mask)(t, ign, lo, NULL, NULL, n);
            lsum += FL_NAME(lane_sum)(lo, n);
            if (G && H) {
                FL_T *g = G + base + cc, *h = H + base + cc;
                FL_SIMD
                for (i = 0; i < n; ++i) {
                    FL_T sg, om, cpos = pw[i] * t[i], cneg = (FL_T)1 - t[i];
                    FL_NAME(sig_sig)(x[i], &sg, &om);
                    h[i] = scale * w[i] * (cneg + cpos) * sg * om;
                    g[i] = scale * w[i] * (cneg * sg - cpos * om);
                }
                if (a->has_ignore) FL_NAME(sig_mask)(t, ign, NULL, g, h, n);
            } else if (G) {
                FL_T *g = G + base + cc;
                FL_SIMD
                for (i = 0; i < n; ++i) {
                    FL_T sg, om, cpos = pw[i] * t[i], cneg = (FL_T)1 - t[i];
                    FL_NAME(sig_sig)(x[i], &sg, &om);
                    g[i] = scale * w[i] * (cneg * sg - cpos * om);
                }
                if (a->has_ignore) FL_NAME(sig_mask)(t, ign, NULL, g, NULL, n);
            }
            cc += n;
        }
        if (M && !per_elem) {
            part->sums[FL_SM_ROWS] += mvalid > 0 ? 1.0 : 0.0;
            part->sums[FL_SM_RIGHT] += mvalid > 0 && mwrong == 0 ? 1.0 : 0.0;
            part->sums[FL_SM_OK] += mwrong == 0 ? 1.0 : 0.0;
        }
    }
    part->loss = lsum;
}
