/*
 * mse.h -- (weighted) squared error, elementwise.
 * A template: kernels.c includes it once per dtype (FL_T) and SIMD target.
 * l = w (x - t)^2, dl/dx = 2 w (x - t), d2l/dx2 = 2 w.
 */

void FL_NAME(fl_mse_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_elem_ctx *ctx = (const fl_elem_ctx *)vctx;
    const fl_mse_args *a = (const fl_mse_args *)ctx->args;
    const FL_T *X = (const FL_T *)a->pred;
    const FL_T *T = (const FL_T *)a->target;
    const FL_T *W = (const FL_T *)a->weight;
    FL_T *OUT = (FL_T *)a->loss;
    FL_T *G = (FL_T *)a->grad;
    FL_T *H = (FL_T *)a->hess;
    const FL_T scale2 = (FL_T)(2.0 * ctx->grad_scale);
    const int64_t L = ctx->row_len;
    FL_T ones[FL_CHUNK];
    int64_t r0, r1, c0, c1, r, i;
    double lsum = 0.0;
    for (i = 0; i < FL_CHUNK; ++i) ones[i] = (FL_T)1;
    fl_elem_block_range(ctx, b, &r0, &r1, &c0, &c1);
    for (r = r0; r < r1; ++r) {
        const int64_t base = r * L;
        int64_t cc = c0;
        while (cc < c1) {
            const FL_T *x = X + base + cc, *t = T + base + cc;
            const FL_T *w = W ? W + r * a->weight_row_stride + cc : ones;
            FL_T buf[FL_CHUNK];
            FL_T *lo = OUT ? OUT + base + cc : buf;
            int64_t n = c1 - cc < FL_CHUNK ? c1 - cc : FL_CHUNK;
            FL_SIMD
            for (i = 0; i < n; ++i) {
                FL_T d = x[i] - t[i];
                lo[i] = w[i] * d * d;
            }
            lsum += FL_NAME(lane_sum)(lo, n);
            if (H) {
                FL_T *h = H + base + cc;
                FL_SIMD
                for (i = 0; i < n; ++i) h[i] = scale2 * w[i];
            }
            if (G) {
                FL_T *g = G + base + cc;
                FL_SIMD
                for (i = 0; i < n; ++i) g[i] = scale2 * w[i] * (x[i] - t[i]);
            }
            cc += n;
        }
    }
    part->loss = lsum;
}

/* The MEAN denominator of weighted MSE: the weights summed over every element. */
void FL_NAME(fl_mse_wsum_block)(const void *vctx, int64_t b, fl_partial *part, void *scratch)
{
    (void)scratch;
    const fl_elem_ctx *ctx = (const fl_elem_ctx *)vctx;
    const fl_mse_args *a = (const fl_mse_args *)ctx->args;
    const FL_T *W = (const FL_T *)a->weight;
    int64_t r0, r1, c0, c1, r;
    double s = 0.0;
    fl_elem_block_range(ctx, b, &r0, &r1, &c0, &c1);
    for (r = r0; r < r1; ++r)
        s += FL_NAME(lane_sum)(W + r * a->weight_row_stride + c0, c1 - c0);
    part->weight = s;
}
