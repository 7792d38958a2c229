/*
 * softmax_ce.h -- softmax cross-entropy: ONE row pipeline, three layout drivers.
 * A template: kernels.c includes it once per dtype (FL_T, computed in FL_C)
 * and SIMD target.  Elements are read with FL_LD and written with FL_ST only.
 *
 * The pipeline of a row (z the logits after the soft cap, if any):
 *  1. statistics: m = max z, e_k = exp(z_k - m) (1 where z_k == m, so that
 *     the +inf and all -inf rows need no path of their own), rest = sum of
 *     the e_k with z_k != m, neq = #{z_k == m} (s - 1 = rest + neq - 1 keeps the low
 *     digits of a confident row), z_y, the option sums S1 = sum b_k (m - z_k),
 *     B = sum b_k, Pn = sum t'_k e_k, the metric sums sum e_k^2 and
 *     sum e_k (m - z_k), the top-k count #{x_k > x_y}, the first argmax;
 *  2. epilogue, scalar in double (fl_sce_epilogue, written once): the row's
 *     loss, lse, and the coefficients of g_k = (cp - ct t'_k) e_k - cb w_k t'_k
 *     (times the cap's derivative), the target's entry g_y, the Hessian's
 *     factor, and whether the row is filled (0 when ignored, NaN when no
 *     limit exists);
 *  3. element pass: g_k (and h_k) from those coefficients and the e_k kept
 *     in the thread's buffer.
 * Loss l = s_i sum_k a_k (lse - z_k), a_k = w_k t'_k, t' = (1 - eps) t + eps/C,
 * split as a_k = b_k + (1 - eps) w_y [k == y] for labels (b_k = w_k eps / C),
 * a_k = b_k for probability targets.  z-loss adds z lse^2, poly-1 eps (1 - p_t),
 * focal replaces the label term by (1 - p_y)^gamma (lse - z_y); each carries the
 * row weight w_y s_i (labels) or s_i (probabilities).
 *
 * Drivers: long rows (classes last, C >= FL_SHORT_C: the row is read from
 * memory once, the next one prefetched, exp into the thread's buffer, the
 * gradient streamed out), tiles (a class axis with inner > 1: lanes are
 * contiguous inner positions; short rows: a tile of rows transposed into the
 * thread's buffer), both with vectors along the lanes and a loop over classes.
 */

#ifndef FL_SCE_SHARED
#define FL_SCE_SHARED

/* Per-call constants of the pipeline. */
typedef struct {
    const fl_softmax_ce_args *a;
    int labels, focal, cap_on, gen, extra, argmax;
    double keep, spread, eps, C, scale, wsum, zl, gam, pe, cap, inv_cap;
} fl_sce_call;

static void fl_sce_call_init(fl_sce_call *K, const fl_rows_ctx *ctx)
{
    const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)ctx->args;
    K->a = a;
    K->labels = a->labels != NULL;
    K->eps = a->label_smoothing;
    K->keep = 1.0 - K->eps;
    K->C = (double)a->n_classes;
    K->spread = K->eps / K->C;
    K->scale = ctx->grad_scale;
    K->wsum = ctx->class_weight_sum;
    K->zl = a->z_loss;
    K->gam = a->focal_gamma;
    K->pe = a->poly1_epsilon;
    K->focal = K->gam != 0.0;
    K->cap_on = a->softcap > 0.0;
    K->cap = K->cap_on ? a->softcap : 0.0;
    K->inv_cap = K->cap_on ? 1.0 / a->softcap : 0.0;
    K->gen = K->labels ? (K->eps != 0.0 ? 1 : 0) : 2;
    K->extra = a->top_k > 0 || a->stats_out != NULL;
    K->argmax = a->argmax_out != NULL;
}

/* Step 2, the epilogue of one row, in double.  Branch-free (selects only) so
 * that the tile driver runs it as a vector loop over its lanes; FOCAL is a
 * constant at each call.  Inputs: the row's statistics, logs = log1p(s - 1),
 * live = 0 for an ignored row, sw the sample weight, wy = w_y (1 for
 * probability targets).  fill: 0 normal, 1 zeros (ignored), 2 NaN. */
