#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Plot
import RNN
import Series
import Support

/// A trained model's predictions over a series in the series' own units: the model's ``Forecast`` (in the
/// space it trained in) with the scaling and differencing of `config.transform` undone.
///
/// Raw point `i` is model point `i - lag`. A one-step prediction of point `i` is inverted with the true raw
/// values before it; the rollout with its own earlier predictions from where it starts (true values before).
public struct SeriesPrediction: Sendable {
    public let raw: Series
    /// Points the transform drops at the start (`d + S`; 0 without a transform).
    public let lag: Int
    public let seqLen: Int
    /// `(N, C)`: the one-step prediction of each raw point, NaN where there is none (the first `T + lag`).
    public var oneStep: [Double]
    /// Raw index of the rollout's first predicted point.
    public var rolloutStart: Int
    /// `(steps, C)`: the rollout from `rolloutStart` on; it may run past the end of the series (a forecast).
    public var rollout: [Double]
    /// Raw indices of the targets of the training and validation windows.
    public var trainTargets: [Int]
    public var validationTargets: [Int]
    /// Raw points of the training part (`trainPoints` of the model series plus `lag`).
    public var trainPoints: Int

    /// - Parameters:
    ///   - model: `config.transform` applied to `raw` (``TrainingConfig/loadSeries()``).
    ///   - rolloutFrom: the model-series window the rollout starts from (`rolloutFrom ..< rolloutFrom + T`).
    public static func make(config: TrainingConfig, parameters: [Float], raw: Series, model: Series,
                            rolloutFrom: Int, steps: Int) throws(SeriesError) -> SeriesPrediction {
        let T = config.model.seqLen, C = raw.channels, N = raw.count
        let identity = SeriesTransform(difference: 0, differenceChosenBy: "flag", seasonalPeriod: 0, scale: .none,
                                       offset: [Double](repeating: 0, count: C), divisor: [Double](repeating: 1, count: C))
        let tr = config.transform ?? identity
        let L = tr.lag
        let split = try WindowSplit.make(pointCount: model.count, seqLen: T, validationFraction: config.validationFraction)
        let f = Forecast.make(config: config.model, parameters: parameters, series: model, rolloutFrom: rolloutFrom, steps: steps)
        func y(_ i: Int, _ c: Int) -> Double { Double(raw.values[i * C + c]) }

        var one = [Double](repeating: .nan, count: N * C)
        for (k, j) in f.oneStepIndex.enumerated() {
            let i = j + L
            for c in 0..<C { one[i * C + c] = tr.invert(f.oneStep[k * C + c], channel: c) { y(i - $0, c) } }
        }
        let start = f.rolloutStart + L
        var roll = [Double](repeating: .nan, count: steps * C)
        for k in 0..<steps {
            let i = start + k
            for c in 0..<C {
                roll[k * C + c] = tr.invert(f.rollout[k * C + c], channel: c) { back in
                    let p = i - back
                    return p >= start ? roll[(p - start) * C + c] : y(p, c)
                }
            }
        }
        return SeriesPrediction(
            raw: raw, lag: L, seqLen: T, oneStep: one, rolloutStart: start, rollout: roll,
            trainTargets: split.train.map { $0 + T + L }, validationTargets: split.validation.map { $0 + T + L },
            trainPoints: split.trainPoints + L)
    }

    // MARK: - Metrics

    /// The season of the seasonal-naive baseline: `config.season`, else the seasonal difference, else what the
    /// time column implies (months 12, quarters 4, weeks 52, days 7), else none.
    public static func season(config: TrainingConfig, raw: Series) -> Int? {
        if let s = config.season { return s }
        if let t = config.transform, t.seasonalPeriod > 1 { return t.seasonalPeriod }
        return raw.time.flatMap { TimeAxis($0).season }
    }

