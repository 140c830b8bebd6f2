import RealModule

/// Which learning-rate schedule (`--lr-schedule`).
public enum LRScheduleKind: String, Sendable, Codable, CaseIterable {
    /// The learning rate never changes (apart from a warmup).
    case constant
    /// `torch.optim.lr_scheduler.StepLR`: times `gamma` every `stepSize` epochs.
    case step
    /// `torch.optim.lr_scheduler.CosineAnnealingLR`: from the learning rate down to `minLR` over `tMax` epochs.
    case cosine
    /// `torch.optim.lr_scheduler.ReduceLROnPlateau` (mode `min`, relative threshold): times `factor` once the
    /// monitored loss has not improved for more than `patience` epochs.
    case plateau
}

/// A learning-rate schedule and its hyper-parameters, with PyTorch's defaults.
///
/// The epoch schedule steps once at the end of every epoch (PyTorch's idiom for these three schedulers);
/// the warmup steps after every optimizer step. With both, they act on the one learning rate in turn, as two
/// PyTorch schedulers attached to one optimizer do (the warmup constructed first):
///
///     warmup = LinearLR(opt, start_factor=1/(W+1), end_factor=1.0, total_iters=W)
///     sched  = StepLR(opt, step_size, gamma) | CosineAnnealingLR(opt, T_max, eta_min) | ReduceLROnPlateau(opt, …)
///     for epoch: for batch: opt.step(); warmup.step()
///                sched.step()   # or sched.step(monitored_loss) for plateau
public struct LRScheduleConfig: Sendable, Codable, Equatable {
    public var kind: LRScheduleKind
    /// Linear warmup over this many optimizer steps: step `k < W` runs at `(k+1)/(W+1)` of the rate (0: none).
    public var warmup: Int
    /// `step`: epochs between decays (`step_size`; PyTorch has no default, neither has `--lr-step-size`).
    public var stepSize: Int?
    /// `step`: the decay factor (`gamma`).
    public var gamma: Double
    /// `cosine`: the half period in epochs (`T_max`); nil: the run's epochs.
    public var tMax: Int?
    /// `cosine`: the floor (`eta_min`); `plateau`: the floor (`min_lr`).
    public var minLR: Double
    /// `plateau`: epochs without improvement tolerated before a decay.
    public var patience: Int
    /// `plateau`: the decay factor.
    public var factor: Double
    /// `plateau`: relative improvement that counts (`threshold`, mode `rel`).
    public var threshold: Double

    public init(kind: LRScheduleKind = .constant, warmup: Int = 0, stepSize: Int? = nil, gamma: Double = 0.1,
                tMax: Int? = nil, minLR: Double = 0, patience: Int = 10, factor: Double = 0.1, threshold: Double = 1e-4) {
        self.kind = kind
        self.warmup = warmup
        self.stepSize = stepSize
        self.gamma = gamma
        self.tMax = tMax
        self.minLR = minLR
        self.patience = patience
        self.factor = factor
        self.threshold = threshold
    }

    /// Does this schedule ever change the learning rate?
    public var isConstant: Bool { kind == .constant && warmup == 0 }

    /// The first problem with a value, naming its flag, or nil.
    public func problem() -> String? {
        if warmup < 0 { return "--warmup must be 0 or more steps (got \(warmup))" }
        switch kind {
        case .constant:
            break
        case .step:
            guard let s = stepSize else { return "--lr-schedule step needs --lr-step-size EPOCHS" }
            if s < 1 { return "--lr-step-size must be at least 1 epoch (got \(s))" }
            if !(gamma.isFinite && gamma > 0) { return "--lr-gamma must be a positive number (got \(gamma))" }
        case .cosine:
            if let t = tMax, t < 1 { return "--lr-t-max must be at least 1 epoch (got \(t))" }
            if !(minLR.isFinite && minLR >= 0) { return "--lr-min must be 0 or a positive number (got \(minLR))" }
        case .plateau:
            if patience < 0 { return "--lr-patience must be 0 or more epochs (got \(patience))" }
            if !(factor.isFinite && factor > 0 && factor < 1) { return "--lr-factor must be in (0, 1) (got \(factor))" }
            if !(minLR.isFinite && minLR >= 0) { return "--lr-min must be 0 or a positive number (got \(minLR))" }
            if !(threshold.isFinite && threshold >= 0 && threshold < 1) { return "the plateau threshold must be in [0, 1) (got \(threshold))" }
        }
        return nil
    }
}

