import Foundation
import Testing

/// `ztrain diff`: the runs' hash chains compared, and a planted divergence found.
@Suite("ztrain diff")
struct DiffCLITests {
    /// A small sincos run: 116 windows, 4 steps an epoch at batch 29, 16 steps.
    let small = ["--points", "120", "--hidden", "8", "--batch", "29", "--steps", "16", "--quiet"]

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test func anInProcessRunAndATwoWorkerRunAreIdentical() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let a = try runZtrain(["train", "--out", tmp.path("a"), "--hash-every", "2"] + small)
        #expect(a.status == 0, "\(a.stderr)")
        // the second run writes its lines through the watch (step lines on): the hash lines keep their order
        let b = try runZtrain(["train", "--workers", "2", "--log-every", "1", "--out", tmp.path("b"), "--hash-every", "2"] + small, timeout: 180)
        #expect(b.status == 0, "\(b.stderr)")
        let la = try lines(tmp.path("a"))
        #expect(la.filter { $0["kind"] as? String == "hash" }.compactMap { $0["step"] as? Int } == [2, 4, 6, 8, 10, 12, 14, 16])
        #expect(la.filter { $0["epoch"] != nil }.allSatisfy { ($0["weights_hash"] as? String)?.count == 16 })
        let lb = try lines(tmp.path("b"))
        let steps = lb.compactMap { l in l["kind"] as? String == "hash" || l["kind"] as? String == "step" ? l["step"] as? Int : nil }
        #expect(steps == steps.sorted(), "step and hash lines in step order")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("a") + "/summary.json"))) as? [String: Any])
        #expect((summary["weights_hash"] as? String) == (la.last?["weights_hash"] as? String))

        let d = try runZtrain(["diff", tmp.path("a"), tmp.path("b")])
        #expect(d.status == 0, "\(d.stdout)\(d.stderr)")
        #expect(d.stdout.contains("identical: 8 hashed steps agree, up to step 16"), "\(d.stdout)")
        #expect(d.stdout.contains("model.safetensors identical"))
    }

    /// B is A with a step schedule that decays the rate after epoch 2 (step 8): the runs agree
    /// through step 8 and part at step 9. Only epoch lines (steps 4, 8, 12, 16) are hashed, so the
    /// recorded hashes place it in 9...12; --narrow replays from the checkpoints at step 6.
    @Test func aPlantedDivergenceIsFoundAndNarrowed() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let checkpoints = ["--checkpoint-every", "3", "--keep", "10"]
        let a = try runZtrain(["train", "--out", tmp.path("a")] + checkpoints + small)
        #expect(a.status == 0, "\(a.stderr)")
        let b = try runZtrain(["train", "--workers", "2", "--out", tmp.path("b"), "--lr-schedule", "step", "--lr-step-size", "2"]
                              + checkpoints + small, timeout: 180)
        #expect(b.status == 0, "\(b.stderr)")
        let d = try runZtrain(["diff", tmp.path("a"), tmp.path("b")])
        #expect(d.status == 1, "\(d.stdout)\(d.stderr)")
        #expect(d.stdout.contains("differ: first differing hashed step 12 (last agreeing step 8"), "\(d.stdout)")
        #expect(d.stdout.contains("somewhere in steps 9...12"))
        let n = try runZtrain(["diff", "--narrow", tmp.path("a"), tmp.path("b")])
        #expect(n.status == 1, "\(n.stdout)\(n.stderr)")
        #expect(n.stdout.contains("narrowed: step 9 is the first whose weights differ"), "\(n.stdout)")
        #expect(n.stdout.contains("from their checkpoints at step 6"))
        // a run without checkpoints but with a hash line every step: only the other is replayed
        let c = try runZtrain(["train", "--workers", "2", "--out", tmp.path("c"), "--lr-schedule", "step", "--lr-step-size", "2",
                               "--hash-every", "1"] + small, timeout: 180)
        #expect(c.status == 0, "\(c.stderr)")
        let m = try runZtrain(["diff", "--narrow", tmp.path("a"), tmp.path("c")])
        #expect(m.status == 1, "\(m.stdout)\(m.stderr)")
        #expect(m.stdout.contains("differ: first differing hashed step 12 (last agreeing step 8"), "\(m.stdout)")
        #expect(m.stdout.contains("narrowed: step 9 is the first whose weights differ"), "\(m.stdout)")
        #expect(m.stdout.contains("from its checkpoint at step 6") && m.stdout.contains("against the other run's hash lines"))
        // with neither checkpoints nor hash lines to follow the second run by, nothing is narrowed, and it says so
        let d2 = try runZtrain(["train", "--out", tmp.path("d"), "--lr-schedule", "step", "--lr-step-size", "2"] + small)
        #expect(d2.status == 0, "\(d2.stderr)")
        let none = try runZtrain(["diff", "--narrow", tmp.path("a"), tmp.path("d")])
        #expect(none.status == 1)
        #expect(none.stdout.contains("narrow: no step before 12 where both runs' weights are known to agree"), "\(none.stdout)")
    }

    /// A resumed run keeps its hash lines up to the checkpoint, so its chain is whole.
    @Test func aResumedRunKeepsItsHashLinesAndEqualsAnUninterruptedOne() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let whole = try runZtrain(["train", "--out", tmp.path("whole"), "--hash-every", "2"] + small)
        #expect(whole.status == 0, "\(whole.stderr)")
        let first = try runZtrain(["train", "--out", tmp.path("r"), "--hash-every", "2", "--checkpoint-every", "3"]
                                  + small.map { $0 == "16" ? "7" : $0 })
        #expect(first.status == 0, "\(first.stderr)")
        let resumed = try runZtrain(["train", "--resume", tmp.path("r"), "--steps", "16", "--hash-every", "2", "--quiet"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let hashed = try lines(tmp.path("r")).filter { $0["kind"] as? String == "hash" }.compactMap { $0["step"] as? Int }
        #expect(hashed == [2, 4, 6, 8, 10, 12, 14, 16])
        let d = try runZtrain(["diff", tmp.path("whole"), tmp.path("r")])
        #expect(d.status == 0, "\(d.stdout)\(d.stderr)")
        #expect(d.stdout.contains("identical: 8 hashed steps agree, up to step 16"), "\(d.stdout)")
    }

    @Test func runsWithoutHashesOrFoldersAreClearErrors() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let a = try runZtrain(["train", "--out", tmp.path("a")] + small)
        #expect(a.status == 0, "\(a.stderr)")
        // a run from before weights hashes: its lines have none, nor has its summary
        let old = tmp.path("old")
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        try #"{"epoch":1,"loss":0.5,"step":4}"#.appending("\n").write(toFile: old + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let d = try runZtrain(["diff", tmp.path("a"), old])
        #expect(d.status == 2, "\(d.stdout)\(d.stderr)")
        #expect(d.stderr.contains("records no weights hashes") && d.stderr.contains("--hash-every"), "\(d.stderr)")
        let missing = try runZtrain(["diff", tmp.path("a"), tmp.path("nowhere")])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("nowhere is not a run folder"), "\(missing.stderr)")
        let empty = tmp.path("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let e = try runZtrain(["diff", empty, tmp.path("a")])
        #expect(e.status == 2)
        #expect(e.stderr.contains("has no readable metrics.jsonl"), "\(e.stderr)")
    }
}
