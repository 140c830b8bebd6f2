import Foundation
import Testing
import ZeroMQ

@Suite("Messaging over real sockets")
struct MessagingTests {
    @Test("library version and capabilities")
    func versionAndCapabilities() {
        let version = ZeroMQ.version
        #expect(version.major == 4)
        #expect(version.minor >= 2)
        // (Bound first: `#expect` would treat the module name `ZeroMQ` as a value.)
        let hasCurve = ZeroMQ.has("curve")
        let hasNonsense = ZeroMQ.has("no-such-capability")
        #expect(hasCurve)
        #expect(!hasNonsense)
    }

    @Test("PAIR round trip", arguments: Transport.allCases)
    func pairRoundTrip(transport: Transport) throws {
        try withTemporaryDirectory { directory in
            let context = try makeContext()
            let a = try context.socket(.pair)
            let b = try context.socket(.pair)
            let endpoint = try bindEndpoint(a, transport, directory: directory)
            try b.connect(endpoint)

            try b.send("ping")
            #expect(try a.receiveString(timeout: .seconds(10)) == "ping")
            try a.send([1, 2, 3] as [UInt8])
            #expect(try b.receive(timeout: .seconds(10)) == [1, 2, 3])
        }
    }

    @Test("DEALER/ROUTER round trip", arguments: Transport.allCases)
    func dealerRouterRoundTrip(transport: Transport) throws {
        try withTemporaryDirectory { directory in
            let context = try makeContext()
            let router = try context.socket(.router)
            let dealer = try context.socket(.dealer)
            let endpoint = try bindEndpoint(router, transport, directory: directory)
            #expect(try router.lastEndpoint == endpoint)
            try dealer.connect(endpoint)

            try dealer.send(parts: [Array("hello".utf8), [0xFF]])
            let request = try #require(try router.receiveMultipart(timeout: .seconds(10)))
            #expect(request.count == 3)
            #expect(request.dropFirst().map { $0 } == [Array("hello".utf8), [0xFF]])
            #expect(request[0].isEmpty == false)

            try router.send(parts: [request[0], Array("world".utf8)])
            #expect(try dealer.receiveString(timeout: .seconds(10)) == "world")
        }
    }

    @Test("bind tcp://127.0.0.1:* reports the real port")
    func tcpWildcardLastEndpoint() throws {
        let context = try makeContext()
        let server = try context.socket(.pull)
        try server.bind("tcp://127.0.0.1:*")
        let endpoint = try server.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let port = try #require(tcpPort(of: endpoint))
        #expect(port > 0 && port < 65536)

        let client = try context.socket(.push)
        try client.connect(endpoint)
        try client.send("via real port")
        #expect(try server.receiveString(timeout: .seconds(10)) == "via real port")
    }

    @Test("multipart keeps empty frames and a 4 MB frame intact", arguments: [Transport.inproc, .tcp])
    func multipartIntact(transport: Transport) throws {
        try withTemporaryDirectory { directory in
            let context = try makeContext()
            let receiver = try context.socket(.pair)
            let sender = try context.socket(.pair)
            try sender.connect(try bindEndpoint(receiver, transport, directory: directory))

            let big = pattern(count: 4 * 1024 * 1024, seed: 3)
            let parts: [[UInt8]] = [[], [1, 2, 3], [], big, []]
            try sender.send(parts: parts)

            let frames = try #require(try receiver.receiveMultipart(timeout: .seconds(20)))
            #expect(frames.map(\.count) == [0, 3, 0, big.count, 0])
            #expect(frames[1] == [1, 2, 3])
            let bigIntact = frames.count == 5 && frames[3] == big
            #expect(bigIntact, "the 4 MB frame was not received intact")
            #expect(try receiver.receiveMore == false)
        }
    }

    @Test("mixed part types, Message reuse and zero-copy receive")
    func messagesAndMixedParts() throws {
        let context = try makeContext()
        let receiver = try context.socket(.pair)
        let sender = try context.socket(.pair)
        let endpoint = uniqueInproc()
        try receiver.bind(endpoint)
        try sender.connect(endpoint)

        // A payload written straight into libzmq's buffer.
        let floats: [Float] = [1.5, -2.25, 3.0, 1e-3]
        let message = try Message(count: floats.count * MemoryLayout<Float>.size) { buffer in
            floats.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
        // The same Message is sent twice: it is not consumed.
        try sender.send(message)
        try sender.send(message)
        #expect(message.count == 16)

        for _ in 0..<2 {
            let received = try #require(try receiver.receiveMessage(timeout: .seconds(10)))
            #expect(received.more == false)
            let decoded = received.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(decoded == floats)
        }

        // Multipart from a mix of Data, Message, [UInt8] and an unsafe buffer.
        let header = try Message("header")
        try floats.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            try sender.send(parts: [Data([9, 8]), header, [7] as [UInt8], raw])
        }
        let messages = try #require(try receiver.receiveMultipartMessages(timeout: .seconds(10)))
        #expect(messages.map(\.count) == [2, 6, 1, 16])
        #expect(messages.map(\.more) == [true, true, true, false])
        #expect(messages[0].bytes == [9, 8])
        #expect(messages[1].string == "header")
        #expect(messages[2].bytes == [7])
        #expect(messages[3].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } == floats)
    }

