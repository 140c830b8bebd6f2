import Dispatch
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
import Support
import Training

/// What to watch a run with (the flags of `train`, `coordinator` and `launch`).
public struct WatchOptions: Sendable {
    /// `--metrics-bind HOST:PORT`: serve Prometheus' text format at `/metrics`.
    public var metricsBind: String?
    /// `--tensorboard DIR`: write TensorBoard event files.
    public var tensorboard: String?
    /// `--log-every N`: a step line in `metrics.jsonl` (and TensorBoard step scalars) every N steps; 0: none
    /// (TensorBoard then gets every step).
    public var logEvery: Int
    /// `--report-every S`: the straggler report's period (0: only on SIGUSR1).
    public var reportEvery: Double
    /// `--hang-after S`: name the workers a step waits for once it has waited this long (0: never).
    public var hangAfter: Double

    public init(metricsBind: String? = nil, tensorboard: String? = nil, logEvery: Int = 0, reportEvery: Double = 0, hangAfter: Double = 0) {
        self.metricsBind = metricsBind
        self.tensorboard = tensorboard
        self.logEvery = logEvery
        self.reportEvery = reportEvery
        self.hangAfter = hangAfter
    }
}

/// Everything that watches one run: the Prometheus exporter and its HTTP endpoint, the TensorBoard
/// writer, the step lines of `metrics.jsonl`, and (for a coordinator) the straggler and hang report.
///
/// The trainer's thread calls ``step(_:)`` after every step and ``epoch(_:)`` at every epoch's end; a
/// coordinator's loop reaches it as a ``CoordinatorObserver``. On that thread a step costs a few
/// atomic updates of the Prometheus metrics and, when something is logged, appending the record to a
/// batch: batches go to a serial queue once a second (or every 4,096 records, or at an epoch's end),
/// which formats the TensorBoard events and step lines and writes them. When step lines are on
/// (``writesEpochLines``) the epoch lines go through that queue too (``RunDirectory/append(_:)``
/// there), so every step line comes before its epoch's line. ``close()`` drains the queue and stops
/// everything.
public final class RunWatch: CoordinatorObserver, @unchecked Sendable {
    // @unchecked: `pending` and `lastHand` belong to the training thread; `tensorboard`'s writes, the
    // `directory`'s appends and `lineError` happen on `queue` only (serial); ``close()`` waits for
    // the queue before it touches them.
    public let options: WatchOptions
    public let exporter: PrometheusExporter?
    public let server: MetricsServer?
    public let tensorboard: TensorBoardWriter?
    public let stragglers: StragglerReport?
    private let directory: RunDirectory?
    private let logger: Logger
    private let queue = DispatchQueue(label: "ztrain.watch")
    private var pending: [(record: StepRecord, wall: Double)] = []
    private var lastHand = ContinuousClock.now
    private var lineError: TrainingError?
    private var closed = false
    /// Step lines are on: the epoch lines must go through ``epoch(_:)`` (the CLI then leaves them to it).
    public var writesEpochLines: Bool { options.logEvery > 0 && directory != nil }
    private var logsSteps: Bool { tensorboard != nil || writesEpochLines }

    /// - Parameters:
    ///   - coordinator: also watch the workers (straggler and hang report).
    public init(options: WatchOptions, directory: RunDirectory?, mode: String, coordinator: Bool, logger: Logger) throws(WatchError) {
        guard options.logEvery >= 0 else { throw WatchError(description: "--log-every must be 0 or more (got \(options.logEvery))") }
        guard options.reportEvery >= 0 && options.reportEvery.isFinite else { throw WatchError(description: "--report-every must be 0 or a positive number of seconds") }
        guard options.hangAfter >= 0 && options.hangAfter.isFinite else { throw WatchError(description: "--hang-after must be 0 or a positive number of seconds") }
        self.options = options
        self.directory = directory
        self.logger = logger
        if let bind = options.metricsBind {
            let e = PrometheusExporter(version: ztrainVersion, commit: RunIdentity.gitCommit ?? "unknown", mode: mode)
            exporter = e
            do {
                server = try MetricsServer(bind: bind, logger: logger) { e.render() }
            } catch {
                throw WatchError(description: error.description)
            }
        } else {
            exporter = nil
            server = nil
        }
        if let dir = options.tensorboard {
            do { tensorboard = try TensorBoardWriter(directory: dir, host: RunIdentity.host) } catch {
                server?.stop()
                throw WatchError(description: error.description)
            }
        } else {
            tensorboard = nil
        }
        stragglers = coordinator ? StragglerReport(reportEvery: options.reportEvery, hangAfter: options.hangAfter, logger: logger) : nil
        if let s = server { logger.info("metrics at http://\(s.address)/metrics") }
        if let t = tensorboard { logger.info("TensorBoard events in \(t.path)") }
    }

    /// The endpoint's `HOST:PORT`, when serving.
    public var metricsAddress: String? { server?.address }

