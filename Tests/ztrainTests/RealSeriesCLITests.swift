import Checkpoint
import Foundation
import RNN
import Testing

/// A copy of examples/series/NAME.csv in `dir` (so tests never write next to the fixtures).
private func copyExample(_ name: String, to dir: TempDir) throws -> String {
    let src = repoRoot().appendingPathComponent("examples/series/\(name).csv")
    let dst = dir.path("\(name).csv")
    try FileManager.default.copyItem(atPath: src.path, toPath: dst)
    return dst
}

private func json(_ path: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
}

/// Rows of a CSV with a header, as dictionaries (no quoted fields in what these tests read).
private func csvRows(_ path: String) throws -> [[String: String]] {
    let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    return lines.dropFirst().filter { !$0.isEmpty }.map { line in
        let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return Dictionary(uniqueKeysWithValues: zip(header, f))
    }
}

@Suite("Real series from the command line")
struct RealSeriesCLITests {
    static let recipe = ["--columns", "value", "--time-column", "time", "--val-fraction", "0.2", "--seq-len", "12", "--quiet"]

    /// Workers receive the transformed series in WELCOME, so a run with scaling, differencing and a seasonal
    /// difference gives the same weights with two workers as in one process.
    @Test func twoWorkersMatchInProcessWithScalingAndDifferencing() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let data = try copyExample("co2", to: tmp)
        let common = ["train", "--data", data, "--seasonal-difference", "12", "--difference", "auto", "--scale", "zscore",
                      "--epochs", "4", "--micro-batch", "4", "--hidden", "16"] + Self.recipe
        let a = try runZtrain(common + ["--in-process", "--out", tmp.path("a")])
        let b = try runZtrain(common + ["--workers", "2", "--out", tmp.path("b")])
        #expect(a.status == 0 && b.status == 0, "\(a.stderr)\n\(b.stderr)")
        let ma = try loadModel(path: tmp.path("a/model.safetensors")), mb = try loadModel(path: tmp.path("b/model.safetensors"))
        #expect(ma.parameters == mb.parameters)
        #expect(ma.config.head == .linear)
        let config = try #require(try json(tmp.path("a/summary.json"))["config"] as? [String: Any])
        let transform = try #require(config["transform"] as? [String: Any])
        #expect(transform["seasonal_period"] as? Int == 12 && transform["scale"] as? String == "zscore")
        // the fitted statistics travel in the model file's metadata
        #expect(ma.metadata["training_config"]?.contains("\"offset\"") == true && ma.metadata["head"] == "linear")
    }

    /// The plain recipe beats persistence (and seasonal naive where there is a season) on the held-out 20 %,
    /// in the series' own units, read from `predict --format csv`.
    @Test(arguments: [("nile", 300), ("sunspots", 60), ("co2", 60)])
    func recipeBeatsTheBaselines(name: String, epochs: Int) throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let data = try copyExample(name, to: tmp)
        let t = try runZtrain(["train", "--data", data, "--epochs", String(epochs), "--out", tmp.path("run")] + Self.recipe)
        #expect(t.status == 0, "\(t.stderr)")
        let p = try runZtrain(["predict", "--model", tmp.path("run/model.safetensors"), "--format", "csv", "--out", tmp.path("p.csv")])
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stderr.contains("persistence") && p.stderr.contains("MASE"))
        let rows = try csvRows(tmp.path("p.csv"))
        let y = rows.map { Double($0["actual"] ?? "") ?? .nan }
        let summary = try json(tmp.path("run/summary.json"))
        let evaluation = try #require(summary["evaluation"] as? [String: Any])
        let validation = try #require(evaluation["validation"] as? [String: Any])
        let model = try #require(validation["model"] as? [String: Any])
        let n = try #require(model["points"] as? Int)
        // the last n points are the validation targets
        let targets = (y.count - n)..<y.count
        func rmse(_ f: (Int) -> Double) -> Double {
            (targets.map { (f($0) - y[$0]) * (f($0) - y[$0]) }.reduce(0, +) / Double(n)).squareRoot()
        }
        let ours = rmse { Double(rows[$0]["one_step"] ?? "") ?? .nan }
        let persistence = rmse { y[$0 - 1] }
        // the CSV holds the values in their shortest decimal form: agreement to about 1e-7
        #expect(abs(ours - (model["rmse"] as? Double ?? 0)) <= 1e-5 * ours, "CSV and summary.json agree")
        #expect(ours <= persistence, "\(name): RMSE \(ours) vs persistence \(persistence)")
        if let season = evaluation["season"] as? Int {
            let naive = rmse { y[$0 - season] }
            #expect(ours <= naive, "\(name): RMSE \(ours) vs seasonal naive \(naive)")
        }
    }

    @Test func predictCSVForecastAndPathsFromAnyFolder() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        _ = try copyExample("realgdp", to: tmp)
        // a relative --data, run from tmp; predict and forecast from another folder
        let t = try runZtrain(["train", "--data", "realgdp.csv", "--epochs", "5", "--out", "run"] + Self.recipe, cwd: tmp.url)
        #expect(t.status == 0, "\(t.stderr)")
        // the run (and so its checkpoints, which hold the same configuration) records the data's absolute path
        let config = try #require(try json(tmp.path("run/summary.json"))["config"] as? [String: Any])
        let csv = try #require((config["data"] as? [String: Any])?["csv"] as? [String: Any])
        #expect((csv["path"] as? String)?.hasPrefix("/") == true && (csv["path"] as? String)?.hasSuffix("/realgdp.csv") == true)
        let elsewhere = try TempDir()
        defer { elsewhere.cleanup() }
        let model = tmp.path("run/model.safetensors")
        let p = try runZtrain(["predict", "--model", model, "--out", "p.csv"], cwd: elsewhere.url)
        #expect(p.status == 0, "\(p.stderr)")
        let rows = try csvRows(elsewhere.path("p.csv"))
        #expect(rows.count == 203)
        #expect(rows[0] == ["series": "realgdp", "point": "0", "time": "1959Q1", "channel": "value", "actual": "2710.349",
                            "one_step": "", "rollout": ""])
        #expect(rows.last?["one_step"]?.isEmpty == false && rows.last?["rollout"]?.isEmpty == false)
        // the rollout's first point has only true points before it: it is that point's one-step prediction
        let first = try #require(rows.first { $0["rollout"]?.isEmpty == false })
        #expect(first["rollout"] == first["one_step"], "\(first)")
        // realgdp is differenced once (KPSS): the first 1 + 12 points have no one-step prediction
        #expect(rows.prefix(13).allSatisfy { $0["one_step"] == "" } && rows[13]["one_step"] != "")
        let f = try runZtrain(["forecast", "--model", model, "--horizon", "6", "--out", "f.csv"], cwd: elsewhere.url)
        #expect(f.status == 0, "\(f.stderr)")
        let fr = try csvRows(elsewhere.path("f.csv"))
        #expect(fr.map { $0["time"] ?? "" } == ["2009Q4", "2010Q1", "2010Q2", "2010Q3", "2010Q4", "2011Q1"])
        #expect(fr.map { $0["point"] ?? "" } == ["203", "204", "205", "206", "207", "208"])
        #expect(fr.allSatisfy { Double($0["forecast"] ?? "")?.isFinite == true })
        // a plot against the time column
        let svg = try runZtrain(["predict", "--model", model, "--out", "p.svg"], cwd: elsewhere.url)
        #expect(svg.status == 0 && FileManager.default.fileExists(atPath: elsewhere.path("p.svg")), "\(svg.stderr)")
    }

    /// A random walk and an AR(1) series (seeded, so the run is the same every time): the saved model is never
    /// behind persistence on the held-out part, since it starts as persistence and a later epoch is kept only
    /// if its validation loss is lower.
    @Test(arguments: [("walk", 1.0), ("ar1", 0.6)])
    func neverBehindPersistence(name: String, phi: Double) throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        var state: UInt64 = 12345
        func gauss() -> Double {  // Box-Muller over a 64-bit LCG
            func u() -> Double {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Double(state >> 11) + 0.5) / Double(1 << 53)
            }
            return (-2 * log(u())).squareRoot() * cos(2 * Double.pi * u())
        }
        var x = 0.0
        var text = "time,value\n"
        for i in 0..<240 {
            x = phi * x + gauss()
            text += "\(i),\(x)\n"
        }
        try text.write(toFile: tmp.path("\(name).csv"), atomically: true, encoding: .utf8)
        let t = try runZtrain(["train", "--data", tmp.path("\(name).csv"), "--epochs", "40", "--out", tmp.path("run")] + Self.recipe)
        #expect(t.status == 0, "\(t.stderr)")
        let summary = try json(tmp.path("run/summary.json"))
        let validation = try #require((summary["evaluation"] as? [String: Any])?["validation"] as? [String: Any])
        let model = try #require((validation["model"] as? [String: Any])?["rmse"] as? Double)
        let persistence = try #require((validation["persistence"] as? [String: Any])?["rmse"] as? Double)
        #expect(model <= persistence * (1 + 1e-5), "\(name): model \(model), persistence \(persistence), best epoch \(summary["best_epoch"] ?? "?")")
    }

    @Test func badValuesAreUsageErrorsNamingTheFlag() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let data = try copyExample("nile", to: tmp)
        let base = ["train", "--data", data, "--epochs", "1", "--out", tmp.path("run")] + Self.recipe
        for (flag, value) in [("--scale", "log"), ("--head", "relu"), ("--difference", "3"), ("--missing", "skip"),
                              ("--delimiter", ";;"), ("--seasonal-difference", "-1"), ("--season", "0")] {
            let r = try runZtrain(base + [flag, value])
            #expect(r.status == 64, "\(flag) \(value): status \(r.status)")
            #expect(r.stderr.contains(flag), "\(flag) \(value): \(r.stderr)")
        }
        let ok = try runZtrain(base)
        #expect(ok.status == 0, "\(ok.stderr)")
        let model = tmp.path("run/model.safetensors")
        for args in [["predict", "--model", model, "--out", tmp.path("x.png")],
                     ["predict", "--model", model, "--format", "csv", "--out", tmp.path("x.svg")],
                     ["forecast", "--model", model, "--horizon", "3", "--out", tmp.path("f.json")],
                     ["forecast", "--model", model, "--horizon", "0"]] {
            let r = try runZtrain(args)
            #expect(r.status == 64, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("--out") || r.stderr.contains("--horizon"), "\(args): \(r.stderr)")
        }
        // an index-like feature column is named in a warning
        try "rownames,value\n" .appending((1...40).map { "\($0),\(Double($0 % 7))" }.joined(separator: "\n")).write(
            toFile: tmp.path("idx.csv"), atomically: true, encoding: .utf8)
        let w = try runZtrain(["train", "--data", tmp.path("idx.csv"), "--epochs", "1", "--seq-len", "4", "--out", tmp.path("w"),
                               "--log-level", "warning"])
        #expect(w.status == 0 && w.stderr.contains("\"rownames\"") && w.stderr.contains("--time-column"), "\(w.stderr)")
        // a missing cell names file, row and column
        try "time,value\n1,1\n2,\n3,3\n".write(toFile: tmp.path("gap.csv"), atomically: true, encoding: .utf8)
        let g = try runZtrain(["train", "--data", tmp.path("gap.csv"), "--time-column", "time", "--epochs", "1", "--seq-len", "1",
                               "--out", tmp.path("g")])
        #expect(g.status != 0 && g.stderr.contains("gap.csv:3: column \"value\": missing value"), "\(g.stderr)")
    }
}
