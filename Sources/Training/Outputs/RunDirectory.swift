import Checkpoint
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
import Plot
import RNN
import Support

/// `summary.json`: the figures a user (or a script) reads after a run.
public struct RunSummary: Sendable, Codable {
    public var finalLoss: Double
    public var finalValLoss: Double?
    public var epochs: Int
    public var steps: Int
    public var samples: Int
    public var wallSeconds: Double
    public var trainSeconds: Double
    public var samplesPerSecond: Double
    public var targetLoss: Double?
    public var targetReached: Bool?
    public var mode: String
    public var threads: Int
    public var parameters: Int
    public var windows: Int
    public var trainWindows: Int
    public var validationWindows: Int
    public var config: TrainingConfig
    public var model: String
    public var error: String?
    /// The `ztrain` version, the host, the command line, and when the run started and finished
    /// (ISO 8601, UTC).
    public var version: String? = nil
    public var host: String? = nil
    public var commandLine: [String]? = nil
    public var startedAt: String? = nil
    public var finishedAt: String? = nil
    /// The git commit ztrain was built from, when known (see `RunIdentity.gitCommit` in Observe).
    public var gitCommit: String? = nil
    /// Why the run ended: `target_reached`, `early_stopped`, `step_limit`, `epoch_limit`, `diverged`,
    /// `signal` (SIGINT/SIGTERM) or `error`.
    public var exitReason: String? = nil
    /// Data-parallel runs: one record per worker that joined, and the coordinator's counters.
    public var workers: [WorkerRecord]? = nil
    public var droppedFrames: Int? = nil
    public var lateOrDuplicate: Int? = nil
    /// Workers an audit caught computing wrong bits (`--audit-rate`): who, where, when, why.
    public var quarantined: [QuarantineEntry]? = nil
    /// Times the run went back to a snapshot to drop a quarantined worker's unverified answers.
    public var rollbacks: Int? = nil
    public var reassigned: Int? = nil
    /// Orders given again after their answer did not come (dropped or corrupted messages).
    public var retried: Int? = nil
    /// Straggler micro-batches copied to idle workers.
    public var speculative: Int? = nil
    /// Messages the coordinator could not send (peer gone or not reading).
    public var unsent: Int? = nil
    /// Strangers: bytes of their frames dropped unread, handshakes forgotten after the handshake
    /// timeout, HELLOs left unanswered while the open handshakes were at their cap.
    public var strangerBytesDropped: Int? = nil
    public var abandonedHandshakes: Int? = nil
    public var deferredHellos: Int? = nil
    public var bytesIn: Int? = nil
    public var bytesOut: Int? = nil
    /// Data-parallel runs: mean time per step in each phase over the run.
    public var timing: StepTiming? = nil
    /// With a validation part: the epoch with the lowest validation MSE (its weights are
    /// `model.safetensors`) and that MSE.
    public var bestEpoch: Int? = nil
    public var bestValLoss: Double? = nil
    /// With `--early-stopping`: whether it ended the run.
    public var earlyStopped: Bool? = nil
    /// ``WeightsHash/hex(_:)`` of the final weights (those after the run's last step; nil in
    /// summaries from before weights hashes).
    public var weightsHash: String? = nil
    /// One-step RMSE, MAE, sMAPE and MASE on each split in the series' own units, with the persistence and
    /// seasonal-naive baselines (as `ztrain predict` prints them).
    public var evaluation: Evaluation? = nil

    public init(
        finalLoss: Double, finalValLoss: Double?, epochs: Int, steps: Int, samples: Int, wallSeconds: Double,
        trainSeconds: Double, samplesPerSecond: Double, targetLoss: Double?, targetReached: Bool?, mode: String,
        threads: Int, parameters: Int, windows: Int, trainWindows: Int, validationWindows: Int,
        config: TrainingConfig, model: String, error: String?
    ) {
        self.finalLoss = finalLoss
        self.finalValLoss = finalValLoss
        self.epochs = epochs
        self.steps = steps
        self.samples = samples
        self.wallSeconds = wallSeconds
        self.trainSeconds = trainSeconds
        self.samplesPerSecond = samplesPerSecond
        self.targetLoss = targetLoss
        self.targetReached = targetReached
        self.mode = mode
        self.threads = threads
        self.parameters = parameters
        self.windows = windows
        self.trainWindows = trainWindows
        self.validationWindows = validationWindows
        self.config = config
        self.model = model
        self.error = error
    }
}

