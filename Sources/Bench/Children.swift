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
import Dispatch
import Stress
import Training
import ZeroMQ
import Support

/// A process the bench started: its own process group (a terminal's Ctrl-C reaches only the bench,
/// which then ends it), SIGINT/SIGTERM/SIGPIPE/SIGHUP at their defaults, stdin on `/dev/null`,
/// stdout on `/dev/null` or into a file, stderr into a file. A thread blocks in `waitpid` for it, so the exit time is
/// exact and the bench never polls.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `exitRecord` is guarded by `lock`; the rest is immutable.
    /// The process id.
    public let pid: pid_t
    /// For messages: `ztrain train --workers 2 …`.
    public let label: String
    /// Just before `posix_spawn`.
    public let started: ContinuousClock.Instant
    let stderrPath: String
    private let lock = Lock()
    private var exitRecord: (status: Int32, at: ContinuousClock.Instant)?
    private let exited = DispatchSemaphore(value: 0)

    /// Starts `executable arguments…` (its stdout into `stdoutPath` when given).
    public init(executable: String, arguments: [String], label: String, stderrPath: String, stdoutPath: String? = nil) throws(BenchError) {
        self.label = label
        self.stderrPath = stderrPath
        let t0 = ContinuousClock.now
        let child: pid_t
        do { child = try spawnProcess(executable, arguments, stdout: stdoutPath.map { .file($0) } ?? .discard,
                                          stderr: .file(stderrPath)) } catch {
            throw .process("cannot start \(label) (\(executable)): \(error)")
        }
        pid = child
        started = t0
        detachThread { [self] in self.reap() }
    }

    private func reap() {
        var status: Int32 = 0
        var r: pid_t
        repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
        let at = ContinuousClock.now
        lock.withLock { exitRecord = (r == pid ? status : 0, at) }
        exited.signal()
    }

    /// Waits up to `timeout` seconds; true once the process has exited (and been reaped).
    @discardableResult
    public func wait(timeout: Double) -> Bool {
        if hasExited { return true }
        guard exited.wait(timeout: .now() + max(0, timeout)) == .success else { return false }
        exited.signal()  // later waits return at once
        return true
    }

    /// Has it exited (and been reaped)?
    public var hasExited: Bool { lock.withLock { exitRecord != nil } }

    /// Seconds from just before `posix_spawn` to the exit (nil while it runs).
    public var lifetime: Double? {
        lock.withLock { exitRecord.map { t in let d = t.at - started; return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 } }
    }

    /// `exited with status N` / `killed by signal N`; nil while it runs.
    public var outcome: (ok: Bool, text: String)? {
        guard let s = lock.withLock({ exitRecord?.status }) else { return nil }
        let signal = s & 0x7f
        if signal != 0 { return (false, "killed by signal \(signal)") }
        let code = (s >> 8) & 0xff
        return (code == 0, "exited with status \(code)")
    }

    /// The direct children of the process (`/proc/PID/task/PID/children`).
    public var children: [pid_t] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return [] }
        return text.split(separator: " ").compactMap { pid_t(trimmingWhitespace($0)) }
    }

    /// SIGTERM, up to `grace` seconds, then SIGKILL; returns once the process is reaped.
    public func terminate(grace: Double) {
        guard !hasExited else { return }
        kill(pid, SIGTERM)
        if !wait(timeout: grace) {
            kill(pid, SIGKILL)
            wait(timeout: 10)
        }
    }

    /// The last `lines` lines of its stderr.
    public func stderrTail(lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: stderrPath, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }
}

/// Peak resident memory of processes, sampled from `/proc/PID/status` (VmHWM) while they run: the
/// last value read before a process exits is its peak. (`wait4`'s `ru_maxrss` is no use: Linux
/// carries the parent's maximum across `exec`.)
public struct PeakSampler {
    /// pid → the last VmHWM read, bytes.
    public private(set) var peaks: [pid_t: Int] = [:]

    public init() {}

    /// Reads VmHWM of each pid that is still there.
    public mutating func sample(_ pids: [pid_t]) {
        for pid in pids {
            if let m = MemoryUsage.read(pid: String(pid)) { peaks[pid] = m.peakResidentBytes }
        }
    }
}

/// `/proc/PID/cmdline` as arguments (empty when the process is gone).
func commandLine(of pid: pid_t) -> [String] {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
    return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
}
