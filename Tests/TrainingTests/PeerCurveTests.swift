import Foundation
import Logging
import Testing
import Transport
import Wire
import ZeroMQ
@testable import Training

/// CURVE on the links between the workers of a sharded run: a worker's peer router admits exactly the
/// keys of the table; a stranger with a valid key not in it, and a plaintext peer, are refused, counted,
/// logged at a limited rate, and deliver nothing.
@Suite("PeerLinks with CURVE")
struct PeerCurveTests {
    static let node = Envelope(runID: 7, workerID: 2, message: .node(NodeSlice(
        step: 1, block: 0..<1, leafCount: 2, samples: 1, windows: 2, owner: 0, values: [1, 2, 3])))

    /// Reads what `links` got for up to `seconds` (calling `tick` between reads); the envelopes.
    static func collect(_ links: PeerLinks, seconds: Double, until: (([Envelope]) -> Bool)? = nil,
                        tick: () -> Void = {}) -> [Envelope] {
        var got: [Envelope] = []
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            tick()
            _ = try? links.router.poll(timeout: .milliseconds(20))
            links.receive(limits: Limits(maxPayloadBytes: 1 << 20, allowNonFinite: true)) { got.append($0) }
            if let until, until(got) { break }
        }
        return got
    }

    @Test("two workers reach each other; a link refused before the table arrived is made again")
    func tableKeysAreAdmitted() throws {
        let a = try CurveCertificate.generate(), b = try CurveCertificate.generate()
        let logger = Logger(label: "peer-curve")
        let la = try PeerLinks(bind: "tcp://127.0.0.1:*", curve: a, logger: logger)
        let lb = try PeerLinks(bind: "tcp://127.0.0.1:*", curve: b, logger: logger)
        defer { la.close(); lb.close() }
        let table = ShardTable(version: 1, parameterCount: 4, owners: [1, 2], peers: [
            ShardTable.Peer(worker: 1, endpoint: la.endpoint, key: a.publicKey),
            ShardTable.Peer(worker: 2, endpoint: lb.endpoint, key: b.publicKey),
        ])
        // B reads the table first: A's router does not admit B's key yet and refuses it
        lb.connect(table, selfID: 2)
        let refusedEarly = Self.collect(la, seconds: 5, until: { _ in la.refusedConnections >= 1 }, tick: { lb.send(Self.node, to: 1) })
        #expect(refusedEarly.isEmpty)
        #expect(la.refusedConnections >= 1, "A refused B before it read the table")
        la.connect(table, selfID: 1)
        let got = Self.collect(la, seconds: 10, until: { !$0.isEmpty }, tick: { lb.maintain(); lb.send(Self.node, to: 1) })
        #expect(got.first == Self.node, "B reaches A once A admits the table's keys")
        let back = Self.collect(lb, seconds: 10, until: { !$0.isEmpty }, tick: { la.maintain(); la.send(Self.node, to: 2) })
        #expect(back.first == Self.node, "A reaches B")
    }

    @Test("a valid key not in the table and a plaintext peer are refused, counted, logged at a limited rate, and deliver nothing")
    func strangersAreRefused() throws {
        let a = try CurveCertificate.generate(), b = try CurveCertificate.generate(), rogue = try CurveCertificate.generate()
        let captured = CapturedLog()
        let la = try PeerLinks(bind: "tcp://127.0.0.1:*", curve: a, logger: captured.logger)
        defer { la.close() }
        la.connect(ShardTable(version: 1, parameterCount: 4, owners: [1, 2], peers: [
            ShardTable.Peer(worker: 1, endpoint: la.endpoint, key: a.publicKey),
            ShardTable.Peer(worker: 2, endpoint: "tcp://127.0.0.1:9", key: b.publicKey),
        ]), selfID: 1)
        var strangers: [DealerEndpoint] = []
        defer { for s in strangers { s.close() } }
        for _ in 0..<3 {
            var curve = EndpointOptions()
            curve.linger = .zero
            curve.curve = .client(serverKey: a.publicKey, publicKey: rogue.publicKey, secretKey: rogue.secretKey ?? "")
            strangers.append(try DealerEndpoint(connect: [la.endpoint], options: curve, logger: Logger(label: "rogue")))
            var plain = EndpointOptions()
            plain.linger = .zero
            strangers.append(try DealerEndpoint(connect: [la.endpoint], options: plain, logger: Logger(label: "plain")))
        }
        let got = Self.collect(la, seconds: 1.5, tick: { for s in strangers { _ = s.send(Self.node) } })
        #expect(got.isEmpty, "nothing from a stranger reaches the worker")
        #expect(la.bytesIn == 0)
        #expect(la.refusedConnections >= 6, "every stranger is refused (\(la.refusedConnections))")
        let keyLines = captured.count(.warning, containing: "is not in the run's table")
        #expect(keyLines >= 1 && keyLines <= 2, "refused keys are logged at most once per 5 s (\(keyLines) lines)")
        #expect(captured.count(.warning, containing: rogue.publicKey) >= 1)
    }
}

/// The coordinator of a sharded CURVE run passes on only allow-listed peer keys.
@Suite("Sharded CURVE HELLO")
struct ShardedCurveHelloTests {
    func answer(_ core: CoordinatorCore, _ hello: Hello, peer: UInt8) -> Envelope? {
        let effects = core.handle(.message(Envelope(runID: 0, workerID: 0, message: .hello(hello)), from: PeerID([peer]), bytes: 100), now: 0)
        for case .send(_, let env) in effects { return env }
        return nil
    }

    @Test("a worker without a peer key, or with one off the allow-list, is refused; an allow-listed one is welcomed")
    func peerKeysMustBeAllowListed() throws {
        let good = try CurveCertificate.generate(), stranger = try CurveCertificate.generate()
        var options = CoordinatorOptions(workers: 2, joinTimeout: 60)
        options.aggregation = .sharded
        options.peerKeys = [good.publicKey]
        let core = try CoordinatorCore(config: parallelConfig(steps: 5), series: try referenceSeries(), options: options, runID: 9)
        func hello(_ key: String?) -> Hello {
            Hello(host: "h", pid: 1, threads: 1, ztrainVersion: "x", peer: "tcp://127.0.0.1:9", peerKey: key)
        }
        guard case .reject(let none)? = answer(core, hello(nil), peer: 1)?.message else { Issue.record("no key: not refused"); return }
        #expect(none.contains("announced no peer key"))
        guard case .reject(let other)? = answer(core, hello(stranger.publicKey), peer: 2)?.message else { Issue.record("stranger: not refused"); return }
        #expect(other.contains("not in the coordinator's allow-list"))
        guard case .welcome? = answer(core, hello(good.publicKey), peer: 3)?.message else { Issue.record("allow-listed key: not welcomed"); return }
    }
}
