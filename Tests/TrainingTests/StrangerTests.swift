import Foundation
import Testing
import RNN
import Series
import Wire
@testable import Training

/// Slow steps, divergence and strangers, with the coordinator as a state machine.
@Suite("Coordinator: slow steps, divergence, strangers")
struct StrangerTests {
    @Test func aSlowStepGetsAtMostOneRetryPerOrderBackingOff() {
        // one worker, a step that takes "forever", retries after 0.2 s, looked at every 50 ms for 60 s
        var agg = StepAggregator(width: 3)
        let first = agg.begin(step: 1, windows: 40, microBatch: 4, workers: [1], now: 0)
        #expect(first.count == 1)
        var orders = 0
        var t = 0.0
        while t < 60 && orders <= 10_000 {
            t += 0.05
            orders += agg.overdue(now: t, timeout: 0.2, live: [1]).count
        }
        // each copy waits twice as long as the one before (capped at 64 × 0.2 s): a handful, not 2^300
        #expect(orders >= 1 && orders <= 12, "\(orders) retries in 60 s")
        #expect(agg.retried == orders)
    }

    @Test func aRetryGoesToAnotherWorkerOnceAndTheFirstAnswerStillCounts() {
        var agg = StepAggregator(width: 2)
        _ = agg.begin(step: 1, windows: 4, microBatch: 2, workers: [1, 2], now: 0)
        // worker 2 answers at once, worker 1 is slow
        let one: [Float] = [1, 1]
        one.withUnsafeBufferPointer { b in
            #expect(agg.accept(worker: 2, step: 1, block: 1..<2, leafCount: 2, samples: 2, sums: b, now: 0.01) == .accepted)
        }
        let retry = agg.overdue(now: 0.3, timeout: 0.2, live: [1, 2])
        #expect(retry.map(\.worker) == [2] && retry.map(\.run) == [0..<1])
        // no further copy until the copy's own (doubled) wait has passed
        #expect(agg.overdue(now: 0.5, timeout: 0.2, live: [1, 2]).isEmpty)
        // the slow worker's answer to its original order is still taken
        one.withUnsafeBufferPointer { b in
            #expect(agg.accept(worker: 1, step: 1, block: 0..<1, leafCount: 2, samples: 2, sums: b, now: 0.6) == .accepted)
        }
        #expect(agg.isComplete)
    }

    @Test func divergenceUnderWorkersIsTheInProcessDiagnosisAtOnce() throws {
        let series = try referenceSeries()
        var config = parallelConfig(steps: 50, batch: 32, microBatch: 8)
        config.model = ModelConfig(inputSize: 2, hiddenSize: 12, outputSize: 2, seqLen: 40, activation: .relu)
        config.optimizer = OptimizerConfig(kind: .sgd, learningRate: 1e4)
        config.clipNorm = nil
        var inProcess: TrainingError?
        do { _ = try InProcessTrainer(config: config, series: series).run() } catch { inProcess = error }
        guard let expected = inProcess, case .diverged = expected else {
            Issue.record("the configuration was meant to diverge in-process: \(String(describing: inProcess))")
            return
        }
        let h = try Harness(config: config, series: series, workers: 2,
                            options: CoordinatorOptions(workers: 2, retryAfter: 0.2, speculate: false))
        try h.run(maxTime: 30)
        #expect(h.coordinator.isDone)
        #expect(h.coordinator.failure.map { "\($0)" } == "\(expected)")
        #expect(h.coordinator.droppedFrames == 0)
        #expect(h.coordinator.retried == 0)
    }

