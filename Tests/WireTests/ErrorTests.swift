import Testing
import Wire

/// A valid gradient to break: P = 3.
private func validGradient() -> ([UInt8], [UInt8]) {
    let g = Gradient(step: 5, block: 1..<3, leafCount: 4, samples: 16, computeNanos: 77, sums: [1, 2, 3, 0.5])
    return encodeJoined(Envelope(runID: 1, workerID: 2, message: .gradient(g)))
}

/// A valid assign to break: P = 3, n = 4, M = 2.
private func validAssign() -> ([UInt8], [UInt8]) {
    let a = Assign(step: 5, leaves: 0..<1, leafCount: 2, weights: [1, 2, 3], windows: [0, 4, 8, 12])
    return encodeJoined(Envelope(runID: 1, workerID: 2, message: .assign(a)))
}

private func validHello() -> Hello {
    Hello(host: "h", pid: 1, threads: 2, ztrainVersion: "0.1")
}

private func welcomeJSON(runID: UInt64 = 7, workerID: UInt32 = 2, points: Int = 3, channels: Int = 2) -> String {
    #"{"protocol_version":1,"run_id":\#(runID),"worker_id":\#(workerID),"config":{},"points":\#(points),"#
        + #""channels":\#(channels),"series_hash":0,"parameter_count":10,"micro_batch":8,"#
        + #""heartbeat_millis":500,"liveness_millis":5000}"#
}

/// Frames for a message with these header fields and payload, with a correct checksum.
private func frames(_ header: Header, _ payload: [UInt8]) -> ([UInt8], [UInt8]) {
    (sealed(header, payload), payload)
}

private func error(_ f: ([UInt8], [UInt8]), limits: Limits = .handshake) -> WireError? {
    decodeError(f.0, f.1, limits: limits)
}

/// True when `e` is the given case, whatever its associated text.
private func isCase(_ e: WireError?, _ name: String) -> Bool {
    guard let e else { return false }
    switch e {
    case .badLength: return name == "badLength"
    case .badRange: return name == "badRange"
    case .nonFinite: return name == "nonFinite"
    case .badJSON: return name == "badJSON"
    case .unexpectedField: return name == "unexpectedField"
    case .oversized: return name == "oversized"
    default: return name == "\(e)"
    }
}

@Suite struct HeaderErrorTests {
    @Test func truncatedHeaderEveryLength() {
        let (h, p) = validGradient()
        for n in 0..<64 {
            #expect(decodeError(Array(h[0..<n]), p) == .truncatedHeader(n))
        }
        #expect(isCase(decodeError(h + [0], p), "badLength"))
    }

    @Test func wrongMagic() {
        var (h, p) = validGradient()
        h[0] = 0x5B
        #expect(decodeError(h, p) == .badMagic(0x4E52_545B))
        #expect(decodeError([UInt8](repeating: 0, count: 64), []) == .badMagic(0))
    }

    @Test(arguments: [UInt16(0), 1, 2, 4, 0xFFFF])
    func unsupportedVersion(_ version: UInt16) {
        var (h, p) = validGradient()
        put(version, at: 4, in: &h)
        #expect(decodeError(h, p) == .unsupportedVersion(version))
        let text = WireError.unsupportedVersion(version).description
        #expect(text.contains("peer speaks protocol \(version), this build speaks 3"))
    }

    @Test(arguments: [UInt8(0), 20, 255])  // 20: the first type after the last (19, DIGEST)
    func unknownType(_ type: UInt8) {
        var (h, p) = validGradient()
        h[6] = type
        #expect(decodeError(h, p) == .unknownType(type))
    }

    @Test(arguments: [UInt8(1), 0x80, 0xFF])
    func nonZeroFlags(_ flags: UInt8) {
        var (h, p) = validGradient()
        h[7] = flags
        #expect(decodeError(h, p) == .badFlags(flags))
    }

