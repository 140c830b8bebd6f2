import Support
import Wire

/// A small seeded generator (SplitMix64), so every test input is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The fixed byte pattern the XXH64 vectors were computed on: byte i = (131 i + 17) mod 256.
func pattern(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) }
}

let scalarsPool: [Character] = [
    "a", "b", "z", "0", " ", "-", "_", "/", "\"", "\\", "\n", "\t", "\u{0}", "\u{1F}", "é", "ß",
    "漢", "🚀", "e\u{301}", "{", "}",
]

func randomString(_ rng: inout SplitMix64, maxLength: Int = 12) -> String {
    let n = Int.random(in: 0...maxLength, using: &rng)
    return String((0..<n).map { _ in scalarsPool.randomElement(using: &rng) ?? "a" })
}

/// A finite float, sometimes a special one (±0, subnormal, extremes).
func randomFloat(_ rng: inout SplitMix64) -> Float {
    switch UInt8.random(in: 0..<16, using: &rng) {
    case 0: return 0
    case 1: return -0.0
    case 2: return .leastNonzeroMagnitude
    case 3: return -.greatestFiniteMagnitude
    case 4: return .leastNormalMagnitude / 3
    default: return Float.random(in: -1000...1000, using: &rng)
    }
}

func randomFloats(_ count: Int, _ rng: inout SplitMix64) -> [Float] {
    (0..<count).map { _ in randomFloat(&rng) }
}

func randomHello(_ rng: inout SplitMix64) -> Hello {
    let expect: Expectation? =
        Bool.random(using: &rng)
        ? nil
        : Expectation(
            hidden: Bool.random(using: &rng) ? Int.random(in: 1...512, using: &rng) : nil,
            input: Bool.random(using: &rng) ? Int.random(in: 1...8, using: &rng) : nil,
            output: Bool.random(using: &rng) ? Int.random(in: 1...8, using: &rng) : nil,
            seqLen: Bool.random(using: &rng) ? Int.random(in: 1...64, using: &rng) : nil,
            cell: Bool.random(using: &rng) ? randomString(&rng) : nil,
            activation: Bool.random(using: &rng) ? "tanh" : nil,
            microBatch: Bool.random(using: &rng) ? Int.random(in: 1...64, using: &rng) : nil)
    return Hello(
        protocolVersion: 1, host: randomString(&rng), pid: Int32.random(in: 0...Int32.max, using: &rng),
        threads: Int.random(in: 1...4096, using: &rng), ztrainVersion: randomString(&rng),
        expect: expect)
}

func randomWelcome(runID: UInt64, workerID: UInt32, _ rng: inout SplitMix64, maxPoints: Int = 40)
    -> (Welcome, [Float])
{
    let points = Int.random(in: 1...maxPoints, using: &rng)
    let channels = Int.random(in: 1...3, using: &rng)
    let w = Welcome(
        protocolVersion: 1, runID: runID, workerID: workerID,
        config: ["hidden": .integer(32), "name": .string(randomString(&rng))], points: points,
        channels: channels, seriesHash: rng.next(), parameterCount: Int.random(in: 1...100_000, using: &rng),
        microBatch: Int.random(in: 1...64, using: &rng), heartbeatMillis: Int.random(in: 1...5000, using: &rng),
        livenessMillis: Int.random(in: 1...60000, using: &rng))
    return (w, randomFloats(points * channels, &rng))
}

func randomAssign(_ rng: inout SplitMix64, maxP: Int = 64, maxN: Int = 32) -> Assign {
    let n = Int.random(in: 1...maxN, using: &rng)
    let m = Int.random(in: 1...n, using: &rng)
    let lo = Int.random(in: 0..<m, using: &rng)
    let hi = Int.random(in: (lo + 1)...m, using: &rng)
    let p = Int.random(in: 1...maxP, using: &rng)
    return Assign(
        step: rng.next() >> UInt64.random(in: 0...63, using: &rng), leaves: lo..<hi, leafCount: m,
        weights: randomFloats(p, &rng), windows: (0..<n).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) })
}

func randomGradient(_ rng: inout SplitMix64, maxP: Int = 64) -> Gradient {
    let m = Int.random(in: 1...100, using: &rng)
    let lo = Int.random(in: 0..<m, using: &rng)
    let hi = Int.random(in: (lo + 1)...m, using: &rng)
    let p = Int.random(in: 1...maxP, using: &rng)
    return Gradient(
        step: rng.next() >> UInt64.random(in: 0...63, using: &rng), block: lo..<hi, leafCount: m,
        samples: Int.random(in: 1...10_000, using: &rng), computeNanos: rng.next(),
        sums: randomFloats(p + 1, &rng))
}

