import RNN

/// A model read from a file: its configuration, its parameters as one flat block in
/// `ParameterLayout` order, and the file's `__metadata__`.
public struct LoadedModel: Sendable, Equatable {
    public var config: ModelConfig
    /// `get_ht.weight`, `get_ht.bias`, `get_yt.weight`, `get_yt.bias`, flat row-major, in
    /// `ParameterLayout(config)` order.
    public var parameters: [Float]
    public var metadata: [String: String]

    public init(config: ModelConfig, parameters: [Float], metadata: [String: String]) {
        self.config = config
        self.parameters = parameters
        self.metadata = metadata
    }
}

/// The metadata keys that describe the model; `encodeModel` writes them, `decodeModel` reads them.
public enum ModelMetadataKey {
    public static let format = "format"
    public static let cell = "cell"
    public static let activation = "activation"
    public static let loss = "loss"
    public static let head = "head"
    public static let hidden = "hidden"
    public static let input = "input"
    public static let output = "output"
    public static let seqLen = "seq_len"
    /// The value of `format` in files written by ztrain.
    public static let formatValue = "ztrain"
}

/// Encodes a model as safetensors: the four tensors of `ParameterLayout(config)` under their
/// PyTorch names and shapes, and the configuration in `__metadata__` (`format`=`ztrain`, `cell`,
/// `activation`, `loss`, `hidden`, `input`, `output`, `seq_len`, and `head` unless it is tanh) on top of the caller's `metadata`
/// (the model keys win over caller keys of the same name).
///
/// Precondition: `parameters.count == ParameterLayout(config).count`.
public func encodeModel(parameters: [Float], config: ModelConfig, metadata: [String: String] = [:]) -> [UInt8] {
    let layout = ParameterLayout(config)
    precondition(
        parameters.count == layout.count,
        "\(parameters.count) parameters do not match the layout's \(layout.count)")
    let tensors = layout.tensors.map {
        TensorData(name: $0.name, shape: $0.shape, values: Array(parameters[$0.range]))
    }
    typealias K = ModelMetadataKey
    var meta = metadata
    meta[K.format] = K.formatValue
    meta[K.cell] = config.cell.rawValue
    meta[K.activation] = config.activation.rawValue
    meta[K.loss] = config.loss.rawValue
    // written only for a head other than the reference tanh, so tanh files stay as they were
    if config.head != .tanh { meta[K.head] = config.head.rawValue } else { meta.removeValue(forKey: K.head) }
    meta[K.hidden] = String(config.hiddenSize)
    meta[K.input] = String(config.inputSize)
    meta[K.output] = String(config.outputSize)
    meta[K.seqLen] = String(config.seqLen)
    return SafeTensors.encode(tensors: tensors, metadata: meta)
}