    /// After each optimizer step.
    public func step(_ r: StepRecord) {
        exporter?.record(step: r)
        guard logsSteps, r.step % max(1, options.logEvery) == 0 else { return }
        pending.append((r, Date().timeIntervalSince1970))
        if pending.count >= 4096 || ContinuousClock.now - lastHand >= .seconds(1) { hand() }
    }

    /// At each epoch's end. With step lines on (``writesEpochLines``) this also writes the epoch's
    /// line to `metrics.jsonl`, after the step lines before it.
    public func epoch(_ m: EpochMetrics) {
        exporter?.record(epoch: m)
        hand()
        let lines = writesEpochLines
        queue.async { [self] in
            if lines, lineError == nil, let d = directory {
                do throws(TrainingError) { try d.append(m) } catch { lineError = error; logger.error("\(error)") }
            }
            if let tb = tensorboard {
                var s: [(tag: String, value: Float)] = [
                    ("epoch/loss", Float(m.loss)), ("epoch/train_loss", Float(m.trainLoss)),
                    ("epoch/samples_per_second", Float(m.samplesPerSecond)), ("epoch/gradient_norm", Float(m.gradNorm)),
                    ("epoch/seconds", Float(m.epochSeconds)),
                ]
                if let v = m.valLoss { s.append(("epoch/validation_loss", Float(v))) }
                if let lr = m.lr { s.append(("epoch/learning_rate", Float(lr))) }
                s.append(("epoch/epoch", Float(m.epoch)))
                tb.add(step: m.step, scalars: s)
                tb.flush()
            }
        }
    }

    /// A `--hash-every` line: with step lines on (``writesEpochLines``) it goes to `metrics.jsonl`
    /// through the queue, after the step lines before it.
    public func hash(_ line: HashLine) {
        hand()
        queue.async { [self] in
            guard writesEpochLines, lineError == nil, let d = directory else { return }
            do throws(TrainingError) { try d.append(hash: line) } catch { lineError = error; logger.error("\(error)") }
        }
    }

    /// Writes everything pending, stops serving and closes the files; returns the first error writing
    /// `metrics.jsonl` lines, if any. Idempotent.
    @discardableResult
    public func close() -> TrainingError? {
        if !closed {
            closed = true
            hand()
            queue.sync {}
            tensorboard?.close()
            server?.stop()
        }
        return lineError
    }

    /// Hands the pending step records to the queue, which formats and writes them.
    private func hand() {
        lastHand = ContinuousClock.now
        guard !pending.isEmpty else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        let lines = writesEpochLines
        queue.async { [self] in
            if let tb = tensorboard {
                for (r, wall) in batch { tb.add(step: r.step, wallTime: wall, scalars: Self.stepScalars(r)) }
                tb.flush()
            }
            if lines, lineError == nil, let d = directory {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(batch.count * 360)
                let encoder = JSONStyle.files.encoder()
                for (r, wall) in batch { Self.appendStepLine(r, wallTime: wall, clock: &isoClock, into: &bytes, encoder: encoder) }
                do throws(TrainingError) { try d.appendLines(bytes) } catch { lineError = error; logger.error("\(error)") }
            }
        }
    }

    static func stepScalars(_ r: StepRecord) -> [(tag: String, value: Float)] {
        var s: [(tag: String, value: Float)] = [
            ("step/loss", Float(r.loss)), ("step/learning_rate", Float(r.learningRate)),
            ("step/gradient_norm", Float(r.gradNorm)), ("step/samples_per_second", Float(r.samplesPerSecond)),
        ]
        if let t = r.timing {
            s += [("step/compute_seconds", Float(t.compute)), ("step/wait_seconds", Float(t.wait)),
                  ("step/reduce_seconds", Float(t.reduce)), ("step/optimizer_seconds", Float(t.optimizer)),
                  ("step/broadcast_seconds", Float(t.broadcast))]
        }
        return s
    }

    // MARK: - CoordinatorObserver

    public func workerAnswered(worker: UInt32, seconds: Double) {
        exporter?.workerAnswered(worker: worker, seconds: seconds)
        stragglers?.workerAnswered(worker: worker, seconds: seconds)
    }

    public func frameDropped(reason: String) { exporter?.frameDropped(reason: reason) }

    public func tick(_ server: CoordinatorServer, now: Double) {
        exporter?.tick(server, now: now)
        stragglers?.tick(server, now: now)
    }

    // MARK: - step lines

    /// The formatted second of the last step line (`2026-11-28T03:17:02`), reused within that second (on `queue`).
    private var isoClock: (second: Int, text: String) = (-1, "")

    /// Appends one step line (``stepLine(_:wallTime:)``'s bytes) to `out`, formatting the date once per
    /// second; pass one `encoder` (``JSONStyle/files``) for a batch of lines.
    static func appendStepLine(_ r: StepRecord, wallTime: Double, clock: inout (second: Int, text: String), into out: inout [UInt8],
                               encoder: JSONEncoder = JSONStyle.files.encoder()) {
        let second = Int(wallTime.rounded(.down))
        if second != clock.second {
            let full = RunIdentity.isoTime(Double(second))
            clock = (second, String(full.dropLast()))
        }
        let ms = min(999, max(0, Int((wallTime - Double(second)) * 1000)))
        let time = clock.text + (ms < 10 ? ".00" : ms < 100 ? ".0" : ".") + String(ms) + "Z"
        append(StepLine(r, time: time), to: &out, encoder: encoder)
    }

