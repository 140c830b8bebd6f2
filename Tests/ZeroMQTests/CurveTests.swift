import Foundation
import Testing
import ZeroMQ

@Suite("CURVE security and Z85")
struct CurveTests {
    @Test("key pairs are 40-character Z85 keys of 32 bytes; the public key derives from the secret")
    func keyPair() throws {
        let pair = try Curve.keyPair()
        #expect(pair.publicKey.utf8.count == 40)
        #expect(pair.secretKey.utf8.count == 40)
        #expect(pair.publicKey != pair.secretKey)
        #expect(try Z85.decode(pair.publicKey).count == 32)
        #expect(try Z85.encode(try Z85.decode(pair.secretKey)) == pair.secretKey)
        #expect(try Curve.publicKey(forSecretKey: pair.secretKey) == pair.publicKey)
        #expect(try Curve.keyPair().publicKey != pair.publicKey)
    }

    @Test("Z85 matches the reference vector and rejects bad input")
    func z85() throws {
        // The test vector from the Z85 specification (ZeroMQ RFC 32).
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(try Z85.encode(bytes) == "HelloWorld")
        #expect(try Z85.decode("HelloWorld") == bytes)
        #expect(try Z85.encode([UInt8]()) == "")
        #expect(throws: ZMQError.self) { _ = try Z85.encode([1, 2, 3] as [UInt8]) }
        #expect(throws: ZMQError.self) { _ = try Z85.decode("Hell") }  // length not a multiple of 5
        #expect(throws: ZMQError.self) { _ = try Z85.decode("Hello Worl") }  // space is not Z85
        #expect(throws: ZMQError.self) { _ = try Curve.publicKey(forSecretKey: "short") }
    }

    /// A CURVE server ROUTER bound on tcp loopback; returns its endpoint.
    private func makeServer(_ context: Context, secretKey: String) throws -> (Socket, String) {
        let router = try context.socket(.router)
        try router.configureCurveServer(secretKey: secretKey)
        #expect(try router.curveServer)
        try router.bind("tcp://127.0.0.1:*")
        return (router, try router.lastEndpoint)
    }

    @Test("a CURVE-secured DEALER/ROUTER pair exchanges messages over tcp")
    func curveExchange() throws {
        let context = try makeContext()
        let serverKeys = try Curve.keyPair()
        let clientKeys = try Curve.keyPair()
        let (router, endpoint) = try makeServer(context, secretKey: serverKeys.secretKey)

        let dealer = try context.socket(.dealer)
        // Binary keys for the server key, Z85 text for the client's own pair.
        try dealer.setCurveServerKey(try Z85.decode(serverKeys.publicKey))
        try dealer.setCurvePublicKey(clientKeys.publicKey)
        try dealer.setCurveSecretKey(clientKeys.secretKey)
        #expect(try dealer.curvePublicKey == clientKeys.publicKey)
        try dealer.connect(endpoint)

        try dealer.send("secret hello")
        let frames = try #require(try router.receiveMultipart(timeout: .seconds(10)))
        try #require(frames.count == 2)
        #expect(String(decoding: frames[1], as: UTF8.self) == "secret hello")
        try router.send(parts: [frames[0], Array("secret reply".utf8)])
        #expect(try dealer.receiveString(timeout: .seconds(10)) == "secret reply")
    }

    @Test("a client with the wrong server key does not get through")
    func curveWrongServerKey() throws {
        let context = try makeContext()
        let serverKeys = try Curve.keyPair()
        let (router, endpoint) = try makeServer(context, secretKey: serverKeys.secretKey)

        let impostorKey = try Curve.keyPair().publicKey
        let wrong = try context.socket(.dealer)
        let wrongKeys = try Curve.keyPair()
        try wrong.configureCurveClient(serverKey: impostorKey,
                                       publicKey: wrongKeys.publicKey, secretKey: wrongKeys.secretKey)
        try wrong.connect(endpoint)
        try wrong.send("let me in")
        #expect(try router.receiveMultipart(timeout: .milliseconds(700)) == nil)

        // The same server does accept a correctly configured client.
        let right = try context.socket(.dealer)
        let rightKeys = try Curve.keyPair()
        try right.configureCurveClient(serverKey: serverKeys.publicKey,
                                       publicKey: rightKeys.publicKey, secretKey: rightKeys.secretKey)
        try right.connect(endpoint)
        try right.send("legit")
        let frames = try #require(try router.receiveMultipart(timeout: .seconds(10)))
        #expect(frames.last.map { String(decoding: $0, as: UTF8.self) } == "legit")
        #expect(try router.receiveMultipart(timeout: .milliseconds(100)) == nil)
    }

    @Test("a plain-text client cannot talk to a CURVE server")
    func curveRejectsPlainClient() throws {
        let context = try makeContext()
        let (router, endpoint) = try makeServer(context, secretKey: try Curve.keyPair().secretKey)
        let plain = try context.socket(.dealer)
        try plain.connect(endpoint)
        try plain.send("plain text")
        #expect(try router.receiveMultipart(timeout: .milliseconds(500)) == nil)
    }
}
