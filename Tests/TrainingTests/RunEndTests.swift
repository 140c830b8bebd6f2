import Foundation
import Testing
import Wire
@testable import Training

/// How a run ends: what a coordinator killed at the end leaves, and who is told that the run is over.
@Suite("Run end: durable before the workers are told, and nobody left waiting")
struct RunEndTests {
    /// The run-end checkpoint is written before the first SHUTDOWN leaves: a coordinator killed
    /// after telling its workers is resumed as complete, never before the end with nobody to rejoin.
    @Test func theEndCheckpointIsWrittenBeforeAnyWorkerIsTold() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 23)
        let h = try Harness(config: config, series: series, workers: 2)
        // each checkpoint, and whether any worker had been told that the run is over when it was written
        nonisolated(unsafe) var saved: [(checkpoint: RunCheckpoint, anyoneTold: Bool)] = []
        h.coordinator.checkpointEvery = 10
        h.coordinator.onCheckpoint = { [unowned h] c in saved.append((c, !h.coordinator.dismissed.isEmpty)) }
        try h.run()
        #expect(h.coordinator.failure == nil)
        #expect(h.coordinator.state.step == 23)
        #expect(h.coordinator.wroteEndCheckpoint)
        #expect(saved.map(\.checkpoint.counters.step) == [10, 20, 23])
        #expect(saved.allSatisfy { !$0.anyoneTold }, "a SHUTDOWN went out before the run-end checkpoint")
        // and then both workers were told
        #expect(h.coordinator.dismissed == Set(h.workers.map(\.peer)))
        let newest = try #require(saved.last?.checkpoint)
        #expect(try newest.isComplete(series: series))
        #expect(newest.parameters == h.coordinator.state.parameters)
    }

    /// A worker the coordinator declared dead (paused past the liveness window) never got the
    /// SHUTDOWN: when it speaks after the end (a heartbeat, or a HELLO to rejoin) it is told once that
    /// the run is over, and stops, instead of saying HELLO until its reconnect timeout. So is a
    /// stranger that says HELLO then; nothing is said to anyone before the end.
    @Test func aWorkerDeclaredDeadIsToldTheRunIsOverWhenItSpeaksAfterTheEnd() throws {
        let series = try referenceSeries()
        let h = try Harness(config: parallelConfig(steps: 40), series: series, workers: 2,
                            options: CoordinatorOptions(workers: 2, liveness: 1, speculate: false))
        let paused = h.workers[1].peer
        h.filter = { [unowned h] peer, _ in
            // worker 1 stops hearing and speaking from step 10 on (a SIGSTOP, from the coordinator's side)
            if peer == paused && h.coordinator.state.step >= 10 {
                h.workers[1].alive = false
                return false
            }
            return true
        }
        #expect(h.coordinator.farewell(to: paused, now: 0).isEmpty, "nothing before the end")
        try h.run()
        #expect(h.coordinator.failure == nil)
        #expect(h.coordinator.state.step == 40)
        #expect(h.coordinator.workers[paused]?.phase == .dead)
        // it was not told at the end, and still believes it is in the run
        #expect(!h.coordinator.everyWorkerDismissed)
        let late = h.workers[1].core
        #expect(late.phase == .ready)

        // it speaks again after the end: one SHUTDOWN, however often it speaks
        let out = h.coordinator.farewell(to: paused, now: h.now + 1)
        #expect(out.count == 1)
        #expect(h.coordinator.farewell(to: paused, now: h.now + 2).isEmpty)
        #expect(h.coordinator.everyWorkerDismissed)
        let o = try #require(out.first)
        #expect(o.peer == paused)
        guard case .shutdown = o.envelope.message else { Issue.record("expected SHUTDOWN, got \(o.envelope.message)"); return }
        // through the codec, as the socket would carry it
        let env = try Wire.decode(frames: Wire.encode(o.envelope), limits: .handshake)
        _ = late.handle(env)
        #expect(late.phase == .done)
        #expect(late.failure == nil)

        // a worker saying HELLO to rejoin after the end is told the same, and stops
        let rejoining = WorkerCore(options: WorkerOptions(threads: 1, host: "test", pid: 2000))
        let answer = h.coordinator.farewell(to: PeerID([9, 9]), now: h.now + 3)
        #expect(answer.count == 1)
        for a in answer { _ = rejoining.handle(a.envelope) }
        #expect(rejoining.phase == .done)
    }
}