    /// One `metrics.jsonl` step line (``JSONStyle/files``: sorted keys, non-finite numbers as
    /// `"nan"`, `"inf"`, `"-inf"`): `{"bytes_in":…,"bytes_out":…,"epoch":…,"grad_norm":…,"kind":"step",
    /// "loss":…,"lr":…,"samples":…,"samples_per_second":…,"step":…,"time":"…","timing":{…},"windows":…}`
    /// (`bytes_in`, `bytes_out` and `timing` only for a data-parallel run).
    static func stepLine(_ r: StepRecord, wallTime: Double) -> String {
        var out: [UInt8] = []
        append(StepLine(r, time: RunIdentity.isoTime(wallTime, fraction: true)), to: &out, encoder: JSONStyle.files.encoder())
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `line` and a newline. A step line holds only numbers and strings, and non-finite
    /// numbers are written as strings, so encoding does not fail; a line that did would be left out.
    private static func append(_ line: StepLine, to out: inout [UInt8], encoder: JSONEncoder) {
        guard let data = try? encoder.encode(line) else { return }
        out += data
        out.append(0x0A)
    }

    /// The fields of a step line (snake_case by ``JSONStyle/files``).
    private struct StepLine: Encodable {
        var kind = "step"
        var time: String
        var step: Int
        var epoch: Int
        var loss: Double
        var lr: Double
        var gradNorm: Double
        var samples: Int
        var windows: Int
        var samplesPerSecond: Double
        var timing: StepTiming?
        var bytesIn: Int?
        var bytesOut: Int?

        init(_ r: StepRecord, time: String) {
            self.time = time
            step = r.step; epoch = r.epoch; loss = r.loss; lr = r.learningRate; gradNorm = r.gradNorm
            samples = r.samples; windows = r.windows; samplesPerSecond = r.samplesPerSecond
            timing = r.timing; bytesIn = r.bytesIn; bytesOut = r.bytesOut
        }
    }
}

/// A watch flag that cannot be honoured, with what to do.
public struct WatchError: Error, CustomStringConvertible {
    public var description: String
}

/// Who and what this run is: host, the git commit, ISO times.
public enum RunIdentity {
    /// This machine's name (`gethostname`).
    public static var host: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The git commit ztrain was built from: `ZTRAIN_GIT_COMMIT` when set, else the `HEAD` of the
    /// checkout whose `.build` folder holds the running executable, else nil.
    public static let gitCommit: String? = {
        if let c = ProcessInfo.processInfo.environment["ZTRAIN_GIT_COMMIT"], !c.isEmpty { return c }
        var dir = LocalWorkers.currentExecutable.deletingLastPathComponent()
        for _ in 0..<8 {
            if dir.lastPathComponent.hasPrefix(".build") { return headCommit(checkout: dir.deletingLastPathComponent()) }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        return nil
    }()

    /// Reads `.git/HEAD` (a worktree's `.git` file too) and the ref it names, loose or packed.
    static func headCommit(checkout: URL) -> String? {
        func read(_ path: String) -> String? {
            guard let d = FileManager.default.contents(atPath: path) else { return nil }
            return String(decoding: d, as: UTF8.self).trimmed
        }
        let dotGit = checkout.appendingPathComponent(".git").path
        var gitDir = dotGit
        if let text = read(dotGit), text.hasPrefix("gitdir:") {
            gitDir = String(text.dropFirst("gitdir:".count)).trimmed
        }
        guard let head = read(gitDir + "/HEAD") else { return nil }
        guard head.hasPrefix("ref:") else { return head.count == 40 ? head : nil }
        let ref = String(head.dropFirst(4)).trimmed
        var common = gitDir
        if let c = read(gitDir + "/commondir") { common = c.hasPrefix("/") ? c : gitDir + "/" + c }
        for base in [gitDir, common] {
            if let c = read(base + "/" + ref), c.count == 40 { return c }
        }
        if let packed = read(common + "/packed-refs") {
            for line in packed.split(separator: "\n") where line.hasSuffix(" " + ref) {
                return String(line.prefix(40))
            }
        }
        return nil
    }

    /// `2026-11-28T02:50:00Z`, or with `fraction` `2026-11-28T02:50:00.123Z` (UTC).
    public static func isoTime(_ seconds: Double, fraction: Bool = false) -> String {
        var t = time_t(seconds.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var s = "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))"
        if fraction {
            let ms = min(999, Int((seconds - seconds.rounded(.down)) * 1000))
            s += "." + (ms < 10 ? "00" : ms < 100 ? "0" : "") + "\(ms)"
        }
        return s + "Z"
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and newlines.
    var trimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
