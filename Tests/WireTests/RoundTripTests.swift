import Testing
import Support
import Wire

@Suite struct RoundTripTests {
    /// Every type, random contents and sizes: decode(encode(e)) == e, and re-encoding the decoded
    /// envelope gives the same bytes.
    @Test(arguments: MessageType.allCases)
    func roundTrip(_ type: MessageType) throws {
        var rng = SplitMix64(seed: 1000 + UInt64(type.rawValue))
        for i in 0..<200 {
            let e = randomEnvelope(type, &rng, maxP: i % 10 == 0 ? 5000 : 64)
            let (header, payload) = encodeJoined(e)
            #expect(header.count == 64)
            let decoded = try Wire.decode(frames: wireFrames(header, payload), limits: .handshake)
            #expect(decoded == e)
            let again = encodeJoined(decoded)
            #expect(again.header == header && again.payload == payload)
            #expect(try Header.decode(header).type == type)
        }
    }

    /// Special float values travel bit-exactly (-0, subnormals, extremes).
    @Test func specialFloatsAreBitExact() throws {
        let values: [Float] = [
            -0.0, 0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude,
            .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1, -1,
        ]
        let g = Gradient(step: 1, block: 0..<1, leafCount: 1, samples: 1, computeNanos: 0, sums: values)
        let (h, p) = encodeJoined(Envelope(runID: 1, workerID: 1, message: .gradient(g)))
        #expect(p == floatBytes(values) + [UInt8](repeating: 0, count: Wire.gradientTrailerBytes))
        guard case .gradient(let back) = try Wire.decode(frames: wireFrames(h, p), limits: .handshake).message
        else { Issue.record("not a gradient"); return }
        #expect(bitsEqual(back.sums, values))
    }

    /// With `allowNonFinite`, NaN and infinities in gradient sums are accepted and their bits kept.
    @Test func nonFiniteGradientAllowed() throws {
        let nanBits = Float(bitPattern: 0x7FC0_1234)
        let values: [Float] = [1, .infinity, -.infinity, nanBits, .nan]
        let g = Gradient(step: 1, block: 0..<1, leafCount: 1, samples: 1, computeNanos: 0, sums: values)
        let (h, p) = encodeJoined(Envelope(runID: 1, workerID: 1, message: .gradient(g)))
        let limits = Limits(maxPayloadBytes: 1 << 20, allowNonFinite: true)
        guard case .gradient(let back) = try Wire.decode(frames: wireFrames(h, p), limits: limits).message
        else { Issue.record("not a gradient"); return }
        #expect(bitsEqual(back.sums, values))
    }

    /// The buffer-based encoders give the same frames as `encode` and reuse the payload's storage.
    @Test func fastEncodePaths() {
        var rng = SplitMix64(seed: 42)
        var payload: [UInt8] = []
        payload.reserveCapacity(1 << 16)
        for _ in 0..<50 {
            let a = randomAssign(&rng, maxP: 2000, maxN: 100)
            let e = Envelope(runID: 9, workerID: 3, message: .assign(a))
            // an ASSIGN from the sender's own buffers (the zero-copy path): the same three frames
            let reference = Wire.encode(e)
            let capacity = payload.capacity
            let weights = Wire.littleEndianFrame(a.weights)
            let windows = a.windows.withUnsafeBufferPointer { Wire.windowsFrame($0) }
            let checksum = weights.withUnsafeBytes { w in windows.withUnsafeBytes { Wire.assignChecksum(weights: w, windows: $0) } }
            let header = Wire.assignHeader(runID: 9, workerID: 3, step: a.step, leaves: a.leaves, leafCount: a.leafCount,
                                           windows: a.windows.count, checksum: checksum).encode()
            #expect([header, weights, windows] == reference)

            let g = randomGradient(&rng, maxP: 3000)
            let ge = Envelope(runID: 9, workerID: 3, message: .gradient(g))
            let gref = encodeJoined(ge)
            let gh = g.sums.withUnsafeBufferPointer { s in
                Wire.encodeGradient(
                    runID: 9, workerID: 3, step: g.step, block: g.block, leafCount: g.leafCount,
                    samples: g.samples, computeNanos: g.computeNanos, sums: s, into: &payload)
            }
            #expect(gh == gref.header && payload == gref.payload)
            let gradientOnly = Array(g.sums.dropLast())
            let gh2 = gradientOnly.withUnsafeBufferPointer { s in
                Wire.encodeGradient(
                    runID: 9, workerID: 3, step: g.step, block: g.block, leafCount: g.leafCount,
                    samples: g.samples, computeNanos: g.computeNanos, gradient: s, lossSum: g.lossSum,
                    into: &payload)
            }
            #expect(gh2 == gref.header && payload == gref.payload)
            #expect(payload.capacity == capacity)
        }
    }

