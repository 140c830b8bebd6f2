import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN
import Series
import Training
import Support

/// Where the series comes from.
struct DataOptions: ParsableArguments {
    @Option(help: "'sincos' for the reference series, or a CSV file with a header row (default: sincos; predict: the model's).")
    var data: String?

    @Option(help: "Points of the sincos series, at most 10000000 (default: 1000; predict: the model's).")
    var points: Int?

    @Option(help: "x range of the sincos series, as FROM:TO (default: 0:100; predict: the model's).")
    var range: String?

    @Option(help: "CSV columns to use, by header name or 0-based index, comma-separated (default: all but the time column; predict: the model's).")
    var columns: String?

    @Option(help: "CSV column of time labels: the x axis of plots and the first column of exports, never a feature.")
    var timeColumn: String?

    @Option(help: "CSV column of series IDs (long format: many series, one model): windows, scaling and differencing per series; each series' rows consecutive, in time order.")
    var seriesColumn: String?

    @Option(help: "Missing CSV cells (empty, NA, null): error (names row and column), drop (the row), ffill or interpolate.")
    var missing: MissingPolicy = .error

    @Option(help: "CSV field separator: one character, or 'tab'.")
    var delimiter: String = ","

    /// The most points of a sincos series.
    static let maxPoints = 10_000_000

    /// Was the data named on the command line?
    var isGiven: Bool { data != nil }

    /// Is the data a CSV file (not the reference series)?
    var isCSV: Bool { (data ?? "sincos") != "sincos" }

