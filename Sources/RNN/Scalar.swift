import RealModule

/// The floating-point types the kernels run in: `Float` for training, `Double` for gradient checks.
public protocol RNNScalar: BinaryFloatingPoint, Real, Sendable {}

extension Float: RNNScalar {}
extension Double: RNNScalar {}

extension Activation {
    /// `act(x)`.
    @inline(__always)
    func apply<S: RNNScalar>(_ x: S) -> S {
        switch self {
        case .tanh: return S.tanh(x)
        case .relu: return x > 0 ? x : 0
        }
    }

    /// `act'(a)` written in terms of the output `h = act(a)`.
    @inline(__always)
    func derivative<S: RNNScalar>(output h: S) -> S {
        switch self {
        case .tanh: return 1 - h * h
        case .relu: return h > 0 ? 1 : 0
        }
    }
}
