// The kernels, written once. kernels.c includes this file once per (scalar type, ISA) with:
//   REAL  float | double          VEC   REAL vector of 64 bytes     IVEC  same-size integer vector
//   VL    lanes of VEC            SFX   name suffix (f32_avx512 …)  ATTR  target attribute (or nothing)
//   GEMM  cblas_sgemm | cblas_dgemm                                  IS_F32 1 for float
// Each variant sees the same source and, with contraction off and explicit FMAs, computes the same bits.

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define INL static inline __attribute__((always_inline, unused)) ATTR

INL VEC FN(load)(const REAL *p) { VEC v; __builtin_memcpy(&v, p, sizeof v); return v; }
INL void FN(store)(REAL *p, VEC v) { __builtin_memcpy(p, &v, sizeof v); }
INL VEC FN(splat)(REAL s) { VEC v = s; return v; }
INL VEC FN(fma)(VEC a, VEC b, VEC c) { return __builtin_elementwise_fma(a, b, c); }
INL VEC FN(sel)(IVEC mask, VEC a, VEC b) { return (VEC)((mask & (IVEC)a) | (~mask & (IVEC)b)); }

#if IS_F32
// Cephes expf for 0 <= x <= 20 (relative error about 1 ulp), IEEE ops and FMAs only.
INL VEC FN(expv)(VEC x) {
    VEC fx = __builtin_elementwise_floor(FN(fma)(x, FN(splat)(1.44269504088896341f), FN(splat)(0.5f)));
    x = FN(fma)(fx, FN(splat)(-0.693359375f), x);
    x = FN(fma)(fx, FN(splat)(2.12194440e-4f), x);
    VEC z = x * x;
    VEC y = FN(splat)(1.9875691500E-4f);
    y = FN(fma)(y, x, FN(splat)(1.3981999507E-3f));
    y = FN(fma)(y, x, FN(splat)(8.3334519073E-3f));
    y = FN(fma)(y, x, FN(splat)(4.1665795894E-2f));
    y = FN(fma)(y, x, FN(splat)(1.6666665459E-1f));
    y = FN(fma)(y, x, FN(splat)(5.0000001201E-1f));
    y = FN(fma)(y, z, x);
    y = y + 1.0f;
    IVEC n = __builtin_convertvector(fx, IVEC);
    VEC scale = (VEC)((n + 127) << 23);
    return y * scale;
}

// Cephes tanhf: odd polynomial below 0.625, 1 - 2/(exp(2|x|)+1) above (|x| clamped at 10, where tanh
// rounds to 1). A few ulp; NaN stays NaN.
INL VEC FN(tanhv)(VEC x) {
    VEC ax = __builtin_elementwise_abs(x);
    VEC z = x * x;
    VEC p = FN(splat)(-5.70498872745E-3f);
    p = FN(fma)(p, z, FN(splat)(2.06390887954E-2f));
    p = FN(fma)(p, z, FN(splat)(-5.37397155531E-2f));
    p = FN(fma)(p, z, FN(splat)(1.33314422036E-1f));
    p = FN(fma)(p, z, FN(splat)(-3.33332819422E-1f));
    VEC small = FN(fma)(p * z, x, x);
    VEC c = FN(sel)(ax > 10.0f, FN(splat)(10.0f), ax);
    VEC e = FN(expv)(c + c);
    VEC large = 1.0f - 2.0f / (e + 1.0f);
    large = __builtin_elementwise_copysign(large, x);
    return FN(sel)(ax < 0.625f, small, large);
}
#else
// Float64 is for gradient checks: libm tanh, lane by lane.
INL VEC FN(tanhv)(VEC x) {
    VEC r;
    for (int k = 0; k < VL; k++) r[k] = tanh(x[k]);
    return r;
}
#endif

INL VEC FN(post)(VEC v, int post) {
    if (post == POST_TANH) return FN(tanhv)(v);
    if (post == POST_RELU) return FN(sel)(v > (REAL)0, v, FN(splat)(0));
    return v;
}

// act'(a) from h = act(a), times the incoming gradient g: tanh: g (1 - h^2); relu: g if h > 0 else 0.
INL VEC FN(dact)(VEC g, VEC h, int act) {
    if (act == 0) return g * ((REAL)1 - h * h);
    return FN(sel)(h > (REAL)0, g, FN(splat)(0));
}

// ---------------------------------------------------------------------------------------------------
// Two building blocks of the SIMD path. Rows of W, G and the vector operands are Np wide (Np a multiple
// of VL). A row of A is two segments: columns [0, K1) and [off2, off2 + K2), together K = K1 + K2
// logical columns; W and G have K rows in that logical order.

