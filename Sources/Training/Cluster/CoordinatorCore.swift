import RNN
import Series
import Support
import Wire

/// The coordinator as a reducer: one input in (``handle(_:now:)``), effects out
/// (``CoordinatorEffect``). It reads no clock, starts no thread, parses no frame and does no I/O:
/// the time comes with each input, evaluations and checkpoints are effects whose outcome comes back
/// as an input, and the driver (``CoordinatorServer``, ``perform(_:now:)``, a simulated network)
/// carries the messages.
///
/// It owns the ``RunState`` (weights, optimizer, schedule, and the step rule: ``RunState/finish(root:windows:evaluation:keepClosed:settled:)``)
/// and a ``StepAggregator`` (over a ``StreamingTree``) for the step in flight.
/// A step's micro-batches are cut into contiguous runs, one per ready worker; each worker answers with
/// the sums of the tree nodes of its run; when every leaf is covered the tree is reduced in its fixed
/// order and the update applied. Who computed what, and when, cannot change a bit.
///
/// ```swift
/// let core = try CoordinatorCore(config: config, series: series, options: CoordinatorOptions(workers: 2), runID: 7)
/// var effects = core.handle(.message(hello, from: peer, bytes: 300), now: 0)
/// effects += core.handle(.tick, now: 0.5)
/// ```
public final class CoordinatorCore {
    public let config: TrainingConfig
    public let series: Series
    public let options: CoordinatorOptions
    public let runID: UInt64
    public internal(set) var state: RunState
    /// Who is in the run (handshake, liveness, refusals).
    public internal(set) var membership: Membership
    public var workers: [PeerID: WorkerRecord] { membership.workers }
    public internal(set) var metrics: [EpochMetrics] = []
    public internal(set) var failure: TrainingError?
    public internal(set) var droppedFrames = 0
    /// Peers welcomed that never said READY within the handshake timeout (forgotten).
    public var abandonedHandshakes: Int { membership.abandonedHandshakes }
    /// HELLOs left unanswered because ``CoordinatorOptions/maxPendingHandshakes`` handshakes were open.
    public var deferredHellos: Int { membership.deferredHellos }
    /// Workers refused because ``CoordinatorOptions/maxWorkers`` ready workers were there.
    public var refusedFull: Int { membership.refusedFull }
    public var lateOrDuplicate: Int { aggregator.lateOrDuplicate }
    public var reassigned: Int { aggregator.reassigned }
    public var retried: Int { aggregator.retried }
    public var speculative: Int { aggregator.speculative }
    public internal(set) var bytesIn = 0
    /// Each process's byte counters (in, out) at the last epoch's end, by worker id (0: the coordinator).
    var trafficMark: [UInt32: (Int, Int)] = [:]
    public internal(set) var bytesOut = 0
    public internal(set) var trainSeconds = 0.0
    /// Bytes of frames from strangers dropped unread.
    public internal(set) var strangerBytesDropped = 0
    /// Peers told that the run is over (bounded: see ``CoordinatorInput/farewell(_:)``).
    public internal(set) var dismissed: Set<PeerID> = []
    /// Was the run-end checkpoint written (before the workers were told the run is over)?
    public internal(set) var wroteEndCheckpoint = false

    let microBatch: Int
    let parameterCount: Int
    /// Open handshakes allowed at once (``Membership/maxPendingHandshakes``).
    public var maxPendingHandshakes: Int { membership.maxPendingHandshakes }
    let fingerprint: UInt64
    /// The series' hash (computed once: it reads every value).
    let seriesHash: UInt64
    let evaluator: Evaluator
    let configObject: [String: JSONTree]
    var windows: [Int]
    var stepWindows = 0
    var aggregator: StepAggregator
    /// The audit's snapshots, tie-break engine and rollbacks (`--audit-rate`).
    var auditing = AuditState()
    var stepActive: Bool { aggregator.active }
    var aggregatorActive: Bool { aggregator.active }
    var aggregatorStep: UInt64 { aggregator.step }
    var aggregatorStarted: Double { aggregator.started }
    var aggregatorPending: [PendingWork] { aggregator.pending }
    var stepStart = 0.0
    /// When the step's last ASSIGN went to the socket (the transport reports it).
    var lastAssignSentAt = 0.0
    /// Per worker, when its last ASSIGN went to the socket, and (estimated) when it last sent.
    var assignSentAt: [PeerID: Double] = [:]
    var workerIdleSince: [PeerID: Double] = [:]
    var stepTiming = StepTiming()
    var epochTiming = StepTiming()
    var epochSteps = 0
    var epochTrain = 0.0
    var started = false
    var finishedFlag = false
    var firstSeen: Double?
    var wallStart: Double?
    /// What each worker's accepted answers of the step in flight added to its record.
    var stepCredits: [PeerID: (blocks: Int, samples: Int, compute: Double, steps: Int)] = [:]
    /// The epoch deferred while the next step computes (``RunState/deferEpochClose(evaluated:)``).
    var pendingEpoch: PendingEpoch?
    /// What the core waits for before going on (an evaluation's or a checkpoint's answer), and then.
    var parked: Parked?
    var nextEvaluationID = 1
    /// Effects other than the reply made while handling an input (events, spans, observer notes).
    var notes: [CoordinatorEffect] = []
    /// Sharded aggregation's state once the run started (nil: a star run, or not started).
    var shard: CoordinatorShard?
    /// Sharded: how often the slices were re-planned after an owner was lost.
    public internal(set) var replans = 0
    /// Sharded: steps computed again after lost owners (each recovery replays from the last sync step).
    public internal(set) var replayedSteps = 0
    /// Epoch lines emitted (``CoordinatorEvent/epoch(_:)``): a lost owner's replay (exact) records its
    /// epochs again without emitting them twice (an audit's rollback emits its corrected lines again).
    var epochsEmitted = 0
    /// The workers' peer endpoints, from their HELLOs (sharded aggregation).
    var shardEndpoints: [UInt32: String] = [:]
    /// The workers' CURVE keys, from their HELLOs (sharded aggregation with CURVE; each on the allow-list).
    var shardKeys: [UInt32: String] = [:]

