import Testing
@testable import RNN

@Suite("BPTT against central finite differences (Float64)")
struct FiniteDifferenceTests {
    static let configs: [ModelConfig] = {
        var out: [ModelConfig] = []
        for cell in Cell.allCases {
            for act in Activation.allCases {
                for loss in LossKind.allCases {
                    for head in OutputHead.allCases {
                        out.append(ModelConfig(inputSize: 2, hiddenSize: 5, outputSize: 2, seqLen: 4, cell: cell, activation: act,
                                               loss: loss, head: head))
                    }
                }
            }
        }
        return out
    }()

    @Test(arguments: configs)
    func gradientMatchesFiniteDifferences(config: ModelConfig) {
        let series: [Double] = sincos(200)
        let windows = [0, 3, 17, 40, 99, 150]
        let ws = RNNWorkspace<Double>(config: config, maxBatch: 8)
        let p = randomParams(config, seed: 42 &+ UInt64(config.hashValue & 0xffff))
        let (_, g) = ws.lossAndGradient(params: p, series: series, windows: windows)
        let eps = 1e-5
        var worst = 0.0
        var checked = 0
        for i in p.indices {
            var plus = p, minus = p
            plus[i] += eps
            minus[i] -= eps
            let lp = ws.lossSum(params: plus, series: series, windows: windows)
            let lm = ws.lossSum(params: minus, series: series, windows: windows)
            let fd = (lp - lm) / (2 * eps)
            // relu kinks make a few central differences meaningless; skip those whose one-sided slopes disagree
            let l0 = ws.lossSum(params: p, series: series, windows: windows)
            let right = (lp - l0) / eps, left = (l0 - lm) / eps
            if config.activation == .relu && abs(right - left) > 1e-3 * max(1, abs(fd)) { continue }
            checked += 1
            // relative error, with an absolute floor for near-zero entries (round-off of the difference is ~1e-11)
            worst = max(worst, abs(fd - g[i]) / max(abs(fd), abs(g[i]), 1e-4))
        }
        #expect(checked > p.count * 9 / 10, "too many parameters skipped at relu kinks: \(checked)/\(p.count)")
        #expect(worst < 1e-6, "\(config.cell)/\(config.activation)/\(config.loss)/\(config.head): worst relative error \(worst)")
    }

    @Test func lossIsMeanSquaredErrorOfLastStep() {
        // With zero weights every output is tanh(0) = 0, so the loss is the mean of target^2.
        let config = ModelConfig(inputSize: 2, hiddenSize: 3, outputSize: 2, seqLen: 4)
        let series: [Double] = sincos(50)
        let ws = RNNWorkspace<Double>(config: config, maxBatch: 4)
        let p = [Double](repeating: 0, count: ParameterLayout(config).count)
        let l = ws.lossSum(params: p, series: series, windows: [0, 1, 2])
        var expected = 0.0
        for w in 0..<3 {
            let a = series[(w + 4) * 2], b = series[(w + 4) * 2 + 1]
            expected += (a * a + b * b) / 2
        }
        #expect(abs(l - expected) < 1e-15)
    }

    @Test func gradientAccumulatesAcrossBatches() {
        let config = ModelConfig(inputSize: 2, hiddenSize: 4, outputSize: 2, seqLen: 3, cell: .elman)
        let series: [Double] = sincos(100)
        let ws = RNNWorkspace<Double>(config: config, maxBatch: 8)
        let p = randomParams(config, seed: 7)
        let (_, whole) = ws.lossAndGradient(params: p, series: series, windows: [1, 2, 3, 4])
        let (_, a) = ws.lossAndGradient(params: p, series: series, windows: [1, 2])
        let (_, b) = ws.lossAndGradient(params: p, series: series, windows: [3, 4])
        for i in whole.indices { #expect(abs(whole[i] - (a[i] + b[i])) < 1e-12) }
    }
}

@Suite("BPTT of the OpenBLAS path against central finite differences (Float64)")
struct BLASFiniteDifferenceTests {
    @Test(arguments: FiniteDifferenceTests.configs)
    func gradientMatchesFiniteDifferences(config: ModelConfig) {
        let series: [Double] = sincos(200)
        let windows = [0, 3, 17, 40, 99, 150]
        let ws = RNNWorkspace<Double>(config: config, maxBatch: 8)
        ws.pathOverride = .blas
        let p = randomParams(config, seed: 43 &+ UInt64(config.hashValue & 0xffff))
        let (_, g) = ws.lossAndGradient(params: p, series: series, windows: windows)
        let eps = 1e-5
        var worst = 0.0
        var checked = 0
        let l0 = ws.lossSum(params: p, series: series, windows: windows)
        for i in p.indices {
            var plus = p, minus = p
            plus[i] += eps
            minus[i] -= eps
            let lp = ws.lossSum(params: plus, series: series, windows: windows)
            let lm = ws.lossSum(params: minus, series: series, windows: windows)
            let fd = (lp - lm) / (2 * eps)
            let right = (lp - l0) / eps, left = (l0 - lm) / eps
            if config.activation == .relu && abs(right - left) > 1e-3 * max(1, abs(fd)) { continue }
            checked += 1
            worst = max(worst, abs(fd - g[i]) / max(abs(fd), abs(g[i]), 1e-4))
        }
        #expect(checked > p.count * 9 / 10, "too many parameters skipped at relu kinks: \(checked)/\(p.count)")
        #expect(worst < 1e-6, "\(config.cell)/\(config.activation)/\(config.loss)/\(config.head): worst relative error \(worst)")
    }
}
