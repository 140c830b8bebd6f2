import Foundation
import Testing
@testable import RNN

@Suite("Canonical reduction tree")
struct CanonicalTreeTests {
    @Test func blocksAreMaximalNodesCoveringTheRun() {
        for m in 1...40 {
            for a in 0..<m {
                for b in (a + 1)...m {
                    let blocks = CanonicalTree.blocks(of: a..<b, leafCount: m)
                    #expect(blocks.first?.lowerBound == a && blocks.last?.upperBound == b)
                    for (x, y) in zip(blocks, blocks.dropFirst()) { #expect(x.upperBound == y.lowerBound) }
                    #expect(blocks.allSatisfy { CanonicalTree.isNode($0, leafCount: m) })
                    #expect(blocks.count <= 2 * (Int.bitWidth - m.leadingZeroBitCount) + 1)
                }
            }
        }
        #expect(CanonicalTree.blocks(of: 0..<8, leafCount: 8) == [0..<8])
        #expect(CanonicalTree.blocks(of: 1..<7, leafCount: 8) == [1..<2, 2..<4, 4..<6, 6..<7])
        #expect(CanonicalTree.blocks(of: 4..<5, leafCount: 5) == [4..<5])
        #expect(!CanonicalTree.isNode(1..<3, leafCount: 8))
    }

    /// The reference: recursive pairwise sum over the padded tree.
    func reference(_ leaves: [[Float]], lo: Int, size: Int) -> [Float] {
        if size == 1 { return leaves[lo] }
        let half = size / 2
        let left = reference(leaves, lo: lo, size: half)
        if lo + half >= leaves.count { return left }
        let right = reference(leaves, lo: lo + half, size: half)
        return zip(left, right).map { $0 + $1 }
    }

    @Test func anyPartitionGivesTheSameBits() {
        var rng = TestRNG(99)
        for m in [1, 2, 3, 5, 7, 8, 13, 31, 32, 33] {
            let width = 17
            // values of wildly different magnitude so that summation order shows in the bits
            var leaves: [[Float]] = []
            for _ in 0..<m {
                var leaf: [Float] = []
                for _ in 0..<width {
                    let magnitude = Foundation.pow(10.0, Double(rng.next() % 12) - 6)
                    leaf.append(Float((rng.unit() - 0.5) * magnitude))
                }
                leaves.append(leaf)
            }
            let expected = reference(leaves, lo: 0, size: CanonicalTree.paddedSize(m))
            for trial in 0..<20 {
                // cut 0..<m into random contiguous runs (one per "worker"), compute each block's node sum
                var cuts = Set([0, m])
                for _ in 0..<(trial % 5) { cuts.insert(Int(rng.next() % UInt64(m + 1))) }
                let points = cuts.sorted()
                var blocks: [Range<Int>] = []
                for (a, b) in zip(points, points.dropFirst()) where a < b {
                    blocks += CanonicalTree.blocks(of: a..<b, leafCount: m)
                }
                blocks.shuffle(using: &rng)  // any arrival order
                var tree = TreeReducer<Float>(leafCount: m, width: width)
                for blk in blocks {
                    // a worker's block sum follows the same tree inside the block
                    let partial = subtreeSum(leaves, blk, m: m)
                    do { let ok = tree.insert(block: blk, values: partial); #expect(ok) }
                    do { let again = tree.insert(block: blk, values: partial); #expect(!again, "duplicate must be refused") }
                }
                let got = tree.reduce()
                #expect(got == expected, "m=\(m) trial=\(trial)")
            }
        }
    }

    func subtreeSum(_ leaves: [[Float]], _ block: Range<Int>, m: Int) -> [Float] {
        var size = 1
        while !(block.lowerBound % size == 0 && min(block.lowerBound + size, m) == block.upperBound) { size *= 2 }
        return reference(leaves, lo: block.lowerBound, size: size)
    }

    @Test func rejectsNonNodesWrongWidthAndIncomplete() {
        var t = TreeReducer<Float>(leafCount: 6, width: 2)
        do { let ok = t.insert(block: 1..<3, values: [1, 1]); #expect(!ok) }
        do { let ok = t.insert(block: 0..<2, values: [1]); #expect(!ok) }
        do { let ok = t.insert(block: 0..<4, values: [1, 1]); #expect(ok) }
        do { let ok = t.insert(block: 2..<3, values: [1, 1]); #expect(!ok) }
        do { let r = t.reduce(); #expect(r == nil) }
        #expect(t.missingLeaves == [4, 5])
        do { let ok = t.insert(block: 4..<6, values: [2, 3]); #expect(ok) }
        do { let r = t.reduce(); #expect(r == [3, 4]) }
    }
}
