import Series
import Testing

@Suite("StepPlan: the leaves of a step")
struct StepPlanTests {
    @Test func leavesCoverTheStepOnceInOrder() {
        for windows in 1...40 {
            for microBatch in 1...9 {
                let plan = StepPlan(windows: windows, microBatch: microBatch)
                let leaves = (0..<plan.leafCount).map { plan.windows(in: $0..<($0 + 1)) }
                #expect(leaves == microBatches(count: windows, size: microBatch))
                #expect(plan.samples(in: 0..<plan.leafCount) == windows)
            }
        }
    }

    @Test func theLastLeafMayBeShorter() {
        let plan = StepPlan(windows: 10, microBatch: 4)
        #expect(plan.leafCount == 3)
        #expect(plan.samples(in: 2..<3) == 2)
        #expect(plan.samples(in: 0..<2) == 8)
        #expect(StepPlan(windows: 0, microBatch: 4).leafCount == 0)
    }
}
