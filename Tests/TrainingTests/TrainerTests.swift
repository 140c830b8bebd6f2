import Foundation
import Testing
import RNN
import Series
@testable import Training

func referenceConfig(
    hidden: Int = 16, batch: Int = 32, microBatch: Int = 8, epochs: Int? = 3, steps: Int? = nil,
    optimizer: OptimizerConfig = OptimizerConfig(kind: .adam, learningRate: 1e-2), shuffle: Bool = true,
    cell: Cell = .seed, clip: Double? = nil, target: Double? = nil, val: Double = 0
) -> TrainingConfig {
    TrainingConfig(
        model: ModelConfig(inputSize: 2, hiddenSize: hidden, outputSize: 2, seqLen: 4, cell: cell),
        optimizer: optimizer, data: .sincos(points: 1000, from: 0, to: 100),
        batch: batch, microBatch: microBatch, epochs: epochs, steps: steps, seed: 7, shuffle: shuffle,
        clipNorm: clip, targetLoss: target, validationFraction: val)
}

@Suite("In-process training")
struct TrainerTests {
    let series = try! Series.sincos()

    @Test func lossFallsOnTheReferenceTask() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: 4), series: series)
        let before = t.meanLoss(windows: t.split.all)
        let r = try t.run()
        #expect(r.metrics.count == 4)
        #expect(r.finalLoss < before / 10, "loss \(before) -> \(r.finalLoss)")
        #expect(r.samples == 4 * 996)
        #expect(r.steps == 4 * 32)  // ceil(996 / 32)
        #expect(r.metrics.allSatisfy { m in m.samples == 996 })  // every window once per epoch
    }

    @Test func threadCountDoesNotChangeABit() throws {
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let t = try InProcessTrainer(config: referenceConfig(batch: 40, microBatch: 6, epochs: nil, steps: 30), series: series, threads: threads)
            results.append(try t.run().parameters)
        }
        #expect(results[0] == results[1])
        #expect(results[0] == results[2])
    }

    @Test func microBatchSumsFollowTheCanonicalTree() throws {
        // The engine's root equals the tree reducer fed with per-micro-batch leaves.
        let config = ModelConfig(inputSize: 2, hiddenSize: 8, outputSize: 2, seqLen: 4)
        var rng = SeededRNG(seed: 3)
        let p = initializeParameters(config: config, using: &rng)
        let windows = Array(stride(from: 0, to: 700, by: 13))  // 54 windows, micro-batch 5: 11 leaves
        let engine = GradientEngine(config: config, microBatch: 5, threads: 2)
        let root = p.withUnsafeBufferPointer { pp in
            series.values.withUnsafeBufferPointer { s in
                windows.withUnsafeBufferPointer { w in Array(engine.computeAll(params: pp, series: s, windows: w)) }
            }
        }
        let ws = RNNWorkspace<Float>(config: config, maxBatch: 5)
        var tree = TreeReducer<Float>(leafCount: 11, width: engine.width)
        for leaf in 0..<11 {
            let batch = Array(windows[(leaf * 5)..<min(leaf * 5 + 5, windows.count)])
            let (l, g) = ws.lossAndGradient(params: p, series: series.values, windows: batch)
            let inserted = tree.insert(block: leaf..<(leaf + 1), values: g + [l])
            #expect(inserted)
        }
        let expected = tree.reduce()
        #expect(expected == root)
    }

    @Test func sgdStepIsExactlyMinusTheMeanGradient() throws {
        let config = referenceConfig(hidden: 8, batch: 5, epochs: nil, steps: 1,
                                     optimizer: OptimizerConfig(kind: .sgd, learningRate: 1), shuffle: false)
        var rng = SeededRNG(seed: 11)
        let w0 = initializeParameters(config: config.model, using: &rng)
        let t = try InProcessTrainer(config: config, series: series, initialParameters: w0)
        let r = try t.run()
        let ws = RNNWorkspace<Float>(config: config.model, maxBatch: 8)
        let (_, g) = ws.lossAndGradient(params: w0, series: series.values, windows: [0, 1, 2, 3, 4])
        let expected = zip(w0, g).map { $0 - $1 / 5 }
        #expect(r.parameters == expected)
    }

    @Test func stepsLimitStopsMidEpoch() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: nil, steps: 10), series: series)
        let r = try t.run()
        #expect(r.steps == 10 && r.epochs == 1 && r.samples == 320)
        #expect(r.metrics.count == 1 && r.metrics[0].samples == 320)
    }

    @Test func targetLossStopsEarly() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: 50, target: 0.05), series: series)
        let r = try t.run()
        #expect(r.targetReached == true)
        #expect(r.epochs < 50)
        #expect(r.finalLoss < 0.05)
    }

    @Test func validationSplitIsReported() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: 1, val: 0.2), series: series)
        #expect(t.split.validation.count == 200 && t.split.train.count == 796)
        let r = try t.run()
        #expect(r.metrics[0].valLoss != nil && r.metrics[0].samples == 796)
    }

    @Test func divergenceStopsBeforeTheBadUpdate() throws {
        var config = referenceConfig(hidden: 8, epochs: 5, optimizer: OptimizerConfig(kind: .sgd, learningRate: 1e-2))
        config.model.activation = .relu
        // one huge recurrent weight: relu lets h overflow to infinity within a window
        var rng = SeededRNG(seed: 2)
        var w = initializeParameters(config: config.model, using: &rng)
        for i in ParameterLayout(config.model).wh.range { w[i] = abs(w[i]) * 1e30 }
        let t = try InProcessTrainer(config: config, series: series, initialParameters: w)
        #expect(throws: TrainingError.self) { _ = try t.run() }
        #expect(t.parameters == w, "the bad update must not be applied")
    }

    @Test func badConfigurationsAreRefused() {
        let bad: [TrainingConfig] = [
            referenceConfig(batch: 0), referenceConfig(microBatch: 0), referenceConfig(epochs: 0),
            referenceConfig(optimizer: OptimizerConfig(kind: .adam, learningRate: -1)),
            referenceConfig(clip: .nan), referenceConfig(val: 1.5), referenceConfig(hidden: 0),
            referenceConfig(epochs: nil, steps: nil, target: nil),
        ]
        for c in bad {
            #expect(throws: TrainingError.self) { _ = try InProcessTrainer(config: c, series: series) }
        }
    }
}
