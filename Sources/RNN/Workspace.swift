/// Activations and scratch for one batch of up to `maxBatch` windows, with the forward pass and BPTT.
///
/// Shapes, with `B` the batch, `T` the window length, `I` input size, `H` hidden, `O` output,
/// `D = H + I`, and the series `(N, C)` row-major with `C == I == O`:
///
///     d  (T, B, D)   d_t = [h_{t-1}, x_t]          h_{-1} = 0
///     h  (T, B, H)   h_t = act(W_h d_t + b_h)
///     y  (T, B, O)   y_t = tanh(W_y d_t + b_y)     seed
///                    y_t = tanh(W_y h_t + b_y)     elman
///
/// Loss of one window: `last`: mean over `O` of `(y_{T-1} - x_{w+T})^2`; `all`: mean over `T·O` of
/// `(y_t - x_{w+t+1})^2`. The kernels return the **sum** of the per-window losses and accumulate the
/// gradient of that sum; dividing by the number of windows gives PyTorch's `MSELoss` mean.
///
/// Every buffer is allocated once, in `init`; `forward`/`backward` allocate nothing. A workspace is used by
/// one thread at a time.
public final class RNNWorkspace<Scalar: RNNScalar> {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let maxBatch: Int

    // activations
    let d: UnsafeMutablePointer<Scalar>  // (T, B, D)
    let h: UnsafeMutablePointer<Scalar>  // (T, B, H)
    let y: UnsafeMutablePointer<Scalar>  // (T, B, O)
    // backward scratch
    let dd: UnsafeMutablePointer<Scalar>  // (B, D) gradient w.r.t. d_t
    let dh: UnsafeMutablePointer<Scalar>  // (B, H) gradient w.r.t. h_t
    let da: UnsafeMutablePointer<Scalar>  // (B, H) gradient w.r.t. the pre-activation of h_t
    let dz: UnsafeMutablePointer<Scalar>  // (B, O) gradient w.r.t. the pre-activation of y_t
    let counts: (d: Int, h: Int, y: Int)

    /// Batch size of the last `forward` (what `backward` works on).
    public private(set) var batch = 0
    /// Window starts of the last `forward`.
    var windows: [Int]

    public init(config: ModelConfig, maxBatch: Int) {
        precondition(maxBatch >= 1, "maxBatch must be at least 1")
        self.config = config
        self.layout = ParameterLayout(config)
        self.maxBatch = maxBatch
        let T = config.seqLen, B = maxBatch, H = config.hiddenSize, O = config.outputSize
        let D = config.concatSize
        counts = (T * B * D, T * B * H, T * B * O)
        d = .allocate(capacity: counts.d)
        h = .allocate(capacity: counts.h)
        y = .allocate(capacity: counts.y)
        dd = .allocate(capacity: B * D)
        dh = .allocate(capacity: B * H)
        da = .allocate(capacity: B * H)
        dz = .allocate(capacity: B * O)
        d.initialize(repeating: 0, count: counts.d)
        h.initialize(repeating: 0, count: counts.h)
        y.initialize(repeating: 0, count: counts.y)
        dd.initialize(repeating: 0, count: B * D)
        dh.initialize(repeating: 0, count: B * H)
        da.initialize(repeating: 0, count: B * H)
        dz.initialize(repeating: 0, count: B * O)
        windows = [Int](repeating: 0, count: B)
    }

    deinit {
        d.deallocate(); h.deallocate(); y.deallocate()
        dd.deallocate(); dh.deallocate(); da.deallocate(); dz.deallocate()
    }

    /// Does step `t` produce an output that enters the loss?
    @inline(__always)
    func hasOutput(_ t: Int) -> Bool { config.loss == .all || t == config.seqLen - 1 }

    /// Is `h_t` used by anything? In the seed cell the last hidden state feeds nothing.
    @inline(__always)
    func needsHidden(_ t: Int) -> Bool { config.cell == .elman || t < config.seqLen - 1 }

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
        let B = ws.count
        precondition(B >= 1 && B <= maxBatch, "batch \(B) outside 1...\(maxBatch)")
        precondition(params.count == layout.count, "parameter block has \(params.count) values, model needs \(layout.count)")
        batch = B
        for b in 0..<B { windows[b] = ws[b] }
        let T = config.seqLen, H = config.hiddenSize, I = config.inputSize, O = config.outputSize
        let D = H + I, F = config.outputFanIn
        let P = params.baseAddress!
        let Wh = P + layout.wh.range.lowerBound, bh = P + layout.bh.range.lowerBound
        let Wy = P + layout.wy.range.lowerBound, by = P + layout.by.range.lowerBound
        let X = series.baseAddress!
        let act = config.activation
        var lossSum: Scalar = 0
        let perWindow: Scalar = config.loss == .last ? Scalar(O) : Scalar(T * O)