    /// `validate` + `readFloats`/`readUInt32s` into caller buffers give what `decode` gives.
    @Test func validateThenReadIntoBuffers() throws {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<50 {
            let a = randomAssign(&rng, maxP: 500, maxN: 50)
            let frames = Wire.encode(Envelope(runID: 1, workerID: 2, message: .assign(a)))
            let (h, wf, nf) = (frames[0], frames[1], frames[2])
            let v = try h.withUnsafeBytes { hb in
                try wf.withUnsafeBytes { wb in
                    try nf.withUnsafeBytes { nb in
                        try Result { () throws(WireError) -> Wire.Validated in
                            try Wire.validate(header: hb, frames: [wb, nb], limits: .training(parameterCount: a.weights.count, maxWindows: 50))
                        }.get()
                    }
                }
            }
            #expect(v.parameterCount == a.weights.count)
            #expect(v.header.count == UInt64(a.windows.count))
            var weights = [Float](repeating: .nan, count: v.parameterCount)
            var windows = [UInt32](repeating: 0, count: Int(v.header.count))
            try wf.withUnsafeBytes { wb in
                try weights.withUnsafeMutableBufferPointer { w in
                    try Result { () throws(WireError) in
                        try Wire.readFloats(wb, offset: 0, count: v.parameterCount, into: w)
                    }.get()
                }
            }
            try nf.withUnsafeBytes { nb in
                try windows.withUnsafeMutableBufferPointer { w in
                    try Result { () throws(WireError) in
                        try Wire.readUInt32s(nb, offset: 0, count: w.count, into: w)
                    }.get()
                }
            }
            #expect(bitsEqual(weights, a.weights))
            #expect(windows == a.windows)
        }
    }

    @Test func readFloatsChecksBounds() {
        let payload = floatBytes([1, 2, 3])
        var out = [Float](repeating: 0, count: 3)
        func read(_ offset: Int, _ count: Int) -> WireError? {
            payload.withUnsafeBytes { pb in
                out.withUnsafeMutableBufferPointer { o in
                    let r = Result { () throws(WireError) in
                        try Wire.readFloats(pb, offset: offset, count: count, into: o)
                    }
                    if case .failure(let e) = r { return e }
                    return nil
                }
            }
        }
        #expect(read(0, 3) == nil)
        #expect(out == [1, 2, 3])
        #expect(read(4, 2) == nil)
        #expect(out[0] == 2 && out[1] == 3)
        for (offset, count) in [(0, 4), (1, 3), (-1, 1), (0, -1), (13, 0), (12, 1), (4, 3)] {
            guard case .badLength = read(offset, count) else {
                Issue.record("offset \(offset) count \(count) should fail")
                continue
            }
        }
        var small = [Float](repeating: 0, count: 1)
        let e = payload.withUnsafeBytes { pb in
            small.withUnsafeMutableBufferPointer { o in
                Result { () throws(WireError) in try Wire.readFloats(pb, offset: 0, count: 2, into: o) }
            }
        }
        guard case .failure(.badLength) = e else { Issue.record("small destination accepted"); return }
    }

