import Checkpoint
import Foundation
import Testing

/// A long-format file of `count` series (`id,time,value`), each a seeded random walk plus a season, of
/// 30 to 36 monthly points.
func writeLongFormat(series count: Int, to path: String) throws {
    var text = "id,time,value\n"
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func uniform() -> Double {  // splitmix64
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
    for s in 0..<count {
        var level = uniform() * 50
        let amp = 0.5 + uniform() * 2
        for t in 0..<(30 + s % 7) {
            level += uniform() - 0.5
            let v = level + amp * sin(2 * Double.pi * Double(t) / 12)
            text += "s\(s),\(2000 + t / 12)-\(String(format: "%02d", t % 12 + 1)),\(String(format: "%.4f", v))\n"
        }
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

private func csvLines(_ path: String) throws -> [[Substring]] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst().map {
        $0.split(separator: ",", omittingEmptySubsequences: false)
    }
}

@Suite("Many series, one model, from the command line")
struct MultiSeriesCLITests {
    static let recipe = ["--series-column", "id", "--time-column", "time", "--columns", "value", "--val-fraction", "0.2",
                         "--seq-len", "6", "--hidden", "8", "--epochs", "2", "--quiet"]

    /// The acceptance run: 1,000 series train with two workers to the in-process bits; the forecast has
    /// 1,000 x horizon rows, predictions and metrics are per series and pooled.
    @Test func thousandSeriesTwoWorkersMatchInProcessAndForecastEverySeries() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let data = tmp.path("long.csv")
        try writeLongFormat(series: 1000, to: data)
        let a = try runZtrain(["train", "--data", data, "--in-process", "--out", tmp.path("a")] + Self.recipe, timeout: 300)
        let b = try runZtrain(["train", "--data", data, "--workers", "2", "--out", tmp.path("b")] + Self.recipe, timeout: 300)
        #expect(a.status == 0 && b.status == 0, "\(a.stderr)\n\(b.stderr)")
        let ma = try loadModel(path: tmp.path("a/model.safetensors")), mb = try loadModel(path: tmp.path("b/model.safetensors"))
        #expect(ma.parameters == mb.parameters)

        // summary.json: metrics per series and pooled
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("a/summary.json")))) as? [String: Any])
        let evaluation = try #require(summary["evaluation"] as? [String: Any])
        let perSeries = try #require(evaluation["per_series"] as? [[String: Any]])
        #expect(perSeries.count == 1000 && perSeries.first?["series"] as? String == "s0" && perSeries.last?["series"] as? String == "s999")
        let validation = try #require(evaluation["validation"] as? [String: Any])
        let pooled = try #require(validation["model"] as? [String: Any])
        // every series holds out round(0.2 N) points and validation covers each of them
        let held = (0..<1000).reduce(0) { n, s in n + Int((0.2 * Double(30 + s % 7)).rounded(.toNearestOrEven)) }
        #expect(pooled["points"] as? Int == held)
        for key in ["rmse", "mae", "smape", "mase"] { #expect(pooled[key] is Double, "\(key)") }

        // forecast from another folder: 1,000 x horizon rows, each series continued past its own end
        let elsewhere = try TempDir()
        defer { elsewhere.cleanup() }
        let f = try runZtrain(["forecast", "--model", tmp.path("a/model.safetensors"), "--horizon", "3", "--out", "f.csv"], cwd: elsewhere.url)
        #expect(f.status == 0, "\(f.stderr)")
        let rows = try csvLines(elsewhere.path("f.csv"))
        #expect(rows.count == 1000 * 3)
        #expect(rows.first.map { $0[0] == "s0" && $0[1] == "30" && $0[2] == "2002-07" } == true, "\(rows.first ?? [])")
        #expect(rows.last.map { $0[0] == "s999" && $0[1] == "\(30 + 999 % 7 + 2)" } == true, "\(rows.last ?? [])")
        #expect(rows.allSatisfy { Double($0[4]).map(\.isFinite) == true })

        // predict: one row per point of every series, numbered within its series
        let p = try runZtrain(["predict", "--model", tmp.path("a/model.safetensors"), "--format", "csv", "--out", "p.csv"], cwd: elsewhere.url)
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stderr.contains("per series"), "\(p.stderr)")
        let pr = try csvLines(elsewhere.path("p.csv"))
        #expect(pr.count == (0..<1000).reduce(0) { $0 + 30 + $1 % 7 })
        #expect(pr.filter { $0[0] == "s1" }.map { Int($0[1]) ?? -1 } == Array(0..<31))
    }

    @Test func badSeriesColumnsAreUsageErrorsAndFileProblemsNameTheLine() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let data = tmp.path("long.csv")
        try writeLongFormat(series: 3, to: data)
        let base = ["train", "--data", data, "--out", tmp.path("run"), "--time-column", "time", "--seq-len", "4", "--epochs", "1"]
        for value in ["nope", "", "time"] {
            let r = try runZtrain(base + ["--series-column", value])
            #expect(r.status == 64 && r.stderr.contains("--series-column"), "\(value): \(r.status) \(r.stderr)")
        }
        let s = try runZtrain(["train", "--series-column", "id", "--epochs", "1", "--out", tmp.path("s")])
        #expect(s.status == 64 && s.stderr.contains("--series-column"), "\(s.stderr)")
        // a series whose rows are not consecutive: file, line and column
        try "id,value\na,1\na,2\nb,3\nb,4\na,5\n".write(toFile: tmp.path("split.csv"), atomically: true, encoding: .utf8)
        let r = try runZtrain(["train", "--data", tmp.path("split.csv"), "--series-column", "id", "--seq-len", "1", "--epochs", "1",
                               "--out", tmp.path("r")])
        #expect(r.status == 1 && r.stderr.contains("split.csv:6: column \"id\"") && r.stderr.contains("not consecutive"), "\(r.stderr)")
        // a series too short for a window is named
        try "id,value\na,1\na,2\na,3\na,4\na,5\nb,3\nb,4\n".write(toFile: tmp.path("short.csv"), atomically: true, encoding: .utf8)
        let q = try runZtrain(["train", "--data", tmp.path("short.csv"), "--series-column", "id", "--seq-len", "3", "--difference", "0",
                               "--epochs", "1", "--out", tmp.path("q")])
        #expect(q.status != 0 && q.stderr.contains("series \"b\""), "\(q.stderr)")
    }
}
