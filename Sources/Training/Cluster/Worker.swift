#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN
import Series
import Wire

/// How a worker runs; nothing here changes the result.
public struct WorkerOptions: Sendable {
    /// Compute threads (any count gives the same bits).
    public var threads: Int
    /// What the operator pinned on the worker's command line; a different run is refused.
    public var expect: Expectation?
    public var host: String
    public var pid: Int32
    /// Protocol version to announce (tests use another to check the refusal).
    public var protocolVersion: UInt16
    /// Seconds to sleep before each computation: a slow machine, for fault drills and tests.
    public var artificialDelay: Double = 0
    /// Testing aid: corrupt one value of this fraction of the answers (``FaultInjection``), seeded by ``faultSeed``.
    public var faultWrongRate = 0.0
    public var faultSeed: UInt64 = 0
    /// Reads the series a configuration names, as the model sees it, when a WELCOME says the data is shared
    /// (``Welcome/sharedData``); the endpoint supplies it (the core does no I/O). Nil: such a WELCOME is
    /// answered with BYE.
    public var loadData: (@Sendable (TrainingConfig) throws -> Series)? = nil
    /// A `ztrain shard` process: a dedicated owner of a slice in sharded aggregation. It says so in
    /// HELLO (``Hello/role``), takes no series, computes nothing and never holds the whole weights.
    public var isShard = false

    public init(threads: Int, expect: Expectation? = nil, host: String = ProcessInfo.processInfo.hostName,
                pid: Int32 = ProcessInfo.processInfo.processIdentifier, protocolVersion: UInt16 = Wire.protocolVersion) {
        self.threads = threads
        self.expect = expect
        self.host = host
        self.pid = pid
        self.protocolVersion = protocolVersion
    }
}

/// Everything that can happen to a ``WorkerCore``: the one input of its reducer, ``WorkerCore/handle(_:now:)``.
public enum WorkerInput {
    /// A decoded message from the coordinator, and when it arrived (seconds on the driver's clock).
    case message(Envelope, receivedAt: Double)
    /// The answer to a ``WorkerEffect/compute(_:)`` effect: the GRADIENTs its order gave.
    case computed([Envelope])
}

/// What a ``WorkerCore`` asks its driver to do, in order.
public enum WorkerEffect {
    /// Send this message to the coordinator.
    case send(Envelope)
    /// Sharded aggregation: send this message to the worker with this id (its endpoint is in the table).
    case sendPeer(UInt32, Envelope)
    /// Sharded aggregation: a new table; the driver connects to its peers' endpoints.
    case peers(ShardTable)
    /// Run this computation (on a thread of the driver's if it wants: ``ComputeOrder/run(receivedAt:clock:)``)
    /// and answer with ``WorkerInput/computed(_:)``; the core hands out one at a time.
    case compute(ComputeOrder)
    /// The worker is done: nil after a SHUTDOWN, else why it stopped.
    case exit(String?)
}

/// A worker as a reducer: messages from the coordinator in, effects out (messages to it, computations
/// for the driver to run). It reads no clock, starts no thread and sleeps not.
///
/// `HELLO` → `WELCOME` (configuration and series, hash-checked) → `READY` (with the numerics
/// fingerprint) → `ASSIGN` → one `GRADIENT` per tree node of the assigned run → … → `SHUTDOWN`.
///
/// ```swift
/// let worker = WorkerCore(options: WorkerOptions(threads: 2))
/// for effect in worker.handle(.message(assign, receivedAt: 1.0), now: 1.0) {
///     if case .compute(let order) = effect { _ = worker.handle(.computed(order.run(receivedAt: 1.0, clock: { 1.0 })), now: 1.0) }
/// }
/// ```
public final class WorkerCore {
    public enum Phase: Sendable, Equatable { case hello, ready, done }
    public let options: WorkerOptions
    public private(set) var phase: Phase = .hello
    /// Why the worker stopped, when it was not a normal shutdown.
    public private(set) var failure: String?
    public private(set) var runID: UInt64 = 0
    public private(set) var workerID: UInt32 = 0
    public private(set) var config: TrainingConfig?
    public private(set) var steps = 0
    public private(set) var ignored = 0
    /// Liveness window announced by the coordinator (seconds).
    public private(set) var liveness = 3.0
    public private(set) var heartbeat = 1.0
    private var series: Series?
    private var engine: GradientEngine?
    private let scratch = WindowScratch()
    /// The last computation's answers: an ASSIGN given again for the same run, step and leaves (a
    /// retry after a slow step, or after a lost GRADIENT) is answered from here, not recomputed.
    private var lastAnswer: (runID: UInt64, step: UInt64, leaves: Range<Int>, replies: [Envelope])?
    /// The order handed out and not answered yet.
    private var computing: (runID: UInt64, step: UInt64, leaves: Range<Int>)?
    /// ASSIGNs answered from ``lastAnswer`` instead of computed again.
    public private(set) var repeatedAnswers = 0
    /// Sharded aggregation's state (nil: a star run).
    var shard: WorkerShard?
    /// The window count of the step being computed (its NODEs carry it).
    private var computingWindows = 0
    /// The endpoint of this worker's peer router, announced in HELLO (sharded aggregation); nil: none.
    public var peerEndpoint: String?
    /// The Z85 public key of this worker's peer router in a CURVE run, announced in HELLO; nil: none.
    public var peerKey: String?
    /// Is this worker in a sharded run?
    public var isSharded: Bool { shard != nil }
    /// The updates applied to the weights this worker holds in a sharded run (-1: none, or a star run).
    public var shardWeightsVersion: Int { shard?.version ?? -1 }

