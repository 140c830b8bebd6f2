// Dispatch, buffer layouts and the per-(type, ISA) instantiations of kernels_impl.h.
//
// Bit-equality of the ISA variants. Every output element of the SIMD path is one sequential chain:
// h_t[b][i] = fma(...fma(fma(W[0][i], d[b][0], b_h[i]), ...)) in the column order of d = [h, x]; gradients
// add per (t descending, b ascending). Vectors only run independent chains side by side, so the vector
// width cannot change a bit; FMAs are explicit (__builtin_elementwise_fma: one rounding on every ISA,
// a libm call where the CPU has no FMA), contraction of a*b+c is off for the whole file (the pragma
// below), nothing is reassociated (no -ffast-math), and tanh/exp are the same FMA polynomials on every
// ISA. Tests/RNNTests/KernelTests.swift checks it by running each variant this CPU has on the same data.
#pragma clang fp contract(off)
// The 64-byte vector helpers are static and always inlined, so no vector crosses a call boundary.
#pragma clang diagnostic ignored "-Wpsabi"

#include "ckernels.h"
#include <cblas.h>
#undef I  // complex.h (from cblas.h) defines I; here it is the input size
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

// ------------------------------------------------------------------ OpenBLAS, loaded on first use
// Only big shapes take the BLAS path (see ck_path_for), so OpenBLAS is dlopen'ed the first time one does:
// a process training a small model never maps it (about 3 MB of resident memory and a thread saved).
// cblas.h gives the types; the two GEMMs come from the library. OpenBLAS (pthreads build) starts worker
// threads when loaded, which spin on sched_yield for a while; we never use them (one BLAS thread per
// caller: we parallelize across micro-batches), so they are stopped at once when the library has
// blas_thread_shutdown_. Without libopenblas.so.0 every shape takes the SIMD path.
typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE, const blasint,
                         const blasint, const blasint, const float, const float *, const blasint, const float *,
                         const blasint, const float, float *, const blasint);
typedef void (*dgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE, const blasint,
                         const blasint, const blasint, const double, const double *, const blasint, const double *,
                         const blasint, const double, double *, const blasint);
static sgemm_fn blas_sgemm;
static dgemm_fn blas_dgemm;
static char *(*blas_get_config)(void);
static char *(*blas_get_corename)(void);
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_load(void) {
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *lib = NULL;
    for (unsigned i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    void (*set_threads)(int) = (void (*)(int))dlsym(lib, "openblas_set_num_threads");
    void (*shutdown)(void) = (void (*)(void))dlsym(lib, "blas_thread_shutdown_");
    if (set_threads) set_threads(1);
    if (shutdown) shutdown();
    sgemm_fn s = (sgemm_fn)dlsym(lib, "cblas_sgemm");
    dgemm_fn d = (dgemm_fn)dlsym(lib, "cblas_dgemm");
    blas_get_config = (char *(*)(void))dlsym(lib, "openblas_get_config");
    blas_get_corename = (char *(*)(void))dlsym(lib, "openblas_get_corename");
    if (s && d) { blas_sgemm = s; blas_dgemm = d; }
}

const char *ck_blas_config(void) {
    return ck_blas_available() && blas_get_config ? blas_get_config() : "";
}

const char *ck_blas_corename(void) {
    return ck_blas_available() && blas_get_corename ? blas_get_corename() : "";
}

int ck_blas_available(void) {
    pthread_once(&blas_once, blas_load);
    return blas_sgemm != NULL;
}

void ck_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    blas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
               A, lda, B, ldb, beta, C, ldc);
}

#define cblas_sgemm_lazy(...) blas_sgemm(__VA_ARGS__)
#define cblas_dgemm_lazy(...) blas_dgemm(__VA_ARGS__)

enum { POST_NONE = 0, POST_TANH = 1, POST_RELU = 2 };

static inline int pad16(int n) { return (n + 15) & ~15; }
static inline ptrdiff_t r16(ptrdiff_t n) { return (n + 15) & ~(ptrdiff_t)15; }
static inline int has_output(const ck_model *m, int t) { return m->loss == 1 || t == m->T - 1; }
static inline int needs_hidden(const ck_model *m, int t) { return m->cell == 1 || t < m->T - 1; }

