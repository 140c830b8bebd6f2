import Testing
import Wire

/// Protocol v2 sends an ASSIGN as three frames (header, weights, window starts) so the weights
/// leave straight from the sender's buffer; these check that form is decoded exactly like the
/// logical payload, and that every other split or count of frames is a typed error.
@Suite struct SplitAssignTests {
    func split(_ e: Envelope) -> (header: [UInt8], weights: [UInt8], windows: [UInt8]) {
        let frames = Wire.encode(e)
        guard frames.count == 3 else { return (frames[0], frames[1], []) }
        return (frames[0], frames[1], frames[2])
    }

    func decodeSplit(_ h: [UInt8], _ w: [UInt8], _ n: [UInt8], limits: Limits = .handshake) -> Result<Envelope, WireError> {
        h.withUnsafeBytes { hb in
            w.withUnsafeBytes { wb in
                n.withUnsafeBytes { nb in
                    Result { () throws(WireError) -> Envelope in try Wire.decode(header: hb, frames: [wb, nb], limits: limits) }
                }
            }
        }
    }

    @Test func roundTripAsThreeFrames() throws {
        var rng = SplitMix64(seed: 2024)
        for _ in 0..<300 {
            let e = randomEnvelope(.assign, &rng)
            let (h, w, n) = split(e)
            #expect(try decodeSplit(h, w, n).get() == e)
            // the same checksum as the logical payload's
            let header = try Header.decode(h)
            let logical = w + n
            #expect(logicalChecksum(logical, type: .assign, count: header.count) == header.checksum)
            let v = try h.withUnsafeBytes { hb in
                try w.withUnsafeBytes { wb in
                    try n.withUnsafeBytes { nb in try Wire.validate(header: hb, frames: [wb, nb], limits: .handshake) }
                }
            }
            #expect(v.header == header && v.parameterCount == w.count / 4)
        }
    }

    /// Moving the boundary between the two frames (the same bytes in all) is always refused.
    @Test func everyOtherSplitIsATypedError() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<40 {
            let (h, w, n) = split(randomEnvelope(.assign, &rng, maxP: 12))
            let all = w + n
            for cut in 0...all.count where cut != w.count {
                if case .success = decodeSplit(h, Array(all[0..<cut]), Array(all[cut...])) {
                    Issue.record("accepted a split at byte \(cut) instead of \(w.count)")
                }
            }
        }
    }

    @Test func corruptedFramesAreChecksumMismatches() {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<50 {
            let (h, w, n) = split(randomEnvelope(.assign, &rng))
            var w2 = w
            w2[Int.random(in: 0..<w2.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            #expect(decodeSplit(h, w2, n).failure == .checksumMismatch)
            var n2 = n
            n2[Int.random(in: 0..<n2.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            #expect(decodeSplit(h, w, n2).failure == .checksumMismatch)
        }
    }

    @Test func wrongFrameCountsAndTypes() {
        var rng = SplitMix64(seed: 5)
        let (h, w, n) = split(randomEnvelope(.assign, &rng))
        let r = h.withUnsafeBytes { hb in
            w.withUnsafeBytes { wb in
                Result { () throws(WireError) -> Envelope in try Wire.decode(header: hb, frames: [wb, wb, wb], limits: .handshake) }
            }
        }
        #expect(r.failure == .wrongFrameCount(4))
        let (gh, gp) = encodeJoined(randomEnvelope(.gradient, &rng))
        #expect(decodeSplit(gh, gp, []).failure == .wrongFrameCount(3))
        // the two frames together are bounded like one payload
        #expect(decodeSplit(h, w, n, limits: Limits(maxPayloadBytes: w.count + n.count - 1)).failure
                == .oversized(w.count + n.count, limit: w.count + n.count - 1))
        // non-finite weights are refused in the split form too
        var bad = w
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for (i, b) in $0.enumerated() { bad[i] = b } }
        var header = (try? Header.decode(h)) ?? Header(type: .assign)
        header.checksum = bad.withUnsafeBytes { wb in n.withUnsafeBytes { nb in Wire.assignChecksum(weights: wb, windows: nb) } }
        if case .nonFinite = decodeSplit(header.encode(), bad, n).failure {} else { Issue.record("a NaN weight was not refused") }
    }

    /// One format per message: an ASSIGN as one payload (its two frames joined) is refused, in
    /// both decoding and validation, before any checksum.
    @Test func onePayloadAssignIsRefused() {
        var rng = SplitMix64(seed: 13)
        for _ in 0..<20 {
            let (h, w, n) = split(randomEnvelope(.assign, &rng))
            let joined = w + n
            let decoded = Result { () throws(WireError) -> Envelope in try Wire.decode(frames: [h, joined], limits: .handshake) }
            #expect(decoded.failure == .wrongFrameCount(2))
            let validated = h.withUnsafeBytes { hb in
                joined.withUnsafeBytes { pb in
                    Result { () throws(WireError) -> Wire.Validated in try Wire.validate(header: hb, payload: pb, limits: .handshake) }
                }
            }
            #expect(validated.failure == .wrongFrameCount(2))
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
