/// A worker caught computing wrong bits: it gets no more orders, and it is refused if it comes
/// back with the same identity (host and pid) or the same CURVE key.
public struct QuarantineEntry: Sendable, Codable, Equatable {
    public var worker: UInt32
    public var host: String
    public var pid: Int32
    /// The step whose audit caught it.
    public var step: Int
    public var reason: String
    /// In a CURVE run, the Z85 public key the worker announced in HELLO (``Hello/peerKey``: the key
    /// the coordinator admitted it with); the coordinator's allow-list drops it too. Nil without CURVE.
    public var key: String?

    public init(worker: UInt32, host: String, pid: Int32, step: Int, reason: String, key: String? = nil) {
        self.worker = worker; self.host = host; self.pid = pid; self.step = step; self.reason = reason; self.key = key
    }
}

/// The workers quarantined in a run (``Membership`` refuses their HELLOs).
///
/// ```swift
/// var q = Quarantine()
/// q.add(QuarantineEntry(worker: 2, host: "b", pid: 7, step: 12, reason: "wrong sums"))
/// q.refusal(host: "b", pid: 7)   // "this worker (b pid 7) was quarantined at step 12: wrong sums"
/// q.refusal(host: "c", pid: 9, key: k)   // the same, for a new process with the quarantined key k
/// ```
public struct Quarantine: Sendable, Equatable {
    public private(set) var entries: [QuarantineEntry] = []

    public init() {}

    public mutating func add(_ entry: QuarantineEntry) { entries.append(entry) }

    /// Why a HELLO from `host` / `pid`, announcing CURVE key `key`, is refused, or nil.
    public func refusal(host: String, pid: Int32, key: String? = nil) -> String? {
        if let e = entries.first(where: { $0.host == host && $0.pid == pid }) {
            return "this worker (\(host) pid \(pid)) was quarantined at step \(e.step): \(e.reason); check its machine (memory, CPU) and start a fresh worker process"
        }
        guard let key, let e = entries.first(where: { $0.key == key }) else { return nil }
        return "this worker's CURVE key \(key) belongs to worker \(e.worker) (\(e.host) pid \(e.pid)), quarantined at step \(e.step): \(e.reason); check that machine (memory, CPU) and give a fresh worker a new key pair ('ztrain keygen')"
    }
}