    /// JSON from another writer: other key order, whitespace, unknown keys, nulls for optionals.
    @Test func foreignJSONIsAccepted() throws {
        let json = """
            { "threads": 8, "future_field": {"a": [1, 2, {"b": null}]}, "host": "n\\u00e9ode/1",
              "ztrain_version" : "0.2.0", "pid": 4242, "protocol_version": 1,
              "expect": {"hidden": 64, "cell": null, "unknown": true} }
            """
        let payload = Array(json.utf8)
        let header = sealed(Header(type: .hello), payload)
        let e = try Wire.decode(frames: wireFrames(header, payload), limits: .handshake)
        let expected = Hello(
            protocolVersion: 1, host: "néode/1", pid: 4242, threads: 8, ztrainVersion: "0.2.0",
            expect: Expectation(hidden: 64))
        #expect(e == Envelope(runID: 0, workerID: 0, message: .hello(expected)))
        // Re-encoding writes the canonical form.
        let canonical = encodeJoined(e).payload
        #expect(
            String(decoding: canonical, as: UTF8.self)
                == #"{"expect":{"hidden":64},"host":"néode/1","pid":4242,"protocol_version":1,"threads":8,"ztrain_version":"0.2.0"}"#
        )
    }

    @Test func canonicalJSONBodies() {
        let r = Ready(numericsFingerprint: UInt64.max, threads: 4)
        #expect(
            String(decoding: encodeJoined(Envelope(runID: 1, workerID: 2, message: .ready(r))).payload, as: UTF8.self)
                == #"{"numerics_fingerprint":18446744073709551615,"threads":4}"#)
        let w = Welcome(
            runID: 7, workerID: 2, config: ["a": .string("x\\y/\n"), "b": .array([.integer(-1), .unsigned(UInt64.max), .double(0.5)])], points: 2, channels: 1, seriesHash: 3,
            parameterCount: 10, microBatch: 8, heartbeatMillis: 500, livenessMillis: 5000)
        let (_, p) = encodeJoined(Envelope(runID: 7, workerID: 2, message: .welcome(w, series: [1, 2])))
        let json = #"{"channels":1,"config":{"a":"x\\y/\n","b":[-1,18446744073709551615,0.5]},"heartbeat_millis":500,"liveness_millis":5000,"micro_batch":8,"parameter_count":10,"points":2,"protocol_version":3,"run_id":7,"series_hash":3,"worker_id":2}"#
        #expect(p == welcomePayload(json: Array(json.utf8), series: floatBytes([1, 2])))
    }

    @Test func reasonTextsAtTheLimit() throws {
        let text = String(repeating: "é", count: Limits.maxReasonBytes / 2)  // exactly 64 KiB
        for message in [Message.reject(text), .shutdown(text), .bye(text), .bye(""), .shutdown("")] {
            let e = Envelope(runID: 3, workerID: 4, message: message)
            let (h, p) = encodeJoined(e)
            #expect(try Wire.decode(frames: wireFrames(h, p), limits: .handshake) == e)
        }
    }

    @Test func heartbeatFrames() throws {
        let (h, p) = encodeJoined(Envelope(runID: 12, workerID: 34, message: .heartbeat))
        #expect(p.isEmpty)
        #expect(Array(h[56..<64]) == le(Wire.emptyChecksum))
        #expect(try Wire.decode(frames: [h, p], limits: Limits(maxPayloadBytes: 0)).message == .heartbeat)
    }

    @Test func limitsPresets() {
        #expect(Limits.handshake.maxPayloadBytes == 8 + (1 << 20) + (256 << 20))
        #expect(Limits.handshake.parameterCount == nil && !Limits.handshake.allowNonFinite)
        let t = Limits.training(parameterCount: 100_000, maxWindows: 1000)
        #expect(t.maxPayloadBytes == 4 * 101_000 + Wire.gradientTrailerBytes && t.parameterCount == 100_000)
        #expect(Limits.training(parameterCount: 10, maxWindows: 1).maxPayloadBytes == Limits.maxReasonBytes)
        #expect(Limits.training(parameterCount: Int.max, maxWindows: 5).maxPayloadBytes == Int.max)
    }

    /// A gradient and an assign at a realistic size.
    @Test func largeMessages() throws {
        var rng = SplitMix64(seed: 99)
        let p = 300_000
        let sums = randomFloats(p + 1, &rng)
        let g = Gradient(step: 10, block: 0..<64, leafCount: 64, samples: 512, computeNanos: 1, sums: sums)
        let e = Envelope(runID: 1, workerID: 1, message: .gradient(g))
        let (h, payload) = encodeJoined(e)
        #expect(payload.count == 4 * (p + 1) + Wire.gradientTrailerBytes)
        #expect(try Wire.decode(frames: wireFrames(h, payload), limits: .training(parameterCount: p, maxWindows: 512)) == e)
    }
}

