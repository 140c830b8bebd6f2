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
import Logging
import Training
import ZeroMQ
import Support

/// A worker that has ended.
struct WorkerDeath: Sendable {
    /// The worker's serial number.
    var serial: Int
    /// An injected kill (as opposed to a crash or a refusal).
    var injected: Bool
    /// What happened.
    var what: String
}

/// Starts, watches and ends the synthetic workers of one run.
protocol WorkerPool: AnyObject {
    /// Starts worker number `serial`.
    func spawn(serial: Int) throws(StressError)
    /// Workers that ended since the last call.
    func reap() -> [WorkerDeath]
    /// Ends every worker (they have been sent SHUTDOWN): waits up to `grace` seconds, then
    /// insists. Returns how many could not be ended (leaked).
    func stopAll(grace: Double) -> Int
    /// The largest peak RSS of a worker process, in bytes (nil for threads).
    var workerPeakRSS: Int? { get }
    /// Samples the peak RSS of the running worker processes (no-op for threads).
    func sampleMemory()
    /// Ids of every process started (empty for threads).
    var startedPIDs: [Int32] { get }
}

/// Workers as threads of this process.
final class ThreadWorkers: WorkerPool {
    private final class Handle: @unchecked Sendable {
        // @unchecked: `exit` is guarded by `lock`.
        let lock = Lock()
        var exit: WorkerExit?
        var reported = false
        func finish(_ e: WorkerExit) { lock.withLock { exit = e } }
        var result: WorkerExit? { lock.withLock { exit } }
    }

    let config: StressConfig
    let endpoint: String
    let ledger: FaultLedger
    let logger: Logger
    private let stop = StopFlag()
    private var handles: [Int: Handle] = [:]

    init(config: StressConfig, endpoint: String, ledger: FaultLedger, logger: Logger) {
        self.config = config
        self.endpoint = endpoint
        self.ledger = ledger
        self.logger = logger
    }

    func spawn(serial: Int) throws(StressError) {
        let handle = Handle()
        handles[serial] = handle
        let (config, endpoint, ledger, stop, logger) = (self.config, self.endpoint, self.ledger, self.stop, self.logger)
        detachThread {
            if config.aggregation == .sharded {
                let worker = ShardStressWorker(config: config, serial: serial, sink: ledger, stop: stop, logger: logger)
                handle.finish(worker.run(endpoint: endpoint))
            } else {
                let worker = StressWorker(config: config, serial: serial, sink: ledger, stop: stop, logger: logger)
                handle.finish(worker.run(endpoint: endpoint))
            }
        }
    }

    func reap() -> [WorkerDeath] {
        var out: [WorkerDeath] = []
        for (serial, h) in handles.sorted(by: { $0.key < $1.key }) where !h.reported {
            guard let e = h.result else { continue }
            h.reported = true
            handles[serial] = nil  // its thread has ended
            if case .killed = e {
                out.append(WorkerDeath(serial: serial, injected: true, what: "worker \(serial) \(e)"))
            } else {
                out.append(WorkerDeath(serial: serial, injected: false, what: "worker thread \(serial) \(e)"))
            }
        }
        return out
    }

    func stopAll(grace: Double) -> Int {
        let deadline = Date().addingTimeInterval(max(0, grace))
        while handles.values.contains(where: { $0.result == nil }) && Date() < deadline { usleep(2_000) }
        stop.set()
        let hard = Date().addingTimeInterval(10)
        while handles.values.contains(where: { $0.result == nil }) && Date() < hard { usleep(2_000) }
        return handles.values.filter { $0.result == nil }.count
    }

    var workerPeakRSS: Int? { nil }
    func sampleMemory() {}
    var startedPIDs: [Int32] { [] }
}

/// Workers as child processes (`posix_spawn`), each in its own process group with SIGINT and
/// SIGTERM at their defaults, reaped with `wait4`. Their peak RSS is sampled from
/// `/proc/PID/status` (VmHWM) while they run: `wait4`'s `ru_maxrss` is no use here, since Linux
/// carries the maximum across `exec` and a vfork-style spawn starts with the parent's memory.
final class ProcessWorkers: WorkerPool {
    private struct Child {
        var pid: pid_t
        var reaped = false
        var reported = false
        var status: Int32 = 0
    }

