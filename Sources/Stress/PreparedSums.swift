#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN

/// A synthetic worker's pre-generated node sums (``StressConfig/pregenerate``): the gradient
/// columns `0..<P` of every tree node of one run of leaves of one round, generated before that
/// round begins so that the round's clock runs without the generation.
///
/// Only the loss column (`P`) is left for the receipt of the ASSIGN: it includes a weight that
/// the ASSIGN brings. Since ``LeafGradients/nodeSum(round:block:columns:weights:matrix:into:tick:)``
/// sums every column independently in the canonical order, the two parts together have the bits
/// of a sum of whole rows.
///
/// ```swift
/// let prepared = PreparedSums(parameterCount: p)
/// _ = prepared.prepare(round: 2, run: 0..<1, gen: gen, matrix: matrix)
/// let hit = prepared.take(round: 2, block: 0..<1, into: sums)   // false: generate on receipt
/// ```
final class PreparedSums {
    let parameterCount: Int
    /// The round and run prepared (nil: nothing prepared).
    private(set) var round: Int?
    private(set) var run: Range<Int> = 0..<0
    /// Nanoseconds the preparation took.
    private(set) var nanos: UInt64 = 0
    private var blocks: [Range<Int>] = []
    private var buffer: UnsafeMutablePointer<Float>?
    private var capacity = 0

    init(parameterCount: Int) {
        self.parameterCount = parameterCount
    }

    deinit { buffer?.deallocate() }

    /// Generates columns `0..<P` of every node of `run` in `round`. `tick` is called after every
    /// column chunk; false abandons the preparation (and returns false).
    func prepare(round r: Int, run: Range<Int>, gen: LeafGradients, matrix: LeafMatrix,
                 tick: () -> Bool = { true }) -> Bool {
        let start = ContinuousClock.now
        round = nil
        blocks = CanonicalTree.blocks(of: run, leafCount: gen.leafCount)
        let p = parameterCount
        if capacity < blocks.count * p {
            buffer?.deallocate()
            capacity = blocks.count * p
            buffer = .allocate(capacity: capacity)
        }
        guard let base = buffer else { return false }
        for (k, block) in blocks.enumerated() {
            let finished = gen.nodeSum(round: UInt64(r), block: block, columns: 0..<p, weights: nil,
                                       matrix: matrix, into: base + k * p, tick: tick)
            if !finished { return false }
        }
        let d = ContinuousClock.now - start
        nanos = UInt64(max(0, d.components.seconds)) * 1_000_000_000 + UInt64(max(0, d.components.attoseconds) / 1_000_000_000)
        round = r
        self.run = run
        return true
    }

    /// Copies the prepared columns `0..<P` of `block` in `round` to `sums[0..<P]`; false when
    /// they were not prepared.
    func take(round r: Int, block: Range<Int>, into sums: UnsafeMutablePointer<Float>) -> Bool {
        guard round == r, let base = buffer, let k = blocks.firstIndex(of: block) else { return false }
        sums.update(from: base + k * parameterCount, count: parameterCount)
        return true
    }
}