FL_INLINE void fl_sce_epilogue(const fl_sce_call *K, const int FOCAL, double m, double rest,
                               double neq, double logs, double zy, double ey, double S1,
                               double B, double Pn, double e2, double ed, double live, double sw,
                               double wy, double *loss, double *lse_o, double *cp, double *ct,
                               double *cb, double *gy, double *kh, double *hy, double *fill,
                               double *st0, double *st1, double *st2, double *invs)
{
    const double rest1 = rest + (neq - 1.0);
    const double s = 1.0 + rest1;
    const double lse = m + logs;
    const double dy = zy == m ? 0.0 : m - zy;
    const double py = ey == 1.0 ? 1.0 / s : ey / s;
    const double omq = ey == 1.0 ? rest1 / s : (s - ey) / s;    /* 1 - p_y, no cancellation */
    const double wy1 = K->labels ? K->keep * wy : 0.0;
    const double roww = K->labels ? wy * sw : sw;
    const double one_m_pt = K->labels ? K->keep * omq + K->eps * (1.0 - 1.0 / K->C)
                                      : 1.0 - Pn / s;
    double l, kb, al_lab, alpha;
    if (FOCAL) {
        /* (1 - p_y)^gamma (lse - z_y) and its derivative factor, from 1 - p_y in log space */
        const double Lc = dy + logs;
        const int pos = omq > 0.0;
        const double lo = fl_log_f64(pos ? omq : 1.0);
        const double pw = pos ? fl_exp_f64(K->gam * lo) : 0.0;
        const double pw1 = pos ? fl_exp_f64((K->gam - 1.0) * lo) : 0.0;
        const double Kf = pw + ((pos && py > 0.0) ? K->gam * py * pw1 * Lc : 0.0);
        l = roww * pw * Lc;
        kb = 0.0;
        al_lab = K->scale * roww * Kf;
        alpha = al_lab;
    } else {
        const double ce = B * logs + S1 + (wy1 == 0.0 ? 0.0 : wy1 * (dy + logs));
        l = sw * ce;
        kb = K->scale * sw;
        al_lab = kb * wy1;
        alpha = kb * (B + wy1);
    }
    /* z-loss and poly-1: per-row terms and their share of alpha */
    const double add = (K->zl != 0.0 ? K->zl * lse * lse : 0.0)
                       + (K->pe != 0.0 ? K->pe * one_m_pt : 0.0);
    const double ga = (K->zl != 0.0 ? 2.0 * K->zl * lse : 0.0)
                      + (K->pe != 0.0 ? K->pe * (1.0 - one_m_pt) : 0.0);
    const int opt = K->zl != 0.0 || K->pe != 0.0;
    l = opt ? l + roww * add : l;
    alpha = opt ? alpha + K->scale * roww * ga : alpha;
    const double kp = K->pe != 0.0 ? K->scale * roww * K->pe : 0.0;
    /* the limits: all -inf, or more than one +inf: no limit, NaN row */
    const int nolimit = m == -(double)INFINITY || (m == (double)INFINITY && neq != 1.0);
    l = nolimit ? (double)NAN : l;
    const int nan_row = l != l || nolimit || !(K->scale < (double)INFINITY)
                        || (K->zl != 0.0 && (lse == (double)INFINITY || lse == -(double)INFINITY));
    *loss = live != 0.0 ? l : 0.0;
    *lse_o = lse;
    *fill = live == 0.0 ? 1.0 : (nan_row ? 2.0 : 0.0);
    if (K->gen == 2) {
        *cp = alpha / s;
        *ct = kp / s;
        *cb = kb;
    } else {
        *cp = (alpha - kp * K->spread) / s;
        *ct = 0.0;
        *cb = kb * K->spread;
    }
    *gy = -al_lab * omq + (alpha - al_lab - kp * (K->spread + K->keep)) * py
          - kb * K->spread * wy;
    *kh = kb * (B + wy1);
    *hy = *kh * py * omq;
    *invs = 1.0 / s;
    *st0 = nolimit ? (double)NAN : 1.0 / s;
    *st1 = nolimit ? (double)NAN : e2 / (s * s);
    *st2 = nolimit ? (double)NAN : ed / s + logs;
}

static void fl_sce_epilogue_row(const fl_sce_call *K, double m, double rest, double neq,
                                double zy, double ey, double S1, double B, double Pn, double e2,
                                double ed, double live, double sw, double wy, double *loss,
                                double *lse, double *cp, double *ct, double *cb, double *gy,
                                double *kh, double *hy, double *fill, double *st0, double *st1,
                                double *st2, double *invs)
{
    const double logs = fl_log1p_f64(rest + (neq - 1.0));
    if (K->focal)
        fl_sce_epilogue(K, 1, m, rest, neq, logs, zy, ey, S1, B, Pn, e2, ed, live, sw, wy, loss,
                        lse, cp, ct, cb, gy, kh, hy, fill, st0, st1, st2, invs);
    else
        fl_sce_epilogue(K, 0, m, rest, neq, logs, zy, ey, S1, B, Pn, e2, ed, live, sw, wy, loss,
                        lse, cp, ct, cb, gy, kh, hy, fill, st0, st1, st2, invs);
}

/* The epilogue over the lanes of a tile (a vector loop), and for one row. */
static void fl_sce_epilogue_lanes(const fl_sce_call *K, fl_sce_lanes *L, int64_t nt)
{
    int64_t i;
    FL_SIMD
    for (i = 0; i < nt; ++i) L->logs[i] = fl_log1p_f64(L->rest[i] + (L->neq[i] - 1.0));
#define FL_SCE_EPI(FOCAL)                                                                  \
    FL_SIMD                                                                                \
    for (i = 0; i < nt; ++i)                                                               \
        fl_sce_epilogue(K, FOCAL, L->m[i], L->rest[i], L->neq[i], L->logs[i], L->zy[i],     \
                        L->ey[i], L->S1[i], L->B[i], L->Pn[i], L->e2[i], L->ed[i],         \
                        L->live[i], L->sw[i], L->wy[i], &L->loss[i], &L->lse[i], &L->cp[i], \
                        &L->ct[i], &L->cb[i], &L->gy[i], &L->kh[i], &L->hy[i], &L->fill[i], \
                        &L->st0[i], &L->st1[i], &L->st2[i], &L->invs[i]);
    if (K->focal) { FL_SCE_EPI(1) } else { FL_SCE_EPI(0) }
#undef FL_SCE_EPI
}

#endif /* FL_SCE_SHARED */

/* ---------------------------------------------------------------- elements */

/* tanh, branch-free: an odd series below 1/8, (1 - e) / (1 + e) with
 * e = exp(-2|u|) above (no cancellation there); tanh(+-inf) = +-1. */
