import Foundation
import Testing
import ZeroMQ

@Suite("ROUTER addressing")
struct RoutingTests {
    @Test("ROUTER routes replies by the DEALERs' routing ids")
    func routesByRoutingID() throws {
        let context = try makeContext()
        let router = try context.socket(.router)
        let endpoint = uniqueInproc("router")
        try router.bind(endpoint)

        let ids = ["worker-1", "worker-2", "worker-3"]
        var dealers: [String: Socket] = [:]
        for id in ids {
            let dealer = try context.socket(.dealer)
            try dealer.setRoutingID(id)
            #expect(try dealer.routingID == Array(id.utf8))
            try dealer.connect(endpoint)
            try dealer.send("hello from \(id)")
            dealers[id] = dealer
        }

        var seen: Set<String> = []
        for _ in ids {
            let frames = try #require(try router.receiveMultipart(timeout: .seconds(10)))
            try #require(frames.count == 2)
            let id = String(decoding: frames[0], as: UTF8.self)
            #expect(String(decoding: frames[1], as: UTF8.self) == "hello from \(id)")
            seen.insert(id)
        }
        #expect(seen == Set(ids))

        // Reply in an order different from arrival; each dealer must get its own.
        for id in ids.reversed() {
            try router.send(parts: [Array(id.utf8), Array("reply to \(id)".utf8)])
        }
        for id in ids {
            let dealer = try #require(dealers[id])
            #expect(try dealer.receiveString(timeout: .seconds(10)) == "reply to \(id)")
            #expect(try dealer.receive(timeout: .milliseconds(20)) == nil)
        }
    }

    @Test("routerMandatory: sending to an unknown routing id is hostUnreachable")
    func routerMandatoryUnknownPeer() throws {
        let context = try makeContext()
        let router = try context.socket(.router)
        try router.setRouterMandatory(true)
        try router.bind(uniqueInproc())

        let error = #expect(throws: ZMQError.self) {
            try router.send(parts: [Array("nobody".utf8), Array("payload".utf8)])
        }
        #expect(error?.kind == .hostUnreachable)
        #expect(error?.errno == EHOSTUNREACH)
        #expect(error?.description.contains(error?.message ?? "<none>") == true)
    }

    @Test("without routerMandatory, unknown routing ids are silently dropped")
    func routerDefaultDropsUnknownPeer() throws {
        let context = try makeContext()
        let router = try context.socket(.router)
        try router.bind(uniqueInproc())
        try router.send(parts: [Array("nobody".utf8), Array("payload".utf8)])
    }
}
