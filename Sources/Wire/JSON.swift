#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON bodies are written by hand, so that the output is canonical (fixed key order, no
/// whitespace, no escaped slashes) and writing cannot fail, and read with `JSONDecoder`, which
/// ignores unknown keys.
enum JSON {
    /// `{"k":v,...}` from keys and JSON values; nil values are omitted.
    static func object(_ fields: [(String, String?)]) -> String {
        var out = "{"
        var first = true
        for (key, value) in fields {
            guard let value else { continue }
            if !first { out += "," }
            first = false
            out += string(key)
            out += ":"
            out += value
        }
        out += "}"
        return out
    }

    /// A JSON string literal.
    static func string(_ s: String) -> String {
        var out = "\""
        out.unicodeScalars.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    static func number<T: BinaryInteger>(_ x: T) -> String { String(x) }
    static func optionalNumber<T: BinaryInteger>(_ x: T?) -> String? { x.map { String($0) } }
    static func optionalString(_ s: String?) -> String? { s.map { string($0) } }

    static func encode(_ e: Expectation) -> String {
        object([
            ("hidden", optionalNumber(e.hidden)),
            ("input", optionalNumber(e.input)),
            ("output", optionalNumber(e.output)),
            ("seq_len", optionalNumber(e.seqLen)),
            ("cell", optionalString(e.cell)),
            ("activation", optionalString(e.activation)),
            ("micro_batch", optionalNumber(e.microBatch)),
        ])
    }

    static func encode(_ h: Hello) -> [UInt8] {
        Array(
            object([
                ("protocol_version", number(h.protocolVersion)),
                ("host", string(h.host)),
                ("pid", number(h.pid)),
                ("threads", number(h.threads)),
                ("ztrain_version", string(h.ztrainVersion)),
                ("expect", h.expect.map(encode)),
            ]).utf8)
    }

    static func encode(_ w: Welcome) -> [UInt8] {
        Array(
            object([
                ("protocol_version", number(w.protocolVersion)),
                ("run_id", number(w.runID)),
                ("worker_id", number(w.workerID)),
                ("config", string(w.config)),
                ("points", number(w.points)),
                ("channels", number(w.channels)),
                ("series_hash", number(w.seriesHash)),
                ("parameter_count", number(w.parameterCount)),
                ("micro_batch", number(w.microBatch)),
                ("heartbeat_millis", number(w.heartbeatMillis)),
                ("liveness_millis", number(w.livenessMillis)),
                ("shared_data", w.sharedData == true ? "true" : nil),
            ]).utf8)
    }

    static func encode(_ r: Ready) -> [UInt8] {
        Array(
            object([
                ("numerics_fingerprint", number(r.numericsFingerprint)),
                ("threads", number(r.threads)),
            ]).utf8)
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
        guard Wire.validUTF8(bytes) != nil else { throw .badUTF8 }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
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