FL_INLINE FL_C FL_NAME(sce_tanh)(FL_C u)
{
    FL_C au = u < 0 ? -u : u;
    FL_C e = FL_EXPN((FL_C)-2 * au);
    FL_C big = ((FL_C)1 - e) / ((FL_C)1 + e);
    FL_C z2 = au * au;
    FL_C p = (FL_C)(6404582.0 / 10854718875.0);
    p = p * z2 - (FL_C)(929569.0 / 638512875.0);
    p = p * z2 + (FL_C)(21844.0 / 6081075.0);
    p = p * z2 - (FL_C)(1382.0 / 155925.0);
    p = p * z2 + (FL_C)(62.0 / 2835.0);
    p = p * z2 - (FL_C)(17.0 / 315.0);
    p = p * z2 + (FL_C)(2.0 / 15.0);
    p = p * z2 - (FL_C)(1.0 / 3.0);
    FL_C small = au + au * z2 * p;
    FL_C r = au < (FL_C)0.125 ? small : big;
    r = u < 0 ? -r : r;
    return u != u ? u : r;
}

/* z = the capped logit (CAP a constant at each call) */
FL_INLINE FL_C FL_NAME(sce_z)(FL_C x, FL_C cap, FL_C inv_cap, const int CAP)
{
    return CAP ? cap * FL_NAME(sce_tanh)(x * inv_cap) : x;
}

/* e = exp(z - m), exactly 1 at the maximum (also where m is +-inf);
 * z - m <= 0 or NaN (then selected away or a NaN row) */
FL_INLINE FL_C FL_NAME(sce_e)(FL_C z, FL_C m)
{
    FL_C e = FL_EXPN(z - m);
    return z == m ? (FL_C)1 : e;
}

/* Step 1's contributions of one element: z, e, and the sums' terms.
 * tv: the probability target (GEN == 2), wk the class weight.  neq counts in
 * the element type (exact: a lane counts at most C < 2^24 ones). */
FL_INLINE void FL_NAME(sce_stat)(const fl_sce_call *K, FL_C xv, FL_C tv, double wk, FL_C m,
                                 FL_C xyr, FL_C cap, FL_C inv_cap, const int CAP, const int GEN,
                                 const int EXTRA, FL_C *z_o, FL_C *e_o, double *rest,
                                 FL_C *neq, double *S1, double *B, double *Pn, double *e2,
                                 double *ed, double *cnt)
{
    FL_C z = FL_NAME(sce_z)(xv, cap, inv_cap, CAP);
    const int at_max = z == m;    /* known before the exp: not on its latency path */
    FL_C e = FL_EXPN(z - m);
    e = at_max ? (FL_C)1 : e;
    double d = at_max ? 0.0 : (double)m - (double)z;
    if (CAP) *z_o = z;
    *e_o = e;
    *rest += at_max ? 0.0 : (double)e;
    *neq += at_max ? (FL_C)1 : (FL_C)0;
    if (GEN == 1) {
        *S1 += wk == 0.0 ? 0.0 : wk * d;
    } else if (GEN == 2) {
        double tt = K->keep * (double)tv + K->spread;
        double b = wk * tt;
        *S1 += b == 0.0 ? 0.0 : b * d;
        *B += b;
        *Pn += tt * (double)e;
    }
    if (EXTRA) {
        *e2 += (double)e * (double)e;
        *ed += e == (FL_C)0 ? 0.0 : (double)e * d;
        *cnt += xv > xyr ? 1.0 : 0.0;
    }
}

/* Step 3 for one element: g = ((cp - ct t') e - cb w t') * cap'(z). */
FL_INLINE FL_C FL_NAME(sce_g)(const fl_sce_call *K, FL_C e, FL_C z, FL_C tv, double wk,
                              FL_C cpf, double cp, double ct, double cb, FL_C inv_cap,
                              const int CAP, const int GEN)
{
    FL_C g;
    if (GEN == 0) {
        g = cpf * e;
    } else {
        double tt = GEN == 2 ? K->keep * (double)tv + K->spread : 1.0;
        g = (FL_C)((cp - ct * tt) * (double)e - cb * wk * tt);
    }
    if (CAP) {
        FL_C zr = z * inv_cap;
        g = g * ((FL_C)1 - zr * zr);
    }
    return g;
}

/* Top-1 / top-k hits of a row: fewer than 1 (k) classes score strictly higher
 * than the target's x_y (ties count as hits; a NaN x_y is a miss).  Shared
 * with hinge.h. */
FL_INLINE void FL_NAME(sce_topk)(const FL_T *x, int64_t C, int64_t st, FL_T xy, int64_t k,
                                 double *top1, double *topk)
{
    double cnt = 0.0;
    int64_t c;
    FL_SIMD_SUM(cnt)
    for (c = 0; c < C; ++c) cnt += FL_LD(x + c * st) > (FL_C)xy ? 1.0 : 0.0;
    if (xy == xy) {
        *top1 += cnt < 1.0 ? 1.0 : 0.0;
        *topk += cnt < (double)k ? 1.0 : 0.0;
    }
}

