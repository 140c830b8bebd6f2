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
/// atomic updates of the Prometheus metrics and, when something is logged, one monotonic clock read
/// and appending the record to a batch (no allocation once the batch has grown, no wakeup). Step and
/// epoch records go to a ``BackgroundQueue`` (a thread the scheduler runs behind training) together,
/// in order, once a second (or every 4,096 records; a coordinator's timer tick hands a batch that has
/// waited a second, so a stalled run's lines still come out). That thread formats the TensorBoard
/// events and the lines and writes them. When step lines are on (``writesEpochLines``) the epoch
/// lines go through it too (``RunDirectory/append(_:)`` there, stamped with the epoch's end), so every
/// step line comes before its epoch's line; they reach `metrics.jsonl` about a second after the epoch
/// ends at most while the machine has a core to spare. ``close()`` drains the queue and stops
/// everything.
///
/// ```swift
/// let watch = try RunWatch(options: WatchOptions(tensorboard: "runs/tb", logEvery: 10), directory: dir,
///                          mode: "in-process", coordinator: false, logger: logger)
/// watch.step(record)      // after every step
/// watch.epoch(metrics)    // at every epoch's end
/// watch.close()
/// ```
public final class RunWatch: CoordinatorObserver, @unchecked Sendable {
    // @unchecked: `pending`, `lastHand` and `wallClock` belong to the training thread; `writer` (the
    // TensorBoard writes, the `directory`'s appends, `lineError`) is used on `queue` only (serial);
    // ``close()`` waits for the queue before it touches them.
    public let options: WatchOptions
    public let exporter: PrometheusExporter?
    public let server: MetricsServer?
    public let tensorboard: TensorBoardWriter?
    public let stragglers: StragglerReport?
    private let directory: RunDirectory?
    private let logger: Logger
    private let queue: BackgroundQueue
    private var pending: [WatchRecord] = []
    private var lastHand = ContinuousClock.now
    private var wallClock = WallClock()
    private let writer: WatchWriter
    private var closed = false
    /// Step lines are on: the epoch lines must go through ``epoch(_:)`` (the CLI then leaves them to it).
    public var writesEpochLines: Bool { options.logEvery > 0 && directory != nil }
    private let logsSteps: Bool
    private let every: Int
    /// Records per batch at most.
    static let batchLimit = 4096

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
        let lines = options.logEvery > 0 && directory != nil
        writer = WatchWriter(tensorboard: tensorboard, directory: lines ? directory : nil, logger: logger)
        logsSteps = tensorboard != nil || lines
        every = max(1, options.logEvery)
        pending.reserveCapacity(1024)
        // last: nothing above may throw once the thread runs
        queue = BackgroundQueue()
        if let s = server { logger.info("metrics at http://\(s.address)/metrics") }
        if let t = tensorboard { logger.info("TensorBoard events in \(t.path)") }
    }

    deinit { close() }

    /// The endpoint's `HOST:PORT`, when serving.
    public var metricsAddress: String? { server?.address }

    /// After each optimizer step.
    public func step(_ r: StepRecord) {
        exporter?.record(step: r)
        guard logsSteps, r.step % every == 0 else { return }
        let now = ContinuousClock.now
        pending.append(.step(r, wall: wallClock.wall(at: now)))
        if pending.count >= Self.batchLimit || now - lastHand >= .seconds(1) { hand(now) }
    }

    /// At each epoch's end. With step lines on (``writesEpochLines``) this also writes the epoch's
    /// line to `metrics.jsonl`, after the step lines before it.
    public func epoch(_ m: EpochMetrics) {
        exporter?.record(epoch: m)
        guard logsSteps else { return }
        let now = ContinuousClock.now
        pending.append(.epoch(m, wall: wallClock.wall(at: now)))
        if pending.count >= Self.batchLimit || now - lastHand >= .seconds(1) { hand(now) }
    }

    /// A `--hash-every` line: with step lines on (``writesEpochLines``) it goes to `metrics.jsonl`
    /// through the queue, after the step lines before it.
    public func hash(_ line: HashLine) {
        guard writesEpochLines else { return }
        let now = ContinuousClock.now
        pending.append(.hash(line))
        if pending.count >= Self.batchLimit || now - lastHand >= .seconds(1) { hand(now) }
    }

    /// Writes everything pending, stops serving and closes the files; returns the first error writing
    /// `metrics.jsonl` lines, if any. Idempotent.
    @discardableResult
    public func close() -> TrainingError? {
        if !closed {
            closed = true
            hand(ContinuousClock.now)
            queue.stop()
            tensorboard?.close()
            server?.stop()
        }
        return writer.lineError
    }

    /// Hands the pending records to the queue, which formats and writes them (one wakeup a batch).
    private func hand(_ now: ContinuousClock.Instant) {
        lastHand = now
        wallClock = WallClock()
        guard !pending.isEmpty else { return }
        var next: [WatchRecord] = []
        next.reserveCapacity(pending.count)
        swap(&next, &pending)
        let batch = next
        queue.async { [writer] in writer.write(batch) }
    }

    /// Appends a step's TensorBoard scalars to `s`.
    static func appendStepScalars(_ r: StepRecord, to s: inout [(tag: String, value: Float)]) {
        s.append(("step/loss", Float(r.loss)))
        s.append(("step/learning_rate", Float(r.learningRate)))
        s.append(("step/gradient_norm", Float(r.gradNorm)))
        s.append(("step/samples_per_second", Float(r.samplesPerSecond)))
        if let t = r.timing {
            s.append(("step/compute_seconds", Float(t.compute)))
            s.append(("step/wait_seconds", Float(t.wait)))
            s.append(("step/reduce_seconds", Float(t.reduce)))
            s.append(("step/optimizer_seconds", Float(t.optimizer)))
            s.append(("step/broadcast_seconds", Float(t.broadcast)))
        }
    }

    /// Appends an epoch's TensorBoard scalars to `s`.
    static func appendEpochScalars(_ m: EpochMetrics, to s: inout [(tag: String, value: Float)]) {
        s.append(("epoch/loss", Float(m.loss)))
        s.append(("epoch/train_loss", Float(m.trainLoss)))
        s.append(("epoch/samples_per_second", Float(m.samplesPerSecond)))
        s.append(("epoch/gradient_norm", Float(m.gradNorm)))
        s.append(("epoch/seconds", Float(m.epochSeconds)))
        if let v = m.valLoss { s.append(("epoch/validation_loss", Float(v))) }
        if let lr = m.lr { s.append(("epoch/learning_rate", Float(lr))) }
        s.append(("epoch/epoch", Float(m.epoch)))
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
        if !pending.isEmpty {
            let t = ContinuousClock.now
            if t - lastHand >= .seconds(1) { hand(t) }
        }
    }

    // MARK: - step lines

    /// Appends one step line (``stepLine(_:wallTime:)``'s bytes) to `out`, formatting the date once per
    /// second; pass one `encoder` (``stepLineStyle``) for a batch of lines.
    static func appendStepLine(_ r: StepRecord, wallTime: Double, clock: inout (second: Int, text: String), into out: inout [UInt8],
                               encoder: JSONEncoder = stepLineStyle.encoder()) {
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
        append(StepLine(r, time: RunIdentity.isoTime(wallTime, fraction: true)), to: &out, encoder: stepLineStyle.encoder())
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `line` and a newline. A step line holds only numbers and strings, and non-finite
    /// numbers are written as strings, so encoding does not fail; a line that did would be left out.
    private static func append(_ line: StepLine, to out: inout [UInt8], encoder: JSONEncoder) {
        guard let data = try? encoder.encode(line) else { return }
        out += data
        out.append(0x0A)
    }

    /// ``JSONStyle/files`` with the keys as declared: a step line declares its snake_case names
    /// (``StepLine/CodingKeys``), so the same bytes come without converting some 18 keys a line, which
    /// costs as much as the rest of the encoding (a test checks the bytes against ``JSONStyle/files``).
    static let stepLineStyle = JSONStyle(snakeCaseKeys: false, nonFiniteAsStrings: true, prettyPrinted: false)

    /// The fields of a step line (snake_case names declared; ``JSONStyle/files`` gives the same).
    struct StepLine: Encodable {
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

        enum CodingKeys: String, CodingKey {
            case kind, time, step, epoch, loss, lr, gradNorm = "grad_norm", samples, windows
            case samplesPerSecond = "samples_per_second", timing, bytesIn = "bytes_in", bytesOut = "bytes_out"
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
