internal import CKernels

/// Activations and scratch for one batch of up to `maxBatch` windows, with the forward pass and BPTT.
///
/// Shapes, with `B` the batch, `T` the window length, `I` input size, `H` hidden, `O` output,
/// `D = H + I`, and the series `(N, C)` row-major with `C == I == O`:
///
///     d  (T, B, D)   d_t = [h_{t-1}, x_t]          h_{-1} = 0
///     h  (T, B, H)   h_t = act(W_h d_t + b_h)
///     y  (T, B, O)   y_t = head(W_y d_t + b_y)     seed (head: tanh or identity)
///                    y_t = head(W_y h_t + b_y)     elman
///
/// Loss of one window: `last`: mean over `O` of `(y_{T-1} - x_{w+T})^2`; `all`: mean over `T·O` of
/// `(y_t - x_{w+t+1})^2`. The kernels return the **sum** of the per-window losses and accumulate the
/// gradient of that sum; dividing by the number of windows gives PyTorch's `MSELoss` mean.
///
/// The math runs in the C kernels (`CKernels`), for `Float` and `Double` alike: the SIMD path or the
/// OpenBLAS path, chosen per call by ``KernelPath/forShape(_:batch:)`` from the batch actually run (so a
/// workspace of any `maxBatch` gives the same bits for the same windows).
///
/// Every buffer is allocated once, in `init`; `forward`/`backward` allocate nothing. A workspace is used by
/// one thread at a time.
public final class RNNWorkspace<Scalar: RNNScalar> {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let maxBatch: Int
    /// The SIMD variant to run (every variant gives the same bits); tests set it.
    public var isa: KernelISA = .best
    /// Forces a kernel instead of the static rule (tests comparing the paths).
    public var pathOverride: KernelPath?

    var model: ck_model
    let scratch: UnsafeMutableRawPointer  // the kernels' scratch, ck_workspace_count scalars
    let y: UnsafeMutablePointer<Scalar>   // (T, B, O) outputs of the last forward
    let ownPacked: PackedWeights<Scalar>
    /// Packed weights of the last forward (ours or the caller's), and its kernel.
    var lastPacked: UnsafeMutableRawPointer?
    var lastPath: KernelPath = .simd

    /// Batch size of the last `forward` (what `backward` works on).
    public private(set) var batch = 0
    /// Window starts of the last `forward`.
    var windows: UnsafeMutablePointer<Int>

    public init(config: ModelConfig, maxBatch: Int) {
        precondition(maxBatch >= 1, "maxBatch must be at least 1")
        self.config = config
        self.layout = ParameterLayout(config)
        self.maxBatch = maxBatch
        model = ck_model(config)
        let n = max(ck_workspace_count(&model, maxBatch), 1)
        scratch = .allocate(byteCount: n * MemoryLayout<Scalar>.stride, alignment: 64)
        scratch.initializeMemory(as: Scalar.self, repeating: 0, count: n)
        let ny = config.seqLen * maxBatch * config.outputSize
        y = .allocate(capacity: ny)
        y.initialize(repeating: 0, count: ny)
        windows = .allocate(capacity: maxBatch)
        windows.initialize(repeating: 0, count: maxBatch)
        ownPacked = PackedWeights(config: config)
    }

    deinit {
        scratch.deallocate()
        y.deallocate()
        windows.deallocate()
    }

