import RNN
import Wire

/// Who is in the run: the handshake (HELLO → WELCOME → READY, configuration mismatches,
/// `--max-workers` refusals, a bounded number of open handshakes) and liveness (when each worker
/// was last heard from and sent to, dead workers, heartbeats due), with the counts of refusals.
/// A value with no I/O and no clock: every call is told the time. ``CoordinatorCore`` owns one.
///
/// ```swift
/// var members = Membership(options: CoordinatorOptions(workers: 2), model: config.model, microBatch: 8, welcomeBytes: 1 << 20)
/// if case .welcome(let id) = members.hello(hello, from: peer, now: 0) { print("worker \(id) welcomed") }
/// ```
public struct Membership {
    public let options: CoordinatorOptions
    /// Open handshakes allowed at once (``CoordinatorOptions/maxPendingHandshakes``, or as many
    /// WELCOMEs as fit in 64 MiB, 1...8).
    public let maxPendingHandshakes: Int
    /// What a worker's expectations (``Hello/expect``) are checked against.
    let model: ModelConfig
    let microBatch: Int
    public internal(set) var workers: [PeerID: WorkerRecord] = [:]
    var nextWorkerID: UInt32 = 1
    /// Peers welcomed that never said READY within the handshake timeout (forgotten).
    public internal(set) var abandonedHandshakes = 0
    /// HELLOs left unanswered because ``maxPendingHandshakes`` handshakes were open.
    public internal(set) var deferredHellos = 0
    /// Workers refused because ``CoordinatorOptions/maxWorkers`` ready workers were there.
    public internal(set) var refusedFull = 0
    /// Workers an audit caught computing wrong bits (their HELLOs are refused).
    public internal(set) var quarantine = Quarantine()

    /// - Parameter welcomeBytes: the size of one WELCOME (it bounds the open handshakes).
    public init(options: CoordinatorOptions, model: ModelConfig, microBatch: Int, welcomeBytes: Int) {
        self.options = options
        self.model = model
        self.microBatch = microBatch
        maxPendingHandshakes = max(1, options.maxPendingHandshakes ?? min(8, (64 << 20) / welcomeBytes))
    }

    /// Ready workers (the processes that compute; not the shard processes), by id.
    public var liveWorkers: [WorkerRecord] { workers.values.filter { $0.phase == .ready && $0.shard != true }.sorted { $0.id < $1.id } }

    /// Ready `ztrain shard` processes (dedicated owners in sharded aggregation), by id.
    public var liveShards: [WorkerRecord] { workers.values.filter { $0.phase == .ready && $0.shard == true }.sorted { $0.id < $1.id } }

    /// Is `peer` a welcomed or ready worker (one whose frames are worth validating)?
    public func isWorker(_ peer: PeerID) -> Bool {
        guard let w = workers[peer] else { return false }
        return w.phase == .welcomed || w.phase == .ready
    }

    /// The peer whose worker id is `id`.
    func peer(of id: UInt32) -> PeerID? { workers.first(where: { $0.value.id == id })?.key }

    // MARK: - Handshake

    /// What a HELLO gets.
    public enum HelloAnswer: Equatable {
        /// Its WELCOME is on the way (a worker says HELLO again while it waits): nothing.
        case alreadyWelcomed
        /// Refused (REJECT with this reason).
        case refused(String)
        /// Left unanswered while this many handshakes are open (the worker says HELLO again).
        case deferred(open: Int)
        /// Welcomed as this worker.
        case welcome(UInt32)
    }

    /// A HELLO from `peer`.
    public mutating func hello(_ hello: Hello, from peer: PeerID, now: Double) -> HelloAnswer {
        if let w = workers[peer], w.phase == .welcomed, now - w.welcomedAt <= options.handshakeTimeout {
            return .alreadyWelcomed
        }
        let ready = liveWorkers.filter { $0.id != workers[peer]?.id }
        if let cap = options.maxWorkers, ready.count >= cap {
            refusedFull += 1
            let holders = ready.prefix(8).map { "worker \($0.id) (\($0.host) pid \($0.pid))" }.joined(separator: ", ")
            return .refused("the run already has --max-workers \(cap) ready workers: \(holders)\(ready.count > 8 ? ", …" : "")")
        }
        let pending = workers.values.reduce(0) { $0 + ($1.phase == .welcomed ? 1 : 0) }
        if pending >= maxPendingHandshakes {
            // strangers cannot make us hold more open handshakes (and WELCOMEs in flight) than this;
            // a real worker says HELLO again and gets in once a slot frees
            deferredHellos += 1
            return .deferred(open: pending)
        }
        if let reason = mismatch(hello) ?? quarantine.refusal(host: hello.host, pid: hello.pid, key: hello.peerKey) { return .refused(reason) }
        let id = nextWorkerID
        nextWorkerID += 1
        var record = WorkerRecord(id: id, host: hello.host, pid: hello.pid, threads: hello.threads, phase: .welcomed)
        if hello.role == Hello.shardRole { record.shard = true }
        record.lastHeard = now
        record.welcomedAt = now
        workers[peer] = record
        return .welcome(id)
    }

