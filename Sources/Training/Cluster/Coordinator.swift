import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN
import Series
import Wire
import Support

/// A peer as the coordinator's ROUTER knows it: its routing id.
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var description: String { bytes.map { cFormat("%02x", $0) }.joined() }
}

/// Options of the coordinator that do not change the result.
public struct CoordinatorOptions: Sendable {
    /// Workers to wait for before the first step.
    public var workers: Int
    /// Start with this many once `joinTimeout` has passed (default: `workers`).
    public var minWorkers: Int
    /// Seconds to wait for workers before starting with `minWorkers` (or failing).
    public var joinTimeout: Double
    /// A worker silent for this long is dead.
    public var liveness: Double
    /// Send a heartbeat to a worker silent towards it for this long.
    public var heartbeat: Double
    /// Give an order again when its answer has not come for this long (a dropped or corrupted message).
    public var retryAfter: Double
    /// Idle workers get copies of a straggler's leaves (the first answer wins).
    public var speculate: Bool
    /// Ready workers beyond this many are refused (default: no limit).
    public var maxWorkers: Int?
    /// A welcomed peer that has not said READY within this many seconds is forgotten (it never
    /// enters the worker table, the summary or any per-step work).
    public var handshakeTimeout: Double
    /// At most this many peers may be between WELCOME and READY at once; further HELLOs go
    /// unanswered (the worker says HELLO again), so strangers cannot make the coordinator hold
    /// more than this many handshakes (and WELCOMEs in flight). Nil: as many WELCOMEs as fit in
    /// 64 MiB, between 1 and 8.
    public var maxPendingHandshakes: Int?
    /// Workers read the data the configuration names themselves (storage shared with the coordinator,
    /// the same absolute path) and check it by hash, instead of receiving the series in WELCOME.
    public var sharedData = false

    public init(workers: Int, minWorkers: Int? = nil, joinTimeout: Double = 60, liveness: Double = 3, heartbeat: Double = 1,
                retryAfter: Double? = nil, speculate: Bool = true, maxWorkers: Int? = nil,
                handshakeTimeout: Double? = nil, maxPendingHandshakes: Int? = nil) {
        self.workers = workers
        self.minWorkers = minWorkers ?? workers
        self.joinTimeout = joinTimeout
        self.liveness = liveness
        self.heartbeat = heartbeat
        self.retryAfter = retryAfter ?? max(1, liveness)
        self.speculate = speculate
        self.maxWorkers = maxWorkers
        self.handshakeTimeout = handshakeTimeout ?? max(10, 3 * liveness)
        self.maxPendingHandshakes = maxPendingHandshakes
    }
}

/// What the coordinator knows about one worker.
public struct WorkerRecord: Sendable, Codable {
    public enum Phase: String, Sendable, Codable { case welcomed, ready, dead, left }
    public var id: UInt32
    public var host: String
    public var pid: Int32
    public var threads: Int
    public var phase: Phase
    public var fingerprintMatches: Bool?
    public var steps = 0
    public var blocks = 0
    public var samples = 0
    public var computeSeconds = 0.0
    public var bytesIn = 0
    public var bytesOut = 0
    public var lateOrDuplicate = 0
    var lastHeard = 0.0
    var lastSent = 0.0
    /// When the WELCOME went out (for the handshake timeout).
    var welcomedAt = 0.0

    enum CodingKeys: String, CodingKey {
        case id, host, pid, threads, phase, fingerprintMatches, steps, blocks, samples, computeSeconds, bytesIn, bytesOut, lateOrDuplicate
    }
}

/// Time spent per step, in seconds.
public struct StepTiming: Sendable, Codable, Equatable {
    /// Longest worker compute time of the step.
    public var compute = 0.0
    /// From the last ASSIGN sent to the last gradient received.
    public var wait = 0.0
    public var reduce = 0.0
    public var optimizer = 0.0
    /// Encoding and sending the ASSIGNs.
    public var broadcast = 0.0

    public init() {}

    public mutating func add(_ o: StepTiming) {
        compute += o.compute; wait += o.wait; reduce += o.reduce; optimizer += o.optimizer; broadcast += o.broadcast
    }

    public func scaled(_ k: Double) -> StepTiming {
        var t = self
        t.compute *= k; t.wait *= k; t.reduce *= k; t.optimizer *= k; t.broadcast *= k
        return t
    }
}

/// Something the coordinator wants sent.
public struct Outgoing: Sendable {
    public var peer: PeerID
    public var envelope: Envelope
}

/// What the coordinator reports to whoever runs it.
public enum CoordinatorEvent: Sendable {
    case joined(WorkerRecord)
    case rejected(peer: PeerID, reason: String)
    case workerLost(WorkerRecord, reassigned: Int)
    case fingerprintMismatch(WorkerRecord)
    case started(workers: Int)
    case step(epoch: Int, step: Int, stepInEpoch: Int, stepsPerEpoch: Int, loss: Double, samplesPerSecond: Double, timing: StepTiming)
    case epoch(EpochMetrics)
    case dropped(peer: PeerID, reason: String)
    case finished
}