// out[b][:] = post(init_b + sum_{k<K} A[b][k] W[k][:])     (RB rows, VB vectors of columns from v0)
// The sum runs k = 0, 1, … as one FMA chain per output element.
INL void FN(dense_tile)(const int RB, const int VB, const REAL *A, ptrdiff_t lda, int K1, int off2, int K2,
                        const REAL *W, int Np, int v0, const REAL *init, ptrdiff_t ldi, REAL *out, ptrdiff_t ldo,
                        int post) {
    VEC acc[4][4];
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < VB; v++) acc[r][v] = FN(load)(init + r * ldi + (v0 + v) * VL);
    for (int k = 0; k < K1; k++) {
        VEC w[4];
        for (int v = 0; v < VB; v++) w[v] = FN(load)(W + (ptrdiff_t)k * Np + (v0 + v) * VL);
        for (int r = 0; r < RB; r++) {
            VEC s = FN(splat)(A[r * lda + k]);
            for (int v = 0; v < VB; v++) acc[r][v] = FN(fma)(w[v], s, acc[r][v]);
        }
    }
    for (int k = 0; k < K2; k++) {
        VEC w[4];
        for (int v = 0; v < VB; v++) w[v] = FN(load)(W + (ptrdiff_t)(K1 + k) * Np + (v0 + v) * VL);
        for (int r = 0; r < RB; r++) {
            VEC s = FN(splat)(A[r * lda + off2 + k]);
            for (int v = 0; v < VB; v++) acc[r][v] = FN(fma)(w[v], s, acc[r][v]);
        }
    }
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < VB; v++) FN(store)(out + r * ldo + (v0 + v) * VL, FN(post)(acc[r][v], post));
}

// The same for every row: ldi == 0 gives one init row (a bias) for all rows. out may alias init.
static ATTR void FN(dense)(ptrdiff_t B, const REAL *A, ptrdiff_t lda, int K1, int off2, int K2, const REAL *W,
                           int Np, const REAL *init, ptrdiff_t ldi, REAL *out, ptrdiff_t ldo, int post) {
    const int NV = Np / VL;
    ptrdiff_t b = 0;
    for (; b + 4 <= B; b += 4) {
        int v = 0;
        for (; v + 2 <= NV; v += 2)
            FN(dense_tile)(4, 2, A + b * lda, lda, K1, off2, K2, W, Np, v, init + b * ldi, ldi, out + b * ldo, ldo, post);
        if (v < NV)
            FN(dense_tile)(4, 1, A + b * lda, lda, K1, off2, K2, W, Np, v, init + b * ldi, ldi, out + b * ldo, ldo, post);
    }
    for (; b < B; b++) {
        int v = 0;
        for (; v + 4 <= NV; v += 4)
            FN(dense_tile)(1, 4, A + b * lda, lda, K1, off2, K2, W, Np, v, init + b * ldi, ldi, out + b * ldo, ldo, post);
        for (; v < NV; v++)
            FN(dense_tile)(1, 1, A + b * lda, lda, K1, off2, K2, W, Np, v, init + b * ldi, ldi, out + b * ldo, ldo, post);
    }
}

// G[k][:] += sum_b A[b][k] Dv[b][:] for JB logical columns from k0 and VB vectors from v0; b ascending.
INL void FN(outer_tile)(const int JB, const int VB, ptrdiff_t B, const REAL *A, ptrdiff_t lda, int K1, int off2,
                        int k0, const REAL *Dv, ptrdiff_t ldd, REAL *G, int Np, int v0) {
    VEC acc[4][2];
    int col[4];
    for (int j = 0; j < JB; j++) {
        int k = k0 + j;
        col[j] = k < K1 ? k : off2 + (k - K1);
        for (int v = 0; v < VB; v++) acc[j][v] = FN(load)(G + (ptrdiff_t)k * Np + (v0 + v) * VL);
    }
    for (ptrdiff_t b = 0; b < B; b++) {
        VEC d[2];
        for (int v = 0; v < VB; v++) d[v] = FN(load)(Dv + b * ldd + (v0 + v) * VL);
        for (int j = 0; j < JB; j++) {
            VEC s = FN(splat)(A[b * lda + col[j]]);
            for (int v = 0; v < VB; v++) acc[j][v] = FN(fma)(s, d[v], acc[j][v]);
        }
    }
    for (int j = 0; j < JB; j++)
        for (int v = 0; v < VB; v++) FN(store)(G + (ptrdiff_t)(k0 + j) * Np + (v0 + v) * VL, acc[j][v]);
}

