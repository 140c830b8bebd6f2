#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN
import Series

/// One line of `metrics.jsonl`: the state at the end of an epoch (or where the run stopped).
public struct EpochMetrics: Sendable, Codable, Equatable {
    public var epoch: Int
    /// Optimizer steps taken so far in the run.
    public var step: Int
    /// Windows of this epoch that entered a gradient (all training windows for a whole epoch).
    public var samples: Int
    /// Mean of the step losses of this epoch, weighted by windows.
    public var trainLoss: Double
    /// MSE over the training windows with the weights at the end of the epoch (every window of the
    /// series when there is no validation part).
    ///
    /// When one step covers every window (full batch, no validation split) and a next step
    /// follows, this is that step's loss sum over the window count: the training forward pass at
    /// the epoch's weights, summed in Float in the canonical tree order, so its last digits can
    /// differ from a separate evaluation's (``RunState/nextStepMeasuresEpochLoss``). The last
    /// epoch of a run, and every epoch of a mini-batch run, is evaluated separately.
    public var loss: Double
    /// MSE over the validation windows, if there are any.
    public var valLoss: Double?
    /// The learning rate of the epoch's last step (nil only in records from before schedules).
    public var lr: Double? = nil
    /// Training windows per second of compute time this epoch (evaluation excluded).
    public var samplesPerSecond: Double
    public var epochSeconds: Double
    /// Seconds since the run started.
    public var wallSeconds: Double
    /// Global gradient norm of the epoch's last step, before clipping.
    public var gradNorm: Double
    /// When the line was written to `metrics.jsonl` (ISO 8601, UTC; ``RunDirectory/append(_:)`` sets it).
    public var time: String? = nil
    /// Data-parallel runs: mean time per step in each phase.
    public var timing: StepTiming? = nil
    /// Data-parallel runs: bytes received and sent by the coordinator so far.
    public var bytesIn: Int? = nil
    public var bytesOut: Int? = nil
    /// Data-parallel runs: every process's bytes in and out per step, the mean over the epoch's steps
    /// (the coordinator's own count; each worker's and shard's as it reported them, ``ProcessTraffic``).
    public var processes: [ProcessTraffic]? = nil
    /// Data-parallel runs, so far in the run: speculative copies for stragglers, orders given again,
    /// leaves of lost workers reassigned, late or duplicate answers ignored, bad frames dropped.
    public var speculative: Int? = nil
    public var retried: Int? = nil
    public var reassigned: Int? = nil
    public var lateOrDuplicate: Int? = nil
    public var droppedFrames: Int? = nil
    /// Data-parallel runs: workers that took part in the epoch's last step.
    public var workers: Int? = nil
    /// Data-parallel runs with `--audit-rate`, so far in the run: leaf runs computed twice that
    /// agreed, tree nodes whose two answers differed, workers quarantined.
    public var audited: Int? = nil
    public var auditMismatches: Int? = nil
    public var quarantined: Int? = nil
    /// ``WeightsHash/hex(_:)`` of the weights after the epoch's last step (`step`); nil in records
    /// from before weights hashes.
    public var weightsHash: String? = nil
}

/// What a trainer reports while it runs.
public enum TrainingEvent: Sendable {
    /// After each optimizer step (`timing` for data-parallel runs).
    case step(epoch: Int, step: Int, stepInEpoch: Int, stepsPerEpoch: Int, loss: Double, samplesPerSecond: Double,
              timing: StepTiming? = nil)
    /// At the end of each epoch (and at an early stop).
    case epoch(EpochMetrics)
}

/// The outcome of a run.
public struct TrainingResult: Sendable {
    public var parameters: [Float]
    public var metrics: [EpochMetrics]
    public var steps: Int
    public var epochs: Int
    public var wallSeconds: Double
    /// Seconds spent computing steps (evaluation excluded).
    public var trainSeconds: Double
    public var samples: Int
    /// MSE over the training windows with the final weights (the last epoch's ``EpochMetrics/loss``).
    public var finalLoss: Double
    public var finalValLoss: Double?
    /// nil when no target was set.
    public var targetReached: Bool?
    public var optimizerStep: Int
    /// With a validation part: the weights, epoch and validation MSE of the epoch with the lowest
    /// validation MSE (nil without a validation part, or before any finite one).
    public var bestParameters: [Float]? = nil
    public var bestEpoch: Int? = nil
    public var bestValLoss: Double? = nil
    /// nil unless `--early-stopping` was given.
    public var earlyStopped: Bool? = nil
}

