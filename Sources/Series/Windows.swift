/// The window start indices of a series, split into a training and a validation part.
///
/// Window `w` covers points `w ..< w+T` and its target is point `w+T`, so a series of `N`
/// points has `N - T` windows: `all == Array(0 ..< N-T)`.
///
/// With a validation fraction `f > 0` the *series* is cut in two: the first
/// `nTrain = N - round(f * N)` points form the training part (rounding half to even, like
/// Python's `round`), the last `N - nTrain` the held-out part. A window belongs to the part its
/// target lies in: windows lying entirely inside the training part (`w + T < nTrain`, target
/// included) are training windows, so no training window sees a held-out point; every window whose
/// target is a held-out point (`w + T >= nTrain`) is a validation window, so validation covers
/// every held-out point once (its first windows take their inputs from before the cut, as a
/// forecast from the end of the training part does). `train + validation == all`.
/// With `f == 0` every window is a training window and `validation` is empty.
///
/// Several series (a long-format file) are split each on its own, with its own `nTrain`; windows never
/// cross from one series into the next.
public struct WindowSplit: Sendable, Equatable {
    /// Start indices of the training windows, ascending.
    public let train: [Int]
    /// Start indices of the validation windows, ascending (empty when `f == 0`).
    public let validation: [Int]
    /// Every window start: `0 ..< N-T` (for several series, those of every series, ascending).
    public let all: [Int]
    /// `nTrain`: how many leading points belong to the training part (`N` when `f == 0`); for several
    /// series the sum over them.
    public let trainPoints: Int
    /// `nTrain` of each series, counted from its own first point (one entry for a single series).
    public let seriesTrainPoints: [Int]

    /// Cuts a series of `N` points into windows of `T` points and splits them.
    ///
    /// Throws when `T < 1`, when the series has no window (`N - T < 1`), when `f` is not in
    /// `[0, 1)`, or when the split leaves no training window or (with `f > 0`) no held-out point.
    public static func make(pointCount N: Int, seqLen T: Int, validationFraction f: Double)
        throws(SeriesError) -> WindowSplit
    {
        try make(ranges: [0..<max(0, N)], ids: nil, seqLen: T, validationFraction: f)
    }

    /// The windows of every series in `series` (``Series/segments``), each split as a series of its own:
    /// its last `f` held out, no window crossing into the next series. Errors name the series.
    public static func make(series: Series, seqLen T: Int, validationFraction f: Double) throws(SeriesError) -> WindowSplit {
        try make(ranges: series.pointRanges, ids: series.segments?.ids, seqLen: T, validationFraction: f)
    }

    static func make(ranges: [Range<Int>], ids: [String]?, seqLen T: Int, validationFraction f: Double)
        throws(SeriesError) -> WindowSplit
    {
        guard T >= 1 else {
            throw .invalidArgument("--seq-len must be at least 1 (got \(T))")
        }
        guard f.isFinite, f >= 0, f < 1 else {
            throw .invalidArgument(
                "--val-fraction must be at least 0 and less than 1 (got \(f))")
        }
        var train: [Int] = [], validation: [Int] = [], all: [Int] = [], nTrains: [Int] = []
        let total = ranges.reduce(0) { $0 + max(0, $1.count - T) }
        train.reserveCapacity(total)
        all.reserveCapacity(total)
        if f > 0 { validation.reserveCapacity(total / 4) }
        for (s, r) in ranges.enumerated() {
            let N = r.count, o = r.lowerBound
            let which = ids.map { "series \"\(excerpt($0[s]))\" " } ?? "series "
            let ofWhich = ids.map { " of series \"\(excerpt($0[s]))\"" } ?? ""
            guard N - T >= 1 else {
                throw .invalidArgument(
                    "\(which)of \(N) points is too short for windows of \(T) points; "
                        + "it needs at least \(T + 1) points (a window plus its target)")
            }
            let windows = N - T
            let validationPoints = Int((f * Double(N)).rounded(.toNearestOrEven))
            let nTrain = N - validationPoints
            let trainCount = max(0, min(windows, nTrain - T))
            guard trainCount >= 1 else {
                throw .invalidArgument(
                    "the training part\(ofWhich) (first \(nTrain) of \(N) points, validation fraction \(f)) "
                        + "is too short for windows of \(T) points; "
                        + "lower --val-fraction or --seq-len, or use a longer series")
            }
            if f > 0 {
                guard validationPoints >= 1 else {
                    throw .invalidArgument(
                        "the validation part\(ofWhich) (last \(validationPoints) of \(N) points, "
                            + "validation fraction \(f)) holds no point; "
                            + "raise --val-fraction or use --val-fraction 0")
                }
                validation.append(contentsOf: (o + trainCount)..<(o + windows))
            }
            train.append(contentsOf: o..<(o + trainCount))
            all.append(contentsOf: o..<(o + windows))
            nTrains.append(nTrain)
        }
        return WindowSplit(train: train, validation: validation, all: all,
                           trainPoints: nTrains.reduce(0, +), seriesTrainPoints: nTrains)
    }
}

// MARK: - Step, micro-batch and shard arithmetic

/// Optimizer steps in one epoch over `windows` training windows with batches of `batch`:
/// `ceil(windows / batch)`; the last batch may be partial (like iterating a PyTorch
/// `DataLoader` without `drop_last`).
///
/// Preconditions (the caller validates user input first): `windows >= 0`, `batch >= 1`.
public func stepsPerEpoch(windows: Int, batch: Int) -> Int {
    precondition(windows >= 0, "windows must be non-negative (got \(windows))")
    precondition(batch >= 1, "batch must be at least 1 (got \(batch))")
    return windows / batch + (windows % batch == 0 ? 0 : 1)
}

/// The positions in the epoch order that step `step` of an epoch trains on:
/// `step*batch ..< min((step+1)*batch, windows)`.
///
/// Preconditions: `batch >= 1`, `0 <= step < stepsPerEpoch(windows:batch:)`.
public func batchRange(step: Int, windows: Int, batch: Int) -> Range<Int> {
    let steps = stepsPerEpoch(windows: windows, batch: batch)
    precondition(step >= 0 && step < steps, "step \(step) out of range 0..<\(steps)")
    let start = step * batch
    return start..<min(start + batch, windows)
}

/// Cuts `count` items into consecutive runs of `size`; the last run may be shorter.
/// `count == 0` gives no runs.
///
/// Preconditions: `count >= 0`, `size >= 1`.
public func microBatches(count: Int, size: Int) -> [Range<Int>] {
    precondition(count >= 0, "count must be non-negative (got \(count))")
    precondition(size >= 1, "micro-batch size must be at least 1 (got \(size))")
    return stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
}

/// Splits `items` into `workers` contiguous ranges, one per rank, in rank order.
///
/// Sizes differ by at most one and earlier ranks get the extra items; when there are more
/// workers than items the later ranks get empty ranges (positioned at `items`).
///
/// Preconditions: `items >= 0`, `workers >= 1`.
public func shard(items: Int, workers: Int) -> [Range<Int>] {
    precondition(items >= 0, "items must be non-negative (got \(items))")
    precondition(workers >= 1, "workers must be at least 1 (got \(workers))")
    let base = items / workers
    let extra = items % workers
    return (0..<workers).map { r in
        let start = r * base + min(r, extra)
        return start..<(start + base + (r < extra ? 1 : 0))
    }
}
