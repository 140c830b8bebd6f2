import RNN
import Series

/// What every trainer shares: the weights, the optimizer and its learning-rate schedule, the epoch
/// schedule, the accounting and the decisions taken at each epoch's end (target loss, early stopping,
/// the best weights).
///
/// The in-process trainer and the coordinator both drive a run through this type, so they pick the
/// same windows for every step, apply the same update at the same learning rate to the same reduced
/// sums, and stop at the same point: that, with the canonical tree, is why they end with the same bits.
///
/// The step rule (what ends an epoch, when the target is checked, when a step already sent is
/// dropped) lives here and nowhere else; the trainers differ only in where a step's reduced sums
/// come from (``InProcessTrainer``: its own engine; ``CoordinatorCore``: the workers' answers):
///
///     while let n = state.nextBatch(into: &windows) {
///         let root = /* canonical sum over the micro-batches of windows[0..<n] */
///         switch try state.finish(root: root, windows: n, evaluation: nil) { … }   // settles, applies
///         if state.epochEnded {
///             if state.nextStepMeasuresEpochLoss { state.deferEpochClose(evaluated: false) }  // or evaluated elsewhere
///             else { … evaluate, state.closeEpoch(…) }
///         }
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
    /// The learning rate and its schedule (PyTorch's rules; see ``LRScheduler``).
    public private(set) var scheduler: LRScheduler
    /// The learning rate of the last step taken.
    public private(set) var lastLR: Double
    /// The monitored loss over the epochs: best so far, and epochs since it improved.
    public private(set) var monitor = Monitor()
    /// With a validation part: the weights at the end of the epoch with the best validation loss.
    public private(set) var bestParameters: [Float]?
    /// The step's windows ran out of the epoch or the step limit: time to evaluate and ``closeEpoch(loss:valLoss:)``.
    public private(set) var epochEnded = false
    private var order: [Int] = []
    private var gradient: [Float]
    /// An epoch whose close waits for its losses (``deferEpochClose(evaluated:)``).
    private var deferred: DeferredEpoch?

    public init(config: TrainingConfig, split: WindowSplit, parameters: [Float]) {
        self.config = config
        self.split = split
        self.parameters = parameters
        optimizer = Optimizer(config: config.optimizer, parameterCount: parameters.count)
        batch = max(1, min(config.batch, split.train.count))
        stepsPerEpoch = epochSteps(windows: split.train.count, batch: batch)
        gradient = [Float](repeating: 0, count: parameters.count)
        let perEpoch = stepsPerEpoch
        let epochs = config.epochs ?? config.steps.map { ($0 + perEpoch - 1) / perEpoch } ?? 1
        scheduler = LRScheduler(config: config.schedule ?? LRScheduleConfig(), baseLR: config.optimizer.learningRate, epochs: epochs)
        lastLR = scheduler.lr
    }

    /// What the epoch-end decisions watch, and what they found so far.
    public struct Monitor: Sendable, Codable, Equatable {
        /// The lowest monitored loss of an epoch end so far (nil: none yet, or none finite).
        public var best: Double?
        /// The epoch that reached ``best`` (0: none).
        public var bestEpoch = 0
        /// Epochs closed since ``best`` last improved (Lightning's `wait_count`).
        public var badEpochs = 0
        /// Set when `--early-stopping` ended the run.
        public var earlyStopped = false

        public init() {}
    }

    /// The loss the epoch-end decisions act on (target loss, early stopping, plateau, best weights): the
    /// validation MSE when the run has a validation part, else the MSE over the training windows.
    public func monitored(loss: Double, valLoss: Double?) -> Double {
        split.validation.isEmpty ? loss : (valLoss ?? .nan)
    }

    /// Has an epoch-end decision ended the run (target reached, or early stopping)?
    public var isStopping: Bool { targetReached || monitor.earlyStopped }

    /// Is the run over (a limit, the target reached, or early stopping)?
    public var isFinished: Bool {
        if isStopping { return true }
        if let s = config.steps, step >= s { return true }
        if let e = config.epochs, epoch >= e && stepInEpoch >= stepsPerEpoch { return true }
        return false
    }

    /// Writes the window starts of the next step into `windows` and returns how many, or nil when the
    /// run is over. Starts the next epoch (and its permutation) when the current one is done.
    public mutating func nextBatch(into windows: inout [Int]) -> Int? {
        precondition(!epochEnded, "closeEpoch(loss:valLoss:) must follow an ended epoch")
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
        lastLR = scheduler.lr
        optimizer.update(&parameters, gradient: gradient, learningRate: lastLR)
        scheduler.afterStep()
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
    /// windows: no separate evaluation is needed. Every trainer follows this rule through
    /// ``deferEpochClose(evaluated:)`` and ``finish(root:windows:evaluation:keepClosed:settled:)``, so
    /// in-process and data-parallel runs report the same losses and stop at the same epoch.
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

    /// Records the evaluation at the end of an epoch (`loss` over the training windows, `valLoss` over
    /// the validation windows when there are any) and takes the epoch-end decisions on the monitored
    /// loss (``monitored(loss:valLoss:)``): the target (`monitored < targetLoss`), the best epoch (a
    /// strictly lower value, as Lightning's `EarlyStopping` with `min_delta` 0; the weights are kept
    /// when there is a validation part), early stopping (after `earlyStopping` epochs without
    /// improvement) and the epoch step of the learning-rate schedule.
    public mutating func closeEpoch(loss: Double, valLoss: Double? = nil) {
        epochEnded = false
        let m = monitored(loss: loss, valLoss: valLoss)
        if let t = config.targetLoss, m < t { targetReached = true }
        if m < (monitor.best ?? .infinity) {
            monitor.best = m
            monitor.bestEpoch = epoch
            monitor.badEpochs = 0
            if !split.validation.isEmpty { bestParameters = parameters }
        } else {
            monitor.badEpochs += 1
            if let p = config.earlyStopping, monitor.badEpochs >= p { monitor.earlyStopped = true }
        }
        scheduler.afterEpoch(monitored: m)
    }

    /// Makes the weights as they are before the first step the best so far, as epoch 0, with validation loss
    /// `valLoss` (a run whose first weights forecast like persistence: a later epoch must beat them to be
    /// kept, and early stopping counts from them).
    public mutating func keepStart(valLoss: Double) {
        guard epoch == 0, step == 0, !split.validation.isEmpty, valLoss.isFinite else { return }
        monitor.best = valLoss
        monitor.bestEpoch = 0
        monitor.badEpochs = 0
        bestParameters = parameters
    }

    /// Ends an epoch whose evaluation is not known yet, so that the next step can start: no decision
    /// is taken. ``deferEpochClose(evaluated:)`` keeps the run as it was at the epoch's end, later closes
    /// that copy with the evaluation and, unless it stops the run, hands its decisions to this state with
    /// ``adoptEpochClose(_:)`` before this state applies a step.
    private mutating func closeEpochProvisionally() {
        epochEnded = false
    }

    /// Takes the epoch-end decisions of `closed` (this run at the end of the same epoch, closed with its
    /// evaluation) after ``closeEpochProvisionally()``; only the next batch may have been drawn since.
    private mutating func adoptEpochClose(_ closed: RunState) {
        precondition(closed.step == step && !epochEnded, "adoptEpochClose(_:) must follow closeEpochProvisionally() before the next apply")
        targetReached = closed.targetReached
        monitor = closed.monitor
        scheduler = closed.scheduler
        bestParameters = closed.bestParameters
    }

    // MARK: - The step rule

    /// An epoch closed provisionally: the run as it was at the epoch's end, and whether the next
    /// step's reduced sums measure its loss (else it is evaluated on the side).
    private indirect enum DeferredEpoch: Sendable {
        case atEnd(RunState, measuredByNextStep: Bool)

        var saved: RunState { switch self { case .atEnd(let s, _): s } }
        var measuredByNextStep: Bool { switch self { case .atEnd(_, let m): m } }
    }

    /// An epoch whose losses came in: the losses, whether its decisions end the run, and (when asked
    /// for) the run closed at that epoch's end, for a checkpoint.
    public struct SettledEpoch: Sendable {
        /// The MSE over the training windows (measured by the step, or evaluated).
        public let loss: Double
        public let valLoss: Double?
        /// The epoch-end decisions ended the run (target, early stopping).
        public let stops: Bool
        /// The run at the epoch's end, closed with these losses (nil unless asked for: holding it
        /// while the next step is applied would copy the weights).
        public let closed: RunState?
    }

    /// How a step's end came out (``finish(root:windows:evaluation:keepClosed:settled:)``).
    public enum StepOutcome: Sendable {
        /// The step was applied; its mean loss.
        case applied(loss: Double)
        /// A deferred epoch's decisions ended the run: the run is back at that epoch's end and
        /// this step was dropped unapplied.
        case stopped
    }

    /// Is an epoch's close waiting for its losses (``deferEpochClose(evaluated:)``)?
    public var hasDeferredEpoch: Bool { deferred != nil }

    /// The weights of the deferred epoch's end (what its evaluation runs on), if one is deferred.
    public var deferredEpochParameters: [Float]? { deferred?.saved.parameters }

    /// At an ended epoch: ends it provisionally so that the next step can start before its losses
    /// are known, keeping the run as it is here. `evaluated`: the losses come from an evaluation
    /// (``settleEpoch(loss:valLoss:)`` or the `evaluation` of ``finish(root:windows:evaluation:keepClosed:settled:)``);
    /// else the next step measures them (``nextStepMeasuresEpochLoss``).
    public mutating func deferEpochClose(evaluated: Bool) {
        precondition(epochEnded && deferred == nil, "deferEpochClose(evaluated:) needs an ended epoch and none deferred")
        precondition(evaluated || nextStepMeasuresEpochLoss, "only a full-batch epoch is measured by its next step")
        deferred = .atEnd(self, measuredByNextStep: !evaluated)
        closeEpochProvisionally()
    }

    /// Settles the deferred epoch with its losses: its decisions are taken on the run as it was at
    /// its end. If they end the run, the run goes back there (anything since is dropped), else the
    /// run in flight adopts them. Nil when no epoch is deferred.
    @discardableResult
    public mutating func settleEpoch(loss: Double, valLoss: Double?, keepClosed: Bool = false) -> SettledEpoch? {
        guard let d = deferred else { return nil }
        deferred = nil
        var closed = d.saved
        closed.closeEpoch(loss: loss, valLoss: valLoss)
        let stops = closed.isStopping
        if stops { self = closed } else { adoptEpochClose(closed) }
        return SettledEpoch(loss: loss, valLoss: valLoss, stops: stops, closed: keepClosed ? closed : nil)
    }

    /// The one step rule: ends the current step with its reduced sums `root` over `count` windows
    /// (see ``apply(root:windows:)``). A deferred epoch is settled first, with `evaluation` or, when
    /// the step measures it, with the step's own loss (``epochLoss(root:windows:)``); `settled` hears
    /// of it before anything is applied (to record it, or to checkpoint `closed` when `keepClosed`).
    /// If its decisions end the run, the step is dropped unapplied (``StepOutcome/stopped``).
    public mutating func finish(root: UnsafeBufferPointer<Float>, windows count: Int,
                                evaluation: (loss: Double, valLoss: Double?)?, keepClosed: Bool = false,
                                settled: (SettledEpoch) throws(TrainingError) -> Void = { _ in }) throws(TrainingError) -> StepOutcome {
        if let d = deferred {
            let losses = d.measuredByNextStep ? (RunState.epochLoss(root: root, windows: count), nil) : (evaluation ?? (.nan, nil))
            precondition(d.measuredByNextStep || evaluation != nil, "an evaluated deferred epoch needs its evaluation")
            // settled (and its copy of the run released) before the update, so the update copies no array
            if let s = settleEpoch(loss: losses.0, valLoss: losses.1, keepClosed: keepClosed) {
                try settled(s)
                if s.stops { return .stopped }
            }
        }
        return .applied(loss: try apply(root: root, windows: count))
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
        /// The learning-rate schedule's state and the last step's rate (absent in checkpoints of runs
        /// from before schedules: a constant rate).
        public var schedule: LRScheduler.State?
        public var lastLR: Double?
        /// The epoch-end monitor (absent in checkpoints from before it: nothing monitored yet).
        public var monitor: Monitor?
    }

    public var counters: Counters {
        Counters(epoch: epoch, stepInEpoch: stepInEpoch, step: step, samples: samples, epochSamples: epochSamples,
                 epochLossSum: epochLossSum, lastGradNorm: lastGradNorm, targetReached: targetReached,
                 epochEnded: epochEnded, optimizerStep: optimizer.step, schedule: scheduler.state, lastLR: lastLR,
                 monitor: monitor)
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

    /// Restores a run exactly where a checkpoint left it (`best`: ``bestParameters``).
    public init(config: TrainingConfig, split: WindowSplit, parameters: [Float], m: [Float], v: [Float], counters c: Counters,
                best: [Float]? = nil) {
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
        if let s = c.schedule { scheduler = LRScheduler(config: scheduler.config, baseLR: scheduler.baseLR, epochs: scheduler.tMax, state: s) }
        lastLR = c.lastLR ?? scheduler.lr
        monitor = c.monitor ?? Monitor()
        bestParameters = best
        if epoch > 0 {
            let n = split.train.count
            order = config.shuffle ? epochPermutation(count: n, seed: config.seed, epoch: epoch - 1) : Array(0..<n)
        }
    }
}

/// `Series.stepsPerEpoch`, reachable where a property of that name shadows it.
private func epochSteps(windows: Int, batch: Int) -> Int { stepsPerEpoch(windows: windows, batch: batch) }

// MARK: - The step rule, sharded

/// Sharded aggregation: the same step rule, in two halves around the owners' update. The coordinator
/// never holds the step's gradient, only its loss sum, finiteness and global norm (the owners' parts,
/// ``NormAssembly``); ``decideSharded(lossSum:windows:norm:finite:evaluation:keepClosed:settled:)`` takes
/// every decision ``finish(root:windows:evaluation:keepClosed:settled:)`` takes (the deferred epoch, the
/// divergence, the norm, the rate and the clip coefficient) and ``completeSharded(parameters:lossSum:windows:)``
/// records the owners' updated weights as ``apply(root:windows:)`` records its own.
///
///     switch try state.decideSharded(lossSum: loss, windows: n, norm: norm, finite: ok, evaluation: nil) {
///     case .apply(let lr, let coef): /* APPLY(step, coef, lr) to every owner; gather the slices */
///         state.completeSharded(parameters: gathered, lossSum: loss, windows: n)
///     case .stopped: /* the deferred epoch ended the run */
///     }
extension RunState {
    /// What the owners are told to do with a reduced step.
    public enum ShardedDecision: Sendable, Equatable {
        /// Apply it at `learningRate`, scaled by `clipCoefficient` when there is one.
        case apply(learningRate: Double, clipCoefficient: Double?)
        /// A deferred epoch's decisions ended the run: drop the step unapplied.
        case stopped
    }

    /// The first half of the step rule for a step reduced by owners: `lossSum` (the step's loss sum,
    /// reduced in the canonical order), `finite` (every owner's averaged gradient slice is finite),
    /// `norm` (the global norm, ``NormAssembly/norm``). Settles a deferred epoch exactly as
    /// ``finish(root:windows:evaluation:keepClosed:settled:)`` does and refuses a non-finite step with its
    /// diagnosis; the update itself is the owners'.
    public mutating func decideSharded(lossSum: Float, windows count: Int, norm: Double, finite: Bool,
                                       evaluation: (loss: Double, valLoss: Double?)?, keepClosed: Bool = false,
                                       settled: (SettledEpoch) throws(TrainingError) -> Void = { _ in }) throws(TrainingError) -> ShardedDecision {
        if let d = deferred {
            let losses = d.measuredByNextStep ? (Double(lossSum) / Double(count), nil) : (evaluation ?? (.nan, nil))
            precondition(d.measuredByNextStep || evaluation != nil, "an evaluated deferred epoch needs its evaluation")
            if let s = settleEpoch(loss: losses.0, valLoss: losses.1, keepClosed: keepClosed) {
                try settled(s)
                if s.stops { return .stopped }
            }
        }
        guard lossSum.isFinite && finite else {
            throw .diverged("the loss or gradient became \(lossSum.isNaN ? "NaN" : "non-finite") at step \(step + 1) (epoch \(epoch)); lower --lr or set --clip-norm")
        }
        lastGradNorm = norm
        lastLR = scheduler.lr
        return .apply(learningRate: lastLR, clipCoefficient: config.clipNorm.flatMap { GradientNorm.clipCoefficient(norm: norm, maxNorm: $0) })
    }

    /// The second half: the owners' updated weights of the step decided by
    /// ``decideSharded(lossSum:windows:norm:finite:evaluation:keepClosed:settled:)``. The optimizer's
    /// state stays with the owners (this state counts its steps; ``adoptOptimizer(_:)`` takes the gathered
    /// state for a checkpoint). `updated` nil: a step between sync steps, whose weights stay with the
    /// owners (``parameters`` are then those of the last sync step until ``adoptParameters(_:)``).
    ///
    /// - Returns: the step's mean loss.
    @discardableResult
    public mutating func completeSharded(parameters updated: [Float]?, lossSum: Float, windows count: Int) -> Double {
        precondition((updated?.count ?? parameters.count) == parameters.count && count >= 1)
        if let updated { parameters = updated }
        optimizer = Optimizer(config: optimizer.config, step: optimizer.step + 1, m: optimizer.m, v: optimizer.v)
        scheduler.afterStep()
        step += 1
        stepInEpoch += 1
        samples += count
        epochSamples += count
        let loss = Double(lossSum)
        epochLossSum += loss
        if stepInEpoch >= stepsPerEpoch || config.steps.map({ step >= $0 }) == true { epochEnded = true }
        return loss / Double(count)
    }

    /// Takes the weights fetched from the owners (sharded: the weights of this step, after steps
    /// completed without them); refuses a vector of another size.
    public mutating func adoptParameters(_ fetched: [Float]) throws(TrainingError) {
        guard fetched.count == parameters.count else {
            throw .invalidConfig("the owners' weights (\(fetched.count) values) do not fit this run (\(parameters.count) values)")
        }
        parameters = fetched
    }

    /// Takes the optimizer state gathered from the owners (``Optimizer/joining(_:)``) for a checkpoint;
    /// refuses one of another configuration, size or step count.
    public mutating func adoptOptimizer(_ gathered: Optimizer<Float>) throws(TrainingError) {
        guard gathered.config == optimizer.config, gathered.step == optimizer.step,
              gathered.m.count == optimizer.m.count, gathered.v.count == optimizer.v.count else {
            throw .invalidConfig("the owners' optimizer state (step \(gathered.step), \(gathered.m.count) values) does not fit this run (step \(optimizer.step), \(optimizer.m.count) values)")
        }
        optimizer = gathered
    }
}
