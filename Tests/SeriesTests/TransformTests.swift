import Foundation
import Testing
@testable import Series

/// The real series shipped in examples/series (see examples/series/README.md).
func exampleSeries(_ name: String) throws -> Series {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try Series.csv(path: root.appendingPathComponent("examples/series/\(name).csv").path, columns: ["value"],
                          options: CSVOptions(timeColumn: "time"))
}

@Suite("Differencing, scaling and the KPSS test")
struct TransformTests {
    /// statsmodels 0.14 `kpss(np.diff(y, n=d), regression="c", nlags=trunc(4 (n/100)^0.25))[0]` on the example
    /// series, computed once (scripts/extract_series.py wrote the files).
    static let statsmodels: [(String, Int, Int, Double)] = [
        ("sunspots", 0, 5, 0.5841438018794792), ("sunspots", 1, 5, 0.016238191204872722),
        ("nile", 0, 4, 0.96543490775266), ("nile", 1, 3, 0.023267529549552506), ("nile", 2, 3, 0.019663336215977534),
        ("co2", 0, 6, 7.55037266939011), ("co2", 1, 6, 0.02204326384846745),
        ("realgdp", 0, 4, 4.0330116198568), ("realgdp", 1, 4, 0.4640806227547147), ("realgdp", 2, 4, 0.014617995036673562),
    ]

    @Test func kpssMatchesStatsmodels() throws {
        for (name, d, lags, want) in Self.statsmodels {
            var x = try exampleSeries(name).channel(0).map(Double.init)
            for _ in 0..<d { x = differenced(x, lag: 1) }
            #expect(kpssLags(x.count) == lags, "\(name) d=\(d)")
            let got = kpssStatistic(x, lags: lags)
            // ztrain holds the values as Float, statsmodels read them as Double: agreement to about 1e-6
            #expect(abs(got - want) <= 1e-5 * want, "\(name) d=\(d): \(got) vs statsmodels \(want)")
        }
    }

    /// pmdarima's `ndiffs(test="kpss")` on the whole series: realgdp's first difference sits just above the
    /// 5 % critical value (0.4641 > 0.463), so it takes a second.
    @Test func ndiffsOrders() throws {
        let want = ["sunspots": 1, "nile": 1, "co2": 1, "realgdp": 2]
        for (name, d) in want {
            let x = try exampleSeries(name).channel(0).map(Double.init)
            #expect(kpssOrder(x, maxOrder: 2).order == d, "\(name)")
        }
        #expect(kpssOrder([Double](repeating: 3, count: 50), maxOrder: 2).order == 0)
    }

    @Test func coefficientsAreTheDifferencingPolynomial() {
        func t(_ d: Int, _ s: Int) -> SeriesTransform {
            SeriesTransform(difference: d, differenceChosenBy: "flag", seasonalPeriod: s, scale: .none, offset: [0], divisor: [1])
        }
        #expect(t(0, 0).coefficients == [1])
        #expect(t(1, 0).coefficients == [1, -1])
        #expect(t(2, 0).coefficients == [1, -2, 1])
        #expect(t(0, 4).coefficients == [1, 0, 0, 0, -1])
        #expect(t(1, 4).coefficients == [1, -1, 0, 0, -1, 1])
        #expect(t(1, 4).lag == 5)
    }