// ------------------------------------------------------------------ the parameter block
// The one table of the flat parameter layout (see ckernels.h); every kernel takes its views from it.
static inline int fan_in_y(const ck_model *m) { return m->cell == 0 ? m->H + m->I : m->H; }

static inline ptrdiff_t param_layout(const ck_model *m, ptrdiff_t off[CK_NUM_PARAMS]) {
    ptrdiff_t size[CK_NUM_PARAMS];
    size[CK_PARAM_WH] = (ptrdiff_t)m->H * (m->H + m->I);
    size[CK_PARAM_BH] = m->H;
    size[CK_PARAM_WY] = (ptrdiff_t)m->O * fan_in_y(m);
    size[CK_PARAM_BY] = m->O;
    ptrdiff_t n = 0;
    for (int k = 0; k < CK_NUM_PARAMS; k++) { off[k] = n; n += size[k]; }
    return n;
}

ptrdiff_t ck_parameter_layout(const ck_model *m, ptrdiff_t sizes[CK_NUM_PARAMS], ptrdiff_t offsets[CK_NUM_PARAMS]) {
    ptrdiff_t off[CK_NUM_PARAMS];
    ptrdiff_t n = param_layout(m, off);
    for (int k = 0; k < CK_NUM_PARAMS; k++) {
        if (offsets) offsets[k] = off[k];
        if (sizes) sizes[k] = (k + 1 < CK_NUM_PARAMS ? off[k + 1] : n) - off[k];
    }
    return n;
}

// ------------------------------------------------------------------ packed weights (SIMD path)
// WhT (D, Hp)  W_h transposed: row j holds column j of W_h, zero-padded to Hp
// WhN (H, Hp)  W_h[:, :H] as is, rows zero-padded to Hp (the h-part of dL/dd = da W_h)
// bh  (Hp)     WyT (F, Op)   WyN (O, Hp)   by (Op)
static ptrdiff_t packed_offsets(const ck_model *m, ptrdiff_t off[6]) {
    int H = m->H, D = m->H + m->I, F = fan_in_y(m), Hp = pad16(H), Op = pad16(m->O);
    ptrdiff_t n = 0;
    off[0] = n; n += r16((ptrdiff_t)D * Hp);
    off[1] = n; n += r16((ptrdiff_t)H * Hp);
    off[2] = n; n += Hp;
    off[3] = n; n += r16((ptrdiff_t)F * Op);
    off[4] = n; n += r16((ptrdiff_t)m->O * Hp);
    off[5] = n; n += Op;
    return n;
}

size_t ck_packed_count(const ck_model *m) {
    ptrdiff_t off[6];
    return (size_t)packed_offsets(m, off);
}

#define DEFINE_PACK(REAL, NAME)                                                                        \
    void NAME(const ck_model *m, const REAL *params, REAL *packed) {                                  \
        ptrdiff_t off[6];                                                                              \
        ptrdiff_t n = packed_offsets(m, off);                                                          \
        memset(packed, 0, (size_t)n * sizeof(REAL));                                                   \
        int H = m->H, O = m->O, D = H + m->I, F = fan_in_y(m), Hp = pad16(H), Op = pad16(O);            \
        ptrdiff_t po[CK_NUM_PARAMS];                                                                   \
        param_layout(m, po);                                                                           \
        const REAL *Wh = params + po[CK_PARAM_WH], *bh = params + po[CK_PARAM_BH];                     \
        const REAL *Wy = params + po[CK_PARAM_WY], *by = params + po[CK_PARAM_BY];                     \
        REAL *WhT = packed + off[0], *WhN = packed + off[1], *pbh = packed + off[2];                   \
        REAL *WyT = packed + off[3], *WyN = packed + off[4], *pby = packed + off[5];                   \
        for (int i0 = 0; i0 < H; i0 += 16)  /* transpose in 16 x 16 blocks */                        \
            for (int j0 = 0; j0 < D; j0 += 16)                                                         \
                for (int i = i0; i < H && i < i0 + 16; i++)                                            \
                    for (int j = j0; j < D && j < j0 + 16; j++)                                        \
                        WhT[(ptrdiff_t)j * Hp + i] = Wh[(ptrdiff_t)i * D + j];                         \
        for (int i = 0; i < H; i++) memcpy(WhN + (ptrdiff_t)i * Hp, Wh + (ptrdiff_t)i * D, (size_t)H * sizeof(REAL)); \
        for (int i = 0; i < H; i++) pbh[i] = bh[i];                                                    \
        for (int o = 0; o < O; o++)                                                                    \
            for (int j = 0; j < F; j++) {                                                              \
                REAL v = Wy[(ptrdiff_t)o * F + j];                                                     \
                WyT[(ptrdiff_t)j * Op + o] = v;                                                        \
                if (j < H) WyN[(ptrdiff_t)o * Hp + j] = v;                                             \
            }                                                                                          \
        for (int o = 0; o < O; o++) pby[o] = by[o];                                                    \
    }
