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
import RNN
import Series
import Support

/// A point a run can continue from, bit for bit.
public struct RunCheckpoint: Sendable {
    public var runID: UInt64
    public var config: TrainingConfig
    public var parameters: [Float]
    /// Optimizer moments (empty when the optimizer keeps none).
    public var m: [Float]
    public var v: [Float]
    public var counters: RunState.Counters
    /// With a validation part: the best weights so far (``RunState/bestParameters``).
    public var best: [Float]?
    /// The epoch records so far (so `metrics.jsonl` and `summary.json` continue).
    public var metrics: [EpochMetrics]
    public var trainSeconds: Double
    /// ``Series/fingerprint`` of the run's data, so that a resume can tell edited data (nil in a
    /// checkpoint written before it was recorded).
    public var seriesFingerprint: UInt64? = nil

    public init(runID: UInt64, state: RunState, metrics: [EpochMetrics], trainSeconds: Double) {
        self.runID = runID
        config = state.config
        parameters = state.parameters
        m = state.optimizer.m
        v = state.optimizer.v
        counters = state.counters
        best = state.bestParameters
        self.metrics = metrics
        self.trainSeconds = trainSeconds
    }
}

/// Checkpoints of one run in `DIR/checkpoints/step-NNNNNNNNNN.safetensors`: the weights and optimizer
/// moments as Float32 tensors (bit-exact), everything else as JSON in `__metadata__` (with `step` and
/// `weights_hash`, ``WeightsHash`` of the weights, checked on load when present). Written atomically
/// (temp file, fsync, rename, fsync of the folder); only the newest `keep` are kept.
public struct CheckpointStore: Sendable {
    public let directory: URL
    public let keep: Int
    /// Recorded in every checkpoint this store writes (``RunCheckpoint/seriesFingerprint``).
    public var seriesFingerprint: UInt64?

    public init(runDirectory: URL, keep: Int, seriesFingerprint: UInt64? = nil) {
        directory = runDirectory.appendingPathComponent("checkpoints", isDirectory: true)
        self.keep = max(1, keep)
        self.seriesFingerprint = seriesFingerprint
    }

    static let prefix = "step-"
    static let suffix = ".safetensors"