/// A valid sharded-aggregation message of the given type with random contents.
func randomShardMessage(_ type: MessageType, _ rng: inout SplitMix64, maxP: Int = 64) -> Message {
    let step = rng.next() >> UInt64.random(in: 0...63, using: &rng)
    let m = Int.random(in: 1...100, using: &rng)
    let lo = Int.random(in: 0..<m, using: &rng)
    let hi = Int.random(in: (lo + 1)...m, using: &rng)
    let p = Int.random(in: 1...maxP, using: &rng)
    switch type {
    case .table:
        let owners = (0..<Int.random(in: 1...5, using: &rng)).map { _ in UInt32.random(in: 1...UInt32.max, using: &rng) }
        return .table(ShardTable(version: UInt32.random(in: 0...UInt32.max, using: &rng), parameterCount: p, owners: owners,
                                 peers: owners.map { ShardTable.Peer(worker: $0, endpoint: "tcp://127.0.0.1:\($0 % 60000)") },
                                 generation: Bool.random(using: &rng) ? nil : UInt32.random(in: 0...UInt32.max, using: &rng)))
    case .order:
        let n = Int.random(in: m...(m + 20), using: &rng)
        return .order(StepOrder(step: step, leaves: lo..<hi, leafCount: m,
                                windows: (0..<n).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) },
                                table: UInt32.random(in: 0...UInt32.max, using: &rng)))
    case .node:
        let samples = Int.random(in: 1...10_000, using: &rng)
        return .node(NodeSlice(step: step, block: lo..<hi, leafCount: m, samples: samples,
                               windows: Int.random(in: max(m, samples)...20_000, using: &rng), owner: Int.random(in: 0...64, using: &rng), values: randomFloats(p, &rng),
                               table: UInt16.random(in: 0...UInt16.max, using: &rng)))
    case .norm:
        let b = Int.random(in: 0...1000, using: &rng)
        let k = Int.random(in: 0...8, using: &rng)
        return .norm(NormPart(step: step, blocks: b..<(b + k), sumsOfSquares: (0..<k).map { _ in Double.random(in: 0...1e9, using: &rng) },
                              isFinite: Bool.random(using: &rng), lossSum: Bool.random(using: &rng) ? randomFloat(&rng) : nil,
                              generation: Bool.random(using: &rng) ? 0 : UInt32.random(in: 0...UInt32.max, using: &rng)))
    case .apply:
        let gather = Bool.random(using: &rng)
        return .apply(ApplyStep(step: step, learningRate: Double.random(in: 0...1, using: &rng),
                                clipCoefficient: Bool.random(using: &rng) ? Double.random(in: 0...1, using: &rng) : nil,
                                table: UInt32.random(in: 0...UInt32.max, using: &rng), gather: gather, acknowledge: !gather && Bool.random(using: &rng)))
    case .fetch:
        return .fetch(FetchSlices(step: step, table: UInt32.random(in: 0...UInt32.max, using: &rng)))
    case .applied:
        let start = Int.random(in: 0...100_000, using: &rng)
        return .applied(AppliedStep(step: step, range: start..<(start + p), table: UInt32.random(in: 0...UInt32.max, using: &rng)))
    case .digest:
        return .digest(NodeDigest(step: step, block: lo..<hi, leafCount: m, digest: rng.next(),
                                  generation: Bool.random(using: &rng) ? 0 : UInt32.random(in: 0...UInt32.max, using: &rng)))
    default:
        let start = Int.random(in: 0...100_000, using: &rng)
        let state: [[Float]]? = Bool.random(using: &rng) ? nil : (0..<Int.random(in: 0...2, using: &rng)).map { _ in randomFloats(p, &rng) }
        return .slice(ParameterSlice(version: step, range: start..<(start + p), values: randomFloats(p, &rng), state: state,
                                     generation: Bool.random(using: &rng) ? 0 : UInt32.random(in: 0...UInt32.max, using: &rng)))
    }
}

/// A valid envelope of the given type with random contents.
func randomEnvelope(_ type: MessageType, _ rng: inout SplitMix64, maxP: Int = 64) -> Envelope {
    let runID = Bool.random(using: &rng) ? rng.next() : UInt64.random(in: 0...10, using: &rng)
    let workerID = UInt32.random(in: 0...UInt32.max, using: &rng)
    switch type {
    case .hello: return Envelope(runID: runID, workerID: 0, message: .hello(randomHello(&rng)))
    case .welcome:
        let (w, s) = randomWelcome(runID: runID, workerID: workerID, &rng)
        return Envelope(runID: runID, workerID: workerID, message: .welcome(w, series: s))
    case .reject:
        return Envelope(runID: runID, workerID: workerID, message: .reject(randomString(&rng, maxLength: 40)))
    case .ready:
        let r = Ready(numericsFingerprint: rng.next(), threads: Int.random(in: 1...4096, using: &rng))
        return Envelope(runID: runID, workerID: workerID, message: .ready(r))
    case .assign:
        return Envelope(runID: runID, workerID: workerID, message: .assign(randomAssign(&rng, maxP: maxP)))
    case .gradient:
        return Envelope(runID: runID, workerID: workerID, message: .gradient(randomGradient(&rng, maxP: maxP)))
    case .heartbeat: return Envelope(runID: runID, workerID: workerID, message: .heartbeat)
    case .traffic: return Envelope(runID: runID, workerID: workerID, message: .traffic(Traffic(bytesIn: rng.next(), bytesOut: rng.next())))
    case .shutdown:
        return Envelope(runID: runID, workerID: workerID, message: .shutdown(randomString(&rng, maxLength: 40)))
    case .bye:
        return Envelope(runID: runID, workerID: workerID, message: .bye(randomString(&rng, maxLength: 40)))
    case .table, .order, .node, .norm, .apply, .slice, .fetch, .applied, .digest:
        return Envelope(runID: runID, workerID: workerID, message: randomShardMessage(type, &rng, maxP: maxP))
    }
}

