import Foundation
import Testing
import RNN
import Series
@testable import Training

/// Full batch, no validation split: 996 windows, one step per epoch.
func fullBatchConfig(epochs: Int = 40, microBatch: Int = 250, target: Double? = nil, validation: Double = 0) -> TrainingConfig {
    TrainingConfig(
        model: ModelConfig(inputSize: 2, hiddenSize: 12, outputSize: 2, seqLen: 4),
        optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2), data: .sincos(points: 1000, from: 0, to: 100),
        batch: 996, microBatch: microBatch, epochs: epochs, steps: nil, seed: 3, shuffle: true,
        clipNorm: 1.0, targetLoss: target, validationFraction: validation)
}

/// The first epoch (from 1) whose loss is below `target`, or nil.
private func firstEpoch(below target: Double, in metrics: [EpochMetrics]) -> Int? {
    metrics.first { $0.loss < target }?.epoch
}

@Suite("Full batch: the next step measures the epoch's loss")
struct FullBatchEpochTests {
    /// At full batch an epoch's loss is the next step's loss sum over its windows (so the next
    /// epoch's train loss, bit for bit); the last epoch, which has no next step, is evaluated
    /// separately; both agree with a separate evaluation up to Float summation order.
    @Test func theEpochLossIsTheNextStepsLossAndTheLastEpochIsEvaluated() throws {
        let series = try referenceSeries()
        let trainer = try InProcessTrainer(config: fullBatchConfig(epochs: 8), series: series)
        let r = try trainer.run()
        #expect(r.metrics.count == 8 && r.steps == 8)
        for i in 0..<7 {
            #expect(r.metrics[i].loss == r.metrics[i + 1].trainLoss, "epoch \(i + 1)")
        }
        let evaluated = trainer.meanLoss(windows: trainer.split.all)
        #expect(r.metrics[7].loss == evaluated)
        #expect(r.finalLoss == evaluated)
        // a 5-epoch run evaluates its (last) epoch 5 separately: the same weights, close losses
        let short = try InProcessTrainer(config: fullBatchConfig(epochs: 5), series: series).run()
        #expect(Array(short.metrics.map(\.trainLoss)) == Array(r.metrics.prefix(5).map(\.trainLoss)))
        #expect(Array(short.metrics.prefix(4).map(\.loss)) == Array(r.metrics.prefix(4).map(\.loss)))
        let a = short.metrics[4].loss, b = r.metrics[4].loss
        #expect(abs(a - b) <= 1e-5 * b, "separate evaluation \(a) vs next step's \(b)")
    }

    /// A target reached at full batch: in-process (1 and 2 threads) and the coordinator state
    /// machine (1 and 2 workers, with and without an overlapped evaluation) stop at the same epoch,
    /// with the same weights, losses and window accounting; the step after the stop epoch is
    /// dropped unapplied.
    @Test func aReachedTargetStopsEveryModeAtTheSameEpochWithTheSameBits() throws {
        let series = try referenceSeries()
        let probe = try InProcessTrainer(config: fullBatchConfig(epochs: 40), series: series).run()
        let target = probe.metrics[11].loss * 1.000001
        let stop = try #require(firstEpoch(below: target, in: probe.metrics))
        #expect(stop < 39, "the target must be reached before the last epoch")
        let config = fullBatchConfig(epochs: 40, target: target)
        let reference = try InProcessTrainer(config: config, series: series).run()
        #expect(reference.targetReached == true)
        #expect(reference.epochs == stop && reference.steps == stop && reference.samples == stop * 996)
        #expect(reference.metrics.map(\.loss) == Array(probe.metrics.prefix(stop).map(\.loss)))
        let threaded = try InProcessTrainer(config: config, series: series, threads: 2).run()
        #expect(threaded.parameters == reference.parameters && threaded.metrics.map(\.loss) == reference.metrics.map(\.loss))
        for (workers, overlap) in [(1, true), (2, true), (2, false)] {
            let h = try Harness(config: config, series: series, workers: workers)
            h.coordinator.overlapEvaluation = overlap
            try h.run()
            #expect(h.coordinator.failure == nil)
            #expect(h.coordinator.state.targetReached)
            #expect(h.coordinator.state.parameters == reference.parameters, "\(workers) workers")
            #expect(h.coordinator.state.step == reference.steps && h.coordinator.state.epoch == reference.epochs)
            #expect(h.coordinator.metrics.map(\.loss) == reference.metrics.map(\.loss))
            #expect(h.coordinator.metrics.map(\.trainLoss) == reference.metrics.map(\.trainLoss))
            #expect(h.coordinator.workers.values.map(\.samples).reduce(0, +) == reference.samples)
            let result = h.coordinator.result(now: h.now)
            #expect(result.finalLoss == reference.finalLoss && result.targetReached == true)
        }
    }

