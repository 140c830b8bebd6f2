public import Support

/// What the worker's operator pinned on the worker's command line; the coordinator refuses a
/// worker whose pins disagree with the run. All fields optional. JSON keys are snake_case.
public struct Expectation: Sendable, Equatable, Codable {
    /// Hidden units.
    public var hidden: Int?
    /// Input channels.
    public var input: Int?
    /// Output channels.
    public var output: Int?
    /// Points per window.
    public var seqLen: Int?
    /// The cell (`seed`, `elman`).
    public var cell: String?
    /// The activation (`tanh`, `relu`).
    public var activation: String?
    /// Windows per micro-batch.
    public var microBatch: Int?

    /// An expectation; every field defaults to "not pinned".
    public init(
        hidden: Int? = nil, input: Int? = nil, output: Int? = nil, seqLen: Int? = nil,
        cell: String? = nil, activation: String? = nil, microBatch: Int? = nil
    ) {
        self.hidden = hidden
        self.input = input
        self.output = output
        self.seqLen = seqLen
        self.cell = cell
        self.activation = activation
        self.microBatch = microBatch
    }

    enum CodingKeys: String, CodingKey {
        case hidden, input, output
        case seqLen = "seq_len"
        case cell, activation
        case microBatch = "micro_batch"
    }
}

/// The worker's first message (type ``MessageType/hello``), as JSON.
public struct Hello: Sendable, Equatable, Codable {
    /// The protocol version the worker speaks (informational; the header's version is checked).
    public var protocolVersion: Int
    /// The worker's host name.
    public var host: String
    /// The worker's process id.
    public var pid: Int32
    /// Compute threads the worker will use (1...4096).
    public var threads: Int
    /// The worker's ztrain version string.
    public var ztrainVersion: String
    /// What the worker's operator pinned, if anything.
    public var expect: Expectation?
    /// Sharded aggregation: the endpoint of the worker's peer router (other workers connect there);
    /// nil: the worker takes part in star aggregation only.
    public var peer: String?
    /// Sharded aggregation with CURVE: the Z85 public key of the worker's key pair (its peer router's
    /// server key; the coordinator passes it to the other workers in ``ShardTable``). Nil without CURVE.
    public var peerKey: String?
    /// What the process is: nil, a worker (it computes); ``Hello/shardRole``, a dedicated owner of a
    /// slice in sharded aggregation (`ztrain shard`: it computes nothing and never holds the whole
    /// weights). Left out of a worker's JSON.
    public var role: String?

    /// The ``role`` of a `ztrain shard` process.
    public static let shardRole = "shard"

    /// A hello.
    public init(
        protocolVersion: Int = Int(Wire.protocolVersion), host: String, pid: Int32, threads: Int,
        ztrainVersion: String, expect: Expectation? = nil, peer: String? = nil, peerKey: String? = nil, role: String? = nil
    ) {
        self.role = role
        self.peer = peer
        self.peerKey = peerKey
        self.protocolVersion = protocolVersion
        self.host = host
        self.pid = pid
        self.threads = threads
        self.ztrainVersion = ztrainVersion
        self.expect = expect
    }

    enum CodingKeys: String, CodingKey {
        case protocolVersion = "protocol_version"
        case host, pid, threads
        case ztrainVersion = "ztrain_version"
        case expect, peer, role
        case peerKey = "peer_key"
    }
}

/// The coordinator's acceptance of a worker (type ``MessageType/welcome``); travels as JSON
/// together with the series.
public struct Welcome: Sendable, Equatable, Codable {
    /// The protocol version the coordinator speaks.
    public var protocolVersion: Int
    /// The run id; must equal the header's.
    public var runID: UInt64
    /// The id given to this worker; must equal the header's.
    public var workerID: UInt32
    /// The training configuration, a JSON object nested in the message (not a string holding
    /// JSON). Opaque to `Wire`: its owner converts it with ``JSONTree/init(encoding:)`` and
    /// ``JSONTree/decode(_:)``.
    public var config: [String: JSONTree]
    /// Points in the series (≥ 1).
    public var points: Int
    /// Channels per point (≥ 1). The series has `points * channels` floats, point-major.
    public var channels: Int
    /// A hash of the series, for the worker to check what it received or loaded.
    public var seriesHash: UInt64
    /// Parameters of the model, P (≥ 1).
    public var parameterCount: Int
    /// Windows per micro-batch (≥ 1).
    public var microBatch: Int
    /// How often to send heartbeats, in milliseconds (≥ 1).
    public var heartbeatMillis: Int
    /// Silence after which a peer is considered dead, in milliseconds (≥ 1).
    public var livenessMillis: Int
    /// true: no series follows the JSON; the worker reads the data the configuration names itself (a file
    /// on storage it shares with the coordinator) and checks it against `seriesHash`. nil or false: the
    /// series follows.
    public var sharedData: Bool?
    /// "sharded": the run aggregates by owners of slices (TABLE, ORDER, NODE, NORM, APPLY, SLICE); nil:
    /// star aggregation (ASSIGN, GRADIENT).
    public var aggregation: String?

