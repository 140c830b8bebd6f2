import Checkpoint
import Foundation
import Testing
import Training

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
private func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() > deadline { return false }
        usleep(20_000)
    }
    return true
}

private func parameters(_ run: String) throws -> [Float] {
    try loadModel(path: run + "/model.safetensors").parameters
}

private func losses(_ run: String) throws -> [Double] {
    try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
        let m = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        return try #require(m["loss"] as? Double)
    }
}

private func store(_ run: String) -> CheckpointStore {
    CheckpointStore(runDirectory: URL(fileURLWithPath: run, isDirectory: true), keep: 1)
}

/// The bytes and modification times of every file under `dir`.
private func snapshot(_ dir: String) throws -> [String: String] {
    var out: [String: String] = [:]
    let fm = FileManager.default
    for name in try #require(fm.subpathsOfDirectory(atPath: dir) as [String]?) {
        let path = dir + "/" + name
        let attributes = try fm.attributesOfItem(atPath: path)
        let date = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let data = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
        out[name] = "\(date) \(data.count) \(data.hashValue)"
    }
    return out
}

@Suite("Checkpoints, resume and interrupts on the command line")
struct ResumeCLITests {
    @Test func ctrlCInTheDefaultModeSavesTheRun() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("run")
        let log = tmp.url.appendingPathComponent("train.log")
        let child = try Child("train", ["train", "--hidden", "64", "--epochs", "100000", "--out", run], log: log)
        #expect(waitUntil(timeout: 120) { epochsWritten(run) >= 1 || !child.isRunning })
        #expect(child.isRunning, "the run ended before the signal")
        child.signal(SIGINT)
        #expect(child.wait(timeout: 60), "SIGINT did not stop the run")
        if child.isRunning { child.kill9() }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(child.process.terminationReason == .exit && child.process.terminationStatus == 130, "\(text.suffix(2000))")
        for name in ["model.safetensors", "summary.json", "loss.svg", "metrics.jsonl"] {
            #expect(FileManager.default.fileExists(atPath: run + "/" + name), "\(name) missing after Ctrl-C")
        }
        #expect(text.contains("stopped by signal 2") && text.contains("summary.json and loss.svg saved to"), "\(text.suffix(2000))")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any])
        #expect((summary["error"] as? String)?.contains("stopped by signal 2") == true)
        #expect((summary["steps"] as? Int ?? 0) >= 32)
    }

    @Test func aKilledInProcessRunResumesToTheSameBits() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let training = ["--steps", "3000", "--checkpoint-every", "100", "--keep", "2", "--seed", "3", "--quiet"]
        let clean = try runZtrain(["train", "--out", tmp.path("clean")] + training, timeout: 300)
        #expect(clean.status == 0, "\(clean.stderr)")

        let run = tmp.path("run")
        let child = try Child("train", ["train", "--out", run] + training, log: tmp.url.appendingPathComponent("first.log"))
        #expect(waitUntil(timeout: 120) { store(run).files().count >= 1 || !child.isRunning })
        let wasRunning = child.isRunning
        child.kill9()
        #expect(wasRunning, "the run finished before it could be killed")

        // a restart with the same command, as systemd or Kubernetes would do it
        let resumed = try runZtrain(["train", "--auto-resume", "--out", run] + training.filter { $0 != "--quiet" }, timeout: 300)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming run"), "\(resumed.stderr)")
        #expect(try parameters(run) == parameters(tmp.path("clean")), "the resumed run's weights differ from the uninterrupted run's")
        #expect(try losses(run) == losses(tmp.path("clean")))
    }

    @Test func autoResumeAfterAKillDuringTheFirstCheckpointWriteStartsANewRun() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("run")
        let checkpoints = run + "/checkpoints"
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        let planted = checkpoints + "/.step-0000000005.safetensors.tmp-4242-9f3a"
        try Data(repeating: 0x5A, count: 3000).write(to: URL(fileURLWithPath: planted))
        let plantedModel = run + "/.model.safetensors.tmp-4242-77aa"
        try Data(repeating: 0x5A, count: 3000).write(to: URL(fileURLWithPath: plantedModel))

        let r = try runZtrain(["train", "--workers", "1", "--auto-resume", "--checkpoint-every", "5", "--steps", "12", "--out", run], timeout: 180)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("removed 2 unfinished write(s)") && r.stderr.contains("starting a new run"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: planted) && !FileManager.default.fileExists(atPath: plantedModel))
        #expect(store(run).files().map(\.lastPathComponent)
            == ["step-0000000005.safetensors", "step-0000000010.safetensors", "step-0000000012.safetensors"])
    }

    @Test func resumeRefusesContradictingFlagsAndAcceptsALongerRun() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("run")
        #expect(try runZtrain(["train", "--steps", "20", "--checkpoint-every", "10", "--out", run, "--quiet"]).status == 0)
        let before = try snapshot(run)

        let refused = try runZtrain(["train", "--resume", run, "--epochs", "100", "--lr", "0.5", "--hidden", "64"], timeout: 60)
        #expect(refused.exitedNormally && refused.status == 1)
        #expect(refused.stderr.contains("--lr 0.5 (the run has 0.01)") && refused.stderr.contains("--hidden 64 (the run has 32)"), "\(refused.stderr)")
        let coordinator = try runZtrain(["coordinator", "--workers", "1", "--resume", run, "--seed", "9"], timeout: 60)
        #expect(coordinator.status == 1 && coordinator.stderr.contains("--seed 9 (the run has 0)"), "\(coordinator.stderr)")
        #expect(try snapshot(run) == before, "a refused resume touched the run's folder")

        let longer = try runZtrain(["train", "--resume", run, "--steps", "40", "--hidden", "32"], timeout: 120)
        #expect(longer.status == 0, "\(longer.stderr)")
        #expect(longer.stderr.contains("--steps 20 -> 40"), "\(longer.stderr)")
        #expect(try runZtrain(["train", "--steps", "40", "--out", tmp.path("clean"), "--quiet"]).status == 0)
        #expect(try parameters(run) == parameters(tmp.path("clean")))
    }

    @Test func resumeChecksTheDataHash() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let csv = tmp.path("data.csv")
        var rows = (0..<200).map { i in "\(sin(Double(i) / 10)),\(cos(Double(i) / 10))" }
        try (["s,c"] + rows).joined(separator: "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        let run = tmp.path("run")
        let first = try runZtrain(["train", "--data", csv, "--steps", "8", "--checkpoint-every", "4", "--out", run, "--quiet"])
        #expect(first.status == 0, "\(first.stderr)")
        // the same shape, one value changed
        rows[17] = "0.5,0.5"
        try (["s,c"] + rows).joined(separator: "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        let r = try runZtrain(["train", "--resume", run, "--steps", "16"], timeout: 60)
        #expect(r.status == 1 && r.stderr.contains("hash changed"), "\(r.stderr)")
    }

    @Test func aTornOrFIFONewestCheckpointFallsBackWithAWarning() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("run")
        #expect(try runZtrain(["train", "--steps", "30", "--checkpoint-every", "10", "--keep", "5", "--out", run, "--quiet"]).status == 0)
        let checkpoints = run + "/checkpoints/"
        let torn = checkpoints + "step-0000000030.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: torn))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: torn))
        #expect(mkfifo(checkpoints + "step-0000000040.safetensors", 0o644) == 0)

        let r = try runZtrain(["train", "--resume", run], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("skipped checkpoint step-0000000040.safetensors") && r.stderr.contains("FIFO"), "\(r.stderr)")
        #expect(r.stderr.contains("skipped checkpoint step-0000000030.safetensors"), "\(r.stderr)")
        #expect(r.stderr.contains("from step 20"), "\(r.stderr)")
        #expect(try runZtrain(["train", "--steps", "30", "--out", tmp.path("clean"), "--quiet"]).status == 0)
        #expect(try parameters(run) == parameters(tmp.path("clean")))
    }

    @Test func resumingAFinishedRunSaysSoAndTouchesNothing() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("run")
        let first = try runZtrain(["train", "--workers", "1", "--steps", "12", "--checkpoint-every", "5", "--out", run, "--quiet"], timeout: 180)
        #expect(first.status == 0, "\(first.stderr)")
        let before = try snapshot(run)
        let r = try runZtrain(["coordinator", "--workers", "1", "--resume", run, "--bind", "ipc://" + tmp.path("c.sock"),
                               "--join-timeout", "5"], timeout: 60)
        #expect(r.status == 0 && r.stderr.contains("is complete"), "\(r.stderr)")
        let auto = try runZtrain(["train", "--auto-resume", "--steps", "12", "--checkpoint-every", "5", "--out", run], timeout: 60)
        #expect(auto.status == 0 && auto.stderr.contains("is complete"), "\(auto.stderr)")
        #expect(try snapshot(run) == before, "resuming a finished run changed its folder")
    }

    @Test func devicesFIFOsAndHugeCellsAreRefusedAtOnce() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let out = tmp.path("o")
        let fifo = tmp.path("pipe")
        #expect(mkfifo(fifo, 0o644) == 0)
        for (args, needle) in [(["--data", "/dev/zero"], "not a regular file"), (["--data", fifo], "FIFO"),
                               (["--init", "/dev/zero"], "not a regular file"), (["--init", fifo], "FIFO")] {
            let r = try runZtrain(["train"] + args + ["--out", out], timeout: 20)
            #expect(r.exitedNormally && r.status == 1 && r.stderr.contains(needle), "\(args): \(r.stderr.prefix(500))")
        }
        let csv = tmp.path("huge-cell.csv")
        try ("a,b\n1,2\n3," + String(repeating: "9x", count: 500_000) + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        let r = try runZtrain(["train", "--data", csv, "--out", out], timeout: 60)
        #expect(r.status == 1 && r.stderr.contains("(1000000 characters)") && r.stderr.count < 400, "\(r.stderr.prefix(500))")
    }

    /// In-process and with a worker process (its checkpoints then resume in-process: one format).
    @Test(arguments: [[String](), ["--workers", "1"]])
    func aFullDiskStopsTheRunWithTheLastGoodCheckpointIntact(_ mode: [String]) throws {
        guard getuid() == 0 else {
            print("skipped: mounting a small tmpfs to fill needs root")
            return
        }
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let mnt = tmp.path("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        // three checkpoints of H=256 (800 KB each) do not fit in 2 MB: the third write fails
        let mount = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], timeout: 30)
        try #require(mount.status == 0, "mount failed: \(mount.stderr)")
        defer { _ = try? runCommand("/bin/umount", ["-l", mnt], timeout: 30) }
        let run = mnt + "/run"
        let training = ["--hidden", "256", "--steps", "10", "--checkpoint-every", "2", "--keep", "3", "--quiet"]

        let r = try runZtrain(["train", "--out", run] + mode + training, timeout: 180)
        #expect(r.exitedNormally && r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("No space left on device") && r.stderr.contains("the run stopped at step 6"), "\(r.stderr)")
        #expect(r.stderr.contains("the newest whole checkpoint is step-0000000004.safetensors") && r.stderr.contains("--resume \(run)"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted()
            == ["step-0000000002.safetensors", "step-0000000004.safetensors"], "a temporary file was left, or a checkpoint lost")
        #expect(try store(run).latest().counters.step == 4)

        // with room again, the run continues from its last good checkpoint to the uninterrupted run's bits
        let remount = try runCommand("/bin/mount", ["-o", "remount,size=64m", mnt], timeout: 30)
        try #require(remount.status == 0, "remount failed: \(remount.stderr)")
        let resumed = try runZtrain(["train", "--resume", run, "--quiet"], timeout: 180)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let clean = try runZtrain(["train", "--out", tmp.path("clean")] + training, timeout: 180)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(try parameters(run) == parameters(tmp.path("clean")))
    }
}
