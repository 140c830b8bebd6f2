internal import CKernels

/// The global L2 norm of a gradient, defined blockwise so that it has the same bits however the vector is
/// sharded: the vector is cut into the fixed blocks of ``ShardPlan`` (`ShardPlan.blockSize` floats, the
/// last one shorter), each block's sum of squares is accumulated in `Double` in a fixed order (8 interleaved
/// partial sums combined pairwise, see `ck_sumsq_f32`: the same bits on every machine and vector width), and
/// the blocks' sums are added by the canonical tree over the block indices (``CanonicalTree``, the tree the
/// gradient's leaves use): `norm = sqrt(tree(s_0, s_1, …, s_{n-1}))`.
///
/// An owner of a slice of whole blocks computes its blocks' partial sums
/// (``blockSumsOfSquares(_:into:)``); whoever holds all of them combines them (``combine(_:)``), in
/// block order whatever the owner count:
///
///     var sums = [Double](repeating: 0, count: ShardPlan.blockCount(g.count))
///     g.withUnsafeBufferPointer { gp in sums.withUnsafeMutableBufferPointer { GradientNorm.blockSumsOfSquares(gp, into: $0) } }
///     let norm = GradientNorm.combine(sums)        // == globalNorm(g), bit for bit
public enum GradientNorm {
    /// The sum of squares of one block (or any vector), in `Double`, in the kernels' fixed order.
    @_specialize(exported: true, where S == Float)
    @_specialize(exported: true, where S == Double)
    public static func sumOfSquares<S: RNNScalar>(_ x: UnsafeBufferPointer<S>) -> Double {
        guard let base = x.baseAddress, !x.isEmpty else { return 0 }
        return S.self == Float.self ? ck_sumsq_f32(raw(base), x.count) : ck_sumsq_f64(raw(base), x.count)
    }

    /// Writes the sum of squares of each block of `g` into `out`: `g` is a run of whole blocks of a
    /// parameter vector (it starts at a block boundary; only its last block may be shorter), and `out`
    /// has `ShardPlan.blockCount(g.count)` places.
    @_specialize(exported: true, where S == Float)
    @_specialize(exported: true, where S == Double)
    public static func blockSumsOfSquares<S: RNNScalar>(_ g: UnsafeBufferPointer<S>, into out: UnsafeMutableBufferPointer<Double>) {
        let n = ShardPlan.blockCount(g.count), b = ShardPlan.blockSize
        precondition(out.count == n, "\(out.count) places for the \(n) blocks of \(g.count) values")
        for k in 0..<n {
            let lo = k * b, hi = min(lo + b, g.count)
            out[k] = sumOfSquares(UnsafeBufferPointer(rebasing: g[lo..<hi]))
        }
    }

    /// The norm from every block's sum of squares, in block order: the canonical tree's sum, then the
    /// square root. Overwrites `sums` (the tree is summed in place).
    public static func combine(_ sums: UnsafeMutableBufferPointer<Double>) -> Double {
        guard let base = sums.baseAddress, !sums.isEmpty else { return 0 }
        CanonicalTree.reduceInPlace(base, width: 1, block: 0..<sums.count, leafCount: sums.count)
        return base[0].squareRoot()
    }

    /// Array convenience for ``combine(_:)-(UnsafeMutableBufferPointer<Double>)`` (leaves `sums` as it was).
    public static func combine(_ sums: [Double]) -> Double {
        var copy = sums
        return copy.withUnsafeMutableBufferPointer { combine($0) }
    }

    /// The clipping coefficient of `torch.nn.utils.clip_grad_norm_`: `maxNorm / (norm + 1e-6)` when it
    /// is below 1, nil when the gradient is left as it is (also for a NaN norm).
    public static func clipCoefficient(norm: Double, maxNorm: Double) -> Double? {
        let coef = maxNorm / (norm + 1e-6)
        return coef < 1 ? coef : nil
    }

    /// Multiplies every element by `coefficient`, rounded once to the scalar type (elementwise: a slice
    /// scaled alone has the bits of the same elements scaled in the whole vector).
    @_specialize(exported: true, where S == Float)
    @_specialize(exported: true, where S == Double)
    public static func scale<S: RNNScalar>(_ g: UnsafeMutableBufferPointer<S>, by coefficient: Double) {
        let c = S(coefficient)
        for i in g.indices { g[i] *= c }
    }
}

/// The global L2 norm of a whole gradient vector, as ``GradientNorm`` defines it (blockwise).
@_specialize(exported: true, where S == Float)
@_specialize(exported: true, where S == Double)
public func globalNorm<S: RNNScalar>(_ g: UnsafeBufferPointer<S>) -> Double {
    let n = ShardPlan.blockCount(g.count)
    guard n > 0 else { return 0 }
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: n) { sums in
        GradientNorm.blockSumsOfSquares(g, into: sums)
        return GradientNorm.combine(sums)
    }
}

/// Clips a gradient block in place like `torch.nn.utils.clip_grad_norm_`:
/// `coef = maxNorm / (norm + 1e-6)`, and when `coef < 1` every element is scaled by it; the norm is
/// ``globalNorm(_:)``'s (blockwise).
///
/// - Returns: the norm before clipping (what PyTorch returns).
@discardableResult
@_specialize(exported: true, where S == Float)
@_specialize(exported: true, where S == Double)
public func clipGradientNorm<S: RNNScalar>(_ g: UnsafeMutableBufferPointer<S>, maxNorm: Double) -> Double {
    let norm = globalNorm(UnsafeBufferPointer(g))
    if let coef = GradientNorm.clipCoefficient(norm: norm, maxNorm: maxNorm) { GradientNorm.scale(g, by: coef) }
    return norm
}

/// Array convenience for ``clipGradientNorm(_:maxNorm:)``.
@discardableResult
public func clipGradientNorm<S: RNNScalar>(_ g: inout [S], maxNorm: Double) -> Double {
    g.withUnsafeMutableBufferPointer { clipGradientNorm($0, maxNorm: maxNorm) }
}