    @Test func strangersWhoNeverBecomeReadyAreForgottenAndTheBitsDoNotChange() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 300)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let h = try Harness(config: config, series: series, workers: 2,
                            options: CoordinatorOptions(workers: 2, handshakeTimeout: 1))
        // 500 strangers say HELLO while the run goes on, and then only heartbeat
        let strangers = (0..<500).map { PeerID([0xEE, UInt8($0 & 0xFF), UInt8($0 >> 8)]) }
        let hello = WorkerCore(options: WorkerOptions(threads: 1, host: "stranger", pid: 1)).hello()
        h.stopAfterStep = 20
        try h.run()
        for s in strangers { h.post(hello, from: s) }
        h.stopAfterStep = 60
        try h.run()
        for s in strangers { h.post(Envelope(runID: h.coordinator.runID, workerID: 0, message: .heartbeat), from: s) }
        h.stopAfterStep = nil
        try h.run()
        #expect(h.coordinator.failure == nil)
        #expect(h.coordinator.state.parameters == reference)
        // none of them is kept once its handshake has timed out: not in the worker table, not in the summary
        _ = h.coordinator.tick(now: h.now + 1.5)
        #expect(h.coordinator.workers.count == 2, "\(h.coordinator.workers.count) records")
        // (each later `run()` repeats the two workers' HELLOs too: those handshakes are abandoned as well)
        #expect(h.coordinator.abandonedHandshakes + h.coordinator.deferredHellos == 504)
    }

    @Test func strangersGetAtMostAFewWelcomesAtOnce() throws {
        let series = try Series.sincos(points: 200_000)
        var config = parallelConfig(steps: 5)
        config.data = .sincos(points: 200_000, from: 0, to: 100)
        let core = try CoordinatorCore(config: config, series: series, options: CoordinatorOptions(workers: 1), runID: 9)
        let hello = WorkerCore(options: WorkerOptions(threads: 1, host: "stranger", pid: 1)).hello()
        var welcomes = 0
        for i in 0..<40 {
            for o in core.handle(hello, from: PeerID([0xEE, UInt8(i)]), bytes: 300, now: 0.1) {
                if case .welcome = o.envelope.message { welcomes += 1 }
            }
        }
        // a HELLO said again by a peer already being welcomed gets nothing more
        for o in core.handle(hello, from: PeerID([0xEE, 0]), bytes: 300, now: 0.2) {
            if case .welcome = o.envelope.message { welcomes += 1 }
        }
        #expect(welcomes == core.maxPendingHandshakes)
        #expect(core.maxPendingHandshakes <= 8)
        #expect(core.deferredHellos == 40 - welcomes)
        // once they time out, the slots are free again
        _ = core.tick(now: 60)
        #expect(core.workers.isEmpty && core.abandonedHandshakes == welcomes)
    }

    @Test func heartbeatOnlyPeersHoldNoMaxWorkersSlot() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 30)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let h = try Harness(config: config, series: series, workers: 2,
                            options: CoordinatorOptions(workers: 2, maxWorkers: 2))
        let hello = WorkerCore(options: WorkerOptions(threads: 1, host: "squatter", pid: 1)).hello()
        // two squatters say HELLO first (and then would only heartbeat)
        for i in 0..<2 { h.post(hello, from: PeerID([0xEE, UInt8(i)])) }
        try h.run()
        #expect(h.coordinator.failure == nil)
        #expect(h.coordinator.state.parameters == reference)
    }

    @Test func aWorkerRefusedByMaxWorkersIsToldWhoHoldsTheSlots() throws {
        let series = try referenceSeries()
        let h = try Harness(config: parallelConfig(steps: 10), series: series, workers: 1,
                            options: CoordinatorOptions(workers: 1, maxWorkers: 1))
        h.stopAfterStep = 2
        try h.run()
        let extra = WorkerCore(options: WorkerOptions(threads: 1, host: "late", pid: 77))
        let out = h.coordinator.handle(extra.hello(), from: PeerID([0xAB]), bytes: 300, now: h.now)
        let reasons = out.compactMap { o -> String? in if case .reject(let r) = o.envelope.message { return r } else { return nil } }
        #expect(reasons.count == 1)
        #expect(reasons.first?.contains("--max-workers 1 ready workers: worker 1 (test pid 1000)") == true, "\(reasons)")
    }

    @Test func nonFiniteWeightsEndTheRunAtOnceAsDivergence() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 10)
        var weights = try InProcessTrainer(config: config, series: series).parameters
        weights[3] = .nan
        let core = try CoordinatorCore(config: config, series: series, initialParameters: weights,
                                       options: CoordinatorOptions(workers: 1), runID: 3)
        let worker = WorkerCore(options: WorkerOptions(threads: 1, host: "w", pid: 1))
        var inbox = core.handle(worker.hello(), from: PeerID([1]), bytes: 300, now: 0)
        var t = 0.0
        while !core.isDone && t < 30 {
            var replies: [Envelope] = []
            for o in inbox { replies += worker.handle(o.envelope) }
            inbox = []
            for r in replies { inbox += core.handle(r, from: PeerID([1]), bytes: 100, now: t) }
            t += 0.05
            inbox += core.tick(now: t)
        }
        #expect(core.isDone && t < 1, "still running after \(t) s")
        guard case .diverged(let why)? = core.failure else {
            Issue.record("expected divergence, got \(String(describing: core.failure))")
            return
        }
        #expect(why.contains("weight 3 is nan"), "\(why)")
        #expect(core.retried == 0)
    }

    @Test func aJoinTimeoutSaysWhoCameAndNeverBecameReady() throws {
        let core = try CoordinatorCore(config: parallelConfig(steps: 5), series: try referenceSeries(),
                                       options: CoordinatorOptions(workers: 1, joinTimeout: 5, handshakeTimeout: 1), runID: 4)
        let hello = WorkerCore(options: WorkerOptions(threads: 1, host: "squatter", pid: 1)).hello()
        _ = core.handle(hello, from: PeerID([0xEE]), bytes: 300, now: 0)
        for t in stride(from: 0.5, through: 6, by: 0.5) {
            _ = core.handle(Envelope(runID: core.runID, workerID: 1, message: .heartbeat), from: PeerID([0xEE]), bytes: 64, now: t)
            _ = core.tick(now: t)
        }
        let message = core.failure.map { "\($0)" } ?? ""
        #expect(message.contains("1 peer(s) welcomed but never READY"), "\(message)")
        #expect(!message.contains("--bind"), "\(message)")
    }
}
