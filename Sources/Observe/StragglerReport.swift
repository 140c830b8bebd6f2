import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Training
import Support

/// The coordinator's live straggler and hang report.
///
/// Every `reportEvery` seconds (0: never), and whenever the process gets SIGUSR1, it logs the
/// workers whose answers took longest since the last report, against the median worker. When the
/// step in flight has waited longer than `hangAfter` seconds (0: never) it names the workers it is
/// still waiting for and the leaves (micro-batches) each owes, how long ago each was last heard
/// from, and repeats that every `hangAfter` seconds while the step waits.
public final class StragglerReport: CoordinatorObserver, @unchecked Sendable {
    // @unchecked: everything but `signalled` belongs to the coordinator's thread; `signalled` is
    // guarded by `lock` (the SIGUSR1 handler runs on a dispatch queue).
    public let reportEvery: Double
    public let hangAfter: Double
    private let logger: Logger
    private var stats: [UInt32: (count: Int, sum: Double, max: Double)] = [:]
    private var lastReport = 0.0
    private var lastCheck = -1.0
    private var hangStep: UInt64?
    private var lastHang = 0.0
    private let lock = Lock()
    private var signalled = false
    private var source: DispatchSourceSignal?
    /// Hang reports logged (for tests and the summary).
    public private(set) var hangReports = 0

    public init(reportEvery: Double, hangAfter: Double, logger: Logger, onSIGUSR1: Bool = true) {
        self.reportEvery = reportEvery
        self.hangAfter = hangAfter
        self.logger = logger
        if onSIGUSR1 {
            _ = signal(SIGUSR1, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
            src.setEventHandler { [weak self] in self?.raise() }
            src.resume()
            source = src
        }
    }

    deinit { source?.cancel() }

    private func raise() {
        lock.lock()
        signalled = true
        lock.unlock()
    }

    private func takeSignal() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let s = signalled
        signalled = false
        return s
    }

    public func workerAnswered(worker: UInt32, seconds: Double) {
        // one lookup, in place; the table keeps its capacity between reports (no allocation per answer)
        func add(_ s: inout (count: Int, sum: Double, max: Double)) {
            s.count += 1
            s.sum += seconds
            s.max = max(s.max, seconds)
        }
        add(&stats[worker, default: (0, 0, 0)])
    }

    public func tick(_ server: CoordinatorServer, now: Double) {
        guard now - lastCheck >= 0.05 else { return }
        lastCheck = now
        let core = server.core
        if takeSignal() || (reportEvery > 0 && now - lastReport >= reportEvery && core.isRunning) {
            logger.notice("\(Self.stragglers(stats: stats, workers: core.liveWorkers, seconds: now - lastReport))")
            stats.removeAll(keepingCapacity: true)
            lastReport = now
        }
        guard hangAfter > 0, let flight = core.stepInFlight else { hangStep = nil; return }
        let waited = now - flight.started
        guard waited >= hangAfter else { return }
        if hangStep != flight.step || now - lastHang >= hangAfter {
            hangStep = flight.step
            lastHang = now
            hangReports += 1
            logger.warning("\(Self.hang(step: flight.step, waited: waited, pending: core.pendingWork, workers: Array(core.workers.values), now: now))")
        }
    }

    /// "answers over the last 10.0 s, slowest first: worker 2 (host pid 41) mean 12.1 ms, max 30.2 ms, 2.4× the median 5.0 ms (80 answers); …"
    static func stragglers(stats: [UInt32: (count: Int, sum: Double, max: Double)], workers: [WorkerRecord], seconds: Double) -> String {
        let named = Dictionary(workers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let means = stats.map { (id: $0.key, mean: $0.value.sum / Double(max(1, $0.value.count)), max: $0.value.max, count: $0.value.count) }
            .sorted { $0.mean != $1.mean ? $0.mean > $1.mean : $0.id < $1.id }
        guard !means.isEmpty else {
            return "straggler report: no answers in the last \(cFormat("%.1f", seconds)) s (\(workers.count) live worker(s))"
        }
        let sorted = means.map(\.mean).sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        var parts: [String] = []
        for m in means.prefix(5) {
            let who = named[m.id].map { "worker \(m.id) (\($0.host) pid \($0.pid))" } ?? "worker \(m.id) (gone)"
            let ratio = median > 0 ? cFormat("%.2f", m.mean / median) : "-"
            parts.append("\(who) mean \(ms(m.mean)), max \(ms(m.max)), \(ratio)× the median \(ms(median)) (\(m.count) answers)")
        }
        let silent = workers.filter { stats[$0.id] == nil }.map { "worker \($0.id) (\($0.host) pid \($0.pid))" }
        let tail = silent.isEmpty ? "" : "; no answer from " + silent.joined(separator: ", ")
        return "straggler report, answers over the last \(cFormat("%.1f", seconds)) s, slowest first: " + parts.joined(separator: "; ") + tail
    }

    /// "step 41 has waited 12.0 s; waiting for worker 2 (host pid 1234, last heard 11.9 s ago): leaves 4-7 (since 12.0 s)"
    static func hang(step: UInt64, waited: Double, pending: [PendingWork], workers: [WorkerRecord], now: Double) -> String {
        let byID = Dictionary(workers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        guard !pending.isEmpty else {
            return "step \(step) has waited \(cFormat("%.1f", waited)) s and no live worker holds its missing leaves (they go out again to the next live worker)"
        }
        let parts = pending.map { p -> String in
            let leaves = p.leaves.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ",")
            let who: String
            if let w = byID[p.worker] {
                who = "worker \(p.worker) (\(w.host) pid \(w.pid), \(w.phase.rawValue), last heard \(cFormat("%.1f", max(0, now - w.lastHeardAt))) s ago)"
            } else {
                who = "worker \(p.worker)"
            }
            return "\(who): leaves \(leaves) (asked \(cFormat("%.1f", now - p.since)) s ago)"
        }
        return "step \(step) has waited \(cFormat("%.1f", waited)) s; waiting for " + parts.joined(separator: "; ")
    }

    private static func ms(_ s: Double) -> String { s >= 1 ? cFormat("%.2f s", s) : cFormat("%.2f ms", s * 1000) }
}
