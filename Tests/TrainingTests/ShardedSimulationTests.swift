import Testing
import RNN
import Series
import Simulation
import Wire
@testable import Training

/// Sharded aggregation through the real cores and real Wire bytes (worker-to-worker hops too), on a
/// virtual clock with reordered, delayed and duplicated messages: the in-process trainer's bits.
@Suite("Sharded aggregation, simulated: the bits of in-process")
struct ShardedSimulationTests {
    /// P = 17 030 (five blocks: a slice for every owner up to four). `points`/`batch` choose how many
    /// steps an epoch has (so epoch ends, their evaluations and the deferred epochs are crossed).
    func config(clip: Double?, points: Int = 300, batch: Int = 40, steps: Int? = 12, epochs: Int? = nil,
                validation: Double = 0) -> TrainingConfig {
        TrainingConfig(
            model: ModelConfig(inputSize: 2, hiddenSize: 128, outputSize: 2, seqLen: 4),
            optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2), data: .sincos(points: points, from: 0, to: 30),
            batch: batch, microBatch: 6, epochs: epochs, steps: steps, seed: 3, shuffle: true,
            clipNorm: clip, targetLoss: nil, validationFraction: validation)
    }

    func sharded(_ workers: Int) -> CoordinatorOptions {
        var o = CoordinatorOptions(workers: workers)
        o.aggregation = .sharded
        return o
    }

    func run(_ config: TrainingConfig, workers: Int, seed: UInt64) throws -> SimulatedCluster {
        let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: workers, options: sharded(workers))
        var faults = SimulatedFaults(seed: seed)
        faults.reorder = true
        faults.maxDelay = 0.05
        faults.duplicate = 0.05
        cluster.faults = faults
        try cluster.run()
        return cluster
    }

    @Test(arguments: [nil, 0.05] as [Double?], [1, 2, 3, 4])
    func oneToFourWorkersGiveTheInProcessBits(clip: Double?, workers: Int) throws {
        let config = config(clip: clip)
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run()
        let cluster = try run(config, workers: workers, seed: UInt64(workers) + (clip == nil ? 0 : 10))
        let core = cluster.coordinator
        #expect(core.failure == nil)
        #expect(core.state.step == 12)
        #expect(core.state.parameters == reference.parameters, "\(workers) workers, clip \(String(describing: clip))")
        #expect(core.state.optimizer.step == reference.optimizerStep)
        #expect(core.metrics.map(\.loss) == reference.metrics.map(\.loss))
        #expect(core.shard?.plan.owners == min(workers, 5))
    }

    /// Full-batch epochs (the next step measures the epoch's loss) and a validation split with overlapped
    /// evaluations: the step rule is the same in both halves of the sharded step.
    @Test func fullBatchAndValidationEpochsGiveTheInProcessBits() throws {
        for config in [config(clip: 0.05, points: 120, batch: 1000, steps: nil, epochs: 5),
                       config(clip: nil, points: 300, batch: 64, steps: nil, epochs: 3, validation: 0.2)] {
            let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run()
            let cluster = try run(config, workers: 3, seed: 7)
            #expect(cluster.coordinator.failure == nil)
            #expect(cluster.coordinator.state.step == reference.steps)
            #expect(cluster.coordinator.state.parameters == reference.parameters)
            #expect(cluster.coordinator.metrics.map(\.loss) == reference.metrics.map(\.loss))
        }
    }

    /// No GRADIENT reaches the coordinator and no ASSIGN leaves it: per step it takes in small NORMs and
    /// APPLIEDs, at sync steps the owners' slices with their optimizer state (3·P floats with Adam, for
    /// owner recovery), and sends ORDERs and APPLYs (the weights go out once, to each joining worker).
    @Test func theCoordinatorCarriesNoGradient() throws {
        let config = config(clip: nil)
        let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: 3, options: sharded(3))
        var assigns = 0, orders = 0
        cluster.filter = { _, env in
            if case .assign = env.message { assigns += 1 }
            if case .order = env.message { orders += 1 }
            return true
        }
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        #expect(assigns == 0 && orders >= 12)
        let p = cluster.coordinator.state.parameters.count
        #expect(cluster.coordinator.bytesIn < 12 * (3 * 4 * p + 64 * 16) + 64 << 10)
    }

    /// Bytes per step of every process, sharded, with one tree node per worker (one micro-batch each) and
    /// P = 47 306 (12 blocks: slices within 4 % of P/N): a worker receives N − 1 node slices and N − 1
    /// updated slices, 2·(N−1)/N·4P, and sends as much plus, at sync steps, its updated slice to the
    /// coordinator, at most (2N−1)/N·4P; the coordinator receives at most P. Headers and the small messages (ORDER, NORM, APPLY,
    /// heartbeats) are the rest. The star coordinator's 2·N·4P is far above every one of them.
    @Test(arguments: [2, 3, 4])
    func everyProcessCarriesItsShareOfTheBytes(workers n: Int) throws {
        var config = config(clip: 0.05, batch: 6 * n, steps: 6)
        config.model.hiddenSize = 215
        let p = ParameterLayout(config.model).count
        #expect(p == 47_306)
        var options = sharded(n)
        options.ownerRecovery = false  // (with it, each owner's slice to the coordinator carries Adam's m and v too)
        let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: n, options: options)
        cluster.counts = { env in
            switch env.message {
            case .order, .node, .norm, .apply, .heartbeat: return true
            case .slice(let s): return s.state == nil && s.range != 0..<p  // not the one-time seeds and joins
            default: return false
            }
        }
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        let steps = Double(cluster.coordinator.state.step)
        let share = Double(4 * p) / Double(n)
        let small = Double(64 * (8 * n + 8))  // headers and small messages per step
        for (process, t) in cluster.traffic {
            let (sent, received) = (Double(t.sent) / steps, Double(t.received) / steps)
            if process == "coordinator" {
                #expect(received <= 1.1 * Double(4 * p) + small, "\(process) received \(received) bytes a step")
                #expect(sent <= small, "\(process) sent \(sent) bytes a step")
            } else {
                #expect(received <= 1.1 * 2 * Double(n - 1) * share + small, "\(process) received \(received) bytes a step")
                #expect(sent <= 1.1 * Double(2 * n - 1) * share + small, "\(process) sent \(sent) bytes a step")
            }
        }
    }

    /// A star run's messages are unchanged: no WELCOME says sharded, no sharded message is sent.
    @Test func aStarRunSendsNoShardedMessage() throws {
        let cluster = try SimulatedCluster(config: config(clip: nil, steps: 3), series: try referenceSeries(), workers: 2)
        var sharded = 0
        cluster.filter = { _, env in
            if env.message.type.isShard { sharded += 1 }
            if case .welcome(let w, _) = env.message, w.aggregation != nil { sharded += 1 }
            return true
        }
        try cluster.run()
        #expect(sharded == 0)
        #expect(cluster.coordinator.state.step == 3)
    }

    /// The checkpoints of a sharded run (the owners' optimizer state gathered at the steps that may be
    /// checkpointed) are the star run's: weights, optimizer state, counters.
    @Test(arguments: [OptimizerConfig(kind: .adam, learningRate: 1e-2), OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9),
                      OptimizerConfig(kind: .sgd, learningRate: 0.05)])
    func checkpointsAreTheStarRunsCheckpoints(optimizer: OptimizerConfig) throws {
        var config = config(clip: 0.05)
        config.optimizer = optimizer
        func checkpoints(_ options: CoordinatorOptions) throws -> [RunCheckpoint] {
            let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: 3, options: options)
            var saved: [RunCheckpoint] = []
            cluster.coordinator.checkpointEvery = 4
            cluster.coordinator.onCheckpoint = { saved.append($0) }
            try cluster.run()
            #expect(cluster.coordinator.failure == nil)
            #expect(cluster.coordinator.optimizerIsCurrent)
            return saved
        }
        let star = try checkpoints(CoordinatorOptions(workers: 3))
        let sharded = try checkpoints(sharded(3))
        #expect(star.count >= 3 && sharded.count == star.count, "\(star.count) and \(sharded.count) checkpoints")
        for (a, b) in zip(star, sharded) {
            #expect(a.parameters == b.parameters && a.m == b.m && a.v == b.v && a.counters == b.counters, "step \(a.counters.step)")
        }
    }

    /// A star run's checkpoint resumed in sharded mode (the owners seeded with its optimizer state), and a
    /// sharded run's resumed in star mode, end with the uninterrupted run's bits.
    @Test func resumeWorksAcrossModes() throws {
        let config = config(clip: nil)
        let series = try referenceSeries()
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        for (first, second) in [(CoordinatorOptions(workers: 2), sharded(3)), (sharded(2), CoordinatorOptions(workers: 3))] {
            let a = try SimulatedCluster(config: config, series: series, workers: first.workers, options: first)
            var saved: RunCheckpoint?
            a.coordinator.checkpointEvery = 4
            a.coordinator.onCheckpoint = { c in if c.counters.step == 4 { saved = c } }
            a.stopAfterStep = 6
            try a.run()
            let checkpoint = try #require(saved)
            let b = try SimulatedCluster(config: config, series: series, workers: second.workers, options: second, resume: checkpoint)
            try b.run()
            #expect(b.coordinator.failure == nil)
            #expect(b.coordinator.state.step == 12)
            #expect(b.coordinator.state.parameters == reference, "\(first.aggregation) then \(second.aggregation)")
        }
    }

    /// A worker that announces no peer endpoint cannot take part: refused with what to do.
    @Test func aWorkerWithoutAPeerEndpointIsRefused() throws {
        var options = sharded(2)
        options.minWorkers = 1
        options.joinTimeout = 1
        let cluster = try SimulatedCluster(config: config(clip: nil, steps: 3), series: try referenceSeries(), workers: 2, options: options)
        cluster.workers[1].core.peerEndpoint = nil
        try cluster.run()
        #expect(cluster.workers[1].core.failure?.contains("--peer-bind") == true)
        #expect(cluster.coordinator.failure == nil)
        #expect(cluster.coordinator.state.step == 3)
    }

    /// A killed or departing owner: the run goes back to its last sync step, its slices are re-planned
    /// among the survivors from the snapshot there and the steps since replayed: the bits of a run
    /// without the fault, whatever the arrival order.
    @Test(arguments: [(3, 1, UInt64(1)), (4, 0, UInt64(2)), (4, 3, UInt64(3)), (2, 1, UInt64(4))])
    func aLostOwnerIsReplacedExactly(workers: Int, lost: Int, seed: UInt64) throws {
        let config = config(clip: 0.05)
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run().parameters
        for leaves in [false, true] {
            let cluster = try SimulatedCluster(config: config, series: try referenceSeries(), workers: workers, options: sharded(workers))
            var faults = SimulatedFaults(seed: seed)
            faults.reorder = true
            faults.maxDelay = 0.05
            cluster.faults = faults
            if leaves { cluster.leaveAt = [lost: 5] } else { cluster.killAt = [lost: 4] }
            try cluster.run()
            #expect(cluster.coordinator.failure == nil)
            #expect(cluster.coordinator.replans == 1)
            #expect(cluster.coordinator.state.parameters == reference, "\(workers) workers, owner \(lost) \(leaves ? "left" : "killed")")
        }
    }

    /// Without recovery, a killed owner stops the run with a typed error saying what to do.
    @Test func aLostOwnerStopsTheRunWithAnAnswer() throws {
        var options = sharded(2)
        options.ownerRecovery = false
        let cluster = try SimulatedCluster(config: config(clip: nil), series: try referenceSeries(), workers: 2, options: options)
        cluster.killAt = [1: 4]
        try cluster.run()
        guard case .invalidConfig(let why)? = cluster.coordinator.failure else {
            Issue.record("expected a lost-owner failure, got \(String(describing: cluster.coordinator.failure))")
            return
        }
        #expect(why.contains("--resume"))
    }
}

