import Testing
import Wire

/// Seeded fuzzing of `Wire.decode`: random bytes, and mutations, truncations, extensions and
/// header-field rewrites of valid messages of every type (half of them with the checksum fixed up
/// so that the type-specific checks are reached). Decoding must return or throw, never trap, and
/// whatever decodes must re-encode to the same frames.
@Suite struct FuzzTests {
    /// 4 shards × 100,000 = 400,000 inputs (about 4 s in all in a debug build on 2 cores).
    static let shards = 4
    static let inputsPerShard = 100_000

    private static let headerFields: [(offset: Int, size: Int)] = [
        (4, 2), (6, 1), (7, 1), (8, 8), (16, 8), (24, 4), (28, 4), (32, 4), (36, 4), (40, 8), (48, 8),
    ]

    private static func randomBytes(_ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    private static func edgeValue(_ size: Int, _ rng: inout SplitMix64) -> UInt64 {
        let max: UInt64 = size == 8 ? .max : (1 << UInt64(8 * size)) - 1
        switch UInt8.random(in: 0..<8, using: &rng) {
        case 0: return 0
        case 1: return 1
        case 2: return 2
        case 3: return max
        case 4: return max - 1
        case 5: return UInt64.random(in: 0...64, using: &rng)
        default: return rng.next() & max
        }
    }

    private static func mutate(_ bytes: inout [UInt8], _ rng: inout SplitMix64) {
        guard !bytes.isEmpty else { return }
        let i = Int.random(in: 0..<bytes.count, using: &rng)
        switch UInt8.random(in: 0..<6, using: &rng) {
        case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
        case 1: bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
        case 2: bytes[i] = 0
        case 3: bytes[i] = 0xFF
        case 4: bytes[i] &+= 1
        default: bytes[i] &-= 1
        }
    }

    private static func input(_ pool: [([UInt8], [UInt8])], _ rng: inout SplitMix64) -> ([UInt8], [UInt8]) {
        let strategy = UInt8.random(in: 0..<100, using: &rng)
        if strategy < 8 {
            // Pure random bytes.
            let hc = Bool.random(using: &rng) ? 64 : Int.random(in: 0...80, using: &rng)
            return (randomBytes(hc, &rng), randomBytes(Int.random(in: 0...200, using: &rng), &rng))
        }
        if strategy < 16 {
            // A plausible header with random fields and a random payload.
            var h = randomBytes(64, &rng)
            put(Header.magic, at: 0, in: &h)
            put(Wire.protocolVersion, at: 4, in: &h)
            h[6] = UInt8.random(in: 1...9, using: &rng)
            h[7] = 0
            let p = randomBytes(Int.random(in: 0...120, using: &rng), &rng)
            if Bool.random(using: &rng) { reseal(&h, p) }
            return (h, p)
        }
        var (h, p) = pool.randomElement(using: &rng) ?? ([], [])
        var fix = Bool.random(using: &rng)
        switch strategy {
        case 16..<20:
            fix = false  // unmodified
        case 20..<60:
            // 1–4 byte mutations, in the payload (mostly) or the header.
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                if p.isEmpty || UInt8.random(in: 0..<4, using: &rng) == 0 {
                    mutate(&h, &rng)
                } else {
                    mutate(&p, &rng)
                }
            }
        case 60..<70:
            // Truncation.
            if UInt8.random(in: 0..<4, using: &rng) == 0 {
                h = Array(h.prefix(Int.random(in: 0...h.count, using: &rng)))
            } else {
                p = Array(p.prefix(Int.random(in: 0...p.count, using: &rng)))
            }
        case 70..<80:
            // Extension.
            let extra = randomBytes(Int.random(in: 1...16, using: &rng), &rng)
            if UInt8.random(in: 0..<8, using: &rng) == 0 { h += extra } else { p += extra }
        default:
            // Rewrite 1–2 header fields with edge values, checksum fixed.
            for _ in 0..<Int.random(in: 1...2, using: &rng) {
                let field = headerFields.randomElement(using: &rng) ?? (8, 8)
                let v = edgeValue(field.size, &rng)
                for k in 0..<field.size where field.offset + k < h.count {
                    h[field.offset + k] = UInt8(truncatingIfNeeded: v >> UInt64(8 * k))
                }
            }
            fix = true
        }
        if fix { reseal(&h, p) }
        return (h, p)
    }