    public init(options: WorkerOptions) {
        self.options = options
    }

    /// The first message.
    public func hello() -> Envelope {
        Envelope(runID: 0, workerID: 0, message: .hello(Hello(
            protocolVersion: Int(options.protocolVersion), host: options.host, pid: options.pid,
            threads: options.threads, ztrainVersion: ztrainVersion, expect: options.expect, peer: peerEndpoint,
            peerKey: peerKey, role: options.isShard ? Hello.shardRole : nil)))
    }

    /// Forgets the run and starts over with a new HELLO (the coordinator went silent: it may have been
    /// restarted, or have declared this worker dead).
    public func rejoin() -> Envelope {
        phase = .hello
        engine = nil
        series = nil
        config = nil
        lastAnswer = nil
        computing = nil
        shard = nil
        return hello()
    }

    /// Is `env` an ASSIGN that ``handle(_:now:)`` answers from the last answer (no computation)?
    public func isRepeated(_ env: Envelope) -> Bool {
        guard case .assign(let a) = env.message, let last = lastAnswer, phase == .ready,
              env.runID == runID, env.workerID == workerID else { return false }
        return last.runID == runID && last.step == a.step && last.leaves == a.leaves
    }

    /// Has this worker ever been welcomed?
    public var hasJoined: Bool { runID != 0 }

    /// Handles one input that happened at `now` (seconds on the driver's clock); returns what to do, in order.
    public func handle(_ input: WorkerInput, now: Double) -> [WorkerEffect] {
        switch input {
        case .message(let env, _):
            return message(env)
        case .computed(let replies):
            guard let c = computing else { return [] }
            computing = nil
            steps += 1
            lastAnswer = (c.runID, c.step, c.leaves, replies)
            return outward(replies, windows: computingWindows)
        }
    }

    /// A computation's GRADIENTs: to the coordinator, or in a sharded run cut into the owners' NODEs.
    private func outward(_ replies: [Envelope], windows: Int) -> [WorkerEffect] {
        guard shard != nil else { return replies.map { .send($0) } }
        return shard?.distribute(replies, stepWindows: windows) ?? []
    }

    /// A sharded run's message (everything it says is checked before it is used).
    private func sharded(_ env: Envelope) -> [WorkerEffect] {
        guard phase == .ready, shard != nil, env.runID == runID else { ignored += 1; return [] }
        var out: [WorkerEffect] = []
        switch env.message {
        case .table(let t): out = shard?.take(t) ?? []
        case .slice(let s): out = shard?.take(s) ?? []
        case .node(let n): out = shard?.receive(n) ?? []
        case .apply(let a): out = shard?.apply(a) ?? []
        case .fetch(let f): out = shard?.fetch(f) ?? []
        case .order(let o):
            if let a = shard?.admit(o) { out = order(a) }
            return out
        default:
            ignored += 1
            return []
        }
        if computing == nil, let a = shard?.parkedReady() { out += order(a) }
        return out
    }

    private func message(_ env: Envelope) -> [WorkerEffect] {
        switch env.message {
        case .welcome(let w, let values):
            let replies = welcome(w, values: values).map { WorkerEffect.send($0) }
            return phase == .done ? replies + [.exit(failure)] : replies
        case .reject(let reason):
            failure = "the coordinator refused this worker: \(reason)"
            phase = .done
            return [.exit(failure)]
        case .assign(let a):
            guard phase == .ready, env.runID == runID, env.workerID == workerID else { ignored += 1; return [] }
            return order(a)
        case .heartbeat:
            return []
        case .shutdown:
            phase = .done
            return [.exit(nil)]
        case .table, .slice, .node, .apply, .order, .fetch:
            return sharded(env)
        case .hello, .ready, .gradient, .bye, .norm, .applied, .traffic, .digest:
            ignored += 1
            return []
        }
    }