    /// The series the flags name; what they leave out comes from `base` (predict: the model's series),
    /// else the defaults. Flags that do not apply to the series are usage errors.
    func spec(base: DataSpec? = nil) throws -> DataSpec {
        let name = data ?? {
            switch base {
            case .csv(let path, _, _): return path
            case .sincos, nil: return "sincos"
            }
        }()
        if name == "sincos" {
            if columns != nil {
                throw ValidationError("--columns picks CSV columns; the sincos series has none (give --data FILE.csv, or leave --columns out)")
            }
            if timeColumn != nil {
                throw ValidationError("--time-column names a CSV column; the sincos series has none (give --data FILE.csv, or leave --time-column out)")
            }
            if seriesColumn != nil {
                throw ValidationError("--series-column names a CSV column; the sincos series has none (give --data FILE.csv, or leave --series-column out)")
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
        // predict without --data: the model's file, columns and reading options
        if data == nil, case .csv(let path, let c, let o)? = base {
            let cols = columns.map { $0.split(separator: ",").map { trimmingWhitespace($0) } } ?? c
            return .csv(path: path, columns: cols, options: o)
        }
        let cols = columns.map { $0.split(separator: ",").map { trimmingWhitespace($0) } }
        let sep: UInt8
        switch delimiter {
        case "tab", "\\t", "\t": sep = 0x09
        default:
            guard delimiter.utf8.count == 1, let b = delimiter.utf8.first, b >= 0x20, b < 0x7F, b != 0x22 else {
                throw ValidationError("--delimiter must be one ASCII character other than a quote, or 'tab' (got '\(delimiter)')")
            }
            sep = b
        }
        if let t = timeColumn, t.isEmpty { throw ValidationError("--time-column must name a column (got an empty name)") }
        if let t = seriesColumn, t.isEmpty { throw ValidationError("--series-column must name a column (got an empty name)") }
        if let t = seriesColumn, t == timeColumn { throw ValidationError("--series-column and --time-column must be different columns (both '\(t)')") }
        // absolute, so predict, forecast and --resume find the file from any working directory
        let path = URL(fileURLWithPath: name).standardizedFileURL.path
        let options = CSVOptions(timeColumn: timeColumn, missing: missing, delimiter: sep, seriesColumn: seriesColumn)
        return .csv(path: path, columns: cols, options: options == CSVOptions() ? nil : options)
    }
}

/// How the series is turned into what the model sees, and how forecasts are judged.
struct SeriesOptions: ParsableArguments {
    @Option(help: "Per-channel scaling fitted on the training part: zscore, minmax (to [-1, 1]) or none (default: zscore for a CSV, none for sincos).")
    var scale: ScaleKind?

    @Option(help: "Differencing order: auto (0 or 1 by the KPSS test at 5% on the training part), 0, 1 or 2 (default: auto for a CSV, 0 for sincos).")
    var difference: String?

    @Option(help: "Seasonal difference of period S before the ordinary one (default: none).")
    var seasonalDifference: Int?

    @Option(help: "Season of the seasonal-naive baseline in metrics (default: the seasonal difference, else inferred from the time column).")
    var season: Int?

    func differenceChoice(isCSV: Bool) throws -> DifferenceChoice {
        switch difference {
        case nil: return isCSV ? .auto : .order(0)
        case "auto": return .auto
        case let text?:
            guard let d = Int(text), (0...2).contains(d) else {
                throw ValidationError("--difference must be auto, 0, 1 or 2 (got '\(text)')")
            }
            return .order(d)
        }
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

    @Option(help: "Output head: tanh (the reference; outputs in (-1, 1)) or linear (default: linear for a CSV, tanh for sincos).")
    var head: OutputHead?
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

    @Option(help: "Stop once the monitored MSE is below this (checked after each epoch): the validation MSE with --val-fraction, else the MSE over all windows.")
    var targetLoss: Double?

    @Option(help: ArgumentHelp("Stop once the monitored MSE (as --target-loss) has not improved for this many epochs (Lightning's EarlyStopping, min_delta 0).", valueName: "patience"))
    var earlyStopping: Int?

    @Option(help: "Learning-rate schedule, stepped once per epoch: constant, step (StepLR), cosine (CosineAnnealingLR) or plateau (ReduceLROnPlateau on the monitored MSE).")
    var lrSchedule: LRScheduleKind = .constant

    @Option(help: ArgumentHelp("Linear warmup over this many optimizer steps: step k < STEPS runs at (k+1)/(STEPS+1) of the rate (LinearLR).", valueName: "steps"))
    var warmup: Int = 0

    @Option(help: ArgumentHelp("step: epochs between decays (StepLR step_size; required).", valueName: "epochs"))
    var lrStepSize: Int?

    @Option(help: "step: decay factor (StepLR gamma; default 0.1).")
    var lrGamma: Double?

    @Option(help: ArgumentHelp("cosine: half period in epochs (T_max; default: --epochs).", valueName: "epochs"))
    var lrTMax: Int?

    @Option(help: "cosine: the floor (eta_min); plateau: the floor (min_lr). Default 0.")
    var lrMin: Double?

    @Option(help: ArgumentHelp("plateau: epochs without improvement before a decay (default 10).", valueName: "epochs"))
    var lrPatience: Int?

    @Option(help: "plateau: decay factor (default 0.1).")
    var lrFactor: Double?

    @Option(help: "Seed for the initial weights and the epoch shuffles.")
    var seed: UInt64 = 0

    @Flag(help: "Batches in window order from window 0 every epoch (no shuffling).")
    var noShuffle = false
}

extension Cell: ExpressibleByArgument {}
extension AggregationChoice: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}
extension LossKind: ExpressibleByArgument {}
extension OutputHead: ExpressibleByArgument {}
extension ScaleKind: ExpressibleByArgument {}
extension MissingPolicy: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension LRScheduleKind: ExpressibleByArgument {}

extension OptimOptions {
    /// The schedule the flags describe (nil: constant, no warmup); a flag of another schedule is an error.
    func schedule() throws -> LRScheduleConfig? {
        let given: [(String, Bool, Set<LRScheduleKind>)] = [
            ("--lr-step-size", lrStepSize != nil, [.step]), ("--lr-gamma", lrGamma != nil, [.step]),
            ("--lr-t-max", lrTMax != nil, [.cosine]), ("--lr-min", lrMin != nil, [.cosine, .plateau]),
            ("--lr-patience", lrPatience != nil, [.plateau]), ("--lr-factor", lrFactor != nil, [.plateau]),
        ]
        for (flag, isGiven, kinds) in given where isGiven && !kinds.contains(lrSchedule) {
            let names = kinds.map(\.rawValue).sorted().joined(separator: " or ")
            throw ValidationError("\(flag) applies to --lr-schedule \(names) (got --lr-schedule \(lrSchedule.rawValue))")
        }
        let defaults = LRScheduleConfig()
        let s = LRScheduleConfig(
            kind: lrSchedule, warmup: warmup, stepSize: lrStepSize, gamma: lrGamma ?? defaults.gamma, tMax: lrTMax,
            minLR: lrMin ?? defaults.minLR, patience: lrPatience ?? defaults.patience, factor: lrFactor ?? defaults.factor)
        return s.isConstant ? nil : s
    }
}

/// Builds the run's configuration from the flags; errors name the flag.
func makeTrainingConfig(data: DataOptions, windows: WindowOptions, model: ModelOptions, optim: OptimOptions,
                        series seriesOptions: SeriesOptions, raw: Series) throws -> TrainingConfig {
    let channels = raw.channels
    func atLeast1(_ v: Int, _ flag: String) throws {
        guard v >= 1 else { throw ValidationError("\(flag) must be at least 1 (got \(v))") }
    }
    try atLeast1(model.hidden, "--hidden")
    try atLeast1(windows.seqLen, "--seq-len")
    try atLeast1(optim.batch, "--batch")
    if let m = optim.microBatch { try atLeast1(m, "--micro-batch") }
    if let e = optim.epochs { try atLeast1(e, "--epochs") }
    if let s = optim.steps { try atLeast1(s, "--steps") }
    if let s = seriesOptions.seasonalDifference, s < 0 { throw ValidationError("--seasonal-difference must be at least 0 (got \(s))") }
    if let s = seriesOptions.season, s < 1 { throw ValidationError("--season must be at least 1 (got \(s))") }
    guard windows.valFraction.isFinite && windows.valFraction >= 0 && windows.valFraction < 1 else {
        throw ValidationError("--val-fraction must be in [0, 1) (got \(windows.valFraction))")
    }
    // Real series default to what serves them (see README, "Real series"); sincos keeps the reference.
    let isCSV = data.isCSV
    let scale = seriesOptions.scale ?? (isCSV ? .zscore : ScaleKind.none)
    let choice = try seriesOptions.differenceChoice(isCSV: isCSV)
    let seasonal = seriesOptions.seasonalDifference ?? 0
    var transform: SeriesTransform? = nil
    if scale != .none || choice != .order(0) || seasonal != 0 {
        do {
            transform = try SeriesTransform.fit(raw: raw, seqLen: windows.seqLen, validationFraction: windows.valFraction,
                                                scale: scale, difference: choice, seasonalPeriod: seasonal)
        } catch {
            throw ValidationError("\(error)")
        }
    }
    let config = TrainingConfig(
        model: ModelConfig(inputSize: channels, hiddenSize: model.hidden, outputSize: channels, seqLen: windows.seqLen,
                           cell: model.cell, activation: model.activation, loss: model.loss,
                           head: model.head ?? (isCSV ? .linear : .tanh)),
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
        validationFraction: windows.valFraction,
        schedule: try optim.schedule(),
        earlyStopping: optim.earlyStopping,
        transform: transform,
        season: seriesOptions.season ?? (seasonal > 0 ? seasonal : nil))
    do {
        try config.validate()
    } catch {
        throw ValidationError(error.description)
    }
    return config
}