static ATTR void FN(outer)(ptrdiff_t B, const REAL *A, ptrdiff_t lda, int K1, int off2, int K2, const REAL *Dv,
                           ptrdiff_t ldd, REAL *G, int Np) {
    const int NV = Np / VL, K = K1 + K2;
    int v = 0;
    for (; v + 2 <= NV; v += 2) {
        int k = 0;
        for (; k + 4 <= K; k += 4) FN(outer_tile)(4, 2, B, A, lda, K1, off2, k, Dv, ldd, G, Np, v);
        for (; k < K; k++) FN(outer_tile)(1, 2, B, A, lda, K1, off2, k, Dv, ldd, G, Np, v);
    }
    for (; v < NV; v++) {
        int k = 0;
        for (; k + 4 <= K; k += 4) FN(outer_tile)(4, 1, B, A, lda, K1, off2, k, Dv, ldd, G, Np, v);
        for (; k < K; k++) FN(outer_tile)(1, 1, B, A, lda, K1, off2, k, Dv, ldd, G, Np, v);
    }
}

// sum[:] += rows b = 0, 1, … of X (B, Np)
static ATTR void FN(colsum)(ptrdiff_t B, const REAL *X, ptrdiff_t ldx, REAL *sum, int Np) {
    for (int v = 0; v < Np / VL; v++) {
        VEC s = FN(load)(sum + v * VL);
        for (ptrdiff_t b = 0; b < B; b++) s = s + FN(load)(X + b * ldx + v * VL);
        FN(store)(sum + v * VL, s);
    }
}

// ---------------------------------------------------------------------------------------------------
// SIMD path.

/// Sum over o of (v[o] - target[o])^2, in the order of o: one window's squared error at one step.
INL REAL FN(squared_error)(const REAL *v, const REAL *target, int O) {
    REAL l = 0;
    for (int o = 0; o < O; o++) {
        REAL e = v[o] - target[o];
        l += e * e;
    }
    return l;
}

static ATTR REAL FN(simd_forward)(const ck_model *m, const REAL *P, const REAL *series, const ptrdiff_t *w,
                                  ptrdiff_t B, REAL *wsbase, REAL *y) {
    simd_ws s;
    simd_layout(m, B, wsbase, &s);
    packed_layout pk;
    packed_view(m, P, &pk);
    const int T = m->T, I = m->I, H = m->H, O = m->O, Hp = s.Hp, Op = s.Op;
    const ptrdiff_t S = s.S;
    const int post = m->act == 0 ? POST_TANH : POST_RELU;
    const int head = m->head == 0 ? POST_TANH : POST_NONE;  // the output head: tanh or linear
    const REAL perWindow = (REAL)(m->loss == 0 ? O : T * O);
    REAL lossSum = 0;
    for (ptrdiff_t b = 0; b < B; b++)  // h_{-1} = 0
        for (int j = 0; j < Hp; j++) s.st[b * S + j] = 0;
    for (int t = 0; t < T; t++) {
        REAL *st = s.st + (ptrdiff_t)t * B * S, *st1 = st + B * S;
        // d_t = [h_{t-1} (Hp) | x_t (I)]                                 (B, S)
        for (ptrdiff_t b = 0; b < B; b++) {
            const REAL *x = series + (w[b] + t) * I;
            for (int j = 0; j < I; j++) st[b * S + Hp + j] = x[j];
        }
        // h_t = act(d_t W_h^T + b_h)                                     (B, Hp)
        if (needs_hidden(m, t)) FN(dense)(B, st, S, H, Hp, I, pk.WhT, Hp, pk.bh, 0, st1, S, post);
        // y_t = head(src W_y^T + b_y), src = d_t (seed) | h_t (elman)    (B, Op)
        if (has_output(m, t)) {
            if (m->cell == 0) FN(dense)(B, st, S, H, Hp, I, pk.WyT, Op, pk.by, 0, s.yp, Op, head);
            else FN(dense)(B, st1, S, H, 0, 0, pk.WyT, Op, pk.by, 0, s.yp, Op, head);
            for (ptrdiff_t b = 0; b < B; b++) {
                REAL *yb = y + ((ptrdiff_t)t * B + b) * O;
                for (int o = 0; o < O; o++) yb[o] = s.yp[b * Op + o];
                lossSum += FN(squared_error)(yb, series + (w[b] + t + 1) * I, O) / perWindow;
            }
        }
    }
    return lossSum;
}

