#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Training
import Support

/// One PyTorch figure and where it comes from.
public struct PyTorchFigure: Sendable, Codable, Equatable {
    /// The figure.
    public var value: Double
    /// `samples/s`, `ms` or `s`.
    public var unit: String
    /// Measured in this run (`--pytorch-json`) or recorded on the reference machine.
    public var source: BaselineSource

    public init(value: Double, unit: String, source: BaselineSource) {
        self.value = value
        self.unit = unit
        self.source = source
    }
}

/// The PyTorch side of the comparison: measured in this run by `scripts/pytorch_baseline.py`
/// (`--pytorch-json`), or the figures recorded on the reference machine (2-core AMD EPYC,
/// PyTorch 2.15 CPU, one thread) for whatever the JSON does not give.
///
/// Definitions (the same in the script and in the recorded figures):
/// - `eagerH32`: the blog model (seed cell, H=32), Adam lr 1e-2, batch 32, eager loop over a
///   shuffled epoch, one thread: 996 / median epoch training time (evaluation excluded).
/// - `eagerH256`: the same with H=256 and the full batch of 996 (one step per epoch).
/// - `ddp`: DistributedDataParallel with gloo, 2 processes × 1 thread, 32 windows per rank
///   (global batch 64): 996 / median epoch time.
/// - `allreduce1e7`: gloo `all_reduce` (SUM) of 1e7 float32, 2 ranks, median latency.
/// - `timeToTarget`: the eager H=32 batch 32 loop until the MSE over all 996 windows is below
///   1e-4 (checked every epoch), wall seconds from the first step (the Python start and the torch
///   import are not included), median over seeds.
public struct PyTorchFigures: Sendable, Codable, Equatable {
    /// Eager loop, H=32, batch 32, one thread (samples/s).
    public var eagerH32: PyTorchFigure
    /// Eager loop, H=256, batch 996, one thread (samples/s).
    public var eagerH256: PyTorchFigure
    /// DDP gloo, 2 processes × 1 thread, global batch 64 (samples/s).
    public var ddp: PyTorchFigure
    /// gloo all_reduce of 1e7 float32, 2 ranks (ms).
    public var allreduce1e7: PyTorchFigure
    /// Eager loop H=32 batch 32 to MSE < 1e-4 (s).
    public var timeToTarget: PyTorchFigure
    /// `torch.__version__` when measured in this run.
    public var torchVersion: String?

    /// Issue 5's figures (medians on the reference machine).
    public static let recorded = PyTorchFigures(
        eagerH32: PyTorchFigure(value: 52_000, unit: "samples/s", source: .recorded),
        eagerH256: PyTorchFigure(value: 54_000, unit: "samples/s", source: .recorded),
        ddp: PyTorchFigure(value: 23_300, unit: "samples/s", source: .recorded),
        allreduce1e7: PyTorchFigure(value: 31, unit: "ms", source: .recorded),
        timeToTarget: PyTorchFigure(value: 0.44, unit: "s", source: .recorded),
        torchVersion: nil)

    /// The keys `scripts/pytorch_baseline.py` writes, each a number.
    public enum Key: String, CaseIterable, Sendable {
        case eagerH32 = "eager_h32_b32_samples_per_s"
        case eagerH256 = "eager_h256_b996_samples_per_s"
        case ddp = "ddp_gloo_2x1_b64_samples_per_s"
        case allreduce1e7 = "gloo_allreduce_1e7_ms"
        case timeToTarget = "time_to_1e-4_s"
    }

    /// The recorded figures, replaced by those present in the JSON of `scripts/pytorch_baseline.py`
    /// (marked same-run). Throws when the file is not a JSON object or a present key is not a
    /// positive number.
    public static func load(json data: Data, path: String) throws(BenchError) -> PyTorchFigures {
        let dict: [String: JSONTree]
        do { dict = try JSONStyle.canonical.decode([String: JSONTree].self, from: data) } catch {
            if case .typeMismatch = error as? DecodingError {
                throw .invalidOption("--pytorch-json \(path) must hold a JSON object (see scripts/pytorch_baseline.py)")
            }
            throw .invalidOption("--pytorch-json \(path) is not JSON (\(error)); write it with scripts/pytorch_baseline.py")
        }
        var f = recorded
        func take(_ key: Key, _ figure: inout PyTorchFigure) throws(BenchError) {
            guard let raw = dict[key.rawValue], raw != .null else { return }
            guard let n = raw.number, n.isFinite, n > 0 else {
                throw .invalidOption("--pytorch-json \(path): \"\(key.rawValue)\" must be a positive number (got \(raw))")
            }
            figure = PyTorchFigure(value: n, unit: figure.unit, source: .sameRun)
        }
        try take(.eagerH32, &f.eagerH32)
        try take(.eagerH256, &f.eagerH256)
        try take(.ddp, &f.ddp)
        try take(.allreduce1e7, &f.allreduce1e7)
        try take(.timeToTarget, &f.timeToTarget)
        if case .string(let version)? = dict["torch"] { f.torchVersion = version }
        return f
    }

    /// Reads and loads `path`.
    public static func load(path: String) throws(BenchError) -> PyTorchFigures {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .invalidOption("cannot read --pytorch-json \(path): \(systemMessage(error))")
        }
        return try load(json: data, path: path)
    }

    /// Is any figure from this run?
    public var anySameRun: Bool {
        [eagerH32, eagerH256, ddp, allreduce1e7, timeToTarget].contains { $0.source == .sameRun }
    }
}
