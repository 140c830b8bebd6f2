/// The cut of a `P`-float parameter vector into fixed blocks, and of the blocks into contiguous slices for
/// `owners` owners (sharded aggregation: each owner reduces, clips and updates its slice).
///
/// The blocks do not depend on the owners: block `b` is always the elements
/// `b·blockSize ..< min((b+1)·blockSize, P)`, so everything defined per block (the global norm's partial
/// sums of squares, see ``GradientNorm``) has the same bits for any owner count. Owner `o` gets the blocks
/// `⌊o·n/S⌋ ..< ⌊(o+1)·n/S⌋` of the `n` blocks: whole blocks, balanced (slice sizes differ by at most one
/// block), in owner order; with more owners than blocks some slices are empty.
///
///     let plan = ShardPlan(parameterCount: 10_000, owners: 2)   // 3 blocks: 4096, 4096, 1808 floats
///     plan.blocks(ofOwner: 0)     // 0..<1
///     plan.range(ofOwner: 1)      // 4096..<10000
///     plan.owner(ofBlock: 2)      // 1
public struct ShardPlan: Sendable, Equatable, Hashable {
    /// Floats per block: 4096 (16 KiB). A multiple of every SIMD width and cache line (so a slice starts
    /// aligned wherever its owner's buffer does), small enough that a block's partial sums fit in L1 while
    /// they are summed, and large enough that the per-block bookkeeping (one `Double` per block on the
    /// control plane) is noise: 64 values for a 262 144-parameter model. Part of the definition of the
    /// global norm, so it never changes with a run's settings.
    public static let blockSize = 4096

    /// Floats in the parameter vector, `P`.
    public let parameterCount: Int
    /// Slices, `S` (some may be empty when `S` exceeds ``blockCount``).
    public let owners: Int

    /// Preconditions: `parameterCount >= 0`, `owners >= 1`.
    public init(parameterCount: Int, owners: Int) {
        precondition(parameterCount >= 0 && owners >= 1, "\(parameterCount) parameters for \(owners) owners")
        self.parameterCount = parameterCount
        self.owners = owners
    }

    /// Blocks of the parameter vector, `⌈P / blockSize⌉` (the last may be shorter).
    public var blockCount: Int { Self.blockCount(parameterCount) }

    /// Blocks of a vector of `count` floats.
    public static func blockCount(_ count: Int) -> Int { (count + blockSize - 1) / blockSize }

    /// The elements of block `b`.
    public func elements(ofBlock b: Int) -> Range<Int> {
        precondition(b >= 0 && b < blockCount, "block \(b) outside 0..<\(blockCount)")
        return (b * Self.blockSize)..<min((b + 1) * Self.blockSize, parameterCount)
    }

    /// The elements of a run of whole blocks.
    public func elements(ofBlocks blocks: Range<Int>) -> Range<Int> {
        precondition(blocks.lowerBound >= 0 && blocks.upperBound <= blockCount, "blocks \(blocks) outside 0..<\(blockCount)")
        return min(blocks.lowerBound * Self.blockSize, parameterCount)..<min(blocks.upperBound * Self.blockSize, parameterCount)
    }

    /// The blocks of owner `o`'s slice.
    public func blocks(ofOwner o: Int) -> Range<Int> {
        precondition(o >= 0 && o < owners, "owner \(o) outside 0..<\(owners)")
        let n = blockCount
        return (o * n / owners)..<((o + 1) * n / owners)
    }

    /// The elements of owner `o`'s slice (empty when it has no block).
    public func range(ofOwner o: Int) -> Range<Int> { elements(ofBlocks: blocks(ofOwner: o)) }

    /// The owner of block `b`: the `o` with `⌊o·n/S⌋ ≤ b < ⌊(o+1)·n/S⌋`, that is `⌊((b+1)·S − 1) / n⌋`.
    public func owner(ofBlock b: Int) -> Int {
        precondition(b >= 0 && b < blockCount, "block \(b) outside 0..<\(blockCount)")
        return ((b + 1) * owners - 1) / blockCount
    }

    /// The owner of element `i`.
    public func owner(ofElement i: Int) -> Int {
        precondition(i >= 0 && i < parameterCount, "element \(i) outside 0..<\(parameterCount)")
        return owner(ofBlock: i / Self.blockSize)
    }
}
