import RNN
import Testing
@testable import Training

@Suite("Step aggregation")
struct StepAggregatorTests {
    func sums(_ v: Float, _ width: Int) -> [Float] { [Float](repeating: v, count: width) }

    @Test func leavesOfWorkersLostWhenNobodyWasAliveAreAdoptedByTheNextLiveWorker() {
        var agg = StepAggregator(width: 3)
        let orders = agg.begin(step: 1, windows: 8, microBatch: 2, workers: [1, 2], now: 0)
        #expect(orders.map(\.run) == [0..<2, 2..<4])
        // both workers are lost while nobody else is alive: nothing can be reassigned yet
        #expect(agg.lost(1, live: [2], now: 1).count >= 1)
        #expect(agg.lost(2, live: [], now: 1).isEmpty)
        // a worker comes (back): the orphaned leaves are given out at once, long before any retry timeout
        let adopted = agg.overdue(now: 1.01, timeout: 100, live: [3])
        let covered = Set(adopted.flatMap { Array($0.run) })
        #expect(covered == Set(0..<4), "orphaned leaves: \(agg.missingLeaves), adopted \(adopted)")
        let ones = sums(1, 3)
        for o in adopted {
            for block in CanonicalTree.blocks(of: o.run, leafCount: 4) {
                let v = ones.withUnsafeBufferPointer {
                    agg.accept(worker: 3, step: 1, block: block, leafCount: 4, samples: 2 * block.count, sums: $0, now: 2)
                }
                #expect(v == .accepted)
            }
        }
        #expect(agg.isComplete)
    }

    @Test func acceptRefusesWhatWasNotAskedAndCountsDuplicates() {
        var agg = StepAggregator(width: 2)
        _ = agg.begin(step: 5, windows: 4, microBatch: 1, workers: [1, 2], now: 0)
        let one: [Float] = [1, 1]
        one.withUnsafeBufferPointer { b in
            #expect(agg.accept(worker: 1, step: 5, block: 0..<2, leafCount: 4, samples: 2, sums: b, now: 0) == .accepted)
            #expect(agg.accept(worker: 1, step: 5, block: 0..<2, leafCount: 4, samples: 2, sums: b, now: 0) == .lateOrDuplicate)
            #expect(agg.accept(worker: 1, step: 4, block: 2..<4, leafCount: 4, samples: 2, sums: b, now: 0) == .lateOrDuplicate)
            if case .invalid = agg.accept(worker: 1, step: 5, block: 2..<4, leafCount: 4, samples: 2, sums: b, now: 0) {} else {
                Issue.record("worker 1 was not asked for leaves 2..<4")
            }
            if case .invalid = agg.accept(worker: 2, step: 5, block: 2..<4, leafCount: 4, samples: 3, sums: b, now: 0) {} else {
                Issue.record("a wrong window count must be refused")
            }
            #expect(agg.accept(worker: 2, step: 5, block: 2..<4, leafCount: 4, samples: 2, sums: b, now: 0) == .accepted)
        }
        #expect(agg.isComplete && agg.lateOrDuplicate == 2)
    }

    /// The hang report's view of a step: a worker that owes an audited run's second answer is
    /// pending even when every leaf of the step is in.
    @Test func pendingNamesTheWorkerThatOwesAnAuditedAnswer() {
        var agg = StepAggregator(width: 2)
        agg.auditPlan = AuditPlan(rate: 1, seed: 1)
        let orders = agg.begin(step: 1, windows: 4, microBatch: 2, workers: [1, 2], now: 0)
        // every run is ordered twice: from its worker and from the other one
        #expect(orders.count == 4, "\(orders)")
        let b: [Float] = [1, 1]
        for o in orders.prefix(2) {
            for block in CanonicalTree.blocks(of: o.run, leafCount: 2) {
                b.withUnsafeBufferPointer {
                    _ = agg.accept(worker: o.worker, step: 1, block: block, leafCount: 2, samples: 2 * block.count, sums: $0, now: 1)
                }
            }
        }
        #expect(agg.missingLeaves.isEmpty && !agg.isComplete)
        // the auditors' answers are still missing: both workers owe one, each for the other's run
        let pending = agg.pending
        #expect(pending.map(\.worker) == [1, 2], "\(pending)")
        #expect(pending.allSatisfy { $0.leaves.count == 1 && $0.since == 0 }, "\(pending)")
    }
}
