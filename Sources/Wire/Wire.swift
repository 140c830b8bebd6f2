import Support

/// The data-parallel training protocol between a coordinator and its workers: message values and
/// a pure, total binary codec.
///
/// Every message is a 64-byte ``Header`` and a payload (possibly empty), whose XXH64 the header
/// carries; an ASSIGN's payload is two frames, its weights and its window starts. One format per
/// message: ``encode(_:)`` makes the frames, ``decode(frames:limits:)`` (or in place,
/// ``decode(header:frames:limits:)``) reads them, and ``validate(header:frames:limits:)`` (for the
/// hot path, ``validate(header:payload:limits:)``) checks them without copying the bulk data.
///
/// ```swift
/// let frames = Wire.encode(Envelope(runID: 1, workerID: 2, message: .heartbeat))
/// let back = try Wire.decode(frames: frames, limits: .handshake)
/// ```
///
/// Protocol version 3 (this one) differs from version 2 in the JSON bodies only: they are written
/// with sorted keys, and WELCOME's `config` is a nested JSON object instead of a string holding
/// JSON. Version 2 differed from version 1 in two ways. An ASSIGN travels as three
/// frames (header, weights, window starts; ``decode(header:frames:limits:)``) and its checksum
/// chains the two (``assignChecksum(weights:windows:)``). In the GRADIENT payload, after the
/// P + 1 little-endian Float32 sums come two little-endian UInt64 span offsets, in nanoseconds
/// from the worker's receipt of the ASSIGN: when the computation started (`startNanos`) and when
/// the message was handed to the socket (`sendNanos`). With the compute time of the header's
/// `aux`, they let the coordinator draw the worker's spans on its own clock (`--timeline`)
/// without a clock shared between hosts.
///
/// | type | payload frame |
/// |---|---|
/// | HELLO, READY | UTF-8 JSON |
/// | WELCOME | UInt64 JSON length, JSON, then points × channels Float32 |
/// | REJECT, SHUTDOWN, BYE | UTF-8 text (≤ 64 KiB) |
/// | HEARTBEAT | empty |
/// | ASSIGN | P Float32 weights, then `count` UInt32 window starts (the global batch); sent as two frames (weights, windows), so the weights go out straight from the coordinator's buffer; checksum: ``assignChecksum(weights:windows:)`` |
/// | GRADIENT | P + 1 Float32 (gradient sums, loss sum), UInt64 `startNanos`, UInt64 `sendNanos` |
/// | TABLE, ORDER, NODE, NORM, APPLY, SLICE | sharded aggregation's messages (see `ShardCodec.swift`) |
///
/// ``decode(header:frames:limits:)`` accepts any bytes: it returns a
/// message or throws a ``WireError``, never traps, and never allocates more than the payload's
/// size.
public enum Wire {
    /// The protocol version this build speaks, bytes 4–5 of every header.
    public static let protocolVersion: UInt16 = 3
    /// Bytes after the P + 1 sums of a GRADIENT payload: the two span offsets.
    public static let gradientTrailerBytes = 16
    /// XXH64 (seed 0) of the empty payload.
    public static let emptyChecksum: UInt64 = 0xEF46_DB37_51D8_E999

    // MARK: Encoding