DEFINE_PACK(float, ck_pack_f32)
DEFINE_PACK(double, ck_pack_f64)

// ------------------------------------------------------------------ scratch layouts
// Counts are in scalars; every view starts at a multiple of 16 scalars (64-byte aligned for float when
// the base is). Both views are computed from the batch actually run.

// SIMD path:
// st  (T+1, B, S)  row t = d_t = [h_{t-1} (Hp) | x_t (I) | pad], S = Hp + pad16(I); h_t = st[t+1][:, :Hp]
// yp (B, Op)  dh, dhp, da (B, Hp)  then, zeroed by each backward: gWh (H, S) and gWy (O, S) in the
// column order of st rows, gbh (Hp), gby (Op), zero (max(Hp, Op)), dz (B, Op)
static ptrdiff_t simd_offsets(const ck_model *m, ptrdiff_t B, ptrdiff_t off[11], int *Hp_, int *Op_, ptrdiff_t *S_,
                              ptrdiff_t *grad_) {
    int H = m->H, Hp = pad16(H), Op = pad16(m->O);
    ptrdiff_t S = Hp + pad16(m->I), n = 0;
    off[0] = n; n += r16((m->T + 1) * B * S);
    off[1] = n; n += r16(B * Op);
    off[2] = n; n += r16(B * Hp);
    off[3] = n; n += r16(B * Hp);
    off[4] = n; n += r16(B * Hp);
    ptrdiff_t g0 = n;
    off[5] = n; n += r16((ptrdiff_t)H * S);
    off[6] = n; n += Hp;
    off[7] = n; n += r16((ptrdiff_t)m->O * S);
    off[8] = n; n += Op;
    off[9] = n; n += Hp > Op ? Hp : Op;
    off[10] = n; n += r16(B * Op);
    *Hp_ = Hp; *Op_ = Op; *S_ = S; *grad_ = n - g0;
    return n;
}

// BLAS path: st (T+1, B, D) as above with D = H + I (h_t = st[t+1][:, :H]); da (T, B, H); dh, dhp (B, H); dz (B, O)
static ptrdiff_t blas_offsets(const ck_model *m, ptrdiff_t B, ptrdiff_t off[5]) {
    int H = m->H, D = H + m->I;
    ptrdiff_t n = 0;
    off[0] = n; n += r16((m->T + 1) * B * D);
    off[1] = n; n += r16(m->T * B * H);
    off[2] = n; n += r16(B * H);
    off[3] = n; n += r16(B * H);
    off[4] = n; n += r16(B * m->O);
    return n;
}

size_t ck_workspace_count(const ck_model *m, ptrdiff_t B) {
    ptrdiff_t a[11], b[5], S, g;
    int Hp, Op;
    ptrdiff_t x = simd_offsets(m, B, a, &Hp, &Op, &S, &g), y = blas_offsets(m, B, b);
    return (size_t)(x > y ? x : y);
}

