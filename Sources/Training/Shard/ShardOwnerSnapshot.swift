import RNN

extension ShardOwner {
    /// An owner's state between steps: what a checkpoint keeps of its slice, and what another process
    /// restores to replay a dead owner (the step in flight is sent again: nodes are idempotent).
    public struct Snapshot: Sendable, Equatable, Codable {
        /// The owner's index in its plan.
        public var owner: Int
        /// The elements of its slice.
        public var range: Range<Int>
        /// Updates applied.
        public var stepsApplied: Int
        /// The slice's weights.
        public var parameters: [Float]
        /// The optimizer's step count and state for the slice (``Optimizer/m``, ``Optimizer/v``).
        public var optimizerStep: Int
        public var m: [Float]
        public var v: [Float]
    }

    /// The state as of the last applied step (a step being collected is not part of it).
    public func snapshot() -> Snapshot {
        Snapshot(owner: owner, range: range, stepsApplied: stepsApplied, parameters: parameters,
                 optimizerStep: optimizer.step, m: optimizer.m, v: optimizer.v)
    }

    /// Restores an owner of `plan` from `snapshot`, with the optimizer `config` of the run.
    public init(plan: ShardPlan, restoring snapshot: Snapshot, optimizer config: OptimizerConfig) throws(ShardError) {
        guard snapshot.owner >= 0, snapshot.owner < plan.owners else {
            throw .badSnapshot("owner \(snapshot.owner) of a plan of \(plan.owners) owners")
        }
        let range = plan.range(ofOwner: snapshot.owner)
        guard snapshot.range == range else {
            throw .badSnapshot("slice \(snapshot.range), but owner \(snapshot.owner) of this plan holds \(range)")
        }
        guard snapshot.parameters.count == range.count else {
            throw .badSnapshot("\(snapshot.parameters.count) weights for a slice of \(range.count)")
        }
        let fresh = Optimizer<Float>(config: config, parameterCount: range.count)
        guard snapshot.m.count == fresh.m.count, snapshot.v.count == fresh.v.count else {
            throw .badSnapshot("optimizer state of \(snapshot.m.count) + \(snapshot.v.count) values where \(config.kind) keeps \(fresh.m.count) + \(fresh.v.count)")
        }
        guard snapshot.stepsApplied >= 0, snapshot.optimizerStep >= 0 else {
            throw .badSnapshot("negative step counts")
        }
        self.init(plan: plan, owner: snapshot.owner, parameters: snapshot.parameters,
                  optimizer: Optimizer(config: config, step: snapshot.optimizerStep, m: snapshot.m, v: snapshot.v),
                  stepsApplied: snapshot.stepsApplied)
    }
}