    /// Checkpoint files, oldest first.
    public func files() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasPrefix(Self.prefix) && $0.hasSuffix(Self.suffix) && !$0.contains(".tmp") }
            .sorted().map { directory.appendingPathComponent($0) }
    }

    public func save(_ c: RunCheckpoint) throws(TrainingError) {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw .output("cannot create \(directory.path): \(systemMessage(error))")
        }
        var tensors = [TensorData(name: "parameters", shape: [c.parameters.count], values: c.parameters)]
        if !c.m.isEmpty { tensors.append(TensorData(name: "optimizer.m", shape: [c.m.count], values: c.m)) }
        if !c.v.isEmpty { tensors.append(TensorData(name: "optimizer.v", shape: [c.v.count], values: c.v)) }
        if let b = c.best { tensors.append(TensorData(name: "best.parameters", shape: [b.count], values: b)) }
        // safetensors' `__metadata__` maps strings to strings (the format allows nothing else), so the
        // configuration, counters and metrics are stored there as JSON text (``JSONStyle/canonical``).
        // A value that cannot be written (a non-finite loss in the metrics) is recorded as `{}`, which
        // does not load: such a checkpoint is skipped on resume, as before.
        func text<T: Encodable>(_ value: T) -> String { (try? JSONStyle.canonical.string(value)) ?? "{}" }
        let (config, counters, metrics) = (text(c.config), text(c.counters), text(c.metrics))
        var meta: [String: String] = [
            "format": "ztrain-checkpoint",
            "version": "1",
            "run_id": String(c.runID),
            "config": config,
            "counters": counters,
            "metrics": metrics,
            "train_seconds": String(c.trainSeconds),
            // the step and the weights hash there (``WeightsHash``), readable without decoding the rest
            "step": String(c.counters.step),
            "weights_hash": WeightsHash.hex(c.weightsHash),
        ]
        if let f = c.seriesFingerprint ?? seriesFingerprint { meta["series_fingerprint"] = String(f) }
        let name = Self.prefix + cFormat("%010ld", c.counters.step) + Self.suffix
        do {
            try AtomicFile.write(SafeTensors.encode(tensors: tensors, metadata: meta), to: directory.appendingPathComponent(name).path)
        } catch {
            throw .output("cannot write the checkpoint of step \(c.counters.step): \(error)")
        }
        for old in files().dropLast(keep) { try? FileManager.default.removeItem(at: old) }
    }

    /// The newest checkpoint that reads back whole and valid; a damaged newest one falls back to the
    /// one before, and `onSkip` hears why (to log it).
    public func latest(onSkip: (String) -> Void = { _ in }) throws(TrainingError) -> RunCheckpoint {
        var problems: [String] = []
        if let c = newest(onSkip: { problems.append($0); onSkip($0) }) { return c }
        if problems.isEmpty { throw .data("no checkpoint in \(directory.path); was the run started with --checkpoint-every?") }
        throw .data("no usable checkpoint in \(directory.path): \(problems.joined(separator: "; "))")
    }

    /// The newest usable checkpoint, or nil when there is none; `onSkip` hears about each one skipped.
    public func newest(onSkip: (String) -> Void = { _ in }) -> RunCheckpoint? {
        for url in files().reversed() {
            do {
                return try Self.load(url)
            } catch {
                onSkip("skipped checkpoint \(url.lastPathComponent): \(error)")
            }
        }
        return nil
    }

    /// Removes the temporary files of checkpoint writes that a killed process left behind. Call it
    /// only when this process owns the folder (at the start of a run). Returns their names.
    @discardableResult
    public func removeStaleTemporaries() -> [String] {
        AtomicFile.removeStaleTemporaries(in: directory.path) { $0.hasPrefix(Self.prefix) }
    }

    /// Renames every checkpoint that does not load to `NAME.unusable` (kept for inspection, out of
    /// the way of a new run's checkpoints). Returns the new names.
    @discardableResult
    public func setAsideUnusable() -> [String] {
        var moved: [String] = []
        for url in files() {
            do {
                _ = try Self.load(url)
            } catch {
                let target = url.path + ".unusable"
                if rename(url.path, target) == 0 { moved.append(url.lastPathComponent + ".unusable") }
            }
        }
        return moved
    }

    /// Reads and checks one checkpoint file (as ``latest(onSkip:)`` does for each it tries).
    public static func load(_ url: URL) throws(TrainingError) -> RunCheckpoint {
        let decoded: (tensors: [String: TensorData], metadata: [String: String])
        do {
            decoded = try SafeTensors.decode(AtomicFile.read(url.path), source: url.path)
        } catch {
            throw .data("\(error)")
        }
        let meta = decoded.metadata
        func json<T: Decodable>(_ key: String, _ type: T.Type) throws(TrainingError) -> T {
            guard let text = meta[key], let value = try? JSONStyle.canonical.decode(T.self, from: text) else {
                throw .data("\(url.path): metadata '\(key)' is missing or malformed")
            }
            return value
        }
        guard meta["format"] == "ztrain-checkpoint", let runID = meta["run_id"].flatMap(UInt64.init),
              let params = decoded.tensors["parameters"]?.values else {
            throw .data("\(url.path) is not a ztrain checkpoint")
        }
        let config = try json("config", TrainingConfig.self)
        let counters = try json("counters", RunState.Counters.self)
        let metrics = try json("metrics", [EpochMetrics].self)
        do { try config.validate() } catch { throw .data("\(url.path): the recorded configuration is not valid: \(error)") }
        guard params.count == ParameterLayout(config.model).count else {
            throw .data("\(url.path): \(params.count) parameters for a model of \(ParameterLayout(config.model).count)")
        }
        let m = decoded.tensors["optimizer.m"]?.values ?? []
        let v = decoded.tensors["optimizer.v"]?.values ?? []
        let needsM = config.optimizer.kind == .adam || config.optimizer.momentum != 0
        guard (!needsM || m.count == params.count) && (config.optimizer.kind != .adam || v.count == params.count) else {
            throw .data("\(url.path): optimizer state does not match the model")
        }
        if let k = params.firstIndex(where: { !$0.isFinite }) {
            throw .data("\(url.path): weight \(k) is \(params[k]); every weight must be finite (damaged file?)")
        }
        if let k = m.firstIndex(where: { !$0.isFinite }) {
            throw .data("\(url.path): optimizer moment m[\(k)] is \(m[k]); it must be finite (damaged file?)")
        }
        if let k = v.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw .data("\(url.path): optimizer moment v[\(k)] is \(v[k]); it must be finite and not negative (damaged file?)")
        }
        let c = counters
        guard c.epoch >= 0, c.stepInEpoch >= 0, c.step >= 0, c.samples >= 0, c.epochSamples >= 0, c.optimizerStep >= 0,
              c.optimizerStep <= c.step, c.epochLossSum.isFinite, c.lastGradNorm.isFinite, c.lastGradNorm >= 0 else {
            throw .data("\(url.path): the recorded counters are inconsistent (damaged file?)")
        }
        var fingerprint: UInt64? = nil
        if let text = meta["series_fingerprint"] {
            guard let f = UInt64(text) else { throw .data("\(url.path): metadata 'series_fingerprint' is malformed") }
            fingerprint = f
        }
        // absent in checkpoints written before weights hashes; present, they must match
        if let text = meta["weights_hash"], WeightsHash.parse(text) != WeightsHash.of(params) {
            throw .data("\(url.path): the weights do not match the recorded weights hash \(text) (damaged file?)")
        }
        if let text = meta["step"], Int(text) != counters.step {
            throw .data("\(url.path): metadata 'step' \(text) differs from the recorded counters' step \(counters.step) (damaged file?)")
        }
        let best = decoded.tensors["best.parameters"]?.values
        if let b = best, b.count != params.count {
            throw .data("\(url.path): best weights have \(b.count) values for a model of \(params.count)")
        }
        if let b = best, let k = b.firstIndex(where: { !$0.isFinite }) {
            throw .data("\(url.path): best weight \(k) is \(b[k]); every weight must be finite (damaged file?)")
        }
        var checkpoint = RunCheckpoint(runID: runID, config: config, parameters: params, m: m, v: v, counters: counters, best: best,
                                       metrics: metrics, trainSeconds: Double(meta["train_seconds"] ?? "") ?? 0)
        checkpoint.seriesFingerprint = fingerprint
        return checkpoint
    }
}

extension RunCheckpoint {
    init(runID: UInt64, config: TrainingConfig, parameters: [Float], m: [Float], v: [Float], counters: RunState.Counters,
         best: [Float]? = nil, metrics: [EpochMetrics], trainSeconds: Double) {
        self.runID = runID
        self.config = config
        self.parameters = parameters
        self.m = m
        self.v = v
        self.counters = counters
        self.best = best
        self.metrics = metrics
        self.trainSeconds = trainSeconds
    }
}

extension RunCheckpoint {
    /// Whether the run this checkpoint holds is over (its epoch or step limit, or its target, was
    /// reached): resuming it has nothing to do.
    public func isComplete(series: Series) throws(TrainingError) -> Bool {
        let prepared = try PreparedRun(config: config, series: series, initialParameters: parameters)
        try RunState.check(counters: counters, config: config, split: prepared.split)
        return RunState(config: config, split: prepared.split, parameters: parameters, m: m, v: v, counters: counters).isFinished
    }
}
