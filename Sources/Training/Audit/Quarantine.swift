/// A worker caught computing wrong bits: it gets no more orders, and it is refused if it comes
/// back with the same identity (host and pid).
public struct QuarantineEntry: Sendable, Codable, Equatable {
    public var worker: UInt32
    public var host: String
    public var pid: Int32
    /// The step whose audit caught it.
    public var step: Int
    public var reason: String

    public init(worker: UInt32, host: String, pid: Int32, step: Int, reason: String) {
        self.worker = worker; self.host = host; self.pid = pid; self.step = step; self.reason = reason
    }
}

/// The workers quarantined in a run (``Membership`` refuses their HELLOs).
///
/// ```swift
/// var q = Quarantine()
/// q.add(QuarantineEntry(worker: 2, host: "b", pid: 7, step: 12, reason: "wrong sums"))
/// q.refusal(host: "b", pid: 7)   // "this worker (b pid 7) was quarantined at step 12: wrong sums"
/// ```
public struct Quarantine: Sendable, Equatable {
    public private(set) var entries: [QuarantineEntry] = []

    public init() {}

    public mutating func add(_ entry: QuarantineEntry) { entries.append(entry) }

    /// Why a HELLO from `host` / `pid` is refused, or nil.
    public func refusal(host: String, pid: Int32) -> String? {
        guard let e = entries.first(where: { $0.host == host && $0.pid == pid }) else { return nil }
        return "this worker (\(host) pid \(pid)) was quarantined at step \(e.step): \(e.reason); check its machine (memory, CPU) and start a fresh worker process"
    }
}
