/*
 * hinge.h -- hinge losses over (outer, C, inner) scores, one row at a time.
 * A template: kernels.c includes it once per dtype (FL_T) and SIMD target.
 *
 * h(v) = max(0, v) (or its square), h'(v) = [v > 0] (or 2 v [v > 0]): at a
 * kink the subgradient is 0, torch's convention.  NaN propagates: h(NaN) and
 * h'(NaN) are NaN.
 *   ovr:             l = sum_c w_c h(margin - t_c x_c), t_c = +-1
 *   weston_watkins:  l = w_y / C sum_{c != y} h(margin - x_y + x_c)
 *   crammer_singer:  l = w_y h(margin + x_j - x_y), j the first argmax over c != y
 * Rows are multiplied by the sample weight s_i; the gradient by s_i * scale.
 */

/* h and h' in the input precision; NaN propagates through both. */
FL_INLINE FL_T FL_NAME(hinge_h)(FL_T v, int squared)
{
    FL_T hv = v > 0 ? v : (FL_T)0;
    hv = squared ? hv * hv : hv;
    return v != v ? v : hv;
}

/* h'(v) without the factor 2 of the squared hinge (max(0, v) there), which the
 * callers fold into their scale: 2 * v would overflow near the largest finite
 * value before the scale (1/C, 1/N, the weights) brings it back.  Doubling is
 * exact, so the product is the same bits as scale * (2 v) wherever that is finite. */
FL_INLINE FL_T FL_NAME(hinge_dh_half)(FL_T v, int squared)
{
    FL_T d = v > 0 ? (squared ? v : (FL_T)1) : (FL_T)0;
    return v != v ? v : d;
}

/* h'(v) in double, for sums of h' (2 v is exact there, and in range). */
FL_INLINE double FL_NAME(hinge_dh_d)(FL_T v, int squared)
{
    double d = v > 0 ? (squared ? 2.0 * (double)v : 1.0) : 0.0;
    return v != v ? (double)v : d;
}

/* The four loops of ovr and weston_watkins are written once each with the
 * options as loop-invariant selects (no conditional loads), so they
 * vectorise; `sq` is a compile-time constant at each call below. */
FL_INLINE double FL_NAME(hinge_ovr_sum)(const FL_T *x, const FL_T *t, const double *w, int64_t C,
                                        int64_t st, int64_t y, FL_T mg, int sq)
{
    double loss = 0.0;
    int64_t c;
    if (w) {
        FL_SIMD_SUM(loss)
        for (c = 0; c < C; ++c) {
            FL_T tc = t ? t[c * st] : (c == y ? (FL_T)1 : (FL_T)-1);
            loss += w[c] * (double)FL_NAME(hinge_h)(mg - tc * x[c * st], sq);
        }
    } else {
        FL_SIMD_SUM(loss)
        for (c = 0; c < C; ++c) {
            FL_T tc = t ? t[c * st] : (c == y ? (FL_T)1 : (FL_T)-1);
            loss += (double)FL_NAME(hinge_h)(mg - tc * x[c * st], sq);
        }
    }
    return loss;
}

FL_INLINE void FL_NAME(hinge_ovr_grad)(const FL_T *x, const FL_T *t, const double *w, FL_T *g,
                                       int64_t C, int64_t st, int64_t y, FL_T mg, int sq,
                                       double kg)
{
    int64_t c;
    const double kg2 = sq ? 2.0 * kg : kg;     /* the 2 of h' = 2 v, see hinge_dh_half */
    const FL_T k = (FL_T)kg2;
    if (w) {
        FL_SIMD
        for (c = 0; c < C; ++c) {
            FL_T tc = t ? t[c * st] : (c == y ? (FL_T)1 : (FL_T)-1);
            g[c * st] = (FL_T)(-kg2 * w[c]) * tc * FL_NAME(hinge_dh_half)(mg - tc * x[c * st], sq);
        }
    } else {
        FL_SIMD
        for (c = 0; c < C; ++c) {
            FL_T tc = t ? t[c * st] : (c == y ? (FL_T)1 : (FL_T)-1);
            g[c * st] = -k * tc * FL_NAME(hinge_dh_half)(mg - tc * x[c * st], sq);
        }
    }
}

FL_INLINE FL_T FL_NAME(hinge_ww_v)(const FL_T *x, int64_t c, int64_t st, int64_t y, FL_T base)
{
    FL_T v = base + x[c * st];
    return c == y ? (FL_T)-INFINITY : v;
}

