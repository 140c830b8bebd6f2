import Checkpoint
import Foundation
import Testing
import Training

/// Ctrl-C of a sharded run: between sync steps the coordinator's copy of the weights is behind, so the
/// stop fetches the owners' slices first and its checkpoint is of the step the run stopped at.
@Suite("Sharded aggregation: Ctrl-C between sync steps")
struct ShardedStopCLITests {
    @Test func ctrlCLeavesACheckpointThatResumesToTheSameBits() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        // no periodic checkpoint falls in the run: the one written is the stop's
        let training = ["--hidden", "128", "--steps", "1500", "--batch", "40", "--micro-batch", "4", "--seed", "3",
                        "--checkpoint-every", "100000", "--keep", "1"]
        let clean = try runZtrain(["train", "--in-process", "--out", tmp.path("clean"), "--quiet"] + training, timeout: 300)
        #expect(clean.status == 0, "\(clean.stderr)")

        let run = tmp.path("run")
        let sharded = ["--workers", "2", "--aggregation", "sharded"]
        let log = tmp.url.appendingPathComponent("first.log")
        let child = try Child("train", ["train", "--out", run] + sharded + training, log: log)
        defer { if child.isRunning { child.kill9() } }
        let deadline = Date().addingTimeInterval(120)
        while epochsWritten(run) < 1 && child.isRunning && Date() < deadline { usleep(10_000) }
        usleep(UInt32.random(in: 50_000...300_000))  // somewhere between sync steps, most likely
        #expect(child.isRunning, "the run ended before the signal")
        child.signal(SIGINT)
        #expect(child.wait(timeout: 60), "SIGINT did not stop the run")
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(child.process.terminationReason == .exit && child.process.terminationStatus == 130, "\(text.suffix(2000))")

        let store = CheckpointStore(runDirectory: URL(fileURLWithPath: run, isDirectory: true), keep: 1)
        let saved = try #require(store.files().last, "no checkpoint after Ctrl-C:\n\(text.suffix(2000))")
        let checkpoint = try CheckpointStore.load(saved)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any])
        let stoppedAt = try #require(summary["steps"] as? Int)
        #expect(checkpoint.counters.step == stoppedAt, "the checkpoint is of step \(checkpoint.counters.step), the run stopped at \(stoppedAt)")
        #expect(stoppedAt < 1500)
        #expect(try loadModel(path: run + "/model.safetensors").parameters == checkpoint.parameters)
        print("sharded Ctrl-C: stopped at step \(stoppedAt) (\(stoppedAt % 16 == 0 ? "a" : "not a") sync step)")

        let resumed = try runZtrain(["train", "--auto-resume", "--out", run] + sharded + training, timeout: 300)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming run"), "\(resumed.stderr)")
        #expect(try loadModel(path: run + "/model.safetensors").parameters == loadModel(path: tmp.path("clean/model.safetensors")).parameters,
                "the resumed run's weights differ from the uninterrupted run's")
    }
}
