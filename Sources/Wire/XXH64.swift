// XXH64, written from the public xxHash specification
// (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md).

private let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
private let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
private let prime3: UInt64 = 0x1656_67B1_9E37_79F9
private let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
private let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

@inline(__always)
private func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 {
    (x &<< r) | (x &>> (64 &- r))
}

@inline(__always)
private func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
    rotl(acc &+ input &* prime2, 31) &* prime1
}

@inline(__always)
private func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 {
    (acc ^ round(0, value)) &* prime1 &+ prime4
}

@inline(__always)
private func read64(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}

@inline(__always)
private func read32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
}

extension Wire {
    /// XXH64 of `bytes` with `seed`, as specified by xxHash (the value `xxhash.xxh64(data, seed)`
    /// gives in Python). Reads 32-byte stripes as four little-endian 64-bit words; the result is
    /// the same on every host.
    public static func xxh64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let length = bytes.count
        var h: UInt64
        var offset = 0
        if let p = bytes.baseAddress, length > 0 {
            if length >= 32 {
                var v1 = seed &+ prime1 &+ prime2
                var v2 = seed &+ prime2
                var v3 = seed
                var v4 = seed &- prime1
                let stripes = length &- 32
                while offset <= stripes {
                    v1 = round(v1, read64(p, offset))
                    v2 = round(v2, read64(p, offset &+ 8))
                    v3 = round(v3, read64(p, offset &+ 16))
                    v4 = round(v4, read64(p, offset &+ 24))
                    offset &+= 32
                }
                h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
                h = merge(h, v1)
                h = merge(h, v2)
                h = merge(h, v3)
                h = merge(h, v4)
            } else {
                h = seed &+ prime5
            }
            h &+= UInt64(truncatingIfNeeded: length)
            while length &- offset >= 8 {
                h ^= round(0, read64(p, offset))
                h = rotl(h, 27) &* prime1 &+ prime4
                offset &+= 8
            }
            if length &- offset >= 4 {
                h ^= read32(p, offset) &* prime1
                h = rotl(h, 23) &* prime2 &+ prime3
                offset &+= 4
            }
            while offset < length {
                h ^= UInt64(p.load(fromByteOffset: offset, as: UInt8.self)) &* prime5
                h = rotl(h, 11) &* prime1
                offset &+= 1
            }
        } else {
            h = seed &+ prime5
        }
        h ^= h &>> 33
        h &*= prime2
        h ^= h &>> 29
        h &*= prime3
        h ^= h &>> 32
        return h
    }

    /// XXH64 of the bytes of `bytes` with `seed`.
    public static func xxh64(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { xxh64($0, seed: seed) }
    }
}
