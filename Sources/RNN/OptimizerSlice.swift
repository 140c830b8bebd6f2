/// The optimizer of a slice of the parameters (sharded aggregation, ZeRO-1 style: each owner keeps the
/// state of its slice only).
///
/// Both update rules are elementwise (Adam's C loop gives the same bits at any vector width and offset;
/// SGD is a plain loop), and the step counter and learning rate are the same for every slice, so an
/// optimizer holding `range` of the state, updating `params[range]` with `gradient[range]`, computes the
/// bits of the full update restricted to `range`:
///
///     var owner = full.slice(4096..<8192)                     // the state of one owner's slice
///     owner.update(&params[4096..<8192], gradient: g[4096..<8192], learningRate: lr)
///     // == the same elements after full.update(&params, gradient: g, learningRate: lr)
extension Optimizer {
    /// This optimizer's state restricted to the elements `range` (the same configuration and step count).
    public func slice(_ range: Range<Int>) -> Optimizer {
        Optimizer(config: config, step: step, m: m.isEmpty ? [] : Array(m[range]), v: v.isEmpty ? [] : Array(v[range]))
    }

    /// The optimizer of the whole vector from the optimizers of its slices laid end to end (checkpoints of
    /// a sharded run). Nil when the slices disagree on the configuration or the step count.
    public static func joining(_ slices: [Optimizer]) -> Optimizer? {
        guard let first = slices.first,
              slices.allSatisfy({ $0.config == first.config && $0.step == first.step }) else { return nil }
        return Optimizer(config: first.config, step: first.step, m: slices.flatMap(\.m), v: slices.flatMap(\.v))
    }
}
