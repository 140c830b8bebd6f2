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

/// Shows a run's progress: one live line on a terminal (epoch, step, loss, samples/s, ETA as h:mm:ss),
/// cut to the terminal's width on every redraw so that it never wraps; plain log lines (one per epoch)
/// otherwise.
///
/// Mid-epoch the live line's `loss` is the mean of the epoch's step losses so far; at an epoch's end it
/// is the epoch's MSE over all windows, as in `metrics.jsonl`.
public final class ProgressReporter {
    private let logger: Logger
    private let live: Bool
    private let totalEpochs: Int?
    private let totalSteps: Int?
    private let columns: () -> Int
    private let output: (String) -> Void
    private let start = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false
    private var epochOfSteps = 0
    private var stepLossSum = 0.0
    private var stepLossCount = 0

    /// - Parameters:
    ///   - live: draw a self-updating line on stderr (pass ``stderrIsTerminal``).
    ///   - columns: the terminal's width, asked before each redraw (default: ``terminalColumns()``).
    ///   - output: where the live line goes (default: stderr).
    public init(logger: Logger, live: Bool, totalEpochs: Int?, totalSteps: Int?,
                columns: @escaping () -> Int = { terminalColumns() },
                output: @escaping (String) -> Void = { writeToStandardError($0) }) {
        self.logger = logger
        self.live = live
        self.totalEpochs = totalEpochs
        self.totalSteps = totalSteps
        self.columns = columns
        self.output = output
    }