    /// Scaling statistics come from the training part only: changing the validation part changes nothing.
    @Test func fitSeesOnlyTheTrainingPart() throws {
        let raw = try exampleSeries("co2")
        let a = try SeriesTransform.fit(raw: raw, seqLen: 12, validationFraction: 0.2, scale: .zscore, difference: .auto, seasonalPeriod: 0)
        var values = raw.values
        for i in (values.count - 100)..<values.count { values[i] = values[i] * 3 + 100 }
        let b = try SeriesTransform.fit(raw: try Series(names: raw.names, values: values), seqLen: 12, validationFraction: 0.2,
                                        scale: .zscore, difference: .auto, seasonalPeriod: 0)
        #expect(a == b)
        #expect(a.difference == 1 && a.differenceChosenBy == "auto")
        // the training part of the model series is standardised
        let z = try a.apply(raw)
        let n = try WindowSplit.make(pointCount: z.count, seqLen: 12, validationFraction: 0.2).trainPoints
        let part = z.channel(0)[0..<n].map(Double.init)
        let mean = part.reduce(0, +) / Double(n)
        let sd = (part.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)).squareRoot()
        #expect(abs(mean) < 1e-5 && abs(sd - 1) < 1e-5)
    }

    /// Inverting the model series' own values with the true past gives back the raw series.
    @Test(arguments: [(0, 0, ScaleKind.minmax), (1, 0, .zscore), (2, 0, .zscore), (1, 12, .zscore), (0, 12, .none)])
    func invertUndoesApply(d: Int, s: Int, scale: ScaleKind) throws {
        let raw = try exampleSeries("co2")
        let t = try SeriesTransform.fit(raw: raw, seqLen: 12, validationFraction: 0.2, scale: scale, difference: .order(d), seasonalPeriod: s)
        let z = try t.apply(raw)
        #expect(z.count == raw.count - t.lag && z.time?.first == raw.time?[t.lag])
        for j in stride(from: 0, to: z.count, by: 7) {
            let i = j + t.lag
            let y = t.invert(z.values[j], channel: 0) { Double(raw.values[i - $0]) }
            #expect(abs(y - Double(raw.values[i])) < 1e-3, "point \(i)")
        }
    }

    @Test func badSettingsNameTheFlag() throws {
        let raw = try exampleSeries("nile")
        #expect(throws: SeriesError.self) {
            try SeriesTransform.fit(raw: raw, seqLen: 12, validationFraction: 0.2, scale: .zscore, difference: .order(3), seasonalPeriod: 0)
        }
        do {
            _ = try SeriesTransform.fit(raw: raw, seqLen: 12, validationFraction: 0.2, scale: .zscore, difference: .order(0), seasonalPeriod: 95)
            Issue.record("a seasonal difference longer than the series must fail")
        } catch {
            #expect(error.description.contains("--seasonal-difference") || error.description.contains("--seq-len"))
        }
    }
}

