/// A deterministic random number generator: xoshiro256** (Blackman & Vigna), seeded from a
/// `UInt64` through SplitMix64.
///
/// The same seed gives the same stream on every platform and Swift version. The whole state is
/// exposed (``state``, ``init(state:)``, `Codable`) so a run can be checkpointed and resumed.
public struct SeededRNG: RandomNumberGenerator, Sendable, Codable, Equatable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// Seeds the four state words with four successive SplitMix64 outputs of `seed`
    /// (as the xoshiro authors recommend).
    public init(seed: UInt64) {
        var x = seed
        s0 = splitMix64(&x)
        s1 = splitMix64(&x)
        s2 = splitMix64(&x)
        s3 = splitMix64(&x)
    }

    /// Restores a generator from a saved ``state``. Precondition: not all four words are zero
    /// (that state is a fixed point; no seeded generator ever reaches it).
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        precondition(
            state.0 | state.1 | state.2 | state.3 != 0, "the all-zero xoshiro256** state is invalid")
        (s0, s1, s2, s3) = state
    }

    /// The four state words.
    public var state: (UInt64, UInt64, UInt64, UInt64) { (s0, s1, s2, s3) }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    // Codable: the state as an array of four unsigned integers.

    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        let a = try c.decode(UInt64.self)
        let b = try c.decode(UInt64.self)
        let d = try c.decode(UInt64.self)
        let e = try c.decode(UInt64.self)
        guard c.isAtEnd else {
            throw DecodingError.dataCorruptedError(
                in: c, debugDescription: "a SeededRNG state has exactly 4 words")
        }
        guard a | b | d | e != 0 else {
            throw DecodingError.dataCorruptedError(
                in: c, debugDescription: "the all-zero xoshiro256** state is invalid")
        }
        (s0, s1, s2, s3) = (a, b, d, e)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(s0)
        try c.encode(s1)
        try c.encode(s2)
        try c.encode(s3)
    }

    /// A uniform integer in `0 ..< bound` by Lemire's multiply-and-reject method (unbiased).
    /// Stable by construction, unlike `Int.random(in:using:)`. Precondition: `bound >= 1`.
    mutating func draw(below bound: UInt64) -> UInt64 {
        precondition(bound >= 1)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold {
                m = next().multipliedFullWidth(by: bound)
            }
        }
        return m.high
    }
}

@inline(__always)
private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
    (x << k) | (x >> (64 &- k))
}

/// SplitMix64: advances `x` and returns the next output.
func splitMix64(_ x: inout UInt64) -> UInt64 {
    x &+= 0x9E37_79B9_7F4A_7C15
    return mix64(x)
}

/// The SplitMix64 output function, a bijection on `UInt64`.
func mix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// The order in which epoch `epoch` visits the training windows: a permutation of
/// `0 ..< count` (positions into the training window list).
///
/// Fisher–Yates (from the last position down) driven by a ``SeededRNG`` seeded with
/// `mix64(seed ^ mix64(UInt64(bitPattern: epoch) &+ 0x9E3779B97F4A7C15))`, so any epoch's
/// order can be recomputed from `(seed, epoch)` alone, different epochs (and different seeds)
/// get unrelated orders, and the result never depends on the Swift version.
///
/// Precondition: `count >= 0`.
public func epochPermutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
    precondition(count >= 0, "count must be non-negative (got \(count))")
    let key = mix64(seed ^ mix64(UInt64(bitPattern: Int64(epoch)) &+ 0x9E37_79B9_7F4A_7C15))
    var rng = SeededRNG(seed: key)
    var order = Array(0..<count)
    var i = count - 1
    while i > 0 {
        let j = Int(rng.draw(below: UInt64(i + 1)))
        order.swapAt(i, j)
        i -= 1
    }
    return order
}