    /// Runs the batch of windows starting at `windows` through the model.
    ///
    /// - Parameters:
    ///   - params: the parameter block, laid out as ``ParameterLayout``.
    ///   - series: the series `(N, C)`; every window `w` needs `w + T + 1 <= N` (its target).
    ///   - windows: window start indices, at most `maxBatch`.
    /// - Returns: the sum over windows of each window's loss.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func forward(
        params: UnsafeBufferPointer<Scalar>,
        series: UnsafeBufferPointer<Scalar>,
        windows ws: UnsafeBufferPointer<Int>
    ) -> Scalar {
        forward(params: params, packed: nil, series: series, windows: ws)
    }

    /// ``forward(params:series:windows:)`` with weights already packed from `params` (one packing shared by
    /// the micro-batches of a step). `packed` must stay unchanged until the matching ``backward(params:series:grads:)``.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func forward(
        params: UnsafeBufferPointer<Scalar>,
        packed: PackedWeights<Scalar>?,
        series: UnsafeBufferPointer<Scalar>,
        windows ws: UnsafeBufferPointer<Int>
    ) -> Scalar {
        let B = ws.count
        precondition(B >= 1 && B <= maxBatch, "batch \(B) outside 1...\(maxBatch)")
        precondition(params.count == layout.count, "parameter block has \(params.count) values, model needs \(layout.count)")
        let T = config.seqLen, I = config.inputSize
        for b in 0..<B {
            let w = ws[b]
            precondition(w >= 0 && (w + T + 1) * I <= series.count, "window \(w) needs points up to \(w + T) of a series of \(series.count / I)")
            windows[b] = w
        }
        batch = B
        let path = pathOverride ?? KernelPath.forShape(config, batch: B)
        lastPath = path
        if path == .simd {
            if let p = packed {
                precondition(p.isPacked && p.config == config, "packed weights of another model, or not packed")
                lastPacked = p.storage
            } else {
                ownPacked.pack(params)
                lastPacked = ownPacked.storage
            }
        } else {
            lastPacked = nil
        }
        let P = UnsafeRawPointer(params.baseAddress!), X = UnsafeRawPointer(series.baseAddress!)
        let K = UnsafeRawPointer(lastPacked)
        if Scalar.self == Float.self {
            let l = ck_forward_f32(isa.rawValue, path.rawValue, &model, P.assumingMemoryBound(to: Float.self),
                                   K?.assumingMemoryBound(to: Float.self), X.assumingMemoryBound(to: Float.self),
                                   windows, B, scratch.assumingMemoryBound(to: Float.self),
                                   UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self))
            return Scalar(l)
        } else {
            let l = ck_forward_f64(isa.rawValue, path.rawValue, &model, P.assumingMemoryBound(to: Double.self),
                                   K?.assumingMemoryBound(to: Double.self), X.assumingMemoryBound(to: Double.self),
                                   windows, B, scratch.assumingMemoryBound(to: Double.self),
                                   UnsafeMutableRawPointer(y).assumingMemoryBound(to: Double.self))
            return Scalar(l)
        }
    }

    /// BPTT for the batch of the last ``forward(params:series:windows:)``: **adds** the gradient of the
    /// loss sum to `grads` (so several batches can accumulate into one block). `params` and `series` must be
    /// the forward's.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func backward(
        params: UnsafeBufferPointer<Scalar>,
        series: UnsafeBufferPointer<Scalar>,
        grads: UnsafeMutableBufferPointer<Scalar>
    ) {
        precondition(batch >= 1, "backward needs a forward first")
        precondition(params.count == layout.count, "parameter block has \(params.count) values, model needs \(layout.count)")
        precondition(grads.count == layout.count, "gradient block has \(grads.count) values, model needs \(layout.count)")
        let P = UnsafeRawPointer(params.baseAddress!), X = UnsafeRawPointer(series.baseAddress!)
        let G = UnsafeMutableRawPointer(grads.baseAddress!), K = UnsafeRawPointer(lastPacked)
        let Y = UnsafeRawPointer(y)
        if Scalar.self == Float.self {
            ck_backward_f32(isa.rawValue, lastPath.rawValue, &model, P.assumingMemoryBound(to: Float.self),
                            K?.assumingMemoryBound(to: Float.self), X.assumingMemoryBound(to: Float.self),
                            windows, batch, scratch.assumingMemoryBound(to: Float.self),
                            Y.assumingMemoryBound(to: Float.self), G.assumingMemoryBound(to: Float.self))
        } else {
            ck_backward_f64(isa.rawValue, lastPath.rawValue, &model, P.assumingMemoryBound(to: Double.self),
                            K?.assumingMemoryBound(to: Double.self), X.assumingMemoryBound(to: Double.self),
                            windows, batch, scratch.assumingMemoryBound(to: Double.self),
                            Y.assumingMemoryBound(to: Double.self), G.assumingMemoryBound(to: Double.self))
        }
    }

    /// The outputs `y_t` of the last forward for step `t` and window `b` (length `O`), for predictions.
    public func output(step t: Int, window b: Int) -> [Scalar] {
        precondition(t >= 0 && t < config.seqLen && b >= 0 && b < batch)
        let O = config.outputSize
        let p = y + t * batch * O + b * O
        return Array(UnsafeBufferPointer(start: p, count: O))
    }
}

extension RNNWorkspace {
    /// Loss sum and gradient sum of one batch, with arrays (tests and tools; the hot path uses the pointer API).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func lossAndGradient(
        params: [Scalar], series: [Scalar], windows: [Int]
    ) -> (lossSum: Scalar, gradient: [Scalar]) {
        var g = [Scalar](repeating: 0, count: layout.count)
        let loss = params.withUnsafeBufferPointer { p in
            series.withUnsafeBufferPointer { s in
                windows.withUnsafeBufferPointer { w in
                    let l = forward(params: p, series: s, windows: w)
                    g.withUnsafeMutableBufferPointer { backward(params: p, series: s, grads: $0) }
                    return l
                }
            }
        }
        return (loss, g)
    }

    /// Loss sum over any number of windows, in chunks of `maxBatch` (no gradient).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func lossSum(params: [Scalar], series: [Scalar], windows: [Int]) -> Double {
        var total = 0.0
        forEachChunk(params: params, series: series, windows: windows) { loss, _ in total += Double(loss) }
        return total
    }

    /// Runs `forward` over `windows` in chunks of at most `maxBatch`, calling `body(lossSum, chunkSize)`
    /// after each (the chunk's outputs are readable through ``output(step:window:)`` inside `body`).
    func forEachChunk(params: [Scalar], series: [Scalar], windows: [Int], _ body: (Scalar, Int) -> Void) {
        params.withUnsafeBufferPointer { p in
            series.withUnsafeBufferPointer { s in
                windows.withUnsafeBufferPointer { w in
                    ownPacked.pack(p)  // once for every chunk
                    var i = 0
                    while i < w.count {
                        let n = min(maxBatch, w.count - i)
                        let chunk = UnsafeBufferPointer(rebasing: w[i..<(i + n)])
                        body(forward(params: p, packed: ownPacked, series: s, windows: chunk), n)
                        i += n
                    }
                }
            }
        }
    }

    /// The last-step output for each window (its one-step-ahead prediction), `(count, O)` row-major.
    /// Every window needs its target point inside `series` (pad the series by one point to predict past its end).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func predictions(params: [Scalar], series: [Scalar], windows: [Int]) -> [Scalar] {
        let O = config.outputSize, T = config.seqLen
        var out = [Scalar]()
        out.reserveCapacity(windows.count * O)
        forEachChunk(params: params, series: series, windows: windows) { _, n in
            for b in 0..<n { out.append(contentsOf: output(step: T - 1, window: b)) }
        }
        return out
    }
}