FL_INLINE double FL_NAME(hinge_row)(const fl_rows_ctx *ctx, const FL_T *x, const FL_T *t, FL_T *g,
                                    int64_t st, int64_t r, int64_t y, double *top1,
                                    double *topk)
{
    const fl_hinge_args *a = (const fl_hinge_args *)ctx->args;
    const double *w = a->class_weight;
    const int64_t C = a->n_classes;
    const double margin = a->margin;
    const int sq = a->squared;
    const double sw = a->sample_weight ? a->sample_weight[r] : 1.0;
    const double kg = ctx->grad_scale * sw;
    const FL_T mg = (FL_T)margin;
    double loss = 0.0;
    int64_t c;

    if (a->argmax_out) {
        /* the prediction, before any gradient store (out may be the scores): the first
         * index of the maximum, a NaN counting as the maximum (numpy.argmax) */
        FL_T bv = x[0];
        int64_t best = 0;
        for (c = 1; c < C; ++c) {
            FL_T v = x[c * st];
            if (v > bv || (v != v && bv == bv)) { bv = v; best = c; }
        }
        a->argmax_out[r] = best;
    }
    if (a->labels && a->top_k > 0)       /* accuracy in the same pass over the row */
        FL_NAME(sce_topk)(x, C, st, x[y * st], a->top_k, top1, topk);   /* softmax_ce.h */

    /* The sums run in loops of their own, without the gradient stores, so that
     * the value and the value-and-gradient forms reduce in the same order. */
    if (a->mode == FL_HINGE_OVR) {
        loss = sq ? FL_NAME(hinge_ovr_sum)(x, t, w, C, st, y, mg, 1)
                  : FL_NAME(hinge_ovr_sum)(x, t, w, C, st, y, mg, 0);
        if (g) {
            if (sq) FL_NAME(hinge_ovr_grad)(x, t, w, g, C, st, y, mg, 1, kg);
            else FL_NAME(hinge_ovr_grad)(x, t, w, g, C, st, y, mg, 0, kg);
        }
    } else if (a->mode == FL_HINGE_WESTON_WATKINS) {
        /* g_y = -sum_{c != y} g_c, taken as one product of the summed h' (an
         * exact count for the plain hinge) rather than a sum of C products. */
        const FL_T xy = x[y * st];
        const FL_T base = mg - xy;
        const double kc = kg * (w ? w[y] : 1.0) / (double)C;
        double dsum = 0.0;
        if (sq) {
            FL_SIMD_SUM(loss, dsum)
            for (c = 0; c < C; ++c) {
                FL_T v = FL_NAME(hinge_ww_v)(x, c, st, y, base);
                loss += (double)FL_NAME(hinge_h)(v, 1);
                dsum += FL_NAME(hinge_dh_d)(v, 1);
            }
        } else {
            FL_SIMD_SUM(loss, dsum)
            for (c = 0; c < C; ++c) {
                FL_T v = FL_NAME(hinge_ww_v)(x, c, st, y, base);
                loss += (double)FL_NAME(hinge_h)(v, 0);
                dsum += FL_NAME(hinge_dh_d)(v, 0);
            }
        }
        loss *= (w ? w[y] : 1.0) / (double)C;
        if (g) {
            /* the squared hinge's factor 2 goes into the scale (see hinge_dh_half) */
            const FL_T k = (FL_T)(sq ? 2.0 * kc : kc);
            if (sq) {
                FL_SIMD
                for (c = 0; c < C; ++c) g[c * st] = k * FL_NAME(hinge_dh_half)(FL_NAME(hinge_ww_v)(x, c, st, y, base), 1);
            } else {
                FL_SIMD
                for (c = 0; c < C; ++c) g[c * st] = k * FL_NAME(hinge_dh_half)(FL_NAME(hinge_ww_v)(x, c, st, y, base), 0);
            }
            g[y * st] = (FL_T)(xy != xy ? (double)xy : -kc * dsum);
        }
    } else {
        const double xy = (double)x[y * st];
        const double wy = w ? w[y] : 1.0;
        double mx = -INFINITY;
        int64_t j = -1;
        int nan = xy != xy;
        for (c = 0; c < C; ++c) {
            double v = (double)x[c * st];
            nan |= v != v;
            if (c != y && (j < 0 || v > mx)) { mx = v; j = c; }
        }
        double v = nan ? NAN : (j < 0 ? -INFINITY : margin + mx - xy);
        loss = wy * (double)FL_NAME(hinge_h)((FL_T)v, sq);
        if (g) {
            /* 2 v in double: in FL_T it overflows before the scale (hinge_dh_half) */
            double d = kg * wy * ((sq ? 2.0 : 1.0) * (double)FL_NAME(hinge_dh_half)((FL_T)v, sq));
            for (c = 0; c < C; ++c) g[c * st] = (FL_T)(nan ? NAN : 0.0);
            if (j >= 0 && !nan) {
                g[j * st] = (FL_T)d;
                g[y * st] = (FL_T)-d;
            }
        }
    }
    return sw * loss;
}

void FL_NAME(fl_hinge_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_rows_ctx *ctx = (const fl_rows_ctx *)vctx;
    const fl_hinge_args *a = (const fl_hinge_args *)ctx->args;
    const int64_t C = a->n_classes, inner = a->inner;
    const FL_T *X = (const FL_T *)a->scores;
    const FL_T *T = (const FL_T *)a->target;
    FL_T *G = (FL_T *)a->grad;
    FL_T *RL = (FL_T *)a->row_loss;
    int64_t r0 = b * ctx->rows_per_block;
    int64_t r1 = r0 + ctx->rows_per_block < ctx->n_rows ? r0 + ctx->rows_per_block : ctx->n_rows;
    double lsum = 0.0, top1 = 0.0, topk = 0.0;
    int64_t r;
    for (r = r0; r < r1; ++r) {
        int64_t o = r / inner, j = r - o * inner;
        int64_t off = o * C * inner + j;
        int64_t y = a->labels ? a->labels[r] : -1;
        double l;
        if (inner == 1)
            l = FL_NAME(hinge_row)(ctx, X + off, T ? T + off : NULL, G ? G + off : NULL, 1, r, y,
                                   &top1, &topk);
        else
            l = FL_NAME(hinge_row)(ctx, X + off, T ? T + off : NULL, G ? G + off : NULL, inner, r,
                                   y, &top1, &topk);
        if (RL) RL[r] = (FL_T)l;
        lsum += l;
    }
    part->loss = lsum;
    part->top1 = top1;
    part->topk = topk;
}
