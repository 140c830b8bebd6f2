/// The kind of a message, byte 6 of the header.
public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// worker→coordinator: first message; payload is the JSON of ``Hello``.
    case hello = 1
    /// coordinator→worker: the run's configuration and series.
    case welcome = 2
    /// coordinator→worker: the worker is refused; payload is the reason.
    case reject = 3
    /// worker→coordinator: the worker has built its model; payload is the JSON of ``Ready``.
    case ready = 4
    /// coordinator→worker: compute a run of leaves of one step.
    case assign = 5
    /// worker→coordinator: the sums over one node of the reduction tree.
    case gradient = 6
    /// both ways: liveness, empty payload.
    case heartbeat = 7
    /// coordinator→worker: stop; payload is the reason.
    case shutdown = 8
    /// worker→coordinator: the worker leaves; payload is the reason.
    case bye = 9
    /// Sharded aggregation (``ShardTable``, ``StepOrder``, ``NodeSlice``, ``NormPart``, ``ApplyStep``, ``ParameterSlice``,
    /// ``FetchSlices``, ``AppliedStep``).
    case table = 10
    case order = 11
    case node = 12
    case norm = 13
    case apply = 14
    case slice = 15
    case fetch = 16
    case applied = 17
    /// worker→coordinator: the bytes the process received and sent so far over all its sockets (``Traffic``).
    case traffic = 18
    /// worker→coordinator (sharded): the digest of one tree node it computed (the audit's evidence).
    case digest = 19

    /// Is this one of sharded aggregation's messages?
    public var isShard: Bool { (10...17).contains(rawValue) || self == .digest }

    public var description: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .reject: "reject"
        case .ready: "ready"
        case .assign: "assign"
        case .gradient: "gradient"
        case .heartbeat: "heartbeat"
        case .shutdown: "shutdown"
        case .bye: "bye"
        case .table: "table"
        case .order: "order"
        case .node: "node"
        case .norm: "norm"
        case .apply: "apply"
        case .slice: "slice"
        case .fetch: "fetch"
        case .applied: "applied"
        case .traffic: "traffic"
        case .digest: "digest"
        }
    }
}

/// The fixed 64-byte little-endian first frame of every message.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic 0x4E52545A ("ZTRN") |
/// | 4 | 2 | protocol version |
/// | 6 | 1 | message type |
/// | 7 | 1 | flags (0) |
/// | 8 | 8 | run id |
/// | 16 | 8 | step |
/// | 24 | 4 | worker id |
/// | 28 | 4 | rangeLower |
/// | 32 | 4 | rangeUpper |
/// | 36 | 4 | leafCount |
/// | 40 | 8 | count |
/// | 48 | 8 | aux |
/// | 56 | 8 | XXH64 of the payload, seed 0 |
///
/// The magic and version are implicit: ``encode()`` writes them and ``decode(_:)`` checks them.
public struct Header: Sendable, Equatable, CustomStringConvertible {
    /// Bytes in a header frame.
    public static let size = 64
    /// The first four bytes, "ZTRN" read as a little-endian `UInt32`.
    public static let magic: UInt32 = 0x4E52_545A

    /// The message type.
    public var type: MessageType
    /// Flags; 0 in protocol versions 1 and 2.
    public var flags: UInt8
    /// The run this message belongs to (0 before a worker is welcomed).
    public var runID: UInt64
    /// The optimizer step (assign, gradient).
    public var step: UInt64
    /// The worker's id within the run.
    public var workerID: UInt32
    /// Lower bound of a leaf range (assign: the run of leaves; gradient: the tree node).
    public var rangeLower: UInt32
    /// Upper bound (exclusive) of that leaf range.
    public var rangeUpper: UInt32
    /// Leaves of the step's reduction tree.
    public var leafCount: UInt32
    /// Windows: in the global batch (assign) or summed (gradient).
    public var count: UInt64
    /// Extra value: compute nanoseconds (gradient).
    public var aux: UInt64
    /// XXH64 (seed 0) of the payload frame.
    public var checksum: UInt64

    /// A header; every field but `type` defaults to 0. `checksum` defaults to XXH64 of an
    /// empty payload.
    public init(
        type: MessageType, flags: UInt8 = 0, runID: UInt64 = 0, step: UInt64 = 0,
        workerID: UInt32 = 0, rangeLower: UInt32 = 0, rangeUpper: UInt32 = 0,
        leafCount: UInt32 = 0, count: UInt64 = 0, aux: UInt64 = 0,
        checksum: UInt64 = Wire.emptyChecksum
    ) {
        self.type = type
        self.flags = flags
        self.runID = runID
        self.step = step
        self.workerID = workerID
        self.rangeLower = rangeLower
        self.rangeUpper = rangeUpper
        self.leafCount = leafCount
        self.count = count
        self.aux = aux
        self.checksum = checksum
    }

    /// The 64 header bytes.
    public func encode() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Header.size) { buffer, initialized in
            encode(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = Header.size
        }
    }

    /// Writes the 64 header bytes to the start of `buffer`, which must hold at least
    /// ``size`` bytes.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Header.size, "Header.encode(into:) needs 64 bytes")
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        }
        put(Header.magic, 0)
        put(Wire.protocolVersion, 4)
        put(type.rawValue, 6)
        put(flags, 7)
        put(runID, 8)
        put(step, 16)
        put(workerID, 24)
        put(rangeLower, 28)
        put(rangeUpper, 32)
        put(leafCount, 36)
        put(count, 40)
        put(aux, 48)
        put(checksum, 56)
    }

    /// Decodes a header frame, checking, in this order: exactly 64 bytes, the magic, the
    /// protocol version, the message type and that the flags are 0. Does not look at the payload
    /// (so neither the checksum nor the type-specific fields are checked): this is the cheap
    /// "peek" a receiver can do before touching a big payload.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Header {
        guard bytes.count == Header.size else {
            if bytes.count < Header.size { throw .truncatedHeader(bytes.count) }
            throw .badLength("header frame is \(bytes.count) bytes, expected \(Header.size)")
        }
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let magic = get(0, UInt32.self)
        guard magic == Header.magic else { throw .badMagic(magic) }
        let version = get(4, UInt16.self)
        guard version == Wire.protocolVersion else { throw .unsupportedVersion(version) }
        let rawType = get(6, UInt8.self)
        guard let type = MessageType(rawValue: rawType) else { throw .unknownType(rawType) }
        let flags = get(7, UInt8.self)
        guard flags == 0 else { throw .badFlags(flags) }
        return Header(
            type: type, flags: flags, runID: get(8, UInt64.self), step: get(16, UInt64.self),
            workerID: get(24, UInt32.self), rangeLower: get(28, UInt32.self),
            rangeUpper: get(32, UInt32.self), leafCount: get(36, UInt32.self),
            count: get(40, UInt64.self), aux: get(48, UInt64.self),
            checksum: get(56, UInt64.self))
    }

    /// Decodes a header frame held in an array; see the `UnsafeRawBufferPointer` overload.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Header {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(WireError) -> Header in try decode(buffer) }
        }
        return try result.get()
    }

    public var description: String {
        "\(type) run=\(runID) worker=\(workerID) step=\(step) range=\(rangeLower)..<\(rangeUpper)"
            + " leaves=\(leafCount) count=\(count) aux=\(aux)"
            + " checksum=0x\(String(checksum, radix: 16))"
    }
}