static ATTR void FN(simd_backward)(const ck_model *m, const REAL *P, const REAL *series, const ptrdiff_t *w,
                                   ptrdiff_t B, REAL *wsbase, const REAL *y, REAL *G) {
    simd_ws s;
    simd_layout(m, B, wsbase, &s);
    packed_layout pk;
    packed_view(m, P, &pk);
    const int T = m->T, I = m->I, H = m->H, O = m->O, Hp = s.Hp, Op = s.Op, D = H + I, F = fan_in_y(m);
    const ptrdiff_t S = s.S;
    const REAL scale = (REAL)2 / (REAL)(m->loss == 0 ? O : T * O);
    for (ptrdiff_t k = 0; k < s.gradScratch; k++) s.gWh[k] = 0;  // gWh, gbh, gWy, gby, zero, dz
    REAL *dh = s.dh, *dhp = s.dhp;  // dL/dh_t, dL/dh_{t-1}           (B, Hp)
    int have_dh = 0;
    for (int t = T - 1; t >= 0; t--) {
        const REAL *st = s.st + (ptrdiff_t)t * B * S, *st1 = st + B * S;
        int have_dhp = 0;
        if (has_output(m, t)) {
            // dz = scale (y - target) head'(z): (1 - y^2) for tanh, 1 for linear   (B, Op)
            for (ptrdiff_t b = 0; b < B; b++) {
                const REAL *target = series + (w[b] + t + 1) * I;
                for (int o = 0; o < O; o++) {
                    REAL v = y[((ptrdiff_t)t * B + b) * O + o];
                    s.dz[b * Op + o] = m->head == 0 ? scale * (v - target[o]) * (1 - v * v) : scale * (v - target[o]);
                }
            }
            FN(colsum)(B, s.dz, Op, s.gby, Op);
            if (m->cell == 0) {
                // dW_y += dz^T d_t  (O, S) ; dh_{t-1} = dz W_y[:, :H]
                FN(outer)(B, s.dz, Op, O, 0, 0, st, S, s.gWy, S);
                FN(dense)(B, s.dz, Op, O, 0, 0, pk.WyN, Hp, s.zero, 0, dhp, Hp, POST_NONE);
                have_dhp = 1;
            } else {
                // dW_y += dz^T h_t  (O, Hp) ; dh_t += dz W_y
                FN(outer)(B, s.dz, Op, O, 0, 0, st1, S, s.gWy, Hp);
                FN(dense)(B, s.dz, Op, O, 0, 0, pk.WyN, Hp, have_dh ? dh : s.zero, have_dh ? Hp : 0, dh, Hp, POST_NONE);
                have_dh = 1;
            }
        }
        if (needs_hidden(m, t) && have_dh) {
            // da = dh * act'(h_t)                                        (B, Hp)
            for (ptrdiff_t b = 0; b < B; b++)
                for (int v = 0; v < Hp / VL; v++)
                    FN(store)(s.da + b * Hp + v * VL,
                              FN(dact)(FN(load)(dh + b * Hp + v * VL), FN(load)(st1 + b * S + v * VL), m->act));
            FN(colsum)(B, s.da, Hp, s.gbh, Hp);
            // dW_h += da^T d_t  (H, S) ; dh_{t-1} += da W_h[:, :H]
            FN(outer)(B, s.da, Hp, H, 0, 0, st, S, s.gWh, S);
            if (t > 0) {
                FN(dense)(B, s.da, Hp, H, 0, 0, pk.WhN, Hp, have_dhp ? dhp : s.zero, have_dhp ? Hp : 0, dhp, Hp, POST_NONE);
                have_dhp = 1;
            }
        }
        REAL *tmp = dh; dh = dhp; dhp = tmp;
        have_dh = have_dhp;
    }
    // add the scratch into the gradient block: columns [0, H) of a row of d are h, [Hp, Hp + I) are x
    ptrdiff_t po[CK_NUM_PARAMS];
    param_layout(m, po);
    REAL *gWh = G + po[CK_PARAM_WH], *gbh = G + po[CK_PARAM_BH], *gWy = G + po[CK_PARAM_WY], *gby = G + po[CK_PARAM_BY];
    for (int i = 0; i < H; i++) {
        const REAL *src = s.gWh + (ptrdiff_t)i * S;
        REAL *dst = gWh + (ptrdiff_t)i * D;
        for (int j = 0; j < H; j++) dst[j] += src[j];
        for (int j = 0; j < I; j++) dst[H + j] += src[Hp + j];
    }
    for (int i = 0; i < H; i++) gbh[i] += s.gbh[i];
    const ptrdiff_t Sy = m->cell == 0 ? S : Hp;
    for (int o = 0; o < O; o++) {
        const REAL *src = s.gWy + (ptrdiff_t)o * Sy;
        REAL *dst = gWy + (ptrdiff_t)o * F;
        for (int j = 0; j < H; j++) dst[j] += src[j];
        for (int j = 0; j < F - H; j++) dst[H + j] += src[Hp + j];
    }
    for (int o = 0; o < O; o++) gby[o] += s.gby[o];
}

