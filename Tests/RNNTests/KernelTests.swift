import Foundation
import Testing
@testable import RNN

/// Every cell × activation × loss × head at hidden sizes that are and are not multiples of 16.
private func configs(hidden: [Int]) -> [ModelConfig] {
    var out: [ModelConfig] = []
    for h in hidden {
        for cell in Cell.allCases {
            for act in Activation.allCases {
                for loss in LossKind.allCases {
                    for head in OutputHead.allCases {
                        out.append(ModelConfig(inputSize: 2, hiddenSize: h, outputSize: 2, seqLen: 4, cell: cell, activation: act,
                                               loss: loss, head: head))
                    }
                }
            }
        }
    }
    return out
}

private func windows(_ n: Int, seed: UInt64) -> [Int] {
    var rng = TestRNG(seed)
    return (0..<n).map { _ in Int(rng.next() % 990) }
}

private func run<S: RNNScalar>(_ config: ModelConfig, _ params: [S], _ series: [S], _ w: [Int], isa: KernelISA = .best,
                               path: KernelPath? = nil, maxBatch: Int? = nil) -> (loss: S, grad: [S]) {
    let ws = RNNWorkspace<S>(config: config, maxBatch: maxBatch ?? w.count)
    ws.isa = isa
    ws.pathOverride = path
    let r = ws.lossAndGradient(params: params, series: series, windows: w)
    return (r.lossSum, r.gradient)
}

@Suite("C kernels: ISA variants, padding, SIMD and BLAS paths")
struct KernelTests {
    static let series32: [Float] = sincos(1000)
    static let series64: [Double] = sincos(1000)

    @Test(arguments: configs(hidden: [5, 20, 32, 33]))
    func isaVariantsGiveTheSameBits(config: ModelConfig) {
        let p64 = randomParams(config, seed: 9)
        let p32 = p64.map { Float($0) }
        for b in [1, 3, 8, 13] {
            let w = windows(b, seed: UInt64(b))
            let ref32 = run(config, p32, Self.series32, w, isa: .baseline, path: .simd)
            let ref64 = run(config, p64, Self.series64, w, isa: .baseline, path: .simd)
            for isa in KernelISA.allCases where isa.isSupported && isa != .baseline {
                let f = run(config, p32, Self.series32, w, isa: isa, path: .simd)
                #expect(f.loss.bitPattern == ref32.loss.bitPattern, "\(isa) loss, batch \(b)")
                #expect(f.grad.map(\.bitPattern) == ref32.grad.map(\.bitPattern), "\(isa) Float gradient, batch \(b)")
                let d = run(config, p64, Self.series64, w, isa: isa, path: .simd)
                #expect(d.grad.map(\.bitPattern) == ref64.grad.map(\.bitPattern), "\(isa) Double gradient, batch \(b)")
            }
        }
    }

    @Test(arguments: configs(hidden: [5, 20, 33]))
    func floatKernelMatchesTheFloat64Kernel(config: ModelConfig) {
        let p64 = randomParams(config, seed: 21)
        let p32 = p64.map { Float($0) }
        for b in [1, 7, 16] {
            let w = windows(b, seed: 100 + UInt64(b))
            let f = run(config, p32, Self.series32, w)
            let d = run(config, p64, Self.series64, w)
            #expect(abs(Double(f.loss) - d.loss) <= 1e-5 * max(1, abs(d.loss)), "loss \(f.loss) vs \(d.loss)")
            let gmax = d.grad.map(abs).max() ?? 1
            let err = maxRelativeError(f.grad, d.grad, floor: 1e-2 * gmax)
            #expect(err < 1e-4, "\(config.cell)/\(config.activation)/\(config.loss) H=\(config.hiddenSize) B=\(b): \(err)")
        }
    }

