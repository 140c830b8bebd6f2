import Checkpoint
import Foundation
import RNN
import Series
import Testing

@Suite("ztrain command line")
struct CLITests {
    /// A clean refusal: a normal exit with a non-zero status and the expected words on stderr.
    func expectRefused(_ args: [String], saying needle: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try runZtrain(args, timeout: 60)
        #expect(r.exitedNormally, "crashed: \(args)", sourceLocation: sourceLocation)
        #expect(r.status != 0, "exit 0 for \(args)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(needle), "stderr for \(args) lacks '\(needle)': \(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func badFlagsAreRefusedClearly() throws {
        try expectRefused(["train", "--no-such-flag"], saying: "no-such-flag")
        try expectRefused(["train", "--hidden", "0"], saying: "--hidden must be at least 1")
        try expectRefused(["train", "--batch", "0"], saying: "--batch must be at least 1")
        try expectRefused(["train", "--batch=-4"], saying: "--batch must be at least 1")
        try expectRefused(["train", "--seq-len", "0"], saying: "--seq-len must be at least 1")
        try expectRefused(["train", "--epochs", "0"], saying: "--epochs must be at least 1")
        try expectRefused(["train", "--lr", "0"], saying: "--lr must be a positive number")
        try expectRefused(["train", "--lr", "abc"], saying: "lr")
        try expectRefused(["train", "--cell", "lstm"], saying: "cell")
        try expectRefused(["train", "--points", "1"], saying: "--points")
        try expectRefused(["train", "--range", "5:1"], saying: "--range")
        try expectRefused(["train", "--val-fraction", "1"], saying: "--val-fraction")
        try expectRefused(["train", "--threads", "0"], saying: "--threads")
        try expectRefused(["predict"], saying: "--model")
        try expectRefused(["train", "--checkpoint-every=-1"], saying: "--checkpoint-every must be 0 or more")
        try expectRefused(["train", "--keep", "0"], saying: "--keep must be at least 1")
        try expectRefused(["train", "--resume", "/nonexistent-ztrain-run", "--auto-resume"], saying: "exclude each other")
        try expectRefused(["coordinator", "--workers", "2", "--max-workers", "1"], saying: "--max-workers must be at least")
        try expectRefused(["coordinator", "--workers", "1", "--resume", "/nonexistent-ztrain-run"], saying: "no checkpoint")
        try expectRefused(["worker"], saying: "--connect")
        try expectRefused(["train", "--hidden", "100000"], saying: "hidden size must be at most")
    }

    @Test func hugeSizesDoNotCrash() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--hidden", "4", "--batch", "1000000000", "--micro-batch", "1000000000",
                               "--steps", "1", "--out", tmp.path("o"), "--quiet"])
        #expect(r.exitedNormally && r.status == 0, "\(r.stderr)")
    }

    @Test func badCSVNamesFileLineAndColumn() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        try expectRefused(["train", "--data", tmp.path("missing.csv"), "--out", tmp.path("o")], saying: "missing.csv")
        let bad = tmp.path("bad.csv")
        try "a,b\n1,2\n3,abc\n4,5\n".write(toFile: bad, atomically: true, encoding: .utf8)
        try expectRefused(["train", "--data", bad, "--out", tmp.path("o")], saying: "bad.csv:3")
        try expectRefused(["train", "--data", bad, "--out", tmp.path("o")], saying: "\"b\"")
        try expectRefused(["train", "--data", bad, "--columns", "zz", "--out", tmp.path("o")], saying: "zz")
        let empty = tmp.path("empty.csv")
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try expectRefused(["train", "--data", empty, "--out", tmp.path("o")], saying: "empty.csv")
    }

    @Test func badInitFilesAreRefused() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let c16 = ModelConfig(inputSize: 2, hiddenSize: 16, outputSize: 2, seqLen: 4)
        var rng = SeededRNG(seed: 1)
        let w16 = initializeParameters(config: c16, using: &rng)
        let good = tmp.path("h16.safetensors")
        try saveModel(parameters: w16, config: c16, metadata: [:], to: good)
        try expectRefused(["train", "--init", good, "--hidden", "32", "--steps", "1", "--out", tmp.path("o")], saying: "--hidden")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let truncated = tmp.path("truncated.safetensors")
        try bytes.prefix(bytes.count - 7).write(to: URL(fileURLWithPath: truncated))
        try expectRefused(["train", "--init", truncated, "--hidden", "16", "--steps", "1", "--out", tmp.path("o")], saying: "truncated.safetensors")
        let garbage = tmp.path("garbage.safetensors")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: garbage))
        try expectRefused(["train", "--init", garbage, "--steps", "1", "--out", tmp.path("o")], saying: "garbage.safetensors")
        try expectRefused(["train", "--init", tmp.path("nope.safetensors"), "--steps", "1", "--out", tmp.path("o")], saying: "nope.safetensors")
        try expectRefused(["predict", "--model", truncated, "--out", tmp.path("p.svg")], saying: "truncated.safetensors")
    }

    /// Acceptance: `--init W --optimizer sgd --lr 1 --steps 1 --batch 5 --no-shuffle` changes the weights by
    /// exactly minus the gradient of windows 0..4.
    @Test func oneSGDStepIsMinusTheGradientOfWindows0To4() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let config = ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4)
        var rng = SeededRNG(seed: 5)
        let w = initializeParameters(config: config, using: &rng)
        try saveModel(parameters: w, config: config, metadata: [:], to: tmp.path("W.safetensors"))
        let r = try runZtrain(["train", "--in-process", "--init", tmp.path("W.safetensors"), "--optimizer", "sgd", "--lr", "1",
                               "--steps", "1", "--batch", "5", "--no-shuffle", "--out", tmp.path("run"), "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let after = try loadModel(path: tmp.path("run/model.safetensors"), expecting: config).parameters
        let series = try Series.sincos()
        let ws = RNNWorkspace<Float>(config: config, maxBatch: 5)
        let (_, g) = ws.lossAndGradient(params: w, series: series.values, windows: [0, 1, 2, 3, 4])
        let expected = zip(w, g).map { $0 - $1 / 5 }
        #expect(after == expected)
        #expect(after != w)
    }

    @Test func trainWritesOutputsAndPredictDraws() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--hidden", "8", "--epochs", "2", "--val-fraction", "0.1", "--out", tmp.path("run")])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["model.safetensors", "metrics.jsonl", "summary.json", "loss.svg"] {
            #expect(FileManager.default.fileExists(atPath: tmp.path("run/\(f)")), "missing \(f)")
        }
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("run/summary.json")))) as? [String: Any])
        for key in ["final_loss", "epochs", "steps", "wall_seconds", "samples_per_second"] {
            #expect(summary[key] != nil, "summary lacks \(key)")
        }
        #expect(summary["epochs"] as? Int == 2)
        let metrics = try String(contentsOfFile: tmp.path("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 2 && metrics[0].contains("\"val_loss\""))
        let p = try runZtrain(["predict", "--model", tmp.path("run/model.safetensors"), "--out", tmp.path("p.svg")])
        #expect(p.status == 0, "\(p.stderr)")
        let svg = try String(contentsOfFile: tmp.path("p.svg"), encoding: .utf8)
        #expect(svg.contains("rollout") && svg.contains("polyline"))
    }
}