        for t in 0..<T {
            let dt = d + t * B * D, ht = h + t * B * H, yt = y + t * B * O
            // d_t = [h_{t-1}, x_t]                                     (B, D)
            for b in 0..<B {
                let row = dt + b * D
                if t == 0 {
                    for j in 0..<H { row[j] = 0 }
                } else {
                    let prev = h + (t - 1) * B * H + b * H
                    for j in 0..<H { row[j] = prev[j] }
                }
                let x = X + (ws[b] + t) * I
                for j in 0..<I { row[H + j] = x[j] }
            }
            // h_t = act(d_t W_h^T + b_h)                               (B, H)
            if needsHidden(t) {
                for b in 0..<B {
                    let row = dt + b * D, out = ht + b * H
                    for i in 0..<H {
                        let w = Wh + i * D
                        var s = bh[i]
                        for j in 0..<D { s += w[j] * row[j] }
                        out[i] = act.apply(s)
                    }
                }
            }
            // y_t = tanh(W_y · (d_t | h_t) + b_y)                      (B, O)
            if hasOutput(t) {
                let src = config.cell == .seed ? dt : ht
                for b in 0..<B {
                    let row = src + b * F, out = yt + b * O
                    let target = X + (ws[b] + t + 1) * I
                    var l: Scalar = 0
                    for o in 0..<O {
                        let w = Wy + o * F
                        var s = by[o]
                        for j in 0..<F { s += w[j] * row[j] }
                        let v = Scalar.tanh(s)
                        out[o] = v
                        let e = v - target[o]
                        l += e * e
                    }
                    lossSum += l / perWindow
                }
            }
        }
        return lossSum
    }

    /// BPTT for the batch of the last ``forward(params:series:windows:)``: **adds** the gradient of the
    /// loss sum to `grads` (so several batches can accumulate into one block).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func backward(
        params: UnsafeBufferPointer<Scalar>,
        series: UnsafeBufferPointer<Scalar>,
        grads: UnsafeMutableBufferPointer<Scalar>
    ) {
        precondition(grads.count == layout.count, "gradient block has \(grads.count) values, model needs \(layout.count)")
        let B = batch
        let T = config.seqLen, H = config.hiddenSize, I = config.inputSize, O = config.outputSize
        let D = H + I, F = config.outputFanIn
        let P = params.baseAddress!, G = grads.baseAddress!
        let Wh = P + layout.wh.range.lowerBound
        let Wy = P + layout.wy.range.lowerBound
        let gWh = G + layout.wh.range.lowerBound, gbh = G + layout.bh.range.lowerBound
        let gWy = G + layout.wy.range.lowerBound, gby = G + layout.by.range.lowerBound
        let X = series.baseAddress!
        let act = config.activation
        let scale: Scalar = 2 / (config.loss == .last ? Scalar(O) : Scalar(T * O))

        // dh = dL/dh_{T-1}: nothing flows in from the future.
        for k in 0..<(B * H) { dh[k] = 0 }
        for t in stride(from: T - 1, through: 0, by: -1) {
            let dt = d + t * B * D, ht = h + t * B * H, yt = y + t * B * O
            for k in 0..<(B * D) { dd[k] = 0 }
            if hasOutput(t) {
                // dz = 2/(n) (y - target) * (1 - y^2)                   (B, O)
                for b in 0..<B {
                    let target = X + (windows[b] + t + 1) * I
                    for o in 0..<O {
                        let v = yt[b * O + o]
                        dz[b * O + o] = scale * (v - target[o]) * (1 - v * v)
                    }
                }
                // dW_y += dz^T src ; db_y += sum_b dz ; dsrc += dz W_y
                let src = config.cell == .seed ? dt : ht
                let dsrc = config.cell == .seed ? dd : dh
                let srcStride = config.cell == .seed ? D : H
                for b in 0..<B {
                    let row = src + b * srcStride, drow = dsrc + b * srcStride
                    for o in 0..<O {
                        let g = dz[b * O + o]
                        gby[o] += g
                        let gw = gWy + o * F, w = Wy + o * F
                        for j in 0..<F {
                            gw[j] += g * row[j]
                            drow[j] += g * w[j]
                        }
                    }
                }
            }
            if needsHidden(t) {
                // da = dh * act'(h_t)                                   (B, H)
                for k in 0..<(B * H) { da[k] = dh[k] * act.derivative(output: ht[k]) }
                // dW_h += da^T d_t ; db_h += sum_b da ; dd += da W_h
                for b in 0..<B {
                    let row = dt + b * D, drow = dd + b * D
                    for i in 0..<H {
                        let g = da[b * H + i]
                        gbh[i] += g
                        let gw = gWh + i * D, w = Wh + i * D
                        for j in 0..<D {
                            gw[j] += g * row[j]
                            drow[j] += g * w[j]
                        }
                    }
                }
            }
            // dL/dh_{t-1} is the h-part of dd
            if t > 0 {
                for b in 0..<B {
                    for j in 0..<H { dh[b * H + j] = dd[b * D + j] }
                }
            }
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
                    var i = 0
                    while i < w.count {
                        let n = min(maxBatch, w.count - i)
                        body(forward(params: p, series: s, windows: UnsafeBufferPointer(rebasing: w[i..<(i + n)])), n)
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
