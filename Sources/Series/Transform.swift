#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How each channel is scaled before training (fitted on the training part only).
public enum ScaleKind: String, Sendable, Codable, CaseIterable {
    /// `(x - mean) / std` (population standard deviation; a constant channel keeps std 1).
    case zscore
    /// Maps the training part's `[min, max]` onto `[-1, 1]` (the range of a tanh head).
    case minmax
    /// Values as they are.
    case none
}

/// The order of differencing: a number, or chosen on the training part by the KPSS test.
public enum DifferenceChoice: Sendable, Equatable, Codable, CustomStringConvertible {
    /// 1 when the KPSS level-stationarity test at 5 % rejects on the training part, else 0 (pmdarima's
    /// `ndiffs(x, test="kpss", alpha=0.05, max_d=1)`). A second difference is only ever asked for
    /// (`--difference 2`): KPSS rejects a random walk's first differences in about one case in twenty,
    /// and a second difference turns its persistence forecast into one the model cannot start from.
    case auto
    case order(Int)

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .order(let d): return String(d)
        }
    }
}

/// What the model is trained on, as a function of the raw series: seasonal differencing of period `S`
/// (`D` times), then ordinary differencing (`d` times), then per-channel scaling `(z - offset) / divisor`.
///
/// Differencing is one linear filter, `z_i = sum_k coefficients[k] * y_{i-k}` with `coefficients[0] = 1`
/// (the polynomial `(1 - B)^d (1 - B^S)^D`), so the model series has `lag = d + D*S` points fewer than the
/// raw one, and model point `j` belongs to raw point `j + lag`. Inverting one prediction needs only the true
/// (or predicted) raw values before it: `y_i = unscale(z_i) - sum_{k >= 1} coefficients[k] * y_{i-k}`.
///
/// Fitted once, before training, on the training part; stored with the model (``TrainingConfig``'s
/// `transform`, inside `training_config` of the model file's metadata), so prediction, forecasting and
/// resumption apply exactly the same numbers.
public struct SeriesTransform: Sendable, Codable, Equatable {
    /// `d`: ordinary differences (0...2).
    public var difference: Int
    /// How `d` was chosen: `"auto"` (KPSS) or `"flag"`.
    public var differenceChosenBy: String
    /// `S`: period of the seasonal difference (0: none).
    public var seasonalPeriod: Int
    public var scale: ScaleKind
    /// Per channel: subtracted before dividing by `divisor` (the training part's mean, or mid-range).
    public var offset: [Double]
    /// Per channel: the training part's standard deviation, or half-range (1 where it is 0 or `scale` is none).
    public var divisor: [Double]
    /// Per channel, with `auto`: the KPSS statistic of each order tried, `[d=0, d=1, ...]`.
    public var kpss: [[Double]]?

    public init(difference: Int, differenceChosenBy: String, seasonalPeriod: Int, scale: ScaleKind,
                offset: [Double], divisor: [Double], kpss: [[Double]]? = nil) {
        self.difference = difference
        self.differenceChosenBy = differenceChosenBy
        self.seasonalPeriod = seasonalPeriod
        self.scale = scale
        self.offset = offset
        self.divisor = divisor
        self.kpss = kpss
    }

    /// Points the model series has fewer than the raw one: `d + S`.
    public var lag: Int { difference + seasonalPeriod }

    /// `(1 - B)^d (1 - B^S)`: `coefficients[k]` multiplies `y_{i-k}`; `coefficients[0] == 1`.
    public var coefficients: [Double] {
        var c: [Double] = [1]
        func times(_ lagK: Int) {  // c *= (1 - B^lagK)
            var out = c + [Double](repeating: 0, count: lagK)
            for k in c.indices { out[k + lagK] -= c[k] }
            c = out
        }
        if seasonalPeriod > 0 { times(seasonalPeriod) }
        for _ in 0..<difference { times(1) }
        return c
    }

    // MARK: - Fitting

