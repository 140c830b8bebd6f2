import Testing
import RNN
import Series
import Simulation
@testable import Training

@Suite("Simulated network: any arrival order, the same bits")
struct SimulationTests {
    /// Workers whose messages arrive in a random (seeded) order, late, and twice, give exactly the
    /// in-process trainer's weights.
    @Test(arguments: [(2, UInt64(1)), (3, UInt64(2)), (4, UInt64(3))])
    func randomArrivalOrdersGiveTheInProcessBits(workers: Int, seed: UInt64) throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 60)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let cluster = try SimulatedCluster(config: config, series: series, workers: workers)
        var faults = SimulatedFaults(seed: seed)
        faults.reorder = true
        faults.maxDelay = 0.1
        faults.duplicate = 0.05
        cluster.faults = faults
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        #expect(cluster.coordinator.state.step == 60)
        #expect(cluster.coordinator.state.parameters == reference, "\(workers) workers, seed \(seed)")
        #expect(cluster.coordinator.lateOrDuplicate > 0, "duplicates were delivered")
    }

    /// Lost orders and answers are asked again, a killed worker's leaves go to the others: still the same bits.
    @Test func lossesAndAKilledWorkerChangeNoBit() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 40)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let cluster = try SimulatedCluster(config: config, series: series, workers: 3)
        var faults = SimulatedFaults(seed: 11)
        faults.reorder = true
        faults.dropStepTraffic = 0.05
        cluster.faults = faults
        cluster.killAt = [1: 10]
        try cluster.run()
        #expect(cluster.coordinator.failure == nil)
        #expect(cluster.coordinator.state.step == 40)
        #expect(cluster.coordinator.workers[cluster.workers[1].peer]?.phase == .dead)
        #expect(cluster.coordinator.retried > 0)
        #expect(cluster.coordinator.state.parameters == reference)
    }

    /// The same seed, the same run: every delivery happens in the same order.
    @Test func aSeedReplaysTheSameRun() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 20)
        var runs: [(Int, Int)] = []
        for _ in 0..<2 {
            let cluster = try SimulatedCluster(config: config, series: series, workers: 3)
            var faults = SimulatedFaults(seed: 5)
            faults.reorder = true
            faults.maxDelay = 0.2
            cluster.faults = faults
            try cluster.run()
            runs.append((cluster.delivered, cluster.coordinator.lateOrDuplicate))
        }
        #expect(runs[0] == runs[1])
    }
}
