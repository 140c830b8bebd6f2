import RNN

/// One `C (M, N) = A (M, K) · B (K, N)` product of the training step, `count` times per micro-batch.
public struct GemmShape: Sendable, Equatable, CustomStringConvertible {
    /// `forward`, `dW`, `dh`.
    public var name: String
    /// Rows of C.
    public var m: Int
    /// Columns of C.
    public var n: Int
    /// The inner dimension.
    public var k: Int
    /// `A` is stored transposed (`(K, M)` row-major).
    public var transA: Bool
    /// `B` is stored transposed (`(N, K)` row-major).
    public var transB: Bool
    /// Accumulate into C (`beta = 1`), as the weight gradient does.
    public var accumulate: Bool
    /// How many times one micro-batch does this product.
    public var count: Int

    public init(name: String, m: Int, n: Int, k: Int, transA: Bool, transB: Bool, accumulate: Bool, count: Int) {
        self.name = name
        self.m = m
        self.n = n
        self.k = k
        self.transA = transA
        self.transB = transB
        self.accumulate = accumulate
        self.count = count
    }

    /// `2·M·N·K` per product.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    public var description: String { "\(name) \(m)×\(n)×\(k)×\(count)" }
}

/// The floating-point work of one training sample (one window, forward and BPTT), counted as the
/// matrix products the model *needs* (`2·rows·cols` per matrix-vector product; activations, the
/// loss and the optimizer are O(H) and left out).
///
/// With `D = H + I`, `F` the output layer's fan-in (`D` for `seed`, `H` for `elman`), `S` the hidden
/// steps that feed something (`T − 1` for `seed`: the last `h` feeds nothing; `T` for `elman`) and
/// `L` the outputs in the loss (1 for `last`, `T` for `all`):
///
///     forward      2·H·D·S              h_t = act(W_h d_t + b_h)
///                + 2·O·F·L              y_t = tanh(W_y · + b_y)
///     dW           2·H·D·S + 2·O·F·L    dW_h += da_tᵀ d_t, dW_y += dzᵀ ·
///     dh           2·H·H·(S − 1)        dh_{t−1} = da_t W_h[:, :H]   (not into h_{−1} = 0)
///                + 2·O·H·L'             through W_y, for the L' outputs that read a non-zero h
///
/// For the reference model (seed, H=32, I=O=2, T=4, last): 17,552 FLOP per sample; for H=256:
/// 1,057,808. A kernel that also computes the unused `h_{T−1}`, the gradient into the inputs or into
/// `h_{−1}` does more work but gets no credit for it: the count is the same for every kernel, so
/// FLOP/s compares kernels. (PyTorch's eager loop computes all `T` hidden steps and `dd (B, D)`:
/// `6·H·D·T`, about 1.59 MFLOP at H=256, which is how the FLOP limit was put at 62,000
/// samples/s.)
public enum FlopCount {
    /// Hidden steps whose state feeds something: `S`.
    public static func hiddenSteps(_ c: ModelConfig) -> Int {
        c.cell == .seed ? max(0, c.seqLen - 1) : c.seqLen
    }

    /// Outputs in the loss: `L`.
    public static func outputs(_ c: ModelConfig) -> Int { c.loss == .last ? 1 : c.seqLen }

    /// Outputs whose input holds a hidden state that is not the constant `h_{−1} = 0`: `L'`.
    public static func outputsReadingHidden(_ c: ModelConfig) -> Int {
        let T = c.seqLen
        switch (c.cell, c.loss) {
        case (.elman, .last): return 1
        case (.elman, .all): return T
        case (.seed, .last): return T >= 2 ? 1 : 0
        case (.seed, .all): return max(0, T - 1)
        }
    }

    /// Forward FLOPs per sample.
    public static func forward(_ c: ModelConfig) -> Double {
        let H = Double(c.hiddenSize), D = Double(c.concatSize), O = Double(c.outputSize), F = Double(c.outputFanIn)
        return 2 * H * D * Double(hiddenSteps(c)) + 2 * O * F * Double(outputs(c))
    }

    /// Backward FLOPs per sample: weight gradients plus the gradient into earlier hidden states.
    public static func backward(_ c: ModelConfig) -> Double {
        let H = Double(c.hiddenSize), O = Double(c.outputSize)
        let S = hiddenSteps(c)
        return forward(c) + 2 * H * H * Double(max(0, S - 1)) + 2 * O * H * Double(outputsReadingHidden(c))
    }

    /// Forward plus backward FLOPs per sample.
    public static func perSample(_ c: ModelConfig) -> Double { forward(c) + backward(c) }

    /// The formula as text, for the report.
    public static let formula = "FLOP/sample = 2·H·D·S + 2·O·F·L (forward) + 2·H·D·S + 2·O·F·L (dW) + 2·H·H·(S−1) + 2·O·H·L' (dh); D = H+I, S = hidden steps that feed something (T−1 seed, T elman), L = outputs in the loss"

    /// The hidden layer's matrix products of one micro-batch of `batch` windows (row-major, as a
    /// batched kernel does them): `forward (B, H) = d (B, D) · W_hᵀ` and `dW_h (H, D) += daᵀ · d` for
    /// each of the `S` steps, `dh (B, H) = da · W_h[:, :H]` for `S − 1`. These shapes set the GEMM
    /// floor of target 2 (the output layer, `O = 2` wide, is not GEMM-shaped work).
    public static func gemmShapes(_ c: ModelConfig, batch: Int) -> [GemmShape] {
        let H = c.hiddenSize, D = c.concatSize, S = hiddenSteps(c)
        var shapes = [
            GemmShape(name: "forward", m: batch, n: H, k: D, transA: false, transB: true, accumulate: false, count: S),
            GemmShape(name: "dW", m: H, n: D, k: batch, transA: true, transB: false, accumulate: true, count: S),
        ]
        if S > 1 {
            shapes.append(GemmShape(name: "dh", m: batch, n: H, k: H, transA: false, transB: false, accumulate: false, count: S - 1))
        }
        return shapes
    }
}
