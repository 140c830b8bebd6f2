import Series

/// A testing aid (`ztrain worker --fault-wrong-rate X`): a worker that corrupts one value of a
/// seeded fraction of its answers after computing them. The answer still carries a valid checksum
/// (Wire computes it over the corrupted bytes), so only an audit (`--audit-rate`) can catch it.
///
/// ```swift
/// FaultInjection.corrupts(rate: 1, seed: 0, step: 3, leaves: 0..<4)   // true
/// var sums: [Float] = [1, 2]
/// FaultInjection.corrupt(&sums)                                      // sums[0] is 1.0000001
/// ```
public enum FaultInjection {
    /// Is the answer to the order for `leaves` of `step` corrupted? (A pure function of its arguments.)
    public static func corrupts(rate: Double, seed: UInt64, step: UInt64, leaves: Range<Int>) -> Bool {
        guard rate > 0 else { return false }
        guard rate < 1 else { return true }
        var rng = SeededRNG(seed: seed ^ 0xFA17_0000_0000_0000 ^ (step &* 0x9E37_79B9_7F4A_7C15)
                                ^ (UInt64(leaves.lowerBound) << 32) ^ UInt64(leaves.upperBound))
        return Double(rng.next() >> 11) / Double(1 << 53) < rate
    }

    /// Flips the lowest bit of the first value: still finite, one unit in the last place off.
    public static func corrupt(_ sums: inout [Float]) {
        guard !sums.isEmpty else { return }
        sums[0] = Float(bitPattern: sums[0].bitPattern ^ 1)
    }
}