    /// Chooses the differencing order and fits the scaling on the training part of `raw`.
    ///
    /// The training part is what ``WindowSplit`` calls it on the model series (whose length depends on the
    /// differencing): `auto` runs KPSS on the raw series' first `N - round(f*N)` points (after the seasonal
    /// difference), which never reach past the model series' training part.
    ///
    /// Several series (``Series/segments``) are differenced each on its own and scaled each with its own
    /// training part's statistics (`offset` and `divisor` then hold `seriesCount * C` values, series by
    /// series). They share one differencing order, since one model learns them all: with `auto`, the order
    /// most series need (KPSS on each; a tie goes to the higher order).
    ///
    /// Throws when the series is too short for the differencing and a window, naming the flag to change.
    public static func fit(raw: Series, seqLen: Int, validationFraction f: Double, scale: ScaleKind,
                           difference: DifferenceChoice, seasonalPeriod: Int) throws(SeriesError) -> SeriesTransform {
        let C = raw.channels
        let parts = raw.pointRanges
        let ids = raw.segments?.ids
        func which(_ s: Int) -> String { ids.map { "series \"\($0[s])\": " } ?? "" }
        let shortest = parts.map(\.count).min() ?? raw.count
        guard seasonalPeriod >= 0, seasonalPeriod < shortest else {
            throw .invalidArgument("--seasonal-difference must be in 0..<\(shortest), the number of points\(ids == nil ? "" : " of the shortest series") (got \(seasonalPeriod))")
        }
        var d: Int
        var kpss: [[Double]]? = nil
        switch difference {
        case .order(let k):
            guard (0...2).contains(k) else { throw .invalidArgument("--difference must be auto, 0, 1 or 2 (got \(k))") }
            d = k
        case .auto:
            var votes = [0, 0]
            var stats: [[Double]] = []
            for r in parts {
                let N = r.count
                let rawTrain = N - Int((f * Double(N)).rounded(.toNearestOrEven))
                var order = 0
                for c in 0..<C {
                    var x = (0..<rawTrain).map { Double(raw.values[(r.lowerBound + $0) * C + c]) }
                    if seasonalPeriod > 0 { x = differenced(x, lag: seasonalPeriod) }
                    let (o, st) = kpssOrder(x, maxOrder: 1)
                    if parts.count == 1 { stats.append(st) }
                    order = max(order, o)
                }
                votes[order] += 1
            }
            d = votes.indices.max { votes[$0] < votes[$1] || (votes[$0] == votes[$1] && $0 < $1) } ?? 0
            if parts.count == 1 { kpss = stats }
        }
        let S = parts.count
        var t = SeriesTransform(difference: d, differenceChosenBy: difference == .auto ? "auto" : "flag",
                                seasonalPeriod: seasonalPeriod, scale: scale,
                                offset: [Double](repeating: 0, count: S * C), divisor: [Double](repeating: 1, count: S * C), kpss: kpss)
        for (s, r) in parts.enumerated() {
            let M = r.count - t.lag
            guard M - seqLen >= 1 else {
                throw .invalidArgument(
                    "\(which(s))after differencing (d = \(d), seasonal \(seasonalPeriod)) the series has \(M) points, too few for windows of "
                        + "\(seqLen); lower --difference, --seasonal-difference or --seq-len")
            }
            let trainPoints: Int
            do {
                trainPoints = try WindowSplit.make(pointCount: M, seqLen: seqLen, validationFraction: f).trainPoints
            } catch {
                throw .invalidArgument(which(s) + error.description)
            }
            let z = t.filtered(raw.values[(r.lowerBound * C)..<(r.upperBound * C)], channels: C)  // (M, C), unscaled
            for c in 0..<C {
                var lo = Double.infinity, hi = -Double.infinity, sum = 0.0
                for j in 0..<trainPoints {
                    let v = z[j * C + c]
                    lo = min(lo, v)
                    hi = max(hi, v)
                    sum += v
                }
                switch scale {
                case .none:
                    break
                case .zscore:
                    let mean = sum / Double(trainPoints)
                    var ss = 0.0
                    for j in 0..<trainPoints {
                        let e = z[j * C + c] - mean
                        ss += e * e
                    }
                    let sd = (ss / Double(trainPoints)).squareRoot()
                    t.offset[s * C + c] = mean
                    t.divisor[s * C + c] = sd > 0 && sd.isFinite ? sd : 1
                case .minmax:
                    let half = (hi - lo) / 2
                    t.offset[s * C + c] = (hi + lo) / 2
                    t.divisor[s * C + c] = half > 0 && half.isFinite ? half : 1
                }
            }
        }
        return t
    }

    /// The transform of series `s` of a multi-series fit (its `offset` and `divisor`); `self` for one series.
    public func part(_ s: Int, channels C: Int) -> SeriesTransform {
        guard offset.count > C else { return self }
        return SeriesTransform(difference: difference, differenceChosenBy: differenceChosenBy, seasonalPeriod: seasonalPeriod,
                               scale: scale, offset: Array(offset[(s * C)..<((s + 1) * C)]),
                               divisor: Array(divisor[(s * C)..<((s + 1) * C)]))
    }

    // MARK: - Applying and inverting

    /// The differenced, unscaled values `(N - lag, C)` in Double of one series' flat `(N, C)` values.
    func filtered(_ raw: ArraySlice<Float>, channels C: Int) -> [Double] {
        let coef = coefficients, L = lag
        let base = raw.startIndex
        let M = raw.count / C - L
        var z = [Double](repeating: 0, count: max(0, M) * C)
        for j in 0..<max(0, M) {
            let i = j + L
            for c in 0..<C {
                var s = 0.0
                for k in coef.indices where coef[k] != 0 { s += coef[k] * Double(raw[base + (i - k) * C + c]) }
                z[j * C + c] = s
            }
        }
        return z
    }