/// An envelope's frames with an ASSIGN's two payload frames (weights, windows) joined into its
/// logical payload, which the tests mutate byte by byte; ``wireFrames(_:_:)`` splits it again.
func encodeJoined(_ e: Envelope) -> (header: [UInt8], payload: [UInt8]) {
    let frames = Wire.encode(e)
    return (frames[0], Array(frames.dropFirst().joined()))
}

/// The `count` field of a header frame (bytes 40..<48), or 0 if it is too short.
func headerCount(_ header: [UInt8]) -> UInt64 {
    guard header.count >= 48 else { return 0 }
    var count: UInt64 = 0
    for i in 0..<8 { count |= UInt64(header[40 + i]) << (8 * UInt64(i)) }
    return count
}

/// The frames a sender sends for `header` and a logical payload: for an ASSIGN header the payload
/// cut before its `count` window starts (weights, then windows; all of it as windows when it is
/// too short), for every other type the payload as it is.
func wireFrames(_ header: [UInt8], _ payload: [UInt8]) -> [[UInt8]] {
    guard header.count == Header.size, header[6] == MessageType.assign.rawValue else { return [header, payload] }
    let count = headerCount(header)
    let split = count <= UInt64(payload.count / 4) ? payload.count - 4 * Int(count) : 0
    return [header, Array(payload[..<split]), Array(payload[split...])]
}

/// The checksum a header of `type` and `count` carries for a logical payload: for an ASSIGN the
/// chained checksum of its two frames (``wireFrames(_:_:)``), else XXH64 of the payload.
func logicalChecksum(_ payload: [UInt8], type: MessageType, count: UInt64) -> UInt64 {
    payload.withUnsafeBytes { b in
        guard type == .assign, count <= UInt64(b.count / 4) else { return Wire.xxh64(b) }
        let split = b.count - 4 * Int(count)
        return Wire.assignChecksum(weights: UnsafeRawBufferPointer(rebasing: b[..<split]),
                                   windows: UnsafeRawBufferPointer(rebasing: b[split...]))
    }
}

/// Decodes frames (an ASSIGN's logical payload as its two frames), returning the error instead of
/// throwing it.
func decodeResult(_ header: [UInt8], _ payload: [UInt8], limits: Limits = .handshake)
    -> Result<Envelope, WireError>
{
    Result { () throws(WireError) -> Envelope in
        try Wire.decode(frames: wireFrames(header, payload), limits: limits)
    }
}

/// The error decoding gives, or nil if it succeeds.
func decodeError(_ header: [UInt8], _ payload: [UInt8], limits: Limits = .handshake) -> WireError? {
    if case .failure(let e) = decodeResult(header, payload, limits: limits) { return e }
    return nil
}

/// Header frame for `header` with its checksum set to the payload's.
func sealed(_ header: Header, _ payload: [UInt8]) -> [UInt8] {
    var h = header
    h.checksum = logicalChecksum(payload, type: header.type, count: header.count)
    return h.encode()
}

/// Rewrites the checksum field of a header frame to match `payload`.
func reseal(_ header: inout [UInt8], _ payload: [UInt8]) {
    guard header.count >= 64 else { return }
    let type = MessageType(rawValue: header[6]) ?? .heartbeat
    let count = headerCount(header)
    let c = logicalChecksum(payload, type: type, count: count)
    for i in 0..<8 { header[56 + i] = UInt8(truncatingIfNeeded: c >> (8 * UInt64(i))) }
}

/// Stores `value` little-endian at `offset` of `bytes`.
func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
    for i in 0..<(T.bitWidth / 8) {
        bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
    }
}

func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }

func bitsEqual(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// A welcome payload with arbitrary JSON text and series bytes.
func welcomePayload(json: [UInt8], series: [UInt8]) -> [UInt8] {
    le(UInt64(json.count)) + json + series
}