    /// RMSE, MAE, sMAPE and MASE of the one-step predictions on each split, of the persistence
    /// (`y_i = y_{i-1}`) and seasonal-naive (`y_i = y_{i-S}`) forecasts on the same points, and the model's
    /// skill `1 - RMSE_model / RMSE_baseline` against each.
    public func evaluation(season: Int?) -> Evaluation {
        let C = raw.channels
        let S = season.flatMap { $0 > 1 ? $0 : nil }
        // MASE's scale: the in-sample MAE of the naive forecast (seasonal when there is a season) on the training part
        let m = S ?? 1
        var scale = [Double](repeating: 0, count: C)
        for c in 0..<C {
            var sum = 0.0, n = 0
            var i = m
            while i < trainPoints {
                sum += abs(Double(raw.values[i * C + c]) - Double(raw.values[(i - m) * C + c]))
                n += 1
                i += 1
            }
            scale[c] = n > 0 ? sum / Double(n) : .nan
        }
        func split(_ targets: [Int]) -> SplitMetrics? {
            guard !targets.isEmpty else { return nil }
            let model = Metrics(targets: targets, raw: raw, scale: scale) { i, c in oneStep[i * C + c] }
            let persistence = Metrics(targets: targets, raw: raw, scale: scale) { i, c in Double(raw.values[(i - 1) * C + c]) }
            var seasonal: Metrics? = nil
            if let S {
                let usable = targets.filter { $0 >= S }
                if !usable.isEmpty {
                    seasonal = Metrics(targets: usable, raw: raw, scale: scale) { i, c in Double(raw.values[(i - S) * C + c]) }
                }
            }
            func skill(_ base: Metrics) -> Double? {
                let k = 1 - model.rmse / base.rmse
                return k.isFinite ? k : nil
            }
            return SplitMetrics(model: model, persistence: persistence, seasonalNaive: seasonal,
                                skillVsPersistence: skill(persistence), skillVsSeasonalNaive: seasonal.flatMap(skill))
        }
        return Evaluation(season: S, train: split(trainTargets), validation: split(validationTargets))
    }

    // MARK: - Export

    /// `series,point,time,channel,actual,one_step,rollout`: one row per point and channel of the series and of
    /// the rollout past its end, in the series' own units (empty where a value does not exist).
    public func csv(seriesName: String) -> String {
        SeriesPrediction.csvHeader + csvRows(seriesName: seriesName)
    }

    /// The header line of ``csv(seriesName:)``.
    public static let csvHeader = "series,point,time,channel,actual,one_step,rollout\n"

    /// The rows of ``csv(seriesName:)`` without the header.
    public func csvRows(seriesName: String) -> String {
        let C = raw.channels, N = raw.count
        let axis = raw.time.map { TimeAxis($0) }
        let end = max(N, rolloutStart + rollout.count / C)
        var out = ""
        out.reserveCapacity(end * C * 48)
        for i in 0..<end {
            let time: String
            if let t = raw.time { time = i < N ? t[i] : (axis?.label(after: i - N + 1) ?? "") } else { time = "" }
            for c in 0..<C {
                let actual = i < N ? "\(raw.values[i * C + c])" : ""  // the file's value (as a Float, its shortest form)
                let one = i < N ? number(oneStep[i * C + c]) : ""
                let k = i - rolloutStart
                let roll = k >= 0 && k < rollout.count / C ? number(rollout[k * C + c]) : ""
                out += "\(csvField(seriesName)),\(i),\(csvField(time)),\(csvField(raw.names[c])),\(actual),\(one),\(roll)\n"
            }
        }
        return out
    }

    /// Two panels per channel: the one-step predictions over the true series, and the rollout from its
    /// start marker, against the time column when it has numbers or dates (else the point index).
    public func charts(evaluation: Evaluation) -> [Chart] {
        let C = raw.channels, N = raw.count
        let x = raw.time.flatMap { TimeAxis($0).xValues } ?? (0..<N).map(Double.init)
        let step = N >= 2 ? x[N - 1] - x[N - 2] : 1
        func xAt(_ i: Int) -> Double { i < N ? x[i] : x[N - 1] + Double(i - N + 1) * step }
        let xLabel = raw.time == nil ? "point" : "time"
        let rmse = evaluation.validation?.model.rmse ?? evaluation.train?.model.rmse
        var out: [Chart] = []
        for c in 0..<C {
            let name = raw.names[c]
            let truth = LineSeries(name: "true \(name)", xs: x, ys: raw.channel(c).map(Double.init), color: "#444444", width: 2.5)
            let idx = (0..<N).filter { !oneStep[$0 * C + c].isNaN }
            let pred = LineSeries(name: "one-step prediction", xs: idx.map(xAt), ys: idx.map { oneStep[$0 * C + c] }, color: "#D55E00")
            let title = rmse.map { "\(name): one-step predictions (RMSE \(fmt($0)))" } ?? "\(name): one-step predictions"
            out.append(Chart(title: title, xLabel: xLabel, yLabel: name, series: [truth, pred]))
            let steps = rollout.count / C
            let roll = LineSeries(name: "free-running rollout", xs: (0..<steps).map { xAt(rolloutStart + $0) },
                                  ys: (0..<steps).map { rollout[$0 * C + c] }, color: "#0072B2", dashed: true, width: 2)
            out.append(Chart(title: "\(name): free-running rollout", xLabel: xLabel, yLabel: name, series: [truth, roll],
                             verticalMarkers: [(x: xAt(rolloutStart), label: "rollout starts")]))
        }
        return out
    }
}

