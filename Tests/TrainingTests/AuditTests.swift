import Testing
import RNN
import Series
import Simulation
import Wire
@testable import Training

/// A data-parallel configuration with its own seed (it seeds the audit plan too).
private func auditConfig(steps: Int, seed: UInt64) -> TrainingConfig {
    var c = parallelConfig(steps: steps)
    c.seed = seed
    return c
}

/// A simulated cluster of `n` workers where worker `faulty` corrupts `wrongRate` of its answers.
private func cluster(_ config: TrainingConfig, series: Series, workers n: Int, auditRate: Double,
                     faulty: Int?, wrongRate: Double, faultSeed: UInt64 = 0, aggregation: Aggregation = .star) throws -> SimulatedCluster {
    var options = CoordinatorOptions(workers: n)
    options.auditRate = auditRate
    options.aggregation = aggregation
    return try SimulatedCluster(config: config, series: series, workers: n, options: options) { i in
        var o = WorkerOptions(threads: 1, host: "test", pid: Int32(1000 + i))
        if i == faulty {
            o.faultWrongRate = wrongRate
            o.faultSeed = faultSeed
        }
        return o
    }
}

@Suite("Audit: answers computed twice, wrong workers quarantined, the same bits")
struct AuditTests {
    /// The audit plan is a pure function of (seed, step, run), near its rate.
    @Test func planIsSeededAndNearItsRate() {
        let plan = AuditPlan(rate: 0.05, seed: 9)
        let picks = (0..<20_000).filter { plan.audits(step: UInt64($0), run: 1) }.count
        #expect(picks > 800 && picks < 1200)
        #expect((0..<100).map { plan.audits(step: UInt64($0), run: 0) } == (0..<100).map { AuditPlan(rate: 0.05, seed: 9).audits(step: UInt64($0), run: 0) })
        #expect(AuditPlan(rate: 1, seed: 1).audits(step: 3, run: 2))
        #expect(!AuditPlan(rate: 0, seed: 1).audits(step: 3, run: 2))
    }

