/// Why a pair of frames was rejected. Every case names what was wrong; ``description`` also says,
/// where it helps, what to do about it.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The header frame had this many bytes, fewer than ``Header/size``.
    case truncatedHeader(Int)
    /// The header did not start with "ZTRN" (``Header/magic``); this is the value found.
    case badMagic(UInt32)
    /// The peer speaks this protocol version; this build speaks ``Wire/protocolVersion``.
    case unsupportedVersion(UInt16)
    /// The message type byte is not a ``MessageType``.
    case unknownType(UInt8)
    /// The flags byte is not zero (no flags exist in protocol versions 1 and 2).
    case badFlags(UInt8)
    /// A payload (or a part of it: JSON body, reason text) of this many bytes is over `limit`.
    case oversized(Int, limit: Int)
    /// The payload's XXH64 differs from the header's checksum field.
    case checksumMismatch
    /// A frame or payload has the wrong length for what the header says.
    case badLength(String)
    /// A range, count or other header field is out of bounds.
    case badRange(String)
    /// A float that must be finite is NaN or infinite.
    case nonFinite(String)
    /// A JSON body is not valid JSON, lacks a required key, has a wrong type or an insane value.
    case badJSON(String)
    /// A text payload (reject, shutdown or bye reason) is not valid UTF-8.
    case badUTF8
    /// The message did not arrive as exactly two frames; this is how many there were.
    case wrongFrameCount(Int)
    /// A header field that this message type does not use is not zero.
    case unexpectedField(String)

    public var description: String {
        switch self {
        case .truncatedHeader(let n):
            return "header frame is \(n) bytes, expected \(Header.size): "
                + "the peer is not speaking the ztrain protocol or the message was cut"
        case .badMagic(let m):
            let hex = String(m, radix: 16, uppercase: true)
            return "bad magic 0x\(hex), expected 0x4E52545A (\"ZTRN\"): "
                + "the peer is not a ztrain process (check the address and port)"
        case .unsupportedVersion(let v):
            return "peer speaks protocol \(v), this build speaks \(Wire.protocolVersion): "
                + "run the same ztrain version on the coordinator and every worker"
        case .unknownType(let t):
            return "unknown message type \(t) (known: 1...\(MessageType.allCases.count)): "
                + "the peer runs a different ztrain version"
        case .badFlags(let f):
            return "header flags are \(f), expected 0 in protocol version \(Wire.protocolVersion)"
        case .oversized(let n, let limit):
            return "\(n) bytes is over the limit of \(limit) bytes"
        case .checksumMismatch:
            return "payload checksum mismatch: the payload was corrupted in transit"
        case .badLength(let s): return "bad length: \(s)"
        case .badRange(let s): return "bad range: \(s)"
        case .nonFinite(let s): return "non-finite value: \(s)"
        case .badJSON(let s): return "bad JSON: \(s)"
        case .badUTF8: return "text payload is not valid UTF-8"
        case .wrongFrameCount(let n):
            return "message has \(n) frames, expected 2 (header and payload)"
        case .unexpectedField(let s): return "unexpected header field: \(s)"
        }
    }
}
