import Support

/// One named tensor: a row-major shape and its `Float` values (`values.count` = product of `shape`;
/// a scalar has shape `[]` and one value).
public struct TensorData: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// The safetensors file format (https://github.com/huggingface/safetensors), as written by
/// `safetensors.torch.save_file`:
///
/// - 8 bytes: little-endian `UInt64` header length `N`;
/// - `N` bytes: a UTF-8 JSON object mapping each tensor name to
///   `{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}` (offsets relative to the
///   first byte after the header), plus an optional `"__metadata__"` object of strings; the
///   Python library pads it with spaces to a multiple of 8 bytes;
/// - the data buffer: every tensor little-endian and row-major, contiguous, no gaps.
public enum SafeTensors {
    /// The largest header accepted (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000

    /// Encodes tensors (written as `F32`) and string metadata.
    ///
    /// Output matches the Python library byte for byte for `F32` tensors: compact JSON,
    /// `__metadata__` first (omitted when empty, keys sorted), then tensors sorted by name with
    /// contiguous offsets, the header padded with spaces to a multiple of 8 bytes.
    ///
    /// Preconditions (programming errors, not input errors): names are unique and not
    /// `__metadata__`; every dimension is non-negative; `values.count` equals the product of `shape`.
    public static func encode(tensors: [TensorData], metadata: [String: String] = [:]) -> [UInt8] {
        let sorted = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        for (k, t) in sorted.enumerated() {
            precondition(t.name != "__metadata__", "a tensor cannot be named __metadata__")
            precondition(k == 0 || sorted[k - 1].name != t.name, "duplicate tensor name \(t.name)")
            precondition(t.shape.allSatisfy { $0 >= 0 }, "negative dimension in \(t.name) \(t.shape)")
            precondition(
                t.shape.reduce(1, *) == t.values.count,
                "tensor \(t.name): shape \(t.shape) does not match \(t.values.count) values")
        }

        var header: [UInt8] = [0x7B]  // {
        var first = true
        func comma() {
            if !first { header.append(0x2C) }
            first = false
        }
        if !metadata.isEmpty {
            comma()
            appendJSONString("__metadata__", to: &header)
            header += Array(":{".utf8)
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (n, key) in keys.enumerated() {
                if n > 0 { header.append(0x2C) }
                appendJSONString(key, to: &header)
                header.append(0x3A)
                appendJSONString(metadata[key] ?? "", to: &header)
            }
            header.append(0x7D)
        }
        var offset = 0
        for t in sorted {
            comma()
            let size = t.values.count * 4
            appendJSONString(t.name, to: &header)
            let shape = t.shape.map(String.init).joined(separator: ",")
            header += Array(":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}".utf8)
            offset += size
        }
        header.append(0x7D)  // }
        while header.count % 8 != 0 { header.append(0x20) }

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        appendLittleEndian(UInt64(header.count), to: &out)
        out += header
        for t in sorted {
            for v in t.values { appendLittleEndian(v.bitPattern, to: &out) }
        }
        return out
    }

