import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Timeouts, non-blocking calls and polling")
struct TimeoutAndPollerTests {
    @Test("ZMQ_RCVTIMEO makes a blocking receive throw wouldBlock after roughly the timeout")
    func receiveTimeoutOption() throws {
        let context = try makeContext()
        let socket = try context.socket(.pull)
        try socket.bind(uniqueInproc())
        try socket.setReceiveTimeout(.milliseconds(200))
        #expect(try socket.receiveTimeout == .milliseconds(200))

        let (error, elapsed) = measure {
            #expect(throws: ZMQError.self) { _ = try socket.receive() }
        }
        #expect(error?.kind == .wouldBlock)
        #expect(error?.errno == EAGAIN)
        #expect(elapsed >= .milliseconds(150), "returned after \(elapsed)")
    }

    @Test("receive(timeout:) returns nil after roughly the timeout")
    func receiveWithTimeoutReturnsNil() throws {
        let context = try makeContext()
        let socket = try context.socket(.dealer)
        try socket.bind(uniqueInproc())
        let (result, elapsed) = try measure { try socket.receiveMultipart(timeout: .milliseconds(200)) }
        #expect(result == nil)
        #expect(elapsed >= .milliseconds(150), "returned after \(elapsed)")
    }

    @Test(".dontWait with nothing queued throws wouldBlock; sends block-free too")
    func dontWait() throws {
        let context = try makeContext()
        let socket = try context.socket(.pair)
        try socket.bind(uniqueInproc())
        let error = #expect(throws: ZMQError.self) { _ = try socket.receive(flags: .dontWait) }
        #expect(error?.kind == .wouldBlock)
        #expect(error?.isWouldBlock == true)

        // A PAIR with no peer cannot send: .dontWait gives wouldBlock instead of blocking.
        let sendError = #expect(throws: ZMQError.self) { try socket.send("x", flags: .dontWait) }
        #expect(sendError?.kind == .wouldBlock)

        // So does a send timeout.
        try socket.setSendTimeout(.milliseconds(50))
        let timeoutError = #expect(throws: ZMQError.self) { try socket.send("x") }
        #expect(timeoutError?.kind == .wouldBlock)
    }

    @Test("Poller reports readability only after a send")
    func pollerReadability() throws {
        let context = try makeContext()
        let a = try context.socket(.pair)
        let b = try context.socket(.pair)
        let endpoint = uniqueInproc()
        try b.bind(endpoint)
        try a.connect(endpoint)

        let poller = Poller()
        #expect(poller.register(b, for: .readable) == 0)
        #expect(poller.register(a, for: .writable) == 1)

        var result = try poller.poll(timeout: .zero)
        #expect(!result.isReadable(b))
        #expect(result.events(for: a).contains(.writable))
        #expect(try b.events.contains(.readable) == false)

        try a.send("wake up")
        result = try poller.poll(timeout: .seconds(10))
        #expect(result.isReadable(b))
        #expect(result.ready.contains { $0.socket === b && $0.index == 0 })
        #expect(try b.events.contains(.readable))
        #expect(try b.receiveString(flags: .dontWait) == "wake up")

        poller.unregister(a)
        result = try poller.poll(timeout: .milliseconds(50))
        #expect(result.isEmpty)
        #expect(poller.items.count == 1)
    }

    @Test("Poller watches raw file descriptors")
    func pollerFileDescriptor() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        let poller = Poller()
        poller.register(fileDescriptor: fds[0], for: .readable)
        #expect(try poller.poll(timeout: .zero).isEmpty)

        var byte: UInt8 = 42
        #expect(write(fds[1], &byte, 1) == 1)
        let result = try poller.poll(timeout: .seconds(10))
        #expect(result.events(forFileDescriptor: fds[0]).contains(.readable))
        #expect(result.ready.first?.fileDescriptor == fds[0])
    }

    @Test("ZMQ_FD is a valid descriptor")
    func socketFileDescriptor() throws {
        let context = try makeContext()
        let socket = try context.socket(.dealer)
        #expect(try socket.fileDescriptor >= 0)
    }

    @Test("an empty poller without timeout is rejected instead of blocking forever")
    func emptyPollerWithoutTimeout() throws {
        let error = #expect(throws: ZMQError.self) { _ = try Poller().poll(timeout: nil) }
        #expect(error?.kind == .invalidArgument)
    }
}
