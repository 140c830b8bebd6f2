#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Support
import Training

/// One record waiting in ``RunWatch``'s batch, with the wall-clock time it happened.
enum WatchRecord {
    case step(StepRecord, wall: Double)
    case epoch(EpochMetrics, wall: Double)
    /// A `--hash-every` line (`metrics.jsonl` only).
    case hash(HashLine)
}

/// Wall-clock seconds (since 1970) derived from the monotonic clock: one `Date()` when made, then
/// only monotonic reads. ``RunWatch`` makes a new one with each batch, so it never drifts far.
struct WallClock {
    let base = ContinuousClock.now
    let wall = Date().timeIntervalSince1970

    /// The wall-clock time of `instant`.
    func wall(at instant: ContinuousClock.Instant) -> Double {
        let d = instant - base
        return wall + Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// The formatting and writing half of ``RunWatch``: runs on its serial queue only, a batch at a time.
/// Step records become TensorBoard events and `metrics.jsonl` step lines; epoch records TensorBoard
/// events and (when step lines are on) epoch lines, in the order they came.
final class WatchWriter: @unchecked Sendable {
    // @unchecked: used on RunWatch's serial queue only; `lineError` is read after that queue drains.
    let tensorboard: TensorBoardWriter?
    /// Where the lines go (nil: no lines).
    let directory: RunDirectory?
    let logger: Logger
    private(set) var lineError: TrainingError?
    private let encoder = RunWatch.stepLineStyle.encoder()
    /// The formatted second of the last step line (`2026-11-28T03:17:02`), reused within that second.
    private var isoClock: (second: Int, text: String) = (-1, "")
    private var bytes: [UInt8] = []
    private var scalars: [(tag: String, value: Float)] = []

    init(tensorboard: TensorBoardWriter?, directory: RunDirectory?, logger: Logger) {
        self.tensorboard = tensorboard
        self.directory = directory
        self.logger = logger
    }

    /// Formats and writes one batch: the TensorBoard events (flushed once), then the lines (one write
    /// for the step lines between two epoch lines).
    func write(_ batch: [WatchRecord]) {
        if let tb = tensorboard {
            for record in batch {
                scalars.removeAll(keepingCapacity: true)
                switch record {
                case .step(let r, let wall):
                    RunWatch.appendStepScalars(r, to: &scalars)
                    tb.add(step: r.step, wallTime: wall, scalars: scalars)
                case .epoch(let m, let wall):
                    RunWatch.appendEpochScalars(m, to: &scalars)
                    tb.add(step: m.step, wallTime: wall, scalars: scalars)
                case .hash:
                    break
                }
            }
            tb.flush()
        }
        guard let d = directory else { return }
        bytes.removeAll(keepingCapacity: true)
        for record in batch where lineError == nil {
            switch record {
            case .step(let r, let wall):
                RunWatch.appendStepLine(r, wallTime: wall, clock: &isoClock, into: &bytes, encoder: encoder)
            case .epoch(var m, let wall):
                if m.time == nil { m.time = RunIdentity.isoTime(wall) }
                writeLines(d)
                do throws(TrainingError) { try d.append(m) } catch { fail(error) }
            case .hash(let line):
                writeLines(d)
                do throws(TrainingError) { try d.append(hash: line) } catch { fail(error) }
            }
        }
        writeLines(d)
    }

    private func writeLines(_ d: RunDirectory) {
        guard !bytes.isEmpty, lineError == nil else { return }
        do throws(TrainingError) { try d.appendLines(bytes) } catch { fail(error) }
        bytes.removeAll(keepingCapacity: true)
    }

    private func fail(_ error: TrainingError) {
        lineError = error
        logger.error("\(error)")
    }
}