    /// Encodes an envelope to its frames: the header, then the payload, or for an ASSIGN its
    /// weights and its window starts (a sender that keeps the weights in a buffer of its own sends
    /// them from there instead: ``assignHeader(runID:workerID:step:leaves:leafCount:windows:checksum:)``,
    /// ``windowsFrame(_:)``). Does not validate: an envelope that breaks the rules (empty weights, an
    /// empty range, non-finite floats, ...) is encoded as given and rejected by the receiver's
    /// ``decode(frames:limits:)``. Traps only if a range, leaf count or window count does not fit its
    /// `UInt32` header field or is negative.
    public static func encode(_ e: Envelope) -> [[UInt8]] {
        var header = Header(type: e.message.type, runID: e.runID, workerID: e.workerID)
        var payload: [UInt8]
        switch e.message {
        case .hello(let hello):
            payload = JSON.encode(hello)
        case .welcome(let welcome, let series):
            let json = JSON.encode(welcome)
            payload = []
            payload.reserveCapacity(8 + json.count + 4 * series.count)
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { payload.append(contentsOf: $0) }
            payload.append(contentsOf: json)
            let offset = payload.count
            payload.append(contentsOf: repeatElement(0, count: 4 * series.count))
            series.withUnsafeBytes { source in
                payload.withUnsafeMutableBytes { target in
                    write32(source.baseAddress, count: series.count, to: target, offset: offset)
                }
            }
        case .reject(let text), .shutdown(let text), .bye(let text):
            payload = Array(text.utf8)
        case .ready(let ready):
            payload = JSON.encode(ready)
        case .heartbeat:
            payload = []
        case .traffic(let t):
            payload = []
            withUnsafeBytes(of: t.bytesIn.littleEndian) { payload.append(contentsOf: $0) }
            withUnsafeBytes(of: t.bytesOut.littleEndian) { payload.append(contentsOf: $0) }
        case .assign(let a):
            let weights = littleEndianFrame(a.weights)
            let windows = a.windows.withUnsafeBufferPointer { windowsFrame($0) }
            let checksum = weights.withUnsafeBytes { w in windows.withUnsafeBytes { assignChecksum(weights: w, windows: $0) } }
            let h = assignHeader(runID: e.runID, workerID: e.workerID, step: a.step, leaves: a.leaves,
                                 leafCount: a.leafCount, windows: a.windows.count, checksum: checksum)
            return [h.encode(), weights, windows]
        case .table, .order, .node, .norm, .apply, .slice, .fetch, .applied, .digest:
            payload = encodeShard(e.message, into: &header) ?? []
        case .gradient(let g):
            payload = []
            let h = g.sums.withUnsafeBufferPointer { sums in
                encodeGradient(
                    runID: e.runID, workerID: e.workerID, step: g.step, block: g.block,
                    leafCount: g.leafCount, samples: g.samples, computeNanos: g.computeNanos,
                    startNanos: g.startNanos, sendNanos: g.sendNanos, sums: sums, into: &payload)
            }
            return [h, payload]
        }
        header.checksum = xxh64(payload)
        return [header.encode(), payload]
    }

    /// The checksum of an ASSIGN: XXH64 of the window starts, seeded with XXH64 of the weights,
    /// so the two can travel as separate frames (the weights straight from the sender's buffer)
    /// and still be checked as one payload.
    public static func assignChecksum(weights: UnsafeRawBufferPointer, windows: UnsafeRawBufferPointer) -> UInt64 {
        xxh64(windows, seed: xxh64(weights))
    }