    /// A welcome.
    public init(
        protocolVersion: Int = Int(Wire.protocolVersion), runID: UInt64, workerID: UInt32,
        config: [String: JSONTree], points: Int, channels: Int, seriesHash: UInt64, parameterCount: Int,
        microBatch: Int, heartbeatMillis: Int, livenessMillis: Int, sharedData: Bool? = nil, aggregation: String? = nil
    ) {
        self.aggregation = aggregation
        self.sharedData = sharedData
        self.protocolVersion = protocolVersion
        self.runID = runID
        self.workerID = workerID
        self.config = config
        self.points = points
        self.channels = channels
        self.seriesHash = seriesHash
        self.parameterCount = parameterCount
        self.microBatch = microBatch
        self.heartbeatMillis = heartbeatMillis
        self.livenessMillis = livenessMillis
    }

    enum CodingKeys: String, CodingKey {
        case protocolVersion = "protocol_version"
        case runID = "run_id"
        case workerID = "worker_id"
        case config, points, channels
        case seriesHash = "series_hash"
        case parameterCount = "parameter_count"
        case microBatch = "micro_batch"
        case heartbeatMillis = "heartbeat_millis"
        case livenessMillis = "liveness_millis"
        case sharedData = "shared_data"
        case aggregation
    }
}

/// The worker's report that it is ready to compute (type ``MessageType/ready``), as JSON.
public struct Ready: Sendable, Equatable, Codable {
    /// A hash of the worker's numerics on a fixed probe, so the coordinator can detect a worker
    /// whose arithmetic differs.
    public var numericsFingerprint: UInt64
    /// Compute threads (1...4096).
    public var threads: Int

    /// A ready message.
    public init(numericsFingerprint: UInt64, threads: Int) {
        self.numericsFingerprint = numericsFingerprint
        self.threads = threads
    }

    enum CodingKeys: String, CodingKey {
        case numericsFingerprint = "numerics_fingerprint"
        case threads
    }
}

/// Work for one step (type ``MessageType/assign``): the current weights, the global batch's
/// window starts and the run of leaves this worker computes.
public struct Assign: Sendable, Equatable {
    /// The optimizer step.
    public var step: UInt64
    /// The run of leaves `[lo, hi)` this worker computes; `0 <= lo < hi <= leafCount`.
    public var leaves: Range<Int>
    /// Leaves of the step, M (`1 <= M <= windows.count`).
    public var leafCount: Int
    /// The P weights (finite).
    public var weights: [Float]
    /// The start of every window of the global batch, n ≥ 1 of them.
    public var windows: [UInt32]

    /// An assignment.
    public init(
        step: UInt64, leaves: Range<Int>, leafCount: Int, weights: [Float], windows: [UInt32]
    ) {
        self.step = step
        self.leaves = leaves
        self.leafCount = leafCount
        self.weights = weights
        self.windows = windows
    }
}

/// The sums over one node of the reduction tree (type ``MessageType/gradient``).
public struct Gradient: Sendable, Equatable {
    /// The optimizer step.
    public var step: UInt64
    /// The tree node `[lo, hi)` these sums cover; `0 <= lo < hi <= leafCount`.
    public var block: Range<Int>
    /// Leaves of the step, M.
    public var leafCount: Int
    /// Windows summed (≥ 1).
    public var samples: Int
    /// Nanoseconds the worker spent computing.
    public var computeNanos: UInt64
    /// Nanoseconds from the worker's receipt of the ASSIGN to the start of the computation.
    public var startNanos: UInt64
    /// Nanoseconds from the worker's receipt of the ASSIGN to the sending of this message.
    public var sendNanos: UInt64
    /// P + 1 floats: the gradient sum, then the loss sum.
    public var sums: [Float]

