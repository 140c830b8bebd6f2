// Forward pass and BPTT of the ztrain RNN for one micro-batch, in C.
//
// Knows nothing of training: a model shape, a parameter block in the PyTorch layout
// (W_h (H, D), b_h (H), W_y (O, F), b_y (O), D = H + I, F = D for the seed cell and H for elman),
// a series (N, I) row-major, window starts, and flat scratch buffers.
//
// Two paths compute the same function:
//  - CK_PATH_SIMD: own vector code, vectorized over the output dimension (H padded to a multiple of 16),
//    one variant per ISA (AVX-512, AVX2+FMA, baseline) that give the same bits: every value is a
//    sequential chain of correctly rounded FMAs, multiplies and adds (no contraction, no reassociation),
//    and the vector width only decides how many independent chains run side by side.
//  - CK_PATH_BLAS: OpenBLAS GEMMs (time steps batched where possible) for shapes where GEMM wins.
// `ck_path_for` picks one from the shape only, so every process picks the same kernel for a leaf.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The shape and kind of one RNN (mirrors `RNN.ModelConfig`).
typedef struct ck_model {
    int T;     ///< points per window
    int I;     ///< inputs per point
    int H;     ///< hidden units
    int O;     ///< outputs per point
    int cell;  ///< 0 seed (y_t from [h_{t-1}, x_t]), 1 elman (y_t from h_t)
    int act;   ///< 0 tanh, 1 relu
    int loss;  ///< 0 last step only, 1 every step
    int head;  ///< 0 tanh output (y = tanh(z)), 1 linear output (y = z)
} ck_model;

/// The flat parameter block: four tensors in this order (llm.c's `fill_in_parameter_sizes`), the
/// layout of `params` and of every gradient in this file, mirrored by Swift's `ParameterLayout`:
/// W_h (H, D) | b_h (H) | W_y (O, F) | b_y (O), with D = H + I and F = D (seed) or H (elman).
enum { CK_PARAM_WH = 0, CK_PARAM_BH = 1, CK_PARAM_WY = 2, CK_PARAM_BY = 3, CK_NUM_PARAMS = 4 };

/// Writes the size of each tensor into `sizes` and the offset of each into `offsets` (either may be
/// NULL) and returns the total number of scalars.
ptrdiff_t ck_parameter_layout(const ck_model *m, ptrdiff_t sizes[CK_NUM_PARAMS], ptrdiff_t offsets[CK_NUM_PARAMS]);

enum { CK_ISA_BASE = 0, CK_ISA_AVX2 = 1, CK_ISA_AVX512 = 2 };
enum { CK_PATH_SIMD = 0, CK_PATH_BLAS = 1 };

/// The best ISA variant this CPU runs.
int ck_isa_best(void);
/// Does this CPU run `isa`?
int ck_isa_supported(int isa);

/// The kernel for a leaf of `batch` windows: a pure function of the shape (see the table in kernels.c).
int ck_path_for(const ck_model *m, ptrdiff_t batch);

// Is OpenBLAS loadable (libopenblas.so.0, dlopen'ed on the first call, set to one thread)? The BLAS
// path needs it.
int ck_blas_available(void);

// openblas_get_config() and openblas_get_corename() of the loaded library ("" when unknown).
const char *ck_blas_config(void);
const char *ck_blas_corename(void);

// C = alpha op(A) op(B) + beta C, row-major, through OpenBLAS's cblas_sgemm (one thread). Only after
// ck_blas_available() returned 1. For measuring the GEMM rate next to the kernels.
void ck_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/// Scalars of the packed (transposed, padded) weights the SIMD path reads.
size_t ck_packed_count(const ck_model *m);
/// Scalars of scratch for batches of up to `max_batch` windows, for either path.
size_t ck_workspace_count(const ck_model *m, ptrdiff_t max_batch);

/// Writes the packed weights of `params` into `packed` (`ck_packed_count` scalars, 64-byte aligned).
void ck_pack_f32(const ck_model *m, const float *params, float *packed);
void ck_pack_f64(const ck_model *m, const double *params, double *packed);

/// Runs `batch` windows through the model; writes y (T, batch, O) to `y` and returns the sum over windows
/// of each window's mean squared error. `packed` is only read by the SIMD path (may be NULL for BLAS);
/// `ws` is `ck_workspace_count` scalars, 64-byte aligned, and must be passed unchanged to the backward call.
float ck_forward_f32(int isa, int path, const ck_model *m, const float *params, const float *packed,
                     const float *series, const ptrdiff_t *windows, ptrdiff_t batch, float *ws, float *y);
double ck_forward_f64(int isa, int path, const ck_model *m, const double *params, const double *packed,
                      const double *series, const ptrdiff_t *windows, ptrdiff_t batch, double *ws, double *y);

/// BPTT for the batch of the last forward with the same arguments: adds the gradient of the loss sum to `grads`.
void ck_backward_f32(int isa, int path, const ck_model *m, const float *params, const float *packed,
                     const float *series, const ptrdiff_t *windows, ptrdiff_t batch, float *ws,
                     const float *y, float *grads);
void ck_backward_f64(int isa, int path, const ck_model *m, const double *params, const double *packed,
                     const double *series, const ptrdiff_t *windows, ptrdiff_t batch, double *ws,
                     const double *y, double *grads);

/// One Adam step over `n` parameters, elementwise, in PyTorch's order of operations:
/// m += c1 (g - m); v = v b2 + (c2 g) g; p -= step (m / (sqrt(v) / bc2 + eps)). Same bits on every ISA.
void ck_adam_f32(ptrdiff_t n, float *p, const float *g, float *m, float *v, float c1, float b2, float c2,
                 float step, float bc2, float eps);
void ck_adam_f64(ptrdiff_t n, double *p, const double *g, double *m, double *v, double c1, double b2, double c2,
                 double step, double bc2, double eps);

/// Sum of squares in double: 8 interleaved partial sums (element i goes to sum i mod 8), combined pairwise,
/// then the tail in order. A fixed order: the same bits on every ISA.
double ck_sumsq_f32(const float *x, ptrdiff_t n);
double ck_sumsq_f64(const double *x, ptrdiff_t n);

/// tanh of `n` floats with the kernels' vector tanh (tests compare it with libm).
void ck_tanh_f32(int isa, const float *x, float *out, ptrdiff_t n);

#ifdef __cplusplus
}
#endif

#endif
