#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The one way ztrain writes and reads JSON: `JSONEncoder` with sorted keys and unescaped slashes
/// (so the same value always gives the same bytes), and `JSONDecoder` into `Codable` types. Two
/// styles differ only in key names and non-finite numbers:
///
/// - ``canonical``: keys as the types declare them, non-finite numbers are an error (the wire
///   protocol's bodies, a training configuration recorded in a checkpoint or a model file);
/// - ``files``: Swift's camelCase keys become snake_case and non-finite numbers are written as the
///   strings `"inf"`, `"-inf"`, `"nan"` (`summary.json`, `metrics.jsonl`, stress and bench reports).
///
/// (The one exception is the safetensors header, which `Checkpoint` reads with its own strict parser
/// and writes in the byte layout the format's reference library uses.)
///
/// ```swift
/// let bytes = try JSONStyle.files.encode(summary)          // {"best_loss":0.1,...}
/// let line = try JSONStyle.files.line(metrics)             // one JSON Lines record, "\n" at the end
/// let back = try JSONStyle.files.decode(Summary.self, from: bytes)
/// ```
public struct JSONStyle: Sendable {
    /// camelCase property names are written (and read) as snake_case.
    public var snakeCaseKeys: Bool
    /// Non-finite floating-point values are written as `"inf"`, `"-inf"`, `"nan"` (and read back).
    public var nonFiniteAsStrings: Bool
    /// Indented output, one member a line (for files a person reads).
    public var prettyPrinted: Bool

    /// Keys as declared; non-finite numbers are an error.
    public static let canonical = JSONStyle(snakeCaseKeys: false, nonFiniteAsStrings: false, prettyPrinted: false)
    /// snake_case keys; non-finite numbers as strings.
    public static let files = JSONStyle(snakeCaseKeys: true, nonFiniteAsStrings: true, prettyPrinted: false)

    /// A style; see ``canonical`` and ``files`` for the two in use.
    public init(snakeCaseKeys: Bool, nonFiniteAsStrings: Bool, prettyPrinted: Bool) {
        self.snakeCaseKeys = snakeCaseKeys
        self.nonFiniteAsStrings = nonFiniteAsStrings
        self.prettyPrinted = prettyPrinted
    }

    /// This style, indented.
    public var pretty: JSONStyle {
        var s = self
        s.prettyPrinted = true
        return s
    }

    /// A configured encoder (a new one: `JSONEncoder` is not `Sendable`).
    public func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = prettyPrinted ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        if snakeCaseKeys { e.keyEncodingStrategy = .convertToSnakeCase }
        if nonFiniteAsStrings {
            e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        }
        return e
    }

    /// A decoder that reads what ``encoder()`` writes (unknown keys are ignored).
    public func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        if snakeCaseKeys { d.keyDecodingStrategy = .convertFromSnakeCase }
        if nonFiniteAsStrings {
            d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        }
        return d
    }

    /// `value` as JSON bytes. Throws `EncodingError` for a value this style cannot write (a
    /// non-finite number in ``canonical``).
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        [UInt8](try encoder().encode(value))
    }

    /// `value` as JSON text.
    public func string<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder().encode(value), as: UTF8.self)
    }

    /// `value` as one JSON Lines record: compact JSON and a newline.
    public func line<T: Encodable>(_ value: T) throws -> [UInt8] {
        var compact = self
        compact.prettyPrinted = false
        var out = try compact.encode(value)
        out.append(0x0A)
        return out
    }

    /// Decodes `T` from JSON bytes. Throws `DecodingError`.
    public func decode<T: Decodable, Bytes: Collection<UInt8>>(_: T.Type, from bytes: Bytes) throws -> T {
        try decoder().decode(T.self, from: Data(bytes))
    }

    /// Decodes `T` from JSON text. Throws `DecodingError`.
    public func decode<T: Decodable>(_: T.Type, from text: String) throws -> T {
        try decoder().decode(T.self, from: Data(text.utf8))
    }
}

/// Any JSON value, for a document one module carries without knowing its type (the training
/// configuration inside the wire protocol's WELCOME): the owner converts its `Codable` value with
/// ``init(encoding:)`` and ``decode(_:)``. Numbers keep their exact value: integers as integers
/// (all of `Int64` and `UInt64`), other numbers as `Double`; an integral `Double` of at most 2^53
/// is read as an integer, so every value has one form and equal documents compare equal.
///
/// ```swift
/// let tree = try JSONTree(encoding: config)        // .object(["seed": .integer(7), ...])
/// let back = try tree.decode(TrainingConfig.self)  // == config
/// ```
public enum JSONTree: Sendable, Equatable, Codable, CustomStringConvertible {
    /// `{...}`; written with sorted keys.
    case object([String: JSONTree])
    /// `[...]`.
    case array([JSONTree])
    /// A string.
    case string(String)
    /// An integer in `Int64`'s range (and an integral number of at most 2^53 in magnitude).
    case integer(Int64)
    /// An integer above `Int64.max`.
    case unsigned(UInt64)
    /// Any other number: a fraction, or an integral value beyond 2^53 written as a float.
    case double(Double)
    /// `true` or `false`.
    case bool(Bool)
    /// `null`.
    case null

    /// `value` as a tree, through the ``JSONStyle/canonical`` style.
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSONStyle.canonical.decode(JSONTree.self, from: JSONStyle.canonical.encode(value))
    }

    /// The value of a number (of any of the three kinds), else nil.
    public var number: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .unsigned(let u): return Double(u)
        case .double(let d): return d
        default: return nil
        }
    }

    /// The canonical JSON text (for messages).
    public var description: String {
        (try? JSONStyle.canonical.string(self)) ?? "a value JSON cannot hold"
    }

    /// The tree as a `T`, through the ``JSONStyle/canonical`` style. Throws `DecodingError`.
    public func decode<T: Decodable>(_: T.Type) throws -> T {
        try JSONStyle.canonical.decode(T.self, from: JSONStyle.canonical.encode(self))
    }

    public init(from decoder: any Decoder) throws {
        if var a = try? decoder.unkeyedContainer() {
            var items: [JSONTree] = []
            while !a.isAtEnd { items.append(try a.decode(JSONTree.self)) }
            self = .array(items)
            return
        }
        if let o = try? decoder.container(keyedBy: Key.self) {
            var members: [String: JSONTree] = [:]
            for k in o.allKeys { members[k.stringValue] = try o.decode(JSONTree.self, forKey: k) }
            self = .object(members)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let i = try? c.decode(Int64.self) {
            self = .integer(i)
        } else if let u = try? c.decode(UInt64.self) {
            self = .unsigned(u)
        } else {
            let d = try c.decode(Double.self)
            if d.rounded() == d, abs(d) <= 9_007_199_254_740_992 {
                self = .integer(Int64(d))
            } else {
                self = .double(d)
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .object(let members):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in members { try c.encode(v, forKey: Key(k)) }
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for v in items { try c.encode(v) }
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .integer(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .unsigned(let u):
            var c = encoder.singleValueContainer()
            try c.encode(u)
        case .double(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// `bytes` as a `String` if they are valid UTF-8, else nil. (Decoding repairs invalid sequences with
/// U+FFFD, so a repaired result no longer matches the input bytes; `String(validating:as:)` would
/// need macOS 15.)
///
/// ```swift
/// validUTF8([0x68, 0x69])  // "hi"
/// validUTF8([0xFF])        // nil
/// ```
public func validUTF8<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String? {
    let s = String(decoding: bytes, as: UTF8.self)
    return s.utf8.elementsEqual(bytes) ? s : nil
}
