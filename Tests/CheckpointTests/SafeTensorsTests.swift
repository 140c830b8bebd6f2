import Foundation
import Testing

@testable import Checkpoint

@Suite struct SafeTensorsFormatTests {
    /// Exactly what `safetensors.numpy.save({"a": np.array([1.0, 2.0], np.float32)})` writes.
    static let pythonTiny: [UInt8] =
        [0x38, 0, 0, 0, 0, 0, 0, 0]  // header length 56
        + Array(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8)  // 54 bytes
        + [0x20, 0x20]  // padding to 56
        + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]  // 1.0, 2.0 little-endian

    /// `save({"w": [[1,2,3],[4,5,6]], "b": [0.5]} (float32), metadata={"format": "pt"})`.
    static let pythonWithMetadata: [UInt8] = rawSafeTensors(
        header: #"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[4,28]}}"#,
        data: le32([0.5, 1, 2, 3, 4, 5, 6]))

    @Test func decodesPythonBytes() throws {
        #expect(Self.pythonTiny.count == 8 + 56 + 8)
        let (tensors, metadata) = try SafeTensors.decode(Self.pythonTiny, source: "tiny.safetensors")
        #expect(metadata.isEmpty)
        #expect(tensors.count == 1)
        #expect(tensors["a"] == TensorData(name: "a", shape: [2], values: [1, 2]))

        let (t2, m2) = try SafeTensors.decode(Self.pythonWithMetadata, source: "m.safetensors")
        #expect(m2 == ["format": "pt"])
        #expect(t2["w"] == TensorData(name: "w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]))
        #expect(t2["b"] == TensorData(name: "b", shape: [1], values: [0.5]))
    }

    @Test func encoderIsByteIdenticalToPython() {
        #expect(SafeTensors.encode(tensors: [TensorData(name: "a", shape: [2], values: [1, 2])]) == Self.pythonTiny)
        let w = TensorData(name: "w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = TensorData(name: "b", shape: [1], values: [0.5])
        #expect(SafeTensors.encode(tensors: [w, b], metadata: ["format": "pt"]) == Self.pythonWithMetadata)
        // Scalars and empty tensors, as Python writes them.
        let expected = rawSafeTensors(
            header: #"{"e":{"dtype":"F32","shape":[0,2],"data_offsets":[0,0]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#,
            data: le32([3]))
        let encoded = SafeTensors.encode(tensors: [
            TensorData(name: "s", shape: [], values: [3]), TensorData(name: "e", shape: [0, 2], values: []),
        ])
        #expect(encoded == expected)
    }

    @Test func decodesF64() throws {
        // `save({"d": np.array([1.5, -2.0], np.float64)})`
        let bytes = rawSafeTensors(
            header: #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#, data: le64([1.5, -2.0]))
        #expect(bytes[0] == 0x38 && bytes[8 + 55] == 0x20)
        let (tensors, _) = try SafeTensors.decode(bytes, source: "d.safetensors")
        #expect(tensors["d"] == TensorData(name: "d", shape: [2], values: [1.5, -2]))
        // Rounded to the nearest Float.
        let third = rawSafeTensors(
            header: #"{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, data: le64([1.0 / 3.0]))
        #expect(try SafeTensors.decode(third, source: "x").tensors["d"]?.values == [Float(1.0 / 3.0)])
    }

    @Test func roundTripWithMetadataEscapes() throws {
        let metadata = ["quote\"key": "line\nbreak\ttab\u{1}é", "empty": "", "format": "pt"]
        let tensors = [
            TensorData(name: "x.weight", shape: [3, 2], values: [1, -0.0, .pi, .leastNormalMagnitude / 4, -3e38, 0.1]),
            TensorData(name: "nan", shape: [2], values: [.nan, .infinity]),
            TensorData(name: "ünï", shape: [1, 1, 1], values: [7]),
        ]
        let bytes = SafeTensors.encode(tensors: tensors, metadata: metadata)
        let (decoded, m) = try SafeTensors.decode(bytes, source: "rt")
        #expect(m == metadata)
        #expect(decoded.count == 3)
        for t in tensors {
            let d = try #require(decoded[t.name])
            #expect(d.shape == t.shape)
            #expect(d.values.map(\.bitPattern) == t.values.map(\.bitPattern))
        }
        // serde_json's escaping of the metadata.
        let header = String(decoding: bytes[8..<(8 + Int(bytes[0]) + 256 * Int(bytes[1]))], as: UTF8.self)
        #expect(header.contains(#""line\nbreak\ttab\u0001é""#))
        #expect(header.contains(#""quote\"key""#))
    }

    @Test func headerIsValidJSONAnd8Aligned() throws {
        for count in 0..<20 {
            let t = TensorData(name: String(repeating: "n", count: count), shape: [count], values: [Float](repeating: 1, count: count))
            let bytes = SafeTensors.encode(tensors: [t], metadata: count % 2 == 0 ? [:] : ["k": String(repeating: "v", count: count)])
            var n = 0
            for k in 0..<8 { n |= Int(bytes[k]) << (8 * k) }
            #expect(n % 8 == 0)
            #expect(bytes.count == 8 + n + 4 * count)
            let object = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)]))
            let dict = try #require(object as? [String: Any])
            let entry = try #require(dict[t.name] as? [String: Any])
            #expect(entry["dtype"] as? String == "F32")
            #expect(entry["shape"] as? [Int] == [count])
            #expect(entry["data_offsets"] as? [Int] == [0, 4 * count])
        }
    }
}