// ---------------------------------------------------------------------------------------------------
// BLAS path: the PyTorch layout as is, GEMMs from OpenBLAS, elementwise work here.

// row[k] = post(row[k] + bias[k]) for k < n (whole vectors, then the tail through a padded copy)
static ATTR void FN(bias_act)(REAL *row, const REAL *bias, int n, int post) {
    int k = 0;
    for (; k + VL <= n; k += VL) FN(store)(row + k, FN(post)(FN(load)(row + k) + FN(load)(bias + k), post));
    if (k < n) {
        REAL a[VL], c[VL];
        for (int j = 0; j < VL; j++) { a[j] = k + j < n ? row[k + j] : 0; c[j] = k + j < n ? bias[k + j] : 0; }
        VEC v = FN(post)(FN(load)(a) + FN(load)(c), post);
        FN(store)(a, v);
        for (int j = 0; k + j < n; j++) row[k + j] = a[j];
    }
}

static ATTR REAL FN(blas_forward)(const ck_model *m, const REAL *P, const REAL *series, const ptrdiff_t *w,
                                  ptrdiff_t B, REAL *wsbase, REAL *y) {
    blas_ws s;
    blas_layout(m, B, wsbase, &s);
    const int T = m->T, I = m->I, H = m->H, O = m->O, D = H + I, F = fan_in_y(m);
    ptrdiff_t po[CK_NUM_PARAMS];
    param_layout(m, po);
    const REAL *Wh = P + po[CK_PARAM_WH], *bh = P + po[CK_PARAM_BH], *Wy = P + po[CK_PARAM_WY], *by = P + po[CK_PARAM_BY];
    const int post = m->act == 0 ? POST_TANH : POST_RELU;
    const int head = m->head == 0 ? POST_TANH : POST_NONE;  // the output head: tanh or linear
    const REAL perWindow = (REAL)(m->loss == 0 ? O : T * O);
    REAL lossSum = 0;
    for (ptrdiff_t b = 0; b < B; b++)
        for (int j = 0; j < H; j++) s.st[b * D + j] = 0;
    for (int t = 0; t < T; t++) {
        REAL *st = s.st + (ptrdiff_t)t * B * D, *st1 = st + B * D;  // d_t (B, D); h_t = st1[:, :H]
        for (ptrdiff_t b = 0; b < B; b++) {
            const REAL *x = series + (w[b] + t) * I;
            for (int j = 0; j < I; j++) st[b * D + H + j] = x[j];
        }
        if (needs_hidden(m, t)) {
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, H, D, 1, st, D, Wh, D, 0, st1, D);
            for (ptrdiff_t b = 0; b < B; b++) FN(bias_act)(st1 + b * D, bh, H, post);
        }
        if (has_output(m, t)) {
            const REAL *src = m->cell == 0 ? st : st1;
            REAL *yt = y + (ptrdiff_t)t * B * O;
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, O, F, 1, src, D, Wy, F, 0, yt, O);
            for (ptrdiff_t b = 0; b < B; b++) {
                FN(bias_act)(yt + b * O, by, O, head);
                lossSum += FN(squared_error)(yt + b * O, series + (w[b] + t + 1) * I, O) / perWindow;
            }
        }
    }
    return lossSum;
}