/// The time now as ISO 8601 in UTC, to the second: `2026-11-28T02:50:00Z`.
public func isoTimestamp() -> String {
    utcTimestamp("%Y-%m-%dT%H:%M:%SZ")
}

/// What a new ``RunDirectory`` does with a folder that already holds files.
public enum ExistingOutput: Sendable, Equatable {
    /// A new run: refuse a folder that is not empty, so that no run overwrites another by accident.
    case refuse
    /// A new run in place of an old one (`--overwrite`): empty the folder first. Only a folder that
    /// holds a run's files (``RunDirectory/runFiles``) is emptied; anything else is refused.
    case overwrite
    /// The same run continued (`--resume`, `--auto-resume`): keep what is there.
    case resume
}

/// The output folder of a run: `model.safetensors`, `metrics.jsonl`, `summary.json`, `loss.svg`, and
/// with a validation part `last.safetensors`.
///
/// `metrics.jsonl` gets a line as each epoch ends (flushed), so an interrupted run keeps its history.
/// The one place that decides whether a folder may be written: see ``ExistingOutput``.
public final class RunDirectory {
    public let url: URL
    private let metricsFile: OutputFile
    private var metrics: [EpochMetrics] = []

    public var modelURL: URL { url.appendingPathComponent("model.safetensors") }
    /// With a validation part: the last weights (`model.safetensors` holds the best by validation).
    public var lastModelURL: URL { url.appendingPathComponent("last.safetensors") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var summaryURL: URL { url.appendingPathComponent("summary.json") }
    public var lossPlotURL: URL { url.appendingPathComponent("loss.svg") }

    /// The names a run writes in its folder; a folder holding one of them is a run's.
    public static let runFiles = ["model.safetensors", "metrics.jsonl", "summary.json", "loss.svg", "checkpoints"]

    /// Creates the folder (and parents) and starts `metrics.jsonl` with `history` (empty for a new run,
    /// the checkpoint's epochs for a resumed one) and `hashLines` (a resumed run's hash lines up to its
    /// checkpoint), in step order. `existing` says what to do when the folder is not empty.
    public init(path: String, existing: ExistingOutput = .refuse, history: [EpochMetrics] = [], hashLines: [HashLine] = []) throws(TrainingError) {
        url = URL(fileURLWithPath: path, isDirectory: true)
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path), !isDirectory(url.path) {
            throw .output("--out \(path) exists and is not a directory")
        }
        if isDirectory(url.path), existing != .resume {
            let names = ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
            if !names.isEmpty {
                let shown = names.prefix(4).joined(separator: ", ") + (names.count > 4 ? ", …" : "")
                let isRun = names.contains { Self.runFiles.contains($0) }
                switch existing {
                case .refuse:
                    throw .output(isRun
                        ? "--out \(path) already holds a run (\(shown)): pass --overwrite to replace it, or choose another --out"
                        : "--out \(path) is not empty (\(shown)): choose a new or empty folder")
                case .overwrite:
                    guard isRun else {
                        throw .output("--out \(path) holds files that are not a run's (\(shown)); --overwrite only replaces a run: choose a new or empty folder")
                    }
                    for name in names {
                        do { try fm.removeItem(at: url.appendingPathComponent(name)) } catch {
                            throw .output("cannot remove \(url.appendingPathComponent(name).path) for --overwrite: \(systemMessage(error))")
                        }
                    }
                case .resume:
                    break
                }
            }
        }
        do {
            try fm.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw .output("cannot create --out \(path): \(systemMessage(error))")
        }
        let m = url.appendingPathComponent("metrics.jsonl")
        guard let file = try? OutputFile(path: m.path) else {
            throw .output("cannot write \(m.path): check permissions of --out \(path)")
        }
        metricsFile = file
        // a step's hash line comes before its epoch line, as the run wrote them
        var hashes = hashLines.sorted { $0.step < $1.step }[...]
        for m in history {
            while let h = hashes.first, h.step <= m.step {
                try append(hash: h)
                hashes = hashes.dropFirst()
            }
            try append(m)
        }
        for h in hashes { try append(hash: h) }
    }