    @Test func wrongFrameCount() {
        let (h, p) = validGradient()
        #expect(decodeError(h, p) == nil)
        for frames in [[], [h], [h, p, p]] {
            let r = Result { () throws(WireError) in try Wire.decode(frames: frames, limits: .handshake) }
            guard case .failure(let e) = r else { Issue.record("accepted \(frames.count) frames"); continue }
            #expect(e == .wrongFrameCount(frames.count))
        }
    }

    @Test func oversizedPayload() {
        let (h, p) = validGradient()
        #expect(decodeError(h, p, limits: Limits(maxPayloadBytes: 32)) == nil)
        #expect(decodeError(h, p, limits: Limits(maxPayloadBytes: 31)) == .oversized(32, limit: 31))
        // Checked before the checksum: a huge payload with a wrong checksum is "oversized".
        let big = [UInt8](repeating: 1, count: 1000)
        #expect(decodeError(h, big, limits: Limits(maxPayloadBytes: 999)) == .oversized(1000, limit: 999))
    }

    @Test func checksumMismatchOnEveryBitFlip() {
        let (h, p) = validGradient()
        for bit in 0..<(8 * p.count) {
            var q = p
            q[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            #expect(decodeError(h, q) == .checksumMismatch)
        }
        var h2 = h
        h2[60] ^= 0x10
        #expect(decodeError(h2, p) == .checksumMismatch)
        #expect(decodeError(h, p + [0]) == .checksumMismatch)
    }

    @Test func unusedFieldsMustBeZero() {
        #expect(isCase(error(frames(Header(type: .hello, workerID: 3), encodeJoined(Envelope(runID: 0, workerID: 0, message: .hello(validHello()))).payload)), "unexpectedField"))
        #expect(isCase(error(frames(Header(type: .heartbeat, step: 1), [])), "unexpectedField"))
        #expect(isCase(error(frames(Header(type: .bye, rangeUpper: 1), [])), "unexpectedField"))
        #expect(isCase(error(frames(Header(type: .shutdown, leafCount: 1), [])), "unexpectedField"))
        #expect(isCase(error(frames(Header(type: .reject, count: 1), [])), "unexpectedField"))
        #expect(isCase(error(frames(Header(type: .reject, aux: 1), [])), "unexpectedField"))
        var (h, p) = validAssign()
        put(UInt64(9), at: 48, in: &h)  // aux
        reseal(&h, p)
        #expect(isCase(decodeError(h, p), "unexpectedField"))
        // The ids are free for every type.
        #expect(error(frames(Header(type: .heartbeat, runID: .max, workerID: .max), [])) == nil)
    }
}

@Suite struct BodyErrorTests {
    @Test func nonFiniteGradient() {
        for bad in [Float.nan, .infinity, -.infinity, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFFF_FFFF)] {
            for index in 0..<4 {  // index 3 is the loss sum
                var sums: [Float] = [1, 2, 3, 0.5]
                sums[index] = bad
                let g = Gradient(step: 1, block: 0..<1, leafCount: 1, samples: 1, computeNanos: 0, sums: sums)
                let (h, p) = encodeJoined(Envelope(runID: 1, workerID: 2, message: .gradient(g)))
                let e = decodeError(h, p)
                #expect(isCase(e, "nonFinite"), "\(bad) at \(index)")
                #expect(decodeError(h, p, limits: Limits(maxPayloadBytes: 100, allowNonFinite: true)) == nil)
                if index == 3 { #expect("\(e.map { "\($0)" } ?? "")".contains("loss")) }
            }
        }
    }

    @Test func nonFiniteAssignWeights() {
        for bad in [Float.nan, .infinity, -.infinity] {
            for index in 0..<3 {
                var w: [Float] = [1, 2, 3]
                w[index] = bad
                let a = Assign(step: 1, leaves: 0..<1, leafCount: 1, weights: w, windows: [5])
                let (h, p) = encodeJoined(Envelope(runID: 1, workerID: 2, message: .assign(a)))
                #expect(isCase(decodeError(h, p), "nonFinite"))
                // Weights must be finite even when gradients may not be.
                #expect(isCase(decodeError(h, p, limits: Limits(maxPayloadBytes: 100, allowNonFinite: true)), "nonFinite"))
            }
        }
        // Window starts are integers: all bit patterns are fine.
        let a = Assign(step: 1, leaves: 0..<1, leafCount: 1, weights: [1], windows: [0x7FC0_0000, .max])
        let (h, p) = encodeJoined(Envelope(runID: 1, workerID: 2, message: .assign(a)))
        #expect(decodeError(h, p) == nil)
    }