/// A learning-rate schedule in motion: PyTorch's recursive update rules, in `Double` as PyTorch computes
/// them in Python floats, so the rate of every step has PyTorch's bits. Pure arithmetic: whoever owns the
/// optimizer calls ``afterStep()`` after each update and ``afterEpoch(monitored:)`` at each epoch's end.
public struct LRScheduler: Sendable, Equatable {
    public let config: LRScheduleConfig
    /// The base rate (PyTorch's `initial_lr`).
    public let baseLR: Double
    /// `T_max` of the cosine schedule, resolved.
    public let tMax: Int
    public private(set) var state: State

    /// Everything that moves (for checkpoints).
    public struct State: Sendable, Codable, Equatable {
        /// The rate the next optimizer step uses (PyTorch's `param_group["lr"]`).
        public var lr: Double
        /// Optimizer steps seen (the warmup's `last_epoch`).
        public var steps: Int
        /// Epochs seen (the epoch schedule's `last_epoch`).
        public var epochs: Int
        /// `plateau`: the best monitored value so far (`best`; nil is PyTorch's `inf`) and `num_bad_epochs`.
        public var best: Double?
        public var badEpochs: Int
    }

    /// - Parameters:
    ///   - epochs: the run's epochs, `T_max` of a cosine schedule without one.
    public init(config: LRScheduleConfig, baseLR: Double, epochs: Int) {
        self.config = config
        self.baseLR = baseLR
        tMax = max(1, config.tMax ?? epochs)
        // constructing LinearLR multiplies the rate by start_factor; the epoch schedulers' first step keeps it
        let lr = config.warmup > 0 ? baseLR * Self.startFactor(config.warmup) : baseLR
        state = State(lr: lr, steps: 0, epochs: 0, best: nil, badEpochs: 0)
    }

    /// Restores a saved state.
    public init(config: LRScheduleConfig, baseLR: Double, epochs: Int, state: State) {
        self.init(config: config, baseLR: baseLR, epochs: epochs)
        self.state = state
    }

    /// The rate of the next optimizer step.
    public var lr: Double { state.lr }

    static func startFactor(_ w: Int) -> Double { 1.0 / Double(w + 1) }

    /// After each optimizer step: the warmup's `LinearLR.step()`.
    public mutating func afterStep() {
        state.steps += 1
        let w = config.warmup
        guard w > 0, state.steps <= w else { return }
        let start = Self.startFactor(w), end = 1.0
        state.lr = state.lr * (1.0 + (end - start) / (Double(w) * start + Double(state.steps - 1) * (end - start)))
    }

    /// At the end of each epoch: the epoch schedule's `step()` (`step(monitored)` for `plateau`).
    /// `monitored` is the loss the run watches (validation loss when there is a validation part).
    public mutating func afterEpoch(monitored: Double) {
        state.epochs += 1
        let e = state.epochs
        switch config.kind {
        case .constant:
            break
        case .step:
            let s = config.stepSize ?? 1
            if e % s == 0 { state.lr = state.lr * config.gamma }
        case .cosine:
            let t = tMax, etaMin = config.minLR
            let period = 2 * t
            let r = ((e - 1 - t) % period + period) % period   // Python's floor modulo
            if r == 0 {
                state.lr = state.lr + (baseLR - etaMin) * (1 - Double.cos(Double.pi / Double(t))) / 2
            } else {
                state.lr = (1 + Double.cos(Double.pi * Double(e) / Double(t)))
                    / (1 + Double.cos(Double.pi * Double(e - 1) / Double(t)))
                    * (state.lr - etaMin) + etaMin
            }
        case .plateau:
            let best = state.best ?? .infinity
            if monitored < best * (1.0 - config.threshold) {
                state.best = monitored
                state.badEpochs = 0
            } else {
                state.badEpochs += 1
            }
            if state.badEpochs > config.patience {
                let old = state.lr
                let new = Swift.max(old * config.factor, config.minLR)
                if old - new > 1e-8 { state.lr = new }
                state.badEpochs = 0
            }
        }
    }
}