// ------------------------------------------------------------------ the static rule
// Microseconds per leaf (forward + backward, weights packed once per step as GradientEngine does), seed
// cell, T = 4, I = O = 2, one core of this machine (AMD EPYC, AVX-512 variant; OpenBLAS 0.3.21 single
// thread), best of 5, SIMD / BLAS:
//
//   H \ B      8            32             128             498               996
//   16      1.1 / 1.7     3.7 / 4.8     14.3 / 17.6      56.5 / 66.1      113 / 133
//   32      2.5 / 3.1     8.8 / 10.9    34.1 / 35.8       135 / 154       273 / 326
//   64      7.6 / 8.1    25.9 / 28.7     102 / 114        396 / 444       797 / 909
//   128    24.0 / 23.9   88.2 / 102      343 / 388       1359 / 1489     2762 / 2987
//   256    91.5 / 124     330 / 395     1282 / 1412      5040 / 5389    10390 / 11094
//   512     362 / 575       -           5147 / 5574  (256: 11007 / 11026)  45206 / 42864
//   1024   2257 / 2762   9498 / 6690   31860 / 22195         -          231570 / 167010
//
// The SIMD kernel keeps whole weight matrices in L1/L2 and pays no packing or call overhead, so it wins up
// to H = 256 at every batch; past that its unblocked sweeps over W fall out of L2 and OpenBLAS's cache
// blocking wins once the GEMMs are big. Rule: BLAS for H >= 1024 with B >= 32, or H >= 512 with B >= 512.
// It reads the shape only, so every process picks the same kernel for a leaf of a given size.
// Without OpenBLAS on the machine, the SIMD path serves every shape (the numerics fingerprint then tells
// the coordinator that such a worker's bits differ for these big shapes).
int ck_path_for(const ck_model *m, ptrdiff_t batch) {
    if (((m->H >= 1024 && batch >= 32) || (m->H >= 512 && batch >= 512)) && ck_blas_available()) return CK_PATH_BLAS;
    return CK_PATH_SIMD;
}

// ------------------------------------------------------------------ ISA
int ck_isa_supported(int isa) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    switch (isa) {
    case CK_ISA_BASE: return 1;
    case CK_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CK_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return 0;
    }
#else
    return isa == CK_ISA_BASE;
#endif
}

int ck_isa_best(void) {
    static int best = -1;
    int b = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (b < 0) {
        b = ck_isa_supported(CK_ISA_AVX512) ? CK_ISA_AVX512 : ck_isa_supported(CK_ISA_AVX2) ? CK_ISA_AVX2 : CK_ISA_BASE;
        __atomic_store_n(&best, b, __ATOMIC_RELAXED);
    }
    return b;
}

// ------------------------------------------------------------------ instantiations
typedef float vf32 __attribute__((ext_vector_type(16)));
typedef int vi32 __attribute__((ext_vector_type(16)));
typedef double vf64 __attribute__((ext_vector_type(8)));
typedef long vi64 __attribute__((ext_vector_type(8)));