    @Test func badRanges() {
        // (lower, upper, leafCount, count)
        let assignCases: [(UInt32, UInt32, UInt32, UInt64)] = [
            (0, 0, 2, 4), (1, 1, 2, 4), (2, 1, 2, 4), (0, 3, 2, 4), (0, 1, 0, 4), (0, 0, 0, 4),
            (0, 1, 5, 4),  // more leaves than windows
            (0, 1, 1, 0),  // no windows
        ]
        for (lo, hi, m, n) in assignCases {
            let payload = floatBytes([1, 2, 3]) + (0..<Int(n)).flatMap { le(UInt32($0)) }
            let f = frames(Header(type: .assign, step: 1, rangeLower: lo, rangeUpper: hi, leafCount: m, count: n), payload)
            #expect(isCase(error(f), "badRange"), "assign [\(lo), \(hi)) of \(m), n \(n)")
        }
        let gradientCases: [(UInt32, UInt32, UInt32, UInt64)] = [
            (0, 0, 2, 4), (2, 1, 2, 4), (0, 3, 2, 4), (0, 1, 0, 4), (0, 1, 1, 0), (UInt32.max, UInt32.max, UInt32.max, 1),
        ]
        for (lo, hi, m, n) in gradientCases {
            let f = frames(Header(type: .gradient, step: 1, rangeLower: lo, rangeUpper: hi, leafCount: m, count: n), floatBytes([1, 2]))
            #expect(isCase(error(f), "badRange"), "gradient [\(lo), \(hi)) of \(m), count \(n)")
        }
        // The boundary cases are fine.
        #expect(error(frames(Header(type: .gradient, rangeLower: 0, rangeUpper: .max, leafCount: .max, count: .max >> 1), floatBytes([1, 2]) + [UInt8](repeating: 0, count: 16))) == nil)
        #expect(error(frames(Header(type: .assign, rangeLower: 3, rangeUpper: 4, leafCount: 4, count: 4), floatBytes([1]) + le(UInt32(0)) + le(UInt32(0)) + le(UInt32(0)) + le(UInt32(0)))) == nil)
    }

    @Test func lengthsNotMultipleOfFour() {
        for extra in 1...3 {
            let (gh, gp) = validGradient()
            var gp2 = gp + [UInt8](repeating: 0, count: extra)
            var gh2 = gh
            reseal(&gh2, gp2)
            #expect(isCase(decodeError(gh2, gp2), "badLength"))
            gp2 = Array(gp.dropLast(extra))
            reseal(&gh2, gp2)
            #expect(isCase(decodeError(gh2, gp2), "badLength"))

            let (ah, ap) = validAssign()
            let ap2 = ap + [UInt8](repeating: 0, count: extra)
            var ah2 = ah
            reseal(&ah2, ap2)
            #expect(isCase(decodeError(ah2, ap2), "badLength"))
        }
    }

    @Test func noRoomForParameters() {
        // Gradient: P + 1 floats with P >= 1, so 0 or 1 float is too few.
        for payload in [[], floatBytes([1])] {
            #expect(isCase(error(frames(Header(type: .gradient, rangeUpper: 1, leafCount: 1, count: 1), payload)), "badLength"))
        }
        // Assign: 4 windows need 4 values plus at least one weight.
        let windows = (0..<4).flatMap { le(UInt32($0)) }
        #expect(isCase(error(frames(Header(type: .assign, rangeUpper: 1, leafCount: 1, count: 4), windows)), "badLength"))
        #expect(isCase(error(frames(Header(type: .assign, rangeUpper: 1, leafCount: 1, count: 4), Array(windows.dropLast(4)))), "badLength"))
        // A count far beyond the payload is rejected without allocating for it.
        #expect(isCase(error(frames(Header(type: .assign, rangeUpper: 1, leafCount: 1, count: .max), windows)), "badLength"))
    }

