import RealModule

/// The floating-point types the kernels run in: `Float` for training, `Double` for gradient checks.
public protocol RNNScalar: BinaryFloatingPoint, Real, Sendable {}

extension Float: RNNScalar {}
extension Double: RNNScalar {}