#define VIEWS(REAL)                                                                                   \
    typedef struct {                                                                                  \
        const REAL *WhT, *WhN, *bh, *WyT, *WyN, *by;                                                  \
    } packed_layout;                                                                                  \
    typedef struct {                                                                                  \
        int Hp, Op;                                                                                   \
        ptrdiff_t S, gradScratch;                                                                     \
        REAL *st, *yp, *dh, *dhp, *da, *gWh, *gbh, *gWy, *gby, *zero, *dz;                          \
    } simd_ws;                                                                                        \
    typedef struct {                                                                                  \
        REAL *st, *da, *dh, *dhp, *dz;                                                                \
    } blas_ws;                                                                                        \
    static inline void packed_view(const ck_model *m, const REAL *p, packed_layout *v) {             \
        ptrdiff_t o[6];                                                                               \
        packed_offsets(m, o);                                                                         \
        v->WhT = p + o[0]; v->WhN = p + o[1]; v->bh = p + o[2];                                       \
        v->WyT = p + o[3]; v->WyN = p + o[4]; v->by = p + o[5];                                       \
    }                                                                                                 \
    static inline void simd_layout(const ck_model *m, ptrdiff_t B, REAL *w, simd_ws *v) {             \
        ptrdiff_t o[11];                                                                              \
        simd_offsets(m, B, o, &v->Hp, &v->Op, &v->S, &v->gradScratch);                                \
        v->st = w + o[0]; v->yp = w + o[1]; v->dh = w + o[2]; v->dhp = w + o[3]; v->da = w + o[4];    \
        v->gWh = w + o[5]; v->gbh = w + o[6]; v->gWy = w + o[7]; v->gby = w + o[8];                 \
        v->zero = w + o[9]; v->dz = w + o[10];                                                        \
    }                                                                                                 \
    static inline void blas_layout(const ck_model *m, ptrdiff_t B, REAL *w, blas_ws *v) {             \
        ptrdiff_t o[5];                                                                               \
        blas_offsets(m, B, o);                                                                        \
        v->st = w + o[0]; v->da = w + o[1]; v->dh = w + o[2]; v->dhp = w + o[3]; v->dz = w + o[4];    \
    }

// float
#define packed_layout packed_layout_f32
#define simd_ws simd_ws_f32
#define blas_ws blas_ws_f32
#define packed_view packed_view_f32
#define simd_layout simd_layout_f32
#define blas_layout blas_layout_f32
VIEWS(float)
#define REAL float
#define VEC vf32
#define IVEC vi32
#define VL 16
#define IS_F32 1
#define GEMM cblas_sgemm_lazy
#if defined(__x86_64__)
#define SFX f32_avx512
#define ATTR __attribute__((target("avx512f,avx2,fma")))
#include "kernels_impl.h"
#undef SFX
#undef ATTR
#define SFX f32_avx2
#define ATTR __attribute__((target("avx2,fma")))
#include "kernels_impl.h"
#undef SFX
#undef ATTR
#endif
#define SFX f32_base
#define ATTR
#include "kernels_impl.h"
#undef SFX
#undef ATTR
#undef REAL
#undef VEC
#undef IVEC
#undef VL
#undef IS_F32
#undef GEMM
#undef packed_layout
#undef simd_ws
#undef blas_ws
#undef packed_view
#undef simd_layout
#undef blas_layout

// double
#define packed_layout packed_layout_f64
#define simd_ws simd_ws_f64
#define blas_ws blas_ws_f64
#define packed_view packed_view_f64
#define simd_layout simd_layout_f64
#define blas_layout blas_layout_f64
VIEWS(double)
#define REAL double
#define VEC vf64
#define IVEC vi64
#define VL 8
#define IS_F32 0
#define GEMM cblas_dgemm_lazy
#if defined(__x86_64__)
#define SFX f64_avx512
#define ATTR __attribute__((target("avx512f,avx2,fma")))
#include "kernels_impl.h"
#undef SFX
#undef ATTR
#define SFX f64_avx2
#define ATTR __attribute__((target("avx2,fma")))
#include "kernels_impl.h"
#undef SFX
#undef ATTR
#endif
#define SFX f64_base
#define ATTR
#include "kernels_impl.h"
#undef SFX
#undef ATTR

// ------------------------------------------------------------------ entry points
static int usable(int isa) {
    if (isa < CK_ISA_BASE || isa > CK_ISA_AVX512 || !ck_isa_supported(isa)) return ck_isa_best();
    return isa;
}

#if defined(__x86_64__)
#define DISPATCH(T, name, args)                                                                       \
    switch (usable(isa)) {                                                                            \
    case CK_ISA_AVX512: return name##_##T##_avx512 args;                                               \
    case CK_ISA_AVX2: return name##_##T##_avx2 args;                                                   \
    default: return name##_##T##_base args;                                                            \
    }
#else
#define DISPATCH(T, name, args) return name##_##T##_base args;
#endif

