/// How a step's tree-node sums become the update (`--aggregation`).
///
/// - `star`: every worker sends its nodes' sums (P + 1 floats each) to the coordinator, which reduces
///   them, applies the update and sends the weights back in every ASSIGN (2·N·P floats through one
///   process per step).
/// - `sharded`: the workers own contiguous slices of the parameters (``ShardPlan``); each sends every
///   owner its slice of each node, the owners reduce and update their slices (keeping their optimizer
///   state) and send the updated slice to every worker and to the coordinator, which keeps only the
///   step rule (the norm's parts, the loss, the decisions): about 2·(N−1)/N·P floats per worker per
///   step, the bits of `star`.
///
///     var options = CoordinatorOptions(workers: 4)
///     options.aggregation = .sharded
public enum Aggregation: String, Sendable, CaseIterable, Codable {
    case star
    case sharded
}

/// `--aggregation`: a mode, or `auto` (``resolve(parameterCount:workers:)``).
public enum AggregationChoice: String, Sendable, CaseIterable {
    case star
    case sharded
    case auto

    /// Parameters from which `auto` picks sharded aggregation for workers on other machines (with two
    /// workers or more): below it the star's one round trip costs less than the sharded step's extra
    /// hops (NODE, NORM, APPLY, SLICE); above it the star's 2·N·P floats through the coordinator's link
    /// dominate. Workers on the coordinator's machine (`train --workers`) share its cores and memory
    /// bandwidth, where the bytes do not shrink by being spread: measured on a 2-core machine, neither
    /// mode wins at 10^6 or 10^7 parameters, so `auto` keeps star there (see BENCHMARKS.md). The
    /// aggregation round alone (`ztrain bench --only crossover`: star against sharded `ztrain stress`
    /// rounds, 2 and 4 worker processes over TCP loopback) crosses over between 10^4 and 10^5
    /// parameters with 2 workers and between 10^5 and 10^6 with 4, sharded taking about half the
    /// star's time from 10^6; a training step adds the NORM and APPLY hops on top, so the value stays
    /// above the measured crossover.
    public static let autoCrossover = 1 << 20

    /// The mode for a model of `parameterCount` parameters trained by `workers` workers (`sameHost`:
    /// every worker runs on the coordinator's machine).
    ///
    ///     AggregationChoice.auto.resolve(parameterCount: 17_030, workers: 4)      // .star
    ///     AggregationChoice.auto.resolve(parameterCount: 10_000_000, workers: 4)  // .sharded
    public func resolve(parameterCount: Int, workers: Int, sameHost: Bool = false) -> Aggregation {
        switch self {
        case .star: .star
        case .sharded: .sharded
        case .auto: !sameHost && workers >= 2 && parameterCount >= Self.autoCrossover ? .sharded : .star
        }
    }
}