    /// A gradient message.
    public init(
        step: UInt64, block: Range<Int>, leafCount: Int, samples: Int, computeNanos: UInt64,
        startNanos: UInt64 = 0, sendNanos: UInt64 = 0, sums: [Float]
    ) {
        self.step = step
        self.block = block
        self.leafCount = leafCount
        self.samples = samples
        self.computeNanos = computeNanos
        self.startNanos = startNanos
        self.sendNanos = sendNanos
        self.sums = sums
    }

    /// P, the parameters covered (`sums.count - 1`).
    public var parameterCount: Int { max(0, sums.count - 1) }
    /// The loss sum (the last of `sums`), or 0 if `sums` is empty.
    public var lossSum: Float { sums.last ?? 0 }
}

/// A message of the protocol, without the run and worker ids (see ``Envelope``).
public enum Message: Sendable, Equatable {
    /// worker→coordinator: the worker introduces itself.
    case hello(Hello)
    /// coordinator→worker: accepted; the configuration and the series (Float32, point-major,
    /// `points * channels` values, finite).
    case welcome(Welcome, series: [Float])
    /// coordinator→worker: refused, with the reason (UTF-8, ≤ 64 KiB).
    case reject(String)
    /// worker→coordinator: ready to compute.
    case ready(Ready)
    /// coordinator→worker: compute a run of leaves of one step.
    case assign(Assign)
    /// worker→coordinator: the sums over one tree node.
    case gradient(Gradient)
    /// both ways: liveness.
    case heartbeat
    /// coordinator→worker: stop, with the reason (may be empty, ≤ 64 KiB).
    case shutdown(String)
    /// worker→coordinator: leaving, with the reason (may be empty, ≤ 64 KiB).
    case bye(String)
    /// coordinator→worker (sharded): the owners and the peers.
    case table(ShardTable)
    /// coordinator→worker (sharded): compute a run of leaves on the weights the worker holds.
    case order(StepOrder)
    /// worker→owner (sharded): an owner's slice of a tree node's sums.
    case node(NodeSlice)
    /// owner→coordinator (sharded): the owner's part of the norm (and the loss).
    case norm(NormPart)
    /// coordinator→owner (sharded): apply the reduced step.
    case apply(ApplyStep)
    /// owner→everyone (sharded): updated weights.
    case slice(ParameterSlice)
    /// coordinator→owner (sharded): send the slice held (weights and optimizer state) to the coordinator.
    case fetch(FetchSlices)
    /// owner→coordinator (sharded): the step is applied (the answer to an APPLY between sync steps).
    case applied(AppliedStep)
    /// worker→coordinator: the worker's byte counters so far.
    case traffic(Traffic)
    /// worker→coordinator (sharded): the digest of a tree node's sums it computed.
    case digest(NodeDigest)

    /// The header's type byte for this message.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .reject: .reject
        case .ready: .ready
        case .assign: .assign
        case .gradient: .gradient
        case .heartbeat: .heartbeat
        case .shutdown: .shutdown
        case .bye: .bye
        case .table: .table
        case .order: .order
        case .node: .node
        case .norm: .norm
        case .apply: .apply
        case .slice: .slice
        case .fetch: .fetch
        case .applied: .applied
        case .traffic: .traffic
        case .digest: .digest
        }
    }
}

/// A message with the run and worker ids every header carries.
///
/// `runID` and `workerID` go to the header for every type. A hello must carry worker id 0 and a
/// welcome the same ids as its JSON; the decoder rejects anything else.
public struct Envelope: Sendable, Equatable {
    /// The run (0 before the worker is welcomed, and in a reject that precedes a run).
    public var runID: UInt64
    /// The worker's id in the run (0 in a hello).
    public var workerID: UInt32
    /// The message.
    public var message: Message

    /// An envelope.
    public init(runID: UInt64, workerID: UInt32, message: Message) {
        self.runID = runID
        self.workerID = workerID
        self.message = message
    }
}

/// A worker's (or shard's) byte counters (type ``MessageType/traffic``, worker→coordinator): the bytes it
/// received and sent so far over all its sockets (the coordinator's link and the peer links), headers
/// included. Sent with its heartbeats and after each computation; the payload is the two counts as
/// UInt64 LE (16 bytes). The coordinator records the newest per worker (metrics.jsonl, summary.json).
public struct Traffic: Sendable, Equatable {
    public var bytesIn: UInt64
    public var bytesOut: UInt64

    public init(bytesIn: UInt64, bytesOut: UInt64) {
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
    }
}
