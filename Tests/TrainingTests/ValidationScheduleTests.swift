import Foundation
import Testing
import RNN
import Series
@testable import Training

/// A small run with a validation part, a learning-rate schedule and (optionally) early stopping.
func validatedConfig(epochs: Int = 12, batch: Int = 64, lr: Double = 0.05, val: Double = 0.2,
                     schedule: LRScheduleConfig? = LRScheduleConfig(kind: .plateau, warmup: 5, patience: 1, factor: 0.5),
                     earlyStopping: Int? = nil, target: Double? = nil) -> TrainingConfig {
    TrainingConfig(
        model: ModelConfig(inputSize: 2, hiddenSize: 8, outputSize: 2, seqLen: 4),
        optimizer: OptimizerConfig(kind: .adam, learningRate: lr), data: .sincos(points: 1000, from: 0, to: 100),
        batch: batch, microBatch: 8, epochs: epochs, steps: nil, seed: 5, shuffle: true,
        clipNorm: 1.0, targetLoss: target, validationFraction: val, schedule: schedule, earlyStopping: earlyStopping)
}

/// The epoch (from 1) at which Lightning's EarlyStopping (mode min, min_delta 0) stops, or nil.
func lightningStopEpoch(_ monitored: [Double], patience: Int) -> Int? {
    var best = Double.infinity, wait = 0
    for (i, m) in monitored.enumerated() {
        if m < best { best = m; wait = 0 } else { wait += 1; if wait >= patience { return i + 1 } }
    }
    return nil
}

/// Drives a run state through epochs with zero gradients (the weights never change), closing each
/// epoch with the given losses; returns the epochs run.
func driveEpochs(_ state: inout RunState, losses: [(loss: Double, val: Double?)]) throws -> Int {
    var windows: [Int] = []
    let P = state.parameters.count
    var root = [Float](repeating: 0, count: P + 1)
    var closed = 0
    while let n = state.nextBatch(into: &windows) {
        root[P] = Float(n)   // loss 1 per window
        _ = try root.withUnsafeBufferPointer { try state.apply(root: $0, windows: n) }
        if state.epochEnded {
            let l = losses[closed]
            state.closeEpoch(loss: l.loss, valLoss: l.val)
            closed += 1
        }
    }
    return closed
}

@Suite("Validation, early stopping and learning-rate schedules")
struct ValidationScheduleTests {
    let series = try! Series.sincos()

    private func state(_ config: TrainingConfig) throws -> RunState {
        let split = try WindowSplit.make(pointCount: 1000, seqLen: 4, validationFraction: config.validationFraction)
        return RunState(config: config, split: split, parameters: [Float](repeating: 0.1, count: ParameterLayout(config.model).count))
    }

    /// Lightning's rule: stop once the monitored loss has not strictly improved for `patience` epochs.
    @Test func earlyStoppingStopsAtTheRightEpoch() throws {
        var s = try state(validatedConfig(epochs: 20, schedule: nil, earlyStopping: 3))
        let vals: [Double] = [1, 0.5, 0.6, 0.5, 0.7, 0.4, 0.45, 0.4, 0.41, 0.3]
        // epochs 2 (0.5) best; 3, 4 (a tie is no improvement) bad; 5 bad: stop after epoch 5
        let ran = try driveEpochs(&s, losses: vals.map { (0.001, $0) })
        #expect(ran == 5 && s.epoch == 5)
        #expect(lightningStopEpoch(vals, patience: 3) == 5)
        #expect(s.monitor.earlyStopped && s.monitor.bestEpoch == 2 && s.monitor.best == 0.5)
        #expect(s.isFinished && !s.targetReached)
    }

