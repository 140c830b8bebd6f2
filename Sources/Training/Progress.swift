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

/// Shows a run's progress: one live line on a terminal (epoch, loss, samples/s, ETA), plain log lines
/// (one per epoch) otherwise.
public final class ProgressReporter {
    private let logger: Logger
    private let live: Bool
    private let totalEpochs: Int?
    private let totalSteps: Int?
    private let start = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false
    private var latestLoss = Double.nan

    /// - Parameters:
    ///   - live: draw a self-updating line on stderr (pass `isatty(2) != 0`).
    public init(logger: Logger, live: Bool, totalEpochs: Int?, totalSteps: Int?) {
        self.logger = logger
        self.live = live
        self.totalEpochs = totalEpochs
        self.totalSteps = totalSteps
    }

    /// Whether stderr is a terminal (and TERM is not "dumb").
    public static var stderrIsTerminal: Bool {
        isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    public func handle(_ event: TrainingEvent) {
        switch event {
        case .step(let epoch, let step, let inEpoch, let perEpoch, _, let sps, let timing):
            guard live else { return }
            let now = ContinuousClock.now
            guard now - lastDraw >= .milliseconds(100) else { return }
            lastDraw = now
            let done = fractionDone(epoch: epoch, step: step, inEpoch: inEpoch, perEpoch: perEpoch)
            draw("epoch \(epoch)\(totalEpochs.map { "/\($0)" } ?? "") step \(step)  loss \(format(latestLoss))  \(formatRate(sps)) samples/s\(timing.map(formatTiming) ?? "")  ETA \(eta(done))")
        case .epoch(let m):
            latestLoss = m.loss
            let val = m.valLoss.map { "  val_loss \(format($0))" } ?? ""
            let bytes = m.bytesOut.map { out in "  \(formatBytes(Double(out + (m.bytesIn ?? 0)))) moved" } ?? ""
            let lr = m.lr.map { "  lr \(format($0))" } ?? ""
            let line = "epoch \(m.epoch)\(totalEpochs.map { "/\($0)" } ?? "") step \(m.step)  loss \(format(m.loss))\(val)\(lr)  \(formatRate(m.samplesPerSecond)) samples/s\(m.timing.map(formatTiming) ?? "")\(bytes)  \(cFormat("%.2f", m.wallSeconds))s"
            if live {
                let done = totalEpochs.map { Double(m.epoch) / Double($0) }
                draw(line + (done.map { $0 < 1 ? "  ETA \(eta($0))" : "" } ?? ""))
            } else {
                logger.info("\(line)")
            }
        }
    }

    /// Ends the live line so that later output starts on a fresh line.
    public func finish() {
        if live && drawn { writeToStandardError("\n") }
        drawn = false
    }

    private func draw(_ s: String) {
        writeToStandardError("\r\u{1B}[K\(s)")
        drawn = true
    }

    private func fractionDone(epoch: Int, step: Int, inEpoch: Int, perEpoch: Int) -> Double? {
        var f: Double? = nil
        if let e = totalEpochs { f = (Double(epoch - 1) + Double(inEpoch) / Double(perEpoch)) / Double(e) }
        if let s = totalSteps { f = max(f ?? 0, Double(step) / Double(s)) }
        return f
    }

    private func eta(_ done: Double?) -> String {
        guard let d = done, d > 0 else { return "?" }
        let elapsed = seconds(since: start)
        return cFormat("%.1fs", elapsed * (1 - d) / d)
    }
}

func format(_ x: Double) -> String { x.isNaN ? "-" : cFormat("%.4e", x) }

func formatRate(_ x: Double) -> String {
    if x >= 1e6 { return cFormat("%.2fM", x / 1e6) }
    if x >= 1e3 { return cFormat("%.1fk", x / 1e3) }
    return cFormat("%.0f", x)
}

/// Per-step phases in microseconds: compute, wait, reduce, optimizer, broadcast.
func formatTiming(_ t: StepTiming) -> String {
    cFormat("  [µs/step compute %.0f wait %.0f reduce %.0f opt %.0f bcast %.0f]",
           t.compute * 1e6, t.wait * 1e6, t.reduce * 1e6, t.optimizer * 1e6, t.broadcast * 1e6)
}

func formatBytes(_ b: Double) -> String {
    if b >= 1e9 { return cFormat("%.2f GB", b / 1e9) }
    if b >= 1e6 { return cFormat("%.1f MB", b / 1e6) }
    if b >= 1e3 { return cFormat("%.1f kB", b / 1e3) }
    return cFormat("%.0f B", b)
}
