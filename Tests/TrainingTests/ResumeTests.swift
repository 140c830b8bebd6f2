import Checkpoint
import Foundation
import Testing
import RNN
import Series
@testable import Training

/// A fresh folder under the temp directory, removed by the caller.
private func tempRun() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("zt-resume-\(UUID().uuidString)")
}

private struct WriteFailed: Error {}

@Suite("In-process checkpoints and resume")
struct ResumeTests {
    let series = try! Series.sincos()

    /// Runs `config` in-process writing checkpoints every `every` steps into `store`, "killed" (stopped
    /// between steps, without the final checkpoint) after `killAt` steps; resumes from the newest
    /// checkpoint and checks the weights and epoch losses against an uninterrupted run.
    private func killAndResume(_ config: TrainingConfig, every: Int, killAt: Int, expectNewest: Int) throws {
        let clean = try InProcessTrainer(config: config, series: series)
        let reference = try clean.run()

        let dir = tempRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(runDirectory: dir, keep: 2, seriesFingerprint: series.fingerprint)
        let first = try InProcessTrainer(config: config, series: series)
        first.checkpointEvery = every
        first.onCheckpoint = { c throws(TrainingError) in try store.save(c) }
        first.shouldStop = { [unowned first] in first.state.step >= killAt }
        _ = try first.run()
        #expect(first.stopped)
        let saved = try store.latest()
        #expect(saved.counters.step == expectNewest)
        #expect(saved.seriesFingerprint == series.fingerprint)

        let second = try InProcessTrainer(config: config, series: series, resume: saved)
        #expect(second.runID == first.runID)
        let resumed = try second.run()
        #expect(resumed.parameters == reference.parameters, "the resumed run's weights differ from the uninterrupted run's")
        #expect(resumed.steps == reference.steps && resumed.epochs == reference.epochs)
        #expect(resumed.metrics.map(\.loss) == reference.metrics.map(\.loss))
        #expect(resumed.metrics.map(\.samples) == reference.metrics.map(\.samples))

        // stopped as by Ctrl-C: the checkpoint of where it stopped resumes to the same bits too
        let third = try InProcessTrainer(config: config, series: series, resume: first.checkpoint())
        #expect(third.state.step == killAt)
        #expect(try third.run().parameters == reference.parameters, "resuming where the run was stopped changed the bits")
    }

    @Test func aKilledMiniBatchRunResumesToTheSameBits() throws {
        // 3 epochs of 32 steps; the newest checkpoint (step 40) falls mid-epoch
        try killAndResume(referenceConfig(epochs: 3), every: 10, killAt: 47, expectNewest: 40)
    }

    @Test func aKilledFullBatchRunResumesToTheSameBits() throws {
        // one step per epoch: a checkpoint due at an epoch's end waits for the next step to measure its loss
        try killAndResume(referenceConfig(batch: 996, microBatch: 83, epochs: 14, target: 1e-9), every: 4, killAt: 10, expectNewest: 8)
    }

    @Test func inProcessAndCoordinatorCheckpointsAreTheSame() throws {
        let config = referenceConfig(epochs: 2)
        let dirA = tempRun(), dirB = tempRun()
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        let a = CheckpointStore(runDirectory: dirA, keep: 10), b = CheckpointStore(runDirectory: dirB, keep: 10)
        let t = try InProcessTrainer(config: config, series: series)
        t.checkpointEvery = 16
        t.onCheckpoint = { c throws(TrainingError) in try a.save(c) }
        _ = try t.run()
        let h = try Harness(config: config, series: series, workers: 2)
        h.coordinator.checkpointEvery = 16
        h.coordinator.onCheckpoint = { c throws(TrainingError) in try b.save(c) }
        try h.run()
        #expect(a.files().map(\.lastPathComponent) == b.files().map(\.lastPathComponent))
        for (x, y) in zip(a.files(), b.files()) {
            let cx = try CheckpointStore.load(x), cy = try CheckpointStore.load(y)
            #expect(cx.parameters == cy.parameters && cx.m == cy.m && cx.v == cy.v && cx.counters == cy.counters)
        }
    }

