import RNN
import Series
import Support

/// Where the series comes from.
public enum DataSpec: Sendable, Codable, Equatable, CustomStringConvertible {
    /// `[sin x, cos x]` for `x = linspace(from, to, points)`.
    case sincos(points: Int, from: Double, to: Double)
    /// A CSV file with a header row (`path` absolute, so the run can be reloaded from any folder);
    /// `columns` nil means every column but the time column.
    case csv(path: String, columns: [String]?, options: CSVOptions? = nil)

    public var description: String {
        switch self {
        case .sincos(let n, let a, let b): return "sincos, \(n) points, x from \(cFormat("%g", a)) to \(cFormat("%g", b))"
        case .csv(let path, let cols, _): return cols.map { "\(path), columns \($0.joined(separator: ","))" } ?? path
        }
    }

    /// The name of the series in exports: `sincos`, or the CSV file's name without its extension.
    public var seriesName: String {
        switch self {
        case .sincos: return "sincos"
        case .csv(let path, _, _):
            let file = path.split(separator: "/").last.map(String.init) ?? path
            if let dot = file.lastIndex(of: "."), dot > file.startIndex { return String(file[..<dot]) }
            return file
        }
    }

    /// Loads the raw series this spec names (before any ``SeriesTransform``).
    public func load() throws(SeriesError) -> Series {
        switch self {
        case .sincos(let n, let a, let b): return try Series.sincos(points: n, from: a, to: b)
        case .csv(let path, let cols, let options):
            return try Series.csv(path: path, columns: cols, options: options ?? CSVOptions())
        }
    }
}

/// Everything that defines a training run (and so its result, bit for bit).
public struct TrainingConfig: Sendable, Codable, Equatable {
    public var model: ModelConfig
    public var optimizer: OptimizerConfig
    public var data: DataSpec
    /// Global batch: windows per optimizer step.
    public var batch: Int
    /// Windows per micro-batch, the leaf of the canonical reduction tree. Fixed for the run.
    public var microBatch: Int
    /// Stop after this many epochs (nil: no epoch limit).
    public var epochs: Int?
    /// Stop after this many optimizer steps (nil: no step limit).
    public var steps: Int?
    public var seed: UInt64
    /// false: batches in window order from window 0 every epoch.
    public var shuffle: Bool
    /// Global L2 norm bound, as `torch.nn.utils.clip_grad_norm_` (nil: no clipping).
    public var clipNorm: Double?
    /// Stop once the monitored loss (``RunState/monitored(loss:valLoss:)``: the validation MSE when there
    /// is a validation part, else the MSE over the training windows) is below this, checked at the end of
    /// each epoch.
    public var targetLoss: Double?
    /// Fraction of the series, from its end, held out for validation.
    public var validationFraction: Double
    /// The learning-rate schedule (nil: constant, no warmup).
    public var schedule: LRScheduleConfig?
    /// Stop once the monitored loss has not improved for this many epochs (nil: never).
    public var earlyStopping: Int?
    /// Differencing and scaling fitted on the training part: the model trains on `transform.apply(raw)`
    /// (nil: on the raw series, as the reference task does).
    public var transform: SeriesTransform?
    /// The season of the seasonal-naive baseline in metrics (nil: inferred from the time column, or none).
    /// Evaluation only; it does not change training.
    public var season: Int?

    public init(
        model: ModelConfig, optimizer: OptimizerConfig, data: DataSpec, batch: Int, microBatch: Int,
        epochs: Int?, steps: Int?, seed: UInt64, shuffle: Bool, clipNorm: Double?, targetLoss: Double?,
        validationFraction: Double, schedule: LRScheduleConfig? = nil, earlyStopping: Int? = nil,
        transform: SeriesTransform? = nil, season: Int? = nil
    ) {
        self.model = model
        self.optimizer = optimizer
        self.data = data
        self.batch = batch
        self.microBatch = microBatch
        self.epochs = epochs
        self.steps = steps
        self.seed = seed
        self.shuffle = shuffle
        self.clipNorm = clipNorm
        self.targetLoss = targetLoss
        self.validationFraction = validationFraction
        self.schedule = schedule
        self.earlyStopping = earlyStopping
        self.transform = transform
        self.season = season
    }

    /// The raw series (``DataSpec/load()``) and the one the model trains on (`transform` applied).
    public func loadSeries() throws(SeriesError) -> (raw: Series, model: Series) {
        let raw = try data.load()
        guard let transform else { return (raw, raw) }
        guard transform.offset.count == raw.channels * raw.seriesCount else {
            throw .invalidArgument(
                "the model's scaling has \(transform.offset.count) values (channels times series) but \(data) has "
                    + "\(raw.channels) channel\(raw.channels == 1 ? "" : "s") in \(raw.seriesCount) series; "
                    + "give the data the model was trained on")
        }
        return (raw, try transform.apply(raw))
    }

    /// Checks every value a user can set; the message names the flag.
    public func validate() throws(TrainingError) {
        do { try model.validate() } catch { throw .invalidConfig(error.description) }
        func positive(_ v: Int, _ flag: String) throws(TrainingError) {
            guard v >= 1 else { throw .invalidConfig("\(flag) must be at least 1 (got \(v))") }
        }
        try positive(batch, "--batch")
        try positive(microBatch, "--micro-batch")
        if let e = epochs { try positive(e, "--epochs") }
        if let s = steps { try positive(s, "--steps") }
        guard optimizer.learningRate.isFinite && optimizer.learningRate > 0 else {
            throw .invalidConfig("--lr must be a positive number (got \(optimizer.learningRate))")
        }
        guard optimizer.momentum.isFinite && optimizer.momentum >= 0 && optimizer.momentum < 1 else {
            throw .invalidConfig("--momentum must be in [0, 1) (got \(optimizer.momentum))")
        }
        if let c = clipNorm, !(c.isFinite && c > 0) { throw .invalidConfig("--clip-norm must be a positive number (got \(c))") }
        if let t = targetLoss, !(t.isFinite && t > 0) { throw .invalidConfig("--target-loss must be a positive number (got \(t))") }
        guard validationFraction.isFinite && validationFraction >= 0 && validationFraction < 1 else {
            throw .invalidConfig("--val-fraction must be in [0, 1) (got \(validationFraction))")
        }
        if let p = schedule?.problem() { throw .invalidConfig(p) }
        if let e = earlyStopping, e < 1 { throw .invalidConfig("--early-stopping must be at least 1 epoch (got \(e))") }
        guard epochs != nil || steps != nil || targetLoss != nil else {
            throw .invalidConfig("give --epochs, --steps or --target-loss, or the run never ends")
        }
    }
}

/// What can go wrong in a run, with what to do about it.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case data(String)
    case model(String)
    case output(String)
    case diverged(String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid configuration: \(m)"
        case .data(let m): return "data: \(m)"
        case .model(let m): return "model: \(m)"
        case .output(let m): return "output: \(m)"
        case .diverged(let m): return "training diverged: \(m)"
        }
    }
}