#define DEFINE_ENTRIES(REALT, T)                                                                      \
    REALT ck_forward_##T(int isa, int path, const ck_model *m, const REALT *params, const REALT *packed, \
                         const REALT *series, const ptrdiff_t *w, ptrdiff_t B, REALT *ws, REALT *y) {   \
        if (path == CK_PATH_BLAS && ck_blas_available()) {                                            \
            DISPATCH(T, blas_forward, (m, params, series, w, B, ws, y))                                \
        }                                                                                             \
        DISPATCH(T, simd_forward, (m, packed, series, w, B, ws, y))                                    \
    }                                                                                                 \
    static void backward_##T(int isa, int path, const ck_model *m, const REALT *params,              \
                             const REALT *packed, const REALT *series, const ptrdiff_t *w, ptrdiff_t B, \
                             REALT *ws, const REALT *y, REALT *g) {                                   \
        if (path == CK_PATH_BLAS && ck_blas_available()) {                                            \
            DISPATCH(T, blas_backward, (m, params, series, w, B, ws, y, g))                            \
        }                                                                                             \
        DISPATCH(T, simd_backward, (m, packed, series, w, B, ws, y, g))                                \
    }                                                                                                 \
    void ck_backward_##T(int isa, int path, const ck_model *m, const REALT *params, const REALT *packed, \
                         const REALT *series, const ptrdiff_t *w, ptrdiff_t B, REALT *ws, const REALT *y, \
                         REALT *g) {                                                                  \
        backward_##T(isa, path, m, params, packed, series, w, B, ws, y, g);                           \
    }
DEFINE_ENTRIES(float, f32)
DEFINE_ENTRIES(double, f64)

#define DEFINE_ELEMENTWISE(REALT, T)                                                                  \
    void ck_adam_##T(ptrdiff_t n, REALT *p, const REALT *g, REALT *m, REALT *v, REALT c1, REALT b2,    \
                     REALT c2, REALT step, REALT bc2, REALT eps) {                                      \
        int isa = ck_isa_best();                                                                      \
        DISPATCH(T, adam, (n, p, g, m, v, c1, b2, c2, step, bc2, eps))                                 \
    }                                                                                                 \
    double ck_sumsq_##T(const REALT *x, ptrdiff_t n) {                                                \
        int isa = ck_isa_best();                                                                      \
        DISPATCH(T, sumsq, (x, n))                                                                     \
    }
DEFINE_ELEMENTWISE(float, f32)
DEFINE_ELEMENTWISE(double, f64)

#if defined(__x86_64__)
__attribute__((target("avx512f,avx2,fma"))) static void tanh_avx512(const float *x, float *out, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k += 16) {
        float a[16] = {0};
        for (int j = 0; j < 16 && k + j < n; j++) a[j] = x[k + j];
        vf32 v = tanhv_f32_avx512(load_f32_avx512(a));
        store_f32_avx512(a, v);
        for (int j = 0; j < 16 && k + j < n; j++) out[k + j] = a[j];
    }
}
__attribute__((target("avx2,fma"))) static void tanh_avx2(const float *x, float *out, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k += 16) {
        float a[16] = {0};
        for (int j = 0; j < 16 && k + j < n; j++) a[j] = x[k + j];
        vf32 v = tanhv_f32_avx2(load_f32_avx2(a));
        store_f32_avx2(a, v);
        for (int j = 0; j < 16 && k + j < n; j++) out[k + j] = a[j];
    }
}
#endif
static void tanh_base(const float *x, float *out, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k += 16) {
        float a[16] = {0};
        for (int j = 0; j < 16 && k + j < n; j++) a[j] = x[k + j];
        vf32 v = tanhv_f32_base(load_f32_base(a));
        store_f32_base(a, v);
        for (int j = 0; j < 16 && k + j < n; j++) out[k + j] = a[j];
    }
}

void ck_tanh_f32(int isa, const float *x, float *out, ptrdiff_t n) {
#if defined(__x86_64__)
    switch (usable(isa)) {
    case CK_ISA_AVX512: tanh_avx512(x, out, n); return;
    case CK_ISA_AVX2: tanh_avx2(x, out, n); return;
    default: break;
    }
#endif
    tanh_base(x, out, n);
}
