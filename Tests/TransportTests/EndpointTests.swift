#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Testing
import Transport
import Wire
import ZeroMQ

/// An ipc:// address in a fresh temporary folder.
private func ipcAddress() throws -> (String, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("transport-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return ("ipc://" + dir.appendingPathComponent("s").path, dir)
}

private let logger = Logger(label: "transport-tests")

/// Receives on `router` until `body` has seen `count` inbounds or 5 s passed.
private func collect(_ router: RouterEndpoint, count: Int, limits: Limits, isKnown: (([UInt8]) -> Bool)? = nil,
                     _ body: (Inbound) -> Void) throws -> Int {
    var seen = 0
    let end = ContinuousClock.now + .seconds(5)
    while seen < count && ContinuousClock.now < end {
        guard try router.poll(timeout: .milliseconds(20)) else { continue }
        router.receive(limits: limits, isKnown: isKnown) { inbound in
            seen += 1
            body(inbound)
        }
    }
    return seen
}

private func hello() -> Envelope {
    Envelope(runID: 0, workerID: 0, message: .hello(Hello(host: "h", pid: 1, threads: 1, ztrainVersion: "t")))
}

@Suite struct EndpointTests {
    @Test func helloAndReplyRoundTrip() throws {
        let (address, dir) = try ipcAddress()
        defer { try? FileManager.default.removeItem(at: dir) }
        let router = try RouterEndpoint(bind: [address], options: EndpointOptions(), logger: logger)
        defer { router.close() }
        let dealer = try DealerEndpoint(connect: [router.endpoint], options: EndpointOptions(), logger: logger)
        defer { dealer.close() }
        #expect(dealer.send(hello()).bytes != nil)
        var from: [UInt8] = []
        let n = try collect(router, count: 1, limits: .handshake, isKnown: { _ in false }) { inbound in
            if case .message(let peer, let env, _) = inbound, case .hello = env.message { from = peer }
        }
        #expect(n == 1 && !from.isEmpty)
        #expect(router.send(Envelope(runID: 7, workerID: 3, message: .heartbeat), to: from).bytes == Header.size)
        var got: Envelope?
        let end = ContinuousClock.now + .seconds(5)
        while got == nil && ContinuousClock.now < end {
            guard try dealer.poll(timeout: .milliseconds(20)) else { continue }
            dealer.receive(limits: { .handshake }) { inbound in
                if case .message(_, let env, _) = inbound { got = env }
                return true
            }
        }
        #expect(got == Envelope(runID: 7, workerID: 3, message: .heartbeat))
    }

    @Test func strangersAreDroppedUnreadUnlessSmallHello() throws {
        let (address, dir) = try ipcAddress()
        defer { try? FileManager.default.removeItem(at: dir) }
        let router = try RouterEndpoint(bind: [address], options: EndpointOptions(), strangerFrameBytes: 1024, logger: logger)
        defer { router.close() }
        let dealer = try DealerEndpoint(connect: [router.endpoint], options: EndpointOptions(), logger: logger)
        defer { dealer.close() }
        // a garbage frame pair and a heartbeat: both strangers; then a HELLO: read
        dealer.send(frames: [[UInt8](repeating: 0xEE, count: 64), [UInt8](repeating: 2, count: 100)])
        dealer.send(Envelope(runID: 1, workerID: 1, message: .heartbeat))
        dealer.send(hello())
        var kinds: [String] = []
        _ = try collect(router, count: 3, limits: .handshake, isKnown: { _ in false }) { inbound in
            switch inbound {
            case .stranger: kinds.append("stranger")
            case .message(_, let env, _): kinds.append("\(env.message.type)")
            default: kinds.append("other")
            }
        }
        #expect(kinds == ["stranger", "stranger", "hello"])
        #expect(router.strangerBytesDropped == 64 + 100 + Header.size)
    }

    @Test func gradientArrivesAsValidatedViewAndBadFramesAsErrors() throws {
        let (address, dir) = try ipcAddress()
        defer { try? FileManager.default.removeItem(at: dir) }
        let router = try RouterEndpoint(bind: [address], options: EndpointOptions(), logger: logger)
        defer { router.close() }
        let dealer = try DealerEndpoint(connect: [router.endpoint], options: EndpointOptions(), logger: logger)
        defer { dealer.close() }
        let sums: [Float] = [1, 2, 3, 0.5]
        dealer.send(Envelope(runID: 9, workerID: 2, message: .gradient(
            Gradient(step: 4, block: 0..<1, leafCount: 2, samples: 3, computeNanos: 5, sums: sums))))
        let h = Wire.encode(Envelope(runID: 9, workerID: 2, message: .heartbeat))[0]
        let p: [UInt8] = [1]  // checksum no longer matches
        dealer.send(frames: [h, p])
        dealer.send(frames: [h])  // one frame after the routing id
        var seen: [String] = []
        let limits = Limits.training(parameterCount: 3, maxWindows: 8)
        _ = try collect(router, count: 3, limits: limits) { inbound in
            switch inbound {
            case .gradient(_, let v, let payload, _):
                var out = [Float](repeating: 0, count: 4)
                out.withUnsafeMutableBufferPointer { try? Wire.readFloats(payload, offset: 0, count: 4, into: $0) }
                seen.append("gradient \(v.header.step) \(v.parameterCount) \(out == sums)")
            case .bad(_, let error, _): seen.append("bad \(error)")
            default: seen.append("other")
            }
        }
        #expect(seen == ["gradient 4 3 true", "bad \(WireError.checksumMismatch)", "bad \(WireError.wrongFrameCount(2))"])
    }

    @Test func assignTravelsAsThreeFramesWithSharedChecksum() throws {
        let (address, dir) = try ipcAddress()
        defer { try? FileManager.default.removeItem(at: dir) }
        let router = try RouterEndpoint(bind: [address], options: EndpointOptions(), logger: logger)
        defer { router.close() }
        let a = try DealerEndpoint(connect: [router.endpoint], options: EndpointOptions(), logger: logger)
        defer { a.close() }
        let b = try DealerEndpoint(connect: [router.endpoint], options: EndpointOptions(), logger: logger)
        defer { b.close() }
        a.send(hello())
        b.send(hello())
        var peers: [[UInt8]] = []
        _ = try collect(router, count: 2, limits: .handshake) { peers.append($0.peer) }
        #expect(peers.count == 2)
        let weights: [Float] = [0.25, -1, 3]
        for (k, peer) in peers.enumerated() {
            let assign = Assign(step: 1, leaves: k..<(k + 1), leafCount: 2, weights: weights, windows: [5, 9])
            #expect(router.send(Envelope(runID: 3, workerID: UInt32(k + 1), message: .assign(assign)), to: peer).bytes
                    == Header.size + 12 + 8)
        }
        // both dealers polled together; one decodes the ASSIGN, the other views it in place
        let group = PollGroup()
        group.add(a)
        group.add(b)
        var decoded: Assign?
        var viewed: (Header, [Float])?
        let limits = Limits.training(parameterCount: 3, maxWindows: 8)
        let end = ContinuousClock.now + .seconds(5)
        while (decoded == nil || viewed == nil) && ContinuousClock.now < end {
            let ready = try group.poll(timeout: .milliseconds(20))
            if ready.isReadable(a) {
                a.receive(limits: { limits }) { inbound in
                    if case .message(_, let env, _) = inbound, case .assign(let x) = env.message { decoded = x }
                    return true
                }
            }
            if ready.isReadable(b) {
                b.receive(limits: { limits }, assignView: true) { inbound in
                    if case .assign(_, let v, let w, _, _) = inbound {
                        var out = [Float](repeating: 0, count: 3)
                        out.withUnsafeMutableBufferPointer { try? Wire.readFloats(w, offset: 0, count: 3, into: $0) }
                        viewed = (v.header, out)
                    }
                    return true
                }
            }
        }
        #expect(decoded?.weights == weights && decoded?.windows == [5, 9])
        #expect(viewed?.1 == weights && viewed?.0.count == 2)
    }

    /// A worker of the sharded design: one context, a ROUTER bound for its peers and a DEALER
    /// connected to several addresses, polled together.
    @Test func oneDealerToSeveralRoutersInOneContext() throws {
        let (a1, d1) = try ipcAddress()
        let (a2, d2) = try ipcAddress()
        defer {
            try? FileManager.default.removeItem(at: d1)
            try? FileManager.default.removeItem(at: d2)
        }
        let context = try Context(blocky: false)
        defer { try? context.terminate() }
        let r1 = try RouterEndpoint(bind: [a1], options: EndpointOptions(), context: context, logger: logger)
        defer { r1.close() }
        let r2 = try RouterEndpoint(bind: [a2], options: EndpointOptions(), context: context, logger: logger)
        defer { r2.close() }
        let dealer = try DealerEndpoint(connect: [r1.endpoint, r2.endpoint], options: EndpointOptions(), context: context, logger: logger)
        defer { dealer.close() }
        #expect(dealer.addresses.count == 2)
        let group = PollGroup()
        group.add(r1)
        group.add(r2)
        var got = (0, 0)
        let end = ContinuousClock.now + .seconds(5)
        var sent = 0
        while (got.0 == 0 || got.1 == 0) && ContinuousClock.now < end {
            // round-robin over the connections once both are up: keep saying HELLO until each router heard one
            if sent < 200 { dealer.send(hello()); sent += 1 }
            let ready = try group.poll(timeout: .milliseconds(10))
            if ready.isReadable(r1) { got.0 += r1.receive(limits: .handshake) { _ in } }
            if ready.isReadable(r2) { got.1 += r2.receive(limits: .handshake) { _ in } }
        }
        #expect(got.0 > 0 && got.1 > 0)
    }

    @Test func sendToAGonePeerIsCountedNotThrown() throws {
        let (address, dir) = try ipcAddress()
        defer { try? FileManager.default.removeItem(at: dir) }
        let router = try RouterEndpoint(bind: [address], options: EndpointOptions(), logger: logger)
        defer { router.close() }
        let outcome = router.send(Envelope(runID: 0, workerID: 0, message: .heartbeat), to: [1, 2, 3])
        guard case .unreachable = outcome else {
            Issue.record("expected unreachable, got \(outcome)")
            return
        }
        #expect(router.unsent == 1)
    }

    @Test func rateLimitedLogSuppressesWithinInterval() {
        var log = RateLimitedLog(interval: 5, level: .trace)
        let quiet = Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }
        log.log(quiet, key: "k", now: 0, "one")
        log.log(quiet, key: "k", now: 1, "two")
        log.log(quiet, key: "k", now: 6, "three")
        #expect(log.interval == 5)
    }
}