    /// Without a target the run goes to its last epoch, evaluated separately, in every mode.
    @Test func anUnreachedTargetRunsToTheLastEpochInEveryMode() throws {
        let series = try referenceSeries()
        let config = fullBatchConfig(epochs: 6, microBatch: 100, target: 1e-9)
        let reference = try InProcessTrainer(config: config, series: series).run()
        #expect(reference.targetReached == false && reference.epochs == 6)
        let h = try Harness(config: config, series: series, workers: 3)
        try h.run()
        #expect(h.coordinator.state.parameters == reference.parameters)
        #expect(h.coordinator.metrics.map(\.loss) == reference.metrics.map(\.loss))
        #expect(h.coordinator.meanLoss() == reference.metrics.last?.loss)
    }

    /// Mini-batch epochs, and full-batch epochs with a validation split, keep the separate
    /// evaluation: an epoch's loss is the same whether or not more epochs follow.
    @Test(arguments: [(batch: 32, validation: 0.0), (batch: 996, validation: 0.1)])
    func otherEpochsAreEvaluatedSeparately(batch: Int, validation: Double) throws {
        let series = try referenceSeries()
        var config = fullBatchConfig(epochs: 1, microBatch: 16, validation: validation)
        config.batch = batch
        let one = try InProcessTrainer(config: config, series: series).run()
        config.epochs = 3
        let three = try InProcessTrainer(config: config, series: series).run()
        #expect(one.metrics[0].loss == three.metrics[0].loss)
        #expect(one.metrics[0].valLoss == three.metrics[0].valLoss)
        #expect((validation > 0) == (three.metrics[0].valLoss != nil))
    }

    /// Checkpoints at full batch are written once the next step has measured the epoch; a run
    /// resumed from one ends with the bits and losses of an uninterrupted run.
    @Test func aResumedFullBatchRunEndsWithTheSameBits() throws {
        let series = try referenceSeries()
        let config = fullBatchConfig(epochs: 12, microBatch: 250)
        let clean = try Harness(config: config, series: series, workers: 2)
        try clean.run()
        #expect(clean.coordinator.state.step == 12)

        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zt-fullbatch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let store = CheckpointStore(runDirectory: tmp, keep: 2)
        let first = try Harness(config: config, series: series, workers: 2)
        first.coordinator.checkpointEvery = 5
        first.coordinator.onCheckpoint = { c in try? store.save(c) }
        first.stopAfterStep = 7
        try first.run()
        let saved = try store.latest()
        #expect(saved.counters.step == 5 && saved.metrics.count == 5 && !saved.counters.epochEnded)
        #expect(saved.metrics.map(\.loss) == Array(clean.coordinator.metrics.prefix(5).map(\.loss)))

        let second = try Harness(config: config, series: series, workers: 1, resume: saved)
        try second.run()
        #expect(second.coordinator.failure == nil && second.coordinator.state.step == 12)
        #expect(second.coordinator.state.parameters == clean.coordinator.state.parameters)
        #expect(second.coordinator.metrics.map(\.loss) == clean.coordinator.metrics.map(\.loss))
    }
}
