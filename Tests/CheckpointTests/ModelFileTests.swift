import Foundation
import RNN
import Testing

@testable import Checkpoint

enum ModelFileTestData {
    static func config(_ cell: Cell, activation: Activation = .tanh, loss: LossKind = .last, seqLen: Int = 4) -> ModelConfig {
        ModelConfig(inputSize: 2, hiddenSize: 3, outputSize: 2, seqLen: seqLen, cell: cell, activation: activation, loss: loss)
    }

    /// Distinct values, including awkward ones (negative zero, subnormal, extremes).
    static func parameters(for config: ModelConfig) -> [Float] {
        let special: [Float] = [-0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -1e-20, 0.1]
        return (0..<ParameterLayout(config).count).map { i in
            i < special.count ? special[i] : Float(i) * 0.37 - 2.5
        }
    }

    /// A file as PyTorch's `save_file(model.state_dict())` writes it: the four tensors, no metadata.
    static func pytorchFile(_ config: ModelConfig, replacing name: String? = nil, with replacement: TensorData? = nil, extra: [TensorData] = []) -> [UInt8] {
        let layout = ParameterLayout(config)
        let p = parameters(for: config)
        var tensors = layout.tensors.map { TensorData(name: $0.name, shape: $0.shape, values: Array(p[$0.range])) }
        if let name {
            tensors.removeAll { $0.name == name }
            if let replacement { tensors.append(replacement) }
        }
        return SafeTensors.encode(tensors: tensors + extra)
    }
}

@Suite struct ModelFileTests {
    typealias D = ModelFileTestData

