import Foundation
import Logging
import Testing
import RNN
import Series
import Wire
import ZeroMQ
@testable import Training
import Simulation
import Support

/// Coordinator and workers as pure state machines, every message encoded and decoded by `Wire`,
/// delivered in order, with a virtual clock (the package's simulated network).
typealias Harness = SimulatedCluster

func referenceSeries() throws -> Series { try Series.sincos() }

func parallelConfig(steps: Int = 200, batch: Int = 48, microBatch: Int = 5) -> TrainingConfig {
    TrainingConfig(
        model: ModelConfig(inputSize: 2, hiddenSize: 12, outputSize: 2, seqLen: 4),
        optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2), data: .sincos(points: 1000, from: 0, to: 100),
        batch: batch, microBatch: microBatch, epochs: nil, steps: steps, seed: 3, shuffle: true,
        clipNorm: 1.0, targetLoss: nil, validationFraction: 0)
}

@Suite("Data-parallel: coordinator and workers")
struct DataParallelTests {
    @Test func sameBitsForInProcessAnd1To4WorkersAndAnyThreads() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 210)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        for (n, threads) in [(1, 1), (2, 1), (3, 2), (4, 1), (2, 3)] {
            let h = try Harness(config: config, series: series, workers: n, threads: threads)
            try h.run()
            #expect(h.coordinator.failure == nil)
            #expect(h.coordinator.state.step == 210)
            #expect(h.coordinator.state.parameters == reference, "\(n) workers, \(threads) threads differ from in-process")
        }
    }

    /// The epoch's evaluation runs while the next step computes; when it finds the target reached,
    /// that step is dropped unapplied: the run ends exactly where the in-process run ends, with
    /// the same weights, metrics and window accounting.
    @Test func aTargetReachedDuringTheNextStepEndsTheRunWhereInProcessEnds() throws {
        let series = try referenceSeries()
        var config = parallelConfig(steps: 1, batch: 64, microBatch: 8)
        config.steps = nil
        config.epochs = 100
        let probe = try InProcessTrainer(config: config, series: series).run()
        // a target the run reaches after a few epochs
        config.targetLoss = probe.metrics[min(4, probe.metrics.count - 1)].loss * 1.0001
        let reference = try InProcessTrainer(config: config, series: series).run()
        #expect(reference.targetReached == true && reference.epochs < 100)
        let h = try Harness(config: config, series: series, workers: 2)
        try h.run()
        #expect(h.coordinator.failure == nil)
        #expect(h.coordinator.state.parameters == reference.parameters)
        #expect(h.coordinator.state.step == reference.steps)
        #expect(h.coordinator.metrics.map(\.loss) == reference.metrics.map(\.loss))
        #expect(h.coordinator.workers.values.map(\.samples).reduce(0, +) == reference.samples)
    }

    @Test func everyWindowOncePerEpoch() throws {
        let series = try referenceSeries()
        var config = parallelConfig(steps: 1, batch: 32, microBatch: 8)
        config.steps = nil
        config.epochs = 2
        let h = try Harness(config: config, series: series, workers: 3)
        try h.run()
        #expect(h.coordinator.metrics.map(\.samples) == [996, 996])
        #expect(h.coordinator.workers.values.map(\.samples).reduce(0, +) == 2 * 996)
    }

    @Test(arguments: [false, true])
    func aLostWorkersLeavesAreRecoveredAndTheBitsDoNotChange(speculate: Bool) throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 40)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let h = try Harness(config: config, series: series, workers: 3,
                            options: CoordinatorOptions(workers: 3, speculate: speculate))
        // worker 2 dies when its 10th assignment arrives (the message is lost with it)
        var seen = 0
        let victim = h.workers[1].peer
        h.filter = { peer, env in
            guard peer == victim, case .assign = env.message else { return true }
            seen += 1
            if seen == 10 {
                h.workers[1].alive = false
                return false
            }
            return true
        }
        try h.run()
        #expect(h.coordinator.failure == nil)
        if speculate {
            #expect(h.coordinator.speculative >= 1, "idle workers should have copied the straggler's leaves")
        } else {
            #expect(h.coordinator.workers[victim]?.phase == .dead)
            #expect(h.coordinator.reassigned >= 1, "the dead worker's leaves should have been reassigned")
        }
        #expect(h.coordinator.state.parameters == reference)
    }

    @Test func droppedAnswersAreAskedAgainAndDuplicatesIgnored() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 30)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let h = try Harness(config: config, series: series, workers: 2,
                            options: CoordinatorOptions(workers: 2, retryAfter: 0.2, speculate: false))
        // every 7th ASSIGN is lost on the way; every 5th is delivered twice
        var n = 0
        h.filter = { _, env in
            guard case .assign = env.message else { return true }
            n += 1
            return n % 7 != 0
        }
        h.duplicateEvery = 5
        try h.run()
        #expect(h.coordinator.failure == nil)
        #expect(h.coordinator.retried >= 1)
        #expect(h.coordinator.lateOrDuplicate >= 1)
        #expect(h.coordinator.state.parameters == reference)
    }

    @Test func aResumedRunEndsWithTheSameBitsAsAnUninterruptedOne() throws {
        let series = try referenceSeries()
        var config = parallelConfig(steps: 1)
        config.steps = nil
        config.epochs = 3  // 3 epochs of 21 steps: the checkpoint falls mid-epoch
        let clean = try Harness(config: config, series: series, workers: 2)
        try clean.run()
        let reference = clean.coordinator.state.parameters
        #expect(clean.coordinator.state.step == 63)

        // first life: checkpoints every 10 steps, dies (stops being driven) after step 35
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zt-ckpt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let store = CheckpointStore(runDirectory: tmp, keep: 2)
        let first = try Harness(config: config, series: series, workers: 3)
        first.coordinator.checkpointEvery = 10
        first.coordinator.onCheckpoint = { c in try? store.save(c) }
        first.stopAfterStep = 35
        try first.run()
        #expect(store.files().map(\.lastPathComponent) == ["step-0000000020.safetensors", "step-0000000030.safetensors"])
        let saved = try store.latest()
        #expect(saved.counters.step == 30 && saved.runID == 42 && saved.metrics.count == 1)

        // second life: a new coordinator from the file, new workers (another count, too)
        let second = try Harness(config: config, series: series, workers: 1, resume: saved)
        try second.run()
        #expect(second.coordinator.failure == nil)
        #expect(second.coordinator.state.step == 63)
        #expect(second.coordinator.state.parameters == reference)
        #expect(second.coordinator.metrics.map(\.samples) == [996, 996, 996])
        #expect(second.coordinator.metrics.map(\.loss) == clean.coordinator.metrics.map(\.loss))
    }

    @Test func aDamagedNewestCheckpointFallsBackToTheOneBefore() throws {
        let series = try referenceSeries()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zt-ckpt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let store = CheckpointStore(runDirectory: tmp, keep: 3)
        let h = try Harness(config: parallelConfig(steps: 20), series: series, workers: 1)
        h.coordinator.checkpointEvery = 5
        h.coordinator.onCheckpoint = { c in try? store.save(c) }
        try h.run()
        let files = store.files()
        #expect(files.count == 3)
        let newest = try #require(files.last)
        let bytes = try Data(contentsOf: newest)
        try bytes.prefix(bytes.count / 2).write(to: newest)  // a torn write
        #expect(try store.latest().counters.step == 15)
        #expect(throws: TrainingError.self) { try CheckpointStore(runDirectory: tmp.appendingPathComponent("none"), keep: 1).latest() }
    }

    @Test func workersJoinAndLeaveMidRunWithoutChangingABit() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 60)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let h = try Harness(config: config, series: series, workers: 4,
                            options: CoordinatorOptions(workers: 1, maxWorkers: 3))
        h.joinAt = [1: 10, 2: 20, 3: 25]  // worker 3 is one too many while 0, 1, 2 are in
        h.leaveAt = [0: 30]
        try h.run()
        #expect(h.coordinator.failure == nil && h.coordinator.state.step == 60)
        #expect(h.coordinator.state.parameters == reference)
        let records = h.coordinator.workers
        #expect(records[h.workers[0].peer]?.phase == .left)
        #expect((records[h.workers[1].peer]?.samples ?? 0) > 0 && (records[h.workers[2].peer]?.samples ?? 0) > 0)
        #expect(h.workers[3].core.failure?.contains("--max-workers 3") == true, "\(h.workers[3].core.failure ?? "nil")")
    }

    @Test func aWorkerExpectingAnotherModelIsRefusedWithTheDifference() throws {
        let series = try referenceSeries()
        let h = try Harness(config: parallelConfig(steps: 5), series: series, workers: 2,
                            options: CoordinatorOptions(workers: 1, joinTimeout: 1)) { i in
            WorkerOptions(threads: 1, expect: i == 0 ? Expectation(hidden: 64, input: nil, output: nil, seqLen: nil, cell: nil, activation: nil, microBatch: nil) : nil,
                          host: "test", pid: 1)
        }
        try h.run()
        let refused = h.workers[0].core
        #expect(refused.phase == .done)
        #expect(refused.failure?.contains("worker expects --hidden 64 but the run has hidden 12") == true, "\(refused.failure ?? "nil")")
        #expect(h.coordinator.state.step == 5)  // the other worker trained
    }

    @Test func aWrongProtocolVersionIsRefusedWithBothVersions() throws {
        let series = try referenceSeries()
        let core = try CoordinatorCore(config: parallelConfig(steps: 1), series: series, options: CoordinatorOptions(workers: 1), runID: 9)
        var frames = Wire.encode(Envelope(runID: 0, workerID: 0, message: .hello(WorkerCore(options: WorkerOptions(threads: 1)).hello().helloBody)))
        frames[0][4] = 1  // version 1 (this build speaks 3)
        let outcome: [Outgoing] = {
                do throws(WireError) {
                    _ = try Wire.decode(frames: frames, limits: core.limits)
                    return []
                } catch {
                    return core.rejectFrame(from: PeerID([1]), error: error, now: 0)
                }
            }()
        guard case .reject(let reason)? = outcome.first?.envelope.message else {
            Issue.record("no REJECT for a version-1 frame")
            return
        }
        #expect(reason.contains("protocol version 1") && reason.contains("speaks 3"))
    }

    @Test func aWorkerWithOtherNumericsIsNamedInAWarning() throws {
        let series = try referenceSeries()
        let events = EventLog()
        let core = try CoordinatorCore(config: parallelConfig(steps: 2), series: series,
                                       options: CoordinatorOptions(workers: 2), runID: 11) { events.append($0) }
        let hello = Hello(protocolVersion: Int(Wire.protocolVersion), host: "odd-host", pid: 4242, threads: 1, ztrainVersion: "x", expect: nil)
        for (peer, fp) in [(PeerID([1]), core.fingerprint), (PeerID([2]), core.fingerprint ^ 1)] {
            let welcome = core.handle(Envelope(runID: 0, workerID: 0, message: .hello(hello)), from: peer, bytes: 0, now: 0)
            let id = try #require(welcome.first?.envelope.workerID)
            _ = core.handle(Envelope(runID: 11, workerID: id, message: .ready(Ready(numericsFingerprint: fp, threads: 1))), from: peer, bytes: 0, now: 0)
        }
        let flagged = events.all.compactMap { e -> WorkerRecord? in if case .fingerprintMismatch(let w) = e { return w } else { return nil } }
        #expect(flagged.count == 1 && flagged.first?.id == 2 && flagged.first?.host == "odd-host")
        #expect(core.workers[PeerID([1])]?.fingerprintMatches == true && core.workers[PeerID([2])]?.fingerprintMatches == false)
        // the fingerprint is a property of the numerics: the same on every call, different for another model
        #expect(numericsFingerprint(config: parallelConfig().model, series: series, microBatch: 5) == core.fingerprint)
        var other = parallelConfig().model
        other.hiddenSize = 13
        #expect(numericsFingerprint(config: other, series: series, microBatch: 5) != core.fingerprint)
    }

    @Test func hostileAssignIsIgnoredByTheWorker() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 3)
        let coordinator = try CoordinatorCore(config: config, series: series, options: CoordinatorOptions(workers: 1), runID: 5)
        let worker = WorkerCore(options: WorkerOptions(threads: 1, host: "t", pid: 1))
        let welcome = coordinator.handle(worker.hello(), from: PeerID([9]), bytes: 0, now: 0)
        let ready = try #require(welcome.first.map { worker.handle($0.envelope) })
        #expect(worker.phase == .ready && ready.count == 1)
        let P = ParameterLayout(config.model).count
        func send(_ a: Assign, runID: UInt64? = nil) -> [Envelope] {
            worker.handle(Envelope(runID: runID ?? worker.runID, workerID: worker.workerID, message: .assign(a)))
        }
        let zeros = [Float](repeating: 0, count: P)
        let hostile = [
            Assign(step: 0, leaves: 0..<1, leafCount: 1, weights: zeros, windows: [UInt32(996)]),   // target past the end
            Assign(step: 0, leaves: 0..<9, leafCount: 9, weights: zeros, windows: [0]),             // leaves outside the tree
            Assign(step: 0, leaves: 0..<1, leafCount: 1, weights: [1], windows: [0]),               // wrong weight count
            Assign(step: 0, leaves: 1..<1, leafCount: 1, weights: zeros, windows: [0]),             // empty run
        ]
        for a in hostile { #expect(send(a).isEmpty) }
        #expect(send(Assign(step: 0, leaves: 0..<1, leafCount: 1, weights: zeros, windows: [0]), runID: 77).isEmpty)  // other run
        #expect(worker.ignored == 5)
        // a sound ASSIGN still gets its gradient
        let good = send(Assign(step: 0, leaves: 0..<1, leafCount: 1, weights: zeros, windows: [995]))
        guard case .gradient(let g)? = good.first?.message else {
            Issue.record("no GRADIENT for a sound ASSIGN")
            return
        }
        #expect(g.samples == 1 && g.sums.count == P + 1)
    }
}