/// The coordinator as a state machine: decoded messages and clock ticks in, messages to send out.
///
/// It owns the ``RunState`` (weights, optimizer, schedule, and the step rule: ``RunState/finish(root:windows:evaluation:keepClosed:settled:)``)
/// and a ``StepAggregator`` (over a ``StreamingTree``) for the step in flight.
/// A step's micro-batches are cut into contiguous runs, one per ready worker; each worker answers with
/// the sums of the tree nodes of its run; when every leaf is covered the tree is reduced in its fixed
/// order and the update applied. Who computed what, and when, cannot change a bit.
public final class CoordinatorCore {
    public let config: TrainingConfig
    public let series: Series
    public let options: CoordinatorOptions
    public let runID: UInt64
    public private(set) var state: RunState
    public private(set) var workers: [PeerID: WorkerRecord] = [:]
    public private(set) var metrics: [EpochMetrics] = []
    public private(set) var failure: TrainingError?
    public private(set) var droppedFrames = 0
    /// Peers welcomed that never said READY within the handshake timeout (forgotten).
    public private(set) var abandonedHandshakes = 0
    /// HELLOs left unanswered because ``CoordinatorOptions/maxPendingHandshakes`` handshakes were open.
    public private(set) var deferredHellos = 0
    /// Workers refused because ``CoordinatorOptions/maxWorkers`` ready workers were there.
    public private(set) var refusedFull = 0
    public var lateOrDuplicate: Int { aggregator.lateOrDuplicate }
    public var reassigned: Int { aggregator.reassigned }
    public var retried: Int { aggregator.retried }
    public var speculative: Int { aggregator.speculative }
    public private(set) var bytesIn = 0
    public private(set) var bytesOut = 0
    public private(set) var trainSeconds = 0.0

    let microBatch: Int
    let parameterCount: Int
    /// Open handshakes allowed at once (``CoordinatorOptions/maxPendingHandshakes``, or as many
    /// WELCOMEs as fit in 64 MiB, 1...8).
    public let maxPendingHandshakes: Int
    let fingerprint: UInt64
    /// The series' hash (computed once: it reads every value).
    let seriesHash: UInt64
    private let evaluator: Evaluator
    private let configObject: [String: JSONTree]
    private var nextWorkerID: UInt32 = 1
    private var windows: [Int]
    private var stepWindows = 0
    private var aggregator: StepAggregator
    private var stepActive: Bool { aggregator.active }
    var aggregatorActive: Bool { aggregator.active }
    var aggregatorStep: UInt64 { aggregator.step }
    var aggregatorStarted: Double { aggregator.started }
    var aggregatorPending: [PendingWork] { aggregator.pending }
    private var stepStart = 0.0
    /// When the step's last ASSIGN went to the socket (the transport reports it).
    private var lastAssignSentAt = 0.0
    /// Per worker, when its last ASSIGN went to the socket, and (estimated) when it last sent.
    private var assignSentAt: [PeerID: Double] = [:]
    private var workerIdleSince: [PeerID: Double] = [:]
    /// Receives the spans of every step for `--timeline` (nil: none are made).
    public var onSpan: ((TimelineSpan) -> Void)?
    /// Watches the run from inside (straggler report, metrics); nil: nothing is observed.
    public var observer: (any CoordinatorObserver)?
    private var stepTiming = StepTiming()
    private var epochTiming = StepTiming()
    private var epochSteps = 0
    private var epochTrain = 0.0
    private var started = false
    private var finishedFlag = false
    private var firstSeen: Double?
    private var wallStart: Double?
    private let emit: (CoordinatorEvent) -> Void

    /// - Parameters:
    ///   - initialParameters: start weights (`--init`), else drawn from the seed.
    ///   - onEvent: called synchronously for everything worth reporting.
    /// Every this many steps, ``onCheckpoint`` gets a ``RunCheckpoint`` (0: never).
    public var checkpointEvery = 0
    /// Receives checkpoints (the caller writes them; the core does no I/O). A checkpoint that cannot
    /// be written stops the run with that error as ``failure``: the work since the last good
    /// checkpoint would otherwise be lost to the next failure.
    public var onCheckpoint: ((RunCheckpoint) throws(TrainingError) -> Void)?