/* First index of the maximum, a NaN counting as the maximum (numpy.argmax). */
FL_INLINE int64_t FL_NAME(sce_argmax)(const FL_T *x, int64_t C, FL_C mx, int has_nan)
{
    int64_t k0, k;
    for (k0 = 0; k0 < C; k0 += 64) {
        int64_t k1 = k0 + 64 < C ? k0 + 64 : C;
        int hit = 0;
        for (k = k0; k < k1; ++k) {
            FL_C v = FL_LD(x + k);
            hit |= has_nan ? v != v : v == mx;
        }
        if (hit)
            for (k = k0; k < k1; ++k) {
                FL_C v = FL_LD(x + k);
                if (has_nan ? v != v : v == mx) return k;
            }
    }
    return 0;
}

/* Per-row outputs of the epilogue that are not the gradient. */
FL_INLINE void FL_NAME(sce_row_out)(const fl_sce_call *K, int64_t r, double loss, double lse,
                                    double st0, double st1, double st2, double cnt, double xyr,
                                    double live, double *lsum, double *top1, double *topk)
{
    const fl_softmax_ce_args *a = K->a;
    if (a->row_loss) FL_ST((FL_T *)a->row_loss + r, loss);
    *lsum += loss;
    if (a->lse_out) a->lse_out[r] = lse;
    if (a->stats_out) {
        a->stats_out[3 * r] = st0;
        a->stats_out[3 * r + 1] = st1;
        a->stats_out[3 * r + 2] = st2;
    }
    if (K->labels && a->top_k > 0 && live != 0.0 && xyr == xyr) {
        *top1 += cnt < 1.0 ? 1.0 : 0.0;
        *topk += cnt < (double)a->top_k ? 1.0 : 0.0;
    }
}

/* --------------------------------------------------------------- long rows */

#define FL_SCE_CHUNK 1024

/* Max of n contiguous logits (a NaN never replaces: the max of the rest). */
FL_INLINE FL_C FL_NAME(sce_max)(const FL_T *x, int64_t n)
{
    FL_C mx = (FL_C)-INFINITY;
    int64_t k;
    FL_SIMD_MAX(mx)
    for (k = 0; k < n; ++k) {
        FL_C v = FL_LD(x + k);
        mx = v > mx ? v : mx;
    }
    return mx;
}

/* One row of C contiguous logits whose max mx is known.  ebuf/zbuf/gbuf: the
 * thread's buffers (C, C when capped, FL_SCE_CHUNK).  xn: the next row, read
 * from memory (its max into *mxn) while this one's exps compute: the only
 * pass over memory; this row was brought into the cache by the same pass of
 * the previous row.  The max is exact in any order, so this gives the bits of
 * a separate max pass. */
