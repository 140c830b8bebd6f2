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
import RNN
import Series
import Wire

/// How a worker runs; nothing here changes the result.
public struct WorkerOptions: Sendable {
    /// Compute threads (any count gives the same bits).
    public var threads: Int
    /// What the operator pinned on the worker's command line; a different run is refused.
    public var expect: Expectation?
    public var host: String
    public var pid: Int32
    /// Protocol version to announce (tests use another to check the refusal).
    public var protocolVersion: UInt16
    /// Seconds to sleep before each computation: a slow machine, for fault drills and tests.
    public var artificialDelay: Double = 0
    /// Reads the series a configuration names, as the model sees it, when a WELCOME says the data is shared
    /// (``Welcome/sharedData``); the endpoint supplies it (the core does no I/O). Nil: such a WELCOME is
    /// answered with BYE.
    public var loadData: (@Sendable (TrainingConfig) throws -> Series)? = nil

    public init(threads: Int, expect: Expectation? = nil, host: String = ProcessInfo.processInfo.hostName,
                pid: Int32 = ProcessInfo.processInfo.processIdentifier, protocolVersion: UInt16 = Wire.protocolVersion) {
        self.threads = threads
        self.expect = expect
        self.host = host
        self.pid = pid
        self.protocolVersion = protocolVersion
    }
}

/// A worker as a state machine: messages from the coordinator in, messages to it out.
///
/// `HELLO` → `WELCOME` (configuration and series, hash-checked) → `READY` (with the numerics
/// fingerprint) → `ASSIGN` → one `GRADIENT` per tree node of the assigned run → … → `SHUTDOWN`.
public final class WorkerCore {
    public enum Phase: Sendable, Equatable { case hello, ready, done }
    public let options: WorkerOptions
    public private(set) var phase: Phase = .hello
    /// Why the worker stopped, when it was not a normal shutdown.
    public private(set) var failure: String?
    public private(set) var runID: UInt64 = 0
    public private(set) var workerID: UInt32 = 0
    public private(set) var config: TrainingConfig?
    public private(set) var steps = 0
    public private(set) var ignored = 0
    /// Liveness window announced by the coordinator (seconds).
    public private(set) var liveness = 3.0
    public private(set) var heartbeat = 1.0
    private var series: Series?
    private var engine: GradientEngine?
    private var windowBuffer: [Int] = []
    /// The last computation's answers: an ASSIGN given again for the same run, step and leaves (a
    /// retry after a slow step, or after a lost GRADIENT) is answered from here, not recomputed.
    private var lastAnswer: (runID: UInt64, step: UInt64, leaves: Range<Int>, replies: [Envelope])?
    /// ASSIGNs answered from ``lastAnswer`` instead of computed again.
    public private(set) var repeatedAnswers = 0

    public init(options: WorkerOptions) {
        self.options = options
    }

    /// The first message.
    public func hello() -> Envelope {
        Envelope(runID: 0, workerID: 0, message: .hello(Hello(
            protocolVersion: Int(options.protocolVersion), host: options.host, pid: options.pid,
            threads: options.threads, ztrainVersion: ztrainVersion, expect: options.expect)))
    }

    /// Forgets the run and starts over with a new HELLO (the coordinator went silent: it may have been
    /// restarted, or have declared this worker dead).
    public func rejoin() -> Envelope {
        phase = .hello
        engine = nil
        series = nil
        config = nil
        lastAnswer = nil
        return hello()
    }

    /// Is `env` an ASSIGN that ``handle(_:receivedAt:)`` answers from the last answer (no computation)?
    public func isRepeated(_ env: Envelope) -> Bool {
        guard case .assign(let a) = env.message, let last = lastAnswer, phase == .ready,
              env.runID == runID, env.workerID == workerID else { return false }
        return last.runID == runID && last.step == a.step && last.leaves == a.leaves
    }

    /// Has this worker ever been welcomed?
    public var hasJoined: Bool { runID != 0 }

    /// Handles one decoded message; returns the replies. `receivedAt` (default: now) is when the
    /// message arrived: a GRADIENT reports its compute start relative to it (`startNanos`).
    public func handle(_ env: Envelope, receivedAt: ContinuousClock.Instant = .now) -> [Envelope] {
        switch env.message {
        case .welcome(let w, let values):
            return welcome(w, values: values, env: env)
        case .reject(let reason):
            failure = "the coordinator refused this worker: \(reason)"
            phase = .done
            return []
        case .assign(let a):
            guard phase == .ready, env.runID == runID, env.workerID == workerID else { ignored += 1; return [] }
            return compute(a, receivedAt: receivedAt)
        case .heartbeat:
            return []
        case .shutdown:
            phase = .done
            return []
        case .hello, .ready, .gradient, .bye:
            ignored += 1
            return []
        }
    }