@Suite struct SafeTensorsMalformedTests {
    private func message(_ bytes: [UInt8]) -> String? {
        checkpointMessage { try SafeTensors.decode(bytes, source: "f.safetensors") }
    }
    private func message(header: String, data: [UInt8] = []) -> String? {
        message(rawSafeTensors(header: header, data: data))
    }

    @Test func tooShortAndBadLengths() {
        #expect(
            message([])
                == "f.safetensors: not a valid safetensors file: the file has 0 bytes, too few for the 8-byte header length (empty or truncated file)")
        #expect(message([1, 0, 0]) != nil)
        #expect(
            message([0, 0, 0, 0, 0, 0, 0, 0x80])
                == "f.safetensors: not a valid safetensors file: the header length 9223372036854775808 is absurd (more than 100000000 bytes); the file is damaged or not a safetensors file")
        #expect(message([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]) != nil)
        #expect(
            message([16, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x7D])
                == "f.safetensors: not a valid safetensors file: the header length is 16 bytes but only 2 bytes follow the length field (truncated file?)")
        // Just under the absurd limit but far beyond the file.
        #expect(message([0x00, 0xE1, 0xF5, 0x05, 0, 0, 0, 0])?.contains("only 0 bytes follow") == true)
    }

    @Test func badJSON() {
        #expect(message(header: "{")?.contains("the header is not valid JSON") == true)
        #expect(message(header: "nope")?.contains("the header is not valid JSON") == true)
        #expect(message(header: "[1,2]") == "f.safetensors: not a valid safetensors file: the header is an array, not a JSON object")
        #expect(message(header: #"{"a":1,}"#)?.contains("not valid JSON") == true)
        #expect(message(rawSafeTensors(header: "", data: [])) != nil)
        #expect(message(header: String(repeating: "[", count: 10_000))?.contains("nested more than 64 levels") == true)
        #expect(message(rawSafeTensors(header: "{}", data: [0xFF], pad: false))?.contains("the tensors cover 0 bytes of data but 1 bytes follow") == true)
        // Invalid UTF-8 inside the header.
        var bad = rawSafeTensors(header: #"{"a":"xx"}"#, data: [])
        bad[14] = 0xC3
        #expect(message(bad) == "f.safetensors: not a valid safetensors file: the header is not valid UTF-8")
    }

    @Test func emptyHeaderObjectIsAnEmptyFile() throws {
        let (t, m) = try SafeTensors.decode(rawSafeTensors(header: "{}", data: []), source: "e")
        #expect(t.isEmpty && m.isEmpty)
    }

    @Test func badTensorEntries() {
        let p = "f.safetensors: not a valid safetensors file: "
        #expect(message(header: #"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, data: le32([1])) == p + #"tensor "a" has no "dtype" field"#)
        #expect(message(header: #"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, data: le32([1])) == p + #"tensor "a" has no "shape" field"#)
        #expect(message(header: #"{"a":{"dtype":"F32","shape":[1]}}"#, data: le32([1])) == p + #"tensor "a" has no "data_offsets" field"#)
        #expect(message(header: #"{"a":[1]}"#) == p + #"tensor "a" is described by an array, not an object"#)
        #expect(
            message(header: #"{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}"#, data: [0, 0])
                == p + #"tensor "a" has dtype BF16; only F32 and F64 are supported (in PyTorch, convert with model.float() before saving)"#)
        #expect(
            message(header: #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,2]}}"#, data: [0, 0])
                == p + #"tensor "a" has unknown dtype "Q7"; only F32 and F64 are supported"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: le32([1]))
                == p + #"tensor "a": shape entries must be non-negative integers (found -1)"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, data: le32([1]))
                == p + #"tensor "a": shape entries must be non-negative integers (found 1.0)"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#, data: le32([1]))?
                .contains("shape entries must be non-negative integers") == true)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#, data: le32([1]))?
                .contains("is impossibly large") == true)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,4]}}"#, data: le32([1]))?
                .contains("needs more than") == true)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: le32([1]))
                == p + #"tensor "a": shape [2] of F32 needs 8 bytes but data_offsets [0, 4] hold 4"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, data: le32([1]))
                == p + #"tensor "a": data_offsets [0, 8] reach past the end of the data (4 bytes follow the header; truncated file?)"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: le32([1]))
                == p + #"tensor "a": data_offsets [4, 0] end before they begin"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: le32([1]))
                == p + #"tensor "a": "data_offsets" must be an array of two integers [begin, end]"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: le32([1]))
                == p + #"tensor "a": data_offsets must be non-negative integers (found [-4, 0])"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: le32([1]))
                == p + #"the header names "a" twice"#)
        #expect(message(header: #"{"__metadata__":{"k":1}}"#) == p + #"__metadata__ entry "k" is a number, not a string"#)
        #expect(message(header: #"{"__metadata__":[]}"#) == p + "__metadata__ is an array, not an object of strings")
    }

    @Test func overlapsAndGaps() {
        let p = "f.safetensors: not a valid safetensors file: "
        #expect(
            message(
                header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                data: le32([1]))
                == p + #"tensor "b" starts at data byte 0 but the previous tensor ends at 4 (tensors overlap or leave a gap)"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: le32([1, 2]))
                == p + #"tensor "a" starts at data byte 4 but the previous tensor ends at 0 (tensors overlap or leave a gap)"#)
        #expect(
            message(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: le32([1, 2]))
                == p + "the tensors cover 4 bytes of data but 8 bytes follow the header (truncated or damaged file)")
    }

    @Test func everyTruncationThrows() throws {
        let model = SafeTensorsFormatTests.pythonWithMetadata
        for n in 0..<model.count {
            #expect(throws: CheckpointError.self, "prefix of \(n) bytes") {
                try SafeTensors.decode(Array(model[0..<n]), source: "t")
            }
        }
        #expect(throws: Never.self) { try SafeTensors.decode(model, source: "t") }
    }

    @Test func randomGarbageNeverTraps() {
        var rng = TestRNG(state: 12345)
        let tokens = [
            "{", "}", "[", "]", ",", ":", "\"", "\"a\"", "\"dtype\"", "\"F32\"", "\"F64\"", "\"shape\"",
            "\"data_offsets\"", "\"__metadata__\"", "0", "1", "4", "-1", "8", "1e9", "99999999999999999999",
            " ", "true", "null", "\\u", "\\", "\"\\ud800\"", "1.5",
        ]
        var decoded = 0
        for _ in 0..<3000 {
            let bytes: [UInt8]
            switch rng.below(3) {
            case 0:  // raw garbage
                bytes = (0..<rng.below(80)).map { _ in rng.byte() }
            case 1:  // a plausible length, then garbage
                let body = (0..<rng.below(80)).map { _ in rng.byte() }
                let n = rng.below(body.count + 3)
                bytes = [UInt8(n), 0, 0, 0, 0, 0, 0, 0] + body
            default:  // JSON-ish token soup with a correct length, then some data
                let header = (0..<rng.below(40)).map { _ in tokens[rng.below(tokens.count)] }.joined()
                bytes = rawSafeTensors(header: header, data: (0..<rng.below(24)).map { _ in rng.byte() }, pad: rng.below(2) == 0)
            }
            if (try? SafeTensors.decode(bytes, source: "g")) != nil { decoded += 1 }
        }
        #expect(decoded < 3000)  // reached the end without trapping
    }

    @Test func randomMutationsNeverTrap() throws {
        let config = ModelFileTestData.config(.seed)
        let valid = encodeModel(parameters: ModelFileTestData.parameters(for: config), config: config, metadata: ["run": "x"])
        var rng = TestRNG(state: 777)
        var outcomes = (ok: 0, failed: 0)
        func attempt(_ bytes: [UInt8]) {
            if (try? decodeModel(bytes, source: "m")) != nil { outcomes.ok += 1 } else { outcomes.failed += 1 }
        }
        // Every position, three kinds of change.
        for k in 0..<valid.count {
            for change in [{ (b: UInt8) in b ^ 0x01 }, { (b: UInt8) in b ^ 0x80 }, { (_: UInt8) in 0xFF }] {
                var m = valid
                m[k] = change(m[k])
                attempt(m)
            }
        }
        // Random single- and multi-byte mutations.
        for _ in 0..<3000 {
            var m = valid
            for _ in 0..<(1 + rng.below(3)) { m[rng.below(m.count)] = rng.byte() }
            attempt(m)
        }
        #expect(outcomes.failed > 0)
        #expect(outcomes.ok > 0)  // changes inside float data still decode
    }
}