FL_INLINE void FL_NAME(sce_long_row)(const fl_sce_call *K, const FL_T *x, const FL_T *t, FL_T *g,
                                     FL_T *h, FL_C *ebuf, FL_C *zbuf, FL_C *gbuf, FL_C mx,
                                     const FL_T *xn, FL_C *mxn, int64_t r, int stream,
                                     double *lsum, double *top1, double *topk, const int CAP,
                                     const int GEN, const int EXTRA)
{
    const fl_softmax_ce_args *a = K->a;
    const int64_t C = a->n_classes;
    const double *w = a->class_weight;
    const FL_C cap = (FL_C)K->cap, inv_cap = (FL_C)K->inv_cap;
    int64_t y = K->labels ? a->labels[r] : -1, k, k0;
    const double live = (K->labels && y == a->ignore_index) ? 0.0 : 1.0;
    if (live == 0.0 || y < 0) y = -1;
    const double sw = a->sample_weight ? a->sample_weight[r] : 1.0;
    const double wy = (y >= 0 && w) ? w[y] : 1.0;

    /* 1. statistics (x_y first: no lone miss later) */
    const FL_C xyr = y >= 0 ? FL_LD(x + y) : (FL_C)0;
    const FL_C m = FL_NAME(sce_z)(mx, cap, inv_cap, CAP);
    /* the exps are kept for the element pass only; the value alone writes
     * each chunk's into the same L1 stretch */
    const int keep_e = g != NULL || h != NULL;
    const FL_T *xm = xn ? xn : x;     /* without a next row: this one again, from cache */
    FL_C mx2 = (FL_C)-INFINITY;
    double rest = 0.0, neq = 0.0, S1 = 0.0, B = 0.0, Pn = 0.0, e2 = 0.0, ed = 0.0, cnt = 0.0;
    for (k0 = 0; k0 < C; k0 += FL_SCE_CHUNK) {
        const int64_t k1 = k0 + FL_SCE_CHUNK < C ? k0 + FL_SCE_CHUNK : C;
        double r_ = 0.0, s1_ = 0.0, b_ = 0.0, p_ = 0.0, e2_ = 0.0, ed_ = 0.0, c_ = 0.0;
        FL_C n_ = 0, mx_ = (FL_C)-INFINITY;
        FL_C *ec = keep_e ? ebuf + k0 : (FL_C *)gbuf;
        if (xn && k1 < C) {
            /* the next stretch of the next row, on its way while this one computes */
            const int64_t k2 = k1 + FL_SCE_CHUNK < C ? k1 + FL_SCE_CHUNK : C;
            const char *p0 = (const char *)(xn + k1), *p1 = (const char *)(xn + k2);
            for (; p0 < p1; p0 += 64) FL_PREFETCH_L2(p0);
        }
        FL_SIMD_SUM_MAX(mx_, r_, n_, s1_, b_, p_, e2_, ed_, c_)
        for (k = k0; k < k1; ++k) {
            FL_C v = FL_LD(xm + k);
            mx_ = v > mx_ ? v : mx_;
            FL_NAME(sce_stat)(K, FL_LD(x + k), GEN == 2 ? FL_LD(t + k) : (FL_C)0,
                              GEN ? (w ? w[k] : 1.0) : 1.0, m, xyr, cap, inv_cap, CAP, GEN,
                              EXTRA, zbuf + k, ec + (k - k0), &r_, &n_, &s1_, &b_, &p_, &e2_,
                              &ed_, &c_);
        }
        rest += r_; neq += (double)n_; S1 += s1_; B += b_; Pn += p_; e2 += e2_; ed += ed_;
        cnt += c_;
        mx2 = mx_ > mx2 ? mx_ : mx2;
    }
    *mxn = mx2;
    if (GEN == 1) {
        S1 = K->spread * S1;
        B = K->spread * K->wsum;
    }
    if (K->argmax) a->argmax_out[r] = FL_NAME(sce_argmax)(x, C, mx, rest != rest);

    /* 2. epilogue */
    /* z_y and e_y the same way in every form (the value form keeps no buffer) */
    const FL_C zy = y >= 0 ? FL_NAME(sce_z)(xyr, cap, inv_cap, CAP) : (FL_C)0;
    const FL_C ey = y >= 0 ? FL_NAME(sce_e)(zy, m) : (FL_C)1;
    double loss, lse, cp, ct, cb, gy, kh, hy, fill, st0, st1, st2, invs;
    fl_sce_epilogue_row(K, (double)m, rest, neq, (double)zy, (double)ey, S1, B, Pn, e2, ed, live,
                        sw, wy, &loss, &lse, &cp, &ct, &cb, &gy, &kh, &hy, &fill, &st0, &st1,
                        &st2, &invs);
    FL_NAME(sce_row_out)(K, r, loss, lse, st0, st1, st2, cnt, (double)xyr, live, lsum, top1, topk);

    /* 3. element pass */
    const FL_C fv = fill == 1.0 ? (FL_C)0 : (FL_C)NAN;
    const FL_C cpf = (FL_C)cp;
    const FL_C gyv = (FL_C)gy * (CAP ? (FL_C)1 - (zy * inv_cap) * (zy * inv_cap) : (FL_C)1);
    if (h) {
        const double ih = invs;
        FL_SIMD
        for (k = 0; k < C; ++k) {
            double p = (double)ebuf[k] * ih;
            FL_ST(h + k, kh * p * (1.0 - p));
        }
        if (y >= 0) FL_ST(h + y, hy);
        if (fill != 0.0)
            for (k = 0; k < C; ++k) FL_ST(h + k, fv);
    }
    if (g == NULL) return;
    for (k0 = 0; k0 < C; k0 += FL_SCE_CHUNK) {
        const int64_t k1 = k0 + FL_SCE_CHUNK < C ? k0 + FL_SCE_CHUNK : C;
        /* streamed: the chunk is built in gbuf (L1), then leaves with
         * non-temporal stores; otherwise written in place */
        FL_T *dst = stream ? (FL_T *)gbuf : g + k0;
        FL_SIMD
        for (k = k0; k < k1; ++k)
            FL_ST(dst + (k - k0), FL_NAME(sce_g)(K, ebuf[k], CAP ? zbuf[k] : (FL_C)0,
                                                 GEN == 2 ? FL_LD(t + k) : (FL_C)0,
                                                 GEN ? (w ? w[k] : 1.0) : 1.0, cpf, cp, ct, cb,
                                                 inv_cap, CAP, GEN));
        if (fill != 0.0)
            for (k = k0; k < k1; ++k) FL_ST(dst + (k - k0), fv);
        else if (y >= k0 && y < k1)
            FL_ST(dst + (y - k0), gyv);
        if (stream) FL_STREAM(g + k0, (const FL_T *)gbuf, k1 - k0);
    }
}

/* -------------------------------------------------------------------- tiles */

/* nt rows r0.. whose class k, lane i sits at x[k * xcs + i] (likewise t, g,
 * h with their class strides).  eT, zT: nt * C buffers, class stride nt. */
