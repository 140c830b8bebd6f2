import RNN
import Testing
@testable import Training

/// The eager tree must give `TreeReducer`'s bits for every partition into nodes and every
/// arrival order, from floats or from little-endian bytes, on one thread or several.
@Suite("Streaming tree")
struct StreamingTreeTests {
    /// Leaf values of very different magnitudes, so a wrong summation order shows in the bits.
    func leaves(_ m: Int, _ width: Int, _ rng: inout SplitMix) -> [[Float]] {
        (0..<m).map { _ in
            let scale = Float(sign: .plus, exponent: Int(rng.next() % 24) - 12, significand: 1)
            return (0..<width).map { _ in Float(Int32(truncatingIfNeeded: rng.next() >> 40) - (1 << 23)) * scale * 0x1p-23 }
        }
    }

    func nodeSum(_ leaves: [[Float]], _ block: Range<Int>, _ m: Int) -> [Float] {
        let width = leaves[0].count
        var rows = leaves.flatMap { $0 }  // (M, width)
        rows.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            CanonicalTree.reduceInPlace(base, width: width, block: block, leafCount: m)
        }
        return Array(rows[(block.lowerBound * width)..<((block.lowerBound + 1) * width)])
    }

    func reference(_ leaves: [[Float]], _ m: Int) -> [Float] {
        var t = TreeReducer<Float>(leafCount: m, width: leaves[0].count)
        for i in 0..<m { t.insert(block: i..<(i + 1), values: leaves[i]) }
        return t.reduce() ?? []
    }

    func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

    @Test func anyPartitionAndOrderGivesTheReferenceBits() {
        var rng = SplitMix(seed: 42)
        for m in 1...13 {
            let width = 5
            let ls = leaves(m, width, &rng)
            let want = bits(reference(ls, m))
            for trial in 0..<30 {
                // random runs, each split into its canonical blocks, inserted in a random order
                var cuts = [0]
                while cuts.last! < m { cuts.append(min(m, cuts.last! + 1 + Int(rng.next() % 4))) }
                var blocks: [Range<Int>] = []
                for k in 0..<(cuts.count - 1) { blocks += CanonicalTree.blocks(of: cuts[k]..<cuts[k + 1], leafCount: m) }
                for i in stride(from: blocks.count - 1, to: 0, by: -1) { blocks.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                var tree = StreamingTree(leafCount: m, width: width)
                for (k, b) in blocks.enumerated() {
                    let v = nodeSum(ls, b, m)
                    let ok: Bool
                    if (k + trial) % 2 == 0 {
                        ok = tree.insert(block: b, values: v)
                    } else {
                        let bytes = v.flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
                        ok = bytes.withUnsafeBytes { tree.insert(block: b, values: .littleEndian($0)) }
                    }
                    #expect(ok)
                    #expect(tree.isComplete == (k == blocks.count - 1))
                }
                #expect(tree.root().map(bits) == want, "M = \(m), blocks \(blocks)")
                // duplicates and overlaps are refused once in
                let again = tree.insert(block: 0..<1, values: [Float](repeating: 0, count: width))
                #expect(!again)
            }
        }
    }

    @Test func refusesNonNodesAndWrongWidths() {
        var tree = StreamingTree(leafCount: 6, width: 2)
        let notANode = tree.insert(block: 1..<3, values: [1, 2])
        let wrongWidth = tree.insert(block: 0..<1, values: [1])
        let fine = tree.insert(block: 4..<6, values: [1, 2])
        #expect(!notANode && !wrongWidth && fine)
        #expect(tree.overlapsInserted(5..<6) && !tree.overlapsInserted(0..<4))
        #expect(tree.missingLeaves == [0, 1, 2, 3])
        tree.reset(leafCount: 3)
        #expect(tree.missingLeaves == [0, 1, 2] && !tree.isComplete)
    }

    /// Widths above `parallelWidth` are summed on several threads: still the reference bits.
    @Test func wideNodesSplitAcrossThreadsKeepTheBits() {
        var rng = SplitMix(seed: 9)
        let m = 3, width = StreamingTree.parallelWidth + 1234
        let ls = leaves(m, width, &rng)
        let want = bits(reference(ls, m))
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            var tree = StreamingTree(leafCount: m, width: width)
            for i in order { tree.insert(block: i..<(i + 1), values: ls[i]) }
            #expect(tree.root().map(bits) == want)
        }
    }

    /// The buffers are the nodes waiting at once, log2 M for leaves in order or in reverse order (not one
    /// per slot that ever held a node, M); a second step reuses them; and the bits are the reference's.
    @Test func holdsOnlyTheBuffersOfTheNodesWaiting() {
        var rng = SplitMix(seed: 9)
        let m = 8, width = 64
        let ls = leaves(m, width, &rng)
        let want = bits(reference(ls, m))
        for (order, buffers) in [(Array(0..<m), 3), (Array((0..<m).reversed()), 3), ([0, 7, 1, 6, 2, 5, 3, 4], 4)] {
            var tree = StreamingTree(leafCount: m, width: width)
            for step in 0..<2 {
                tree.reset(leafCount: m)
                for i in order { tree.insert(block: i..<(i + 1), values: ls[i]) }
                #expect(tree.root().map(bits) == want)
                #expect(tree.buffersHeld == buffers, "order \(order), step \(step)")
            }
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
