import RNN

/// SplitMix64's output function: a fast, well-mixing bijection of 64-bit words.
@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// SplitMix64's increment (the golden ratio).
let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

/// A uniform value in `[0, 1)` for the words `a, b, c, d` under `seed`: the dice of every seeded
/// decision (faults, shuffles).
@inline(__always)
func uniform(_ seed: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64 = 0, _ d: UInt64 = 0) -> Double {
    var h = mix64(seed &+ golden)
    h = mix64(h ^ (a &+ golden))
    h = mix64(h ^ (b &+ 2 &* golden))
    h = mix64(h ^ (c &+ 3 &* golden))
    h = mix64(h ^ (d &+ 4 &* golden))
    return Double(h >> 11) * 0x1p-53
}

/// The synthetic gradients of a stress run.
///
/// Leaf `l` of round `r` is a vector of `P + 1` Float32 values. Value `c < P` is a uniform
/// 24-bit fixed-point number in `[-1, 1)` from a counter-based SplitMix64 stream keyed by
/// (`seed`, `r`, `l`) (one 64-bit hash per pair of columns), times `2^e` where the exponent `e ∈ [-8, 7]` depends on the leaf: leaves of
/// very different magnitudes make floating-point addition visibly non-associative, so a sum in
/// any order but the canonical one gives other bits. Value `P` (the "loss") is the same kind of
/// number plus the weight `w[(l · 7919) mod P]` of the round's ASSIGN, so the weights sent out
/// take part in the result.
///
/// Random access by column makes it cheap to compute any node sum in column chunks
/// (``nodeSum(round:block:columns:weights:matrix:into:tick:)``), with the same bits as a sum of
/// whole rows: the tree sums each column independently.
public struct LeafGradients: Sendable {
    /// The run's seed.
    public let seed: UInt64
    /// P.
    public let parameterCount: Int
    /// M, the leaves of a round.
    public let leafCount: Int

    /// Values per leaf, `P + 1`.
    public var width: Int { parameterCount + 1 }

    /// The generator of a run.
    public init(seed: UInt64, parameterCount: Int, leafCount: Int) {
        precondition(parameterCount >= 1 && leafCount >= 1)
        self.seed = seed
        self.parameterCount = parameterCount
        self.leafCount = leafCount
    }

    /// The stream key of a leaf.
    @inline(__always)
    func key(round: UInt64, leaf: Int) -> UInt64 {
        mix64(mix64(seed ^ 0x5354_5245_5353_2121) ^ mix64(round &* golden &+ UInt64(leaf) &* 0xD1B5_4A32_D192_ED03))
    }

    /// `2^e · 2^-23` for the leaf's exponent `e ∈ [-8, 7]`.
    @inline(__always)
    func unit(key: UInt64) -> Float {
        let e = Int((key >> 60) & 15) - 8
        return Float(sign: .plus, exponent: e - 23, significand: 1)
    }

    /// Value `column` (`< P` for a gradient value, `== P` for the loss's generated part) of a leaf:
    /// one SplitMix64 hash per pair of columns, the high 24 bits for the even column, bits 8–31
    /// for the odd one.
    @inline(__always)
    static func value(key: UInt64, unit: Float, column: Int) -> Float {
        let h = mix64(key &+ UInt64(truncatingIfNeeded: column >> 1) &* golden)
        return signed24(column & 1 == 0 ? h >> 40 : (h >> 8) & 0xFF_FFFF, unit)
    }

    /// A 24-bit value as a number in `[-2^23, 2^23)` times `unit`.
    @inline(__always)
    static func signed24(_ bits: UInt64, _ unit: Float) -> Float {
        Float(Int32(truncatingIfNeeded: bits) - (1 << 23)) * unit
    }

    /// The index of the weight that leaf `leaf`'s loss value includes.
    @inline(__always)
    public func weightIndex(leaf: Int) -> Int { (leaf &* 7919) % parameterCount }