FL_INLINE void FL_NAME(sce_tile)(const fl_sce_call *K, fl_sce_lanes *L, const FL_T *x, int64_t xcs,
                                 const FL_T *t, int64_t tcs, FL_T *g, int64_t gcs, FL_T *h,
                                 int64_t hcs, FL_C *eT, FL_C *zT, int64_t nt, int64_t r0,
                                 double *lsum, double *top1, double *topk, const int CAP,
                                 const int GEN, const int EXTRA)
{
    const fl_softmax_ce_args *a = K->a;
    const int64_t C = a->n_classes;
    const double *w = a->class_weight;
    const FL_C cap = (FL_C)K->cap, inv_cap = (FL_C)K->inv_cap;
    FL_C mx[FL_TILE_LANES], mz[FL_TILE_LANES], xy[FL_TILE_LANES];
    FL_C cpf[FL_TILE_LANES], fm[FL_TILE_LANES], fv[FL_TILE_LANES], nq[FL_TILE_LANES];
    int64_t i, k;

    /* 1. statistics */
    for (i = 0; i < nt; ++i) mx[i] = (FL_C)-INFINITY;
    for (k = 0; k < C; ++k) {
        const FL_T *xk = x + k * xcs;
        FL_SIMD
        for (i = 0; i < nt; ++i) {
            FL_C v = FL_LD(xk + i);
            mx[i] = v > mx[i] ? v : mx[i];
        }
    }
    if (K->argmax) {
        FL_C am[FL_TILE_LANES], ak[FL_TILE_LANES];
        for (i = 0; i < nt; ++i) { am[i] = FL_LD(x + i); ak[i] = 0; }
        for (k = 1; k < C; ++k) {
            const FL_T *xk = x + k * xcs;
            const FL_C kc = (FL_C)k;
            FL_SIMD
            for (i = 0; i < nt; ++i) {
                FL_C v = FL_LD(xk + i);
                int take = v > am[i] || (v != v && am[i] == am[i]);
                am[i] = take ? v : am[i];
                ak[i] = take ? kc : ak[i];
            }
        }
        for (i = 0; i < nt; ++i) a->argmax_out[r0 + i] = (int64_t)ak[i];
    }
    {
        /* the lanes' labels, weights and target logits, branch-free (gathers) */
        const int64_t *lab = K->labels ? a->labels + r0 : NULL;
        const double *sws = a->sample_weight ? a->sample_weight + r0 : NULL;
        const int64_t ign = a->ignore_index;
        if (lab) {
            FL_SIMD
            for (i = 0; i < nt; ++i) {
                int64_t y = lab[i];
                int live = y != ign;
                y = (live && y >= 0) ? y : -1;
                int64_t yc = y >= 0 ? y : 0;
                L->live[i] = live ? 1.0 : 0.0;
                L->y[i] = y;
                xy[i] = y >= 0 ? FL_LD(x + yc * xcs + i) : (FL_C)0;
                L->xyr[i] = (double)xy[i];
            }
        } else {
            for (i = 0; i < nt; ++i) {
                L->live[i] = 1.0;
                L->y[i] = -1;
                xy[i] = (FL_C)0;
                L->xyr[i] = 0.0;
            }
        }
        if (sws) {
            FL_SIMD
            for (i = 0; i < nt; ++i) L->sw[i] = sws[i];
        } else {
            for (i = 0; i < nt; ++i) L->sw[i] = 1.0;
        }
        if (w) {
            FL_SIMD
            for (i = 0; i < nt; ++i) L->wy[i] = L->y[i] >= 0 ? w[L->y[i] >= 0 ? L->y[i] : 0] : 1.0;
        } else {
            for (i = 0; i < nt; ++i) L->wy[i] = 1.0;
        }
    }
    FL_SIMD
    for (i = 0; i < nt; ++i) {
        mz[i] = FL_NAME(sce_z)(mx[i], cap, inv_cap, CAP);
        L->m[i] = (double)mz[i];
        L->rest[i] = L->S1[i] = L->B[i] = L->Pn[i] = 0.0;
        nq[i] = 0;
        L->e2[i] = L->ed[i] = L->cnt[i] = 0.0;
    }
    for (k = 0; k < C; ++k) {
        const FL_T *xk = x + k * xcs;
        const FL_T *tk = GEN == 2 ? t + k * tcs : NULL;
        const double wk = GEN ? (w ? w[k] : 1.0) : 1.0;
        FL_C *ek = eT + k * nt, *zk = zT + k * nt;
        FL_SIMD
        for (i = 0; i < nt; ++i) {
            FL_NAME(sce_stat)(K, FL_LD(xk + i), GEN == 2 ? FL_LD(tk + i) : (FL_C)0, wk, mz[i],
                              xy[i], cap, inv_cap, CAP, GEN, EXTRA, zk + i, ek + i, &L->rest[i],
                              &nq[i], &L->S1[i], &L->B[i], &L->Pn[i], &L->e2[i], &L->ed[i],
                              &L->cnt[i]);
        }
    }
    FL_SIMD
    for (i = 0; i < nt; ++i) {
        const int64_t y = L->y[i], yc = y >= 0 ? y : 0;
        L->neq[i] = (double)nq[i];
        L->zy[i] = y >= 0 ? (CAP ? (double)zT[yc * nt + i] : L->xyr[i]) : 0.0;
        L->ey[i] = y >= 0 ? (double)eT[yc * nt + i] : 1.0;
    }
    if (GEN == 1)
        for (i = 0; i < nt; ++i) {
            L->S1[i] = K->spread * L->S1[i];
            L->B[i] = K->spread * K->wsum;
        }

    /* 2. epilogue, a vector loop over the lanes */
    fl_sce_epilogue_lanes(K, L, nt);
    /* the rows' outputs, one loop each; the losses added in row order */
    if (a->row_loss) {
        FL_T *RL = (FL_T *)a->row_loss + r0;
        FL_SIMD
        for (i = 0; i < nt; ++i) FL_ST(RL + i, L->loss[i]);
    }
    for (i = 0; i < nt; ++i) *lsum += L->loss[i];
    if (a->lse_out) {
        double *lo = a->lse_out + r0;
        FL_SIMD
        for (i = 0; i < nt; ++i) lo[i] = L->lse[i];
    }
    if (a->stats_out) {
        double *so = a->stats_out + 3 * r0;
        for (i = 0; i < nt; ++i) {
            so[3 * i] = L->st0[i];
            so[3 * i + 1] = L->st1[i];
            so[3 * i + 2] = L->st2[i];
        }
    }
    if (K->labels && a->top_k > 0)
        for (i = 0; i < nt; ++i)
            if (L->live[i] != 0.0 && L->xyr[i] == L->xyr[i]) {
                *top1 += L->cnt[i] < 1.0 ? 1.0 : 0.0;
                *topk += L->cnt[i] < (double)a->top_k ? 1.0 : 0.0;
            }

    /* 3. element pass */
    if (g == NULL && h == NULL) return;
    FL_SIMD
    for (i = 0; i < nt; ++i) {
        cpf[i] = (FL_C)L->cp[i];
        fm[i] = L->fill[i] != 0.0 ? (FL_C)1 : (FL_C)0;
        fv[i] = L->fill[i] == 1.0 ? (FL_C)0 : (FL_C)NAN;
    }
    if (g) {
        for (k = 0; k < C; ++k) {
            const FL_T *tk = GEN == 2 ? t + k * tcs : NULL;
            const double wk = GEN ? (w ? w[k] : 1.0) : 1.0;
            const FL_C *ek = eT + k * nt, *zk = zT + k * nt;
            FL_T *gk = g + k * gcs;
            FL_SIMD
            for (i = 0; i < nt; ++i) {
                FL_C gv = FL_NAME(sce_g)(K, ek[i], CAP ? zk[i] : (FL_C)0,
                                         GEN == 2 ? FL_LD(tk + i) : (FL_C)0, wk, cpf[i], L->cp[i],
                                         L->ct[i], L->cb[i], inv_cap, CAP, GEN);
                FL_ST(gk + i, fm[i] != (FL_C)0 ? fv[i] : gv);
            }
        }
        for (i = 0; i < nt; ++i) {
            const int64_t y = L->y[i];
            if (y >= 0 && L->fill[i] == 0.0) {
                FL_C zr = CAP ? zT[y * nt + i] * inv_cap : (FL_C)0;
                FL_ST(g + y * gcs + i, (FL_C)L->gy[i] * (CAP ? (FL_C)1 - zr * zr : (FL_C)1));
            }
        }
    }
    if (h) {
        for (k = 0; k < C; ++k) {
            const FL_C *ek = eT + k * nt;
            FL_T *hk = h + k * hcs;
            FL_SIMD
            for (i = 0; i < nt; ++i) {
                double p = (double)ek[i] * L->invs[i];
                FL_C hv = (FL_C)(L->kh[i] * p * (1.0 - p));
                FL_ST(hk + i, fm[i] != (FL_C)0 ? fv[i] : hv);
            }
        }
        for (i = 0; i < nt; ++i)
            if (L->y[i] >= 0 && L->fill[i] == 0.0) FL_ST(h + L->y[i] * hcs + i, L->hy[i]);
    }
}

