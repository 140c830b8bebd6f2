import RNN
import Series

/// What every trainer shares: the weights, the optimizer, the epoch schedule and the accounting.
///
/// The in-process trainer and the coordinator both drive a run through this type, so they pick the
/// same windows for every step, apply the same update to the same reduced sums, and stop at the same
/// point: that, with the canonical tree, is why they end with the same bits.
///
///     while let n = state.nextBatch(into: &windows) {
///         let root = /* canonical sum over the micro-batches of windows[0..<n] */
///         try state.apply(root: root, windows: n)
///         if state.epochEnded { … evaluate, state.closeEpoch(…) }
///     }
public struct RunState: Sendable {
    public let config: TrainingConfig
    public let split: WindowSplit
    public private(set) var parameters: [Float]
    public private(set) var optimizer: Optimizer<Float>
    /// Windows per step (the global batch, at most the training windows).
    public let batch: Int
    public let stepsPerEpoch: Int
    /// The current epoch, from 1 (0 before the first step).
    public private(set) var epoch = 0
    /// Steps taken in the current epoch.
    public private(set) var stepInEpoch = 0
    /// Steps taken in the run.
    public private(set) var step = 0
    /// Windows that entered a gradient, in the run and in this epoch.
    public private(set) var samples = 0
    public private(set) var epochSamples = 0
    public private(set) var epochLossSum = 0.0
    /// Global gradient norm of the last step, before clipping.
    public private(set) var lastGradNorm = 0.0
    /// Set once the target loss is reached.
    public private(set) var targetReached = false
    /// The step's windows ran out of the epoch or the step limit: time to evaluate and ``closeEpoch(_:)``.
    public private(set) var epochEnded = false
    private var order: [Int] = []
    private var gradient: [Float]

    public init(config: TrainingConfig, split: WindowSplit, parameters: [Float]) {
        self.config = config
        self.split = split
        self.parameters = parameters
        optimizer = Optimizer(config: config.optimizer, parameterCount: parameters.count)
        batch = max(1, min(config.batch, split.train.count))
        stepsPerEpoch = epochSteps(windows: split.train.count, batch: batch)
        gradient = [Float](repeating: 0, count: parameters.count)
    }

    /// Is the run over (a limit or the target reached)?
    public var isFinished: Bool {
        if targetReached { return true }
        if let s = config.steps, step >= s { return true }
        if let e = config.epochs, epoch >= e && stepInEpoch >= stepsPerEpoch { return true }
        return false
    }

    /// Writes the window starts of the next step into `windows` and returns how many, or nil when the
    /// run is over. Starts the next epoch (and its permutation) when the current one is done.
    public mutating func nextBatch(into windows: inout [Int]) -> Int? {
        precondition(!epochEnded, "closeEpoch(_:) must follow an ended epoch")
        guard !isFinished else { return nil }
        if epoch == 0 || stepInEpoch >= stepsPerEpoch {
            epoch += 1
            stepInEpoch = 0
            epochSamples = 0
            epochLossSum = 0
            let n = split.train.count
            order = config.shuffle ? epochPermutation(count: n, seed: config.seed, epoch: epoch - 1) : Array(0..<n)
        }
        let range = batchRange(step: stepInEpoch, windows: split.train.count, batch: batch)
        if windows.count < range.count { windows = [Int](repeating: 0, count: batch) }
        for (j, pos) in range.enumerated() { windows[j] = split.train[order[pos]] }
        return range.count
    }

    /// Applies the reduced sums of the current step: `root` is `(P + 1)`, the gradient sum over the step's
    /// `windows` windows followed by their loss sum. Divides by the window count, clips, steps the
    /// optimizer. A non-finite gradient or loss is refused *before* it touches the weights.
    ///
    /// - Returns: the step's mean loss.
    @discardableResult
    public mutating func apply(root: UnsafeBufferPointer<Float>, windows count: Int) throws(TrainingError) -> Double {
        let P = parameters.count
        precondition(root.count == P + 1 && count >= 1)
        let c = Float(count)
        var finite = root[P].isFinite
        gradient.withUnsafeMutableBufferPointer { g in
            for i in 0..<P {
                g[i] = root[i] / c
                finite = finite && g[i].isFinite
            }
        }
        guard finite else {
            throw .diverged("the loss or gradient became \(root[P].isNaN ? "NaN" : "non-finite") at step \(step + 1) (epoch \(epoch)); lower --lr or set --clip-norm")
        }
        lastGradNorm = config.clipNorm.map { clipGradientNorm(&gradient, maxNorm: $0) }
            ?? gradient.withUnsafeBufferPointer { globalNorm($0) }
        optimizer.update(&parameters, gradient: gradient)
        step += 1
        stepInEpoch += 1
        samples += count
        epochSamples += count
        let loss = Double(root[P])
        epochLossSum += loss
        if stepInEpoch >= stepsPerEpoch || config.steps.map({ step >= $0 }) == true { epochEnded = true }
        return loss / Double(count)
    }