    /// Value `column` of leaf `leaf` of `round` (`weights` is needed only for `column == P`).
    public func value(round: UInt64, leaf: Int, column: Int, weights: UnsafeBufferPointer<Float>?) -> Float {
        let k = key(round: round, leaf: leaf)
        let v = Self.value(key: k, unit: unit(key: k), column: column)
        guard column == parameterCount else { return v }
        return v + (weights?[weightIndex(leaf: leaf)] ?? 0)
    }

    /// Writes columns `columns` of leaf `leaf` to `row[0..<columns.count]`.
    @inline(__always)
    func fill(_ row: UnsafeMutablePointer<Float>, round: UInt64, leaf: Int, columns: Range<Int>,
              weights: UnsafeBufferPointer<Float>?) {
        let k = key(round: round, leaf: leaf)
        let u = unit(key: k)
        let lo = columns.lowerBound
        let hi = min(columns.upperBound, parameterCount)
        var c = lo
        if c < hi && c & 1 == 1 {
            row[0] = Self.value(key: k, unit: u, column: c)
            c += 1
        }
        while c + 1 < hi {
            let h = mix64(k &+ UInt64(truncatingIfNeeded: c >> 1) &* golden)
            row[c - lo] = Self.signed24(h >> 40, u)
            row[c - lo + 1] = Self.signed24((h >> 8) & 0xFF_FFFF, u)
            c += 2
        }
        if c < hi { row[c - lo] = Self.value(key: k, unit: u, column: c) }
        if columns.upperBound > parameterCount {
            let w = weights?[weightIndex(leaf: leaf)] ?? 0
            row[parameterCount - lo] = Self.value(key: k, unit: u, column: parameterCount) + w
        }
    }

    /// Computes the sum of the tree node `block` over columns `columns` (a subrange of
    /// `0..<P + 1`) into `out[0..<columns.count]`: leaf rows are generated into `matrix` one column
    /// chunk at a time and summed by `CanonicalTree.reduceInPlace`, i.e. in the canonical order.
    ///
    /// - Parameters:
    ///   - weights: the round's weights; needed when `columns` contains `P` (the loss).
    ///   - tick: called after every chunk; return false to abandon the sum (returns false too).
    @discardableResult
    public func nodeSum(
        round: UInt64, block: Range<Int>, columns: Range<Int>, weights: UnsafeBufferPointer<Float>?,
        matrix: LeafMatrix, into out: UnsafeMutablePointer<Float>, tick: () -> Bool = { true }
    ) -> Bool {
        precondition(matrix.rows >= leafCount, "the leaf matrix has \(matrix.rows) rows, the tree \(leafCount) leaves")
        precondition(columns.lowerBound >= 0 && columns.upperBound <= width)
        let base = matrix.base
        var c0 = columns.lowerBound
        while c0 < columns.upperBound {
            let c1 = min(c0 + matrix.chunk, columns.upperBound)
            let w = c1 - c0
            for leaf in block {
                fill(base + leaf * w, round: round, leaf: leaf, columns: c0..<c1, weights: weights)
            }
            CanonicalTree.reduceInPlace(base, width: w, block: block, leafCount: leafCount)
            (out + (c0 - columns.lowerBound)).update(from: base + block.lowerBound * w, count: w)
            c0 = c1
            if !tick() { return false }
        }
        return true
    }
}

/// A preallocated leaf matrix: `rows` leaves × `chunk` columns of Float32, reused for every node
/// sum (so a worker or checker allocates nothing per round).
public final class LeafMatrix: @unchecked Sendable {
    // @unchecked: the buffer is used by one thread at a time (its owner).
    /// Leaves (the tree's M).
    public let rows: Int
    /// Columns per chunk.
    public let chunk: Int
    let base: UnsafeMutablePointer<Float>

    /// A matrix for a tree of `rows` leaves; `chunk` defaults to about 1 MiB worth of columns
    /// (at least 64, at most 16,384).
    public init(rows: Int, chunk: Int? = nil) {
        precondition(rows >= 1)
        self.rows = rows
        self.chunk = max(1, chunk ?? min(16_384, max(64, (1 << 18) / rows)))
        base = .allocate(capacity: rows * self.chunk)
        base.initialize(repeating: 0, count: rows * self.chunk)
    }

    deinit { base.deallocate() }
}