@Suite("--aggregation auto")
struct AggregationChoiceTests {
    @Test func autoPicksShardedForLargeModelsOnOtherMachinesOnly() {
        let big = AggregationChoice.autoCrossover
        #expect(AggregationChoice.auto.resolve(parameterCount: big - 1, workers: 4) == .star)
        #expect(AggregationChoice.auto.resolve(parameterCount: big, workers: 4) == .sharded)
        #expect(AggregationChoice.auto.resolve(parameterCount: big, workers: 1) == .star)
        #expect(AggregationChoice.auto.resolve(parameterCount: big, workers: 4, sameHost: true) == .star)
        #expect(AggregationChoice.sharded.resolve(parameterCount: 10, workers: 1, sameHost: true) == .sharded)
        #expect(AggregationChoice.star.resolve(parameterCount: big, workers: 4) == .star)
    }

    @Test func theDefaultPeerBindFollowsTheCoordinatorsEndpoint() {
        #expect(defaultPeerBind(connect: "ipc:///tmp/run/coordinator.sock", pid: 42) == "ipc:///tmp/run/peer-42.sock")
        #expect(defaultPeerBind(connect: "tcp://127.0.0.1:5555", pid: 42) == "tcp://127.0.0.1:*")
        #expect(defaultPeerBind(connect: "tcp://localhost:5555", pid: 42) == "tcp://127.0.0.1:*")
        // a remote coordinator: the local address the kernel would use to reach it (loopback resolves to loopback)
        #expect(defaultPeerBind(connect: "tcp://127.0.0.2:5555", pid: 1) == "tcp://127.0.0.1:*")
    }
}
