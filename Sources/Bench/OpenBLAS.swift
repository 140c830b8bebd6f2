#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// OpenBLAS, loaded with `dlopen` when the bench first needs it rather than linked into `ztrain`.
///
/// Linking it (the `CBLAS` module) maps the 36 MB DYNAMIC_ARCH library into every `ztrain` process
/// at start: about 9 MB more VmHWM per worker and coordinator (file-backed pages touched by the
/// loader) and one more thread, which alone puts a worker over target 7's 20 MB. Loaded here, only
/// the bench process pays. The functions are the same `cblas_sgemm`, `openblas_set_num_threads`
/// and `openblas_get_config` the `CBLAS` module declares (OpenBLAS's LP64 interface: 32-bit ints).
public struct OpenBLAS: @unchecked Sendable {
    // @unchecked: C function pointers into a library that stays loaded.
    typealias SGEMM = @convention(c) (
        Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
        UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
    ) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void
    typealias Text = @convention(c) () -> UnsafeMutablePointer<CChar>?

    // CBLAS_ORDER and CBLAS_TRANSPOSE values of cblas.h
    static let rowMajor: Int32 = 101
    static let noTrans: Int32 = 111
    static let trans: Int32 = 112

    let sgemmFunction: SGEMM
    let setThreadsFunction: SetThreads
    let configFunction: Text?
    let coreFunction: Text?

    /// The library, loaded once; the error says how to install it.
    public static let shared: Result<OpenBLAS, BenchError> = load()

    static func load() -> Result<OpenBLAS, BenchError> {
        var handle: UnsafeMutableRawPointer?
        for name in ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"] {
            handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if handle != nil { break }
        }
        guard let handle else {
            return .failure(.measurement("cannot load OpenBLAS (libopenblas.so.0): \(String(cString: dlerror())); install it with apt-get install libopenblas-dev (scripts/ensure-deps.sh)"))
        }
        guard let sgemm = dlsym(handle, "cblas_sgemm"), let threads = dlsym(handle, "openblas_set_num_threads") else {
            return .failure(.measurement("the loaded OpenBLAS has no cblas_sgemm or openblas_set_num_threads"))
        }
        return .success(OpenBLAS(
            sgemmFunction: unsafeBitCast(sgemm, to: SGEMM.self),
            setThreadsFunction: unsafeBitCast(threads, to: SetThreads.self),
            configFunction: dlsym(handle, "openblas_get_config").map { unsafeBitCast($0, to: Text.self) },
            coreFunction: dlsym(handle, "openblas_get_corename").map { unsafeBitCast($0, to: Text.self) }))
    }

    /// `cblas_sgemm(CblasRowMajor, …)`: `C (M, N) = alpha · op(A) · op(B) + beta · C`.
    func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
               b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemmFunction(OpenBLAS.rowMajor, transA ? OpenBLAS.trans : OpenBLAS.noTrans, transB ? OpenBLAS.trans : OpenBLAS.noTrans,
                      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `openblas_set_num_threads`.
    func setThreads(_ n: Int) { setThreadsFunction(Int32(n)) }

    /// `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64`.
    public var config: String { configFunction.flatMap { $0() }.map { String(cString: $0) } ?? "OpenBLAS" }

    /// `openblas_get_corename()`, e.g. `Zen`.
    public var core: String { coreFunction.flatMap { $0() }.map { String(cString: $0) } ?? "unknown" }
}
