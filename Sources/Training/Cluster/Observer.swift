import Wire

/// One optimizer step as an observer sees it (Prometheus, TensorBoard, `--log-every` lines).
public struct StepRecord: Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    /// Mean loss of the step's windows.
    public var loss: Double
    public var learningRate: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Windows in this step, and in the run so far.
    public var windows: Int
    public var samples: Int
    /// Training windows per second of compute time this epoch so far.
    public var samplesPerSecond: Double
    /// Data-parallel runs: the step's phases, and the coordinator's bytes so far.
    public var timing: StepTiming?
    public var bytesIn: Int?
    public var bytesOut: Int?

    public init(step: Int, epoch: Int, loss: Double, learningRate: Double, gradNorm: Double, windows: Int, samples: Int,
                samplesPerSecond: Double, timing: StepTiming? = nil, bytesIn: Int? = nil, bytesOut: Int? = nil) {
        self.step = step; self.epoch = epoch; self.loss = loss; self.learningRate = learningRate; self.gradNorm = gradNorm
        self.windows = windows; self.samples = samples; self.samplesPerSecond = samplesPerSecond; self.timing = timing
        self.bytesIn = bytesIn; self.bytesOut = bytesOut
    }

    /// The record of the step `state` just applied (after ``RunState/apply(root:windows:)``).
    public init(state: borrowing RunState, loss: Double, samplesPerSecond: Double, timing: StepTiming? = nil,
                bytesIn: Int? = nil, bytesOut: Int? = nil) {
        self.init(step: state.step, epoch: state.epoch, loss: loss, learningRate: state.lastLR,
                  gradNorm: state.lastGradNorm, windows: state.batch, samples: state.samples,
                  samplesPerSecond: samplesPerSecond, timing: timing, bytesIn: bytesIn, bytesOut: bytesOut)
    }
}

/// Whoever watches a coordinator from inside its loop: the straggler and hang report and the
/// Prometheus exporter. Every call comes from the coordinator's thread, synchronously, so an
/// implementation must be quick (count, store, return) and leave I/O to threads of its own.
public protocol CoordinatorObserver: AnyObject {
    /// A worker's accepted answer came `seconds` after its ASSIGN went out.
    func workerAnswered(worker: UInt32, seconds: Double)
    /// A frame was dropped; `reason` is one of a few fixed labels (``dropReasonLabel(_:)``).
    func frameDropped(reason: String)
    /// The loop's timer tick (at most about once a millisecond while busy, every 20 ms when idle).
    func tick(_ server: CoordinatorServer, now: Double)
}

extension CoordinatorObserver {
    public func workerAnswered(worker: UInt32, seconds: Double) {}
    public func frameDropped(reason: String) {}
    public func tick(_ server: CoordinatorServer, now: Double) {}
}

/// A dropped frame's reason as a label of a small fixed set (metrics must not grow a series per message text).
public func dropReasonLabel(_ error: WireError) -> String {
    switch error {
    case .truncatedHeader, .badMagic, .unknownType, .badFlags, .wrongFrameCount: return "malformed"
    case .unsupportedVersion: return "version"
    case .oversized: return "oversized"
    case .checksumMismatch: return "checksum"
    case .nonFinite: return "non_finite"
    default: return "invalid"
    }
}

/// The label of a message the coordinator decoded but refused (see ``dropReasonLabel(_:)-…``).
public func dropReasonLabel(_ reason: String) -> String {
    if reason.hasPrefix("GRADIENT for run") { return "wrong_run" }
    if reason.hasPrefix("GRADIENT from worker") { return "invalid_gradient" }
    if reason.hasPrefix("a GRADIENT that does not match") { return "wrong_model" }
    if reason.contains("unknown") { return "unknown_peer" }
    if reason.hasPrefix("a worker sent a coordinator-only") { return "wrong_direction" }
    return "other"
}

/// Outstanding work of the step in flight, for the hang report.
public struct PendingWork: Sendable, Equatable {
    public var worker: UInt32
    /// Leaves (micro-batches) still missing of what this worker was asked.
    public var leaves: [Range<Int>]
    /// When the oldest of those orders went out (coordinator clock).
    public var since: Double
}

extension WorkerRecord {
    /// When the coordinator last heard from this worker (its clock).
    public var lastHeardAt: Double { lastHeard }
}

extension CoordinatorCore {
    /// The step in flight: its number and when it started (nil between steps).
    public var stepInFlight: (step: UInt64, started: Double)? {
        guard isRunning, aggregatorActive else { return nil }
        return (aggregatorStep, aggregatorStarted)
    }

    /// Who still owes which leaves of the step in flight (empty between steps).
    public var pendingWork: [PendingWork] { isRunning ? aggregatorPending : [] }
}