/* ------------------------------------------------------------------ drivers */

/* The (CAP, GEN, EXTRA) variants of a driver step, each a constant-folded copy. */
#define FL_SCE_VARIANTS(CALL)                                                    \
    switch ((K.cap_on ? 6 : 0) + K.gen * 2 + (K.extra ? 1 : 0)) {                \
    case 0: CALL(0, 0, 0); break;                                                \
    case 1: CALL(0, 0, 1); break;                                                \
    case 2: CALL(0, 1, 0); break;                                                \
    case 3: CALL(0, 1, 1); break;                                                \
    case 4: CALL(0, 2, 0); break;                                                \
    case 5: CALL(0, 2, 1); break;                                                \
    case 6: CALL(1, 0, 0); break;                                                \
    case 7: CALL(1, 0, 1); break;                                                \
    case 8: CALL(1, 1, 0); break;                                                \
    case 9: CALL(1, 1, 1); break;                                                \
    case 10: CALL(1, 2, 0); break;                                               \
    default: CALL(1, 2, 1); break;                                               \
    }

/* Long rows [r0, r1). */
static void FL_NAME(sce_long_rows)(const fl_sce_call *Kp, const fl_rows_ctx *ctx, int64_t r0,
                                   int64_t r1, void *scratch, fl_partial *part)
{
    const fl_sce_call K = *Kp;
    const fl_softmax_ce_args *a = K.a;
    const int64_t C = a->n_classes;
    const FL_T *X = (const FL_T *)a->logits;
    const FL_T *T = (const FL_T *)a->probs;
    FL_T *G = (FL_T *)a->grad;
    FL_T *H = (FL_T *)a->hess;
    FL_C *ebuf = (FL_C *)scratch;
    FL_C *zbuf = ebuf + C;
    FL_C *gbuf = zbuf + (K.cap_on ? C : 0);
    const int stream = ctx->stream && G != NULL;
    double lsum = 0.0, top1 = 0.0, topk = 0.0;
    int64_t r;
    /* The first row's max: from the cache when this thread ran the block
     * before (whose last row read this one); the next row is read while a row
     * computes also across the block's end (the thread's next block, as a
     * static schedule gives; its max is found again then, from the cache),
     * unless the gradient overwrites the logits (another thread may be
     * writing that row). */
    const int64_t r_end = ((const void *)G == (const void *)X || (const void *)H == (const void *)X)
                              ? r1 : ctx->n_rows;
    FL_C mx = r0 < r1 ? FL_NAME(sce_max)(X + r0 * C, C) : (FL_C)0, mxn;
    for (r = r0; r < r1; ++r) {
        const int64_t off = r * C;
        const FL_T *xn = r + 1 < r_end ? X + off + C : NULL;
#define FL_SCE_LONG(c_, g_, e_)                                                              \
        FL_NAME(sce_long_row)(&K, X + off, T ? T + off : NULL, G ? G + off : NULL,             \
                              H ? H + off : NULL, ebuf, zbuf, gbuf, mx, xn, &mxn, r, stream,   \
                              &lsum, &top1, &topk, c_, g_, e_)
        FL_SCE_VARIANTS(FL_SCE_LONG)
#undef FL_SCE_LONG
        mx = mxn;
    }
    if (stream) fl_stream_fence();
    part->loss = lsum;
    part->top1 = top1;
    part->topk = topk;
}

