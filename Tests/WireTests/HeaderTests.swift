import Testing
import Wire

@Suite struct HeaderTests {
    /// One gradient message pinned byte by byte.
    @Test func pinnedGradientLayout() throws {
        let g = Gradient(
            step: 0x1112_1314_1516_1718, block: 2..<5, leafCount: 8, samples: 40,
            computeNanos: 0x2122_2324_2526_2728, sums: [1.0, -2.0, 0.5])
        let e = Envelope(runID: 0x0102_0304_0506_0708, workerID: 0x0A0B_0C0D, message: .gradient(g))
        let (header, payload) = encodeJoined(e)
        let expectedHeader: [UInt8] = [
            0x5A, 0x54, 0x52, 0x4E,  // magic "ZTRN"
            0x03, 0x00,  // version 3
            0x06,  // type gradient
            0x00,  // flags
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // run id
            0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,  // step
            0x0D, 0x0C, 0x0B, 0x0A,  // worker id
            0x02, 0x00, 0x00, 0x00,  // rangeLower
            0x05, 0x00, 0x00, 0x00,  // rangeUpper
            0x08, 0x00, 0x00, 0x00,  // leafCount
            0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // count (samples 40)
            0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,  // aux (compute nanos)
            0x04, 0x81, 0xD4, 0xD8, 0x79, 0x18, 0x7C, 0xAB,  // XXH64(payload) = 0xAB7C1879D8D48104
        ]
        let expectedPayload: [UInt8] = [
            0x00, 0x00, 0x80, 0x3F,  // 1.0
            0x00, 0x00, 0x00, 0xC0,  // -2.0
            0x00, 0x00, 0x00, 0x3F,  // 0.5 (the loss sum)
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // startNanos
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // sendNanos
        ]
        #expect(header.count == Header.size)
        #expect(header == expectedHeader)
        #expect(payload == expectedPayload)
        #expect(Array("ZTRN".utf8) == Array(header[0..<4]))
        let decoded = try Wire.decode(frames: wireFrames(expectedHeader, expectedPayload), limits: .handshake)
        #expect(decoded == e)
    }

    @Test func messageTypeValues() {
        #expect(MessageType.allCases.map(\.rawValue) == Array(1...19))
        #expect(MessageType.traffic.rawValue == 18 && MessageType.digest.rawValue == 19)
        #expect(MessageType.hello.rawValue == 1 && MessageType.bye.rawValue == 9)
        #expect(MessageType.table.rawValue == 10 && MessageType.slice.rawValue == 15 && MessageType.applied.rawValue == 17)
        #expect(MessageType.allCases.filter(\.isShard) == [.table, .order, .node, .norm, .apply, .slice, .fetch, .applied, .digest])
    }

    @Test func headerRoundTrip() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<500 {
            let type = MessageType.allCases.randomElement(using: &rng) ?? .hello
            let h = Header(
                type: type, runID: rng.next(), step: rng.next(), workerID: .random(in: 0...UInt32.max, using: &rng),
                rangeLower: .random(in: 0...UInt32.max, using: &rng),
                rangeUpper: .random(in: 0...UInt32.max, using: &rng),
                leafCount: .random(in: 0...UInt32.max, using: &rng), count: rng.next(), aux: rng.next(),
                checksum: rng.next())
            let bytes = h.encode()
            #expect(bytes.count == 64)
            #expect(try Header.decode(bytes) == h)
        }
    }

    /// Peek reads the header alone, so a receiver can turn away a wrong version or run before
    /// looking at (or checksumming) the payload.
    @Test func peekWithoutPayload() throws {
        let g = Gradient(step: 3, block: 0..<1, leafCount: 1, samples: 1, computeNanos: 9, sums: [1, 2])
        let (header, _) = encodeJoined(Envelope(runID: 77, workerID: 5, message: .gradient(g)))
        let h = try Header.decode(header)
        #expect(h.type == .gradient && h.runID == 77 && h.workerID == 5 && h.step == 3)
        var v4 = header
        put(UInt16(4), at: 4, in: &v4)
        #expect(throws: WireError.unsupportedVersion(4)) {
            _ = try Header.decode(v4)
        }
    }

    @Test func encodeIntoBuffer() {
        let h = Header(type: .heartbeat, runID: 5, workerID: 6)
        var buffer = [UInt8](repeating: 0xFF, count: 70)
        buffer.withUnsafeMutableBytes { h.encode(into: $0) }
        #expect(Array(buffer[0..<64]) == h.encode())
        #expect(buffer[64...].allSatisfy { $0 == 0xFF })
        #expect(Header(type: .bye).checksum == Wire.emptyChecksum)
    }
}