    @Test func aFailedCheckpointWriteStopsTheInProcessRun() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: 3), series: series)
        var calls = 0
        t.checkpointEvery = 5
        t.onCheckpoint = { c throws(TrainingError) in
            calls += 1
            if calls == 2 { throw .output("cannot write the checkpoint of step \(c.counters.step): No space left on device") }
        }
        #expect(throws: TrainingError.output("cannot write the checkpoint of step 10: No space left on device")) { try t.run() }
        #expect(t.state.step == 10, "the run went on after the failed write")
    }

    @Test func aFailedCheckpointWriteStopsTheCoordinator() throws {
        let h = try Harness(config: referenceConfig(epochs: 3), series: series, workers: 2)
        var calls = 0
        h.coordinator.checkpointEvery = 5
        h.coordinator.onCheckpoint = { c throws(TrainingError) in
            calls += 1
            if calls == 2 { throw .output("cannot write the checkpoint of step \(c.counters.step): No space left on device") }
        }
        try h.run()
        #expect(h.coordinator.isDone)
        #expect(h.coordinator.failure == .output("cannot write the checkpoint of step 10: No space left on device"))
        #expect(h.coordinator.state.step == 10, "the run went on after the failed write")
    }

    /// Writes a checkpoint of a short run with `edit` applied before it is saved.
    private func damagedCheckpoint(in dir: URL, _ edit: (inout RunCheckpoint) -> Void) throws -> CheckpointStore {
        let t = try InProcessTrainer(config: referenceConfig(epochs: nil, steps: 4), series: series)
        _ = try t.run()
        var c = t.checkpoint()
        edit(&c)
        let store = CheckpointStore(runDirectory: dir, keep: 5)
        try store.save(c)
        return store
    }

    /// Resume compatibility: the previous release wrote the JSON in the checkpoint's metadata with
    /// escaped slashes (`data\/nile.csv`); such a checkpoint still loads, to the same configuration.
    @Test func aCheckpointOfThePreviousReleaseStillLoads() throws {
        let dir = tempRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try damagedCheckpoint(in: dir) { c in c.config.data = .csv(path: "data/nile.csv", columns: ["flow"]) }
        let url = try #require(store.files().last)
        let saved = try CheckpointStore.load(url)
        let (tensors, written) = try SafeTensors.decode(AtomicFile.read(url.path), source: url.path)
        var meta = written
        #expect(meta["config"]?.contains("data/nile.csv") == true, "this release writes slashes as they are")
        let previous = JSONEncoder()
        previous.outputFormatting = [.sortedKeys]  // the previous release's writer
        meta["config"] = String(decoding: try previous.encode(saved.config), as: UTF8.self)
        #expect(meta["config"]?.contains(#"data\/nile.csv"#) == true)
        try AtomicFile.write(SafeTensors.encode(tensors: Array(tensors.values), metadata: meta), to: url.path)
        let loaded = try CheckpointStore.load(url)
        #expect(loaded.config == saved.config && loaded.parameters == saved.parameters)
    }

    @Test(arguments: [
        ("NaN weight", "weight 3 is nan"),
        ("infinite m", "optimizer moment m[5] is inf"),
        ("negative v", "optimizer moment v[7] is -1.0"),
        ("bad counters", "the recorded counters are inconsistent"),
    ])
    func aCheckpointWithInvalidStateIsRefused(_ damage: String, _ message: String) throws {
        let dir = tempRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try damagedCheckpoint(in: dir) { c in
            switch damage {
            case "NaN weight": c.parameters[3] = .nan
            case "infinite m": c.m[5] = .infinity
            case "negative v": c.v[7] = -1
            default: c.counters.optimizerStep = c.counters.step + 5
            }
        }
        var skipped: [String] = []
        #expect(store.newest(onSkip: { skipped.append($0) }) == nil)
        #expect(skipped.count == 1 && skipped[0].contains(message), "\(skipped)")
        #expect(throws: TrainingError.self) { try store.latest() }
    }

    @Test func aStaleTemporaryFileIsRemovedAndIsNoCheckpoint() throws {
        let dir = tempRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(runDirectory: dir, keep: 2)
        try FileManager.default.createDirectory(at: store.directory, withIntermediateDirectories: true)
        let planted = store.directory.appendingPathComponent(".step-0000000010.safetensors.tmp-4242-9f3a")
        try Data(repeating: 7, count: 100).write(to: planted)
        let other = store.directory.appendingPathComponent("notes.txt")
        try Data("keep me".utf8).write(to: other)
        #expect(store.files().isEmpty && store.newest() == nil)
        #expect(store.removeStaleTemporaries() == [".step-0000000010.safetensors.tmp-4242-9f3a"])
        #expect(!FileManager.default.fileExists(atPath: planted.path))
        #expect(FileManager.default.fileExists(atPath: other.path))
    }

    @Test func aFIFOAsTheNewestCheckpointIsSkippedWithoutBlocking() throws {
        let dir = tempRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try damagedCheckpoint(in: dir) { _ in }
        let fifo = store.directory.appendingPathComponent("step-0000000099.safetensors")
        #expect(mkfifo(fifo.path, 0o644) == 0)
        var skipped: [String] = []
        let c = store.newest(onSkip: { skipped.append($0) })
        #expect(c?.counters.step == 4)
        #expect(skipped.count == 1 && skipped[0].contains("FIFO"), "\(skipped)")
    }

    @Test func unusableCheckpointsAreSetAside() throws {
        let dir = tempRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try damagedCheckpoint(in: dir) { c in c.parameters[0] = .nan }
        #expect(store.setAsideUnusable() == ["step-0000000004.safetensors.unusable"])
        #expect(store.files().isEmpty)
    }

    @Test func aFinishedRunIsComplete() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: nil, steps: 6), series: series)
        _ = try t.run()
        var c = t.checkpoint()
        #expect(try c.isComplete(series: series))
        c.config.steps = 10
        #expect(try !c.isComplete(series: series))
    }

    @Test func aCheckpointOfAnotherSplitIsRefused() throws {
        let t = try InProcessTrainer(config: referenceConfig(epochs: nil, steps: 6), series: series)
        _ = try t.run()
        var c = t.checkpoint()
        c.counters.stepInEpoch = 500
        #expect(throws: TrainingError.self) { try InProcessTrainer(config: c.config, series: series, resume: c) }
    }
}