    /// Decodes a safetensors byte string. `source` (usually the path) prefixes error messages.
    ///
    /// Accepts `F32` and `F64` tensors (F64 is rounded to `Float`); any other dtype is rejected
    /// with a message saying so. Total: every input either decodes or throws; nothing is allocated
    /// beyond what the input's own size justifies.
    public static func decode(_ bytes: [UInt8], source: String) throws(CheckpointError) -> (
        tensors: [String: TensorData], metadata: [String: String]
    ) {
        func fail(_ reason: String) -> CheckpointError { .malformed(source: source, reason: reason) }

        guard bytes.count >= 8 else {
            throw fail(
                "the file has \(bytes.count) byte\(bytes.count == 1 ? "" : "s"), too few for the "
                    + "8-byte header length (empty or truncated file)")
        }
        var n: UInt64 = 0
        for k in 0..<8 { n |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard n <= UInt64(maxHeaderBytes) else {
            throw fail("the header length \(n) is absurd (more than \(maxHeaderBytes) bytes); the file is damaged or not a safetensors file")
        }
        let headerLength = Int(n)
        guard headerLength <= bytes.count - 8 else {
            throw fail(
                "the header length is \(headerLength) bytes but only \(bytes.count - 8) bytes follow "
                    + "the length field (truncated file?)")
        }
        let headerBytes = Array(bytes[8..<(8 + headerLength)])
        let dataStart = 8 + headerLength
        let dataCount = bytes.count - dataStart

        guard validUTF8(headerBytes) != nil else {
            throw fail("the header is not valid UTF-8")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(headerBytes)
        } catch {
            throw fail("the header is not valid JSON (\(error.message) at header byte \(error.offset))")
        }
        guard case .object(let members) = json else {
            throw fail("the header is \(json.kind), not a JSON object")
        }

        struct Entry {
            let name: String
            let shape: [Int]
            let bytesPerValue: Int
            let begin: Int
            let end: Int
        }
        /// Validates one tensor's header entry on its own.
        func entry(_ name: String, _ value: JSONValue) throws(CheckpointError) -> Entry {
            let t = "tensor \"\(name)\""
            guard case .object(let fields) = value else {
                throw fail("\(t) is described by \(value.kind), not an object")
            }
            func field(_ key: String) throws(CheckpointError) -> JSONValue {
                guard let v = fields.first(where: { $0.key == key })?.value else {
                    throw fail("\(t) has no \"\(key)\" field")
                }
                return v
            }
            guard case .string(let dtype) = try field("dtype") else {
                throw fail("\(t): \"dtype\" is not a string")
            }
            let bytesPerValue: Int
            switch dtype {
            case "F32": bytesPerValue = 4
            case "F64": bytesPerValue = 8
            case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
                "I16", "U16", "F16", "BF16", "I32", "U32", "I64", "U64", "C64":
                throw fail(
                    "\(t) has dtype \(dtype); only F32 and F64 are supported "
                        + "(in PyTorch, convert with model.float() before saving)")
            default:
                throw fail("\(t) has unknown dtype \"\(dtype)\"; only F32 and F64 are supported")
            }
            guard case .array(let dims) = try field("shape") else {
                throw fail("\(t): \"shape\" is not an array")
            }
            var shape: [Int] = []
            var elements = 1
            for d in dims {
                guard let k = d.integer, k >= 0 else {
                    throw fail("\(t): shape entries must be non-negative integers (found \(describe(d)))")
                }
                shape.append(k)
                let (product, overflow) = elements.multipliedReportingOverflow(by: k)
                guard !overflow else { throw fail("\(t): shape \(shape)... is impossibly large") }
                elements = product
            }
            guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2 else {
                throw fail("\(t): \"data_offsets\" must be an array of two integers [begin, end]")
            }
            guard let begin = offsets[0].integer, let end = offsets[1].integer, begin >= 0, end >= 0 else {
                throw fail(
                    "\(t): data_offsets must be non-negative integers (found [\(describe(offsets[0])), \(describe(offsets[1]))])")
            }
            guard begin <= end else {
                throw fail("\(t): data_offsets [\(begin), \(end)] end before they begin")
            }
            guard end <= dataCount else {
                throw fail(
                    "\(t): data_offsets [\(begin), \(end)] reach past the end of the data "
                        + "(\(dataCount) bytes follow the header; truncated file?)")
            }
            let (needed, overflow) = elements.multipliedReportingOverflow(by: bytesPerValue)
            guard !overflow, needed == end - begin else {
                throw fail(
                    "\(t): shape \(shape) of \(dtype) needs \(overflow ? "more than \(Int.max)" : "\(needed)") bytes "
                        + "but data_offsets [\(begin), \(end)] hold \(end - begin)")
            }
            return Entry(name: name, shape: shape, bytesPerValue: bytesPerValue, begin: begin, end: end)
        }

        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        var seen = Set<String>()
        for (name, value) in members {
            guard seen.insert(name).inserted else {
                throw fail("the header names \"\(name)\" twice")
            }
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw fail("__metadata__ is \(value.kind), not an object of strings")
                }
                for (key, v) in pairs {
                    guard case .string(let s) = v else {
                        throw fail("__metadata__ entry \"\(key)\" is \(v.kind), not a string")
                    }
                    guard metadata.updateValue(s, forKey: key) == nil else {
                        throw fail("__metadata__ names \"\(key)\" twice")
                    }
                }
                continue
            }
            entries.append(try entry(name, value))
        }


        // The tensors must tile the data buffer exactly, like the reference implementation checks.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var position = 0
        for e in entries {
            guard e.begin == position else {
                throw fail(
                    "tensor \"\(e.name)\" starts at data byte \(e.begin) but the previous tensor "
                        + "ends at \(position) (tensors overlap or leave a gap)")
            }
            position = e.end
        }
        guard position == dataCount else {
            throw fail(
                "the tensors cover \(position) bytes of data but \(dataCount) bytes follow the header "
                    + "(truncated or damaged file)")
        }

        var tensors: [String: TensorData] = [:]
        for e in entries {
            let count = (e.end - e.begin) / e.bytesPerValue
            var values = [Float](repeating: 0, count: count)
            var p = dataStart + e.begin
            if e.bytesPerValue == 4 {
                for k in 0..<count {
                    var u: UInt32 = 0
                    for j in 0..<4 { u |= UInt32(bytes[p + j]) << (8 * UInt32(j)) }
                    values[k] = Float(bitPattern: u)
                    p += 4
                }
            } else {
                for k in 0..<count {
                    var u: UInt64 = 0
                    for j in 0..<8 { u |= UInt64(bytes[p + j]) << (8 * UInt64(j)) }
                    values[k] = Float(Double(bitPattern: u))
                    p += 8
                }
            }
            tensors[e.name] = TensorData(name: e.name, shape: e.shape, values: values)
        }
        return (tensors, metadata)
    }

    /// Encodes and writes atomically (see ``AtomicFile/write(_:to:)``).
    public static func write(tensors: [TensorData], metadata: [String: String] = [:], to path: String)
        throws(CheckpointError)
    {
        try AtomicFile.write(encode(tensors: tensors, metadata: metadata), to: path)
    }

    /// Reads and decodes a file; errors name `path`.
    public static func read(path: String) throws(CheckpointError) -> (
        tensors: [String: TensorData], metadata: [String: String]
    ) {
        try decode(AtomicFile.read(path), source: path)
    }
}

/// A short rendering of a JSON value for messages.
private func describe(_ v: JSONValue) -> String {
    switch v {
    case .number(let text): return text.count > 24 ? String(text.prefix(24)) + "..." : text
    case .string(let s): return "\"\(s.count > 24 ? String(s.prefix(24)) + "..." : s)\""
    default: return v.kind
    }
}

func appendLittleEndian<T: FixedWidthInteger>(_ x: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
}