extension Envelope {
    var helloBody: Hello {
        if case .hello(let h) = message { return h }
        return Hello(protocolVersion: 1, host: "", pid: 0, threads: 1, ztrainVersion: "", expect: nil)
    }
}

@Suite("Data-parallel over real ZeroMQ sockets")
struct SocketTrainingTests {
    func train(endpoint: String, workers n: Int, threads: Int = 1, steps: Int = 60, delay: Double = 0,
               options: CoordinatorOptions? = nil) throws -> (CoordinatorCore, [String?]) {
        let series = try referenceSeries()
        let logger = Logger(label: "test")
        let core = try CoordinatorCore(config: parallelConfig(steps: steps), series: series,
                                       options: options ?? CoordinatorOptions(workers: n, joinTimeout: 30), runID: 7)
        let server = try CoordinatorServer(core: core, bind: endpoint, logger: logger)
        let bound = server.endpoint
        let stop = StopFlag()
        let outcomes = Outcomes(n)
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    var opts = WorkerOptions(threads: threads, host: "t", pid: Int32(i))
                    opts.artificialDelay = delay
                    let client = try WorkerClient(core: WorkerCore(options: opts), connect: bound, logger: logger)
                    outcomes.set(i, client.run(stop: stop, connectTimeout: 20))
                    client.close()
                } catch {
                    outcomes.set(i, "\(error)")
                }
            }
        }
        server.run(stop: StopFlag())
        if group.wait(timeout: .now() + 20) == .timedOut { stop.set() }
        group.wait()
        server.close()
        return (core, outcomes.values)
    }

    @Test func tcpLoopbackEphemeralPortMatchesInProcess() throws {
        let reference = try InProcessTrainer(config: parallelConfig(steps: 60), series: try referenceSeries()).run().parameters
        let (core, outcomes) = try train(endpoint: "tcp://127.0.0.1:*", workers: 2)
        #expect(core.failure == nil)
        #expect(outcomes.allSatisfy { $0 == nil }, "\(outcomes)")
        #expect(core.state.parameters == reference)
        #expect(core.bytesIn > 0 && core.bytesOut > 0)
    }

    @Test func aWorkerSlowerThanTheLivenessWindowStaysAlive() throws {
        // each computation takes 1.5 s, the liveness window is 1 s: heartbeats must flow meanwhile
        // (a window wide enough that a loaded machine does not delay a heartbeat past it)
        let options = CoordinatorOptions(workers: 2, joinTimeout: 30, liveness: 1.0, heartbeat: 0.2, retryAfter: 30, speculate: false)
        let (core, outcomes) = try train(endpoint: "tcp://127.0.0.1:*", workers: 2, steps: 3, delay: 1.5, options: options)
        #expect(core.failure == nil && outcomes.allSatisfy { $0 == nil }, "\(outcomes)")
        #expect(core.state.step == 3)
        #expect(core.workers.values.allSatisfy { $0.phase == .ready }, "a slow worker was declared dead")
        #expect(core.reassigned == 0)
    }

    @Test func ipcInATempDirectoryMatchesInProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zt-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let reference = try InProcessTrainer(config: parallelConfig(steps: 40), series: try referenceSeries()).run().parameters
        let (core, outcomes) = try train(endpoint: "ipc://\(dir.path)/c.sock", workers: 3, threads: 2, steps: 40)
        #expect(core.failure == nil && outcomes.allSatisfy { $0 == nil })
        #expect(core.state.parameters == reference)
    }
}

