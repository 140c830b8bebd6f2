import Foundation
import Testing
import ZeroMQ

@Suite("Socket options")
struct OptionsTests {
    @Test("typed options round trip through their getters")
    func optionsRoundTrip() throws {
        let context = try makeContext()
        let socket = try context.socket(.dealer)

        try socket.setSendHighWaterMark(123)
        try socket.setReceiveHighWaterMark(456)
        #expect(try socket.sendHighWaterMark == 123)
        #expect(try socket.receiveHighWaterMark == 456)

        try socket.setLinger(.milliseconds(250))
        #expect(try socket.linger == .milliseconds(250))
        try socket.setLinger(nil)
        #expect(try socket.linger == nil)
        try socket.setLinger(.zero)
        #expect(try socket.linger == .zero)

        #expect(try socket.maxMessageSize == nil)
        try socket.setMaxMessageSize(1 << 33)
        #expect(try socket.maxMessageSize == 1 << 33)
        try socket.setMaxMessageSize(nil)
        #expect(try socket.maxMessageSize == nil)

        try socket.setHeartbeatInterval(.milliseconds(500))
        try socket.setHeartbeatTimeout(.milliseconds(1500))
        try socket.setHeartbeatTTL(.milliseconds(3000))
        #expect(try socket.heartbeatInterval == .milliseconds(500))
        #expect(try socket.heartbeatTimeout == .milliseconds(1500))
        #expect(try socket.heartbeatTTL == .milliseconds(3000))

        try socket.setRoutingID([1, 2, 3, 250])
        #expect(try socket.routingID == [1, 2, 3, 250])

        try socket.setImmediate(true)
        #expect(try socket.immediate)
        try socket.setIPv6(true)
        #expect(try socket.ipv6)

        try socket.setReconnectInterval(.milliseconds(50))
        try socket.setReconnectIntervalMax(.seconds(2))
        #expect(try socket.reconnectInterval == .milliseconds(50))
        #expect(try socket.reconnectIntervalMax == .seconds(2))
        try socket.setReconnectInterval(nil)
        #expect(try socket.reconnectInterval == nil)

        try socket.setSendTimeout(.milliseconds(1))
        try socket.setReceiveTimeout(nil)
        #expect(try socket.sendTimeout == .milliseconds(1))
        #expect(try socket.receiveTimeout == nil)

        // Sub-millisecond durations round up rather than becoming 0 (= non-blocking).
        try socket.setReceiveTimeout(.microseconds(10))
        #expect(try socket.receiveTimeout == .milliseconds(1))

        // The raw escape hatch reads the same values.
        #expect(try socket.int32Option(23) == 123)  // ZMQ_SNDHWM
        try socket.setOption(23, int32: 77)
        #expect(try socket.sendHighWaterMark == 77)
    }

    @Test("invalid option values are rejected with invalidArgument")
    func invalidOptionValues() throws {
        let context = try makeContext()
        let socket = try context.socket(.dealer)
        #expect(throws: ZMQError.self) { try socket.setSendHighWaterMark(-1) }
        #expect(throws: ZMQError.self) { try socket.setSendHighWaterMark(Int(Int32.max) + 1) }
        #expect(throws: ZMQError.self) { try socket.setMaxMessageSize(-5) }
        let error = #expect(throws: ZMQError.self) { try socket.setRoutingID([UInt8]()) }
        #expect(error?.kind == .invalidArgument)
        #expect(throws: ZMQError.self) { try socket.setCurvePublicKey("too short") }
        #expect(throws: ZMQError.self) { try socket.setCurveServerKey([UInt8](repeating: 1, count: 31)) }
    }

    @Test("maxMessageSize drops an oversized message; small ones pass on a fresh connection")
    func maxMessageSize() throws {
        let context = try makeContext()
        let receiver = try context.socket(.pull)
        try receiver.setMaxMessageSize(1000)
        #expect(try receiver.maxMessageSize == 1000)
        try receiver.bind("tcp://127.0.0.1:*")
        let endpoint = try receiver.lastEndpoint

        let oversized = try context.socket(.push)
        try oversized.connect(endpoint)
        try oversized.send(pattern(count: 5000))
        // The peer is disconnected by the receiver and the message never arrives.
        #expect(try receiver.receive(timeout: .milliseconds(700)) == nil)
        oversized.close()

        let fresh = try context.socket(.push)
        try fresh.connect(endpoint)
        try fresh.send(pattern(count: 100, seed: 1))
        try fresh.send(pattern(count: 1000, seed: 2))  // exactly at the limit
        #expect(try receiver.receive(timeout: .seconds(10)) == pattern(count: 100, seed: 1))
        #expect(try receiver.receive(timeout: .seconds(10)) == pattern(count: 1000, seed: 2))
        #expect(try receiver.receive(timeout: .milliseconds(100)) == nil)
    }
}