    private static func limits(_ rng: inout SplitMix64) -> Limits {
        switch UInt8.random(in: 0..<10, using: &rng) {
        case 0..<4: return .handshake
        case 4: return Limits(maxPayloadBytes: Int.random(in: 0...300, using: &rng))
        case 5, 6: return Limits(maxPayloadBytes: 1 << 20, allowNonFinite: true)
        case 7, 8:
            return Limits(
                maxPayloadBytes: 1 << 20, parameterCount: Int.random(in: 1...24, using: &rng),
                allowNonFinite: Bool.random(using: &rng))
        default: return .training(parameterCount: Int.random(in: 1...24, using: &rng), maxWindows: 32)
        }
    }

    private static func caseName(_ e: WireError) -> String {
        switch e {
        case .checksumMismatch: return "checksumMismatch"
        case .badUTF8: return "badUTF8"
        case .badLength: return "badLength"
        case .badRange: return "badRange"
        case .nonFinite: return "nonFinite"
        case .badJSON: return "badJSON"
        case .unexpectedField: return "unexpectedField"
        case .oversized: return "oversized"
        case .truncatedHeader: return "truncatedHeader"
        case .badMagic: return "badMagic"
        case .unsupportedVersion: return "unsupportedVersion"
        case .unknownType: return "unknownType"
        case .badFlags: return "badFlags"
        case .wrongFrameCount: return "wrongFrameCount"
        }
    }

    /// Checks that a decoded envelope re-encodes to the input; returns a failure text or nil.
    private static func reencodeMismatch(_ e: Envelope, _ h: [UInt8], _ p: [UInt8]) -> String? {
        let (h2, p2) = encodeJoined(e)
        switch e.message.type {
        case .hello, .welcome, .ready, .table:
            // JSON is re-encoded canonically (key order, whitespace, escapes, unknown keys are not
            // kept), so the payload may differ; everything else must not, and the canonical form
            // must decode to the same value and re-encode to itself.
            guard h2[0..<56] == h[0..<56] else { return "header differs" }
            guard case .success(let e2) = decodeResult(h2, p2), e2 == e else {
                return "canonical form does not decode to the same value"
            }
            let (h3, p3) = encodeJoined(e2)
            guard h3 == h2, p3 == p2 else { return "canonical form is not a fixed point" }
            return nil
        default:
            if h2 != h { return "header differs" }
            if p2 != p { return "payload differs" }
            return nil
        }
    }

    @Test(arguments: 0..<shards)
    func decodeIsTotal(_ shard: Int) {
        var rng = SplitMix64(seed: 0x5EED_0000 + UInt64(shard))
        var pool: [([UInt8], [UInt8])] = []
        let types = MessageType.allCases.count
        for i in 0..<(types * 30) {
            let type = MessageType.allCases[i % types]
            pool.append(encodeJoined(randomEnvelope(type, &rng, maxP: 24)))
        }
        var decoded: [MessageType: Int] = [:]
        var errors: [String: Int] = [:]
        var failures = 0
        for n in 0..<Self.inputsPerShard {
            let (h, p) = Self.input(pool, &rng)
            switch decodeResult(h, p, limits: Self.limits(&rng)) {
            case .success(let e):
                decoded[e.message.type, default: 0] += 1
                if let problem = Self.reencodeMismatch(e, h, p) {
                    failures += 1
                    if failures <= 5 {
                        Issue.record("input \(n) of shard \(shard): \(problem): \(h) \(p)")
                    }
                }
            case .failure(let error):
                errors[Self.caseName(error), default: 0] += 1
            }
        }
        #expect(failures == 0)
        // Every type was reached and decoded, and the deep checks were exercised.
        for type in MessageType.allCases {
            #expect(decoded[type, default: 0] > 100, "\(type) decoded \(decoded[type, default: 0]) times")
        }
        for name in ["badRange", "badLength", "nonFinite", "badJSON", "unexpectedField", "checksumMismatch", "badUTF8"] {
            #expect(errors[name, default: 0] > 0, "\(name) never reached")
        }
        let summary = MessageType.allCases.map { "\($0)=\(decoded[$0, default: 0])" }.joined(separator: " ")
        let errorSummary = errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print("fuzz shard \(shard): \(Self.inputsPerShard) inputs; decoded \(summary); errors \(errorSummary)")
    }
}
