/// The plan of one optimizer step: `windows` windows cut into micro-batches of `microBatch`, the
/// leaves of the canonical reduction tree (leaf `i` holds the windows at positions
/// `i*microBatch ..< min((i+1)*microBatch, windows)`; the last leaf may be shorter).
///
/// The one place of the leaf arithmetic: the gradient engine computes leaves by it, the aggregator
/// shares and checks them by it, and a worker answers by it, so every process cuts a step alike.
public struct StepPlan: Sendable, Equatable {
    /// Windows in the step (0 only for a plan built from a stranger's message, which is then refused).
    public let windows: Int
    /// Windows per leaf.
    public let microBatch: Int

    /// Preconditions: `windows >= 0`, `microBatch >= 1`.
    public init(windows: Int, microBatch: Int) {
        precondition(windows >= 0 && microBatch >= 1, "a step of \(windows) windows in micro-batches of \(microBatch)")
        self.windows = windows
        self.microBatch = microBatch
    }

    /// Number of leaves (micro-batches).
    public var leafCount: Int { (windows + microBatch - 1) / microBatch }

    /// The window positions of a run of leaves `block` (a tree node, or any run of leaves).
    public func windows(in block: Range<Int>) -> Range<Int> {
        (block.lowerBound * microBatch)..<min(block.upperBound * microBatch, windows)
    }

    /// Windows in a run of leaves `block` (a tree node's sample count).
    public func samples(in block: Range<Int>) -> Int {
        min(block.upperBound * microBatch, windows) - block.lowerBound * microBatch
    }
}