    @Test func parameterCountMismatch() {
        let (gh, gp) = validGradient()  // P = 3
        #expect(decodeError(gh, gp, limits: Limits(maxPayloadBytes: 100, parameterCount: 3)) == nil)
        #expect(isCase(decodeError(gh, gp, limits: Limits(maxPayloadBytes: 100, parameterCount: 4)), "badLength"))
        #expect(isCase(decodeError(gh, gp, limits: Limits(maxPayloadBytes: 100, parameterCount: 2)), "badLength"))
        let (ah, ap) = validAssign()  // P = 3
        #expect(decodeError(ah, ap, limits: .training(parameterCount: 3, maxWindows: 4)) == nil)
        #expect(isCase(decodeError(ah, ap, limits: .training(parameterCount: 4, maxWindows: 4)), "badLength"))
        let text = decodeError(ah, ap, limits: .training(parameterCount: 4, maxWindows: 4)).map { "\($0)" } ?? ""
        #expect(text.contains("3 parameters") && text.contains("has 4"))
    }

    @Test func heartbeatWithPayload() {
        #expect(isCase(error(frames(Header(type: .heartbeat), [0])), "badLength"))
    }

    @Test func reasonTexts() {
        for type in [MessageType.reject, .shutdown, .bye] {
            for bad: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xC0, 0x80], [0x61, 0x80]] {
                #expect(error(frames(Header(type: type), bad)) == .badUTF8)
            }
            let big = [UInt8](repeating: 0x61, count: Limits.maxReasonBytes + 1)
            #expect(error(frames(Header(type: type), big)) == .oversized(Limits.maxReasonBytes + 1, limit: Limits.maxReasonBytes))
            #expect(error(frames(Header(type: type), Array(big.dropLast()))) == nil)
        }
    }
}

@Suite struct JSONErrorTests {
    private func hello(_ json: String) -> WireError? { helloBytes(Array(json.utf8)) }
    private func helloBytes(_ bytes: [UInt8]) -> WireError? { error(frames(Header(type: .hello), bytes)) }
    private func ready(_ json: String) -> WireError? { error(frames(Header(type: .ready), Array(json.utf8))) }

    @Test func invalidJSON() {
        for text in ["", "{", "[]", "null", "42", "{\"host\":}", "{}}", "not json", "{'a':1}"] {
            let e = hello(text)
            #expect(isCase(e, "badJSON"), "\(text): \(String(describing: e))")
        }
        #expect(isCase(ready("{\"numerics_fingerprint\":1,\"threads\":2"), "badJSON"))
    }

