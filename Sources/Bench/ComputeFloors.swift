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

/// memcpy bandwidth: `bytes` copied between two buffers that were touched first (no page faults in
/// the timing), median of `repetitions`.
public enum MemcpyFloor {
    /// Bytes per second.
    public static func measure(bytes: Int, repetitions: Int) -> (median: Double, all: [Double]) {
        let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { src.deallocate(); dst.deallocate() }
        memset(src, 1, bytes)
        memset(dst, 2, bytes)
        memcpy(dst, src, bytes)  // warm-up
        var rates: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let t0 = ContinuousClock.now
            memcpy(dst, src, bytes)
            let s = seconds(since: t0)
            rates.append(Double(bytes) / max(s, 1e-12))
        }
        return (Stats.median(rates) ?? 0, rates)
    }
}

/// Single-threaded float32 GEMM rate of OpenBLAS (`cblas_sgemm`, `openblas_set_num_threads(1)`;
/// the library is loaded by ``OpenBLAS``).
public enum GemmFloor {
    /// FLOP per second of doing every shape `count` times in a row, median of `repetitions`; each
    /// repetition loops until at least `minSeconds` have passed, so short products are timed well.
    public static func measure(shapes: [GemmShape], repetitions: Int, minSeconds: Double) throws(BenchError) -> (median: Double, all: [Double]) {
        let blas = try OpenBLAS.shared.get()
        let sizeA = shapes.map { $0.m * $0.k }.max() ?? 1
        let sizeB = shapes.map { $0.k * $0.n }.max() ?? 1
        let sizeC = shapes.map { $0.m * $0.n }.max() ?? 1
        let a = UnsafeMutablePointer<Float>.allocate(capacity: sizeA)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: sizeB)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: sizeC)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<sizeA { a[i] = Float(i % 97) * 0.001 - 0.05 }
        for i in 0..<sizeB { b[i] = Float(i % 89) * 0.001 - 0.04 }
        c.initialize(repeating: 0, count: sizeC)
        let flopsPerPass = shapes.reduce(0.0) { $0 + $1.flops * Double($1.count) }

        func pass() {
            for s in shapes {
                for _ in 0..<s.count {
                    blas.sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, alpha: 1,
                               a: a, lda: s.transA ? s.m : s.k, b: b, ldb: s.transB ? s.k : s.n,
                               beta: s.accumulate ? 1 : 0, c: c, ldc: s.n)
                }
            }
        }
        pass()  // warm-up: OpenBLAS buffers, caches
        var rates: [Double] = []
        for _ in 0..<max(1, repetitions) {
            var passes = 0
            let t0 = ContinuousClock.now
            var elapsed = 0.0
            repeat {
                pass()
                passes += 1
                elapsed = seconds(since: t0)
            } while elapsed < minSeconds
            rates.append(flopsPerPass * Double(passes) / max(elapsed, 1e-12))
        }
        return (Stats.median(rates) ?? 0, rates)
    }

    /// A square `n × n × n` product.
    public static func square(_ n: Int) -> [GemmShape] {
        [GemmShape(name: "square", m: n, n: n, k: n, transA: false, transB: false, accumulate: false, count: 1)]
    }
}