    /// A new folder `parent/stem`, or `parent/stem-2`, `-3`, … when that exists: two runs started in
    /// the same second get folders of their own (mkdir(2) decides, so it holds across processes).
    public static func createUnique(parent: String, stem: String) throws(TrainingError) -> RunDirectory {
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw .output("cannot create \(parent): \(systemMessage(error))")
        }
        for n in 1...10_000 {
            let path = parent + "/" + stem + (n == 1 ? "" : "-\(n)")
            if mkdir(path, 0o755) == 0 { return try RunDirectory(path: path) }
            guard errno == EEXIST else {
                throw .output("cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
        throw .output("\(parent) already holds 10000 runs named \(stem)*: pass --out")
    }

    /// Appends one epoch's line to `metrics.jsonl`, stamped with the time now unless it has one.
    public func append(_ m: EpochMetrics) throws(TrainingError) {
        var m = m
        if m.time == nil { m.time = isoTimestamp() }
        metrics.append(m)
        do {
            try metricsFile.write(try JSONStyle.files.line(m))
        } catch {
            throw .output("cannot append to \(metricsURL.path): \(systemMessage(error))")
        }
    }

    /// Appends lines already encoded (each ending in a newline) to `metrics.jsonl`, in one write.
    public func appendLines(_ bytes: [UInt8]) throws(TrainingError) {
        do {
            try metricsFile.write(bytes)
        } catch {
            throw .output("cannot append to \(metricsURL.path): \(systemMessage(error))")
        }
    }

    /// Writes `model.safetensors` (or `to`) atomically, tensors named as the reference PyTorch module.
    public func writeModel(parameters: [Float], config: TrainingConfig, extra: [String: String] = [:], to: URL? = nil) throws(TrainingError) {
        var meta = extra
        meta["optimizer"] = config.optimizer.kind.rawValue
        meta["data"] = config.data.description
        meta["seed"] = String(config.seed)
        do {
            try saveModel(parameters: parameters, config: config.model, metadata: meta, to: (to ?? modelURL).path)
        } catch {
            throw .output("\(error)")
        }
    }

    /// Writes `summary.json` atomically.
    public func writeSummary(_ s: RunSummary) throws(TrainingError) {
        do {
            try AtomicFile.write(try JSONStyle.files.pretty.encode(s) + [0x0A], to: summaryURL.path)
        } catch {
            throw .output("cannot write \(summaryURL.path): \(error)")
        }
    }

    /// Writes `loss.svg`: training (mean of steps and at the epoch's end) and validation loss per epoch of the series `data`, log scale, and `target`
    /// (`--target-loss`) as a dashed line. Up to 20 epochs every point is marked, so that a short run
    /// (one epoch: one point per curve) still shows its values.
    public func writeLossPlot(title: String, data: String = "", target: Double? = nil) throws(TrainingError) {
        let epochs = metrics.map { Double($0.epoch) }
        let marked = metrics.count <= 20
        var lines = [
            LineSeries(name: "train (mean of steps)", xs: epochs, ys: metrics.map(\.trainLoss), markers: marked),
            LineSeries(name: "train (epoch end)", xs: epochs, ys: metrics.map(\.loss), markers: marked),
        ]
        if metrics.contains(where: { $0.valLoss != nil }) {
            lines.append(LineSeries(name: "validation", xs: epochs, ys: metrics.map { $0.valLoss ?? .nan }, dashed: true, markers: marked))
        }
        if let target, let first = epochs.first, let last = epochs.last {
            let (a, b) = first < last ? (first, last) : (first - 0.5, last + 0.5)
            lines.append(LineSeries(name: "target \(cFormat("%g", target))", xs: [a, b], ys: [target, target],
                                    color: "#555555", dashed: true, width: 1))
        }
        let subtitle = (metrics.count == 1 ? "MSE after the only epoch" : "MSE per epoch") + (data.isEmpty ? "" : ": " + data)
        let chart = Chart(title: subtitle, xLabel: "epoch", yLabel: "MSE", series: lines, logY: true)
        let svg = SVG.render([chart], title: title)
        do {
            try AtomicFile.write(Array(svg.utf8), to: lossPlotURL.path)
        } catch {
            throw .output("cannot write \(lossPlotURL.path): \(error)")
        }
    }
}