    /// Floats as a little-endian frame (a copy; on little-endian hosts the array's own bytes
    /// are that frame already).
    public static func littleEndianFrame(_ values: [Float]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 4 * values.count) { buffer, initialized in
            values.withUnsafeBytes { src in
                write32(src.baseAddress, count: values.count, to: UnsafeMutableRawBufferPointer(buffer), offset: 0)
            }
            initialized = 4 * values.count
        }
    }

    /// The window-starts frame of an ASSIGN (little-endian UInt32s).
    public static func windowsFrame(_ windows: UnsafeBufferPointer<UInt32>) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 4 * windows.count) { buffer, initialized in
            write32(windows.baseAddress.map(UnsafeRawPointer.init), count: windows.count,
                    to: UnsafeMutableRawBufferPointer(buffer), offset: 0)
            initialized = 4 * windows.count
        }
    }

    /// The header of an ASSIGN with `windows` window starts whose parts have the checksum
    /// `checksum` (``assignChecksum(weights:windows:)``).
    public static func assignHeader(
        runID: UInt64, workerID: UInt32, step: UInt64, leaves: Range<Int>, leafCount: Int, windows n: Int,
        checksum: UInt64
    ) -> Header {
        Header(
            type: .assign, runID: runID, step: step, workerID: workerID,
            rangeLower: field32(leaves.lowerBound, "assign leaves.lowerBound"),
            rangeUpper: field32(leaves.upperBound, "assign leaves.upperBound"),
            leafCount: field32(leafCount, "assign leafCount"), count: UInt64(n), checksum: checksum)
    }

    /// Encodes a gradient straight from the caller's buffer: writes the P + 1 `sums` (gradient
    /// sum, then loss sum) little-endian into `payload`, then the span offsets `startNanos` and
    /// `sendNanos` (see ``Wire``), reusing its storage when its capacity suffices, and returns
    /// the 64-byte header.
    public static func encodeGradient(
        runID: UInt64, workerID: UInt32, step: UInt64, block: Range<Int>, leafCount: Int,
        samples: Int, computeNanos: UInt64, startNanos: UInt64 = 0, sendNanos: UInt64 = 0,
        sums: UnsafeBufferPointer<Float>, into payload: inout [UInt8]
    ) -> [UInt8] {
        resize(&payload, to: 4 * sums.count + gradientTrailerBytes)
        payload.withUnsafeMutableBytes { target in
            write32(
                sums.baseAddress.map(UnsafeRawPointer.init), count: sums.count, to: target,
                offset: 0)
            target.storeBytes(of: startNanos.littleEndian, toByteOffset: 4 * sums.count, as: UInt64.self)
            target.storeBytes(of: sendNanos.littleEndian, toByteOffset: 4 * sums.count + 8, as: UInt64.self)
        }
        return gradientHeader(
            runID: runID, workerID: workerID, step: step, block: block, leafCount: leafCount,
            samples: samples, computeNanos: computeNanos, payload: payload)
    }

    /// Like ``encodeGradient(runID:workerID:step:block:leafCount:samples:computeNanos:sums:into:)``
    /// with the P gradient sums and the loss sum given separately.
    public static func encodeGradient(
        runID: UInt64, workerID: UInt32, step: UInt64, block: Range<Int>, leafCount: Int,
        samples: Int, computeNanos: UInt64, startNanos: UInt64 = 0, sendNanos: UInt64 = 0,
        gradient: UnsafeBufferPointer<Float>, lossSum: Float, into payload: inout [UInt8]
    ) -> [UInt8] {
        let p = gradient.count
        resize(&payload, to: 4 * (p + 1) + gradientTrailerBytes)
        payload.withUnsafeMutableBytes { target in
            write32(
                gradient.baseAddress.map(UnsafeRawPointer.init), count: p, to: target, offset: 0)
            target.storeBytes(
                of: lossSum.bitPattern.littleEndian, toByteOffset: 4 * p, as: UInt32.self)
            target.storeBytes(of: startNanos.littleEndian, toByteOffset: 4 * (p + 1), as: UInt64.self)
            target.storeBytes(of: sendNanos.littleEndian, toByteOffset: 4 * (p + 1) + 8, as: UInt64.self)
        }
        return gradientHeader(
            runID: runID, workerID: workerID, step: step, block: block, leafCount: leafCount,
            samples: samples, computeNanos: computeNanos, payload: payload)
    }

    private static func gradientHeader(
        runID: UInt64, workerID: UInt32, step: UInt64, block: Range<Int>, leafCount: Int,
        samples: Int, computeNanos: UInt64, payload: [UInt8]
    ) -> [UInt8] {
        precondition(samples >= 0, "Wire.encodeGradient: samples \(samples) is negative")
        let header = Header(
            type: .gradient, runID: runID, step: step, workerID: workerID,
            rangeLower: field32(block.lowerBound, "gradient block.lowerBound"),
            rangeUpper: field32(block.upperBound, "gradient block.upperBound"),
            leafCount: field32(leafCount, "gradient leafCount"), count: UInt64(samples),
            aux: computeNanos, checksum: xxh64(payload))
        return header.encode()
    }

    /// Sets `payload.count` to `count`, keeping its storage when it is large enough.
    private static func resize(_ payload: inout [UInt8], to count: Int) {
        if payload.count > count {
            payload.removeLast(payload.count - count)
        } else if payload.count < count {
            payload.append(contentsOf: repeatElement(0, count: count - payload.count))
        }
    }

    static func field32(_ value: Int, _ what: String) -> UInt32 {
        guard let v = UInt32(exactly: value) else {
            preconditionFailure("Wire.encode: \(what) = \(value) does not fit a UInt32 header field")
        }
        return v
    }

    // MARK: Decoding

    /// Validates and decodes a message received as frames: its header, then its payload, or for
    /// an ASSIGN its weights and its window starts (see ``decode(header:frames:limits:)``). Any
    /// other count of frames is ``WireError/wrongFrameCount(_:)``.
    public static func decode(frames: [[UInt8]], limits: Limits) throws(WireError) -> Envelope {
        guard frames.count == 2 || frames.count == 3 else { throw .wrongFrameCount(frames.count) }
        let result = frames[0].withUnsafeBytes { header in
            frames[1].withUnsafeBytes { first in
                frames[frames.count - 1].withUnsafeBytes { last in
                    Result { () throws(WireError) -> Envelope in
                        try decode(header: header, frames: frames.count == 2 ? [first] : [first, last], limits: limits)
                    }
                }
            }
        }
        return try result.get()
    }

    /// A message that passed every check of ``decode(header:frames:limits:)``, with its bulk
    /// data left in the payload for ``readFloats(_:offset:count:into:)`` and
    /// ``readUInt32s(_:offset:count:into:)``.
    public struct Validated: Sendable, Equatable {
        /// The header.
        public var header: Header
        /// For assign and gradient, P: assign has P weights at byte 0 and `header.count`
        /// window starts at byte `4 * P`; gradient has P + 1 sums at byte 0 (then the span
        /// offsets, see ``Wire/spanOffsets(_:parameterCount:)``). 0 for other types.
        public var parameterCount: Int
    }

    /// The hot path's zero-copy view of a one-payload message (a GRADIENT as received): every
    /// check of ``decode(header:frames:limits:)`` without copying the sums (JSON bodies are still
    /// parsed), so a receiver can reduce straight from the frame or copy floats into its own
    /// buffers with ``readFloats(_:offset:count:into:)``. An ASSIGN header here is
    /// ``WireError/wrongFrameCount(_:)`` (it is three frames: ``validate(header:frames:limits:)``).
    public static func validate(
        header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, limits: Limits
    ) throws(WireError) -> Validated {
        let h = try checkFrames(header: header, payload: payload, limits: limits)
        let (p, _) = try body(h, payload, limits, materialize: false)
        return Validated(header: h, parameterCount: p)
    }

    /// The span offsets (`startNanos`, `sendNanos`) of a validated GRADIENT payload with P
    /// parameters; zeros if the payload is too short to hold them.
    public static func spanOffsets(_ payload: UnsafeRawBufferPointer, parameterCount p: Int) -> (start: UInt64, send: UInt64) {
        let at = 4 * (p + 1)
        guard p >= 0, payload.count >= at + gradientTrailerBytes else { return (0, 0) }
        return (UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: at, as: UInt64.self)),
                UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self)))
    }

    /// Validates and decodes a message in place from its header frame and the frames after it:
    /// its payload frame, or for an ASSIGN its two frames as sent (the weights, then the window
    /// starts). Any other count of frames is ``WireError/wrongFrameCount(_:)`` (the count includes
    /// the header frame).
    ///
    /// Checks, in this order: the header (`Header.decode(_:)`), the payload size against
    /// `limits.maxPayloadBytes`, the checksum, that header fields unused by the type are 0, and
    /// then the type's rules (lengths, ranges, finiteness, JSON, UTF-8). Allocates no more than a
    /// copy of the payload.
    public static func decode(
        header: UnsafeRawBufferPointer, frames: [UnsafeRawBufferPointer], limits: Limits
    ) throws(WireError) -> Envelope {
        let h: Header
        let message: Message?
        if frames.count == 1 {
            h = try checkFrames(header: header, payload: frames[0], limits: limits)
            (_, message) = try body(h, frames[0], limits, materialize: true)
        } else {
            h = try checkSplitAssign(header: header, frames: frames, limits: limits)
            (_, message) = try assignParts(h, weights: frames[0], windows: frames[1], limits, materialize: true)
        }
        guard let message else { throw .badLength("internal: no message decoded") }
        return Envelope(runID: h.runID, workerID: h.workerID, message: message)
    }

    /// ``decode(header:frames:limits:)``'s checks without copying the bulk arrays of assign and
    /// gradient. For an ASSIGN the weights are at byte 0 of the first frame and the window starts
    /// at byte 0 of the second; for a GRADIENT the P + 1 sums at byte 0 of its payload frame.
    public static func validate(
        header: UnsafeRawBufferPointer, frames: [UnsafeRawBufferPointer], limits: Limits
    ) throws(WireError) -> Validated {
        if frames.count == 1 { return try validate(header: header, payload: frames[0], limits: limits) }
        let h = try checkSplitAssign(header: header, frames: frames, limits: limits)
        let (p, _) = try assignParts(h, weights: frames[0], windows: frames[1], limits, materialize: false)
        return Validated(header: h, parameterCount: p)
    }

    private static func checkSplitAssign(
        header: UnsafeRawBufferPointer, frames: [UnsafeRawBufferPointer], limits: Limits
    ) throws(WireError) -> Header {
        let h = try Header.decode(header)
        guard frames.count == 2, h.type == .assign else { throw .wrongFrameCount(frames.count + 1) }
        let (total, overflow) = frames[0].count.addingReportingOverflow(frames[1].count)
        guard !overflow, total <= limits.maxPayloadBytes else {
            throw .oversized(overflow ? Int.max : total, limit: limits.maxPayloadBytes)
        }
        guard h.aux == 0 else {
            throw .unexpectedField("assign has aux = \(h.aux); assign does not use it, it must be 0")
        }
        return h
    }

    private static func checkFrames(
        header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, limits: Limits
    ) throws(WireError) -> Header {
        let h = try Header.decode(header)
        guard payload.count <= limits.maxPayloadBytes else {
            throw .oversized(payload.count, limit: limits.maxPayloadBytes)
        }
        // an ASSIGN is three frames, never one payload
        guard h.type != .assign else { throw .wrongFrameCount(2) }
        guard xxh64(payload) == h.checksum else { throw .checksumMismatch }
        return h
    }

    /// Checks the type's rules and, when `materialize`, builds the message. Returns P for assign
    /// and gradient, 0 otherwise.
    private static func body(
        _ h: Header, _ payload: UnsafeRawBufferPointer, _ limits: Limits, materialize: Bool
    ) throws(WireError) -> (Int, Message?) {
        let type = h.type
        if type.isShard { return (0, try shardBody(h, payload, limits, materialize: materialize)) }
        func requireZero(_ value: UInt64, _ name: String) throws(WireError) {
            guard value == 0 else {
                throw .unexpectedField("\(type) has \(name) = \(value); \(type) does not use it, it must be 0")
            }
        }
        let usesStep = type == .assign || type == .gradient
        if !usesStep {
            try requireZero(h.step, "step")
            try requireZero(UInt64(h.rangeLower), "rangeLower")
            try requireZero(UInt64(h.rangeUpper), "rangeUpper")
            try requireZero(UInt64(h.leafCount), "leafCount")
            try requireZero(h.count, "count")
        }
        if type != .gradient { try requireZero(h.aux, "aux") }

        switch type {
        case .hello:
            guard h.workerID == 0 else {
                throw .unexpectedField(
                    "hello has worker id \(h.workerID); a worker has no id before its welcome, it must be 0")
            }
            let hello = try JSON.decode(Hello.self, payload, what: "hello")
            try check(hello)
            return (0, .hello(hello))

        case .ready:
            let ready = try JSON.decode(Ready.self, payload, what: "ready")
            try checkThreads(ready.threads, "ready")
            return (0, .ready(ready))

        case .welcome:
            return (0, try welcome(h, payload, materialize: materialize))

        case .reject, .shutdown, .bye:
            guard payload.count <= Limits.maxReasonBytes else {
                throw .oversized(payload.count, limit: Limits.maxReasonBytes)
            }
            guard let text = validUTF8(payload) else { throw .badUTF8 }
            switch type {
            case .reject: return (0, .reject(text))
            case .shutdown: return (0, .shutdown(text))
            default: return (0, .bye(text))
            }

        case .heartbeat:
            guard payload.isEmpty else {
                throw .badLength("heartbeat payload is \(payload.count) bytes, must be empty")
            }
            return (0, .heartbeat)

        case .traffic:
            guard payload.count == 16 else {
                throw .badLength("traffic payload is \(payload.count) bytes, must be 16 (bytes in, bytes out)")
            }
            let bytesIn = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let bytesOut = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            return (0, .traffic(Traffic(bytesIn: bytesIn, bytesOut: bytesOut)))

        case .assign:
            throw .wrongFrameCount(2)  // three frames: see `assignParts`

        case .gradient:
            return try gradient(h, payload, limits, materialize: materialize)

        case .table, .order, .node, .norm, .apply, .slice, .fetch, .applied, .digest:
            return (0, try shardBody(h, payload, limits, materialize: materialize))
        }
    }

    /// Checks `lo < hi <= leafCount` and `leafCount >= 1`; returns them as `Int`s.
    static func leafRange(_ h: Header, _ name: String) throws(WireError) -> (Range<Int>, Int) {
        guard h.leafCount >= 1 else {
            throw .badRange("\(h.type) leafCount is 0, a step has at least 1 leaf")
        }
        guard h.rangeLower < h.rangeUpper, h.rangeUpper <= h.leafCount else {
            throw .badRange(
                "\(h.type) \(name) [\(h.rangeLower), \(h.rangeUpper)) is not a non-empty range "
                    + "within the step's \(h.leafCount) leaves")
        }
        guard let lo = Int(exactly: h.rangeLower), let hi = Int(exactly: h.rangeUpper),
            let m = Int(exactly: h.leafCount)
        else { throw .badRange("\(h.type) \(name) does not fit this host's Int") }
        return (lo..<hi, m)
    }

    private static func checkParameterCount(_ p: Int, _ h: Header, _ limits: Limits)
        throws(WireError)
    {
        if let expected = limits.parameterCount, p != expected {
            throw .badLength(
                "\(h.type) carries \(p) parameters, this receiver's model has \(expected): "
                    + "coordinator and worker disagree on the model configuration")
        }
    }

    /// An ASSIGN as its two parts: P weights, `h.count` window starts.
    private static func assignParts(
        _ h: Header, weights: UnsafeRawBufferPointer, windows: UnsafeRawBufferPointer, _ limits: Limits,
        materialize: Bool
    ) throws(WireError) -> (Int, Message?) {
        let (leaves, m) = try leafRange(h, "leaves")
        guard h.count >= 1 else { throw .badRange("assign count is 0, a batch has at least 1 window") }
        guard UInt64(h.leafCount) <= h.count else {
            throw .badRange(
                "assign has \(h.leafCount) leaves for \(h.count) windows; every leaf holds at least 1 window")
        }
        guard weights.count % 4 == 0, windows.count % 4 == 0 else {
            throw .badLength("assign frames of \(weights.count) and \(windows.count) bytes are not whole 32-bit values")
        }
        guard UInt64(windows.count / 4) == h.count else {
            throw .badLength("assign windows frame holds \(windows.count / 4) window starts, the header says \(h.count)")
        }
        let p = weights.count / 4
        guard p >= 1 else { throw .badLength("assign carries no weights, at least 1 is needed") }
        guard assignChecksum(weights: weights, windows: windows) == h.checksum else { throw .checksumMismatch }
        let n = windows.count / 4
        try checkParameterCount(p, h, limits)
        if let i = firstNonFinite(weights, offset: 0, count: p) {
            throw .nonFinite("assign weight[\(i)] is \(float(weights, offset: 0, index: i))")
        }
        guard materialize else { return (p, nil) }
        let a = Assign(
            step: h.step, leaves: leaves, leafCount: m,
            weights: floats(weights, offset: 0, count: p),
            windows: uint32s(windows, offset: 0, count: n))
        return (p, .assign(a))
    }

    private static func gradient(
        _ h: Header, _ payload: UnsafeRawBufferPointer, _ limits: Limits, materialize: Bool
    ) throws(WireError) -> (Int, Message?) {
        let (block, m) = try leafRange(h, "block")
        guard h.count >= 1 else {
            throw .badRange("gradient count is 0, a tree node sums at least 1 window")
        }
        guard let samples = Int(exactly: h.count) else {
            throw .badRange("gradient count \(h.count) does not fit this host's Int")
        }
        let t = gradientTrailerBytes
        guard payload.count >= t, (payload.count - t) % 4 == 0 else {
            throw .badLength(
                "gradient payload is \(payload.count) bytes, not 4 × (P + 1) floats + \(t) bytes of span offsets")
        }
        let values = (payload.count - t) / 4
        guard values >= 2 else {
            throw .badLength(
                "gradient payload holds \(values) floats, needs P + 1 with P >= 1 (the sums, then the loss)")
        }
        let p = values - 1
        try checkParameterCount(p, h, limits)
        if !limits.allowNonFinite, let i = firstNonFinite(payload, offset: 0, count: values) {
            let what = i == p ? "the loss sum" : "gradient sum[\(i)]"
            throw .nonFinite(
                "\(what) from worker \(h.workerID) at step \(h.step) is "
                    + "\(float(payload, offset: 0, index: i)): training diverged "
                    + "(lower the learning rate or clip the gradient norm)")
        }
        guard materialize else { return (p, nil) }
        let g = Gradient(
            step: h.step, block: block, leafCount: m, samples: samples, computeNanos: h.aux,
            startNanos: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 4 * values, as: UInt64.self)),
            sendNanos: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 4 * values + 8, as: UInt64.self)),
            sums: floats(payload, offset: 0, count: values))
        return (p, .gradient(g))
    }

    private static func welcome(
        _ h: Header, _ payload: UnsafeRawBufferPointer, materialize: Bool
    ) throws(WireError) -> Message? {
        guard payload.count >= 8 else {
            throw .badLength("welcome payload is \(payload.count) bytes, needs at least 8 (the JSON length)")
        }
        let j = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard j <= UInt64(Limits.maxJSONBytes) else {
            throw .oversized(Int(clamping: j), limit: Limits.maxJSONBytes)
        }
        let jsonCount = Int(j)
        guard jsonCount <= payload.count - 8 else {
            throw .badLength(
                "welcome JSON length is \(jsonCount) bytes but only \(payload.count - 8) follow it")
        }
        let json = UnsafeRawBufferPointer(rebasing: payload[8..<(8 + jsonCount)])
        let w = try JSON.decode(Welcome.self, json, what: "welcome")
        guard w.runID == h.runID, w.workerID == h.workerID else {
            throw .badJSON(
                "welcome JSON is for run \(w.runID) worker \(w.workerID) but its header for run "
                    + "\(h.runID) worker \(h.workerID)")
        }
        guard w.protocolVersion >= 1 else {
            throw .badJSON("welcome protocol_version \(w.protocolVersion) must be >= 1")
        }
        for (name, value) in [
            ("points", w.points), ("channels", w.channels), ("parameter_count", w.parameterCount),
            ("micro_batch", w.microBatch), ("heartbeat_millis", w.heartbeatMillis),
            ("liveness_millis", w.livenessMillis),
        ] where value < 1 {
            throw .badJSON("welcome \(name) is \(value), must be >= 1")
        }
        let seriesOffset = 8 + jsonCount
        let seriesBytes = payload.count - seriesOffset
        var (expected, overflow) = w.points.multipliedReportingOverflow(by: w.channels)
        if w.sharedData == true { expected = 0 }  // the worker reads the data itself
        guard !overflow, seriesBytes % 4 == 0, seriesBytes / 4 == expected else {
            throw .badLength(
                "welcome series is \(seriesBytes) bytes, expected "
                    + (w.sharedData == true ? "none (shared_data)" : "points × channels = \(w.points) × \(w.channels) Float32 values"))
        }
        if let i = firstNonFinite(payload, offset: seriesOffset, count: expected) {
            throw .nonFinite(
                "welcome series value \(i) (point \(i / w.channels), channel \(i % w.channels)) is "
                    + "\(float(payload, offset: seriesOffset, index: i))")
        }
        guard materialize else { return nil }
        return .welcome(w, series: floats(payload, offset: seriesOffset, count: expected))
    }

    /// The text of `bytes` if they are valid UTF-8, else nil (``Support/validUTF8(_:)``).
    static func validUTF8(_ bytes: UnsafeRawBufferPointer) -> String? { Support.validUTF8(bytes) }

    private static func checkThreads(_ threads: Int, _ what: String) throws(WireError) {
        guard (1...4096).contains(threads) else {
            throw .badJSON("\(what) threads is \(threads), must be in 1...4096")
        }
    }

    private static func check(_ hello: Hello) throws(WireError) {
        try checkThreads(hello.threads, "hello")
        guard hello.protocolVersion >= 1 else {
            throw .badJSON("hello protocol_version \(hello.protocolVersion) must be >= 1")
        }
        guard hello.pid >= 0 else { throw .badJSON("hello pid \(hello.pid) is negative") }
        if let e = hello.expect {
            for (name, value) in [
                ("hidden", e.hidden), ("input", e.input), ("output", e.output),
                ("seq_len", e.seqLen), ("micro_batch", e.microBatch),
            ] {
                if let value, value < 1 {
                    throw .badJSON("hello expect.\(name) is \(value), must be >= 1")
                }
            }
        }
    }
}