    @Test(arguments: configs(hidden: [5, 33, 130]))
    func blasAndSimdPathsAgree(config: ModelConfig) throws {
        // OpenBLAS is a dependency (scripts/ensure-deps.sh): without it the BLAS path would quietly be SIMD
        try #require(KernelPath.isBLASAvailable, "libopenblas.so.0 did not load")
        let p64 = randomParams(config, seed: 5, scale: 0.3)
        let p32 = p64.map { Float($0) }
        for b in [1, 9, 40] {
            let w = windows(b, seed: 7 + UInt64(b))
            let s = run(config, p32, Self.series32, w, path: .simd)
            let l = run(config, p32, Self.series32, w, path: .blas)
            #expect(abs(s.loss - l.loss) <= 1e-5 * max(1, abs(s.loss)), "loss \(s.loss) vs \(l.loss)")
            let gmax = Double(s.grad.map(abs).max() ?? 1)
            let err = maxRelativeError(l.grad, s.grad.map(Double.init), floor: 1e-2 * gmax)
            #expect(err < 1e-4, "\(config.cell)/\(config.activation)/\(config.loss) H=\(config.hiddenSize) B=\(b): \(err)")
            // and in Float64 the two paths agree to round-off
            let s64 = run(config, p64, Self.series64, w, path: .simd)
            let l64 = run(config, p64, Self.series64, w, path: .blas)
            #expect(maxRelativeError(l64.grad, s64.grad, floor: 1e-2 * gmax) < 1e-12)
        }
    }

    @Test func resultsDoNotDependOnTheWorkspaceSize() {
        // The kernel follows from the batch run, not from maxBatch: a leaf computed anywhere gives the same bits.
        for h in [32, 256] {
            let config = ModelConfig(inputSize: 2, hiddenSize: h, outputSize: 2, seqLen: 4)
            let p = randomParams(config, seed: 3, scale: 0.1).map { Float($0) }
            let w = windows(8, seed: 1)
            let small = run(config, p, Self.series32, w)
            let large = run(config, p, Self.series32, w, maxBatch: 996)
            #expect(small.grad.map(\.bitPattern) == large.grad.map(\.bitPattern))
            #expect(small.loss.bitPattern == large.loss.bitPattern)
        }
    }

    @Test func sharedPackedWeightsGiveTheSameBits() {
        let config = ModelConfig(inputSize: 2, hiddenSize: 20, outputSize: 2, seqLen: 4, cell: .elman)
        let p = randomParams(config, seed: 8).map { Float($0) }
        let w = windows(6, seed: 2)
        let own = run(config, p, Self.series32, w)
        let packed = PackedWeights<Float>(config: config)
        p.withUnsafeBufferPointer { packed.pack($0) }
        let ws = RNNWorkspace<Float>(config: config, maxBatch: 6)
        var g = [Float](repeating: 0, count: p.count)
        let loss = p.withUnsafeBufferPointer { pp in
            Self.series32.withUnsafeBufferPointer { s in
                w.withUnsafeBufferPointer { wp in
                    let l = ws.forward(params: pp, packed: packed, series: s, windows: wp)
                    g.withUnsafeMutableBufferPointer { ws.backward(params: pp, series: s, grads: $0) }
                    return l
                }
            }
        }
        #expect(loss.bitPattern == own.loss.bitPattern)
        #expect(g.map(\.bitPattern) == own.grad.map(\.bitPattern))
    }

    @Test func vectorTanhIsWithinAFewUlpOfLibmOnEveryISA() {
        var xs: [Float] = [0, -0.0, 1e-30, -1e-8, 0.1, 0.624, 0.625, 0.626, -0.7, 1, 2, 5, 9, 9.5, 10, 11, 50, -88, 1e30,
                           .infinity, -.infinity, .leastNonzeroMagnitude]
        for i in 0..<4000 { xs.append(Float(i - 2000) * 0.006) }
        let reference = kernelTanh(xs, isa: .baseline)
        for isa in KernelISA.allCases where isa.isSupported {
            let t = kernelTanh(xs, isa: isa)
            #expect(t.map(\.bitPattern) == reference.map(\.bitPattern), "\(isa) differs from the baseline variant")
        }
        var worst: Float = 0
        for (x, y) in zip(xs, reference) {
            let exact = Float(Foundation.tanh(Double(x)))
            let ulp = max(exact.ulp, Float.leastNormalMagnitude)
            worst = max(worst, abs(y - exact) / ulp)
        }
        #expect(worst <= 4, "worst error \(worst) ulp")
        #expect(kernelTanh([.nan])[0].isNaN)
    }

    @Test func staticRuleDependsOnTheShapeOnly() {
        let small = ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4)
        #expect(KernelPath.forShape(small, batch: 8) == .simd)
        for h in [16, 32, 64, 128, 256] {
            let c = ModelConfig(inputSize: 2, hiddenSize: h, outputSize: 2, seqLen: 4)
            for b in [1, 8, 32, 498, 996] {
                #expect(KernelPath.forShape(c, batch: b) == KernelPath.forShape(c, batch: b))
            }
        }
    }
}
