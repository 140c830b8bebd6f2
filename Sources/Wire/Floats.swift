// Bulk moves of 32-bit little-endian values between payloads and typed buffers: memcpy on
// little-endian hosts, a byte-swapping loop elsewhere.

extension Wire {
    /// Copies `count` Float32 values stored little-endian in `payload` from byte `offset` on into
    /// the first `count` elements of `destination`. On little-endian hosts this is one memcpy.
    ///
    /// Checks only bounds (throws ``WireError/badLength(_:)`` when `offset`/`count` do not lie
    /// within `payload` or `destination` is too small); use it on a payload that
    /// ``validate(header:payload:limits:)`` accepted, with the layout of its ``Validated``.
    public static func readFloats(
        _ payload: UnsafeRawBufferPointer, offset: Int, count: Int,
        into destination: UnsafeMutableBufferPointer<Float>
    ) throws(WireError) {
        try checkRead(payload, offset: offset, count: count, destination: destination.count)
        if let base = destination.baseAddress {
            copy32(payload, offset: offset, count: count, to: UnsafeMutableRawPointer(base))
        }
    }

    /// Copies `count` UInt32 values stored little-endian in `payload` from byte `offset` on into
    /// the first `count` elements of `destination`; see ``readFloats(_:offset:count:into:)``.
    public static func readUInt32s(
        _ payload: UnsafeRawBufferPointer, offset: Int, count: Int,
        into destination: UnsafeMutableBufferPointer<UInt32>
    ) throws(WireError) {
        try checkRead(payload, offset: offset, count: count, destination: destination.count)
        if let base = destination.baseAddress {
            copy32(payload, offset: offset, count: count, to: UnsafeMutableRawPointer(base))
        }
    }

    private static func checkRead(
        _ payload: UnsafeRawBufferPointer, offset: Int, count: Int, destination: Int
    ) throws(WireError) {
        guard offset >= 0, count >= 0, offset <= payload.count,
            count <= (payload.count - offset) / 4
        else {
            throw .badLength(
                "cannot read \(count) 32-bit values at byte \(offset) of a \(payload.count)-byte payload")
        }
        guard destination >= count else {
            throw .badLength("destination holds \(destination) values, \(count) needed")
        }
    }

    /// Copies `count` 32-bit little-endian values from `source` at byte `offset` to `target`.
    /// The caller has checked the bounds.
    @inline(__always)
    static func copy32(
        _ source: UnsafeRawBufferPointer, offset: Int, count: Int, to target: UnsafeMutableRawPointer
    ) {
        guard count > 0, let base = source.baseAddress else { return }
        #if _endian(little)
            target.copyMemory(from: base + offset, byteCount: count &* 4)
        #else
            for i in 0..<count {
                let v = UInt32(
                    littleEndian: base.loadUnaligned(fromByteOffset: offset &+ i &* 4, as: UInt32.self))
                target.storeBytes(of: v, toByteOffset: i &* 4, as: UInt32.self)
            }
        #endif
    }

    /// Writes `count` 32-bit values from `source` little-endian into `target` at byte `offset`.
    /// The caller has checked the bounds.
    @inline(__always)
    static func write32(
        _ source: UnsafeRawPointer?, count: Int, to target: UnsafeMutableRawBufferPointer,
        offset: Int
    ) {
        guard count > 0, let source, let base = target.baseAddress else { return }
        #if _endian(little)
            (base + offset).copyMemory(from: source, byteCount: count &* 4)
        #else
            for i in 0..<count {
                let v = source.load(fromByteOffset: i &* 4, as: UInt32.self)
                (base + offset).storeBytes(of: v.littleEndian, toByteOffset: i &* 4, as: UInt32.self)
            }
        #endif
    }

    /// `count` Float32 values read from `source` at byte `offset` (bounds checked by the caller).
    static func floats(_ source: UnsafeRawBufferPointer, offset: Int, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress {
                copy32(source, offset: offset, count: count, to: UnsafeMutableRawPointer(base))
            }
            initialized = count
        }
    }

    /// `count` UInt32 values read from `source` at byte `offset` (bounds checked by the caller).
    static func uint32s(_ source: UnsafeRawBufferPointer, offset: Int, count: Int) -> [UInt32] {
        [UInt32](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress {
                copy32(source, offset: offset, count: count, to: UnsafeMutableRawPointer(base))
            }
            initialized = count
        }
    }

    /// The index of the first NaN or infinity among `count` little-endian Float32 values at byte
    /// `offset` of `source`, or nil if all are finite (bounds checked by the caller).
    static func firstNonFinite(_ source: UnsafeRawBufferPointer, offset: Int, count: Int) -> Int? {
        guard count > 0, let base = source.baseAddress else { return nil }
        let start = base + offset
        // Branch-free pass: with the sign cleared, a value is non-finite iff its bits are
        // >= 0x7F800000, i.e. iff adding 0x00800000 carries into bit 31.
        var acc: UInt32 = 0
        for i in 0..<count {
            let bits = UInt32(
                littleEndian: start.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self))
            acc |= (bits & 0x7FFF_FFFF) &+ 0x0080_0000
        }
        if acc & 0x8000_0000 == 0 { return nil }
        for i in 0..<count {
            let bits = UInt32(
                littleEndian: start.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self))
            if bits & 0x7F80_0000 == 0x7F80_0000 { return i }
        }
        return nil
    }

    /// The Float32 at index `index` of a little-endian array at byte `offset` of `source`.
    static func float(_ source: UnsafeRawBufferPointer, offset: Int, index: Int) -> Float {
        Float(
            bitPattern: UInt32(
                littleEndian: source.loadUnaligned(
                    fromByteOffset: offset &+ index &* 4, as: UInt32.self)))
    }
}
