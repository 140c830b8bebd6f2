import Foundation
import Logging

/// Worker processes started on this machine by `ztrain train --workers N`, and their end.
///
/// Each child runs `ztrain worker --connect ENDPOINT --parent-pid PID …`, so it exits by itself if this
/// process dies, even by SIGKILL. ``stop(grace:)`` asks politely (SIGTERM), then insists (SIGKILL), and
/// reaps every child: none is left behind.
public final class LocalWorkers: @unchecked Sendable {
    // @unchecked: `statuses` is guarded by `lock`; the rest is immutable after `start`.
    public let executable: URL
    public let arguments: [[String]]
    private var processes: [Process] = []
    private let lock = NSLock()
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
        return Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    }

    public func start() throws(TrainingError) {
        for (i, args) in arguments.enumerated() {
            let p = Process()
            p.executableURL = executable
            p.arguments = args
            p.standardInput = FileHandle.nullDevice
            p.terminationHandler = { [weak self] proc in
                guard let self else { return }
                self.lock.lock()
                self.statuses[i] = (proc.terminationStatus, proc.terminationReason == .exit)
                self.lock.unlock()
            }
            do {
                try p.run()
            } catch {
                stop(grace: 0)
                throw .invalidConfig("cannot start worker \(i) (\(executable.path)): \(error.localizedDescription)")
            }
            processes.append(p)
        }
    }

    public var pids: [Int32] { processes.map(\.processIdentifier) }

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
            return "worker \(i) (pid \(processes[i].processIdentifier)) \(s.normal ? "exited with status \(s.status)" : "was killed by signal \(s.status)")"
        }
    }

    /// Waits up to `grace` seconds for the workers to exit on their own, then SIGTERM, then SIGKILL.
    public func stop(grace: Double) {
        let deadline = Date().addingTimeInterval(grace)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(10_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let hard = Date().addingTimeInterval(2)
        while processes.contains(where: \.isRunning) && Date() < hard { usleep(10_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in processes { p.waitUntilExit() }
    }

    /// Forwards a signal to every running worker.
    public func signal(_ sig: Int32) {
        for p in processes where p.isRunning { kill(p.processIdentifier, sig) }
    }
}

/// Routes SIGINT and SIGTERM to a ``StopFlag`` (instead of killing the process), so a run can stop
/// cleanly: tell the workers, save the last weights, reap the children.
public final class SignalTrap: @unchecked Sendable {
    // @unchecked: the sources are created once and only cancelled afterwards.
    private var sources: [DispatchSourceSignal] = []

    public init(_ flag: StopFlag, signals: [Int32] = [SIGINT, SIGTERM], onSignal: @escaping @Sendable (Int32) -> Void = { _ in }) {
        for sig in signals {
            Foundation.signal(sig, SIG_IGN)
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