    /// The series the model trains on: `(N - lag, C)`, differenced and scaled, rounded to Float.
    /// Times (if any) are those of the raw points `lag...`. Several series are transformed each on its own
    /// (each loses its first `lag` points).
    ///
    /// Throws if the raw series is too short for the differencing, or a scaled value is not finite.
    public func apply(_ raw: Series) throws(SeriesError) -> Series {
        let C = raw.channels
        let parts = raw.pointRanges
        guard offset.count == parts.count * C, divisor.count == offset.count else {
            throw .invalidArgument("the scaling holds \(offset.count / max(1, C)) series of \(C) channels but the data has \(parts.count) series; give the data the model was trained on")
        }
        var values = [Float]()
        values.reserveCapacity(max(0, raw.count - parts.count * lag) * C)
        var starts = [0]
        var time: [String]? = raw.time == nil ? nil : []
        for (s, r) in parts.enumerated() {
            guard r.count - lag >= Series.minimumPoints else {
                let name = raw.segments.map { "series \"\($0.ids[s])\" has" } ?? "the series has"
                throw .invalidArgument("\(name) \(r.count) points, too few for differencing that drops \(lag)")
            }
            let z = filtered(raw.values[(r.lowerBound * C)..<(r.upperBound * C)], channels: C)
            for j in 0..<(z.count / C) {
                for c in 0..<C { values.append(Float((z[j * C + c] - offset[s * C + c]) / divisor[s * C + c])) }
            }
            starts.append(values.count / C)
            if let t = raw.time { time?.append(contentsOf: t[(r.lowerBound + lag)..<r.upperBound]) }
        }
        let segments = raw.segments.map { SeriesSegments(ids: $0.ids, starts: starts) }
        return try Series(names: raw.names, values: values, time: time, segments: segments)
    }

    /// A model-space value of channel `c` in the differenced series' own units.
    @inline(__always) public func unscale(_ v: Float, channel c: Int) -> Double {
        Double(v) * divisor[c] + offset[c]
    }

    /// The raw value at point `i` from its model-space prediction `z` and the raw values before it
    /// (`past(k)` is `y_{i-k}` for `k >= 1`).
    @inline(__always) public func invert(_ z: Float, channel c: Int, past: (Int) -> Double) -> Double {
        let coef = coefficients
        var y = unscale(z, channel: c)
        for k in 1..<coef.count where coef[k] != 0 { y -= coef[k] * past(k) }
        return y
    }
}

/// `x_i - x_{i-lag}` for `i >= lag`.
func differenced(_ x: [Double], lag: Int) -> [Double] {
    guard x.count > lag else { return [] }
    return (lag..<x.count).map { x[$0] - x[$0 - lag] }
}

// MARK: - KPSS

/// The KPSS statistic for level stationarity with `lags` Bartlett-weighted autocovariances
/// (Kwiatkowski et al. 1992; statsmodels' `kpss(x, regression="c", nlags=lags)`):
/// `e = x - mean(x)`, `S_t = cumsum(e)`, `eta = sum S_t^2 / n^2`,
/// `s2 = (sum e^2 + 2 sum_{i=1..lags} (1 - i/(lags+1)) sum_j e_j e_{j-i}) / n`, statistic `eta / s2`.
public func kpssStatistic(_ x: [Double], lags: Int) -> Double {
    let n = x.count
    guard n >= 2 else { return 0 }
    let mean = x.reduce(0, +) / Double(n)
    let e = x.map { $0 - mean }
    var s = 0.0, eta = 0.0
    for v in e {
        s += v
        eta += s * s
    }
    eta /= Double(n) * Double(n)
    var s2 = e.reduce(0) { $0 + $1 * $1 }
    for i in 1...max(1, lags) where i <= lags && i < n {
        var acc = 0.0
        for j in i..<n { acc += e[j] * e[j - i] }
        s2 += 2 * (1 - Double(i) / Double(lags + 1)) * acc
    }
    s2 /= Double(n)
    return s2 > 0 ? eta / s2 : 0
}

/// pmdarima's short lag rule: `trunc(4 (n/100)^(1/4))`.
public func kpssLags(_ n: Int) -> Int { Int((4 * pow(Double(n) / 100, 0.25)).rounded(.towardZero)) }

/// The 5 % critical value of the KPSS level test (Kwiatkowski et al. 1992, table 1).
public let kpssCritical5 = 0.463

/// pmdarima's `ndiffs(x, alpha=0.05, test="kpss", max_d=maxOrder)`: difference while KPSS rejects level
/// stationarity at 5 % (or the series becomes constant). Returns the order and the statistic of each order tried.
public func kpssOrder(_ x: [Double], maxOrder: Int) -> (order: Int, statistics: [Double]) {
    var x = x, d = 0, stats: [Double] = []
    func isConstant(_ v: [Double]) -> Bool { v.allSatisfy { $0 == v.first } }
    if isConstant(x) { return (0, [0]) }
    var stat = kpssStatistic(x, lags: kpssLags(x.count))
    stats.append(stat)
    while stat > kpssCritical5 && d < maxOrder {
        d += 1
        x = differenced(x, lag: 1)
        if x.count < 3 || isConstant(x) { break }
        stat = kpssStatistic(x, lags: kpssLags(x.count))
        stats.append(stat)
    }
    return (d, stats)
}
