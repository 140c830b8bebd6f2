import RNN
import Testing
@testable import Training

/// Sharded aggregation reduces each slice of the rows on its own: the slices laid end to end must be
/// the full canonical reduction, bit for bit, for any widths, leaf counts, cuts and arrival orders.
@Suite("Slice-wise canonical reduction")
struct SliceReductionTests {
    let trees = StreamingTreeTests()

    func shuffle<T>(_ a: inout [T], _ rng: inout SplitMix) {
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    }

    /// Random cuts of `0..<width` into `shards` contiguous slices (some may be empty).
    func cuts(_ width: Int, shards: Int, _ rng: inout SplitMix) -> [Range<Int>] {
        var points = (0..<(shards - 1)).map { _ in Int(rng.next() % UInt64(width + 1)) }.sorted()
        points = [0] + points + [width]
        return (0..<shards).map { points[$0]..<points[$0 + 1] }
    }

    @Test func slicesLaidEndToEndAreTheFullReduction() {
        var rng = SplitMix(seed: 7)
        for trial in 0..<60 {
            let width = 1 + Int(rng.next() % 300)
            let m = 1 + Int(rng.next() % 13)
            let ls = trees.leaves(m, width, &rng)
            let want = trees.bits(trees.reference(ls, m))
            // the senders: contiguous runs of leaves, each sending its canonical nodes
            let senders = 1 + Int(rng.next() % 4)
            var bounds = [0] + (0..<(senders - 1)).map { _ in Int(rng.next() % UInt64(m + 1)) }.sorted() + [m]
            bounds = Array(Set(bounds)).sorted()
            var nodes: [Range<Int>] = []
            for k in 0..<(bounds.count - 1) { nodes += CanonicalTree.blocks(of: bounds[k]..<bounds[k + 1], leafCount: m) }
            let rows = nodes.map { trees.nodeSum(ls, $0, m) }
            let shards = 1 + Int(rng.next() % 5)
            var got: [Float] = []
            for slice in cuts(width, shards: shards, &rng) {
                var reduction = SliceReduction(elements: slice, leafCount: m)
                var order = Array(nodes.indices)
                shuffle(&order, &rng)
                for (k, i) in order.enumerated() {
                    let ok: Bool
                    switch (k + trial) % 3 {
                    case 0:  // the slice alone
                        ok = reduction.insert(block: nodes[i], values: Array(rows[i][slice]))
                    case 1:  // the whole row, floats
                        ok = rows[i].withUnsafeBufferPointer { reduction.insert(block: nodes[i], row: .floats($0)) }
                    default:  // the whole row, little-endian bytes as received
                        let bytes = rows[i].flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
                        ok = bytes.withUnsafeBytes { reduction.insert(block: nodes[i], row: .littleEndian($0)) }
                    }
                    #expect(ok)
                    #expect(reduction.isComplete == (k == order.count - 1))
                    // a duplicate changes nothing
                    let again = reduction.insert(block: nodes[i], values: Array(rows[i][slice]))
                    #expect(!again)
                }
                got += reduction.result() ?? []
            }
            #expect(trees.bits(got) == want, "trial \(trial): width \(width), \(m) leaves, \(shards) shards")
        }
    }

    @Test func refusesShortRowsWrongWidthsAndNonNodes() {
        var reduction = SliceReduction(elements: 2..<5, leafCount: 4)
        let short = reduction.insert(block: 0..<1, values: [1, 2])
        let shortRow = [Float](repeating: 0, count: 4).withUnsafeBufferPointer { reduction.insert(block: 0..<1, row: .floats($0)) }
        let notANode = reduction.insert(block: 1..<3, values: [1, 2, 3])
        let root = reduction.insert(block: 0..<4, values: [1, 2, 3])
        #expect(!short && !shortRow && !notANode && root)
        #expect(reduction.result() == [1, 2, 3])
        #expect(reduction.missingLeaves.isEmpty)
    }
}