@Suite("CSV time column, missing values, delimiters")
struct RealCSVTests {
    func message(_ text: String, _ columns: [String]? = nil, _ options: CSVOptions = CSVOptions()) -> String {
        do {
            _ = try Series.csv(text: text, source: "d.csv", columns: columns, options: options)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func timeColumnIsNeverAFeature() throws {
        let s = try Series.csv(text: "time,a,b\n2000-01,1,2\n2000-02,3,4\n2000-03,5,6\n", source: "d.csv",
                               options: CSVOptions(timeColumn: "time"))
        #expect(s.names == ["a", "b"] && s.values == [1, 2, 3, 4, 5, 6] && s.time == ["2000-01", "2000-02", "2000-03"])
        #expect(message("time,a\n1,2\n3,4\n", ["time"], CSVOptions(timeColumn: "time")).contains("--time-column"))
        #expect(message("t,a\n1,2\n3,4\n", nil, CSVOptions(timeColumn: "zz")) .contains("no column named \"zz\""))
    }

    @Test func missingValuesByPolicy() throws {
        let text = "t,a\n1,1\n2,\n3,NA\n4,4\n5,5\n"
        #expect(message(text, nil, CSVOptions(timeColumn: "t")) == "d.csv:3: column \"a\": missing value (empty cell); fill it in, or pass --missing drop, ffill or interpolate")
        let drop = try Series.csv(text: text, source: "d.csv", options: CSVOptions(timeColumn: "t", missing: .drop))
        #expect(drop.values == [1, 4, 5] && drop.time == ["1", "4", "5"])
        let ffill = try Series.csv(text: text, source: "d.csv", options: CSVOptions(timeColumn: "t", missing: .ffill))
        #expect(ffill.values == [1, 1, 1, 4, 5])
        let lin = try Series.csv(text: text, source: "d.csv", options: CSVOptions(timeColumn: "t", missing: .interpolate))
        #expect(lin.values == [1, 2, 3, 4, 5])
        #expect(message("a\nNA\n2\n3\n", nil, CSVOptions(missing: .ffill)).hasPrefix("d.csv:2: column \"a\": missing value in the first row"))
    }

    @Test func delimiters() throws {
        let semi = try Series.csv(text: "a;b\n1;2\n3;4\n", source: "d.csv", options: CSVOptions(delimiter: UInt8(ascii: ";")))
        #expect(semi.values == [1, 2, 3, 4])
        let tab = try Series.csv(text: "a\tb\n1\t2\n3\t4\n", source: "d.csv", options: CSVOptions(delimiter: 0x09))
        #expect(tab.values == [1, 2, 3, 4])
    }

    @Test func indexLikeColumns() throws {
        let s = try Series.csv(text: "rownames,i,v\n1,0,5\n2,1,3\n3,2,4\n", source: "d.csv")
        #expect(s.indexLikeChannels == ["rownames", "i"])
    }

    @Test func timeAxes() {
        #expect(TimeAxis(["1958-03", "1958-04"]).season == 12)
        #expect(TimeAxis(["1958-03", "1958-04"]).label(after: 10) == "1959-02")
        #expect(TimeAxis(["1959Q3", "1959Q4"]).season == 4 && TimeAxis(["1959Q3", "1959Q4"]).label(after: 1) == "1960Q1")
        #expect(TimeAxis(["1700", "1701"]).season == nil && TimeAxis(["1700", "1701"]).label(after: 2) == "1703")
        #expect(TimeAxis(["2020-01-01", "2020-01-08"]).season == 52)
        #expect(TimeAxis(["2020-01-30", "2020-01-31"]).label(after: 1) == "2020-02-01")
        #expect(TimeAxis(["a", "b"]) == .labels)
    }
}

@Suite("Scaling and differencing per series")
struct MultiSeriesTransformTests {
    @Test func eachSeriesIsDifferencedAndScaledOnItsOwn() throws {
        let text = "id,value\n" + (0..<20).map { "a,\(Double($0) * 2)" }.joined(separator: "\n") + "\n"
            + (0..<30).map { "b,\(1000 + Double($0 * $0 % 7))" }.joined(separator: "\n") + "\n"
        let raw = try Series.csv(text: text, source: "t", options: CSVOptions(seriesColumn: "id"))
        #expect(raw.segments == SeriesSegments(ids: ["a", "b"], starts: [0, 20, 50]))
        let t = try SeriesTransform.fit(raw: raw, seqLen: 2, validationFraction: 0.2, scale: .zscore, difference: .order(1), seasonalPeriod: 0)
        #expect(t.offset.count == 2 && t.divisor.count == 2)
        let model = try t.apply(raw)
        #expect(model.segments?.starts == [0, 19, 48])
        // each part equals fitting and applying on that series alone
        for s in 0..<2 {
            let alone = try SeriesTransform.fit(raw: raw.part(s), seqLen: 2, validationFraction: 0.2, scale: .zscore,
                                                difference: .order(1), seasonalPeriod: 0)
            #expect(t.part(s, channels: 1) == alone)
            #expect(model.part(s) == (try alone.apply(raw.part(s))))
        }
        // series a is a straight line: its differences are constant, so its divisor stays 1 and every value 0
        #expect(model.part(0).values.allSatisfy { $0 == 0 })
    }

    @Test func missingValuesAreFilledWithinEachSeries() throws {
        let text = "id,value\na,1\na,2\na,NA\nb,NA\nb,10\nb,12\n"
        // forward fill never reaches back into the series before
        #expect(throws: SeriesError.self) { try Series.csv(text: text, source: "t", options: CSVOptions(missing: .ffill, seriesColumn: "id")) }
        let raw = try Series.csv(text: text, source: "t", options: CSVOptions(missing: .interpolate, seriesColumn: "id"))
        #expect(raw.values == [1, 2, 2, 10, 10, 12])
    }
}
