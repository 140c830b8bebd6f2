import Support

/// The small subset of JSON handling that safetensors headers need: a strict parser with a depth
/// limit (total on every input: it returns an error, never traps) and a serde_json-compatible
/// string writer.
///
/// This is the one place ztrain does not use `JSONDecoder`/`JSONEncoder` (``JSONStyle``): a
/// safetensors file may come from anywhere, and its header decides how many bytes are read and where,
/// so it is parsed strictly (duplicate keys, trailing bytes, deep nesting, bad escapes and invalid
/// UTF-8 are errors; `JSONDecoder` keeps the last of duplicate keys and knows no depth limit), and
/// written byte for byte as the format's reference library (serde_json) writes it, so that model
/// files keep their bytes whatever `JSONEncoder`'s escaping and number formatting do.
indirect enum JSONValue: Equatable {
    /// Members in file order (duplicates kept, so callers can reject them).
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number's text exactly as written.
    case number(String)
    case bool(Bool)
    case null

    static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// A short name of the kind of value, for messages.
    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The value as an `Int` when it is a number written as an integer that fits.
    var integer: Int? {
        guard case .number(let text) = self else { return nil }
        let digits = text.utf8.first == 0x2D ? text.utf8.dropFirst() : text.utf8[...]
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}

struct JSONParseError: Error {
    let offset: Int
    let message: String
}

/// Parses one JSON value surrounded by optional whitespace.
struct JSONParser {
    static let maxDepth = 64

    private let b: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { b = bytes }

    static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.b.count else { throw p.error("unexpected text after the end of the JSON value") }
        return v
    }

    private func error(_ message: String) -> JSONParseError { JSONParseError(offset: i, message: message) }

    private mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONParseError) {
        guard i < b.count, b[i] == byte else { throw error("expected \(what)") }
        i += 1
    }

    private mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < JSONParser.maxDepth else { throw error("nested more than \(JSONParser.maxDepth) levels deep") }
        guard i < b.count else { throw error("unexpected end of the header") }
        switch b[i] {
        case 0x7B: return try object(depth: depth)
        case 0x5B: return try array(depth: depth)
        case 0x22: return .string(try string())
        case 0x74: try literal("true"); return .bool(true)
        case 0x66: try literal("false"); return .bool(false)
        case 0x6E: try literal("null"); return .null
        case 0x2D, 0x30...0x39: return try number()
        default: throw error("unexpected character")
        }
    }

    private mutating func literal(_ word: String) throws(JSONParseError) {
        let w = Array(word.utf8)
        guard b.count - i >= w.count, b[i..<(i + w.count)].elementsEqual(w) else {
            throw error("unexpected character")
        }
        i += w.count
    }

    private mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        i += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if i < b.count, b[i] == 0x7D {
            i += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard i < b.count, b[i] == 0x22 else { throw error("expected a string key") }
            let key = try string()
            skipSpace()
            try expect(0x3A, "':'")
            skipSpace()
            let v = try value(depth: depth + 1)
            members.append((key, v))
            skipSpace()
            guard i < b.count else { throw error("unexpected end of the header inside an object") }
            if b[i] == 0x2C {
                i += 1
                continue
            }
            try expect(0x7D, "',' or '}'")
            return .object(members)
        }
    }

    private mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        i += 1  // [
        var items: [JSONValue] = []
        skipSpace()
        if i < b.count, b[i] == 0x5D {
            i += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            guard i < b.count else { throw error("unexpected end of the header inside an array") }
            if b[i] == 0x2C {
                i += 1
                continue
            }
            try expect(0x5D, "',' or ']'")
            return .array(items)
        }
    }

    private mutating func number() throws(JSONParseError) -> JSONValue {
        let start = i
        if b[i] == 0x2D { i += 1 }
        guard i < b.count, b[i] >= 0x30, b[i] <= 0x39 else { throw error("invalid number") }
        if b[i] == 0x30 {
            i += 1
        } else {
            _ = skipDigits()
        }
        if i < b.count, b[i] == 0x2E {
            i += 1
            guard skipDigits() > 0 else { throw error("invalid number") }
        }
        if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
            i += 1
            if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
            guard skipDigits() > 0 else { throw error("invalid number") }
        }
        return .number(String(decoding: b[start..<i], as: UTF8.self))
    }

    /// Skips a run of ASCII digits and returns its length.
    private mutating func skipDigits() -> Int {
        let s = i
        while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
        return i - s
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard b.count - i >= 4 else { throw error("unexpected end of the header in a \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func string() throws(JSONParseError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw error("unterminated string") }
            let c = b[i]
            switch c {
            case 0x22:
                i += 1
                guard let s = validUTF8(out) else {
                    throw error("string is not valid UTF-8")
                }
                return s
            case 0x5C:
                i += 1
                guard i < b.count else { throw error("unterminated string") }
                let e = b[i]
                i += 1
                switch e {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x2F: out.append(0x2F)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard b.count - i >= 2, b[i] == 0x5C, b[i + 1] == 0x75 else {
                            throw error("unpaired surrogate in a \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw error("unpaired surrogate in a \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw error("invalid escape in a string")
                }
            case 0x00..<0x20:
                throw error("control character inside a string")
            default:
                out.append(c)
                i += 1
            }
        }
    }
}

/// Appends `s` as a JSON string literal, escaped the way serde_json (and so the Python
/// safetensors library) does: `\"`, `\\`, `\b \f \n \r \t`, other control characters as
/// `\u00xx`, everything else (including non-ASCII) as raw UTF-8.
func appendJSONString(_ s: String, to out: inout [UInt8]) {
    let hex = Array("0123456789abcdef".utf8)
    out.append(0x22)
    for c in s.utf8 {
        switch c {
        case 0x22: out += [0x5C, 0x22]
        case 0x5C: out += [0x5C, 0x5C]
        case 0x08: out += [0x5C, 0x62]
        case 0x0C: out += [0x5C, 0x66]
        case 0x0A: out += [0x5C, 0x6E]
        case 0x0D: out += [0x5C, 0x72]
        case 0x09: out += [0x5C, 0x74]
        case 0x00..<0x20: out += [0x5C, 0x75, 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]]
        default: out.append(c)
        }
    }
    out.append(0x22)
}