    /// `--hash-every`: the weights are hashed after every this many steps (0: never); in a sharded run
    /// those steps are sync steps (the coordinator holds the weights after them).
    public var hashEvery = 0
    /// Every this many steps, a ``CoordinatorEffect/checkpoint(_:)`` (0: never). A checkpoint that
    /// cannot be written stops the run with that error as ``failure``: the work since the last good
    /// checkpoint would otherwise be lost to the next failure.
    public var checkpointEvery = 0
    /// Evaluate an epoch's weights on another thread while the next step computes (the default).
    public var overlapEvaluation = true
    /// How the core measures its own work (reducing answers, applying the update), in seconds on
    /// any monotonic clock; nil: such durations are 0 (a simulation's runs are then reproducible).
    /// It is the one time the core cannot be told with an input.
    public var stopwatch: (() -> Double)?

    // The in-process interpreter's hooks (``perform(_:now:)``); the reducer never calls them.
    /// Receives the events (``CoordinatorEffect/event(_:)``).
    let onEvent: (CoordinatorEvent) -> Void
    /// Receives the spans of every step for `--timeline` (nil: none are made).
    public var onSpan: ((TimelineSpan) -> Void)? { didSet { recordsSpans = onSpan != nil } }
    /// Make ``CoordinatorEffect/span(_:)`` effects (set with ``onSpan``; off, a step makes none).
    public var recordsSpans = false
    /// Watches the run from inside (straggler report, metrics); nil: nothing is observed.
    public var observer: (any CoordinatorObserver)?
    /// Writes checkpoints (``CoordinatorEffect/checkpoint(_:)``).
    public var onCheckpoint: ((RunCheckpoint) throws(TrainingError) -> Void)?
    /// Evaluations running on other threads, by id.
    var evaluationsInFlight: [Int: EpochEvaluation] = [:]

    /// - Parameters:
    ///   - initialParameters: start weights (`--init`), else drawn from the seed.
    ///   - resume: continue this checkpoint's run (its configuration, run id, weights and position win).
    ///   - onEvent: called for every ``CoordinatorEffect/event(_:)`` that ``perform(_:now:)`` interprets.
    public init(
        config: TrainingConfig, series: Series, initialParameters: [Float]? = nil, options: CoordinatorOptions,
        runID: UInt64, resume: RunCheckpoint? = nil, onEvent: @escaping (CoordinatorEvent) -> Void = { _ in }
    ) throws(TrainingError) {
        let config = resume?.config ?? config
        let runID = resume?.runID ?? runID
        guard options.workers >= 1 else { throw .invalidConfig("--workers must be at least 1 (got \(options.workers))") }
        guard options.minWorkers >= 1 && options.minWorkers <= options.workers else {
            throw .invalidConfig("--min-workers must be in 1...\(options.workers) (got \(options.minWorkers))")
        }
        let prepared = try PreparedRun(config: config, series: series, initialParameters: initialParameters)
        guard options.sharedData || 4 * series.values.count <= Limits.handshakeSeriesBytes else {
            throw .data("the series has \(series.values.count) values, more than the \(Limits.handshakeSeriesBytes / 4) a WELCOME carries; put the file where every worker reads it at the same path and pass --shared-data")
        }
        self.config = config
        self.series = series
        self.options = options
        self.runID = runID
        if let r = resume {
            try RunState.check(counters: r.counters, config: config, split: prepared.split)
            state = RunState(config: config, split: prepared.split, parameters: r.parameters, m: r.m, v: r.v, counters: r.counters, best: r.best)
            metrics = r.metrics
            epochsEmitted = r.metrics.count
            trainSeconds = r.trainSeconds
        } else {
            state = RunState(config: config, split: prepared.split, parameters: prepared.parameters)
        }
        microBatch = prepared.microBatch
        parameterCount = prepared.parameters.count
        let welcomeBytes = (options.sharedData ? 0 : 4 * series.values.count) + (64 << 10)
        membership = Membership(options: options, model: config.model, microBatch: prepared.microBatch, welcomeBytes: welcomeBytes)
        evaluator = Evaluator(config: config.model, series: series, split: prepared.split)
        if resume == nil && prepared.startsAtPersistence {
            state.keepStart(valLoss: evaluator.meanLoss(prepared.parameters, windows: prepared.split.validation))
        }
        fingerprint = numericsFingerprint(config: config.model, series: series, microBatch: prepared.microBatch)
        seriesHash = series.fingerprint
        configObject = config.wireObject
        windows = [Int](repeating: 0, count: state.batch)
        aggregator = StepAggregator(width: prepared.parameters.count + 1)
        // the audit compares the digests of answers: star-mode GRADIENTs, sharded DIGESTs
        if options.auditRate > 0 { aggregator.auditPlan = AuditPlan(rate: options.auditRate, seed: config.seed) }
        self.onEvent = onEvent
    }