    let executable: URL
    let config: StressConfig
    let endpoint: String
    let ledgerDirectory: URL
    let logger: Logger
    private var children: [Int: Child] = [:]
    private var maxRSS = 0

    init(executable: URL, config: StressConfig, endpoint: String, ledgerDirectory: URL, logger: Logger) {
        self.executable = executable
        self.config = config
        self.endpoint = endpoint
        self.ledgerDirectory = ledgerDirectory
        self.logger = logger
    }

    func ledgerFile(_ serial: Int) -> URL { ledgerDirectory.appendingPathComponent("faults-\(serial).txt") }

    func spawn(serial: Int) throws(StressError) {
        let args = config.workerArguments(endpoint: endpoint, serial: serial, parentPID: getpid(),
                                          ledger: ledgerFile(serial).path)
        let pid = try Self.spawn(executable.path, args)
        children[serial] = Child(pid: pid)
    }

    /// `path args…` with stdin and stdout on /dev/null, stderr inherited.
    static func spawn(_ path: String, _ args: [String]) throws(StressError) -> pid_t {
        do { return try spawnProcess(path, args, stdout: .discard) } catch { throw .spawn("\(path): \(error)") }
    }

    /// Reaps `serial` if it has exited (`wait4` with `WNOHANG` unless `block`).
    private func tryReap(_ serial: Int, block: Bool = false) -> Bool {
        guard var c = children[serial], !c.reaped else { return true }
        var status: Int32 = 0
        var r: pid_t
        repeat { r = wait4(c.pid, &status, block ? 0 : WNOHANG, nil) } while r < 0 && errno == EINTR
        if r == c.pid || (r < 0 && errno == ECHILD) {
            c.reaped = true
            c.status = status
            children[serial] = c
            return true
        }
        return false
    }

    func reap() -> [WorkerDeath] {
        var out: [WorkerDeath] = []
        for serial in children.keys.sorted() {
            guard tryReap(serial), var c = children[serial], !c.reported else { continue }
            c.reported = true
            children[serial] = c
            let signal = c.status & 0x7f
            let code = (c.status >> 8) & 0xff
            let ledger = FaultLedger()
            ledger.merge(file: ledgerFile(serial))
            if signal == SIGKILL && ledger.contains(.kill) {
                out.append(WorkerDeath(serial: serial, injected: true, what: "worker \(serial) (pid \(c.pid)) killed itself (injected)"))
            } else if signal != 0 {
                out.append(WorkerDeath(serial: serial, injected: false, what: "worker process \(serial) (pid \(c.pid)) was killed by signal \(signal)"))
            } else {
                out.append(WorkerDeath(serial: serial, injected: false, what: "worker process \(serial) (pid \(c.pid)) exited with status \(code)"))
            }
        }
        return out
    }

    private var unreaped: [Int] { children.filter { !$0.value.reaped }.map(\.key) }

    private func waitAll(_ seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            for s in unreaped { _ = tryReap(s) }
            if unreaped.isEmpty || Date() >= deadline { return }
            usleep(5_000)
        }
    }

    func stopAll(grace: Double) -> Int {
        waitAll(grace)
        for s in unreaped { if let c = children[s] { kill(c.pid, SIGTERM) } }
        waitAll(2)
        for s in unreaped { if let c = children[s] { kill(c.pid, SIGKILL) } }
        waitAll(5)
        return unreaped.filter { s in children[s].map { kill($0.pid, 0) == 0 } ?? false }.count
    }

    /// Adds every worker's ledger file to `ledger`.
    func mergeLedgers(into ledger: FaultLedger) {
        for serial in children.keys.sorted() { ledger.merge(file: ledgerFile(serial)) }
    }

    var workerPeakRSS: Int? { maxRSS }

    func sampleMemory() {
        for c in children.values where !c.reaped {
            if let m = MemoryUsage.read(pid: String(c.pid)) { maxRSS = max(maxRSS, m.peakResidentBytes) }
        }
    }
    var startedPIDs: [Int32] { children.keys.sorted().compactMap { children[$0]?.pid } }
}
