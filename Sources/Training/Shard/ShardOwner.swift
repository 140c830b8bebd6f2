import RNN
import Series

/// The owner of one slice of the parameters in sharded aggregation, as a value: no sockets, no clock, no
/// threads. A driver feeds it what arrives and does what it returns.
///
/// Per step: ``begin(step:plan:)``; ``receive(step:block:values:)`` for the slice of every tree-node sum of
/// the step, from any sender in any order (a duplicate or overlapping node is ignored, a wrong size or
/// leaf run refused); once every leaf is in, the slice is reduced in the canonical tree order
/// (``SliceReduction``), divided by the step's window count and its blocks' sums of squares are ready
/// (``partialNorm``); the coordinator combines every owner's parts into the global norm
/// (``GradientNorm/combine(_:)-(UnsafeMutableBufferPointer<Double>)``) and commands
/// ``apply(step:clipCoefficient:learningRate:)``, and ``parameters`` is the updated slice to send to every
/// worker. The bits are those of the whole-vector update restricted to the slice, for any owner count.
///
///     var owner = ShardOwner(plan: shards, owner: 1, parameters: Array(weights[shards.range(ofOwner: 1)]),
///                            optimizer: Optimizer(config: config.optimizer, parameterCount: shards.range(ofOwner: 1).count))
///     try owner.begin(step: 1, plan: StepPlan(windows: 48, microBatch: 8))
///     for (block, slice) in arrivals { _ = try owner.receive(step: 1, block: block, values: .floats(slice)) }
///     let part = owner.partialNorm!                     // to the coordinator
///     try owner.apply(step: 1, clipCoefficient: coef, learningRate: lr)
///     owner.parameters                                  // to every worker
public struct ShardOwner: Sendable {
    /// The cut of the parameter vector.
    public let plan: ShardPlan
    /// This owner's index in ``plan``.
    public let owner: Int
    /// The elements of the owner's slice.
    public let range: Range<Int>
    /// The blocks of the owner's slice.
    public let blocks: Range<Int>
    /// The slice's weights.
    public private(set) var parameters: [Float]
    /// The optimizer state of the slice.
    public private(set) var optimizer: Optimizer<Float>
    /// Updates applied so far (the step last applied; the next step to begin is one more).
    public private(set) var stepsApplied: Int
    /// Where the owner is in a step.
    public private(set) var phase: Phase = .idle

    /// Where the owner is in a step.
    public enum Phase: Sendable, Equatable {
        /// Between steps.
        case idle
        /// Receiving the nodes of `step`.
        case collecting(step: Int)
        /// `step`'s slice is reduced; waiting for the apply command.
        case reduced(step: Int)
    }

    /// What became of a received node.
    public enum Receipt: Sendable, Equatable {
        /// Taken; leaves are still missing.
        case accepted
        /// Taken, and it completed the slice: ``partialNorm`` is ready.
        case completed
        /// Ignored: it overlaps a node already in (a duplicate, a retry or a speculative copy).
        case duplicate
        /// Ignored: a late node of a step already reduced, applied or abandoned.
        case stale
    }

    /// An owner's part of the global gradient norm.
    public struct PartialNorm: Sendable, Equatable {
        /// The step.
        public var step: Int
        /// The blocks the sums are of.
        public var blocks: Range<Int>
        /// Each block's sum of squares of the averaged gradient (``GradientNorm/blockSumsOfSquares(_:into:)``).
        public var sumsOfSquares: [Double]
        /// Is every value of the averaged gradient slice finite?
        public var isFinite: Bool
    }

    /// The slice's reduction; its root also serves as the averaged gradient while a step is applied
    /// (no buffer of its own: the owner holds its weights, the optimizer state and this).
    private var reduction: SliceReduction
    /// One block of the averaged gradient, for its sum of squares.
    private var blockScratch: [Float]
    private var sums: [Double]
    private var finite = true
    private var windows = 0
    private var current = 0

    /// An owner of `plan`'s slice `owner`, starting from `parameters` (the slice's weights) and
    /// `optimizer` (the slice's state; see ``Optimizer/slice(_:)``), after `stepsApplied` updates.
    public init(plan: ShardPlan, owner: Int, parameters: [Float], optimizer: Optimizer<Float>, stepsApplied: Int = 0) {
        let range = plan.range(ofOwner: owner)
        precondition(parameters.count == range.count, "\(parameters.count) weights for the slice \(range)")
        self.plan = plan
        self.owner = owner
        self.range = range
        blocks = plan.blocks(ofOwner: owner)
        self.parameters = parameters
        self.optimizer = optimizer
        self.stepsApplied = stepsApplied
        current = stepsApplied
        reduction = SliceReduction(elements: 0..<range.count, leafCount: 1)
        blockScratch = [Float](repeating: 0, count: min(range.count, ShardPlan.blockSize))
        sums = [Double](repeating: 0, count: blocks.count)
    }

