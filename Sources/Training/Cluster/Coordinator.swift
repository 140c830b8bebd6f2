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
    /// How the steps are aggregated (``Aggregation``; star by default).
    public var aggregation: Aggregation = .star
    /// Sharded: the owners send their optimizer state with their slices at every step, so a dead owner's
    /// slice is re-planned among the survivors from the coordinator's copy and the step taken again
    /// (exact; 3·P floats into the coordinator a step instead of P). Off: a dead owner stops the run.
    public var ownerRecovery = true
    /// A CURVE run's allow-list (Z85 worker public keys; nil: a run without CURVE). Sharded: a worker
    /// must announce one of these keys in HELLO (``Hello/peerKey``); the table passes it to the other
    /// workers, whose peer routers admit exactly the table's keys.
    public var peerKeys: Set<String>?
    /// Sharded: `ztrain shard` processes (dedicated owners) to wait for before the run starts, besides
    /// ``workers`` (after ``joinTimeout`` the run starts with those there). The shards ready when the run
    /// starts own the slices; without any, the workers do.
    public var shards = 0
    /// What `--aggregation` asked for (the launcher resolves `auto` into ``aggregation`` once the model is known).
    public var aggregationChoice: AggregationChoice = .star
    /// The fraction of each step's leaf runs also computed by a second worker and compared bit for
    /// bit (``AuditPlan``; 0: no audit).
    public var auditRate = 0.0
    /// `--audit-rate`'s default on the command line.
    public static let defaultAuditRate = 0.02

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
    public enum Phase: String, Sendable, Codable { case welcomed, ready, dead, left, quarantined }
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
    /// True for a `ztrain shard` process (a dedicated owner: it gets no orders); nil for a worker.
    public var shard: Bool?
    /// The bytes the process received and sent over all its sockets (its link to the coordinator and
    /// its peer links), as it last reported them (``Traffic``); nil: it reported none.
    public var processBytesIn: Int?
    public var processBytesOut: Int?
    var lastHeard = 0.0
    var lastSent = 0.0
    /// When the WELCOME went out (for the handshake timeout).
    var welcomedAt = 0.0

    enum CodingKeys: String, CodingKey {
        case id, host, pid, threads, phase, fingerprintMatches, steps, blocks, samples, computeSeconds, bytesIn, bytesOut, lateOrDuplicate, shard, processBytesIn, processBytesOut
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

/// A message the coordinator wants sent (a ``CoordinatorEffect/send(_:_:)`` effect, as
/// ``CoordinatorCore/perform(_:now:)`` returns it to the transport).
public struct Outgoing: Sendable {
    public var peer: PeerID
    public var envelope: Envelope
}

/// What the coordinator reports to whoever runs it.
public enum CoordinatorEvent: Sendable {
    case joined(WorkerRecord)
    case rejected(peer: PeerID, reason: String)
    case workerLost(WorkerRecord, reassigned: Int)
    /// An audit caught this worker computing wrong bits: it gets no more orders.
    case quarantined(WorkerRecord, QuarantineEntry)
    case fingerprintMismatch(WorkerRecord)
    case started(workers: Int)
    case step(epoch: Int, step: Int, stepInEpoch: Int, stepsPerEpoch: Int, loss: Double, samplesPerSecond: Double, timing: StepTiming)
    case epoch(EpochMetrics)
    case dropped(peer: PeerID, reason: String)
    case finished
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
        case .table: return "TABLE"
        case .order: return "ORDER"
        case .node: return "NODE"
        case .norm: return "NORM"
        case .apply: return "APPLY"
        case .slice: return "SLICE"
        case .fetch: return "FETCH"
        case .applied: return "APPLIED"
        case .traffic: return "TRAFFIC"
        case .digest: return "DIGEST"
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