    /// With a validation part the target is checked on the validation loss, else on the training loss.
    @Test func targetLossActsOnValidationLossWhenThereIsOne() throws {
        var v = try state(validatedConfig(epochs: 5, schedule: nil, target: 1e-3))
        #expect(try driveEpochs(&v, losses: [(1e-6, 1.0), (1e-6, 0.5), (1.0, 1e-4), (1, 1), (1, 1)]) == 3)
        #expect(v.targetReached)
        var t = try state(validatedConfig(epochs: 5, val: 0, schedule: nil, target: 1e-3))
        #expect(try driveEpochs(&t, losses: [(1.0, nil), (1e-4, nil), (1, nil), (1, nil), (1, nil)]) == 2)
        #expect(t.targetReached)

        // a real run stops at the first epoch whose validation MSE is below the target
        let probe = try InProcessTrainer(config: validatedConfig(epochs: 12), series: series).run()
        let vals = probe.metrics.compactMap(\.valLoss)
        #expect(vals.count == 12)
        let target = vals[5] * 1.000001
        let stop = try #require(vals.firstIndex { $0 < target }) + 1
        let r = try InProcessTrainer(config: validatedConfig(epochs: 12, target: target), series: series).run()
        #expect(r.targetReached == true && r.epochs == stop)
        #expect(r.metrics.map(\.valLoss) == Array(probe.metrics.prefix(stop).map(\.valLoss)))
        // the training MSE is reported apart, over the training windows only
        let trainer = try InProcessTrainer(config: validatedConfig(epochs: 1), series: series)
        let one = try trainer.run()
        #expect(one.metrics[0].loss == trainer.meanLoss(windows: trainer.split.train))
        #expect(one.metrics[0].valLoss == trainer.meanLoss(windows: trainer.split.validation))
    }