/// Results written by worker threads.
final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String?]
    init(_ n: Int) { storage = Array(repeating: "not finished", count: n) }
    func set(_ i: Int, _ v: String?) { lock.lock(); storage[i] = v; lock.unlock() }
    var values: [String?] { lock.lock(); defer { lock.unlock() }; return storage }
}

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [CoordinatorEvent] = []
    func append(_ e: CoordinatorEvent) { lock.lock(); events.append(e); lock.unlock() }
    var all: [CoordinatorEvent] { lock.lock(); defer { lock.unlock() }; return events }
}

@Suite("Workers that read the data themselves")
struct SharedDataWorkerTests {
    func welcome(config: TrainingConfig, series: Series, worker: WorkerCore) throws -> [Envelope] {
        var options = CoordinatorOptions(workers: 1)
        options.sharedData = true
        let coordinator = try CoordinatorCore(config: config, series: series, options: options, runID: 5)
        let out = coordinator.handle(worker.hello(), from: PeerID(Array("w".utf8)), bytes: 100, now: 0)
        let env = try #require(out.first?.envelope)
        guard case .welcome(let w, let values) = env.message else { Issue.record("no WELCOME: \(env.message)"); return [] }
        #expect(w.sharedData == true && values.isEmpty)
        // the frame is what a worker receives: encoded and decoded
        return worker.handle(try Wire.decode(frames: Wire.encode(env), limits: .handshake))
    }

    @Test func theSameDataIsReadyAnotherIsRefusedByHash() throws {
        let series = try referenceSeries(), config = parallelConfig()
        var good = WorkerOptions(threads: 1, host: "h", pid: 1)
        good.loadData = { _ in series }
        let ready = try welcome(config: config, series: series, worker: WorkerCore(options: good))
        guard case .ready? = ready.first?.message else { Issue.record("\(ready)"); return }

        var other = WorkerOptions(threads: 1, host: "h", pid: 2)
        other.loadData = { _ in try Series.sincos(points: 1000, from: 0, to: 99) }
        let core = WorkerCore(options: other)
        let bye = try welcome(config: config, series: series, worker: core)
        guard case .bye(let reason)? = bye.first?.message else { Issue.record("\(bye)"); return }
        #expect(reason.contains("is not the coordinator's") && reason.contains("--shared-data"), "\(reason)")

        let none = WorkerCore(options: WorkerOptions(threads: 1, host: "h", pid: 3))
        let refused = try welcome(config: config, series: series, worker: none)
        guard case .bye(let why)? = refused.first?.message else { Issue.record("\(refused)"); return }
        #expect(why.contains("read the data itself"), "\(why)")
    }
}