/* Tiles of rows [r0, r1): class axis 1 (inner > 1) read in place, or short
 * rows (inner == 1) transposed through the thread's buffer. */
static void FL_NAME(sce_tiles)(const fl_sce_call *Kp, const fl_rows_ctx *ctx, int64_t r0,
                               int64_t r1, void *scratch, fl_partial *part)
{
    const fl_sce_call K = *Kp;
    const fl_softmax_ce_args *a = K.a;
    const int64_t C = a->n_classes, inner = a->inner;
    const int64_t lanes = fl_tile_lanes(C);
    const int64_t slab = lanes * C;
    const FL_T *X = (const FL_T *)a->logits;
    const FL_T *T = (const FL_T *)a->probs;
    FL_T *G = (FL_T *)a->grad;
    FL_T *H = (FL_T *)a->hess;
    fl_sce_lanes *L = (fl_sce_lanes *)scratch;
    FL_C *eT = (FL_C *)((char *)scratch + ((sizeof(fl_sce_lanes) + 63) & ~(size_t)63));
    FL_C *zT = eT + slab;
    FL_T *xT = (FL_T *)(zT + slab);
    FL_T *tT = xT + slab;
    FL_T *gT = tT + slab;
    FL_T *hT = gT + slab;
    const int stream = ctx->stream && G != NULL;
    double lsum = 0.0, top1 = 0.0, topk = 0.0;
    int64_t r = r0, i, k;
    while (r < r1) {
        int64_t nt = r1 - r < lanes ? r1 - r : lanes;
        const FL_T *xs, *ts = NULL;
        FL_T *gs = NULL, *hs = NULL;
        int64_t cs, gcs;
        if (inner > 1) {
            const int64_t o = r / inner, j = r - o * inner;
            const int64_t off = o * C * inner + j;
            if (nt > inner - j) nt = inner - j;      /* a tile stays within one outer index */
            cs = gcs = inner;
            xs = X + off;
            if (T) ts = T + off;
            if (G) gs = G + off;
            if (H) hs = H + off;
            if (G && stream) {
                gs = gT;           /* built here, streamed out below */
                gcs = nt;
            }
        } else {
            const FL_T *xr = X + r * C;
            for (k = 0; k < C; ++k) {
                FL_SIMD
                for (i = 0; i < nt; ++i) xT[k * nt + i] = xr[i * C + k];
            }
            if (T) {
                const FL_T *tr = T + r * C;
                for (k = 0; k < C; ++k) {
                    FL_SIMD
                    for (i = 0; i < nt; ++i) tT[k * nt + i] = tr[i * C + k];
                }
            }
            cs = gcs = nt;
            xs = xT;
            if (T) ts = tT;
            if (G) gs = gT;
            if (H) hs = hT;
        }
#define FL_SCE_TILE(c_, g_, e_)                                                           \
        FL_NAME(sce_tile)(&K, L, xs, cs, ts, cs, gs, gcs, hs, cs, eT, zT, nt, r, &lsum, &top1, \
                          &topk, c_, g_, e_)
        FL_SCE_VARIANTS(FL_SCE_TILE)
#undef FL_SCE_TILE
        if (inner > 1 && G && stream) {
            const int64_t o = r / inner, j = r - o * inner;
            for (k = 0; k < C; ++k) FL_STREAM(G + o * C * inner + j + k * inner, gT + k * nt, nt);
        }
        if (inner == 1 && G) {
            /* streamed: transposed into xT (the logits are consumed), then written out */
            FL_T *gr = stream ? xT : G + r * C;
            for (k = 0; k < C; ++k) {
                FL_SIMD
                for (i = 0; i < nt; ++i) gr[i * C + k] = gT[k * nt + i];
            }
            if (stream) FL_STREAM(G + r * C, xT, nt * C);
        }
        if (inner == 1 && H) {
            FL_T *hr = H + r * C;
            for (i = 0; i < nt; ++i)
                for (k = 0; k < C; ++k) hr[i * C + k] = hT[k * nt + i];
        }
        r += nt;
    }
    if (stream) fl_stream_fence();
    part->loss = lsum;
    part->top1 = top1;
    part->topk = topk;
}

void FL_NAME(fl_sce_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    const fl_rows_ctx *ctx = (const fl_rows_ctx *)vctx;
    const fl_softmax_ce_args *a = (const fl_softmax_ce_args *)ctx->args;
    int64_t r0 = b * ctx->rows_per_block;
    int64_t r1 = r0 + ctx->rows_per_block < ctx->n_rows ? r0 + ctx->rows_per_block : ctx->n_rows;
    fl_sce_call K;
    fl_sce_call_init(&K, ctx);
    if (fl_sce_long(a->n_classes, a->inner))
        FL_NAME(sce_long_rows)(&K, ctx, r0, r1, scratch, part);
    else
        FL_NAME(sce_tiles)(&K, ctx, r0, r1, scratch, part);
}