    /// Starts collecting `step` (the step after the last applied), cut by `plan`. Beginning the step
    /// being collected again starts it over (a step dropped and sent anew).
    public mutating func begin(step: Int, plan stepPlan: StepPlan) throws(ShardError) {
        guard step == stepsApplied + 1 else { throw .wrongStep(step: step, current: stepsApplied + 1) }
        guard stepPlan.leafCount >= 1 else { throw .emptyStep(step: step) }
        reduction.reset(leafCount: stepPlan.leafCount)
        windows = stepPlan.windows
        current = step
        phase = .collecting(step: step)
    }

    /// Takes the owner's slice of one tree node's sum (`range.count` values: the node's gradient sums
    /// over this slice's elements, before the division by the window count).
    @discardableResult
    public mutating func receive(step: Int, block: Range<Int>, values: StreamingTree.Source) throws(ShardError) -> Receipt {
        switch phase {
        case .collecting(let s) where s == step:
            break
        case .reduced(let s) where s == step:
            return .duplicate
        default:
            if step <= stepsApplied || (step == current && phase == .idle) { return .stale }
            throw .wrongStep(step: step, current: current)
        }
        guard values.count == range.count else { throw .wrongSize(expected: range.count, got: values.count) }
        guard CanonicalTree.isNode(block, leafCount: reduction.leafCount) else {
            throw .notANode(block: block, leafCount: reduction.leafCount)
        }
        guard reduction.insert(block: block, values: values) else { return .duplicate }
        guard reduction.isComplete else { return .accepted }
        finishReduction()
        phase = .reduced(step: step)
        return .completed
    }

    /// Array convenience for ``receive(step:block:values:)``.
    @discardableResult
    public mutating func receive(step: Int, block: Range<Int>, values: [Float]) throws(ShardError) -> Receipt {
        try values.withUnsafeBufferPointer { (v) throws(ShardError) in try receive(step: step, block: block, values: .floats(v)) }
    }

    /// The owner's part of the global norm, once the step's slice is reduced (nil before).
    public var partialNorm: PartialNorm? {
        guard case .reduced(let s) = phase else { return nil }
        return PartialNorm(step: s, blocks: blocks, sumsOfSquares: sums, isFinite: finite)
    }

    /// Calls `body` with the reduced slice sums (before the division by the window count) once the
    /// step's slice is reduced; nil before.
    public func withReducedSums<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R? {
        guard case .reduced = phase else { return nil }
        return reduction.withResult(body)
    }

    /// Applies the reduced step: scales the averaged gradient slice by `clipCoefficient` when there is
    /// one (``GradientNorm/clipCoefficient(norm:maxNorm:)`` of the global norm) and steps the optimizer at
    /// `learningRate` (the schedule's rate of this step).
    public mutating func apply(step: Int, clipCoefficient: Double?, learningRate: Double) throws(ShardError) {
        guard case .reduced(let s) = phase, s == step else {
            throw .notReady("apply(step: \(step)) while \(phase): every node of the step must be in first")
        }
        guard finite else { throw .nonFinite(step: step) }
        let c = Float(windows)
        _ = reduction.withMutableResult { g in
            for i in 0..<g.count { g[i] = g[i] / c }  // the averaged gradient, as finishReduction saw it
            if let coef = clipCoefficient { GradientNorm.scale(g, by: coef) }
            parameters.withUnsafeMutableBufferPointer { p in
                optimizer.update(p, gradient: UnsafeBufferPointer(g), learningRate: learningRate)
            }
        }
        stepsApplied = step
        phase = .idle
    }

    /// Drops the step being collected or reduced, unapplied (the coordinator ended the run at the
    /// epoch's end, or the step was found non-finite). Late nodes of it are then ``Receipt/stale``.
    public mutating func abandon() {
        phase = .idle
    }

    /// The finiteness of `sums / windows` and its blocks' sums of squares (as `RunState.apply`), a block
    /// at a time (each block's sum is its own, so the bits are those of the whole slice's).
    private mutating func finishReduction() {
        let c = Float(windows)
        var allFinite = true
        let b = ShardPlan.blockSize
        reduction.withResult { root in
            blockScratch.withUnsafeMutableBufferPointer { g in
                sums.withUnsafeMutableBufferPointer { out in
                    for k in 0..<out.count {
                        let lo = k * b, hi = min(lo + b, root.count)
                        for i in lo..<hi {
                            g[i - lo] = root[i] / c
                            allFinite = allFinite && g[i - lo].isFinite
                        }
                        GradientNorm.blockSumsOfSquares(UnsafeBufferPointer(rebasing: g[0..<(hi - lo)]),
                                                        into: UnsafeMutableBufferPointer(rebasing: out[k..<(k + 1)]))
                    }
                }
            }
        }
        finite = allFinite
    }
}