static ATTR void FN(blas_backward)(const ck_model *m, const REAL *P, const REAL *series, const ptrdiff_t *w,
                                   ptrdiff_t B, REAL *wsbase, const REAL *y, REAL *G) {
    blas_ws s;
    blas_layout(m, B, wsbase, &s);
    const int T = m->T, I = m->I, H = m->H, O = m->O, D = H + I, F = fan_in_y(m);
    ptrdiff_t po[CK_NUM_PARAMS];
    param_layout(m, po);
    const REAL *Wh = P + po[CK_PARAM_WH], *Wy = P + po[CK_PARAM_WY];
    REAL *gWh = G + po[CK_PARAM_WH], *gbh = G + po[CK_PARAM_BH], *gWy = G + po[CK_PARAM_WY], *gby = G + po[CK_PARAM_BY];
    const REAL scale = (REAL)2 / (REAL)(m->loss == 0 ? O : T * O);
    REAL *dh = s.dh, *dhp = s.dhp;  // (B, H)
    int have_dh = 0, tlo = T, thi = -1;  // rows of da filled: steps [tlo, thi]
    for (int t = T - 1; t >= 0; t--) {
        const REAL *st = s.st + (ptrdiff_t)t * B * D, *st1 = st + B * D;
        int have_dhp = 0;
        if (has_output(m, t)) {
            for (ptrdiff_t b = 0; b < B; b++) {
                const REAL *target = series + (w[b] + t + 1) * I;
                for (int o = 0; o < O; o++) {
                    REAL v = y[((ptrdiff_t)t * B + b) * O + o];
                    s.dz[b * O + o] = m->head == 0 ? scale * (v - target[o]) * (1 - v * v) : scale * (v - target[o]);
                }
            }
            for (ptrdiff_t b = 0; b < B; b++)
                for (int o = 0; o < O; o++) gby[o] += s.dz[b * O + o];
            const REAL *src = m->cell == 0 ? st : st1;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, O, F, (int)B, 1, s.dz, O, src, D, 1, gWy, F);
            if (m->cell == 0) {
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, H, O, 1, s.dz, O, Wy, F, 0, dhp, H);
                have_dhp = 1;
            } else {
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, H, O, 1, s.dz, O, Wy, F, have_dh ? 1 : 0, dh, H);
                have_dh = 1;
            }
        }
        if (needs_hidden(m, t) && have_dh) {
            REAL *da = s.da + (ptrdiff_t)t * B * H;  // (B, H), kept for the one dW_h GEMM below
            for (ptrdiff_t b = 0; b < B; b++) {
                const REAL *h = st1 + b * D;
                for (int i = 0; i < H; i++) {
                    REAL g = dh[b * H + i], hv = h[i];
                    da[b * H + i] = m->act == 0 ? g * (1 - hv * hv) : (hv > 0 ? g : 0);
                }
            }
            for (ptrdiff_t b = 0; b < B; b++)
                for (int i = 0; i < H; i++) gbh[i] += da[b * H + i];
            if (t < tlo) tlo = t;
            if (t > thi) thi = t;
            if (t > 0) {
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, H, H, 1, da, H, Wh, D, have_dhp ? 1 : 0, dhp, H);
                have_dhp = 1;
            }
        }
        REAL *tmp = dh; dh = dhp; dhp = tmp;
        have_dh = have_dhp;
    }
    // dW_h += da_all^T d_all: one GEMM over every (t, b) row with a hidden state, K = steps * B
    if (thi >= tlo)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, H, D, (int)((thi - tlo + 1) * B), 1,
             s.da + (ptrdiff_t)tlo * B * H, H, s.st + (ptrdiff_t)tlo * B * D, D, 1, gWh, D);
}

// ---------------------------------------------------------------------------------------------------
// Adam, elementwise (so any vector width gives the same bits), with PyTorch's order of operations:
// m += (1-b1)(g - m); v = v b2 + ((1-b2) g) g; p -= step (m / (sqrt(v)/bc2 + eps))
static ATTR void FN(adam)(ptrdiff_t n, REAL *restrict p, const REAL *restrict g, REAL *restrict m, REAL *restrict v,
                          REAL c1, REAL b2, REAL c2, REAL step, REAL bc2, REAL eps) {
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL gi = g[i];
        REAL mi = m[i] + c1 * (gi - m[i]);
        REAL vi = v[i] * b2 + c2 * gi * gi;
        REAL denom = __builtin_elementwise_sqrt(vi) / bc2 + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - step * (mi / denom);
    }
}

// sum of x^2 in double: 8 interleaved lanes (lane k takes i = k mod 8), combined pairwise, then the tail
static ATTR double FN(sumsq)(const REAL *x, ptrdiff_t n) {
    typedef double v8d __attribute__((ext_vector_type(8)));
    v8d acc = 0;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8d d;
        for (int k = 0; k < 8; k++) d[k] = (double)x[i + k];
        acc = acc + d * d;
    }
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) {
        double d = (double)x[i];
        s += d * d;
    }
    return s;
}

#undef FN
#undef INL
