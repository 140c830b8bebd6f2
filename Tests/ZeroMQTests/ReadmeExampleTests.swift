import Foundation
import Testing
import ZeroMQ

@Suite("Documentation")
struct ReadmeExampleTests {
    @Test("the README example in ZeroMQ.swift works as written")
    func readmeExample() throws {
        let context = try Context(blocky: false)        // sockets default to linger 0

        let router = try context.socket(.router)
        try router.setRouterMandatory(true)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint         // "tcp://127.0.0.1:41234"

        let dealer = try context.socket(.dealer)
        try dealer.setRoutingID(Array("worker-1".utf8))
        try dealer.connect(endpoint)
        try dealer.send(parts: [Array("grad".utf8), [1, 2, 3] as [UInt8]])

        var replied = false
        if let frames = try router.receiveMultipart(timeout: .seconds(5)) {
            #expect(frames == [Array("worker-1".utf8), Array("grad".utf8), [1, 2, 3]])
            try router.send(parts: [frames[0], Array("ok".utf8)])
            replied = true
        }
        #expect(replied)
        let reply = try dealer.receiveString()          // "ok"
        #expect(reply == "ok")
    }

    @Test("unbind and disconnect release endpoints")
    func unbindAndDisconnect() throws {
        let context = try makeContext()
        let pull = try context.socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint
        let push = try context.socket(.push)
        try push.connect(endpoint)
        try push.send("before")
        #expect(try pull.receiveString(timeout: .seconds(10)) == "before")

        try push.disconnect(endpoint)
        #expect(throws: ZMQError.self) { try push.disconnect(endpoint) }  // no longer connected
        try pull.unbind(endpoint)
        #expect(throws: ZMQError.self) { try pull.unbind(endpoint) }      // no longer bound

        // The port is free again (released asynchronously, so retry briefly).
        let other = try context.socket(.pull)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        var bound = false
        while !bound && clock.now < deadline {
            do {
                try other.bind(endpoint)
                bound = true
            } catch {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        #expect(bound)
    }
}
