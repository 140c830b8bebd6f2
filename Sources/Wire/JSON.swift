#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

import Support

/// The JSON bodies (HELLO, WELCOME, READY) are written with ``JSONStyle/canonical`` (sorted keys, no
/// whitespace, no escaped slashes; the keys are the messages' `CodingKeys`) and read with
/// `JSONDecoder`, which ignores unknown keys.
enum JSON {
    /// The canonical bytes of a message body. Every field is an integer, a string, a boolean or a
    /// ``JSONTree`` read from JSON, so encoding cannot fail; an empty object stands in if it ever did.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? JSONStyle.canonical.encode(value)) ?? Array("{}".utf8)
    }

    /// Decodes `T` from a JSON body of at most ``Limits/maxJSONBytes`` valid UTF-8 bytes.
    /// `what` names the body in error messages.
    static func decode<T: Decodable>(_: T.Type, _ bytes: UnsafeRawBufferPointer, what: String)
        throws(WireError) -> T
    {
        guard bytes.count <= Limits.maxJSONBytes else {
            throw .oversized(bytes.count, limit: Limits.maxJSONBytes)
        }
        guard !bytes.isEmpty else { throw .badJSON("\(what) JSON is empty") }
        guard validUTF8(bytes) != nil else { throw .badUTF8 }
        do {
            return try JSONStyle.canonical.decode(T.self, from: bytes)
        } catch let error as DecodingError {
            throw .badJSON("\(what): \(describe(error))")
        } catch {
            throw .badJSON("\(what): \(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return p.isEmpty ? "the top level" : "\"" + p.joined(separator: ".") + "\""
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = context.codingPath.isEmpty ? "" : " in \(path(context))"
            return "missing required key \"\(key.stringValue)\"\(at)"
        case .typeMismatch(let type, let context):
            return "\(path(context)) is not of type \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context)) is null, expected \(type)"
        case .dataCorrupted(let context):
            var text = context.debugDescription
            if context.codingPath.isEmpty == false { text = "\(path(context)): " + text }
            if let underlying = context.underlyingError {
                text += " (\(underlying))"
            }
            return "not valid JSON or a bad value: " + text
        @unknown default:
            return "\(error)"
        }
    }
}