    /// A real run with early stopping stops where Lightning's rule says, and keeps the best weights:
    /// those of a run that ends at the best epoch.
    @Test func earlyStoppingKeepsTheBestWeights() throws {
        let probe = try InProcessTrainer(config: validatedConfig(epochs: 30, lr: 0.1), series: series).run()
        let vals = probe.metrics.compactMap(\.valLoss)
        let patience = try #require((1...4).first { lightningStopEpoch(vals, patience: $0) != nil },
                                    "validation losses never stall: \(vals)")
        let stop = try #require(lightningStopEpoch(vals, patience: patience))
        let r = try InProcessTrainer(config: validatedConfig(epochs: 30, lr: 0.1, earlyStopping: patience), series: series).run()
        #expect(r.earlyStopped == true && r.epochs == stop)
        #expect(r.metrics.map(\.lr) == Array(probe.metrics.prefix(stop).map(\.lr)))
        let bestEpoch = try #require(r.bestEpoch)
        #expect(bestEpoch < stop)
        #expect(r.bestValLoss == vals[..<stop].min())
        #expect(r.bestValLoss == vals[bestEpoch - 1])
        // the plateau schedule depends on the losses only: a run of bestEpoch epochs ends with those weights
        let short = try InProcessTrainer(config: validatedConfig(epochs: bestEpoch, lr: 0.1), series: series).run()
        #expect(r.bestParameters == short.parameters)
        #expect(r.parameters != short.parameters)
    }

    /// The rate of every epoch is in the metrics; warmup and schedule move it.
    @Test func metricsCarryTheLearningRate() throws {
        let config = validatedConfig(epochs: 6, schedule: LRScheduleConfig(kind: .step, warmup: 20, stepSize: 2, gamma: 0.5))
        let r = try InProcessTrainer(config: config, series: series).run()
        var s = LRScheduler(config: try #require(config.schedule), baseLR: 0.05, epochs: 6)
        var want: [Double] = []
        let perEpoch = 13   // ceil(796 / 64)
        for _ in 0..<6 {
            var last = 0.0
            for _ in 0..<perEpoch { last = s.lr; s.afterStep() }
            want.append(last)
            s.afterEpoch(monitored: 0)
        }
        #expect(r.metrics.map(\.lr) == want)
        // a constant rate is the configured one
        let c = try InProcessTrainer(config: validatedConfig(epochs: 2, schedule: nil), series: series).run()
        #expect(c.metrics.map(\.lr) == [0.05, 0.05])
    }

    /// The coordinator (overlapped evaluation or not, 1–3 workers) gives in-process's bits with a
    /// schedule, a validation part and early stopping: weights, best weights, losses, rates, stop epoch.
    @Test(arguments: [(2, true), (3, false), (1, true)])
    func workersGiveInProcessBitsWithScheduleValidationAndEarlyStopping(workers: Int, overlap: Bool) throws {
        let probe = try InProcessTrainer(config: validatedConfig(epochs: 30, lr: 0.1), series: series).run()
        let vals = probe.metrics.compactMap(\.valLoss)
        let patience = try #require((1...4).first { lightningStopEpoch(vals, patience: $0) != nil })
        let config = validatedConfig(epochs: 30, lr: 0.1, earlyStopping: patience)
        let reference = try InProcessTrainer(config: config, series: series).run()
        #expect(reference.earlyStopped == true)
        let h = try Harness(config: config, series: series, workers: workers)
        h.coordinator.overlapEvaluation = overlap
        try h.run()
        #expect(h.coordinator.failure == nil)
        let r = h.coordinator.result(now: h.now)
        #expect(r.parameters == reference.parameters)
        #expect(r.bestParameters == reference.bestParameters)
        #expect(r.bestEpoch == reference.bestEpoch && r.earlyStopped == true)
        #expect(r.steps == reference.steps && r.epochs == reference.epochs)
        #expect(r.metrics.map(\.loss) == reference.metrics.map(\.loss))
        #expect(r.metrics.map(\.valLoss) == reference.metrics.map(\.valLoss))
        #expect(r.metrics.map(\.lr) == reference.metrics.map(\.lr))
        #expect(h.coordinator.workers.values.map(\.samples).reduce(0, +) == reference.samples)
    }

    /// Full batch without a validation part (the next step measures the epoch's loss): a plateau
    /// schedule and early stopping on the training loss decide the same in every mode.
    @Test func fullBatchScheduleAndEarlyStoppingAgreeEverywhere() throws {
        var config = fullBatchConfig(epochs: 60)
        config.optimizer.learningRate = 0.2
        config.schedule = LRScheduleConfig(kind: .plateau, warmup: 3, patience: 0, factor: 0.5)
        let probe = try InProcessTrainer(config: config, series: series).run()
        let losses = probe.metrics.map(\.loss)
        let patience = try #require((1...4).first { lightningStopEpoch(losses, patience: $0) != nil }, "\(losses)")
        config.earlyStopping = patience
        let reference = try InProcessTrainer(config: config, series: series).run()
        #expect(reference.earlyStopped == true && reference.epochs == lightningStopEpoch(losses, patience: patience))
        for (workers, overlap) in [(2, true), (1, false)] {
            let h = try Harness(config: config, series: series, workers: workers)
            h.coordinator.overlapEvaluation = overlap
            try h.run()
            let r = h.coordinator.result(now: h.now)
            #expect(r.parameters == reference.parameters)
            #expect(r.metrics.map(\.loss) == reference.metrics.map(\.loss))
            #expect(r.metrics.map(\.lr) == reference.metrics.map(\.lr))
            #expect(r.steps == reference.steps)
        }
    }

    /// A run resumed from a checkpoint taken mid-schedule (warmup over, a plateau decay behind it,
    /// best weights kept) ends with the bits of an uninterrupted one.
    @Test func aRunResumedMidScheduleEndsWithTheSameBits() throws {
        let config = validatedConfig(epochs: 10, lr: 0.1, schedule: LRScheduleConfig(kind: .plateau, warmup: 5, patience: 0, factor: 0.5, threshold: 0.6),
                                     earlyStopping: 8)
        let clean = try Harness(config: config, series: series, workers: 2)
        try clean.run()
        let reference = clean.coordinator.result(now: clean.now)
        let rates = reference.metrics.compactMap(\.lr)
        #expect(rates[0] == 0.1 && rates[..<5].contains { $0 < 0.1 }, "a decay before the checkpoint: \(rates) \(reference.metrics.map(\.valLoss))")

        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zt-sched-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let store = CheckpointStore(runDirectory: tmp, keep: 2)
        let first = try Harness(config: config, series: series, workers: 2)
        first.coordinator.checkpointEvery = 7
        first.coordinator.onCheckpoint = { c in try? store.save(c) }
        first.stopAfterStep = 75   // epoch 6 of 13-step epochs
        try first.run()
        let saved = try store.latest()
        #expect(saved.counters.step == 70 && saved.counters.schedule != nil && saved.best != nil)

        let second = try Harness(config: config, series: series, workers: 3, resume: saved)
        try second.run()
        let r = second.coordinator.result(now: second.now)
        #expect(r.parameters == reference.parameters)
        #expect(r.bestParameters == reference.bestParameters && r.bestEpoch == reference.bestEpoch)
        #expect(r.metrics.map(\.lr) == reference.metrics.map(\.lr))
        #expect(r.metrics.map(\.valLoss) == reference.metrics.map(\.valLoss))
        // and in-process agrees
        let inProcess = try InProcessTrainer(config: config, series: series).run()
        #expect(inProcess.parameters == reference.parameters)
    }
}
