import CZeroMQ
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// CURVE (CurveZMQ) key handling.
///
/// Keys are 32 bytes; libzmq and this module exchange them as 40-character Z85
/// text (see ``Z85``). A server needs its secret key; a client needs the server's
/// public key plus its own key pair:
///
/// ```swift
/// let server = try Curve.keyPair()
/// let client = try Curve.keyPair()
/// try router.configureCurveServer(secretKey: server.secretKey)
/// try dealer.configureCurveClient(serverKey: server.publicKey,
///                                 publicKey: client.publicKey, secretKey: client.secretKey)
/// ```
public enum Curve {
    /// Generates a new key pair (`zmq_curve_keypair`), Z85-encoded.
    ///
    /// - Throws: ``ZMQError`` with kind `notSupported` if libzmq was built without CURVE.
    public static func keyPair() throws(ZMQError) -> (publicKey: String, secretKey: String) {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else {
            throw ZMQError.last("zmq_curve_keypair")
        }
        return (decodeZ85Buffer(publicKey), decodeZ85Buffer(secretKey))
    }

    /// Derives the Z85 public key that belongs to a Z85 secret key (`zmq_curve_public`).
    public static func publicKey(forSecretKey secretKey: String) throws(ZMQError) -> String {
        guard secretKey.utf8.count == 40, !secretKey.utf8.contains(0) else {
            throw ZMQError(errno: EINVAL, operation: "zmq_curve_public (secret key must be 40 Z85 characters)")
        }
        var publicKey = [CChar](repeating: 0, count: 41)
        let rc = secretKey.withCString { zmq_curve_public(&publicKey, $0) }
        guard rc == 0 else { throw ZMQError.last("zmq_curve_public") }
        return decodeZ85Buffer(publicKey)
    }

    private static func decodeZ85Buffer(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Z85 (ZeroMQ's base-85 text encoding, RFC 32) via `zmq_z85_encode` / `zmq_z85_decode`.
public enum Z85 {
    /// Encodes bytes as Z85 text. The byte count must be a multiple of 4.
    public static func encode(_ bytes: some ContiguousBytes) throws(ZMQError) -> String {
        let result: [CChar]? = bytes.withUnsafeBytes { source in
            guard source.count % 4 == 0 else { return nil }
            var text = [CChar](repeating: 0, count: source.count / 4 * 5 + 1)
            guard source.count > 0 else { return text }
            let typed = source.bindMemory(to: UInt8.self)
            guard zmq_z85_encode(&text, typed.baseAddress, source.count) != nil else { return nil }
            return text
        }
        guard let result else {
            throw ZMQError(errno: EINVAL, operation: "Z85.encode (byte count must be a multiple of 4)")
        }
        return String(decoding: result.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes Z85 text. The length must be a multiple of 5 and every character must
    /// belong to the Z85 alphabet.
    public static func decode(_ text: String) throws(ZMQError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count % 5 == 0, !utf8.contains(0) else {
            throw ZMQError(errno: EINVAL, operation: "Z85.decode (length must be a multiple of 5)")
        }
        if utf8.isEmpty { return [] }
        var output = [UInt8](repeating: 0, count: utf8.count / 5 * 4)
        let ok = text.withCString { zmq_z85_decode(&output, $0) != nil }
        guard ok else {
            throw ZMQError(errno: EINVAL, operation: "Z85.decode (invalid Z85 text)")
        }
        return output
    }
}
