/// Why a ``ShardOwner`` refused a command or a value (a peer's fault or a driver's bug: the owner's state is
/// unchanged by a refused call).
public enum ShardError: Error, Equatable, CustomStringConvertible {
    /// Values of the wrong length for the owner's slice.
    case wrongSize(expected: Int, got: Int)
    /// A leaf run that is not a node of the step's tree.
    case notANode(block: Range<Int>, leafCount: Int)
    /// A value or command for a step the owner is not at (a step ahead, or one never begun).
    case wrongStep(step: Int, current: Int)
    /// A command that needs another phase (e.g. apply before the slice is reduced).
    case notReady(String)
    /// The reduced slice holds a NaN or an infinity: the step must not be applied.
    case nonFinite(step: Int)
    /// A snapshot that does not fit this owner's slice or optimizer.
    case badSnapshot(String)
    /// A step plan without windows.
    case emptyStep(step: Int)

    public var description: String {
        switch self {
        case .wrongSize(let e, let g): "a slice of \(g) values where the owner holds \(e): the sender cut the row with another shard plan"
        case .notANode(let b, let m): "leaves \(b) are not a node of the tree over \(m) leaves: the sender planned another step"
        case .wrongStep(let s, let c): "step \(s) while the owner is at step \(c): begin the step first, or drop the late message"
        case .notReady(let m): "not ready: \(m)"
        case .nonFinite(let s): "the gradient of step \(s) is not finite: drop the step (lower --lr or set --clip-norm)"
        case .badSnapshot(let m): "the snapshot does not fit this owner: \(m)"
        case .emptyStep(let s): "step \(s) has no windows"
        }
    }
}
