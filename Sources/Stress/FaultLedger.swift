#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ZeroMQ
import Support

/// Where workers record the faults they inject (kind and round of each), and how long they
/// spent generating each round's leaf gradients.
public protocol FaultSink: Sendable {
    /// Records one injected fault of `kind` in `round`.
    func record(_ kind: FaultKind, round: Int)
    /// Records that a worker spent `nanos` generating the node sums of one order of `round`
    /// (before the round began with ``StressConfig/pregenerate``, or on receipt of the ASSIGN).
    func generated(round: Int, nanos: UInt64)
}

/// The injected faults of a run, by kind and round; thread-safe.
public final class FaultLedger: FaultSink, @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = Lock()
    private var counts: [FaultKind: [Int: Int]] = [:]
    private var generation: [Int: UInt64] = [:]

    /// An empty ledger.
    public init() {}

    public func record(_ kind: FaultKind, round: Int) {
        lock.withLock { counts[kind, default: [:]][round, default: 0] += 1 }
    }

    public func generated(round: Int, nanos: UInt64) {
        lock.withLock { generation[round] = max(generation[round] ?? 0, nanos) }
    }

    /// Per round, the longest generation of one order by one worker (nanoseconds): what the
    /// generation would add to the round if it ran inside it.
    public var generationByRound: [Int: UInt64] { lock.withLock { generation } }

    /// Adds the lines of a worker process's ledger file (`KIND ROUND` per fault, `generation ROUND
    /// NANOS` per order generated); returns how many faults were read. Lines that do not parse are
    /// ignored (a process killed mid-write).
    @discardableResult
    public func merge(file url: URL) -> Int {
        guard let data = try? Data(contentsOf: url) else { return 0 }
        var n = 0
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 3, parts[0] == FaultFile.generationKey, let round = Int(parts[1]), let nanos = UInt64(parts[2]) {
                generated(round: round, nanos: nanos)
                continue
            }
            guard parts.count == 2, let kind = FaultKind(rawValue: String(parts[0])), let round = Int(parts[1]) else { continue }
            record(kind, round: round)
            n += 1
        }
        return n
    }

    /// Faults of `kind` so far.
    public func injected(_ kind: FaultKind) -> Int {
        lock.withLock { counts[kind]?.values.reduce(0, +) ?? 0 }
    }

    /// All faults so far.
    public var total: Int {
        lock.withLock { counts.values.reduce(0) { $0 + $1.values.reduce(0, +) } }
    }

    /// Faults of `kind` in rounds for which `survived` is true.
    public func injected(_ kind: FaultKind, where survived: (Int) -> Bool) -> Int {
        let byRound = lock.withLock { counts[kind] ?? [:] }
        return byRound.reduce(0) { $0 + (survived($1.key) ? $1.value : 0) }
    }

    /// Whether a `kill` was recorded (used to tell an injected death from a crash).
    public func contains(_ kind: FaultKind) -> Bool { injected(kind) > 0 }
}

/// A worker process's ledger: one `KIND ROUND` line per fault (and one `generation ROUND NANOS`
/// line per order generated), appended with a single `write(2)` so that a line is on disk before
/// the process kills itself.
public final class FaultFile: FaultSink, @unchecked Sendable {
    // @unchecked: `fd` is immutable; write(2) with O_APPEND is atomic for such short lines.
    private let fd: Int32

    /// Opens (creating) `path` for appending.
    public init(path: String) throws(StressError) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw .io("cannot open the fault ledger \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// The first word of a generation line.
    static let generationKey = "generation"

    public func record(_ kind: FaultKind, round: Int) {
        append("\(kind.rawValue) \(round)\n")
    }

    public func generated(round: Int, nanos: UInt64) {
        append("\(Self.generationKey) \(round) \(nanos)\n")
    }

    private func append(_ text: String) {
        let line = Array(text.utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