/// Training in this process, with the same micro-batches, the same canonical reduction and the same
/// ``RunState`` as the data-parallel coordinator, so both give the same bits. It writes the same
/// checkpoints at the same points (``checkpointEvery``) and resumes from them (`resume:`).
public final class InProcessTrainer {
    public let config: TrainingConfig
    public let series: Series
    public let split: WindowSplit
    public let threads: Int
    /// The run's id in its checkpoints (a resumed run keeps its checkpoint's).
    public let runID: UInt64
    public private(set) var state: RunState
    public var parameters: [Float] { state.parameters }
    /// The epoch records so far (a resumed run starts with its checkpoint's).
    public private(set) var metrics: [EpochMetrics] = []
    /// Seconds spent computing steps over the whole run (a resumed run's include the time before).
    public private(set) var trainSeconds = 0.0
    /// Every this many steps, ``onCheckpoint`` gets a ``RunCheckpoint`` (0: never), at the points
    /// the coordinator writes them.
    public var checkpointEvery = 0
    /// Writes checkpoints; an error stops the run (``run(onEvent:)`` throws it).
    public var onCheckpoint: ((RunCheckpoint) throws(TrainingError) -> Void)?
    /// Asked before every step: true stops the run there (``stopped`` says so), between steps.
    public var shouldStop: () -> Bool = { false }
    /// Whether the last ``run(onEvent:)`` ended because ``shouldStop`` said so.
    public private(set) var stopped = false
    private let engine: GradientEngine
    private let evaluator: Evaluator

    /// - Parameters:
    ///   - initialParameters: start from these weights (`--init`); nil draws them from `config.seed`.
    ///   - resume: continue this checkpoint's run (its configuration, run id, weights and position win).
    public init(config: TrainingConfig, series: Series, initialParameters: [Float]? = nil, threads: Int = 1,
                resume: RunCheckpoint? = nil) throws(TrainingError) {
        guard threads >= 1 else { throw .invalidConfig("--threads must be at least 1 (got \(threads))") }
        let config = resume?.config ?? config
        let prepared = try PreparedRun(config: config, series: series, initialParameters: initialParameters)
        self.config = config
        self.series = series
        self.threads = threads
        split = prepared.split
        if let r = resume {
            try RunState.check(counters: r.counters, config: config, split: prepared.split)
            state = RunState(config: config, split: prepared.split, parameters: r.parameters, m: r.m, v: r.v, counters: r.counters, best: r.best)
            metrics = r.metrics
            trainSeconds = r.trainSeconds
            runID = r.runID
        } else {
            state = RunState(config: config, split: prepared.split, parameters: prepared.parameters)
            runID = UInt64.random(in: 1...UInt64.max)
        }
        engine = GradientEngine(config: config.model, microBatch: prepared.microBatch, threads: threads)
        evaluator = Evaluator(config: config.model, series: series, split: prepared.split)
        if resume == nil && prepared.startsAtPersistence {
            state.keepStart(valLoss: evaluator.meanLoss(prepared.parameters, windows: prepared.split.validation))
        }
    }

    /// MSE of the current weights over the given windows.
    public func meanLoss(windows: [Int]) -> Double { evaluator.meanLoss(parameters, windows: windows) }

