/// The messages of sharded aggregation (`--aggregation sharded`): the owners' table, orders without
/// weights, node slices between workers, the owners' parts of the norm, the coordinator's apply
/// command and the updated slices. Star-mode runs never send them.
///
///     let order = StepOrder(step: 4, leaves: 0..<2, leafCount: 4, windows: [0, 8, 16, 24])
///     let frames = Wire.encode(Envelope(runID: 1, workerID: 2, message: .order(order)))

/// The owners of a sharded run's slices and every worker's peer endpoint (type ``MessageType/table``,
/// coordinator→worker, UTF-8 JSON). A newer ``version`` replaces an older table.
public struct ShardTable: Sendable, Equatable, Codable {
    /// A worker, the endpoint its peer router is bound to (`tcp://host:port` or `ipc://path`), and in
    /// a CURVE run the Z85 public key it announced (its peer router's server key, and the key its
    /// DEALERs authenticate with: the other workers' routers admit exactly the keys of the table).
    /// Optional on the wire: a run without CURVE sends no `key` (the JSON of earlier versions).
    public struct Peer: Sendable, Equatable, Codable {
        public var worker: UInt32
        public var endpoint: String
        public var key: String?
        /// True for a `ztrain shard` process (an owner that computes nothing and holds no whole weights:
        /// no SLICE goes to it); left out of the JSON for a worker.
        public var shard: Bool?
        public init(worker: UInt32, endpoint: String, key: String? = nil, shard: Bool? = nil) {
            self.worker = worker
            self.endpoint = endpoint
            self.key = key
            self.shard = shard
        }
    }

    /// Grows with every change of the table (an APPLY names the version it assumes).
    public var version: UInt32
    /// P, the parameters cut into slices.
    public var parameterCount: Int
    /// The worker owning each slice, in slice order (`ShardPlan(parameterCount:owners: owners.count)`).
    public var owners: [UInt32]
    /// Every worker of the run (owners and the others) with its peer endpoint.
    public var peers: [Peer]
    /// Grows when the coordinator reseeds the owners and the weights (an audit's rollback, or a step
    /// taken again without a quarantined worker): a worker given a newer generation drops the weights,
    /// owner and slices it holds and waits for the coordinator's. Nil (left out of the JSON): 0.
    public var generation: UInt32?

    public init(version: UInt32, parameterCount: Int, owners: [UInt32], peers: [Peer], generation: UInt32? = nil) {
        self.version = version
        self.parameterCount = parameterCount
        self.owners = owners
        self.peers = peers
        self.generation = generation
    }

    enum CodingKeys: String, CodingKey {
        case version
        case parameterCount = "parameter_count"
        case owners, peers, generation
    }
}

/// Work for one step without the weights (type ``MessageType/order``, coordinator→worker): the worker
/// holds the weights of `step` updates, assembled from the owners' slices.
public struct StepOrder: Sendable, Equatable {
    /// The optimizer step (updates applied to the weights this step runs on).
    public var step: UInt64
    /// The run of leaves `[lo, hi)` this worker computes.
    public var leaves: Range<Int>
    /// Leaves of the step, M.
    public var leafCount: Int
    /// The start of every window of the global batch.
    public var windows: [UInt32]
    /// The version of the ``ShardTable`` the order is given under: a worker drops orders of an older
    /// table (a step taken again after an owner was lost must not mix nodes of both attempts).
    public var table: UInt32 = 0

    public init(step: UInt64, leaves: Range<Int>, leafCount: Int, windows: [UInt32], table: UInt32 = 0) {
        self.table = table
        self.step = step
        self.leaves = leaves
        self.leafCount = leafCount
        self.windows = windows
    }
}

/// One owner's slice of one tree node's sums (type ``MessageType/node``, worker→owner).
public struct NodeSlice: Sendable, Equatable {
    /// The optimizer step.
    public var step: UInt64
    /// The tree node.
    public var block: Range<Int>
    /// Leaves of the step, M.
    public var leafCount: Int
    /// Windows summed (≥ 1).
    public var samples: Int
    /// The step's windows (the divisor of the averaged gradient).
    public var windows: Int
    /// The owner (slice index, < 65 536) the values are for.
    public var owner: Int
    /// The low 16 bits of the ``ShardTable`` version the node was cut under (an owner drops the nodes of
    /// another table).
    public var table: UInt16 = 0
    /// The node's sums over the owner's elements (the last owner's slice ends with the loss sum).
    public var values: [Float]

    public init(step: UInt64, block: Range<Int>, leafCount: Int, samples: Int, windows: Int, owner: Int, values: [Float],
                table: UInt16 = 0) {
        self.table = table
        self.windows = windows
        self.step = step
        self.block = block
        self.leafCount = leafCount
        self.samples = samples
        self.owner = owner
        self.values = values
    }
}

/// An owner's part of a step's global norm (type ``MessageType/norm``, owner→coordinator).
public struct NormPart: Sendable, Equatable {
    /// The step being reduced (updates applied + 1).
    public var step: UInt64
    /// The owner's blocks (may be empty).
    public var blocks: Range<Int>
    /// Each block's sum of squares of the averaged gradient.
    public var sumsOfSquares: [Double]
    /// Is the owner's averaged gradient slice finite?
    public var isFinite: Bool
    /// The step's loss sum (the last owner only).
    public var lossSum: Float?
    /// The ``ShardTable/generation`` the owner reduced the step under (an older one's part is stale).
    public var generation: UInt32 = 0