    /// The configuration is a nested object, not a string holding JSON (protocol version 3).
    @Test func welcomeConfigMustBeAnObject() {
        for config in [#""{}""#, "[]", "1", "null"] {
            let json = welcomeJSON().replacingFirst(#""config":{}"#, with: #""config":"# + config)
            let payload = welcomePayload(json: Array(json.utf8), series: floatBytes([1, 2, 3, 4, 5, 6]))
            let e = error(frames(Header(type: .welcome, runID: 7, workerID: 2), payload))
            #expect(isCase(e, "badJSON"), "\(config): \(String(describing: e))")
        }
    }

    @Test func missingKeys() {
        let full: [String: String] = [
            "protocol_version": "1", "host": "\"h\"", "pid": "1", "threads": "2", "ztrain_version": "\"0.1\"",
        ]
        #expect(hello("{" + full.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}") == nil)
        for key in full.keys {
            let json = "{" + full.filter { $0.key != key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
            let e = hello(json)
            #expect(isCase(e, "badJSON"))
            #expect((e.map { "\($0)" } ?? "").contains(key), "message names \(key)")
        }
        #expect(isCase(ready(#"{"threads":2}"#), "badJSON"))
        #expect(isCase(ready(#"{"numerics_fingerprint":2}"#), "badJSON"))
        let welcomeKeys = [
            "protocol_version", "run_id", "worker_id", "config", "points", "channels", "series_hash",
            "parameter_count", "micro_batch", "heartbeat_millis", "liveness_millis",
        ]
        for key in welcomeKeys {
            let json = welcomeJSON().replacingFirst("\"\(key)\":", with: "\"x_\(key)\":")
            let payload = welcomePayload(json: Array(json.utf8), series: floatBytes([1, 2, 3, 4, 5, 6]))
            let e = error(frames(Header(type: .welcome, runID: 7, workerID: 2), payload))
            #expect(isCase(e, "badJSON") && (e.map { "\($0)" } ?? "").contains(key), "\(key): \(String(describing: e))")
        }
    }

    @Test func wrongTypesAndInsaneValues() {
        for json in [
            #"{"protocol_version":1,"host":5,"pid":1,"threads":2,"ztrain_version":"0.1"}"#,
            #"{"protocol_version":1,"host":"h","pid":1,"threads":"2","ztrain_version":"0.1"}"#,
            #"{"protocol_version":1,"host":"h","pid":1,"threads":0,"ztrain_version":"0.1"}"#,
            #"{"protocol_version":1,"host":"h","pid":1,"threads":4097,"ztrain_version":"0.1"}"#,
            #"{"protocol_version":1,"host":"h","pid":99999999999,"threads":2,"ztrain_version":"0.1"}"#,
            #"{"protocol_version":1,"host":"h","pid":-1,"threads":2,"ztrain_version":"0.1"}"#,
            #"{"protocol_version":0,"host":"h","pid":1,"threads":2,"ztrain_version":"0.1"}"#,
            #"{"protocol_version":1,"host":"h","pid":1,"threads":2,"ztrain_version":"0.1","expect":{"hidden":0}}"#,
            #"{"protocol_version":1,"host":"h","pid":1,"threads":2,"ztrain_version":"0.1","expect":5}"#,
            #"{"protocol_version":1,"host":null,"pid":1,"threads":2,"ztrain_version":"0.1"}"#,
        ] {
            #expect(isCase(hello(json), "badJSON"), "\(json)")
        }
        #expect(isCase(ready(#"{"numerics_fingerprint":-1,"threads":2}"#), "badJSON"))
        #expect(isCase(ready(#"{"numerics_fingerprint":18446744073709551616,"threads":2}"#), "badJSON"))
        #expect(isCase(ready(#"{"numerics_fingerprint":1,"threads":0}"#), "badJSON"))
        #expect(ready(#"{"numerics_fingerprint":18446744073709551615,"threads":4096}"#) == nil)
    }

    @Test func tooBig() {
        let padding = String(repeating: " ", count: Limits.maxJSONBytes)
        let json = #"{"numerics_fingerprint":1,"threads":2}"# + padding
        #expect(ready(json) == .oversized(json.utf8.count, limit: Limits.maxJSONBytes))
        let fits = #"{"numerics_fingerprint":1,"threads":2}"#
        #expect(ready(fits + String(repeating: " ", count: Limits.maxJSONBytes - fits.utf8.count)) == nil)
    }

    @Test func deeplyNestedUnknownValue() {
        let depth = 100_000
        let json = #"{"numerics_fingerprint":1,"threads":2,"x":"# + String(repeating: "[", count: depth)
            + String(repeating: "]", count: depth) + "}"
        #expect(isCase(ready(json), "badJSON"))
    }

    @Test func invalidUTF8() {
        let prefix = Array(#"{"protocol_version":1,"host":""#.utf8)
        let suffix = Array(#"","pid":1,"threads":2,"ztrain_version":"0.1"}"#.utf8)
        #expect(helloBytes(prefix + Array("ok".utf8) + suffix) == nil)
        for bad: [UInt8] in [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80]] {
            #expect(helloBytes(prefix + bad + suffix) == .badUTF8)
        }
    }

    @Test func welcomeFraming() {
        let json = Array(welcomeJSON().utf8)
        let series = floatBytes([1, 2, 3, 4, 5, 6])
        let header = Header(type: .welcome, runID: 7, workerID: 2)
        #expect(error(frames(header, welcomePayload(json: json, series: series))) == nil)
        // Shorter than the length field.
        for n in 0..<8 { #expect(isCase(error(frames(header, [UInt8](repeating: 0, count: n))), "badLength")) }
        // JSON length beyond the payload.
        var p = welcomePayload(json: json, series: series)
        put(UInt64(p.count - 7), at: 0, in: &p)
        #expect(isCase(error(frames(header, p)), "badLength"))
        // JSON length over 1 MiB, and absurd.
        put(UInt64(Limits.maxJSONBytes + 1), at: 0, in: &p)
        #expect(error(frames(header, p)) == .oversized(Limits.maxJSONBytes + 1, limit: Limits.maxJSONBytes))
        put(UInt64.max, at: 0, in: &p)
        #expect(error(frames(header, p)) == .oversized(Int.max, limit: Limits.maxJSONBytes))
        // JSON length cutting the JSON short.
        put(UInt64(json.count - 1), at: 0, in: &p)
        #expect(isCase(error(frames(header, p)), "badJSON"))
    }

    @Test func welcomeSeriesLength() {
        let json = Array(welcomeJSON().utf8)  // 3 points × 2 channels
        let header = Header(type: .welcome, runID: 7, workerID: 2)
        for count in [0, 1, 5, 7, 12] {
            let e = error(frames(header, welcomePayload(json: json, series: floatBytes([Float](repeating: 1, count: count)))))
            #expect(isCase(e, "badLength"), "\(count) values")
        }
        #expect(isCase(error(frames(header, welcomePayload(json: json, series: floatBytes([1, 2, 3, 4, 5, 6]) + [0]))), "badLength"))
        // points × channels overflowing Int.
        let huge = Array(welcomeJSON(points: Int.max, channels: 2).utf8)
        #expect(isCase(error(frames(header, welcomePayload(json: huge, series: []))), "badLength"))
        // Zero points or channels.
        #expect(isCase(error(frames(header, welcomePayload(json: Array(welcomeJSON(points: 0).utf8), series: []))), "badJSON"))
        #expect(isCase(error(frames(header, welcomePayload(json: Array(welcomeJSON(channels: 0).utf8), series: []))), "badJSON"))
    }

    @Test func welcomeSeriesMustBeFinite() {
        let json = Array(welcomeJSON().utf8)
        let header = Header(type: .welcome, runID: 7, workerID: 2)
        let e = error(frames(header, welcomePayload(json: json, series: floatBytes([1, 2, 3, .nan, 5, 6]))))
        #expect(isCase(e, "nonFinite") && (e.map { "\($0)" } ?? "").contains("point 1, channel 1"))
        #expect(isCase(error(frames(header, welcomePayload(json: json, series: floatBytes([.infinity, 2, 3, 4, 5, 6])))), "nonFinite"))
    }

    @Test func welcomeIDsMustMatchHeader() {
        let series = floatBytes([1, 2, 3, 4, 5, 6])
        let header = Header(type: .welcome, runID: 7, workerID: 2)
        #expect(isCase(error(frames(header, welcomePayload(json: Array(welcomeJSON(runID: 8).utf8), series: series))), "badJSON"))
        #expect(isCase(error(frames(header, welcomePayload(json: Array(welcomeJSON(workerID: 3).utf8), series: series))), "badJSON"))
    }

    @Test func descriptionsAreHelpful() {
        #expect(WireError.truncatedHeader(10).description.contains("10 bytes"))
        #expect(WireError.badMagic(0x12345678).description.contains("0x12345678"))
        #expect(WireError.unknownType(10).description.contains("10"))
        #expect(WireError.oversized(5, limit: 4).description.contains("limit of 4"))
        #expect(WireError.wrongFrameCount(3).description.contains("3 frames"))
        #expect(WireError.checksumMismatch.description.contains("corrupted"))
    }
}

extension String {
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let r = firstRange(of: target) else { return self }
        return replacingCharacters(in: r, with: replacement)
    }
}