    /// The run as it stands between steps (after ``run(onEvent:)`` returns or throws).
    public func checkpoint() -> RunCheckpoint {
        RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds)
    }

    /// Runs until the epoch or step limit, the target loss, or ``shouldStop``.
    ///
    /// On a non-finite gradient it stops *before* applying it and throws ``TrainingError/diverged(_:)``;
    /// ``parameters`` then holds the last good weights. A checkpoint that cannot be written stops the
    /// run there and its error is thrown.
    public func run(onEvent: (TrainingEvent) -> Void = { _ in }) throws(TrainingError) -> TrainingResult {
        let start = ContinuousClock.now
        var windows = [Int](repeating: 0, count: state.batch)
        var epochTrain = 0.0
        let values = series.values
        stopped = false
        // A full-batch epoch whose loss the next step measures (``RunState/nextStepMeasuresEpochLoss``,
        // deferred in the run state): its metrics without the loss, and whether a checkpoint was due
        // there (written once the epoch is settled, as the coordinator does).
        var pending: (metrics: EpochMetrics, checkpoint: Bool)?
        while true {
            if shouldStop() {
                stopped = true
                break
            }
            guard let n = state.nextBatch(into: &windows) else { break }
            let t0 = ContinuousClock.now
            // the root lives in the engine's rows (valid until its next call): no copy
            let root = state.parameters.withUnsafeBufferPointer { p in
                values.withUnsafeBufferPointer { s in
                    windows.withUnsafeBufferPointer { w in
                        engine.computeAll(params: p, series: s, windows: UnsafeBufferPointer(rebasing: w[0..<n]))
                    }
                }
            }
            let p = pending
            pending = nil
            let outcome = try state.finish(root: root, windows: n, evaluation: nil, keepClosed: p?.checkpoint == true) { (s) throws(TrainingError) in
                guard let p else { return }
                var m = p.metrics
                m.loss = s.loss
                metrics.append(m)
                onEvent(.epoch(m))
                if let closed = s.closed, !s.stops {
                    try save(RunCheckpoint(runID: runID, state: closed, metrics: metrics, trainSeconds: trainSeconds))
                }
            }
            // the run ended at the epoch's end (target, early stopping): this step was dropped unapplied
            guard case .applied(let loss) = outcome else { break }
            let dt = seconds(since: t0)
            trainSeconds += dt
            epochTrain += dt
            onEvent(.step(epoch: state.epoch, step: state.step, stepInEpoch: state.stepInEpoch, stepsPerEpoch: state.stepsPerEpoch,
                          loss: loss, samplesPerSecond: epochTrain > 0 ? Double(state.epochSamples) / epochTrain : 0))
            let checkpointDue = checkpointEvery > 0 && state.step % checkpointEvery == 0
            if state.epochEnded {
                defer { epochTrain = 0 }
                if state.nextStepMeasuresEpochLoss {
                    // the next step's forward pass gives the loss: closed provisionally, settled there
                    let m = evaluator.epochMetrics(state: state, epochSeconds: epochTrain, wallSeconds: seconds(since: start),
                                                   evaluate: false)
                    pending = (m, checkpointDue)
                    state.deferEpochClose(evaluated: false)
                    continue
                }
                let m = evaluator.epochMetrics(state: state, epochSeconds: epochTrain, wallSeconds: seconds(since: start))
                state.closeEpoch(loss: m.loss, valLoss: m.valLoss)
                metrics.append(m)
                onEvent(.epoch(m))
            }
            if checkpointDue { try save(checkpoint()) }
        }
        if let p = pending, let weights = state.deferredEpochParameters {
            // stopped before the step that measures it: evaluated here rather than lost
            pending = nil
            var m = p.metrics
            m.loss = evaluator.meanLoss(weights, windows: split.train)
            state.settleEpoch(loss: m.loss, valLoss: m.valLoss)
            metrics.append(m)
            onEvent(.epoch(m))
            if p.checkpoint { try save(checkpoint()) }
        }
        return evaluator.result(state: state, metrics: metrics, wallSeconds: seconds(since: start), trainSeconds: trainSeconds)
    }

    private func save(_ c: RunCheckpoint) throws(TrainingError) {
        try onCheckpoint?(c)
    }
}

/// A validated configuration with its split, first weights and effective micro-batch.
struct PreparedRun {
    let split: WindowSplit
    let parameters: [Float]
    /// `--micro-batch`, but never more windows than a step has: the leaves are the same, and the
    /// workspaces stay as small as the data.
    let microBatch: Int
    /// The first weights forecast like persistence (``persistenceStart(_:config:)``), so the run keeps them as
    /// the candidate of epoch 0 for the best weights.
    let startsAtPersistence: Bool

    init(config: TrainingConfig, series: Series, initialParameters: [Float]?) throws(TrainingError) {
        try config.validate()
        guard series.channels == config.model.inputSize && series.channels == config.model.outputSize else {
            throw .data("the series has \(series.channels) channels but the model has \(config.model.inputSize) inputs and \(config.model.outputSize) outputs")
        }
        do {
            split = try WindowSplit.make(series: series, seqLen: config.model.seqLen, validationFraction: config.validationFraction)
        } catch {
            throw .data(error.description)
        }
        let count = ParameterLayout(config.model).count
        if let p = initialParameters {
            guard p.count == count else { throw .model("initial weights have \(p.count) values, the model needs \(count)") }
            parameters = p
            startsAtPersistence = false
        } else {
            var rng = SeededRNG(seed: config.seed)
            var p = initializeParameters(config: config.model, using: &rng)
            startsAtPersistence = persistenceStart(&p, config: config) && !split.validation.isEmpty
            parameters = p
        }
        microBatch = min(config.microBatch, min(config.batch, split.train.count))
    }
}