/// The predictions of every series of the data, one ``SeriesPrediction`` each (one in all for a single series),
/// with metrics per series and overall.
///
/// Each series is predicted on its own (windows never cross series) and inverted with its own scaling.
public struct SeriesPredictions: Sendable {
    /// The series' IDs (`--series-column`), or the data's name for a single series.
    public let names: [String]
    public let parts: [SeriesPrediction]
    /// Is this a long-format file (several series, each with its ID)?
    public let isMulti: Bool

    /// - Parameters:
    ///   - rolloutFrom: where each series' rollout starts.
    ///   - steps: points each rollout predicts; nil: to the end of each series.
    public static func make(config: TrainingConfig, parameters: [Float], raw: Series, model: Series,
                            rolloutFrom: RolloutStart, steps: Int?) throws(SeriesError) -> SeriesPredictions {
        let T = config.model.seqLen, C = raw.channels
        var parts: [SeriesPrediction] = []
        parts.reserveCapacity(raw.seriesCount)
        for s in 0..<raw.seriesCount {
            let r = raw.part(s), m = model.part(s)
            var cfg = config
            cfg.transform = config.transform?.part(s, channels: C)
            let M = m.count
            let which = raw.segments.map { " for series \"\($0.ids[s])\" (\(M) points as the model sees it)" } ?? ""
            var from = 0
            switch rolloutFrom {
            case .point(let f):
                from = f
            case .end:
                from = M - T
            case .validation:
                if config.validationFraction > 0,
                   let split = try? WindowSplit.make(pointCount: M, seqLen: T, validationFraction: config.validationFraction) {
                    from = max(0, min(M - T, split.trainPoints))
                }
            }
            guard from >= 0 && from + T <= M else {
                throw .invalidArgument("--rollout-from must be in 0...\(M - T)\(which) (got \(from))")
            }
            let n = steps ?? (M - from - T)
            parts.append(try SeriesPrediction.make(config: cfg, parameters: parameters, raw: r, model: m, rolloutFrom: from, steps: n))
        }
        return SeriesPredictions(names: raw.segments?.ids ?? [config.data.seriesName], parts: parts, isMulti: raw.segments != nil)
    }

    /// Per-series metrics (``SeriesPrediction/evaluation(season:)``, each with its own season: `season`, else as
    /// ``SeriesPrediction/season(config:raw:)`` says for it) and, for several series, the overall metrics pooled
    /// over every series' targets (``Metrics/pooled(_:)``) with the per-series ones in `perSeries`.
    public func evaluation(config: TrainingConfig, season: Int?) -> Evaluation {
        let each = parts.map { $0.evaluation(season: season ?? SeriesPrediction.season(config: config, raw: $0.raw)) }
        guard isMulti else { return each[0] }
        func pool(_ splits: [SplitMetrics?]) -> SplitMetrics? {
            let present = splits.compactMap { $0 }
            guard !present.isEmpty else { return nil }
            let model = Metrics.pooled(present.map(\.model)), persistence = Metrics.pooled(present.map(\.persistence))
            let sn = present.compactMap(\.seasonalNaive)
            let seasonal = sn.isEmpty ? nil : Metrics.pooled(sn)
            func skill(_ b: Metrics) -> Double? {
                let k = 1 - model.rmse / b.rmse
                return k.isFinite ? k : nil
            }
            return SplitMetrics(model: model, persistence: persistence, seasonalNaive: seasonal,
                                skillVsPersistence: skill(persistence), skillVsSeasonalNaive: seasonal.flatMap(skill))
        }
        let seasons = Set(each.map(\.season))
        var e = Evaluation(season: seasons.count == 1 ? each[0].season : nil,
                           train: pool(each.map(\.train)), validation: pool(each.map(\.validation)))
        e.perSeries = zip(names, each).map { SeriesEvaluation(series: $0, season: $1.season, train: $1.train, validation: $1.validation) }
        return e
    }

