/// Which recurrent cell the model uses.
///
/// - `seed`: the reference cell of the blog post. With `d = [h_{t-1}, x_t]`:
///   `h_t = act(W_h d + b_h)`, `y_t = head(W_y d + b_y)` (output from the *previous* hidden state).
/// - `elman`: the textbook Elman cell. `h_t = act(W_h [h_{t-1}, x_t] + b_h)`, `y_t = head(W_y h_t + b_y)`.
/// `head` is ``OutputHead`` (tanh for the reference).
public enum Cell: String, Sendable, Codable, CaseIterable {
    case seed
    case elman
}

/// The hidden-state nonlinearity `act`.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case tanh
    case relu
}

/// The output nonlinearity `head` of `y_t = head(W_y src + b_y)`.
///
/// - `tanh`: the blog's head; outputs stay inside (-1, 1), so the data must too.
/// - `linear`: `y_t = W_y src + b_y`, for data of any range (same tensors, no squashing).
public enum OutputHead: String, Sendable, Codable, CaseIterable {
    case tanh
    case linear
}

/// Which outputs enter the mean squared error.
public enum LossKind: String, Sendable, Codable, CaseIterable {
    /// Only the last step's output against the point after the window (the reference task).
    case last
    /// Every step's output `y_t` against the point that follows `x_t`.
    case all
}

/// The shape and kind of one RNN. Everything the math needs; nothing about data or training.
public struct ModelConfig: Sendable, Codable, Equatable, Hashable {
    /// `I`: values per input point.
    public var inputSize: Int
    /// `H`: hidden units.
    public var hiddenSize: Int
    /// `O`: values per output point.
    public var outputSize: Int
    /// `T`: points per window.
    public var seqLen: Int
    public var cell: Cell
    public var activation: Activation
    public var loss: LossKind
    /// The output nonlinearity (`tanh`, the reference, or `linear`).
    public var head: OutputHead

    public init(
        inputSize: Int, hiddenSize: Int, outputSize: Int, seqLen: Int,
        cell: Cell = .seed, activation: Activation = .tanh, loss: LossKind = .last, head: OutputHead = .tanh
    ) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.outputSize = outputSize
        self.seqLen = seqLen
        self.cell = cell
        self.activation = activation
        self.loss = loss
        self.head = head
    }

    private enum CodingKeys: String, CodingKey {
        case inputSize, hiddenSize, outputSize, seqLen, cell, activation, loss, head
    }

    /// Decodes a configuration; one written before heads existed (no `head` key) has the tanh head.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            inputSize: try c.decode(Int.self, forKey: .inputSize), hiddenSize: try c.decode(Int.self, forKey: .hiddenSize),
            outputSize: try c.decode(Int.self, forKey: .outputSize), seqLen: try c.decode(Int.self, forKey: .seqLen),
            cell: try c.decode(Cell.self, forKey: .cell), activation: try c.decode(Activation.self, forKey: .activation),
            loss: try c.decode(LossKind.self, forKey: .loss),
            head: try c.decodeIfPresent(OutputHead.self, forKey: .head) ?? .tanh)
    }

    /// Width of the concatenation `d = [h, x]`: `H + I`.
    public var concatSize: Int { hiddenSize + inputSize }
    /// Fan-in of the output layer: `H + I` for `seed`, `H` for `elman`.
    public var outputFanIn: Int { cell == .seed ? concatSize : hiddenSize }

    /// Checks that every size is positive and sane; the message says which one is not.
    public func validate() throws(ModelConfigError) {
        func check(_ v: Int, _ name: String, max: Int) throws(ModelConfigError) {
            guard v >= 1 else { throw .invalid("\(name) must be at least 1 (got \(v))") }
            guard v <= max else { throw .invalid("\(name) must be at most \(max) (got \(v))") }
        }
        try check(inputSize, "input size", max: 1 << 16)
        try check(hiddenSize, "hidden size", max: 1 << 14)
        try check(outputSize, "output size", max: 1 << 16)
        try check(seqLen, "sequence length", max: 1 << 16)
    }
}

/// A `ModelConfig` that cannot describe a model.
public enum ModelConfigError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let m): return m }
    }
}

/// Where each named tensor lives inside the one contiguous parameter (or gradient) block.
///
/// Order and names follow the reference PyTorch module:
/// `get_ht.weight` (H, H+I), `get_ht.bias` (H), `get_yt.weight` (O, H+I) or (O, H), `get_yt.bias` (O).
public struct ParameterLayout: Sendable, Equatable {
    /// One named view: a range of the flat block and the row-major shape.
    public struct Tensor: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let range: Range<Int>
    }

    public let wh: Tensor  // get_ht.weight (H, H+I)
    public let bh: Tensor  // get_ht.bias   (H)
    public let wy: Tensor  // get_yt.weight (O, H+I) seed | (O, H) elman
    public let by: Tensor  // get_yt.bias   (O)

    /// Total number of scalars.
    public var count: Int { by.range.upperBound }
    /// The four views in canonical order.
    public var tensors: [Tensor] { [wh, bh, wy, by] }

    public init(_ c: ModelConfig) {
        let H = c.hiddenSize, D = c.concatSize, O = c.outputSize, F = c.outputFanIn
        var o = 0
        func next(_ name: String, _ shape: [Int]) -> Tensor {
            let n = shape.reduce(1, *)
            defer { o += n }
            return Tensor(name: name, shape: shape, range: o..<(o + n))
        }
        wh = next("get_ht.weight", [H, D])
        bh = next("get_ht.bias", [H])
        wy = next("get_yt.weight", [O, F])
        by = next("get_yt.bias", [O])
        // the kernels' table (`ck_parameter_layout`) is the layout; this is its named mirror (checked
        // against it by ParameterLayoutTests, not here: this runs once per step on the hot path)
    }
}