    public init(step: UInt64, blocks: Range<Int>, sumsOfSquares: [Double], isFinite: Bool, lossSum: Float?, generation: UInt32 = 0) {
        self.generation = generation
        self.step = step
        self.blocks = blocks
        self.sumsOfSquares = sumsOfSquares
        self.isFinite = isFinite
        self.lossSum = lossSum
    }
}

/// The coordinator's command to apply a reduced step (type ``MessageType/apply``, coordinator→owner).
public struct ApplyStep: Sendable, Equatable {
    /// The step to apply (updates applied + 1).
    public var step: UInt64
    /// The learning rate of the step.
    public var learningRate: Double
    /// The clip coefficient of the global norm, when the run clips and the norm exceeds the limit.
    public var clipCoefficient: Double?
    /// The version of the ``ShardTable`` the update is sent under: an owner holding an older table
    /// waits for the newer one before it sends its updated slice (to every worker of that table).
    public var table: UInt32
    /// The owner sends its optimizer state with its slice to the coordinator (a checkpoint is due, or
    /// the run may end at this step).
    public var gather: Bool
    /// Between sync steps: the owner answers the coordinator with an ``AppliedStep`` (no floats)
    /// instead of its updated slice (the other workers get the slice as always). Never with ``gather``.
    public var acknowledge: Bool

    public init(step: UInt64, learningRate: Double, clipCoefficient: Double?, table: UInt32, gather: Bool = false,
                acknowledge: Bool = false) {
        precondition(!(gather && acknowledge), "an acknowledged APPLY gathers nothing")
        self.table = table
        self.gather = gather
        self.acknowledge = acknowledge
        self.step = step
        self.learningRate = learningRate
        self.clipCoefficient = clipCoefficient
    }
}

/// A run of the weights after `version` updates (type ``MessageType/slice``; owner→everyone after an
/// update, an owner's answer to a ``FetchSlices``, or the coordinator's whole vector to a worker that joins).
public struct ParameterSlice: Sendable, Equatable {
    /// Updates applied to these weights.
    public var version: UInt64
    /// The elements `[lo, hi)` of the parameter vector.
    public var range: Range<Int>
    /// The weights (finite).
    public var values: [Float]
    /// The optimizer state of the range after `version` steps (its non-empty arrays: Adam's m and v,
    /// SGD's momentum, or none), when the slice carries it: an owner's answer to a gathering APPLY, or
    /// the coordinator seeding an owner. Nil: the weights alone.
    public var state: [[Float]]?
    /// The ``ShardTable/generation`` the weights belong to (a slice of an older generation is stale).
    public var generation: UInt32 = 0

    public init(version: UInt64, range: Range<Int>, values: [Float], state: [[Float]]? = nil, generation: UInt32 = 0) {
        self.state = state
        self.generation = generation
        self.version = version
        self.range = range
        self.values = values
    }
}

/// The coordinator asks the owners for the slices they hold (type ``MessageType/fetch``,
/// coordinator→owner): each answers with a ``ParameterSlice`` of the step it last applied, with its
/// optimizer state. Sent between steps (no APPLY unanswered), so every owner answers the same step:
/// the coordinator's copy of the weights is current again without waiting for a sync step (a graceful
/// stop, a worker that joins between sync steps).
///
///     let fetch = FetchSlices(step: 21, table: 3)   // owners answer SLICE(version 21, their range, m, v)
public struct FetchSlices: Sendable, Equatable {
    /// The step the coordinator expects the owners to hold (updates applied).
    public var step: UInt64
    /// The version of the ``ShardTable`` the fetch is sent under (an owner holding an older table
    /// waits for the newer one).
    public var table: UInt32

    public init(step: UInt64, table: UInt32) {
        self.step = step
        self.table = table
    }
}

/// An owner applied a step (type ``MessageType/applied``, owner→coordinator): the answer to an APPLY
/// between sync steps (``ApplyStep/acknowledge``), a header without floats. The updated slice went to
/// every worker; the coordinator's copy of the weights stays at the last sync step.
///
///     let ack = AppliedStep(step: 22, range: 0..<8192, table: 3)
public struct AppliedStep: Sendable, Equatable {
    /// The step applied (updates applied).
    public var step: UInt64
    /// The owner's elements.
    public var range: Range<Int>
    /// The version of the ``ShardTable`` of the APPLY answered.
    public var table: UInt32

    public init(step: UInt64, range: Range<Int>, table: UInt32) {
        self.step = step
        self.range = range
        self.table = table
    }
}

/// The digest of one tree node's sums as a worker computed them (type ``MessageType/digest``,
/// worker→coordinator, sharded aggregation): the coordinator never sees a sharded run's sums, so
/// the audit compares these. Workers send one for every node they compute, so none can tell which
/// nodes are audited.
public struct NodeDigest: Sendable, Equatable {
    /// The optimizer step.
    public var step: UInt64
    /// The tree node.
    public var block: Range<Int>
    /// Leaves of the step, M.
    public var leafCount: Int
    /// XXH64 of the node's `P + 1` sums as little-endian Float32, xor their byte count.
    public var digest: UInt64
    /// The ``ShardTable/generation`` the node was computed under (an older one's digest is stale).
    public var generation: UInt32 = 0

    public init(step: UInt64, block: Range<Int>, leafCount: Int, digest: UInt64, generation: UInt32 = 0) {
        self.generation = generation
        self.step = step
        self.block = block
        self.leafCount = leafCount
        self.digest = digest
    }
}
