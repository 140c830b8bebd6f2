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