    private func welcome(_ w: Welcome, values: [Float], env: Envelope) -> [Envelope] {
        guard phase == .hello else { ignored += 1; return [] }
        let fail = { (reason: String) -> [Envelope] in
            self.failure = reason
            self.phase = .done
            return [Envelope(runID: w.runID, workerID: w.workerID, message: .bye(reason))]
        }
        guard let cfg = try? TrainingConfig(wireObject: w.config) else {
            return fail("the coordinator's configuration does not decode (different ztrain versions?)")
        }
        do { try cfg.model.validate() } catch { return fail("the coordinator's model is invalid: \(error)") }
        guard cfg.model.inputSize == w.channels, cfg.model.outputSize == w.channels,
              ParameterLayout(cfg.model).count == w.parameterCount, w.microBatch >= 1 else {
            return fail("WELCOME is inconsistent: \(w.channels) channels, \(w.parameterCount) parameters for model \(cfg.model)")
        }
        let s: Series
        if w.sharedData == true {
            guard let load = options.loadData else {
                return fail("the coordinator asked this worker to read the data itself, which it cannot; run the coordinator without --shared-data")
            }
            do {
                s = try load(cfg)
            } catch {
                return fail("cannot read the data the coordinator named (\(cfg.data)): \(error); give this worker the same file at the same path, or run the coordinator without --shared-data")
            }
            guard s.count == w.points, s.channels == w.channels, s.fingerprint == w.seriesHash else {
                return fail("the data at \(cfg.data) here (\(s.count) points, hash \(String(s.fingerprint, radix: 16))) is not the coordinator's (\(w.points) points, hash \(String(w.seriesHash, radix: 16))); give this worker the same file, or run the coordinator without --shared-data")
            }
        } else {
            let names = (0..<w.channels).map { "c\($0)" }
            guard let received = try? Series(names: names, values: values), received.count == w.points else {
                return fail("the series in WELCOME is malformed")
            }
            guard received.fingerprint == w.seriesHash else {
                return fail("the series arrived with hash \(String(received.fingerprint, radix: 16)), expected \(String(w.seriesHash, radix: 16))")
            }
            s = received
        }
        runID = w.runID
        workerID = w.workerID
        config = cfg
        series = s
        liveness = Double(max(100, w.livenessMillis)) / 1000
        heartbeat = Double(max(10, w.heartbeatMillis)) / 1000
        engine = GradientEngine(config: cfg.model, microBatch: w.microBatch, threads: options.threads)
        phase = .ready
        let fp = numericsFingerprint(config: cfg.model, series: s, microBatch: w.microBatch)
        return [Envelope(runID: runID, workerID: workerID, message: .ready(Ready(numericsFingerprint: fp, threads: options.threads)))]
    }

    private func compute(_ a: Assign, receivedAt: ContinuousClock.Instant) -> [Envelope] {
        guard let engine, let series, let config else { ignored += 1; return [] }
        if let last = lastAnswer, last.runID == runID, last.step == a.step, last.leaves == a.leaves {
            repeatedAnswers += 1
            return last.replies
        }
        let n = a.windows.count
        let T = config.model.seqLen
        let plan = engine.plan(windows: n)
        let m = plan.leafCount
        // everything an ASSIGN says is checked before it is used
        guard a.weights.count == engine.parameterCount, a.leafCount == m, a.leaves.lowerBound >= 0,
              a.leaves.lowerBound < a.leaves.upperBound, a.leaves.upperBound <= m,
              a.windows.allSatisfy({ Int($0) + T + 1 <= series.count }) else {
            ignored += 1
            return []
        }
        if options.artificialDelay > 0 { usleep(UInt32(min(options.artificialDelay, 60) * 1e6)) }
        if windowBuffer.count < n { windowBuffer = [Int](repeating: 0, count: n) }
        for i in 0..<n { windowBuffer[i] = Int(a.windows[i]) }
        let t0 = ContinuousClock.now
        var out: [Envelope] = []
        a.weights.withUnsafeBufferPointer { p in
            series.values.withUnsafeBufferPointer { s in
                windowBuffer.withUnsafeBufferPointer { w in
                    let nodes = engine.compute(params: p, series: s, windows: UnsafeBufferPointer(rebasing: w[0..<n]), run: a.leaves)
                    let nanos = UInt64(max(0, seconds(since: t0)) * 1e9)
                    let startNanos = UInt64(max(0, seconds(since: receivedAt) - seconds(since: t0)) * 1e9)
                    for node in nodes {
                        let samples = plan.samples(in: node.block)
                        out.append(Envelope(runID: runID, workerID: workerID, message: .gradient(Gradient(
                            step: a.step, block: node.block, leafCount: m, samples: samples,
                            computeNanos: nanos, startNanos: startNanos, sums: Array(node.sums)))))
                    }
                }
            }
        }
        steps += 1
        lastAnswer = (runID, a.step, a.leaves, out)
        return out
    }
}

/// The version: what `ztrain --version` prints, a worker announces and `summary.json` records.
public let ztrainVersion = "0.1.0"
