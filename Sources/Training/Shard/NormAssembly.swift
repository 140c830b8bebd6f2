import RNN

/// The coordinator's side of the global gradient norm in sharded aggregation: collects every owner's
/// ``ShardOwner/PartialNorm`` of a step, in any order, and combines the blocks' sums of squares in block
/// order (``GradientNorm/combine(_:)-(UnsafeMutableBufferPointer<Double>)``), so the norm has the bits of
/// `globalNorm` over the whole gradient whatever the owner count. A value type, no I/O.
///
///     var assembly = NormAssembly(plan: shards)
///     assembly.begin(step: 1)
///     for part in parts { try assembly.add(part) }
///     if let norm = assembly.norm, assembly.isFinite {
///         let coef = config.clipNorm.flatMap { GradientNorm.clipCoefficient(norm: norm, maxNorm: $0) }
///         // every owner: apply(step: 1, clipCoefficient: coef, learningRate: lr)
///     }
public struct NormAssembly: Sendable {
    /// The cut of the parameter vector.
    public let plan: ShardPlan
    /// The step being assembled.
    public private(set) var step = 0
    private var sums: [Double]
    private var have: [Bool]
    private var missing: Int
    private var finite = true

    public init(plan: ShardPlan) {
        self.plan = plan
        sums = [Double](repeating: 0, count: plan.blockCount)
        have = [Bool](repeating: false, count: plan.blockCount)
        missing = plan.blockCount
    }

    /// Forgets the parts received and starts `step`.
    public mutating func begin(step: Int) {
        self.step = step
        for i in have.indices { have[i] = false }
        missing = plan.blockCount
        finite = true
    }

    /// Takes one owner's part. Returns false (changing nothing) when its blocks are already in (a
    /// duplicate; the part of an owner without blocks adds nothing and returns true); throws for a part of another step or blocks that are not an owner's slice.
    @discardableResult
    public mutating func add(_ part: ShardOwner.PartialNorm) throws(ShardError) -> Bool {
        guard part.step == step else { throw .wrongStep(step: part.step, current: step) }
        guard part.blocks.lowerBound >= 0, part.blocks.upperBound <= plan.blockCount,
              part.sumsOfSquares.count == part.blocks.count else {
            throw .wrongSize(expected: part.blocks.clamped(to: 0..<plan.blockCount).count, got: part.sumsOfSquares.count)
        }
        guard !part.blocks.contains(where: { have[$0] }) else { return false }
        for (k, s) in zip(part.blocks, part.sumsOfSquares) {
            sums[k] = s
            have[k] = true
        }
        missing -= part.blocks.count
        finite = finite && part.isFinite
        return true
    }

    /// Is every block's part in?
    public var isComplete: Bool { missing == 0 }

    /// Is every part's gradient finite (meaningful once complete)?
    public var isFinite: Bool { finite }

    /// The global norm once every block is in; nil before.
    public var norm: Double? {
        guard isComplete else { return nil }
        return GradientNorm.combine(sums)
    }
}
