import Testing
@testable import RNN

@Suite("Optimizers, clipping, initialisation")
struct OptimizerTests {
    @Test func sgdIsMinusLearningRateTimesGradient() {
        var p: [Float] = [1, 2, 3]
        var opt = Optimizer<Float>(config: OptimizerConfig(kind: .sgd, learningRate: 1), parameterCount: 3)
        opt.update(&p, gradient: [0.5, -0.25, 0])
        #expect(p == [0.5, 2.25, 3])
    }

    @Test func sgdMomentumFollowsPyTorch() {
        // torch.optim.SGD(lr=0.1, momentum=0.9): buf1 = g1; buf2 = 0.9*buf1 + g2
        var p: [Double] = [1]
        var opt = Optimizer<Double>(config: OptimizerConfig(kind: .sgd, learningRate: 0.1, momentum: 0.9), parameterCount: 1)
        opt.update(&p, gradient: [1])
        #expect(abs(p[0] - 0.9) < 1e-15)
        opt.update(&p, gradient: [2])
        #expect(abs(p[0] - (0.9 - 0.1 * (0.9 * 1 + 2))) < 1e-15)
    }

    @Test func adamFirstStepMovesByLearningRate() {
        // After one step Adam moves every coordinate by about lr*sign(g).
        var p: [Double] = [0, 0, 0]
        var opt = Optimizer<Double>(config: OptimizerConfig(kind: .adam, learningRate: 0.01), parameterCount: 3)
        opt.update(&p, gradient: [3, -0.5, 1e-3])
        #expect(abs(p[0] + 0.01) < 1e-9 && abs(p[1] - 0.01) < 1e-9 && abs(p[2] + 0.01) < 1e-7)
        #expect(opt.step == 1)
    }

    @Test func clipMatchesTorchClipGradNorm() {
        var g: [Double] = [3, 4]
        let norm = clipGradientNorm(&g, maxNorm: 1)
        #expect(norm == 5)
        let coef = 1 / (5 + 1e-6)
        #expect(g == [3 * coef, 4 * coef])
        var small: [Double] = [0.3, 0.4]
        clipGradientNorm(&small, maxNorm: 1)
        #expect(small == [0.3, 0.4])
    }

    @Test func initialisationIsUniformWithinFanInBound() {
        let config = ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4, cell: .elman)
        var rng = TestRNG(1)
        let p = initializeParameters(config: config, using: &rng)
        let layout = ParameterLayout(config)
        let bh = 1 / Float(34).squareRoot(), by = 1 / Float(32).squareRoot()
        #expect(p[layout.wh.range].allSatisfy { abs($0) <= bh })
        #expect(p[layout.wy.range].allSatisfy { abs($0) <= by })
        #expect(p[layout.wh.range].contains { abs($0) > 0.9 * bh })
        let mean = p[layout.wh.range].reduce(0, +) / Float(layout.wh.range.count)
        #expect(abs(mean) < 0.02)
        var again = TestRNG(1)
        #expect(initializeParameters(config: config, using: &again) == p)
    }

    @Test func layoutMatchesReferenceShapes() {
        let seed = ParameterLayout(ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4, cell: .seed))
        #expect(seed.wh.shape == [32, 34] && seed.bh.shape == [32] && seed.wy.shape == [2, 34] && seed.by.shape == [2])
        #expect(seed.count == 32 * 34 + 32 + 2 * 34 + 2)
        let elman = ParameterLayout(ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4, cell: .elman))
        #expect(elman.wy.shape == [2, 32])
    }
}
