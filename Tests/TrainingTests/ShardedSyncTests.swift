import Testing
import RNN
import Series
import Simulation
import Wire
@testable import Training

/// Sync steps in sharded aggregation (owner recovery on, the default): between sync steps the owners
/// answer APPLY with a bare APPLIED, so every process carries the bandwidth floor; the weights come to
/// the coordinator at the steps that need them, and on demand (FETCH: a stop, a join); a lost owner
/// rolls back to the last sync step and replays.
@Suite("Sharded aggregation, simulated: sync steps")
struct ShardedSyncTests {
    /// P = 17 030 (five blocks). `points`/`batch` choose how many steps an epoch has.
    func config(clip: Double? = 0.05, points: Int = 300, batch: Int = 40, steps: Int? = 40, epochs: Int? = nil) -> TrainingConfig {
        TrainingConfig(
            model: ModelConfig(inputSize: 2, hiddenSize: 128, outputSize: 2, seqLen: 4),
            optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2), data: .sincos(points: points, from: 0, to: 30),
            batch: batch, microBatch: 6, epochs: epochs, steps: steps, seed: 3, shuffle: true,
            clipNorm: clip, targetLoss: nil, validationFraction: 0)
    }

    func sharded(_ workers: Int) -> CoordinatorOptions {
        var o = CoordinatorOptions(workers: workers)
        o.aggregation = .sharded
        return o
    }

    func faulty(_ seed: UInt64) -> SimulatedFaults {
        var f = SimulatedFaults(seed: seed)
        f.reorder = true
        f.maxDelay = 0.05
        return f
    }

    /// Bytes per step of every process over steps 17…48 (two sync steps: 32 and 48), with owner recovery
    /// on, one tree node per worker and P = 47 306 (12 blocks: slices within 4 % of P/N): no process sends
    /// or receives more than 1.1 × the floor of an all-reduce's reduce-scatter and all-gather,
    /// 2·(N−1)/N·4P, plus headers and small messages. (Before sync steps every owner also sent its slice
    /// to the coordinator each step, with Adam's m and v: (2N+1)/N·4P for the busiest.)
    @Test(arguments: [2, 3, 4])
    func theBusiestProcessCarriesTheBandwidthFloor(workers n: Int) throws {
        var config = config(points: 2000, batch: 6 * n, steps: 56)
        config.model.hiddenSize = 215
        let p = ParameterLayout(config.model).count
        #expect(p == 47_306)
        let options = sharded(n)
        #expect(options.ownerRecovery)
        let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: n, options: options)
        var at: [Int: [String: (sent: Int, received: Int)]] = [:]
        cluster.afterStep = { core in
            if core.state.step == 16 || core.state.step == 48 { at[core.state.step] = cluster.traffic }
        }
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        let (start, end) = (try #require(at[16]), try #require(at[48]))
        let floor = 2 * Double(n - 1) / Double(n) * Double(4 * p)
        let small = Double(64 * (8 * n + 8) + 4 * 6 * n)  // headers, ORDER's windows, NORM, APPLY, APPLIED, heartbeats
        var busiest = 0.0
        for (process, t) in end {
            let s0 = start[process] ?? (0, 0)
            let (sent, received) = (Double(t.sent - s0.sent) / 32, Double(t.received - s0.received) / 32)
            #expect(sent <= 1.1 * floor + small, "\(process) sent \(sent) bytes a step; the floor is \(floor)")
            #expect(received <= 1.1 * floor + small, "\(process) received \(received) bytes a step; the floor is \(floor)")
            busiest = max(busiest, sent, received)
        }
        print("sharded sync steps, N = \(n): busiest process \(Int(busiest)) bytes a step, \(String(format: "%.3f", busiest / floor))x the floor \(Int(floor))")
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run().parameters
        #expect(cluster.coordinator.state.parameters == reference)
    }

    /// Between sync steps the coordinator's weights are not current, and nothing reads them: the steps
    /// that need them (every 16th, an epoch's end, a checkpoint, a `--hash-every` hash, the last) are
    /// sync steps with the in-process weights, and the checkpoints are the in-process run's.
    @Test func syncStepsHoldTheInProcessWeights() throws {
        let config = config(points: 300, batch: 40, steps: 40)
        let series = try referenceSeries()
        let trainer = try InProcessTrainer(config: config, series: series)
        var hashes: [Int: UInt64] = [:]
        let result = try trainer.run { event in
            if case .step(_, let step, _, _, _, _, _) = event { hashes[step] = trainer.state.weightsHash }
        }
        let cluster = try SimulatedCluster(config: config, series: series, workers: 3, options: sharded(3))
        cluster.faults = faulty(5)
        cluster.coordinator.checkpointEvery = 5
        cluster.coordinator.hashEvery = 3
        var saved: [RunCheckpoint] = []
        cluster.coordinator.onCheckpoint = { saved.append($0) }
        var current: [Int] = []
        var stale: [Int] = []
        cluster.afterStep = { core in
            let step = core.state.step
            if core.weightsAreCurrent {
                current.append(step)
                #expect(core.state.weightsHash == hashes[step], "step \(step)")
            } else {
                stale.append(step)
            }
        }
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        #expect(cluster.coordinator.weightsAreCurrent && cluster.coordinator.optimizerIsCurrent)
        let perEpoch = cluster.coordinator.state.stepsPerEpoch
        let needed = Set((1..<40).filter { $0 % 16 == 0 || $0 % perEpoch == 0 || $0 % 5 == 0 || $0 % 3 == 0 })
        #expect(needed.isSubset(of: Set(current)), "steps \(needed.subtracting(current).sorted()) needed the weights")
        #expect(!stale.isEmpty, "every step was a sync step")
        #expect(Set([5, 10, 15, 20, 25, 30, 35, 40]).isSubset(of: Set(saved.map(\.counters.step))), "checkpoints \(saved.map(\.counters.step))")
        for c in saved {
            #expect(c.weightsHash == hashes[c.counters.step], "checkpoint of step \(c.counters.step)")
        }
        #expect(cluster.coordinator.metrics.map(\.loss) == result.metrics.map(\.loss))
    }

    /// An owner lost in the middle of a 16-step window (killed, or leaving with BYE): the run goes back
    /// to the sync step before it, re-plans the slices, replays, and ends with the in-process bits; the
    /// replayed epochs' lines are emitted once.
    @Test(arguments: [(3, 1, UInt64(1)), (4, 0, UInt64(2)), (2, 1, UInt64(3))])
    func anOwnerLostMidWindowRollsBackExactly(workers: Int, lost: Int, seed: UInt64) throws {
        let config = config(points: 300, batch: 100, steps: 40)  // epochs of 10 steps
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run()
        for leaves in [false, true] {
            let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: workers, options: sharded(workers))
            cluster.faults = faulty(seed)
            if leaves { cluster.leaveAt = [lost: 21] } else { cluster.killAt = [lost: 21] }
            try cluster.run()
            let core = cluster.coordinator
            #expect(core.failure == nil)
            #expect(core.replans == 1)
            #expect(core.replayedSteps >= 4 && core.replayedSteps <= 2 * AuditState.snapshotEvery, "\(core.replayedSteps) steps replayed")
            #expect(core.state.parameters == reference.parameters, "\(workers) workers, owner \(lost) \(leaves ? "left" : "killed")")
            #expect(core.metrics.map(\.loss) == reference.metrics.map(\.loss))
        }
    }

    /// The epoch lines of a replay are emitted once (metrics.jsonl gets each epoch's line once).
    @Test func aReplayEmitsEachEpochOnce() throws {
        let config = config(points: 300, batch: 200, steps: 40)  // epochs of 5 steps: step 20 ends one inside the replay
        var emitted: [Int] = []
        let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: 3, options: sharded(3),
                                           onEvent: { if case .epoch(let m) = $0 { emitted.append(m.epoch) } })
        cluster.killAt = [1: 21]
        try cluster.run()
        #expect(cluster.coordinator.failure == nil && cluster.coordinator.replans == 1)
        #expect(cluster.coordinator.state.step == 40 && cluster.coordinator.state.stepsPerEpoch == 5, "\(cluster.coordinator.state.stepsPerEpoch) steps an epoch, \(cluster.coordinator.state.batch) windows a step")
        #expect(emitted == Array(1...cluster.coordinator.metrics.count) && emitted.count == 8 && cluster.coordinator.replayedSteps >= 4,
                "epochs emitted: \(emitted), \(cluster.coordinator.metrics.count) recorded, \(cluster.coordinator.replayedSteps) steps replayed")
    }

    /// A stop between sync steps (SIGINT, SIGTERM) fetches the owners' slices first: the run state is
    /// exact where it stopped, and its checkpoint resumes to the uninterrupted run's bits.
    @Test(arguments: [21, 26, 33])
    func aStopBetweenSyncStepsKeepsEveryStep(stopAt: Int) throws {
        let config = config(points: 300, batch: 40, steps: 40)
        let series = try referenceSeries()
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let a = try SimulatedCluster(config: config, series: series, workers: 3, options: sharded(3))
        a.faults = faulty(UInt64(stopAt))
        a.stopAt = stopAt
        try a.run()
        #expect(a.coordinator.isDone && a.coordinator.failure == nil)
        #expect(a.coordinator.weightsAreCurrent && a.coordinator.optimizerIsCurrent)
        let checkpoint = a.coordinator.checkpoint()
        #expect(checkpoint.counters.step >= stopAt && checkpoint.counters.step < 40, "stopped at step \(checkpoint.counters.step)")
        let b = try SimulatedCluster(config: config, series: series, workers: 2, options: sharded(2), resume: checkpoint)
        try b.run()
        #expect(b.coordinator.failure == nil)
        #expect(b.coordinator.state.parameters == reference, "stopped at \(checkpoint.counters.step)")
    }

    /// A stop whose FETCH is never answered (an owner that hangs) settles, when asked again (the
    /// driver's grace ran out), for the last sync step's snapshot: an exact, older state that resumes
    /// to the same bits.
    @Test func aStopWhoseFetchIsNotAnsweredFallsBackToTheLastSyncStep() throws {
        let config = config(points: 300, batch: 40, steps: 40)
        let series = try referenceSeries()
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let a = try SimulatedCluster(config: config, series: series, workers: 3, options: sharded(3))
        a.filter = { _, env in
            if case .fetch = env.message { return false }
            return true
        }
        a.stopAt = 21
        try a.run(maxTime: 30)
        #expect(!a.coordinator.isDone && a.coordinator.stopAwaitsShards)
        a.route(a.coordinator.shutdown(reason: "stopped again", now: a.now))
        #expect(a.coordinator.isDone && a.coordinator.failure == nil && !a.coordinator.stopAwaitsShards)
        #expect(a.coordinator.weightsAreCurrent && a.coordinator.optimizerIsCurrent)
        let checkpoint = a.coordinator.checkpoint()
        #expect(checkpoint.counters.step >= 16 && checkpoint.counters.step < 21, "fell back to step \(checkpoint.counters.step)")
        let b = try SimulatedCluster(config: config, series: series, workers: 2, options: sharded(2), resume: checkpoint)
        try b.run()
        #expect(b.coordinator.failure == nil)
        #expect(b.coordinator.state.parameters == reference)
    }

    /// Workers that join between sync steps get the current weights (a FETCH first): the in-process bits.
    @Test func aWorkerJoiningBetweenSyncStepsGetsTheCurrentWeights() throws {
        let config = config(points: 300, batch: 40, steps: 40)
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run().parameters
        var options = sharded(3)
        options.minWorkers = 2
        options.joinTimeout = 0.5
        let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: 3, options: options)
        cluster.faults = faulty(9)
        cluster.joinAt = [2: 19]
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        #expect(cluster.coordinator.liveWorkers.count == 3)
        #expect(cluster.coordinator.state.parameters == reference)
    }

    /// FETCH and APPLIED on the wire: headers only.
    @Test func fetchAndAppliedAreHeadersOnly() throws {
        for m in [Message.fetch(FetchSlices(step: 21, table: 3)), .applied(AppliedStep(step: 22, range: 4096..<8192, table: 3)),
                  .apply(ApplyStep(step: 22, learningRate: 0.01, clipCoefficient: nil, table: 3, acknowledge: true))] {
            let e = Envelope(runID: 7, workerID: 2, message: m)
            let frames = Wire.encode(e)
            #expect(frames.reduce(0) { $0 + $1.count } <= 64 + 8)
            #expect(try Wire.decode(frames: frames, limits: Limits(maxPayloadBytes: 1 << 20)) == e)
        }
    }
}