    // MARK: - The reducer

    /// Handles one input that happened at `now` (seconds on the driver's clock) and returns what to do,
    /// in order.
    public func handle(_ input: CoordinatorInput, now: Double) -> [CoordinatorEffect] {
        notes = []
        let reply: [CoordinatorEffect]
        switch input {
        case .message(let env, let peer, let bytes):
            reply = message(env, from: peer, bytes: bytes, now: now)
        case .gradient(let header, let payload, let peer, let bytes):
            reply = gradient(header: header, payload: payload, from: peer, bytes: bytes, now: now)
        case .badFrame(let peer, let error):
            reply = rejectFrame(from: peer, error: error)
        case .stranger(let peer, let bytes):
            droppedFrames += 1
            strangerBytesDropped += bytes
            emit(.dropped(peer: peer, reason: "\(bytes) bytes from a peer that has not said HELLO"))
            reply = []
        case .tick:
            reply = passTime(now: now)
        case .shutdown(let reason):
            reply = stop(reason: reason, now: now)
        case .farewell(let peer):
            reply = farewell(to: peer)
        case .sent(let peer, let bytes, let seconds, let isAssign, let at):
            noteSent(peer: peer, bytes: bytes, seconds: seconds, isAssign: isAssign, at: at)
            reply = []
        case .evaluated(let id, let losses):
            reply = evaluated(id: id, losses, now: now)
        case .checkpointDone(let error):
            reply = checkpointDone(error, now: now)
        }
        let out = notes + reply
        notes = []
        return out
    }

    /// Is the run over (finished or failed)?
    public var isDone: Bool { finishedFlag || failure != nil }
    public var isRunning: Bool { started && !isDone }
    public var liveWorkers: [WorkerRecord] { membership.liveWorkers }

    /// Limits for frames from workers: a gradient is exactly `P + 1` floats and its span offsets.
    ///
    /// Non-finite sums are accepted: an honest worker computes them when the run diverges (the
    /// gradient is a pure function of the weights), and the update then stops the run with the
    /// in-process diagnosis, "training diverged", instead of retrying forever. Only a ready worker's
    /// answer to its own order gets that far.
    ///
    /// The size bound is the larger of a gradient and 64 KiB (a HELLO is a few hundred bytes, a BYE's
    /// reason at most 64 KiB): the socket refuses anything bigger before allocating it.
    /// (Sharded: an owner's SLICE with its optimizer state is up to three arrays of its slice.)
    public var limits: Limits {
        let sharded = options.aggregation == .sharded ? 12 * parameterCount : 0
        return Limits(maxPayloadBytes: max(Limits.maxReasonBytes, 4 * (parameterCount + 1) + Wire.gradientTrailerBytes, sharded),
               parameterCount: parameterCount, allowNonFinite: true)
    }

    /// Largest frame accepted from a peer that is not a welcomed or ready worker (only a HELLO is).
    public static let strangerFrameBytes = 64 << 10

    /// Is `peer` a welcomed or ready worker (one whose frames are worth validating)?
    public func isWorker(_ peer: PeerID) -> Bool { membership.isWorker(peer) }

    // MARK: - Helpers

    func emit(_ event: CoordinatorEvent) { notes.append(.event(event)) }

    func span(_ s: @autoclosure () -> TimelineSpan) {
        if recordsSpans { notes.append(.span(s())) }
    }

    /// Seconds since `start` on the ``stopwatch`` (0 without one).
    func measured(since start: Double) -> Double {
        guard let stopwatch else { return 0 }
        return max(0, stopwatch() - start)
    }

    /// The ``stopwatch``'s reading (0 without one).
    func mark() -> Double { stopwatch?() ?? 0 }

    func reply(_ peer: PeerID, _ workerID: UInt32, _ message: Message) -> CoordinatorEffect {
        .send(peer, Envelope(runID: runID, workerID: workerID, message: message))
    }
}
