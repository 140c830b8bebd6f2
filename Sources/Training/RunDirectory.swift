import Checkpoint
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Plot
import RNN

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
    /// Data-parallel runs: one record per worker that joined, and the coordinator's counters.
    public var workers: [WorkerRecord]? = nil
    public var droppedFrames: Int? = nil
    public var lateOrDuplicate: Int? = nil
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

/// The output folder of a run: `model.safetensors`, `metrics.jsonl`, `summary.json`, `loss.svg`.
///
/// `metrics.jsonl` gets a line as each epoch ends (flushed), so an interrupted run keeps its history.
public final class RunDirectory {
    public let url: URL
    private let metricsFile: OutputFile
    private var metrics: [EpochMetrics] = []

    public var modelURL: URL { url.appendingPathComponent("model.safetensors") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var summaryURL: URL { url.appendingPathComponent("summary.json") }
    public var lossPlotURL: URL { url.appendingPathComponent("loss.svg") }

    /// Creates the folder (and parents) and starts `metrics.jsonl` with `history` (empty for a new run,
    /// the checkpoint's epochs for a resumed one).
    public init(path: String, history: [EpochMetrics] = []) throws(TrainingError) {
        url = URL(fileURLWithPath: path, isDirectory: true)
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path), !isDirectory(url.path) {
            throw .output("--out \(path) exists and is not a directory")
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
        for m in history { try append(m) }
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    /// Appends one epoch's line to `metrics.jsonl`.
    public func append(_ m: EpochMetrics) throws(TrainingError) {
        metrics.append(m)
        do {
            var line = Array(try Self.encoder().encode(m))
            line.append(0x0A)
            try metricsFile.write(line)
        } catch {
            throw .output("cannot append to \(metricsURL.path): \(systemMessage(error))")
        }
    }

    /// Writes `model.safetensors` atomically, tensors named as the reference PyTorch module.
    public func writeModel(parameters: [Float], config: TrainingConfig, extra: [String: String] = [:]) throws(TrainingError) {
        var meta = extra
        meta["optimizer"] = config.optimizer.kind.rawValue
        meta["data"] = config.data.description
        meta["seed"] = String(config.seed)
        do {
            try saveModel(parameters: parameters, config: config.model, metadata: meta, to: modelURL.path)
        } catch {
            throw .output("\(error)")
        }
    }

    /// Writes `summary.json` atomically.
    public func writeSummary(_ s: RunSummary) throws(TrainingError) {
        let e = Self.encoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            let data = try e.encode(s)
            try AtomicFile.write([UInt8](data) + [0x0A], to: summaryURL.path)
        } catch {
            throw .output("cannot write \(summaryURL.path): \(error)")
        }
    }

    /// Writes `loss.svg`: training, all-window and validation loss per epoch, log scale.
    public func writeLossPlot(title: String) throws(TrainingError) {
        let epochs = metrics.map { Double($0.epoch) }
        var lines = [
            LineSeries(name: "train (mean of steps)", xs: epochs, ys: metrics.map(\.trainLoss)),
            LineSeries(name: "all windows", xs: epochs, ys: metrics.map(\.loss)),
        ]
        if metrics.contains(where: { $0.valLoss != nil }) {
            lines.append(LineSeries(name: "validation", xs: epochs, ys: metrics.map { $0.valLoss ?? .nan }, dashed: true))
        }
        let chart = Chart(title: "MSE per epoch", xLabel: "epoch", yLabel: "MSE", series: lines, logY: true)
        let svg = SVG.render([chart], title: title)
        do {
            try AtomicFile.write(Array(svg.utf8), to: lossPlotURL.path)
        } catch {
            throw .output("cannot write \(lossPlotURL.path): \(error)")
        }
    }
}
