import RealModule
internal import CKernels

/// Which update rule.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    case sgd
    case adam
}

/// Hyper-parameters of an optimizer, with PyTorch's defaults.
public struct OptimizerConfig: Sendable, Codable, Equatable {
    public var kind: OptimizerKind
    public var learningRate: Double
    /// SGD only (PyTorch `momentum`, no dampening, no Nesterov).
    public var momentum: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double

    public init(
        kind: OptimizerKind, learningRate: Double, momentum: Double = 0,
        beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8
    ) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }
}

/// An optimizer and its state, with PyTorch's exact update rules.
///
/// - SGD: `buf = g` on the first step, then `buf = momentum·buf + g`; `p -= lr·buf` (`p -= lr·g` without momentum).
/// - Adam: `m = lerp(m, g, 1-β1)`, `v = β2·v + (1-β2)·g²`, `p -= (lr / (1-β1^t)) · m / (sqrt(v)/sqrt(1-β2^t) + ε)`,
///   bias corrections computed in `Double` as PyTorch does in Python floats.
public struct Optimizer<Scalar: RNNScalar>: Sendable {
    public let config: OptimizerConfig
    /// Steps taken so far (`t` of Adam's bias correction).
    public private(set) var step: Int
    /// SGD momentum buffer, or Adam's first moment.
    public private(set) var m: [Scalar]
    /// Adam's second moment (empty for SGD).
    public private(set) var v: [Scalar]

    public init(config: OptimizerConfig, parameterCount: Int) {
        self.config = config
        step = 0
        let needsM = config.kind == .adam || config.momentum != 0
        m = needsM ? [Scalar](repeating: 0, count: parameterCount) : []
        v = config.kind == .adam ? [Scalar](repeating: 0, count: parameterCount) : []
    }

    /// Restores saved state (checkpoints).
    public init(config: OptimizerConfig, step: Int, m: [Scalar], v: [Scalar]) {
        self.config = config
        self.step = step
        self.m = m
        self.v = v
    }

    /// Applies one update to `params` from the (already averaged and clipped) gradient `g`, at the
    /// configured learning rate.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func update(_ params: UnsafeMutableBufferPointer<Scalar>, gradient g: UnsafeBufferPointer<Scalar>) {
        update(params, gradient: g, learningRate: config.learningRate)
    }

    /// Applies one update at `learningRate` (PyTorch's `param_group["lr"]` of this step, as a schedule sets it).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func update(_ params: UnsafeMutableBufferPointer<Scalar>, gradient g: UnsafeBufferPointer<Scalar>,
                                learningRate: Double) {
        precondition(params.count == g.count, "parameters and gradient differ in size")
        step += 1
        let lr = Scalar(learningRate)
        switch config.kind {
        case .sgd:
            if config.momentum == 0 {
                for i in params.indices { params[i] -= lr * g[i] }
            } else {
                let mu = Scalar(config.momentum)
                let first = step == 1
                m.withUnsafeMutableBufferPointer { buf in
                    for i in params.indices {
                        buf[i] = first ? g[i] : mu * buf[i] + g[i]
                        params[i] -= lr * buf[i]
                    }
                }
            }
        case .adam:
            let b1 = config.beta1, b2 = config.beta2
            let bc1 = 1 - Double.pow(b1, step)
            let bc2 = 1 - Double.pow(b2, step)
            let stepSize = Scalar(learningRate / bc1)
            let bc2Sqrt = Scalar(bc2.squareRoot())
            let oneMinusB1 = Scalar(1 - b1), sb2 = Scalar(b2), oneMinusB2 = Scalar(1 - b2)
            let eps = Scalar(config.epsilon)
            precondition(m.count == params.count && v.count == params.count, "optimizer state has \(m.count) values, parameters \(params.count)")
            guard let p = params.baseAddress, let gp = g.baseAddress else { return }
            m.withUnsafeMutableBufferPointer { mm in
                v.withUnsafeMutableBufferPointer { vv in
                    // the C loop is this one, vectorized (elementwise: the same bits at any width):
                    //   m += (1-b1)(g - m); v = v b2 + (1-b2) g g; p -= stepSize (m / (sqrt(v)/bc2Sqrt + eps))
                    let n = params.count
                    if Scalar.self == Float.self {
                        ck_adam_f32(n, raw(p), raw(gp), raw(mm.baseAddress!), raw(vv.baseAddress!), Float(oneMinusB1),
                                    Float(sb2), Float(oneMinusB2), Float(stepSize), Float(bc2Sqrt), Float(eps))
                    } else {
                        ck_adam_f64(n, raw(p), raw(gp), raw(mm.baseAddress!), raw(vv.baseAddress!), Double(oneMinusB1),
                                    Double(sb2), Double(oneMinusB2), Double(stepSize), Double(bc2Sqrt), Double(eps))
                    }
                }
            }
        }
    }

    /// Array convenience for ``update(_:gradient:)``.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func update(_ params: inout [Scalar], gradient g: [Scalar]) {
        update(&params, gradient: g, learningRate: config.learningRate)
    }

    /// Array convenience for ``update(_:gradient:learningRate:)``.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func update(_ params: inout [Scalar], gradient g: [Scalar], learningRate: Double) {
        g.withUnsafeBufferPointer { gp in
            params.withUnsafeMutableBufferPointer { update($0, gradient: gp, learningRate: learningRate) }
        }
    }
}

/// A typed pointer viewed as another scalar type of the same layout (Float/Double dispatch to the C kernels).
@inline(__always)
func raw<S, T>(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: T.self)
}

@inline(__always)
func raw<S, T>(_ p: UnsafePointer<S>) -> UnsafePointer<T> {
    UnsafeRawPointer(p).assumingMemoryBound(to: T.self)
}
