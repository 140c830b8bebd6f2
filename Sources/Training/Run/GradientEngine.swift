import Dispatch
import RNN
import Series

/// Computes gradient sums of micro-batches on `threads` threads, each with its own workspace, and combines
/// them with the canonical tree (``CanonicalTree``).
///
/// A global batch of windows is cut into micro-batches of `microBatch` windows (the last may be shorter);
/// micro-batch `i` is leaf `i` of the tree. Leaf `i` is computed by thread `i mod threads` and summed by one
/// thread in window order, so neither the thread count nor scheduling changes a single bit.
///
/// Each leaf row is the gradient sum `(P)` followed by the loss sum, so rows are `P + 1` wide.
/// Buffers are allocated in `init` and grown only when a batch has more micro-batches than before.
public final class GradientEngine: @unchecked Sendable {
    // @unchecked: the engine is used by one caller thread at a time; inside `compute`, thread k touches
    // only workspace k and the leaf rows it owns.
    public let config: ModelConfig
    public let microBatch: Int
    public let threads: Int
    /// Parameters `P`.
    public let parameterCount: Int
    /// Row width `P + 1` (gradient sum, then loss sum).
    public var width: Int { parameterCount + 1 }

    private let workspaces: [RNNWorkspace<Float>]
    /// The weights rearranged for the SIMD kernels, once per `compute` and shared by every lane.
    private let packed: PackedWeights<Float>
    private var rows: UnsafeMutablePointer<Float>
    private var rowCapacity: Int

    public init(config: ModelConfig, microBatch: Int, threads: Int) {
        precondition(microBatch >= 1 && threads >= 1)
        self.config = config
        self.microBatch = microBatch
        self.threads = threads
        parameterCount = ParameterLayout(config).count
        workspaces = (0..<threads).map { _ in RNNWorkspace<Float>(config: config, maxBatch: microBatch) }
        packed = PackedWeights(config: config)
        rowCapacity = 4
        rows = .allocate(capacity: rowCapacity * (parameterCount + 1))
    }

    deinit { rows.deallocate() }

    /// Number of micro-batches (leaves) of a global batch of `windows` windows.
    public func leafCount(windows: Int) -> Int { plan(windows: windows).leafCount }

    /// The plan of a step of `windows` windows in this engine's micro-batches.
    public func plan(windows: Int) -> StepPlan { StepPlan(windows: windows, microBatch: microBatch) }

    /// Computes every leaf in `run` of the global batch `windows`, then reduces each tree node of the run
    /// (``CanonicalTree/blocks(of:leafCount:)``) in place.
    ///
    /// - Returns: the nodes and, for each, a view of its row `(P + 1)`; valid until the next call.
    @discardableResult
    public func compute(
        params: UnsafeBufferPointer<Float>,
        series: UnsafeBufferPointer<Float>,
        windows: UnsafeBufferPointer<Int>,
        run: Range<Int>
    ) -> [(block: Range<Int>, sums: UnsafeBufferPointer<Float>)] {
        let plan = plan(windows: windows.count)
        let m = plan.leafCount
        precondition(run.lowerBound >= 0 && run.upperBound <= m && !run.isEmpty, "run \(run) outside 0..<\(m)")
        ensureCapacity(m)
        // Each leaf's kernel follows from its size alone (the last leaf may be shorter), as in every process.
        let lastSize = plan.samples(in: (run.upperBound - 1)..<run.upperBound)
        let needsPacked = KernelPath.forShape(config, batch: microBatch) == .simd
            || KernelPath.forShape(config, batch: lastSize) == .simd
        if needsPacked { packed.pack(params) }
        let job = LeafJob(params: params, series: series, windows: windows, rows: rows, width: width,
                          microBatch: microBatch, stride: threads, run: run, workspaces: workspaces,
                          packed: needsPacked ? packed : nil)
        let lanes = min(threads, run.count)
        if lanes == 1 {
            job.work(lane: 0)
        } else {
            DispatchQueue.concurrentPerform(iterations: lanes) { job.work(lane: $0) }
        }
        let w = width
        return CanonicalTree.blocks(of: run, leafCount: m).map { block in
            CanonicalTree.reduceInPlace(rows, width: w, block: block, leafCount: m)
            return (block, UnsafeBufferPointer(start: rows + block.lowerBound * w, count: w))
        }
    }

    /// The whole batch at once: the root of the tree, `(P + 1)`; valid until the next call.
    public func computeAll(
        params: UnsafeBufferPointer<Float>, series: UnsafeBufferPointer<Float>, windows: UnsafeBufferPointer<Int>
    ) -> UnsafeBufferPointer<Float> {
        let m = leafCount(windows: windows.count)
        let nodes = compute(params: params, series: series, windows: windows, run: 0..<m)
        precondition(nodes.count == 1)
        return nodes[0].sums
    }

    private func ensureCapacity(_ m: Int) {
        guard m > rowCapacity else { return }
        rows.deallocate()
        rowCapacity = max(m, rowCapacity * 2)
        rows = .allocate(capacity: rowCapacity * width)
    }
}

/// The leaves of one `compute` call, shared by the lanes that compute them.
///
/// `@unchecked Sendable`: lane `t` writes only rows `run.lowerBound + t + k·stride` and uses only
/// `workspaces[t]`; everything else is read-only while the lanes run.
private struct LeafJob: @unchecked Sendable {
    let params: UnsafeBufferPointer<Float>
    let series: UnsafeBufferPointer<Float>
    let windows: UnsafeBufferPointer<Int>
    let rows: UnsafeMutablePointer<Float>
    let width: Int
    let microBatch: Int
    let stride: Int
    let run: Range<Int>
    let workspaces: [RNNWorkspace<Float>]
    let packed: PackedWeights<Float>?

    func work(lane t: Int) {
        let ws = workspaces[t]
        var i = run.lowerBound + t
        while i < run.upperBound {
            let row = rows + i * width
            for j in 0..<width { row[j] = 0 }
            let lo = i * microBatch, hi = min(lo + microBatch, windows.count)
            let leaf = UnsafeBufferPointer(rebasing: windows[lo..<hi])
            let loss = ws.forward(params: params, packed: packed, series: series, windows: leaf)
            ws.backward(params: params, series: series, grads: UnsafeMutableBufferPointer(start: row, count: width - 1))
            row[width - 1] = loss
            i += stride
        }
    }
}