    /// Whether stderr is a terminal (and TERM is not "dumb").
    public static var stderrIsTerminal: Bool {
        isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    public func handle(_ event: TrainingEvent) {
        switch event {
        case .step(let epoch, let step, let inEpoch, let perEpoch, let loss, let sps, let timing):
            if epoch != epochOfSteps { epochOfSteps = epoch; stepLossSum = 0; stepLossCount = 0 }
            if loss.isFinite { stepLossSum += loss; stepLossCount += 1 }
            guard live else { return }
            let now = ContinuousClock.now
            guard now - lastDraw >= .milliseconds(100) else { return }
            lastDraw = now
            let done = fractionDone(epoch: epoch, step: step, inEpoch: inEpoch, perEpoch: perEpoch)
            let current = stepLossCount > 0 ? stepLossSum / Double(stepLossCount) : .nan
            draw([
                ("epoch \(epoch)\(totalEpochs.map { "/\($0)" } ?? "") step \(step)", 0),
                ("loss \(format(current))", 0),
                ("ETA \(eta(done))", 1),
                ("\(formatRate(sps)) samples/s", 2),
                (timing.map(formatTiming) ?? "", 4),
            ])
        case .epoch(let m):
            let val = m.valLoss.map { "  val_loss \(format($0))" } ?? ""
            let bytes = m.bytesOut.map { out in "  \(formatBytes(Double(out + (m.bytesIn ?? 0)))) moved" } ?? ""
            let head = "epoch \(m.epoch)\(totalEpochs.map { "/\($0)" } ?? "") step \(m.step)"
            let lr = m.lr.map { "  lr \(format($0))" } ?? ""
            if live {
                let done = totalEpochs.map { Double(m.epoch) / Double($0) }
                draw([
                    (head, 0),
                    ("loss \(format(m.loss))", 0),
                    (m.valLoss.map { "val_loss \(format($0))" } ?? "", 1),
                    (m.lr.map { "lr \(format($0))" } ?? "", 3),
                    (done.map { $0 < 1 ? "ETA \(eta($0))" : "" } ?? "", 1),
                    ("\(formatRate(m.samplesPerSecond)) samples/s", 2),
                    ("elapsed \(formatDuration(m.wallSeconds))", 3),
                    (m.timing.map(formatTiming) ?? "", 4),
                    (bytes.isEmpty ? "" : String(bytes.dropFirst(2)), 5),
                ])
            } else {
                logger.info("\(head)  loss \(format(m.loss))\(val)\(lr)  \(formatRate(m.samplesPerSecond)) samples/s\(m.timing.map { "  " + formatTiming($0) } ?? "")\(bytes)  \(cFormat("%.2f", m.wallSeconds))s")
            }
        }
    }

    /// Ends the live line so that later output starts on a fresh line.
    public func finish() {
        if live && drawn { output("\n") }
        drawn = false
    }

    private func draw(_ parts: [(String, Int)]) {
        output("\r\u{1B}[K\(Self.fit(parts, width: columns() - 1))")
        drawn = true
    }

    /// The parts (text, priority: 0 always shown, higher dropped first) that fit in `width` characters,
    /// in their order, two spaces apart; cut to `width` if even the priority-0 parts do not fit.
    /// One character short of the terminal's width keeps the cursor off the last column, where some
    /// terminals wrap.
    static func fit(_ parts: [(String, Int)], width: Int) -> String {
        let width = max(1, width)
        let shown = parts.filter { !$0.0.isEmpty }
        var keep = shown.map { $0.1 == 0 }
        func length() -> Int {
            let kept = zip(shown, keep).filter { $0.1 }
            return kept.reduce(0) { $0 + $1.0.0.count } + 2 * max(0, kept.count - 1)
        }
        for priority in Set(shown.map(\.1)).filter({ $0 > 0 }).sorted() {
            for i in shown.indices where shown[i].1 == priority {
                keep[i] = true
                if length() > width { keep[i] = false }
            }
        }
        let line = zip(shown, keep).filter { $0.1 }.map { $0.0.0 }.joined(separator: "  ")
        return line.count <= width ? line : String(line.prefix(width))
    }

    private func fractionDone(epoch: Int, step: Int, inEpoch: Int, perEpoch: Int) -> Double? {
        var f: Double? = nil
        if let e = totalEpochs { f = (Double(epoch - 1) + Double(inEpoch) / Double(perEpoch)) / Double(e) }
        if let s = totalSteps { f = max(f ?? 0, Double(step) / Double(s)) }
        return f
    }

    private func eta(_ done: Double?) -> String {
        guard let d = done, d > 0 else { return "?" }
        return formatDuration(seconds(since: start) * (1 - d) / d)
    }
}

/// The width of the terminal on stderr (TIOCGWINSZ), else `$COLUMNS`, else 80.
public func terminalColumns() -> Int {
    var size = winsize()
    if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    if let c = ProcessInfo.processInfo.environment["COLUMNS"].flatMap({ Int($0) }), c > 0 { return c }
    return 80
}

/// `line` cut to one character less than the terminal's width, for a line redrawn in place.
public func cutToTerminalWidth(_ line: String) -> String {
    ProgressReporter.fit([(line, 0)], width: terminalColumns() - 1)
}

/// `h:mm:ss` (`0:01:05`), or `?` for a time that is not finite.
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0, seconds < 1e9 else { return "?" }
    let s = Int(seconds.rounded())
    return cFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
}

func format(_ x: Double) -> String { x.isNaN ? "-" : cFormat("%.4e", x) }

func formatRate(_ x: Double) -> String {
    if x >= 1e6 { return cFormat("%.2fM", x / 1e6) }
    if x >= 1e3 { return cFormat("%.1fk", x / 1e3) }
    return cFormat("%.0f", x)
}

/// Per-step phases in microseconds: compute, wait, reduce, optimizer, broadcast.
func formatTiming(_ t: StepTiming) -> String {
    cFormat("[µs/step compute %.0f wait %.0f reduce %.0f opt %.0f bcast %.0f]",
           t.compute * 1e6, t.wait * 1e6, t.reduce * 1e6, t.optimizer * 1e6, t.broadcast * 1e6)
}

func formatBytes(_ b: Double) -> String {
    if b >= 1e9 { return cFormat("%.2f GB", b / 1e9) }
    if b >= 1e6 { return cFormat("%.1f MB", b / 1e6) }
    if b >= 1e3 { return cFormat("%.1f kB", b / 1e3) }
    return cFormat("%.0f B", b)
}