    /// `series,point,time,channel,actual,one_step,rollout` for every series, one after another.
    public func csv() -> String {
        var out = SeriesPrediction.csvHeader
        for (name, p) in zip(names, parts) { out += p.csvRows(seriesName: name) }
        return out
    }

    /// `series,point,time,channel,forecast`: each series' rollout (started from its last window) past its end.
    public func forecastCSV() -> String {
        var out = "series,point,time,channel,forecast\n"
        for (name, p) in zip(names, parts) {
            let C = p.raw.channels, N = p.raw.count
            let axis = p.raw.time.map { TimeAxis($0) }
            let field = csvField(name)
            for k in 0..<(p.rollout.count / C) {
                let time = csvField(axis?.label(after: k + 1) ?? "")
                for c in 0..<C {
                    out += "\(field),\(N + k),\(time),\(csvField(p.raw.names[c])),\(p.rollout[k * C + c])\n"
                }
            }
        }
        return out
    }

    /// The charts of the first `limit` series (their titles name the series when there are several).
    public func charts(evaluation: Evaluation, limit: Int = 3) -> [Chart] {
        guard isMulti else { return parts[0].charts(evaluation: evaluation) }
        var out: [Chart] = []
        for (s, p) in parts.prefix(limit).enumerated() {
            let e = evaluation.perSeries?[s]
            let one = Evaluation(season: e?.season, train: e?.train, validation: e?.validation)
            out += p.charts(evaluation: one).map { chart in
                var chart = chart
                chart.title = "\(names[s]) \u{2014} \(chart.title)"
                return chart
            }
        }
        return out
    }
}

/// Where a rollout's true window starts, in the model series of each series.
public enum RolloutStart: Sendable, Equatable {
    /// At the start of the validation part (0 without one).
    case validation
    /// At this point of every series.
    case point(Int)
    /// At the last window, so the rollout continues past the end (a forecast).
    case end
}

/// One series' metrics in a multi-series evaluation.
public struct SeriesEvaluation: Sendable, Codable, Equatable {
    /// The series' ID.
    public var series: String
    public var season: Int?
    public var train: SplitMetrics?
    public var validation: SplitMetrics?
}

/// RMSE, MAE, sMAPE (percent, `200 |e| / (|y| + |ŷ|)`, 0 where both are 0) and MASE (MAE over the
/// training part's naive MAE, per channel, averaged) over a set of points and every channel.
public struct Metrics: Sendable, Codable, Equatable {
    public var points: Int
    public var rmse: Double
    public var mae: Double
    public var smape: Double
    /// nil where the training part's naive MAE is 0 (a constant training part).
    public var mase: Double?

    init(targets: [Int], raw: Series, scale: [Double], predict: (Int, Int) -> Double) {
        let C = raw.channels
        var se = 0.0, ae = 0.0, sp = 0.0
        var aeChannel = [Double](repeating: 0, count: C)
        for i in targets {
            for c in 0..<C {
                let y = Double(raw.values[i * C + c]), p = predict(i, c)
                let e = p - y
                se += e * e
                ae += abs(e)
                aeChannel[c] += abs(e)
                let denom = abs(y) + abs(p)
                sp += denom > 0 ? 200 * abs(e) / denom : 0
            }
        }
        let n = Double(targets.count * C)
        points = targets.count
        rmse = (se / n).squareRoot()
        mae = ae / n
        smape = sp / n
        let m = (0..<C).map { aeChannel[$0] / Double(targets.count) / scale[$0] }.reduce(0, +) / Double(C)
        mase = m.isFinite ? m : nil
    }

    init(points: Int, rmse: Double, mae: Double, smape: Double, mase: Double?) {
        self.points = points
        self.rmse = rmse
        self.mae = mae
        self.smape = smape
        self.mase = mase
    }