    /// At an ended epoch: does the next step's forward pass measure this epoch's loss?
    ///
    /// True when one step covers every window the epoch-end loss is about (the global batch is the
    /// whole training split and there is no validation split, so the step's windows are
    /// `split.all`) and the limits leave a next step. That step runs on the epoch's weights, so its
    /// loss sum (the last value of the reduced root) over the window count *is* the MSE over all
    /// windows: no separate evaluation is needed. Every trainer follows this rule, so in-process
    /// and data-parallel runs report the same losses and stop at the same epoch:
    ///
    ///     if state.nextStepMeasuresEpochLoss {
    ///         let saved = state; state.closeEpoch(loss: .infinity)   // provisionally
    ///         … next step: root = canonical sum; loss = Double(root[P]) / Double(n)
    ///         if loss < target { state = saved; state.closeEpoch(loss: loss) }  // step dropped unapplied
    ///         else { try state.apply(root: root, windows: n) }
    ///     }
    ///
    /// The last epoch of a run (no next step) is evaluated separately, as are mini-batch epochs.
    public var nextStepMeasuresEpochLoss: Bool {
        guard epochEnded, stepsPerEpoch == 1, split.validation.isEmpty, split.train == split.all else { return false }
        if let s = config.steps, step >= s { return false }
        if let e = config.epochs, epoch >= e { return false }
        return true
    }

    /// The epoch-end loss that a step's reduced root measures when ``nextStepMeasuresEpochLoss`` was
    /// true at the epoch's end: the step's loss sum `root[P]` (Float, summed in the canonical tree
    /// order) over its `count` windows.
    public static func epochLoss(root: UnsafeBufferPointer<Float>, windows count: Int) -> Double {
        Double(root[root.count - 1]) / Double(count)
    }

    /// Records the evaluation at the end of an epoch and checks the target.
    public mutating func closeEpoch(loss: Double) {
        epochEnded = false
        if let t = config.targetLoss, loss < t { targetReached = true }
    }

    /// Mean training loss of the epoch so far, weighted by windows.
    public var epochTrainLoss: Double { epochSamples > 0 ? epochLossSum / Double(epochSamples) : .nan }

    /// Everything but the big vectors, for checkpoints. (The epoch order needs no RNG state: it is a
    /// pure function of the seed and the epoch.)
    public struct Counters: Sendable, Codable, Equatable {
        public var epoch: Int
        public var stepInEpoch: Int
        public var step: Int
        public var samples: Int
        public var epochSamples: Int
        public var epochLossSum: Double
        public var lastGradNorm: Double
        public var targetReached: Bool
        public var epochEnded: Bool
        public var optimizerStep: Int
    }

    public var counters: Counters {
        Counters(epoch: epoch, stepInEpoch: stepInEpoch, step: step, samples: samples, epochSamples: epochSamples,
                 epochLossSum: epochLossSum, lastGradNorm: lastGradNorm, targetReached: targetReached,
                 epochEnded: epochEnded, optimizerStep: optimizer.step)
    }

    /// Checks that `c` is a point of a run of `config` over `split` (a checkpoint of another run, or
    /// a damaged one, is refused before it can index out of the epoch).
    public static func check(counters c: Counters, config: TrainingConfig, split: WindowSplit) throws(TrainingError) {
        let batch = max(1, min(config.batch, split.train.count))
        let perEpoch = epochSteps(windows: split.train.count, batch: batch)
        guard c.stepInEpoch <= perEpoch, c.epoch >= (c.step > 0 ? 1 : 0), c.epochSamples <= split.train.count,
              c.step <= c.epoch * perEpoch, c.samples <= c.step * batch else {
            throw .data("the checkpoint's position (epoch \(c.epoch), step \(c.step), \(c.stepInEpoch) of \(perEpoch) steps in the epoch) does not fit this run's \(split.train.count) training windows in batches of \(batch)")
        }
    }

    /// Restores a run exactly where a checkpoint left it.
    public init(config: TrainingConfig, split: WindowSplit, parameters: [Float], m: [Float], v: [Float], counters c: Counters) {
        self.init(config: config, split: split, parameters: parameters)
        optimizer = Optimizer(config: config.optimizer, step: c.optimizerStep, m: m, v: v)
        epoch = c.epoch
        stepInEpoch = c.stepInEpoch
        step = c.step
        samples = c.samples
        epochSamples = c.epochSamples
        epochLossSum = c.epochLossSum
        lastGradNorm = c.lastGradNorm
        targetReached = c.targetReached
        epochEnded = c.epochEnded
        if epoch > 0 {
            let n = split.train.count
            order = config.shuffle ? epochPermutation(count: n, seed: config.seed, epoch: epoch - 1) : Array(0..<n)
        }
    }
}

/// `Series.stepsPerEpoch`, reachable where a property of that name shadows it.
private func epochSteps(windows: Int, batch: Int) -> Int { stepsPerEpoch(windows: windows, batch: batch) }