    private func welcome(_ w: Welcome, values: [Float]) -> [Envelope] {
        guard phase == .hello else { ignored += 1; return [] }
        let fail = { (reason: String) -> [Envelope] in
            self.failure = reason
            self.phase = .done
            return [Envelope(runID: w.runID, workerID: w.workerID, message: .bye(reason))]
        }
        guard let cfg = try? TrainingConfig(wireObject: w.config) else {
            return fail("the coordinator's configuration does not decode (different ztrain versions?)")
        }
        do { try cfg.model.validate() } catch { return fail("the coordinator's model is invalid: \(error)") }
        guard cfg.model.inputSize == w.channels, cfg.model.outputSize == w.channels,
              ParameterLayout(cfg.model).count == w.parameterCount, w.microBatch >= 1 else {
            return fail("WELCOME is inconsistent: \(w.channels) channels, \(w.parameterCount) parameters for model \(cfg.model)")
        }
        if options.isShard { return welcomeShard(w, config: cfg, fail: fail) }
        let s: Series
        if w.sharedData == true {
            guard let load = options.loadData else {
                return fail("the coordinator asked this worker to read the data itself, which it cannot; run the coordinator without --shared-data")
            }
            do {
                s = try load(cfg)
            } catch {
                return fail("cannot read the data the coordinator named (\(cfg.data)): \(error); give this worker the same file at the same path, or run the coordinator without --shared-data")
            }
            guard s.count == w.points, s.channels == w.channels, s.fingerprint == w.seriesHash else {
                return fail("the data at \(cfg.data) here (\(s.count) points, hash \(String(s.fingerprint, radix: 16))) is not the coordinator's (\(w.points) points, hash \(String(w.seriesHash, radix: 16))); give this worker the same file, or run the coordinator without --shared-data")
            }
        } else {
            let names = (0..<w.channels).map { "c\($0)" }
            guard let received = try? Series(names: names, values: values), received.count == w.points else {
                return fail("the series in WELCOME is malformed")
            }
            guard received.fingerprint == w.seriesHash else {
                return fail("the series arrived with hash \(String(received.fingerprint, radix: 16)), expected \(String(w.seriesHash, radix: 16))")
            }
            s = received
        }
        adopt(w, config: cfg)
        series = s
        engine = GradientEngine(config: cfg.model, microBatch: w.microBatch, threads: options.threads)
        shard = w.aggregation == Aggregation.sharded.rawValue
            ? WorkerShard(runID: w.runID, workerID: w.workerID, parameterCount: w.parameterCount, microBatch: w.microBatch,
                          optimizer: cfg.optimizer)
            : nil
        let fp = numericsFingerprint(config: cfg.model, series: s, microBatch: w.microBatch)
        return [Envelope(runID: runID, workerID: workerID, message: .ready(Ready(numericsFingerprint: fp, threads: options.threads)))]
    }

    /// Takes the run, the id and the timing WELCOME gives; the worker is ready.
    func adopt(_ w: Welcome, config cfg: TrainingConfig) {
        runID = w.runID
        workerID = w.workerID
        config = cfg
        liveness = Double(max(100, w.livenessMillis)) / 1000
        heartbeat = Double(max(10, w.heartbeatMillis)) / 1000
        phase = .ready
    }

    /// An ASSIGN: its last answer again, or a computation for the driver (everything it says is
    /// checked before it is used).
    private func order(_ a: Assign) -> [WorkerEffect] {
        guard let engine, let series, let config else { ignored += 1; return [] }
        if let last = lastAnswer, last.runID == runID, last.step == a.step, last.leaves == a.leaves {
            repeatedAnswers += 1
            return outward(last.replies, windows: a.windows.count)
        }
        // one computation at a time: the driver holds messages back while one runs
        guard computing == nil else { ignored += 1; return [] }
        let T = config.model.seqLen
        let plan = engine.plan(windows: a.windows.count)
        let m = plan.leafCount
        guard a.weights.count == engine.parameterCount, a.leafCount == m, a.leaves.lowerBound >= 0,
              a.leaves.lowerBound < a.leaves.upperBound, a.leaves.upperBound <= m,
              a.windows.allSatisfy({ Int($0) + T + 1 <= series.count }) else {
            ignored += 1
            return []
        }
        computing = (runID, a.step, a.leaves)
        computingWindows = a.windows.count
        return [.compute(ComputeOrder(engine: engine, series: series, assign: a, plan: plan, runID: runID, workerID: workerID,
                                      scratch: scratch, artificialDelay: options.artificialDelay,
                                      corrupt: FaultInjection.corrupts(rate: options.faultWrongRate, seed: options.faultSeed, step: a.step, leaves: a.leaves)))]
    }
}

/// The version: what `ztrain --version` prints, a worker announces and `summary.json` records.
public let ztrainVersion = "0.1.0"