    /// Honest workers at --audit-rate 1: every run is computed twice, all agree, the bits are the
    /// in-process trainer's.
    @Test func honestWorkersAgreeAtFullAudit() throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 30, seed: 3)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 3, auditRate: 1, faulty: nil, wrongRate: 0)
        try c.run()
        #expect(c.coordinator.failure == nil)
        #expect(c.coordinator.audited == 30 * 3)
        #expect(c.coordinator.auditMismatches == 0)
        #expect(c.coordinator.quarantined.isEmpty)
        #expect(c.coordinator.state.parameters.elementsEqual(reference))
    }

    /// (c) A worker wrong on every answer is caught in the first step whose audit involves it,
    /// quarantined (named with host and pid), refused when it says HELLO again, and the run ends
    /// with the clean run's bits.
    @Test(arguments: [Aggregation.star, .sharded])
    func aWorkerWrongOnEveryAnswerIsCaughtAtItsFirstAudit(_ aggregation: Aggregation) throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 80, seed: 3)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 3, auditRate: 0.05, faulty: 1, wrongRate: 1, aggregation: aggregation)
        try c.run()
        #expect(c.coordinator.failure == nil)
        let q = try #require(c.coordinator.quarantined.first)
        #expect(c.coordinator.quarantined.count == 1)
        #expect(q.host == "test" && q.pid == 1001)
        // the third worker broke the tie: the majority of three
        #expect(q.reason.contains("differ from those of workers"), "\(q.reason)")
        // its index among the workers (by id) at the start: it is the first or auditor of run k
        let ids = c.coordinator.workers.values.map(\.id).sorted()
        let k = try #require(ids.firstIndex(of: q.worker))
        let plan = AuditPlan(rate: 0.05, seed: 3)
        let first = try #require((0..<80).first { s in plan.audits(step: UInt64(s), run: k) || plan.audits(step: UInt64(s), run: (k + 2) % 3) })
        #expect(q.step == first + 1)
        #expect(c.coordinator.rollbacks == (first > 0 ? 1 : 0))
        #expect(c.coordinator.workers.values.first { $0.id == q.worker }?.phase == .quarantined)
        #expect(c.coordinator.state.parameters.elementsEqual(reference))
        var members = c.coordinator.membership
        guard case .refused(let why) = members.hello(Hello(host: "test", pid: 1001, threads: 1, ztrainVersion: ztrainVersion), from: PeerID([9, 9]), now: 1e6) else {
            Issue.record("a quarantined worker was let back in")
            return
        }
        #expect(why.contains("quarantined"))
    }

    /// With two workers there is no third to break a tie: the coordinator computes the node itself
    /// (sharded too: its weights are the step's), the wrong one is quarantined, the run ends on the
    /// other with the clean run's bits.
    @Test(arguments: [Aggregation.star, .sharded])
    func withTwoWorkersTheCoordinatorBreaksTheTie(_ aggregation: Aggregation) throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 40, seed: 4)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 2, auditRate: 0.2, faulty: 1, wrongRate: 1, aggregation: aggregation)
        try c.run()
        #expect(c.coordinator.failure == nil)
        let q = try #require(c.coordinator.quarantined.first)
        #expect(q.pid == 1001)
        #expect(q.reason.contains("differ from the coordinator's own"), "\(q.reason)")
        #expect(c.coordinator.state.step == 40)
        #expect(c.coordinator.state.parameters.elementsEqual(reference))
    }

    /// A quarantined worker's CURVE key (announced in HELLO) is refused too: a fresh process on
    /// another host with the same key does not get in; another key does.
    @Test func aQuarantinedWorkersKeyIsRefused() throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 20, seed: 3)
        let c = try cluster(config, series: series, workers: 3, auditRate: 1, faulty: 1, wrongRate: 1)
        for (i, w) in c.workers.enumerated() { w.core.peerKey = "key-\(i)" }
        try c.run()
        let q = try #require(c.coordinator.quarantined.first)
        #expect(q.key == "key-1")
        var members = c.coordinator.membership
        let hello = { (key: String) in Hello(host: "elsewhere", pid: 4242, threads: 1, ztrainVersion: ztrainVersion, peerKey: key) }
        guard case .refused(let why) = members.hello(hello("key-1"), from: PeerID([9, 9]), now: 1e6) else {
            Issue.record("a quarantined worker's key was let back in")
            return
        }
        #expect(why.contains("quarantined") && why.contains("key-1"))
        guard case .welcome = members.hello(hello("key-7"), from: PeerID([9, 8]), now: 1e6) else {
            Issue.record("another key was refused")
            return
        }
    }

    /// (b) At --audit-rate 1 every answer is compared before the update: the faulty worker is
    /// caught at its first wrong answer, no wrong update is ever applied (no rollback).
    @Test(arguments: [Aggregation.star, .sharded])
    func fullAuditCatchesTheFirstWrongAnswerWithoutRollback(_ aggregation: Aggregation) throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 40, seed: 5)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 3, auditRate: 1, faulty: 2, wrongRate: 0.2, faultSeed: 7, aggregation: aggregation)
        try c.run()
        #expect(c.coordinator.failure == nil)
        let q = try #require(c.coordinator.quarantined.first)
        #expect(q.pid == 1002)
        // caught at its first wrong answer: the first step in which its own run (the third) or the run it
        // audits (the second) comes out corrupted
        let runs = shard(items: StepPlan(windows: config.batch, microBatch: config.microBatch).leafCount, workers: 3)
        let first = try #require((0..<40).first { s in
            FaultInjection.corrupts(rate: 0.2, seed: 7, step: UInt64(s), leaves: runs[2])
                || FaultInjection.corrupts(rate: 0.2, seed: 7, step: UInt64(s), leaves: runs[1])
        })
        #expect(q.step == first + 1, "\(aggregation)")
        #expect(c.coordinator.rollbacks == 0)
        #expect(c.coordinator.auditMismatches >= 1)
        #expect(c.coordinator.state.parameters.elementsEqual(reference))
    }

    /// (a) A worker that corrupts one value of half its answers, --audit-rate 0.05, 3 workers: in
    /// 10 of 10 seeded runs it is caught within 100 steps and quarantined, its unverified answers
    /// are rolled back and replayed, and the final weights are the clean run's bits.
    @Test(arguments: Array(UInt64(1)...10), [Aggregation.star, .sharded])
    func anOccasionallyWrongWorkerIsCaughtAndLeavesNoTrace(seed: UInt64, aggregation: Aggregation) throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 120, seed: seed)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 3, auditRate: 0.05, faulty: Int(seed % 3), wrongRate: 0.5, faultSeed: seed,
                            aggregation: aggregation)
        try c.run()
        #expect(c.coordinator.failure == nil)
        let q = try #require(c.coordinator.quarantined.first, "seed \(seed): never caught")
        #expect(q.step <= 100, "seed \(seed)")
        #expect(q.pid == Int32(1000 + Int(seed % 3)))
        #expect(c.coordinator.state.step == 120)
        #expect(c.coordinator.rollbacks <= 1, "one rollback at most: to the last snapshot before its first unverified answer")
        #expect(c.coordinator.state.parameters.elementsEqual(reference), "seed \(seed)")
    }

    /// A worker killed while an audit waits on it: the audit is given up (counted as waived), the
    /// step completes without it, and the bits are the in-process trainer's.
    @Test func aLostAuditorDoesNotStallTheStep() throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 30, seed: 3)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 3, auditRate: 1, faulty: nil, wrongRate: 0)
        c.killAt = [2: 5]
        try c.run()
        #expect(c.coordinator.failure == nil)
        #expect(c.coordinator.state.step == 30)
        #expect(c.coordinator.aggregator.audit.waived >= 1)
        #expect(c.coordinator.quarantined.isEmpty)
        #expect(c.coordinator.state.parameters.elementsEqual(reference))
    }

    /// A corrupted answer differs in one value and still passes Wire's checksum.
    @Test func aCorruptedAnswerKeepsAValidChecksum() throws {
        var sums: [Float] = [0.5, 2, 3]
        FaultInjection.corrupt(&sums)
        #expect(sums[0] != 0.5 && sums[0].isFinite && sums[1...] == [2, 3])
        let env = Envelope(runID: 1, workerID: 2, message: .gradient(Gradient(step: 0, block: 0..<1, leafCount: 1, samples: 1,
                                                                             computeNanos: 0, startNanos: 0, sendNanos: 0, sums: sums)))
        let back = try Wire.decode(frames: Wire.encode(env), limits: Limits(maxPayloadBytes: 1 << 20, parameterCount: 2, allowNonFinite: true))
        #expect(back == env)
    }
}