/// Sets the output layer of a seed cell with a linear head, on a transformed series, so that the first
/// weights forecast like persistence (`y_i = y_{i-1}` in the series' own units): without differencing the
/// output is the window's last point (`W_y` picks `x_t`, `b_y = 0`); with one ordinary difference and no
/// seasonal one it is a change of zero (`W_y = 0`, `b_y = -offset / divisor`, averaged over the series of a
/// long-format file, whose offsets differ). The hidden layer keeps its `nn.Linear` draw. Returns whether it
/// did: other cells, heads and transforms keep PyTorch's initialisation.
func persistenceStart(_ p: inout [Float], config: TrainingConfig) -> Bool {
    let m = config.model
    guard m.head == .linear, m.cell == .seed, let t = config.transform, m.inputSize == m.outputSize else { return false }
    let exact = t.lag == 0 || (t.difference == 1 && t.seasonalPeriod == 0)
    guard exact else { return false }
    let L = ParameterLayout(m), H = m.hiddenSize, C = m.outputSize
    for i in L.wy.range { p[i] = 0 }
    for i in L.by.range { p[i] = 0 }
    if t.lag == 0 {
        for c in 0..<C { p[L.wy.range.lowerBound + c * (H + C) + H + c] = 1 }
    } else {
        let S = max(1, t.offset.count / C)
        for c in 0..<C {
            var b = 0.0
            for s in 0..<S { b -= t.offset[s * C + c] / t.divisor[s * C + c] }
            p[L.by.range.lowerBound + c] = Float(b / Double(S))
        }
    }
    return true
}

/// Losses over whole window sets, and the epoch and run records built from them.
final class Evaluator {
    let series: Series
    let split: WindowSplit
    private let workspace: RNNWorkspace<Float>

    init(config: ModelConfig, series: Series, split: WindowSplit) {
        self.series = series
        self.split = split
        workspace = RNNWorkspace(config: config, maxBatch: 256)
    }

    func meanLoss(_ parameters: [Float], windows: [Int]) -> Double {
        guard !windows.isEmpty else { return .nan }
        return workspace.lossSum(params: parameters, series: series.values, windows: windows) / Double(windows.count)
    }

    /// The record of an ended epoch (its weights hash included); with `evaluate: false` its losses are
    /// left NaN/nil (the next step measures them, ``RunState/nextStepMeasuresEpochLoss``, or the
    /// coordinator's evaluation does). Both trainers build their epoch records here.
    func epochMetrics(state: RunState, epochSeconds: Double, wallSeconds: Double, evaluate: Bool = true) -> EpochMetrics {
        EpochMetrics(
            epoch: state.epoch, step: state.step, samples: state.epochSamples, trainLoss: state.epochTrainLoss,
            loss: evaluate ? meanLoss(state.parameters, windows: split.train) : .nan,
            valLoss: !evaluate || split.validation.isEmpty ? nil : meanLoss(state.parameters, windows: split.validation),
            lr: state.lastLR,
            samplesPerSecond: Double(state.epochSamples) / max(epochSeconds, 1e-9),
            epochSeconds: epochSeconds, wallSeconds: wallSeconds, gradNorm: state.lastGradNorm,
            weightsHash: WeightsHash.hex(state.weightsHash))
    }

    func result(state: RunState, metrics: [EpochMetrics], wallSeconds: Double, trainSeconds: Double) -> TrainingResult {
        TrainingResult(
            parameters: state.parameters, metrics: metrics, steps: state.step, epochs: state.epoch,
            wallSeconds: wallSeconds, trainSeconds: trainSeconds, samples: state.samples,
            finalLoss: metrics.last?.loss ?? meanLoss(state.parameters, windows: split.train),
            finalValLoss: split.validation.isEmpty ? nil : (metrics.last?.valLoss ?? meanLoss(state.parameters, windows: split.validation)),
            targetReached: state.config.targetLoss == nil ? nil : state.targetReached, optimizerStep: state.optimizer.step,
            bestParameters: state.bestParameters,
            bestEpoch: state.bestParameters == nil ? nil : state.monitor.bestEpoch,
            bestValLoss: state.bestParameters == nil ? nil : state.monitor.best,
            earlyStopped: state.config.earlyStopping == nil ? nil : state.monitor.earlyStopped)
    }
}

func seconds(since t: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - t
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
