internal import CKernels

/// The global L2 norm of a gradient block, accumulated in `Double` in a fixed order (8 interleaved partial
/// sums combined pairwise, see `ck_sumsq_f32`): the same bits on every machine and vector width.
@_specialize(exported: true, where S == Float)
@_specialize(exported: true, where S == Double)
public func globalNorm<S: RNNScalar>(_ g: UnsafeBufferPointer<S>) -> Double {
    guard let base = g.baseAddress else { return 0 }
    let s = S.self == Float.self ? ck_sumsq_f32(raw(base), g.count) : ck_sumsq_f64(raw(base), g.count)
    return s.squareRoot()
}

/// Clips a gradient block in place like `torch.nn.utils.clip_grad_norm_`:
/// `coef = maxNorm / (norm + 1e-6)`, and when `coef < 1` every element is scaled by it.
///
/// - Returns: the norm before clipping (what PyTorch returns).
@discardableResult
@_specialize(exported: true, where S == Float)
@_specialize(exported: true, where S == Double)
public func clipGradientNorm<S: RNNScalar>(_ g: UnsafeMutableBufferPointer<S>, maxNorm: Double) -> Double {
    let norm = globalNorm(UnsafeBufferPointer(g))
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        let c = S(coef)
        for i in g.indices { g[i] *= c }
    }
    return norm
}

/// Array convenience for ``clipGradientNorm(_:maxNorm:)``.
@discardableResult
public func clipGradientNorm<S: RNNScalar>(_ g: inout [S], maxNorm: Double) -> Double {
    g.withUnsafeMutableBufferPointer { clipGradientNorm($0, maxNorm: maxNorm) }
}