/// The audit under a lossy network: reordered, delayed, duplicated and dropped messages (sharded too, where
/// stale NORMs, SLICEs and DIGESTs of an older generation are in flight after a reseed).
@Suite("Audit on a reordering, duplicating network")
struct AuditFaultTests {
    @Test(arguments: [Aggregation.star, .sharded], [UInt64(1), 2, 3])
    func aWrongWorkerIsCaughtAndTheBitsStayExact(_ aggregation: Aggregation, seed: UInt64) throws {
        let series = try referenceSeries()
        let config = auditConfig(steps: 60, seed: seed)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let c = try cluster(config, series: series, workers: 3, auditRate: 0.2, faulty: Int(seed % 3), wrongRate: 0.5, faultSeed: seed,
                            aggregation: aggregation)
        var faults = SimulatedFaults(seed: seed)
        faults.reorder = true
        faults.maxDelay = 0.05
        faults.duplicate = 0.05
        faults.dropStepTraffic = 0.02
        c.faults = faults
        try c.run()
        #expect(c.coordinator.failure == nil)
        #expect(c.coordinator.quarantined.count == 1, "\(aggregation) seed \(seed)")
        #expect(c.coordinator.state.step == 60, "\(aggregation) seed \(seed)")
        #expect(c.coordinator.state.parameters.elementsEqual(reference), "\(aggregation) seed \(seed)")
    }
}
