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
/// Each node has `P + 1` floats here; only the loss column (`P`) is left for the receipt of the
/// ASSIGN (it includes a weight that the ASSIGN brings), after which the node is encoded
/// straight from this buffer. Since ``LeafGradients/nodeSum(round:block:columns:weights:matrix:into:tick:)``
/// sums every column independently in the canonical order, the two parts together have the bits
/// of a sum of whole rows.
///
/// ```swift
/// let prepared = PreparedSums(parameterCount: p)
/// _ = prepared.prepare(round: 2, run: 0..<1, gen: gen, matrix: matrix)
/// if let sums = prepared.sums(round: 2, block: 0..<1) { /* the loss into sums[P], then send */ }
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
        if capacity < blocks.count * (p + 1) {
            buffer?.deallocate()
            capacity = blocks.count * (p + 1)
            buffer = .allocate(capacity: capacity)
            buffer?.initialize(repeating: 0, count: capacity)
        }
        guard let base = buffer else { return false }
        for (k, block) in blocks.enumerated() {
            let finished = gen.nodeSum(round: UInt64(r), block: block, columns: 0..<p, weights: nil,
                                       matrix: matrix, into: base + k * (p + 1), tick: tick)
            if !finished { return false }
        }
        let d = ContinuousClock.now - start
        nanos = UInt64(max(0, d.components.seconds)) * 1_000_000_000 + UInt64(max(0, d.components.attoseconds) / 1_000_000_000)
        round = r
        self.run = run
        return true
    }

    /// The `P + 1` floats of `block` in `round`, columns `0..<P` prepared (nil when they were
    /// not): the caller writes the loss to `[P]` and sends them. Valid until the next
    /// ``prepare(round:run:gen:matrix:tick:)``.
    func sums(round r: Int, block: Range<Int>) -> UnsafeMutablePointer<Float>? {
        guard round == r, let base = buffer, let k = blocks.firstIndex(of: block) else { return nil }
        return base + k * (parameterCount + 1)
    }
}
