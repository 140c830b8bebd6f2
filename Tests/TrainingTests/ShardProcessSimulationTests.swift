import Testing
import RNN
import Series
import Simulation
import Wire
@testable import Training

/// Dedicated owners (`ztrain shard` processes) through the real cores and Wire bytes: they own the slices
/// when they joined before the start, get no orders and never the whole weights, and the run has the
/// in-process bits; a lost shard is a lost owner, replaced by another shard first.
@Suite("Shard processes, simulated")
struct ShardProcessSimulationTests {
    /// P = 17 030 (five blocks).
    func config(steps: Int = 12) -> TrainingConfig {
        TrainingConfig(
            model: ModelConfig(inputSize: 2, hiddenSize: 128, outputSize: 2, seqLen: 4),
            optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2), data: .sincos(points: 300, from: 0, to: 30),
            batch: 40, microBatch: 6, epochs: nil, steps: steps, seed: 3, shuffle: true,
            clipNorm: 0.05, targetLoss: nil, validationFraction: 0)
    }

    /// `workers` workers (indices 0..<workers) and `shards` shard processes after them.
    func cluster(workers: Int, shards: Int, steps: Int = 12) throws -> SimulatedCluster {
        var o = CoordinatorOptions(workers: workers)
        o.aggregation = .sharded
        o.shards = shards
        return try SimulatedCluster(config: config(steps: steps), series: try referenceSeries(), workers: workers + shards, options: o) { i in
            var w = WorkerOptions(threads: 1, host: "test", pid: Int32(1000 + i))
            w.isShard = i >= workers
            return w
        }
    }

    @Test(arguments: [1, 2, 3])
    func shardsOwnTheSlicesAndGiveTheInProcessBits(shards: Int) throws {
        let reference = try InProcessTrainer(config: config(), series: try referenceSeries()).run().parameters
        let c = try cluster(workers: 2, shards: shards)
        let shardPeers = Set(c.workers[2...].map(\.peer))
        var toShards: [String] = []
        c.filter = { peer, env in
            guard shardPeers.contains(peer) else { return true }
            switch env.message {
            case .assign, .order: toShards.append("an order")
            case .slice(let s) where s.state == nil: toShards.append("a SLICE of \(s.range)")  // only seeds (with state) go to a shard
            case .welcome(_, let series) where !series.isEmpty: toShards.append("the series")
            default: break
            }
            return true
        }
        var faults = SimulatedFaults(seed: 5)
        faults.reorder = true
        faults.maxDelay = 0.05
        c.faults = faults
        try c.run()
        #expect(c.coordinator.failure == nil)
        #expect(c.coordinator.state.parameters == reference)
        #expect(toShards.isEmpty, "\(toShards.prefix(5))")
        let owners = c.coordinator.shard?.table.owners ?? []
        #expect(Set(owners) == Set(c.workers[2...].map(\.core.workerID)), "owners \(owners)")
        #expect(c.workers[..<2].allSatisfy { $0.core.steps > 0 } && c.workers[2...].allSatisfy { $0.core.steps == 0 })
        #expect(c.coordinator.workers.values.filter { $0.shard == true }.count == shards)
    }

    /// A killed shard is a lost owner: the slices are re-planned among the shards left (not the
    /// workers), and the run ends with the clean run's bits. With every shard gone, the workers own them.
    @Test(arguments: [2, 1])
    func aKilledShardIsReplacedByAShardFirst(shards: Int) throws {
        let reference = try InProcessTrainer(config: config(), series: try referenceSeries()).run().parameters
        let c = try cluster(workers: 2, shards: shards)
        c.killAt = [2: 4]
        try c.run()
        #expect(c.coordinator.failure == nil)
        #expect(c.coordinator.replans == 1)
        #expect(c.coordinator.state.parameters == reference)
        let owners = Set(c.coordinator.shard?.table.owners ?? [])
        let expected = shards == 2 ? [c.workers[3].core.workerID] : c.workers[..<2].map(\.core.workerID)
        #expect(owners == Set(expected), "owners \(owners)")
    }

    /// A shard process in a star run is refused with what to do.
    @Test func aShardIsRefusedByAStarRun() throws {
        var o = CoordinatorOptions(workers: 1)
        o.joinTimeout = 5
        let c = try SimulatedCluster(config: config(steps: 2), series: try referenceSeries(), workers: 2, options: o) { i in
            var w = WorkerOptions(threads: 1, host: "test", pid: Int32(1000 + i))
            w.isShard = i == 1
            return w
        }
        try c.run()
        #expect(c.coordinator.failure == nil)
        #expect(c.workers[1].core.failure?.contains("--aggregation sharded") == true, "\(String(describing: c.workers[1].core.failure))")
    }
}
