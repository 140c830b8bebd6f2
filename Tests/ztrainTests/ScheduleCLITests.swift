import Checkpoint
import Foundation
import RNN
import Testing

@Suite("Validation, schedules and early stopping from the command line")
struct ScheduleCLITests {
    /// Every new flag: a bad value is a usage error (status 64) naming the flag.
    @Test func badValuesAreUsageErrorsNamingTheFlag() throws {
        let cases: [([String], String)] = [
            (["--lr-schedule", "linear"], "lr-schedule"),
            (["--lr-schedule", "step"], "--lr-step-size"),
            (["--lr-schedule", "step", "--lr-step-size", "0"], "--lr-step-size"),
            (["--lr-schedule", "step", "--lr-step-size", "2", "--lr-gamma", "0"], "--lr-gamma"),
            (["--lr-gamma", "0.5"], "--lr-gamma applies to --lr-schedule step"),
            (["--lr-schedule", "cosine", "--lr-t-max", "0"], "--lr-t-max"),
            (["--lr-schedule", "cosine", "--lr-min", "-1"], "--lr-min"),
            (["--lr-schedule", "plateau", "--lr-patience", "-1"], "--lr-patience"),
            (["--lr-schedule", "plateau", "--lr-factor", "1.5"], "--lr-factor"),
            (["--lr-schedule", "cosine", "--lr-patience", "3"], "--lr-patience applies to --lr-schedule plateau"),
            (["--warmup", "-1"], "--warmup"),
            (["--warmup", "x"], "warmup"),
            (["--early-stopping", "0"], "--early-stopping"),
        ]
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        for (args, needle) in cases {
            let r = try runZtrain(["train", "--hidden", "4", "--epochs", "1", "--out", tmp.path("o")] + args, timeout: 60)
            #expect(r.exitedNormally && r.status == 64, "\(args): status \(r.status)")
            #expect(r.stderr.contains(needle), "\(args): stderr lacks '\(needle)': \(r.stderr)")
        }
    }

    /// A validation part, a warmup and step schedule and early stopping: `--workers 2` writes the
    /// bytes of `--in-process` (best and last weights), the same metrics (rate, training and validation
    /// loss apart) and the same best epoch; `model.safetensors` is the best epoch's weights.
    @Test func workersWriteTheBytesOfInProcessWithScheduleValidationAndEarlyStopping() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        func flags(epochs: Int) -> [String] {
            ["--hidden", "8", "--batch", "64", "--micro-batch", "8", "--lr", "0.2", "--val-fraction", "0.2",
             "--lr-schedule", "step", "--warmup", "5", "--lr-step-size", "5", "--lr-gamma", "0.7",
             "--early-stopping", "2", "--epochs", String(epochs), "--seed", "5", "--clip-norm", "1", "--quiet"]
        }
        let common = flags(epochs: 40)
        let a = try runZtrain(["train", "--in-process", "--out", tmp.path("a")] + common)
        let b = try runZtrain(["train", "--workers", "2", "--out", tmp.path("b")] + common)
        for r in [a, b] { #expect(r.status == 0, "\(r.stderr)") }
        for file in ["model.safetensors", "last.safetensors"] {
            let x = try Data(contentsOf: URL(fileURLWithPath: tmp.path("a/\(file)")))
            let y = try Data(contentsOf: URL(fileURLWithPath: tmp.path("b/\(file)")))
            #expect(x == y, "\(file) differs")
        }
        func lines(_ run: String) throws -> [[String: Any]] {
            try String(contentsOfFile: tmp.path("\(run)/metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
        let la = try lines("a"), lb = try lines("b")
        for key in ["lr", "loss", "train_loss", "val_loss"] {
            let xa = la.compactMap { $0[key] as? Double }, xb = lb.compactMap { $0[key] as? Double }
            #expect(xa.count == la.count && xa == xb, "\(key)")
        }
        let rates = la.compactMap { $0["lr"] as? Double }
        #expect(rates.first == 0.2 && rates.contains { $0 < 0.2 }, "the schedule never decayed: \(rates)")
        let vals = la.compactMap { $0["val_loss"] as? Double }
        let summaries = try ["a", "b"].map { run in
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("\(run)/summary.json")))) as? [String: Any])
        }
        for s in summaries {
            #expect(s["early_stopped"] as? Bool == true && s["epochs"] as? Int == la.count)
            let best = try #require(s["best_epoch"] as? Int)
            #expect(s["best_val_loss"] as? Double == vals.min() && vals[best - 1] == vals.min())
            #expect(la.count - best == 2, "stopped 2 epochs after the best")
        }
        // model.safetensors is the best epoch's weights: a run of that many epochs ends with them
        let best = try #require(summaries[0]["best_epoch"] as? Int)
        let c = try runZtrain(["train", "--in-process", "--out", tmp.path("c")] + flags(epochs: best))
        #expect(c.status == 0, "\(c.stderr)")
        let wBest = try loadModel(path: tmp.path("a/model.safetensors"), expecting: nil).parameters
        let wLast = try loadModel(path: tmp.path("a/last.safetensors"), expecting: nil).parameters
        let wShort = try loadModel(path: tmp.path("c/last.safetensors"), expecting: nil).parameters
        #expect(wBest == wShort && wBest != wLast)
    }

    /// A run whose final loss is NaN (a rate so large that one finite gradient makes the weights
    /// infinite) exits with status 1 and says so, in-process and with workers; the outputs are written.
    @Test func aFinalNaNLossExitsNonZero() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        for (mode, run) in [(["--in-process"], "a"), (["--workers", "2", "--val-fraction", "0.2"], "b")] {
            let r = try runZtrain(["train", "--hidden", "4", "--optimizer", "sgd", "--lr", "1e300", "--steps", "1", "--quiet",
                                   "--out", tmp.path(run)] + mode)
            #expect(r.exitedNormally && r.status == 1, "\(mode): status \(r.status)")
            #expect(r.stderr.contains("loss is NaN"), "\(mode): \(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: tmp.path("\(run)/summary.json")))
        }
    }

    /// Without a validation part the outputs are as before: no last.safetensors, no best epoch.
    @Test func withoutValidationThereIsOneModelFile() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--hidden", "4", "--epochs", "3", "--lr-schedule", "cosine", "--quiet", "--out", tmp.path("o")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.path("o/last.safetensors")))
        let s = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("o/summary.json")))) as? [String: Any])
        #expect(s["best_epoch"] == nil && s["best_val_loss"] == nil)
        let metrics = try String(contentsOfFile: tmp.path("o/metrics.jsonl"), encoding: .utf8)
        #expect(metrics.contains("\"lr\"") && !metrics.contains("\"val_loss\""))
    }
}
