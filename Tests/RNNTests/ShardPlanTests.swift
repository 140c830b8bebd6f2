import Testing
@testable import RNN

@Suite("ShardPlan: fixed blocks, balanced slices")
struct ShardPlanTests {
    let b = ShardPlan.blockSize

    /// Every block belongs to exactly one owner; slices are contiguous, in owner order, whole blocks,
    /// balanced to one block, and `owner(ofBlock:)` agrees with `blocks(ofOwner:)`.
    func checkInvariants(_ plan: ShardPlan) {
        let n = plan.blockCount
        #expect(n == (plan.parameterCount + b - 1) / b)
        var next = 0, element = 0
        var sizes: [Int] = []
        for o in 0..<plan.owners {
            let blocks = plan.blocks(ofOwner: o)
            #expect(blocks.lowerBound == next)
            next = blocks.upperBound
            sizes.append(blocks.count)
            let range = plan.range(ofOwner: o)
            #expect(range.lowerBound == element && (range.isEmpty || range.lowerBound % b == 0))
            element = range.upperBound
            for k in blocks {
                #expect(plan.owner(ofBlock: k) == o)
                #expect(range.contains(plan.elements(ofBlock: k).lowerBound))
            }
            for i in [range.lowerBound, range.upperBound - 1] where !range.isEmpty { #expect(plan.owner(ofElement: i) == o) }
        }
        #expect(next == n && element == plan.parameterCount)
        #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1)
        // the blocks tile the vector, every block full but the last
        for k in 0..<n {
            let e = plan.elements(ofBlock: k)
            #expect(e.lowerBound == k * b)
            #expect(e.count == (k == n - 1 ? plan.parameterCount - k * b : b))
        }
    }

    @Test func slicesAreContiguousBalancedWholeBlocks() {
        for p in [0, 1, b - 1, b, b + 1, 3 * b, 3 * b + 17, 10 * b - 5, 65 * b + 1] {
            for s in 1...9 { checkInvariants(ShardPlan(parameterCount: p, owners: s)) }
        }
    }

    @Test func aParameterCountNotAMultipleOfTheBlockEndsInAShortBlock() {
        let plan = ShardPlan(parameterCount: 10_000, owners: 2)
        #expect(plan.blockCount == 3)
        #expect(plan.elements(ofBlock: 2) == 8192..<10_000)
        #expect(plan.blocks(ofOwner: 0) == 0..<1 && plan.blocks(ofOwner: 1) == 1..<3)
        #expect(plan.range(ofOwner: 0) == 0..<4096 && plan.range(ofOwner: 1) == 4096..<10_000)
        #expect(plan.owner(ofBlock: 2) == 1 && plan.owner(ofElement: 9_999) == 1)
    }

    @Test func moreOwnersThanBlocksLeavesSomeSlicesEmpty() {
        let plan = ShardPlan(parameterCount: 2 * b + 1, owners: 5)  // 3 blocks
        #expect(plan.blockCount == 3)
        let sizes = (0..<5).map { plan.blocks(ofOwner: $0).count }
        #expect(sizes.reduce(0, +) == 3 && sizes.allSatisfy { $0 <= 1 })
        #expect((0..<5).filter { plan.range(ofOwner: $0).isEmpty }.count == 2)
        #expect(Set((0..<3).map { plan.owner(ofBlock: $0) }).count == 3)
    }

    @Test func oneOwnerHoldsEverything() {
        for p in [1, b, 5 * b + 3] {
            let plan = ShardPlan(parameterCount: p, owners: 1)
            #expect(plan.blocks(ofOwner: 0) == 0..<plan.blockCount)
            #expect(plan.range(ofOwner: 0) == 0..<p)
            #expect((0..<plan.blockCount).allSatisfy { plan.owner(ofBlock: $0) == 0 })
        }
    }
}