@Suite("WELCOME without the series (shared data)")
struct SharedDataWelcomeTests {
    @Test func aSharedDataWelcomeCarriesNoSeriesAndOneWithTheSeriesIsRefused() throws {
        let w = Welcome(runID: 7, workerID: 2, config: [:], points: 1_000_000, channels: 3, seriesHash: 9, parameterCount: 10,
                        microBatch: 8, heartbeatMillis: 500, livenessMillis: 5000, sharedData: true)
        let e = Envelope(runID: 7, workerID: 2, message: .welcome(w, series: []))
        let (h, p) = encodeJoined(e)
        #expect(p.count < 400, "\(p.count) bytes")
        #expect(String(decoding: p.dropFirst(8), as: UTF8.self).contains(#","shared_data":true,"#))
        #expect(try Wire.decode(frames: wireFrames(h, p), limits: .handshake) == e)
        // the same welcome with the series attached does not decode
        let (h2, p2) = encodeJoined(Envelope(runID: 7, workerID: 2, message: .welcome(w, series: [1, 2, 3])))
        #expect(throws: WireError.self) { try Wire.decode(frames: wireFrames(h2, p2), limits: .handshake) }
    }
}

/// The CURVE keys of sharded runs are optional JSON fields: a run without CURVE sends the JSON of
/// earlier versions (no `key`, no `peer_key`), and one with keys round-trips them.
@Suite struct PeerKeyFieldTests {
    @Test func keysAreOptionalAndRoundTrip() throws {
        let plain = ShardTable(version: 2, parameterCount: 10, owners: [1], peers: [ShardTable.Peer(worker: 1, endpoint: "tcp://10.0.0.1:5556")])
        var keyed = plain
        keyed.peers[0].key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        let hello = Hello(host: "h", pid: 1, threads: 1, ztrainVersion: "x", peer: "tcp://10.0.0.1:5556")
        var keyedHello = hello
        keyedHello.peerKey = keyed.peers[0].key
        for (message, key, present) in [(Message.table(plain), "\"key\"", false), (.table(keyed), "\"key\"", true),
                                        (.hello(hello), "\"peer_key\"", false), (.hello(keyedHello), "\"peer_key\"", true)] {
            var e = Envelope(runID: 1, workerID: 1, message: message)
            if case .hello = message { e = Envelope(runID: 0, workerID: 0, message: message) }
            let frames = Wire.encode(e)
            #expect(String(decoding: frames[1], as: UTF8.self).contains(key) == present)
            #expect(try Wire.decode(frames: frames, limits: .handshake) == e)
        }
    }
}

@Suite struct SliceHeaderTests {
    /// The header a sender uses to send a SLICE's weights from the array itself is ``Wire/encode(_:)``'s,
    /// and its payload is the array's bytes.
    /// (A table generation, the audit's reseed, travels in it too: a receiver drops another generation's slices.)
    @Test(arguments: [UInt32(0), 3])
    func sliceHeaderIsTheEncodedHeader(generation: UInt32) throws {
        let values = (0..<5000).map { Float($0) * 0.25 - 7 }
        let slice = ParameterSlice(version: 12, range: 4096..<9096, values: values, generation: generation)
        let e = Envelope(runID: 9, workerID: 4, message: .slice(slice))
        let frames = Wire.encode(e)
        #expect(Wire.sliceHeader(runID: 9, workerID: 4, slice) == frames[0])
        #expect(frames[1] == values.withUnsafeBytes { Array($0) })
        #expect(try Wire.decode(frames: [frames[0], values.withUnsafeBytes { Array($0) }], limits: Limits(maxPayloadBytes: 1 << 20)) == e)
    }
}

@Suite struct TrafficMessageTests {
    @Test func trafficRoundTripsAsSixteenBytes() throws {
        let e = Envelope(runID: 3, workerID: 2, message: .traffic(Traffic(bytesIn: 1 << 40, bytesOut: 12345)))
        let frames = Wire.encode(e)
        #expect(frames.count == 2 && frames[1].count == 16)
        #expect(try Wire.decode(frames: frames, limits: .handshake) == e)
    }
}
