import Foundation
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
    /// MSE over all windows of the series with the weights at the end of the epoch.
    public var loss: Double
    /// MSE over the validation windows, if there are any.
    public var valLoss: Double?
    /// Training windows per second of compute time this epoch (evaluation excluded).
    public var samplesPerSecond: Double
    public var epochSeconds: Double
    /// Seconds since the run started.
    public var wallSeconds: Double
    /// Global gradient norm of the epoch's last step, before clipping.
    public var gradNorm: Double
}

/// What a trainer reports while it runs.
public enum TrainingEvent: Sendable {
    /// After each optimizer step.
    case step(epoch: Int, step: Int, stepInEpoch: Int, stepsPerEpoch: Int, loss: Double, samplesPerSecond: Double)
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
    /// MSE over all windows with the final weights.
    public var finalLoss: Double
    public var finalValLoss: Double?
    /// nil when no target was set.
    public var targetReached: Bool?
    public var optimizerStep: Int
}

/// Training in this process, with the same micro-batches and the same canonical reduction as the
/// data-parallel coordinator, so both give the same bits.
public final class InProcessTrainer {
    public let config: TrainingConfig
    public let series: Series
    public let split: WindowSplit
    public let threads: Int
    public private(set) var parameters: [Float]
    private var optimizer: Optimizer<Float>
    private let engine: GradientEngine
    private let evaluator: RNNWorkspace<Float>

    /// - Parameters:
    ///   - initialParameters: start from these weights (`--init`); nil draws them from `config.seed`.
    public init(config: TrainingConfig, series: Series, initialParameters: [Float]? = nil, threads: Int = 1) throws(TrainingError) {
        try config.validate()
        guard series.channels == config.model.inputSize && series.channels == config.model.outputSize else {
            throw .data("the series has \(series.channels) channels but the model has \(config.model.inputSize) inputs and \(config.model.outputSize) outputs")
        }
        guard threads >= 1 else { throw .invalidConfig("--threads must be at least 1 (got \(threads))") }
        self.config = config
        self.series = series
        self.threads = threads
        do {
            split = try WindowSplit.make(pointCount: series.count, seqLen: config.model.seqLen, validationFraction: config.validationFraction)
        } catch {
            throw .data(error.description)
        }
        let count = ParameterLayout(config.model).count
        if let p = initialParameters {
            guard p.count == count else { throw .model("initial weights have \(p.count) values, the model needs \(count)") }
            parameters = p
        } else {
            var rng = SeededRNG(seed: config.seed)
            parameters = initializeParameters(config: config.model, using: &rng)
        }
        optimizer = Optimizer(config: config.optimizer, parameterCount: count)
        // A micro-batch never holds more windows than a step has, whatever --micro-batch says: the leaves
        // are the same, and the workspaces stay as small as the data.
        let stepWindows = min(config.batch, split.train.count)
        engine = GradientEngine(config: config.model, microBatch: min(config.microBatch, stepWindows), threads: threads)
        evaluator = RNNWorkspace(config: config.model, maxBatch: 256)
    }

    /// MSE of the current weights over the given windows.
    public func meanLoss(windows: [Int]) -> Double {
        guard !windows.isEmpty else { return .nan }
        return evaluator.lossSum(params: parameters, series: series.values, windows: windows) / Double(windows.count)
    }

