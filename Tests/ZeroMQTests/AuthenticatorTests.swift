import Foundation
import Synchronization
import Testing
import ZeroMQ

/// Collects the authenticator's events across threads.
final class EventLog: Sendable {
    private let events = Mutex<[AuthEvent]>([])
    func add(_ e: AuthEvent) { events.withLock { $0.append(e) } }
    var all: [AuthEvent] { events.withLock { $0 } }
    func wait(seconds: Double = 5, until predicate: ([AuthEvent]) -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if predicate(all) { return true }
            usleep(10_000)
        }
        return predicate(all)
    }
}

@Suite("CURVE allow-list (ZAP) and certificates")
struct AuthenticatorTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "zt-auth-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test("allowed keys talk; an unknown key and a plaintext client are refused, logged, and deliver nothing")
    func allowList() throws {
        let ctx = try Context(blocky: false)
        let server = try CurveCertificate.generate(), good = try CurveCertificate.generate(), bad = try CurveCertificate.generate()
        let router = try ctx.socket(.router)
        let log = EventLog()
        let auth = try Authenticator(context: ctx, allowed: [good.publicKey], watching: router) { log.add($0) }
        try router.configureCurveServer(secretKey: server.secretKey ?? "")
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint

        func client(_ cert: CurveCertificate?, _ id: String) throws -> Socket {
            let s = try ctx.socket(.dealer)
            try s.setRoutingID(Array(id.utf8))
            if let cert { try s.configureCurveClient(serverKey: server.publicKey, publicKey: cert.publicKey, secretKey: cert.secretKey ?? "") }
            try s.connect(endpoint)
            try s.send(parts: [Array("hello from \(id)".utf8)])
            return s
        }
        let sGood = try client(good, "good"), sBad = try client(bad, "bad"), sPlain = try client(nil, "plain")

        let first = try router.receiveMultipart(timeout: .seconds(5))
        #expect(first?.first.map { String(decoding: $0, as: UTF8.self) } == "good")
        #expect(log.wait { events in
            events.contains(.refusedKey(key: bad.publicKey, address: "127.0.0.1"))
                && events.contains { if case .handshakeFailed = $0 { true } else { false } }
        }, "\(log.all)")
        #expect(log.all.contains(.accepted(key: good.publicKey, address: "127.0.0.1")))
        // nothing from the refused clients ever arrives
        #expect(try router.receiveMultipart(timeout: .milliseconds(300)) == nil)
        let stats = auth.statistics
        #expect(stats.accepted == 1 && stats.refused >= 1 && stats.failedHandshakes >= 1)
        auth.unwatch()
        auth.stop()
        for s in [sGood, sBad, sPlain, router] { s.close() }
        try ctx.terminate()
    }

    @Test("certificates round-trip in CZMQ/pyzmq's format; the public half loads from either file")
    func certificates() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let c = try CurveCertificate.generate()
        try c.write(base: d + "/worker")
        #expect(try CurveCertificate.load(secretFile: d + "/worker.key_secret") == c)
        #expect(try CurveCertificate.load(publicFile: d + "/worker.key").publicKey == c.publicKey)
        #expect(try CurveCertificate.load(publicFile: d + "/worker.key_secret").publicKey == c.publicKey)
        #expect(try CurveCertificate.loadDirectory(d) == ["worker.key": c.publicKey])
        // a secret key is never overwritten
        let again = try CurveCertificate.generate()
        #expect(throws: CertificateError.exists(d + "/worker.key_secret")) { try again.write(base: d + "/worker") }
        #expect(try CurveCertificate.load(publicFile: d + "/worker.key").publicKey == c.publicKey)
        // a pyzmq-style file
        let py = """
            #   ****  Generated on 2026-01-01 by pyzmq  ****
            #   ZeroMQ CURVE **Secret** Certificate

            metadata
            curve
                public-key = "\(c.publicKey)"
                secret-key = "\(c.secretKey ?? "")"
            """
        try py.write(toFile: d + "/py.key_secret", atomically: false, encoding: .utf8)
        chmod(d + "/py.key_secret", 0o600)
        #expect(try CurveCertificate.load(secretFile: d + "/py.key_secret") == c)
    }

    @Test("secret keys others can read, malformed keys and mismatched halves are refused with the fix")
    func refusals() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let c = try CurveCertificate.generate()
        try c.write(base: d + "/c")
        for mode in [0o644, 0o604, 0o620, 0o666] as [mode_t] {
            chmod(d + "/c.key_secret", mode)
            do {
                _ = try CurveCertificate.load(secretFile: d + "/c.key_secret")
                Issue.record("mode \(String(mode, radix: 8)) was accepted")
            } catch {
                #expect(error.description.contains("chmod 600"))
            }
        }
        chmod(d + "/c.key_secret", 0o640)  // group read (Kubernetes fsGroup) is fine
        #expect(try CurveCertificate.load(secretFile: d + "/c.key_secret") == c)
        let other = try CurveCertificate.generate()
        let mixed = CurveCertificate.text(public: other.publicKey, secret: c.secretKey)
        try mixed.write(toFile: d + "/m.key_secret", atomically: false, encoding: .utf8)
        chmod(d + "/m.key_secret", 0o600)
        #expect(throws: CertificateError.invalid(d + "/m.key_secret", "public-key does not belong to secret-key")) {
            try CurveCertificate.load(secretFile: d + "/m.key_secret")
        }
        try "curve\n    public-key = \"short\"\n".write(toFile: d + "/s.key", atomically: false, encoding: .utf8)
        #expect(throws: CertificateError.self) { try CurveCertificate.load(publicFile: d + "/s.key") }
        #expect(throws: CertificateError.self) { try CurveCertificate.load(secretFile: d + "/c.key") }
        #expect(throws: CertificateError.self) { try CurveCertificate.load(publicFile: d + "/missing.key") }
        #expect(throws: CertificateError.self) { try CurveCertificate.loadDirectory(d + "/missing") }
    }
}