/// Decodes a model file written by ``encodeModel(parameters:config:metadata:)`` or by PyTorch's
/// `safetensors.torch.save_file(model.state_dict(), ...)` (F32 or F64).
///
/// The sizes come from the tensor shapes: `H` from `get_ht.bias`, `O` from `get_yt.bias`,
/// `I = cols(get_ht.weight) - H`, and the cell from `cols(get_yt.weight)` (`H+I`: seed, `H`: elman).
/// Metadata values, when present, must agree with the shapes. `seq_len`, `activation`, `loss` and
/// `head` come from the metadata; when a file does not record them they are taken from `expecting`, or
/// default to 4, tanh, last and tanh (a ztrain file without `head` has the tanh head).
///
/// Throws on a missing or unknown tensor, an inconsistent shape (naming the tensor, its shape and
/// the expected one), a non-finite value (naming the tensor), invalid metadata, and, when
/// `expecting` is given, on any difference from it (naming the differing settings and CLI flags,
/// e.g. `W.safetensors: hidden size is 16 but --hidden is 32`).
public func decodeModel(_ bytes: [UInt8], source: String, expecting: ModelConfig? = nil)
    throws(CheckpointError) -> LoadedModel
{
    let (tensors, metadata) = try SafeTensors.decode(bytes, source: source)
    func fail(_ reason: String) -> CheckpointError { .incompatible(source: source, reason: reason) }
    func shapeText(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

    // Exactly the four tensors of the reference module.
    let required = ["get_ht.weight", "get_ht.bias", "get_yt.weight", "get_yt.bias"]
    let expectedList = "get_ht.weight, get_ht.bias, get_yt.weight and get_yt.bias"
    if let missing = required.first(where: { tensors[$0] == nil }) {
        throw fail("missing tensor \(missing); an RNN model file holds \(expectedList)")
    }
    let unknown = tensors.keys.filter { !required.contains($0) }.sorted()
    if let extra = unknown.first, let t = tensors[extra] {
        throw fail(
            "unexpected tensor \(extra) with shape \(shapeText(t.shape))"
                + (unknown.count > 1 ? " (and \(unknown.count - 1) more)" : "")
                + "; an RNN model file holds only \(expectedList)")
    }
    guard let wh = tensors["get_ht.weight"], let bh = tensors["get_ht.bias"],
        let wy = tensors["get_yt.weight"], let by = tensors["get_yt.bias"]
    else { throw fail("missing tensor; an RNN model file holds \(expectedList)") }

    // Sizes from shapes.
    guard bh.shape.count == 1, bh.shape[0] >= 1 else {
        throw fail("tensor get_ht.bias has shape \(shapeText(bh.shape)) but expected [hidden size], a non-empty vector")
    }
    let H = bh.shape[0]
    guard by.shape.count == 1, by.shape[0] >= 1 else {
        throw fail("tensor get_yt.bias has shape \(shapeText(by.shape)) but expected [output size], a non-empty vector")
    }
    let O = by.shape[0]
    guard wh.shape.count == 2, wh.shape[0] == H, wh.shape[1] > H else {
        throw fail(
            "tensor get_ht.weight has shape \(shapeText(wh.shape)) but expected [\(H), \(H) + input size] "
                + "(hidden size \(H) from get_ht.bias)")
    }
    let I = wh.shape[1] - H
    let cell: Cell
    if wy.shape == [O, H + I] {
        cell = .seed
    } else if wy.shape == [O, H] {
        cell = .elman
    } else {
        throw fail(
            "tensor get_yt.weight has shape \(shapeText(wy.shape)) but expected [\(O), \(H + I)] (seed cell) "
                + "or [\(O), \(H)] (elman cell)")
    }

    // Metadata: must agree with the shapes when present; fills in what shapes cannot tell.
    typealias K = ModelMetadataKey
    func recordedInt(_ key: String, _ actual: Int, _ what: String) throws(CheckpointError) {
        guard let text = metadata[key] else { return }
        guard let v = Int(text) else { throw fail("metadata \(key) = \"\(text)\" is not an integer") }
        guard v == actual else {
            throw fail("metadata says \(what) \(v) but the tensors have \(what) \(actual) (damaged file?)")
        }
    }
    func recordedEnum<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws(CheckpointError) -> E?
    where E.RawValue == String {
        guard let text = metadata[key] else { return nil }
        guard let v = E(rawValue: text) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail("metadata \(key) = \"\(text)\" is not one of \(allowed)")
        }
        return v
    }
    try recordedInt(K.hidden, H, "hidden size")
    try recordedInt(K.input, I, "input size")
    try recordedInt(K.output, O, "output size")
    if let recorded = try recordedEnum(K.cell, Cell.self), recorded != cell {
        throw fail(
            "metadata says cell \(recorded.rawValue) but tensor get_yt.weight has shape "
                + "\(shapeText(wy.shape)), which is a \(cell.rawValue) cell (damaged file?)")
    }
    let seqLen: Int
    if let text = metadata[K.seqLen] {
        guard let v = Int(text), v >= 1 else {
            throw fail("metadata seq_len = \"\(text)\" is not a positive integer")
        }
        seqLen = v
    } else {
        seqLen = expecting?.seqLen ?? 4
    }
    let activation = try recordedEnum(K.activation, Activation.self) ?? expecting?.activation ?? .tanh
    let loss = try recordedEnum(K.loss, LossKind.self) ?? expecting?.loss ?? .last
    // ztrain writes `head` only when it is not tanh, so in its files no key means tanh
    let head = try recordedEnum(K.head, OutputHead.self) ?? (metadata[K.format] == K.formatValue ? .tanh : expecting?.head ?? .tanh)

    let config = ModelConfig(
        inputSize: I, hiddenSize: H, outputSize: O, seqLen: seqLen,
        cell: cell, activation: activation, loss: loss, head: head)
    do {
        try config.validate()
    } catch {
        throw fail("the model's \(error.description)")
    }

    // Assemble in layout order, checking every shape and value.
    let layout = ParameterLayout(config)
    var parameters: [Float] = []
    parameters.reserveCapacity(layout.count)
    for spec in layout.tensors {
        guard let t = tensors[spec.name] else { throw fail("missing tensor \(spec.name)") }
        guard t.shape == spec.shape, t.values.count == spec.range.count else {
            throw fail(
                "tensor \(spec.name) has shape \(shapeText(t.shape)) but expected \(shapeText(spec.shape))")
        }
        if let k = t.values.firstIndex(where: { !$0.isFinite }) {
            throw fail(
                "tensor \(spec.name) holds a non-finite value (\(t.values[k])) at flat index \(k); "
                    + "the model diverged or the file is damaged")
        }
        parameters += t.values
    }

    if let e = expecting {
        var differences: [String] = []
        if config.hiddenSize != e.hiddenSize { differences.append("hidden size is \(H) but --hidden is \(e.hiddenSize)") }
        if config.inputSize != e.inputSize { differences.append("input size is \(I) but --input is \(e.inputSize)") }
        if config.outputSize != e.outputSize { differences.append("output size is \(O) but --output is \(e.outputSize)") }
        if config.cell != e.cell { differences.append("cell is \(cell.rawValue) but --cell is \(e.cell.rawValue)") }
        if config.seqLen != e.seqLen {
            differences.append("sequence length is \(seqLen) but the configuration has \(e.seqLen)")
        }
        if config.activation != e.activation {
            differences.append("activation is \(activation.rawValue) but the configuration has \(e.activation.rawValue)")
        }
        if config.loss != e.loss {
            differences.append("loss is \(loss.rawValue) but the configuration has \(e.loss.rawValue)")
        }
        if config.head != e.head {
            differences.append("output head is \(head.rawValue) but --head is \(e.head.rawValue)")
        }
        if !differences.isEmpty { throw fail(differences.joined(separator: "; ")) }
    }
    return LoadedModel(config: config, parameters: parameters, metadata: metadata)
}

/// Encodes a model and writes it atomically to `path`.
public func saveModel(
    parameters: [Float], config: ModelConfig, metadata: [String: String] = [:], to path: String
) throws(CheckpointError) {
    try AtomicFile.write(encodeModel(parameters: parameters, config: config, metadata: metadata), to: path)
}

/// Reads and decodes the model file at `path` (see ``decodeModel(_:source:expecting:)``).
///
/// Only a regular file is read, and with `expecting` only one of at most ``modelFileLimit(_:)``
/// bytes (a larger file cannot hold that model).
public func loadModel(path: String, expecting: ModelConfig? = nil) throws(CheckpointError) -> LoadedModel {
    let limit = expecting.map(modelFileLimit) ?? AtomicFile.defaultReadLimit
    return try decodeModel(AtomicFile.read(path, maxBytes: limit), source: path, expecting: expecting)
}

/// The largest model file that can hold a model of `config`: its tensors in Float64 (PyTorch may
/// save them so) and 16 MiB of header.
public func modelFileLimit(_ config: ModelConfig) -> Int {
    8 + (16 << 20) + 8 * ParameterLayout(config).count
}
