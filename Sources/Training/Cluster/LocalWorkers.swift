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
import Logging
import ZeroMQ
import Support

/// Worker processes started on this machine by `ztrain train --workers N`, and their end.
///
/// Each child runs `ztrain worker --connect ENDPOINT --parent-pid PID …`, so it exits by itself if this
/// process dies, even by SIGKILL. ``stop(grace:)`` asks politely (SIGTERM), then insists (SIGKILL), and
/// reaps every child: none is left behind.
public final class LocalWorkers: @unchecked Sendable {
    // @unchecked: `statuses` is guarded by `lock`; the rest is immutable after `start`.
    public let executable: URL
    public let arguments: [[String]]
    private var processes: [pid_t] = []
    private let lock = Lock()
    private var statuses: [Int: (status: Int32, normal: Bool)] = [:]

    /// - Parameter arguments: one argument list per worker.
    public init(executable: URL, arguments: [[String]]) {
        self.executable = executable
        self.arguments = arguments
    }

    /// The path of the running `ztrain` binary.
    public static var currentExecutable: URL {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: p)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0])
    }

    public func start() throws(TrainingError) {
        for (i, args) in arguments.enumerated() {
            let pid: pid_t
            do {
                pid = try spawnProcess(executable.path, args)
            } catch {
                stop(grace: 0)
                throw .invalidConfig("cannot start local worker \(i + 1) of \(arguments.count) (\(executable.path)): \(error)")
            }
            processes.append(pid)
            // as Foundation's `Process` did: a thread waits for the child and records how it ended
            detachThread { [self] in
                var status: Int32 = 0
                var r: pid_t
                repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
                let signal = status & 0x7f
                lock.withLock { statuses[i] = signal != 0 ? (signal, false) : ((status >> 8) & 0xff, true) }
            }
        }
    }

    public var pids: [Int32] { processes }

    /// The private folder (for the ipc:// endpoint) of the launcher with process id `pid`:
    /// `ztrain-PID-N` in `parent`.
    public static func privateFolder(in parent: URL, pid: Int32 = getpid()) -> URL {
        parent.appendingPathComponent("ztrain-\(pid)-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Removes the private folders in `parent` whose launcher is dead (its PID names no process), such
    /// as one left by a `ztrain train --workers` killed with SIGKILL. Folders of live processes stay.
    /// Returns the paths removed.
    @discardableResult
    public static func removeStaleFolders(in parent: URL) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent.path) else { return [] }
        var removed: [String] = []
        for name in names {
            let parts = name.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "ztrain", let pid = Int32(parts[1]), pid > 0,
                  !parts[2].isEmpty, parts[2].allSatisfy(\.isASCII), UInt32(parts[2]) != nil else { continue }
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            let url = parent.appendingPathComponent(name)
            if (try? FileManager.default.removeItem(at: url)) != nil { removed.append(url.path) }
        }
        return removed
    }

    /// Workers that have exited so far: index → (status, exited normally rather than by a signal).
    public var exited: [Int: (status: Int32, normal: Bool)] {
        lock.lock()
        defer { lock.unlock() }
        return statuses
    }

    /// Workers that ended badly (non-zero status or a signal).
    public var failures: [String] {
        exited.sorted { $0.key < $1.key }.compactMap { i, s in
            if s.normal && s.status == 0 { return nil }
            return "the worker with pid \(processes[i]) \(s.normal ? "exited with status \(s.status)" : "was killed by signal \(s.status)")"
        }
    }

    /// Indices of the workers that have not been reaped yet.
    private var running: [Int] {
        let done = exited
        return processes.indices.filter { done[$0] == nil }
    }

    /// Waits up to `grace` seconds for the workers to exit on their own, then SIGTERM, then SIGKILL.
    public func stop(grace: Double) {
        let deadline = ContinuousClock.now + .seconds(max(0, grace))
        while !running.isEmpty && ContinuousClock.now < deadline { usleep(10_000) }
        for i in running { kill(processes[i], SIGTERM) }
        let hard = ContinuousClock.now + .seconds(2)
        while !running.isEmpty && ContinuousClock.now < hard { usleep(10_000) }
        for i in running { kill(processes[i], SIGKILL) }
        while !running.isEmpty { usleep(1_000) }
    }

    /// Forwards a signal to every running worker.
    public func signal(_ sig: Int32) {
        for i in running { kill(processes[i], sig) }
    }
}

/// Routes SIGINT and SIGTERM to a ``StopFlag`` (instead of killing the process), so a run can stop
/// cleanly: tell the workers, save the last weights, reap the children.
public final class SignalTrap: @unchecked Sendable {
    // @unchecked: the sources are created once and only cancelled afterwards.
    private var sources: [DispatchSourceSignal] = []

    public init(_ flag: StopFlag, signals: [Int32] = [SIGINT, SIGTERM], onSignal: @escaping @Sendable (Int32) -> Void = { _ in }) {
        for sig in signals {
            _ = signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler {
                flag.set(signal: sig)
                onSignal(sig)
            }
            src.resume()
            sources.append(src)
        }
    }

    deinit {
        for s in sources { s.cancel() }
    }
}