    /// The metrics over the union of the parts' points (series with the same channels): RMSE, MAE and sMAPE
    /// exactly as over all those points at once; MASE the mean of the parts' MASE weighted by their points
    /// (each series keeps its own scale, as in the M4 competition), over the parts that have one.
    public static func pooled(_ parts: [Metrics]) -> Metrics {
        var n = 0, se = 0.0, ae = 0.0, sp = 0.0, ms = 0.0, mn = 0
        for m in parts {
            let w = Double(m.points)
            n += m.points
            se += m.rmse * m.rmse * w
            ae += m.mae * w
            sp += m.smape * w
            if let q = m.mase { ms += q * w; mn += m.points }
        }
        let d = Double(max(1, n))
        return Metrics(points: n, rmse: (se / d).squareRoot(), mae: ae / d, smape: sp / d,
                       mase: mn > 0 ? ms / Double(mn) : nil)
    }
}

/// The metrics of one split for the model and the two baselines.
public struct SplitMetrics: Sendable, Codable, Equatable {
    public var model: Metrics
    public var persistence: Metrics
    public var seasonalNaive: Metrics?
    /// `1 - RMSE_model / RMSE_persistence` (positive: the model is better; nil where the baseline is exact).
    public var skillVsPersistence: Double?
    public var skillVsSeasonalNaive: Double?
}

/// One-step metrics on the training and validation windows' targets, in the series' own units.
public struct Evaluation: Sendable, Codable, Equatable {
    /// The seasonal-naive baseline's season (nil: none).
    public var season: Int?
    public var train: SplitMetrics?
    public var validation: SplitMetrics?
    /// Several series: each one's metrics (`train` and `validation` above are then pooled over all of them).
    public var perSeries: [SeriesEvaluation]? = nil

    public init(season: Int?, train: SplitMetrics?, validation: SplitMetrics?) {
        self.season = season
        self.train = train
        self.validation = validation
    }

    /// Several series: one line per series with the model's metrics on the validation targets (else the
    /// training ones) and its skill against persistence.
    public var perSeriesText: String? {
        guard let perSeries else { return nil }
        let split = validation == nil ? "train" : "validation"
        var lines = [pad("series", 20) + pad("(\(split))", 14) + ["RMSE", "MAE", "sMAPE%", "MASE", "skill/pers."].map { pad($0, 12, left: true) }.joined()]
        for e in perSeries {
            guard let s = validation == nil ? e.train : e.validation else { continue }
            let m = s.model
            lines.append(pad(e.series, 20) + pad("\(m.points) points", 14)
                + [m.rmse, m.mae, m.smape, m.mase ?? .nan, s.skillVsPersistence ?? .nan].map { pad(fmt($0), 12, left: true) }.joined())
        }
        return lines.joined(separator: "\n")
    }

    /// A table for the terminal.
    public var text: String {
        var lines = ["split       forecast          RMSE         MAE       sMAPE%      MASE"]
        func row(_ split: String, _ name: String, _ m: Metrics) {
            lines.append(pad(split, 12) + pad(name, 16) + [m.rmse, m.mae, m.smape, m.mase ?? .nan].map { pad(fmt($0), 12, left: true) }.joined())
        }
        for (name, s) in [("train", train), ("validation", validation)] {
            guard let s else { continue }
            row(name, "model", s.model)
            row(name, "persistence", s.persistence)
            if let sn = s.seasonalNaive { row(name, "seasonal naive", sn) }
            var skill = "skill vs persistence \(fmt(s.skillVsPersistence ?? .nan))"
            if let k = s.skillVsSeasonalNaive { skill += ", vs seasonal naive \(fmt(k))" }
            lines.append(pad(name, 12) + skill)
        }
        return lines.joined(separator: "\n")
    }
}

private func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
    s.count >= w ? s + " " : (left ? String(repeating: " ", count: w - s.count) + s : s + String(repeating: " ", count: w - s.count))
}

/// A value for a CSV cell: shortest round-trip decimal, empty for NaN.
func number(_ v: Double) -> String {
    guard v.isFinite else { return "" }
    return "\(v)"
}

/// A CSV field, quoted when it holds a comma, quote or line break.
public func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
    return "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
}

/// Five significant digits, for metrics in a series' own units.
func fmt(_ x: Double) -> String { x.isNaN ? "-" : cFormat("%.5g", x) }
