import Testing
@testable import RNN

@Suite("The blockwise global norm")
struct GradientNormTests {
    func randomVector(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
        var rng = TestRNG(seed)
        return (0..<n).map { _ in Float((2 * rng.unit() - 1) * scale) }
    }

    /// Within 1e-12 (relative) of a plain Float64 sum of squares: the blocks and the tree change only the
    /// order of the additions.
    @Test func agreesWithAFloat64Reference() {
        let b = ShardPlan.blockSize
        for (i, n) in [1, 7, b - 1, b, b + 1, 5 * b + 123, 40 * b].enumerated() {
            let g = randomVector(n, seed: UInt64(i + 1), scale: 3)
            var reference = 0.0
            for x in g { reference += Double(x) * Double(x) }
            let norm = g.withUnsafeBufferPointer { globalNorm($0) }
            #expect(abs(norm - reference.squareRoot()) <= 1e-12 * reference.squareRoot(), "n = \(n)")
        }
    }

    /// Any owner count: each owner's blocks' partial sums, put in block order and combined, give the
    /// bits of `globalNorm` over the whole vector.
    @Test func ownersPartialSumsCombineToTheSameBits() {
        let b = ShardPlan.blockSize
        for (i, n) in [b, 3 * b + 5, 17 * b + 4095].enumerated() {
            let g = randomVector(n, seed: UInt64(100 + i))
            let whole = g.withUnsafeBufferPointer { globalNorm($0) }
            for s in 1...6 {
                let plan = ShardPlan(parameterCount: n, owners: s)
                var sums = [Double](repeating: .nan, count: plan.blockCount)
                for o in 0..<s {
                    let blocks = plan.blocks(ofOwner: o), range = plan.range(ofOwner: o)
                    g.withUnsafeBufferPointer { gp in
                        sums.withUnsafeMutableBufferPointer { sp in
                            GradientNorm.blockSumsOfSquares(UnsafeBufferPointer(rebasing: gp[range]),
                                                            into: UnsafeMutableBufferPointer(rebasing: sp[blocks]))
                        }
                    }
                }
                #expect(GradientNorm.combine(sums).bitPattern == whole.bitPattern, "n = \(n), owners = \(s)")
            }
        }
    }

    /// One block: the norm is the block's sum of squares, so models of at most `blockSize` parameters clip
    /// as before the blockwise definition.
    @Test func oneBlockIsThePlainSumOfSquares() {
        let g = randomVector(ShardPlan.blockSize, seed: 9)
        g.withUnsafeBufferPointer { gp in
            #expect(globalNorm(gp).bitPattern == GradientNorm.sumOfSquares(gp).squareRoot().bitPattern)
        }
    }

    /// The fixed tree over the blocks: sqrt(((s0 + s1) + (s2 + s3)) + s4) for five blocks.
    @Test func blocksAreAddedByTheCanonicalTree() {
        let s: [Double] = [1e16, 1, -1e16, 1, 3]
        #expect(GradientNorm.combine(s) == (((s[0] + s[1]) + (s[2] + s[3])) + s[4]).squareRoot())
        #expect(GradientNorm.combine(s) != ((((s[0] + s[1]) + s[2]) + s[3]) + s[4]).squareRoot())
        #expect(GradientNorm.combine([]) == 0)
    }

    @Test func clippingScalesBelowOneOnly() {
        #expect(GradientNorm.clipCoefficient(norm: 5, maxNorm: 1) == 1 / (5 + 1e-6))
        #expect(GradientNorm.clipCoefficient(norm: 0.5, maxNorm: 1) == nil)
        #expect(GradientNorm.clipCoefficient(norm: .nan, maxNorm: 1) == nil)
    }
}
