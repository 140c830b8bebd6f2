/// The global L2 norm of a gradient block, accumulated in `Double` in index order.
@_specialize(exported: true, where S == Float)
@_specialize(exported: true, where S == Double)
public func globalNorm<S: RNNScalar>(_ g: UnsafeBufferPointer<S>) -> Double {
    var s = 0.0
    for x in g {
        let d = Double(x)
        s += d * d
    }
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