    @Test("send from an unsafe buffer with more:, receive into a buffer with truncation")
    func unsafeBufferSendAndReceiveInto() throws {
        let context = try makeContext()
        let receiver = try context.socket(.pair)
        let sender = try context.socket(.pair)
        let endpoint = uniqueInproc()
        try receiver.bind(endpoint)
        try sender.connect(endpoint)

        let payload = pattern(count: 100, seed: 9)
        try payload.withUnsafeBytes { raw in
            try sender.send(UnsafeRawBufferPointer(rebasing: raw[0..<10]), more: true)
            try sender.send(raw, more: false)
        }
        #expect(try receiver.poll(.readable, timeout: .seconds(10)).contains(.readable))

        var small = [UInt8](repeating: 0, count: 10)
        let firstSize = try small.withUnsafeMutableBytes { try receiver.receive(into: $0) }
        #expect(firstSize == 10)
        #expect(small == Array(payload[0..<10]))
        #expect(try receiver.receiveMore)

        var truncated = [UInt8](repeating: 0, count: 40)
        let fullSize = try truncated.withUnsafeMutableBytes { try receiver.receive(into: $0) }
        #expect(fullSize == 100, "receive(into:) reports the full size of a truncated frame")
        #expect(truncated == Array(payload[0..<40]))
        #expect(try receiver.receiveMore == false)
    }

    @Test("PUB/SUB delivers only subscribed prefixes")
    func pubSubFilter() throws {
        let context = try makeContext()
        let publisher = try context.socket(.pub)
        let subscriber = try context.socket(.sub)
        try publisher.bind("tcp://127.0.0.1:*")
        try subscriber.subscribe("weather")
        try subscriber.connect(try publisher.lastEndpoint)

        // Subscriptions propagate asynchronously ("slow joiner"): publish until one arrives.
        var received: [String] = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while received.isEmpty && clock.now < deadline {
            try publisher.send("news: ignore me")
            try publisher.send("weather: sunny")
            if let text = try subscriber.receiveString(timeout: .milliseconds(20)) {
                received.append(text)
            }
        }
        try publisher.send("news: ignore me too")
        try publisher.send("weather: rain")
        while let text = try subscriber.receiveString(timeout: .milliseconds(200)) {
            received.append(text)
        }
        #expect(received.contains("weather: sunny"))
        #expect(received.last == "weather: rain")
        #expect(received.allSatisfy { $0.hasPrefix("weather") }, "got \(received)")
    }

    @Test("XPUB receives the subscription of an XSUB/SUB peer")
    func xpubSeesSubscriptions() throws {
        let context = try makeContext()
        let publisher = try context.socket(.xpub)
        let subscriber = try context.socket(.sub)
        let endpoint = uniqueInproc()
        try publisher.bind(endpoint)
        try subscriber.connect(endpoint)
        try subscriber.subscribe("topic")
        let subscription = try #require(try publisher.receive(timeout: .seconds(10)))
        #expect(subscription == [1] + Array("topic".utf8))
        try subscriber.unsubscribe("topic")
        #expect(try publisher.receive(timeout: .seconds(10)) == [0] + Array("topic".utf8))
    }

    @Test("PUSH/PULL fans in from several pushers")
    func pushPull() throws {
        try withTemporaryDirectory { directory in
            let context = try makeContext()
            let pull = try context.socket(.pull)
            let endpoint = try bindEndpoint(pull, .ipc, directory: directory)
            let pushers = try (0..<3).map { _ in try context.socket(.push) }
            for (index, push) in pushers.enumerated() {
                try push.connect(endpoint)
                for n in 0..<5 { try push.send("p\(index)-\(n)") }
            }
            var received: [String] = []
            while received.count < 15, let text = try pull.receiveString(timeout: .seconds(10)) {
                received.append(text)
            }
            #expect(received.count == 15)
            for index in 0..<3 {
                // Per-sender order is preserved.
                #expect(received.filter { $0.hasPrefix("p\(index)-") } == (0..<5).map { "p\(index)-\($0)" })
            }
            #expect(try pull.receive(timeout: .milliseconds(50)) == nil)
        }
    }
}