    @Test(arguments: [Cell.seed, Cell.elman])
    func roundTripIsBitExact(cell: Cell) throws {
        let config = D.config(cell, activation: .relu, loss: .all, seqLen: 7)
        let parameters = D.parameters(for: config)
        let bytes = encodeModel(parameters: parameters, config: config, metadata: ["epoch": "12", "note": "hi"])
        let loaded = try decodeModel(bytes, source: "W.safetensors")
        #expect(loaded.config == config)
        #expect(loaded.parameters.map(\.bitPattern) == parameters.map(\.bitPattern))
        #expect(
            loaded.metadata == [
                "epoch": "12", "note": "hi", "format": "ztrain", "cell": cell.rawValue, "activation": "relu",
                "loss": "all", "hidden": "3", "input": "2", "output": "2", "seq_len": "7",
            ])
        // Names and shapes as in the PyTorch module.
        let (tensors, _) = try SafeTensors.decode(bytes, source: "W.safetensors")
        #expect(tensors["get_ht.weight"]?.shape == [3, 5])
        #expect(tensors["get_ht.bias"]?.shape == [3])
        #expect(tensors["get_yt.weight"]?.shape == (cell == .seed ? [2, 5] : [2, 3]))
        #expect(tensors["get_yt.bias"]?.shape == [2])
        #expect(tensors["get_ht.weight"]?.values.first?.bitPattern == (-0.0 as Float).bitPattern)
        // With the matching expectation it loads too.
        #expect(try decodeModel(bytes, source: "W", expecting: config) == loaded)
    }

    /// The head lives in the metadata (same tensors): `linear` is written and read back; a file without the
    /// key (any tanh file, or one from PyTorch) has the tanh head; a head other than `expecting`'s is named.
    @Test func outputHeadRoundTrips() throws {
        var c = ModelFileTestData.config(.elman)
        c.head = .linear
        let p = ModelFileTestData.parameters(for: c)
        let bytes = encodeModel(parameters: p, config: c)
        let loaded = try decodeModel(bytes, source: "m")
        #expect(loaded.config == c && loaded.metadata["head"] == "linear" && loaded.parameters == p)
        let tanhFile = encodeModel(parameters: p, config: ModelFileTestData.config(.elman))
        #expect(try decodeModel(tanhFile, source: "m").config.head == .tanh)
        #expect(try decodeModel(tanhFile, source: "m").metadata["head"] == nil)
        #expect(throws: CheckpointError.self) { try decodeModel(tanhFile, source: "m", expecting: c) }
        // a configuration written before heads existed decodes with the tanh head
        let old = #"{"inputSize":2,"hiddenSize":3,"outputSize":2,"seqLen":4,"cell":"seed","activation":"tanh","loss":"last"}"#
        #expect(try JSONDecoder().decode(ModelConfig.self, from: Data(old.utf8)).head == .tanh)
    }

    @Test func modelKeysOverrideCallerKeys() throws {
        let config = D.config(.seed)
        let bytes = encodeModel(parameters: D.parameters(for: config), config: config, metadata: ["hidden": "99", "format": "x"])
        let loaded = try decodeModel(bytes, source: "W")
        #expect(loaded.metadata["hidden"] == "3")
        #expect(loaded.metadata["format"] == "ztrain")
    }

    @Test(arguments: [Cell.seed, Cell.elman])
    func loadsPyTorchFileWithoutMetadata(cell: Cell) throws {
        let config = D.config(cell)
        let loaded = try decodeModel(D.pytorchFile(config), source: "torch.safetensors")
        #expect(loaded.config == ModelConfig(inputSize: 2, hiddenSize: 3, outputSize: 2, seqLen: 4, cell: cell, activation: .tanh, loss: .last))
        #expect(loaded.parameters == D.parameters(for: config))
        #expect(loaded.metadata.isEmpty)
        // Settings the file does not record come from the expectation.
        let wanted = D.config(cell, activation: .relu, loss: .all, seqLen: 9)
        #expect(try decodeModel(D.pytorchFile(config), source: "t", expecting: wanted).config == wanted)
    }

    @Test func loadsF64PyTorchFile() throws {
        // H = 1, I = 1, O = 1, seed cell, saved in float64; tensors sorted by name as Python does.
        let header =
            #"{"get_ht.bias":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"#
            + #""get_ht.weight":{"dtype":"F64","shape":[1,2],"data_offsets":[8,24]},"#
            + #""get_yt.bias":{"dtype":"F64","shape":[1],"data_offsets":[24,32]},"#
            + #""get_yt.weight":{"dtype":"F64","shape":[1,2],"data_offsets":[32,48]}}"#
        let bytes = rawSafeTensors(header: header, data: le64([0.5, 1.25, -2, 0.1, 3, 4]))
        let loaded = try decodeModel(bytes, source: "d.safetensors")
        #expect(loaded.config == ModelConfig(inputSize: 1, hiddenSize: 1, outputSize: 1, seqLen: 4, cell: .seed))
        // Layout order: get_ht.weight, get_ht.bias, get_yt.weight, get_yt.bias.
        #expect(loaded.parameters == [1.25, -2, 0.5, 3, 4, Float(0.1)])
    }

    @Test func missingAndUnknownTensors() {
        let config = D.config(.seed)
        #expect(
            checkpointMessage { try decodeModel(D.pytorchFile(config, replacing: "get_yt.bias"), source: "W.safetensors") }
                == "W.safetensors: missing tensor get_yt.bias; an RNN model file holds get_ht.weight, get_ht.bias, get_yt.weight and get_yt.bias")
        #expect(
            checkpointMessage {
                try decodeModel(D.pytorchFile(config, extra: [TensorData(name: "fc.weight", shape: [2, 2], values: [1, 2, 3, 4])]), source: "W.safetensors")
            }
                == "W.safetensors: unexpected tensor fc.weight with shape [2, 2]; an RNN model file holds only get_ht.weight, get_ht.bias, get_yt.weight and get_yt.bias")
        #expect(
            checkpointMessage { try decodeModel(SafeTensors.encode(tensors: []), source: "W") }
                == "W: missing tensor get_ht.weight; an RNN model file holds get_ht.weight, get_ht.bias, get_yt.weight and get_yt.bias")
    }

    @Test func inconsistentShapesNameTheTensor() {
        let config = D.config(.seed)  // H 3, I 2, O 2
        func msg(_ name: String, _ shape: [Int]) -> String? {
            let t = TensorData(name: name, shape: shape, values: [Float](repeating: 0.5, count: shape.reduce(1, *)))
            return checkpointMessage { try decodeModel(D.pytorchFile(config, replacing: name, with: t), source: "W.safetensors") }
        }
        #expect(msg("get_yt.weight", [2, 4]) == "W.safetensors: tensor get_yt.weight has shape [2, 4] but expected [2, 5] (seed cell) or [2, 3] (elman cell)")
        #expect(msg("get_yt.weight", [3, 5]) == "W.safetensors: tensor get_yt.weight has shape [3, 5] but expected [2, 5] (seed cell) or [2, 3] (elman cell)")
        #expect(msg("get_ht.weight", [4, 5]) == "W.safetensors: tensor get_ht.weight has shape [4, 5] but expected [3, 3 + input size] (hidden size 3 from get_ht.bias)")
        #expect(msg("get_ht.weight", [3, 3]) == "W.safetensors: tensor get_ht.weight has shape [3, 3] but expected [3, 3 + input size] (hidden size 3 from get_ht.bias)")
        #expect(msg("get_ht.weight", [15]) == "W.safetensors: tensor get_ht.weight has shape [15] but expected [3, 3 + input size] (hidden size 3 from get_ht.bias)")
        #expect(msg("get_ht.bias", [3, 1]) == "W.safetensors: tensor get_ht.bias has shape [3, 1] but expected [hidden size], a non-empty vector")
        #expect(msg("get_yt.bias", [0]) == "W.safetensors: tensor get_yt.bias has shape [0] but expected [output size], a non-empty vector")
    }

    @Test func nonFiniteValuesNameTheTensor() {
        let config = D.config(.elman)
        var p = D.parameters(for: config)
        let layout = ParameterLayout(config)
        p[layout.wy.range.lowerBound + 1] = .nan
        #expect(
            checkpointMessage { try decodeModel(encodeModel(parameters: p, config: config), source: "W.safetensors") }
                == "W.safetensors: tensor get_yt.weight holds a non-finite value (nan) at flat index 1; the model diverged or the file is damaged")
        p = D.parameters(for: config)
        p[layout.bh.range.lowerBound] = -.infinity
        #expect(
            checkpointMessage { try decodeModel(encodeModel(parameters: p, config: config), source: "W") }?
                .hasPrefix("W: tensor get_ht.bias holds a non-finite value (-inf) at flat index 0") == true)
    }

    @Test func expectedConfigMismatchSaysWhatDiffers() {
        let file = encodeModel(parameters: D.parameters(for: D.config(.seed)), config: D.config(.seed))
        func msg(_ e: ModelConfig) -> String? { checkpointMessage { try decodeModel(file, source: "W.safetensors", expecting: e) } }
        var e = D.config(.seed)
        e.hiddenSize = 32
        #expect(msg(e) == "W.safetensors: hidden size is 3 but --hidden is 32")
        e = D.config(.elman)
        #expect(msg(e) == "W.safetensors: cell is seed but --cell is elman")
        e = D.config(.seed)
        e.inputSize = 5
        e.outputSize = 1
        #expect(msg(e) == "W.safetensors: input size is 2 but --input is 5; output size is 2 but --output is 1")
        e = D.config(.seed, activation: .relu, loss: .all, seqLen: 8)
        #expect(
            msg(e)
                == "W.safetensors: sequence length is 4 but the configuration has 8; activation is tanh but the configuration has relu; loss is last but the configuration has all")
        // A PyTorch file records no seq_len/activation/loss, so only the sizes can differ.
        #expect(
            checkpointMessage { try decodeModel(D.pytorchFile(D.config(.seed)), source: "t", expecting: ModelConfig(inputSize: 2, hiddenSize: 16, outputSize: 2, seqLen: 10, activation: .relu)) }
                == "t: hidden size is 3 but --hidden is 16")
    }

    @Test func metadataMustAgreeWithShapes() {
        let config = D.config(.seed)
        let layout = ParameterLayout(config)
        let p = D.parameters(for: config)
        let tensors = layout.tensors.map { TensorData(name: $0.name, shape: $0.shape, values: Array(p[$0.range])) }
        func msg(_ metadata: [String: String]) -> String? {
            checkpointMessage { try decodeModel(SafeTensors.encode(tensors: tensors, metadata: metadata), source: "W") }
        }
        #expect(msg(["hidden": "4"]) == "W: metadata says hidden size 4 but the tensors have hidden size 3 (damaged file?)")
        #expect(msg(["input": "two"]) == "W: metadata input = \"two\" is not an integer")
        #expect(msg(["cell": "elman"]) == "W: metadata says cell elman but tensor get_yt.weight has shape [2, 5], which is a seed cell (damaged file?)")
        #expect(msg(["cell": "lstm"]) == "W: metadata cell = \"lstm\" is not one of seed, elman")
        #expect(msg(["activation": "gelu"]) == "W: metadata activation = \"gelu\" is not one of tanh, relu")
        #expect(msg(["loss": "mse"]) == "W: metadata loss = \"mse\" is not one of last, all")
        #expect(msg(["seq_len": "0"]) == "W: metadata seq_len = \"0\" is not a positive integer")
        #expect(msg(["seq_len": "9", "activation": "relu", "format": "pt"]) == nil)
    }

    @Test func sizesBeyondModelConfigLimitsAreRejected() {
        // I = 70000 exceeds ModelConfig's input limit (65536); H = O = 1 keeps the file small.
        let i = 70_000
        let file = SafeTensors.encode(tensors: [
            TensorData(name: "get_ht.weight", shape: [1, 1 + i], values: [Float](repeating: 0, count: 1 + i)),
            TensorData(name: "get_ht.bias", shape: [1], values: [0]),
            TensorData(name: "get_yt.weight", shape: [1, 1], values: [0]),
            TensorData(name: "get_yt.bias", shape: [1], values: [0]),
        ])
        #expect(checkpointMessage { try decodeModel(file, source: "W") } == "W: the model's input size must be at most 65536 (got 70000)")
    }

    @Test func saveAndLoadFiles() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/W.safetensors"
            let config = D.config(.elman, seqLen: 6)
            let p = D.parameters(for: config)
            try saveModel(parameters: p, config: config, metadata: ["step": "5"], to: path)
            let loaded = try loadModel(path: path, expecting: config)
            #expect(loaded.config == config)
            #expect(loaded.parameters.map(\.bitPattern) == p.map(\.bitPattern))
            #expect(loaded.metadata["step"] == "5")
            let missing = dir + "/nope.safetensors"
            #expect(checkpointMessage { try loadModel(path: missing) } == "cannot read \(missing): No such file or directory")
            var e = config
            e.hiddenSize = 32
            #expect(checkpointMessage { try loadModel(path: path, expecting: e) } == "\(path): hidden size is 3 but --hidden is 32")
            // Generic tensors too.
            try SafeTensors.write(tensors: [TensorData(name: "m", shape: [2], values: [1, 2])], metadata: ["k": "v"], to: dir + "/opt.safetensors")
            let (t, m) = try SafeTensors.read(path: dir + "/opt.safetensors")
            #expect(t["m"]?.values == [1, 2] && m == ["k": "v"])
        }
    }
}
