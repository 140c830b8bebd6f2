import CKernels

/// OpenBLAS as the kernels load it: `dlopen`ed on first use (never linked into `ztrain`, so workers
/// training small models never map it: about 3 MB of resident memory and a thread), set to one thread.
/// The bench measures its `cblas_sgemm` as the GEMM floor, through the same loader the BLAS path uses.
public struct OpenBLAS: Sendable {
    /// The library, loaded once; the error says how to install it.
    public static let shared: Result<OpenBLAS, BenchError> = ck_blas_available() != 0 ? .success(OpenBLAS())
        : .failure(.measurement("cannot load OpenBLAS (libopenblas.so.0); install it with apt-get install libopenblas-dev (scripts/ensure-deps.sh)"))

    /// `cblas_sgemm(CblasRowMajor, …)`: `C (M, N) = alpha · op(A) · op(B) + beta · C`, one thread.
    func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
               b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        ck_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64`.
    public var config: String { String(cString: ck_blas_config()) }

    /// `openblas_get_corename()`, e.g. `Zen`.
    public var core: String { String(cString: ck_blas_corename()) }
}