    /// - Parameters:
    ///   - resume: continue this checkpoint's run (its configuration, run id, weights and position win).
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
            trainSeconds = r.trainSeconds
        } else {
            state = RunState(config: config, split: prepared.split, parameters: prepared.parameters)
        }
        microBatch = prepared.microBatch
        parameterCount = prepared.parameters.count
        let welcomeBytes = (options.sharedData ? 0 : 4 * series.values.count) + (64 << 10)
        maxPendingHandshakes = max(1, options.maxPendingHandshakes ?? min(8, (64 << 20) / welcomeBytes))
        evaluator = Evaluator(config: config.model, series: series, split: prepared.split)
        if resume == nil && prepared.startsAtPersistence {
            state.keepStart(valLoss: evaluator.meanLoss(prepared.parameters, windows: prepared.split.validation))
        }
        fingerprint = numericsFingerprint(config: config.model, series: series, microBatch: prepared.microBatch)
        seriesHash = series.fingerprint
        configObject = config.wireObject
        windows = [Int](repeating: 0, count: state.batch)
        aggregator = StepAggregator(width: prepared.parameters.count + 1)
        emit = onEvent
    }

    /// Is the run over (finished or failed)?
    public var isDone: Bool { finishedFlag || failure != nil }
    public var isRunning: Bool { started && !isDone }
    public var liveWorkers: [WorkerRecord] { workers.values.filter { $0.phase == .ready }.sorted { $0.id < $1.id } }

    /// Limits for frames from workers: a gradient is exactly `P + 1` floats and its span offsets.
    ///
    /// Non-finite sums are accepted: an honest worker computes them when the run diverges (the
    /// gradient is a pure function of the weights), and the update then stops the run with the
    /// in-process diagnosis, "training diverged", instead of retrying forever. Only a ready worker's
    /// answer to its own order gets that far.
    ///
    /// The size bound is the larger of a gradient and 64 KiB (a HELLO is a few hundred bytes, a BYE's
    /// reason at most 64 KiB): the socket refuses anything bigger before allocating it.
    public var limits: Limits {
        Limits(maxPayloadBytes: max(Limits.maxReasonBytes, 4 * (parameterCount + 1) + Wire.gradientTrailerBytes),
               parameterCount: parameterCount, allowNonFinite: true)
    }

    /// Largest frame accepted from a peer that is not a welcomed or ready worker (only a HELLO is).
    public static let strangerFrameBytes = 64 << 10

    /// Is `peer` a welcomed or ready worker (one whose frames are worth validating)?
    public func isWorker(_ peer: PeerID) -> Bool {
        guard let w = workers[peer] else { return false }
        return w.phase == .welcomed || w.phase == .ready
    }

    /// A frame from a peer that is not a worker, dropped unread (too big, or not a HELLO).
    public func dropStranger(_ peer: PeerID, bytes: Int, now: Double) {
        droppedFrames += 1
        strangerBytesDropped += bytes
        emit(.dropped(peer: peer, reason: "\(bytes) bytes from a peer that has not said HELLO"))
    }

    /// Bytes of frames from strangers dropped unread.
    public private(set) var strangerBytesDropped = 0

    // MARK: - Input

    /// A frame from `peer` that did not decode: dropped and counted.
    public func rejectFrame(from peer: PeerID, error: WireError, now: Double) -> [Outgoing] {
        droppedFrames += 1
        observer?.frameDropped(reason: dropReasonLabel(error))
        if case .unsupportedVersion(let v) = error {
            let reason = "worker speaks protocol version \(v); this coordinator speaks \(Wire.protocolVersion). Run the same ztrain version on both."
            emit(.rejected(peer: peer, reason: reason))
            return [Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: 0, message: .reject(reason)))]
        }
        emit(.dropped(peer: peer, reason: error.description))
        return []
    }

    /// A decoded message from `peer`.
    public func handle(_ env: Envelope, from peer: PeerID, bytes: Int, now: Double) -> [Outgoing] {
        noteHeard(peer, bytes: bytes, now: now)
        var out: [Outgoing] = []
        switch env.message {
        case .hello(let hello):
            out += welcome(peer: peer, hello: hello, now: now)
        case .ready(let ready):
            guard var w = workers[peer], w.phase == .welcomed, env.runID == runID, env.workerID == w.id else {
                return drop(peer, "READY from an unknown or not-welcomed worker")
            }
            w.phase = .ready
            w.threads = ready.threads
            w.fingerprintMatches = ready.numericsFingerprint == fingerprint
            workers[peer] = w
            emit(.joined(w))
            if ready.numericsFingerprint != fingerprint { emit(.fingerprintMismatch(w)) }
        case .gradient(let g):
            out += gradient(g, env: env, peer: peer, now: now)
        case .heartbeat:
            guard workers[peer] != nil, env.runID == runID else { return drop(peer, "heartbeat from an unknown peer") }
        case .bye(let reason):
            guard var w = workers[peer], env.runID == runID else { return drop(peer, "BYE from an unknown peer") }
            _ = reason
            w.phase = .left
            workers[peer] = w
            let orders = aggregator.lost(w.id, live: liveWorkers.map(\.id), now: now)
            emit(.workerLost(w, reassigned: orders.count))
            out += send(orders)
        case .welcome, .reject, .assign, .shutdown:
            return drop(peer, "a worker sent a coordinator-only message (\(env.message.typeName))")
        }
        out += advance(now: now)
        return sent(out, now: now)
    }

    private func noteHeard(_ peer: PeerID, bytes: Int, now: Double) {
        if firstSeen == nil { firstSeen = now }
        if wallStart == nil { wallStart = now }
        bytesIn += bytes
        if var w = workers[peer], w.phase != .dead, w.phase != .left {
            w.lastHeard = now
            w.bytesIn += bytes
            workers[peer] = w
        }
    }

    /// Time passes: join deadline, liveness, heartbeats.
    public func tick(now: Double) -> [Outgoing] {
        if firstSeen == nil { firstSeen = now }
        if wallStart == nil { wallStart = now }
        var out: [Outgoing] = []
        for peer in Array(workers.keys) {
            guard var w = workers[peer], w.phase == .ready || w.phase == .welcomed else { continue }
            if w.phase == .welcomed && (now - w.welcomedAt > options.handshakeTimeout || now - w.lastHeard > options.liveness) {
                // never became a worker: forgotten, it holds nothing (no record, no slot)
                workers[peer] = nil
                abandonedHandshakes += 1
                continue
            }
            if now - w.lastHeard > options.liveness {
                w.phase = .dead
                workers[peer] = w
                let orders = aggregator.lost(w.id, live: liveWorkers.map(\.id), now: now)
                emit(.workerLost(w, reassigned: orders.count))
                out += send(orders)
            } else if now - w.lastSent > options.heartbeat {
                out.append(Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: w.id, message: .heartbeat)))
            }
        }
        if !started, let t0 = firstSeen, now - t0 > options.joinTimeout {
            let ready = liveWorkers.count
            if ready < options.minWorkers {
                var why = "check that the workers can reach the coordinator's --bind address"
                if refusedFull > 0 || abandonedHandshakes > 0 || deferredHellos > 0 {
                    why = "\(refusedFull) HELLO(s) refused by --max-workers, \(abandonedHandshakes) peer(s) welcomed but never READY within \(Int(options.handshakeTimeout)) s, \(deferredHellos) HELLO(s) deferred while \(maxPendingHandshakes) handshakes were open; if those were your workers, check their logs"
                }
                failure = .invalidConfig("only \(ready) of \(options.workers) workers joined within \(Int(options.joinTimeout)) s (need at least --min-workers \(options.minWorkers)); \(why)")
                out += shutdownAll(reason: "no quorum")
                return sent(out, now: now)
            }
        }
        if started && !isDone && liveWorkers.isEmpty && stepActive {
            let since = workers.values.map(\.lastHeard).max() ?? now
            if now - since > options.liveness {
                failure = .invalidConfig("every worker was lost; the run cannot go on (last good weights are kept)")
                return sent(out, now: now)
            }
        }
        if stepActive {
            let live = liveWorkers.map(\.id)
            out += send(aggregator.overdue(now: now, timeout: options.retryAfter, live: live))
            if options.speculate {
                out += send(aggregator.speculate(idle: live.filter { !aggregator.isBusy($0) }, now: now))
            }
        }
        out += advance(now: now)
        return sent(out, now: now)
    }

    /// Stop now: tell every worker to shut down.
    public func shutdown(reason: String, now: Double) -> [Outgoing] {
        _ = settlePendingEpoch()
        finishedFlag = true
        return sent(shutdownAll(reason: reason), now: now)
    }

    // MARK: - Handshake

    private func welcome(peer: PeerID, hello: Hello, now: Double) -> [Outgoing] {
        if let w = workers[peer], w.phase == .welcomed, now - w.welcomedAt <= options.handshakeTimeout {
            // its WELCOME is on the way (a worker says HELLO again while it waits): one per handshake
            return []
        }
        let ready = liveWorkers.filter { $0.id != workers[peer]?.id }
        if let cap = options.maxWorkers, ready.count >= cap {
            refusedFull += 1
            let holders = ready.prefix(8).map { "worker \($0.id) (\($0.host) pid \($0.pid))" }.joined(separator: ", ")
            let reason = "the run already has --max-workers \(cap) ready workers: \(holders)\(ready.count > 8 ? ", …" : "")"
            emit(.rejected(peer: peer, reason: reason))
            return [Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: 0, message: .reject(reason)))]
        }
        let pending = workers.values.reduce(0) { $0 + ($1.phase == .welcomed ? 1 : 0) }
        if pending >= maxPendingHandshakes {
            // strangers cannot make us hold more open handshakes (and WELCOMEs in flight) than this;
            // a real worker says HELLO again and gets in once a slot frees
            deferredHellos += 1
            emit(.dropped(peer: peer, reason: "HELLO deferred: \(pending) handshakes are open"))
            return []
        }
        if let reason = mismatch(hello) {
            emit(.rejected(peer: peer, reason: reason))
            return [Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: 0, message: .reject(reason)))]
        }
        let id = nextWorkerID
        nextWorkerID += 1
        var record = WorkerRecord(id: id, host: hello.host, pid: hello.pid, threads: hello.threads, phase: .welcomed)
        record.lastHeard = now
        record.welcomedAt = now
        workers[peer] = record
        let w = Welcome(
            protocolVersion: Int(Wire.protocolVersion), runID: runID, workerID: id, config: configObject,
            points: series.count, channels: series.channels, seriesHash: seriesHash,
            parameterCount: parameterCount, microBatch: microBatch,
            heartbeatMillis: Int(options.heartbeat * 1000), livenessMillis: Int(options.liveness * 1000),
            sharedData: options.sharedData ? true : nil)
        return [Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: id,
                                                        message: .welcome(w, series: options.sharedData ? [] : series.values)))]
    }

    /// Why this worker cannot join, or nil.
    func mismatch(_ hello: Hello) -> String? {
        if hello.protocolVersion != Int(Wire.protocolVersion) {
            return "worker speaks protocol version \(hello.protocolVersion); this coordinator speaks \(Wire.protocolVersion). Run the same ztrain version on both."
        }
        guard let e = hello.expect else { return nil }
        let m = config.model
        var diffs: [String] = []
        if let h = e.hidden, h != m.hiddenSize { diffs.append("worker expects --hidden \(h) but the run has hidden \(m.hiddenSize)") }
        if let i = e.input, i != m.inputSize { diffs.append("worker expects \(i) inputs but the run has \(m.inputSize)") }
        if let o = e.output, o != m.outputSize { diffs.append("worker expects \(o) outputs but the run has \(m.outputSize)") }
        if let t = e.seqLen, t != m.seqLen { diffs.append("worker expects --seq-len \(t) but the run has \(m.seqLen)") }
        if let c = e.cell, c != m.cell.rawValue { diffs.append("worker expects --cell \(c) but the run has \(m.cell.rawValue)") }
        if let a = e.activation, a != m.activation.rawValue { diffs.append("worker expects --activation \(a) but the run has \(m.activation.rawValue)") }
        if let mb = e.microBatch, mb != microBatch { diffs.append("worker expects --micro-batch \(mb) but the run has \(microBatch)") }
        return diffs.isEmpty ? nil : "configuration mismatch: " + diffs.joined(separator: "; ")
    }

    // MARK: - Steps

    /// Starts the run once enough workers are ready, and the next step once the last is applied.
    private func advance(now: Double) -> [Outgoing] {
        guard !isDone else { return [] }
        if !started {
            let ready = liveWorkers.count
            let waited = firstSeen.map { now - $0 } ?? 0
            guard ready >= options.workers || (ready >= options.minWorkers && waited > options.joinTimeout) else { return [] }
            started = true
            wallStart = now
            emit(.started(workers: ready))
        }
        guard !stepActive else { return [] }
        return startStep(now: now)
    }

    private func startStep(now: Double) -> [Outgoing] {
        guard let n = state.nextBatch(into: &windows) else {
            if let done = settlePendingEpoch() { return done }
            return finishRun()
        }
        if let bad = state.parameters.firstIndex(where: { !$0.isFinite }) {
            // no worker takes non-finite weights (Wire refuses them): say it now, as in-process would
            // on the gradient these weights give, instead of asking again forever
            failure = .diverged("weight \(bad) is \(state.parameters[bad]) at step \(state.step + 1) (epoch \(state.epoch)); lower --lr or set --clip-norm")
            return shutdownAll(reason: "training diverged")
        }
        stepWindows = n
        stepStart = now
        stepCredits = [:]
        stepTiming = StepTiming()
        return send(aggregator.begin(step: UInt64(state.step), windows: n, microBatch: microBatch,
                                     workers: liveWorkers.map(\.id), now: now))
    }

    /// ASSIGN messages for orders.
    private func send(_ orders: [Order]) -> [Outgoing] {
        guard !orders.isEmpty else { return [] }
        let stepWindows = windows[0..<self.stepWindows].map { UInt32($0) }
        var out: [Outgoing] = []
        for o in orders {
            guard let peer = workers.first(where: { $0.value.id == o.worker })?.key, var w = workers[peer] else { continue }
            w.steps += 1
            stepCredits[peer, default: (0, 0, 0, 0)].steps += 1
            workers[peer] = w
            let a = Assign(step: aggregator.step, leaves: o.run, leafCount: aggregator.leafCount, weights: state.parameters,
                           windows: stepWindows)
            out.append(Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: o.worker, message: .assign(a))))
        }
        return out
    }

    private func gradient(_ g: Gradient, env: Envelope, peer: PeerID, now: Double) -> [Outgoing] {
        g.sums.withUnsafeBufferPointer { sums in
            gradient(GradientInfo(g, runID: env.runID, workerID: env.workerID), values: .floats(sums), peer: peer, now: now)
        }
    }

    /// A GRADIENT that ``Wire/validate(header:payload:limits:)`` accepted, its sums still in the
    /// received frame: they are reduced straight from there (the transport's hot path; the same
    /// rules as a decoded GRADIENT).
    public func handleGradient(header h: Header, payload: UnsafeRawBufferPointer, from peer: PeerID, bytes: Int, now: Double) -> [Outgoing] {
        guard h.type == .gradient, h.rangeLower < h.rangeUpper, let samples = Int(exactly: h.count),
              payload.count >= 4 * (parameterCount + 1) else {
            return sent(drop(peer, "a GRADIENT that does not match this run's model"), now: now)
        }
        noteHeard(peer, bytes: bytes, now: now)
        let (start, sendAt) = Wire.spanOffsets(payload, parameterCount: parameterCount)
        let info = GradientInfo(runID: h.runID, workerID: h.workerID, step: h.step,
                                block: Int(h.rangeLower)..<Int(h.rangeUpper), leafCount: Int(h.leafCount),
                                samples: samples, computeNanos: h.aux, startNanos: start, sendNanos: sendAt)
        let sums = UnsafeRawBufferPointer(rebasing: payload[0..<(4 * (parameterCount + 1))])
        var out = gradient(info, values: .littleEndian(sums), peer: peer, now: now)
        out += advance(now: now)
        return sent(out, now: now)
    }

    /// What the aggregation needs of a GRADIENT, decoded or still in its frame.
    struct GradientInfo {
        var runID: UInt64
        var workerID: UInt32
        var step: UInt64
        var block: Range<Int>
        var leafCount: Int
        var samples: Int
        var computeNanos: UInt64
        var startNanos: UInt64
        var sendNanos: UInt64

        init(runID: UInt64, workerID: UInt32, step: UInt64, block: Range<Int>, leafCount: Int, samples: Int,
             computeNanos: UInt64, startNanos: UInt64, sendNanos: UInt64) {
            self.runID = runID; self.workerID = workerID; self.step = step; self.block = block
            self.leafCount = leafCount; self.samples = samples; self.computeNanos = computeNanos
            self.startNanos = startNanos; self.sendNanos = sendNanos
        }

        init(_ g: Gradient, runID: UInt64, workerID: UInt32) {
            self.init(runID: runID, workerID: workerID, step: g.step, block: g.block, leafCount: g.leafCount,
                      samples: g.samples, computeNanos: g.computeNanos, startNanos: g.startNanos, sendNanos: g.sendNanos)
        }
    }

    private func gradient(_ g: GradientInfo, values: StreamingTree.Source, peer: PeerID, now: Double) -> [Outgoing] {
        guard var w = workers[peer], w.phase == .ready, g.workerID == w.id else {
            return drop(peer, "GRADIENT from an unknown or not-ready worker")
        }
        guard g.runID == runID else { return drop(peer, "GRADIENT for run \(g.runID), this run is \(runID)") }
        let t0 = ContinuousClock.now
        let verdict: Verdict
        switch values {
        case .floats(let f):
            verdict = aggregator.accept(worker: w.id, step: g.step, block: g.block, leafCount: g.leafCount, samples: g.samples, sums: f, now: now)
        case .littleEndian(let b):
            verdict = aggregator.accept(worker: w.id, step: g.step, block: g.block, leafCount: g.leafCount, samples: g.samples, littleEndian: b, now: now)
        }
        let reduceSeconds = seconds(since: t0)
        switch verdict {
        case .invalid(let reason):
            return drop(peer, "GRADIENT from worker \(w.id): \(reason)")
        case .lateOrDuplicate:
            w.lateOrDuplicate += 1
            workers[peer] = w
            return []
        case .accepted:
            w.blocks += 1
            w.samples += g.samples
            let compute = Double(g.computeNanos) / 1e9
            w.computeSeconds += compute
            stepCredits[peer, default: (0, 0, 0, 0)].blocks += 1
            stepCredits[peer, default: (0, 0, 0, 0)].samples += g.samples
            stepCredits[peer, default: (0, 0, 0, 0)].compute += compute
            stepTiming.compute = max(stepTiming.compute, compute)
            stepTiming.reduce += reduceSeconds
            workers[peer] = w
            if let onSpan { workerSpans(g, worker: w.id, peer: peer, received: now, reduce: reduceSeconds, onSpan) }
            if let observer, let sentAt = assignSentAt[peer] { observer.workerAnswered(worker: w.id, seconds: max(0, now - sentAt)) }
        }
        guard aggregator.isComplete else { return [] }
        return finishStep(now: now)
    }

    /// The spans of a worker's answer, placed on this clock: the worker reports its offsets from
    /// its receipt of the ASSIGN; the rest of the round trip is split evenly between the two
    /// directions.
    private func workerSpans(_ g: GradientInfo, worker: UInt32, peer: PeerID, received now: Double, reduce: Double,
                             _ emitSpan: (TimelineSpan) -> Void) {
        let step = Int(g.step)
        guard let sentAt = assignSentAt[peer] else { return }
        let rtt = max(0, now - sentAt)
        let inner = min(rtt, Double(g.sendNanos) / 1e9)
        let oneWay = (rtt - inner) / 2
        let received = sentAt + oneWay
        let start = received + min(inner, Double(g.startNanos) / 1e9)
        let computeEnd = min(start + Double(g.computeNanos) / 1e9, received + inner)
        let idleFrom = workerIdleSince[peer] ?? received
        if received > idleFrom {
            emitSpan(TimelineSpan(process: worker, name: "wait", start: idleFrom, duration: received - idleFrom, step: step))
        }
        if start > received {
            emitSpan(TimelineSpan(process: worker, name: "wait", start: received, duration: start - received, step: step))
        }
        emitSpan(TimelineSpan(process: worker, name: "compute", start: start, duration: computeEnd - start, step: step))
        emitSpan(TimelineSpan(process: worker, name: "send", start: computeEnd, duration: max(0, now - computeEnd), step: step))
        emitSpan(TimelineSpan(process: 0, name: "reduce", start: now, duration: reduce, step: step))
        workerIdleSince[peer] = now - oneWay
    }

    private func finishStep(now: Double) -> [Outgoing] {
        // the previous epoch's evaluation (or, at full batch, this step's loss) decides whether this step counts
        let n = stepWindows
        let pending = pendingEpoch
        pendingEpoch = nil
        // an evaluation on the side is waited for here, before the step's end
        let evaluation = pending?.evaluation?.result()
        stepTiming.wait = max(0, now - lastAssignSentAt)
        let t0 = ContinuousClock.now
        let t1 = t0
        let loss: Double
        var settled: RunState.SettledEpoch?
        do {
            // the tree was summed while the answers came in: the root is read in place
            guard let outcome = try aggregator.finish({ (r) throws(TrainingError) -> RunState.StepOutcome in
                try state.finish(root: r, windows: n, evaluation: evaluation, keepClosed: pending?.checkpoint == true) { s in settled = s }
            }) else { return [] }
            if let pending, let settled, let done = recordSettled(pending, settled) { return done }
            guard case .applied(let l) = outcome else { return [] }
            loss = l
        } catch {
            failure = error
            return shutdownAll(reason: "training diverged")
        }
        stepTiming.optimizer = seconds(since: t1)
        if let onSpan {
            let step = state.step - 1
            onSpan(TimelineSpan(process: 0, name: "wait", start: lastAssignSentAt, duration: stepTiming.wait, step: step))
            onSpan(TimelineSpan(process: 0, name: "optimizer", start: now, duration: stepTiming.optimizer, step: step))
        }
        let stepSeconds = now - stepStart + stepTiming.optimizer
        trainSeconds += stepSeconds
        epochTrain += stepSeconds
        epochTiming.add(stepTiming)
        epochSteps += 1
        emit(.step(epoch: state.epoch, step: state.step, stepInEpoch: state.stepInEpoch, stepsPerEpoch: state.stepsPerEpoch,
                   loss: loss, samplesPerSecond: epochTrain > 0 ? Double(state.epochSamples) / epochTrain : 0, timing: stepTiming))
        if state.epochEnded {
            var m = EpochMetrics(
                epoch: state.epoch, step: state.step, samples: state.epochSamples, trainLoss: state.epochTrainLoss,
                loss: .nan, valLoss: nil, lr: state.lastLR, samplesPerSecond: Double(state.epochSamples) / max(epochTrain, 1e-9),
                epochSeconds: epochTrain, wallSeconds: now - (wallStart ?? now), gradNorm: state.lastGradNorm)
            m.timing = epochTiming.scaled(1 / Double(max(1, epochSteps)))
            m.bytesIn = bytesIn
            m.bytesOut = bytesOut
            m.speculative = aggregator.speculative
            m.retried = aggregator.retried
            m.reassigned = aggregator.reassigned
            m.lateOrDuplicate = aggregator.lateOrDuplicate
            m.droppedFrames = droppedFrames
            m.workers = liveWorkers.count
            epochTiming = StepTiming()
            epochSteps = 0
            epochTrain = 0
            let checkpointDue = checkpointEvery > 0 && state.step % checkpointEvery == 0
            if state.nextStepMeasuresEpochLoss {
                // Full batch: the next step's forward pass runs on these weights over every window,
                // so its loss sum is this epoch's loss (as in-process: same rule, same bits). The
                // next step goes out at once; its end settles this epoch before applying it, or
                // drops it unapplied when the target turns out reached (``RunState/finish(root:windows:evaluation:keepClosed:settled:)``).
                // A checkpoint due now is written then, of the run as it is here.
                state.deferEpochClose(evaluated: false)
                pendingEpoch = PendingEpoch(metrics: m, evaluation: nil, checkpoint: checkpointDue)
                return startStep(now: now + seconds(since: t0))
            }
            let evaluation = EpochEvaluation(evaluator: evaluator, parameters: state.parameters)
            if checkpointDue || !overlapEvaluation {
                let losses = evaluation.result()
                record(epoch: m, loss: losses.loss, valLoss: losses.valLoss)
                state.closeEpoch(loss: losses.loss, valLoss: losses.valLoss)
            } else {
                // The next step does not wait for the evaluation: it goes out now, as if the target
                // were not reached, and the evaluation runs while the workers compute. Whoever needs
                // the outcome (the next step's end, the run's end) waits for it; if the target turns
                // out reached, the run is put back to this point and the extra step is dropped
                // unapplied, so the result is the in-process run's.
                state.deferEpochClose(evaluated: true)
                pendingEpoch = PendingEpoch(metrics: m, evaluation: evaluation, checkpoint: false)
                evaluation.start()
            }
        }
        if checkpointEvery > 0 && state.step % checkpointEvery == 0, let onCheckpoint {
            do {
                try onCheckpoint(checkpoint())
            } catch {
                failure = error
                return shutdownAll(reason: "the run stopped: \(error)")
            }
        }
        // `now` is when the last gradient arrived; the update (and a synchronous evaluation or a
        // checkpoint) ran since: the next step starts now + that time, so its step time does not
        // count them (its `wait` starts when its ASSIGNs really go out, as the transport reports).
        return startStep(now: now + seconds(since: t0))
    }

    /// What each worker's accepted answers of the step in flight added to its record.
    private var stepCredits: [PeerID: (blocks: Int, samples: Int, compute: Double, steps: Int)] = [:]

    /// Evaluate an epoch's weights on another thread while the next step computes (the default).
    public var overlapEvaluation = true

    /// An epoch deferred in the run state (``RunState/deferEpochClose(evaluated:)``) while the next
    /// step computes: its metrics without the losses, and either its evaluation (running on another
    /// thread) or, when nil, the next step measures its loss (``RunState/nextStepMeasuresEpochLoss``).
    private struct PendingEpoch {
        var metrics: EpochMetrics
        var evaluation: EpochEvaluation?
        /// A checkpoint was due at the epoch's end: it is written once the epoch is settled.
        var checkpoint: Bool
    }
    private var pendingEpoch: PendingEpoch?

    /// Settles a pending epoch away from a step's end (the run ends or stops before the step that
    /// settles it completes): by waiting for its evaluation, or by evaluating it here. Returns the
    /// messages that end the run when the target turned out reached (the step sent meanwhile is
    /// dropped), else nil.
    private func settlePendingEpoch() -> [Outgoing]? {
        guard let p = pendingEpoch else { return nil }
        pendingEpoch = nil
        let losses: (loss: Double, valLoss: Double?)
        if let e = p.evaluation {
            losses = e.result()
        } else {
            losses = EpochEvaluation(evaluator: evaluator, parameters: state.deferredEpochParameters ?? state.parameters).result()
        }
        guard let s = state.settleEpoch(loss: losses.loss, valLoss: losses.valLoss, keepClosed: p.checkpoint) else { return nil }
        return recordSettled(p, s)
    }

    /// Records a settled epoch; if its decisions ended the run (the run state is back at its end),
    /// drops the step in flight and returns the messages that end the run; else writes the
    /// checkpoint that was due at its end.
    private func recordSettled(_ p: PendingEpoch, _ s: RunState.SettledEpoch) -> [Outgoing]? {
        record(epoch: p.metrics, loss: s.loss, valLoss: s.valLoss)
        if s.stops {
            aggregator.abandon()
            // the dropped step's answers do not count: every window is counted once
            for (peer, c) in stepCredits {
                guard var w = workers[peer] else { continue }
                w.blocks -= c.blocks
                w.samples -= c.samples
                w.computeSeconds -= c.compute
                w.steps -= c.steps
                workers[peer] = w
            }
            stepCredits = [:]
            return finishRun()
        }
        if let closed = s.closed, let onCheckpoint {
            do {
                try onCheckpoint(RunCheckpoint(runID: runID, state: closed, metrics: metrics, trainSeconds: trainSeconds))
            } catch {
                // the step sent meanwhile is abandoned: the run loop sees the failure and stops
                failure = error
                return shutdownAll(reason: "the run stopped: \(error)")
            }
        }
        return nil
    }

    /// Records an evaluated epoch's metrics.
    private func record(epoch draft: EpochMetrics, loss: Double, valLoss: Double?) {
        var m = draft
        m.loss = loss
        m.valLoss = valLoss
        metrics.append(m)
        emit(.epoch(m))
    }

    /// The run reached its end: the end is made durable (the run-end checkpoint, when checkpoints
    /// are on) before any worker is told. A coordinator killed in between is thus either resumed at
    /// the end (the run is complete) or before it with its workers still waiting to rejoin, never
    /// resumed before the end with its workers dismissed (it would wait for them in vain).
    private func finishRun() -> [Outgoing] {
        finishedFlag = true
        emit(.finished)
        if checkpointEvery > 0, let onCheckpoint {
            do {
                try onCheckpoint(RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds))
                wroteEndCheckpoint = true
            } catch {
                failure = error
                return shutdownAll(reason: "the run stopped: \(error)")
            }
        }
        return shutdownAll(reason: "training finished")
    }

    /// Was the run-end checkpoint written (before the workers were told the run is over)?
    public private(set) var wroteEndCheckpoint = false

    // MARK: - After the end

    /// Peers told that the run is over (bounded: see ``farewell(to:now:)``).
    public private(set) var dismissed: Set<PeerID> = []
    /// At most this many peers are told after the end (a flood of routing ids gets nothing more).
    public static let maxDismissed = 4096

    /// A peer heard after the run ended (a worker declared dead, one saying HELLO to rejoin, one whose
    /// SHUTDOWN was lost): told once that the run is over, so it exits now instead of saying HELLO
    /// until its `--reconnect-timeout`. Nothing before the end.
    public func farewell(to peer: PeerID, now: Double) -> [Outgoing] {
        guard isDone, !dismissed.contains(peer), dismissed.count < Self.maxDismissed else { return [] }
        dismissed.insert(peer)
        let reason = failure == nil ? "the run is over" : "the run stopped"
        return [Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: workers[peer]?.id ?? 0, message: .shutdown(reason)))]
    }

    /// Has every worker that may still be running been told that the run is over? (A worker that
    /// said BYE is gone; one declared dead may only have been paused or slow.)
    public var everyWorkerDismissed: Bool {
        workers.allSatisfy { peer, w in w.phase == .left || dismissed.contains(peer) }
    }

    // MARK: - Helpers

    private func shutdownAll(reason: String) -> [Outgoing] {
        workers.filter { $0.value.phase == .ready || $0.value.phase == .welcomed }.map { peer, w in
            dismissed.insert(peer)
            return Outgoing(peer: peer, envelope: Envelope(runID: runID, workerID: w.id, message: .shutdown(reason)))
        }
    }

    private func drop(_ peer: PeerID, _ reason: String) -> [Outgoing] {
        droppedFrames += 1
        observer?.frameDropped(reason: dropReasonLabel(reason))
        emit(.dropped(peer: peer, reason: reason))
        return []
    }

    /// Book-keeping for messages about to be sent (the transport reports the encoded size).
    private func sent(_ out: [Outgoing], now: Double) -> [Outgoing] {
        for o in out {
            if var w = workers[o.peer] { w.lastSent = now; workers[o.peer] = w }
            // a step's first ASSIGNs go out after the previous step's update (stepStart), which
            // the `now` of the message that finished that step predates
            if case .assign = o.envelope.message { lastAssignSentAt = max(now, stepStart) }
        }
        return out
    }

    /// The transport tells how many bytes a message took on the wire, how long sending took, and
    /// (on this core's clock) when it was handed to the socket.
    public func recordSent(peer: PeerID, bytes: Int, seconds: Double, isAssign: Bool, at: Double? = nil) {
        bytesOut += bytes
        if var w = workers[peer] { w.bytesOut += bytes; workers[peer] = w }
        if isAssign {
            stepTiming.broadcast += seconds
            if let at {
                assignSentAt[peer] = at
                lastAssignSentAt = max(lastAssignSentAt, at)
                if let onSpan {
                    onSpan(TimelineSpan(process: 0, name: "send", start: at - seconds, duration: seconds, step: Int(aggregator.step)))
                }
            }
        }
    }

    /// The outcome, for the outputs.
    public func result(now: Double) -> TrainingResult {
        _ = settlePendingEpoch()
        return evaluator.result(state: state, metrics: metrics, wallSeconds: now - (wallStart ?? now), trainSeconds: trainSeconds)
    }

    /// The run as it stands between steps.
    public func checkpoint() -> RunCheckpoint {
        _ = settlePendingEpoch()
        return RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds)
    }

    /// Mean loss of the current weights over the training windows.
    public func meanLoss() -> Double {
        _ = settlePendingEpoch()
        return evaluator.meanLoss(state.parameters, windows: state.split.train)
    }
}

