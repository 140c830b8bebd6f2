import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN
import Training

/// Where the series comes from.
struct DataOptions: ParsableArguments {
    @Option(help: "'sincos' for the reference series, or a CSV file with a header row (default: sincos; predict: the model's).")
    var data: String?

    @Option(help: "Points of the sincos series, at most 10000000 (default: 1000; predict: the model's).")
    var points: Int?

    @Option(help: "x range of the sincos series, as FROM:TO (default: 0:100; predict: the model's).")
    var range: String?

    @Option(help: "CSV columns to use, by header name or 0-based index, comma-separated (default: all; predict: the model's).")
    var columns: String?

    /// The most points of a sincos series.
    static let maxPoints = 10_000_000

    /// The series the flags name; what they leave out comes from `base` (predict: the model's series),
    /// else the defaults. Flags that do not apply to the series are usage errors.
    func spec(base: DataSpec? = nil) throws -> DataSpec {
        let name = data ?? {
            switch base {
            case .csv(let path, _): return path
            case .sincos, nil: return "sincos"
            }
        }()
        if name == "sincos" {
            if columns != nil {
                throw ValidationError("--columns picks CSV columns; the sincos series has none (give --data FILE.csv, or leave --columns out)")
            }
            var (n, a, b) = (1000, 0.0, 100.0)
            if case .sincos(let bn, let ba, let bb)? = base { (n, a, b) = (bn, ba, bb) }
            if let p = points { n = p }
            guard (2...Self.maxPoints).contains(n) else {
                throw ValidationError("--points must be in 2...\(Self.maxPoints) (got \(n))")
            }
            if let range {
                let parts = range.split(separator: ":", omittingEmptySubsequences: false).map { trimmingWhitespace($0) }
                guard parts.count == 2, let from = Double(parts[0]), let to = Double(parts[1]), from.isFinite, to.isFinite, from < to else {
                    throw ValidationError("--range must be FROM:TO with FROM < TO, e.g. 0:100 or -10:10 (got '\(range)')")
                }
                (a, b) = (from, to)
            }
            return .sincos(points: n, from: a, to: b)
        }
        if points != nil || range != nil {
            throw ValidationError("--points and --range shape the sincos series; --data \(name) is a CSV file (leave them out)")
        }
        var cols = columns.map { $0.split(separator: ",").map { trimmingWhitespace($0) } }
        if cols == nil, data == nil, case .csv(_, let c)? = base { cols = c }
        return .csv(path: name, columns: cols)
    }
}

/// How the series is cut into windows.
struct WindowOptions: ParsableArguments {
    @Option(help: "Points per window; the target is the point after the window.")
    var seqLen: Int = 4

    @Option(help: "Fraction of the series, from its end, held out for validation.")
    var valFraction: Double = 0
}

/// The model's shape.
struct ModelOptions: ParsableArguments {
    @Option(help: "Hidden units H.")
    var hidden: Int = 32

    @Option(help: "Cell: 'seed' (the reference: output from [h_{t-1}, x_t]) or 'elman' (output from h_t).")
    var cell: Cell = .seed

    @Option(help: "Hidden activation: tanh or relu.")
    var activation: Activation = .tanh

    @Option(help: "Loss: 'last' (MSE of the last step's output) or 'all' (every step).")
    var loss: LossKind = .last
}

/// How to optimise.
struct OptimOptions: ParsableArguments {
    @Option(help: "Windows per optimizer step (global batch).")
    var batch: Int = 32

    @Option(help: "Windows per micro-batch: the unit of work and of the canonical reduction (default: min(8, batch)).")
    var microBatch: Int?

    @Option(help: "Stop after this many epochs (default 100 unless --steps is given).")
    var epochs: Int?

    @Option(help: "Stop after this many optimizer steps.")
    var steps: Int?

    @Option(help: "Learning rate.")
    var lr: Double = 1e-2

    @Option(help: "Optimizer: adam or sgd.")
    var optimizer: OptimizerKind = .adam

    @Option(help: "SGD momentum (PyTorch semantics).")
    var momentum: Double = 0

    @Option(help: "Clip the global gradient L2 norm to this (as torch.nn.utils.clip_grad_norm_).")
    var clipNorm: Double?

    @Option(help: "Stop once the MSE over all windows is below this (checked after each epoch).")
    var targetLoss: Double?

    @Option(help: "Seed for the initial weights and the epoch shuffles.")
    var seed: UInt64 = 0

    @Flag(help: "Batches in window order from window 0 every epoch (no shuffling).")
    var noShuffle = false
}

extension Cell: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}
extension LossKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}

/// Builds the run's configuration from the flags; errors name the flag.
func makeTrainingConfig(data: DataOptions, windows: WindowOptions, model: ModelOptions, optim: OptimOptions, channels: Int) throws -> TrainingConfig {
    func atLeast1(_ v: Int, _ flag: String) throws {
        guard v >= 1 else { throw ValidationError("\(flag) must be at least 1 (got \(v))") }
    }
    try atLeast1(model.hidden, "--hidden")
    try atLeast1(windows.seqLen, "--seq-len")
    try atLeast1(optim.batch, "--batch")
    if let m = optim.microBatch { try atLeast1(m, "--micro-batch") }
    if let e = optim.epochs { try atLeast1(e, "--epochs") }
    if let s = optim.steps { try atLeast1(s, "--steps") }
    let config = TrainingConfig(
        model: ModelConfig(inputSize: channels, hiddenSize: model.hidden, outputSize: channels, seqLen: windows.seqLen,
                           cell: model.cell, activation: model.activation, loss: model.loss),
        optimizer: OptimizerConfig(kind: optim.optimizer, learningRate: optim.lr, momentum: optim.momentum),
        data: try data.spec(),
        batch: optim.batch,
        microBatch: optim.microBatch ?? min(8, optim.batch),
        epochs: optim.epochs ?? (optim.steps == nil ? 100 : nil),
        steps: optim.steps,
        seed: optim.seed,
        shuffle: !optim.noShuffle,
        clipNorm: optim.clipNorm,
        targetLoss: optim.targetLoss,
        validationFraction: windows.valFraction)
    do {
        try config.validate()
    } catch {
        throw ValidationError(error.description)
    }
    return config
}