    /// Why this worker cannot join, or nil.
    public func mismatch(_ hello: Hello) -> String? {
        if hello.protocolVersion != Int(Wire.protocolVersion) {
            return "worker speaks protocol version \(hello.protocolVersion); this coordinator speaks \(Wire.protocolVersion). Run the same ztrain version on both."
        }
        guard let e = hello.expect else { return nil }
        let m = model
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

    /// A READY from `peer` claiming worker `id`: the worker's record, now ready, or nil when `peer`
    /// is not a welcomed worker of that id.
    public mutating func ready(_ ready: Ready, from peer: PeerID, workerID id: UInt32, fingerprint: UInt64) -> WorkerRecord? {
        guard var w = workers[peer], w.phase == .welcomed, id == w.id else { return nil }
        w.phase = .ready
        w.threads = ready.threads
        w.fingerprintMatches = w.shard == true ? nil : ready.numericsFingerprint == fingerprint  // a shard computes nothing
        workers[peer] = w
        return w
    }

    /// A BYE from `peer`: its record, now left (nil: not a worker).
    public mutating func left(_ peer: PeerID) -> WorkerRecord? {
        guard var w = workers[peer] else { return nil }
        w.phase = .left
        workers[peer] = w
        return w
    }

    // MARK: - Liveness

    /// `bytes` heard from `peer` at `now` (dead and departed workers stay so).
    public mutating func heard(_ peer: PeerID, bytes: Int, now: Double) {
        if var w = workers[peer], w.phase != .dead, w.phase != .left {
            w.lastHeard = now
            w.bytesIn += bytes
            workers[peer] = w
        }
    }

    /// A message went to `peer` at `now` (heartbeats are due after silence towards it).
    public mutating func sent(to peer: PeerID, now: Double) {
        if var w = workers[peer] { w.lastSent = now; workers[peer] = w }
    }

    /// What the liveness check found for one peer.
    public enum Liveness {
        /// Alive and recently sent to; or not a welcomed or ready worker.
        case fine
        /// Welcomed but never READY in time: forgotten (it holds nothing).
        case forgotten
        /// Silent for longer than ``CoordinatorOptions/liveness``: now dead.
        case dead(WorkerRecord)
        /// Nothing sent to it for ``CoordinatorOptions/heartbeat``: a heartbeat is due.
        case heartbeatDue(UInt32)
    }

    /// Checks one peer at `now` (the core walks ``workers``' keys and acts on each answer before the next).
    public mutating func check(_ peer: PeerID, now: Double) -> Liveness {
        guard var w = workers[peer], w.phase == .ready || w.phase == .welcomed else { return .fine }
        if w.phase == .welcomed && (now - w.welcomedAt > options.handshakeTimeout || now - w.lastHeard > options.liveness) {
            workers[peer] = nil
            abandonedHandshakes += 1
            return .forgotten
        }
        if now - w.lastHeard > options.liveness {
            w.phase = .dead
            workers[peer] = w
            return .dead(w)
        }
        if now - w.lastSent > options.heartbeat { return .heartbeatDue(w.id) }
        return .fine
    }

    /// When any worker was last heard from.
    var lastHeardFromAnyone: Double? { workers.values.map(\.lastHeard).max() }

    /// Why too few workers joined, for the join-timeout error.
    var whyTooFew: String {
        guard refusedFull > 0 || abandonedHandshakes > 0 || deferredHellos > 0 else {
            return "check that the workers can reach the coordinator's --bind address"
        }
        return "\(refusedFull) HELLO(s) refused by --max-workers, \(abandonedHandshakes) peer(s) welcomed but never READY within \(Int(options.handshakeTimeout)) s, \(deferredHellos) HELLO(s) deferred while \(maxPendingHandshakes) handshakes were open; if those were your workers, check their logs"
    }
}