extension Message {
    var typeName: String {
        switch self {
        case .hello: return "HELLO"
        case .welcome: return "WELCOME"
        case .reject: return "REJECT"
        case .ready: return "READY"
        case .assign: return "ASSIGN"
        case .gradient: return "GRADIENT"
        case .heartbeat: return "HEARTBEAT"
        case .shutdown: return "SHUTDOWN"
        case .bye: return "BYE"
        }
    }
}

/// A hash of the gradient of one fixed micro-batch, computed by the coordinator and by each worker:
/// a worker whose kernels compute different bits (another CPU, compiler or build) shows up as a mismatch.
public func numericsFingerprint(config: ModelConfig, series: Series, microBatch: Int) -> UInt64 {
    var rng = SeededRNG(seed: 0x5EED_F00D)
    let params = initializeParameters(config: config, using: &rng)
    let n = min(microBatch, max(1, series.count - config.seqLen))
    let windows = Array(0..<n)
    let ws = RNNWorkspace<Float>(config: config, maxBatch: n)
    let (loss, g) = ws.lossAndGradient(params: params, series: series.values, windows: windows)
    let all = g + [loss]
    return all.withUnsafeBytes { Wire.xxh64($0) }
}

/// The evaluation of an epoch's weights (loss over the training windows, and over the validation
/// windows), computed on another thread or in place.
final class EpochEvaluation: @unchecked Sendable {
    // @unchecked: `evaluator` is used by one thread at a time: the evaluation thread between
    // `start()` and the end of its work, which `result()` waits for; `outcome` is guarded by
    // `condition`.
    private let evaluator: Evaluator
    private let parameters: [Float]
    private let condition = Condition()
    private var outcome: (loss: Double, valLoss: Double?)?
    private var started = false

    init(evaluator: Evaluator, parameters: [Float]) {
        self.evaluator = evaluator
        self.parameters = parameters
    }

    private func compute() -> (loss: Double, valLoss: Double?) {
        let split = evaluator.split
        return (evaluator.meanLoss(parameters, windows: split.train),
                split.validation.isEmpty ? nil : evaluator.meanLoss(parameters, windows: split.validation))
    }

    /// Starts the evaluation on a background thread.
    func start() {
        condition.lock()
        started = true
        condition.unlock()
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let r = compute()
            condition.lock()
            outcome = r
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The losses: waits for a started evaluation, or computes them here.
    func result() -> (loss: Double, valLoss: Double?) {
        condition.lock()
        defer { condition.unlock() }
        if !started {
            started = true
            let r = compute()
            outcome = r
            return r
        }
        while outcome == nil { condition.wait() }
        return outcome ?? (.nan, nil)
    }
}