    /// Runs until the epoch or step limit, or the target loss.
    ///
    /// On a non-finite gradient it stops *before* applying it and throws ``TrainingError/diverged(_:)``;
    /// ``parameters`` then holds the last good weights.
    public func run(onEvent: (TrainingEvent) -> Void = { _ in }) throws(TrainingError) -> TrainingResult {
        let start = ContinuousClock.now
        let train = split.train
        let n = train.count
        let B = min(config.batch, n)
        let perEpoch = stepsPerEpoch(windows: n, batch: B)
        let P = parameters.count
        var batchWindows = [Int](repeating: 0, count: B)
        var grad = [Float](repeating: 0, count: P)
        var metrics: [EpochMetrics] = []
        var step = 0, epoch = 0, samples = 0
        var trainSeconds = 0.0
        var reached: Bool? = config.targetLoss == nil ? nil : false
        let values = series.values

        epochLoop: while config.epochs.map({ epoch < $0 }) ?? true {
            epoch += 1
            let order = config.shuffle ? epochPermutation(count: n, seed: config.seed, epoch: epoch - 1) : Array(0..<n)
            let epochStart = ContinuousClock.now
            var epochSamples = 0, epochLossSum = 0.0, lastNorm = 0.0
            var stepInEpoch = 0
            while stepInEpoch < perEpoch {
                if let limit = config.steps, step >= limit { break }
                let range = batchRange(step: stepInEpoch, windows: n, batch: B)
                let count = range.count
                for (j, pos) in range.enumerated() { batchWindows[j] = train[order[pos]] }
                let t0 = ContinuousClock.now
                let lossSum: Float = parameters.withUnsafeBufferPointer { p in
                    values.withUnsafeBufferPointer { s in
                        batchWindows.withUnsafeBufferPointer { w in
                            let root = engine.computeAll(params: p, series: s, windows: UnsafeBufferPointer(rebasing: w[0..<count]))
                            let c = Float(count)
                            for i in 0..<P { grad[i] = root[i] / c }
                            return root[P]
                        }
                    }
                }
                guard lossSum.isFinite, grad.allSatisfy(\.isFinite) else {
                    throw .diverged("the loss or gradient became \(lossSum.isNaN ? "NaN" : "infinite") at step \(step + 1) (epoch \(epoch)); lower --lr or set --clip-norm")
                }
                lastNorm = config.clipNorm.map { clipGradientNorm(&grad, maxNorm: $0) } ?? grad.withUnsafeBufferPointer { globalNorm($0) }
                optimizer.update(&parameters, gradient: grad)
                trainSeconds += seconds(since: t0)
                step += 1
                stepInEpoch += 1
                samples += count
                epochSamples += count
                epochLossSum += Double(lossSum)
                let elapsed = seconds(since: epochStart)
                onEvent(.step(epoch: epoch, step: step, stepInEpoch: stepInEpoch, stepsPerEpoch: perEpoch,
                              loss: Double(lossSum) / Double(count),
                              samplesPerSecond: elapsed > 0 ? Double(epochSamples) / elapsed : 0))
            }
            if epochSamples == 0 { epoch -= 1; break epochLoop }
            let epochTrain = seconds(since: epochStart)
            let full = meanLoss(windows: split.all)
            let val = split.validation.isEmpty ? nil : meanLoss(windows: split.validation)
            let m = EpochMetrics(
                epoch: epoch, step: step, samples: epochSamples, trainLoss: epochLossSum / Double(epochSamples),
                loss: full, valLoss: val, samplesPerSecond: Double(epochSamples) / max(epochTrain, 1e-9),
                epochSeconds: epochTrain, wallSeconds: seconds(since: start), gradNorm: lastNorm)
            metrics.append(m)
            onEvent(.epoch(m))
            if let target = config.targetLoss, full < target { reached = true; break }
            if let limit = config.steps, step >= limit { break }
        }
        let finalLoss = metrics.last?.loss ?? meanLoss(windows: split.all)
        return TrainingResult(
            parameters: parameters, metrics: metrics, steps: step, epochs: epoch,
            wallSeconds: seconds(since: start), trainSeconds: trainSeconds, samples: samples,
            finalLoss: finalLoss,
            finalValLoss: split.validation.isEmpty ? nil : (metrics.last?.valLoss ?? meanLoss(windows: split.validation)),
            targetReached: reached, optimizerStep: optimizer.step)
    }
}

func seconds(since t: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - t
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
