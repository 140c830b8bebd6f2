import CZeroMQ
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The libzmq socket types.
public enum SocketType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// `ZMQ_PAIR`: exclusive pair.
    case pair = 0
    /// `ZMQ_PUB`: publisher (send only, fan-out).
    case pub = 1
    /// `ZMQ_SUB`: subscriber (receive only, needs ``Socket/subscribe(_:)-(String)``).
    case sub = 2
    /// `ZMQ_REQ`: strict request/reply client.
    case req = 3
    /// `ZMQ_REP`: strict request/reply server.
    case rep = 4
    /// `ZMQ_DEALER`: asynchronous, load-balancing request socket.
    case dealer = 5
    /// `ZMQ_ROUTER`: asynchronous reply socket addressing peers by routing id.
    case router = 6
    /// `ZMQ_PULL`: pipeline receiver (fair-queued).
    case pull = 7
    /// `ZMQ_PUSH`: pipeline sender (load-balanced).
    case push = 8
    /// `ZMQ_XPUB`: publisher that also receives subscription messages.
    case xpub = 9
    /// `ZMQ_XSUB`: subscriber that sends subscriptions as messages.
    case xsub = 10

    /// The lower-case name, e.g. `dealer`.
    public var description: String {
        switch self {
        case .pair: "pair"
        case .pub: "pub"
        case .sub: "sub"
        case .req: "req"
        case .rep: "rep"
        case .dealer: "dealer"
        case .router: "router"
        case .pull: "pull"
        case .push: "push"
        case .xpub: "xpub"
        case .xsub: "xsub"
        }
    }
}

/// Flags for sending a frame.
public struct SendFlags: OptionSet, Sendable, Hashable {
    /// The libzmq flag bits.
    public let rawValue: Int32
    /// Creates flags from libzmq's `ZMQ_DONTWAIT`/`ZMQ_SNDMORE` bits.
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// `ZMQ_DONTWAIT`: fail with ``ZMQError/Kind/wouldBlock`` instead of blocking.
    public static let dontWait = SendFlags(rawValue: ZMQ_DONTWAIT)
    /// `ZMQ_SNDMORE`: more frames of the same message follow.
    public static let more = SendFlags(rawValue: ZMQ_SNDMORE)
}

/// Flags for receiving a frame.
public struct ReceiveFlags: OptionSet, Sendable, Hashable {
    /// The libzmq flag bits.
    public let rawValue: Int32
    /// Creates flags from libzmq's `ZMQ_DONTWAIT` bit.
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// `ZMQ_DONTWAIT`: fail with ``ZMQError/Kind/wouldBlock`` if nothing is queued.
    public static let dontWait = ReceiveFlags(rawValue: ZMQ_DONTWAIT)
}

/// A libzmq socket.
///
/// **Threading rule:** a socket may be handed from thread to thread (it is
/// `Sendable`), but only one thread may use it at a time — libzmq sockets are not
/// thread-safe. The one exception is waking up a thread that is blocked in a call
/// on this socket: call ``Context/shutdown()`` from the other thread; the blocked
/// call then fails with ``ZMQError/Kind/contextTerminated``.
///
/// The socket is closed by ``close()`` (idempotent) or, at the latest, when it is
/// released (`deinit`), so sockets close deterministically. Operations on a closed
/// socket fail with ``ZMQError/Kind/socketClosed``.
///
/// Receiving, and what "nothing arrived" looks like:
/// - `receive…(flags:)` block (subject to ``setReceiveTimeout(_:)``); with
///   `.dontWait`, or when the receive timeout expires, they throw
///   ``ZMQError/Kind/wouldBlock``;
/// - `receive…(timeout:)` wait at most `timeout` and return `nil` if nothing came.
///
/// Blocking calls retry on EINTR. Time-valued options have millisecond resolution.
public final class Socket: @unchecked Sendable {
    /// The context this socket belongs to (kept alive by the socket).
    public let context: Context
    /// The socket type.
    public let type: SocketType
    /// The libzmq socket; `nil` once closed. Accessed only by the thread currently
    /// owning the socket (see the type's threading rule).
    private var handle: UnsafeMutableRawPointer?

    /// Creates a socket of `type` in `context` (`zmq_socket`).
    public init(context: Context, type: SocketType) throws(ZMQError) {
        self.context = context
        self.type = type
        self.handle = try context.makeRawSocket(type)
    }

    deinit {
        close()
    }

    /// Closes the socket (`zmq_close`). Idempotent.
    ///
    /// Pending outgoing messages are still delivered in the background for up to the
    /// linger period (see ``setLinger(_:)``), which also delays ``Context/terminate()``.
    public func close() {
        guard let handle else { return }
        self.handle = nil
        zmq_close(handle)
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { handle == nil }

    /// The raw handle, or a `socketClosed` error naming `operation`.
    func rawHandle(_ operation: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(errno: ENOTSOCK, operation: operation()) }
        return handle
    }

    // MARK: - Endpoints

    /// Binds to an endpoint such as `tcp://127.0.0.1:*`, `ipc:///tmp/x.sock` or
    /// `inproc://name` (`zmq_bind`). With a wildcard port, read the chosen endpoint
    /// back from ``lastEndpoint``.
    public func bind(_ endpoint: String) throws(ZMQError) {
        try endpointCall("bind", endpoint, zmq_bind)
    }

    /// Stops accepting connections on a bound endpoint (`zmq_unbind`). For wildcard
    /// binds pass the concrete endpoint from ``lastEndpoint``.
    public func unbind(_ endpoint: String) throws(ZMQError) {
        try endpointCall("unbind", endpoint, zmq_unbind)
    }

    /// Connects to an endpoint (`zmq_connect`). The connection is made (and remade)
    /// asynchronously in the background.
    public func connect(_ endpoint: String) throws(ZMQError) {
        try endpointCall("connect", endpoint, zmq_connect)
    }

    /// Disconnects from an endpoint previously passed to ``connect(_:)`` (`zmq_disconnect`).
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        try endpointCall("disconnect", endpoint, zmq_disconnect)
    }

    private func endpointCall(
        _ name: String,
        _ endpoint: String,
        _ call: (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32
    ) throws(ZMQError) {
        let handle = try rawHandle("\(name)(\(endpoint))")
        guard !endpoint.utf8.contains(0) else {
            throw ZMQError(errno: EINVAL, operation: "\(name)(\(endpoint))")
        }
        let rc = endpoint.withCString { call(handle, $0) }
        if rc != 0 { throw ZMQError.last("\(name)(\(endpoint))") }
    }

    // MARK: - Sending

    /// Sends one frame from `buffer` (`zmq_send`, which copies the bytes once into
    /// the message; no intermediate Swift array is made).
    ///
    /// Blocks while the peer's high-water mark is reached (subject to
    /// ``setSendTimeout(_:)``); with `.dontWait` throws ``ZMQError/Kind/wouldBlock``
    /// instead. Pass `.more` for every frame of a multipart message except the last.
    public func send(_ buffer: UnsafeRawBufferPointer, flags: SendFlags = []) throws(ZMQError) {
        let handle = try rawHandle("send")
        try Self.send(handle, buffer, flags.rawValue)
    }

    /// Sends one frame from `buffer`; `more: true` adds `ZMQ_SNDMORE`.
    public func send(_ buffer: UnsafeRawBufferPointer, more: Bool) throws(ZMQError) {
        try send(buffer, flags: more ? .more : [])
    }

    /// Sends one frame from any contiguous bytes (`[UInt8]`, `ArraySlice<UInt8>`,
    /// `Data`, `UnsafeRawBufferPointer`, ...) without an intermediate copy on the
    /// Swift side; see ``send(_:flags:)-(UnsafeRawBufferPointer,_)``.
    public func send(_ bytes: some ContiguousBytes, flags: SendFlags = []) throws(ZMQError) {
        let handle = try rawHandle("send")
        let result: ZMQError? = bytes.withUnsafeBytes { buffer in
            do throws(ZMQError) {
                try Self.send(handle, buffer, flags.rawValue)
                return nil
            } catch {
                return error
            }
        }
        if let result { throw result }
    }

    /// Sends the UTF-8 bytes of `string` as one frame.
    public func send(_ string: String, flags: SendFlags = []) throws(ZMQError) {
        let handle = try rawHandle("send")
        var string = string
        let result: ZMQError? = string.withUTF8 { utf8 in
            do throws(ZMQError) {
                try Self.send(handle, UnsafeRawBufferPointer(utf8), flags.rawValue)
                return nil
            } catch {
                return error
            }
        }
        if let result { throw result }
    }

    /// Sends a ``Message`` without copying its payload (`zmq_msg_copy` + `zmq_msg_send`).
    ///
    /// The message is not consumed and can be sent again, e.g. the same parameter
    /// blob to every worker.
    public func send(_ message: Message, flags: SendFlags = []) throws(ZMQError) {
        let handle = try rawHandle("send")
        try Self.send(handle, message, flags.rawValue)
    }

    /// Sends a multipart message: `ZMQ_SNDMORE` on every part but the last.
    ///
    /// Parts can be any mix of `[UInt8]`, `Data`, `UnsafeRawBufferPointer`, ...
    /// (copied once by libzmq) and ``Message`` (sent without copying the payload);
    /// empty parts are allowed. libzmq delivers the parts atomically: all or none.
    /// `.dontWait` applies to the first part (later parts never block). If `flags`
    /// contains `.more`, the last part is also sent with `ZMQ_SNDMORE`, so the
    /// message continues with the next send.
    ///
    /// - Throws: ``ZMQError``; `invalidArgument` for an empty `parts` array, and e.g.
    ///   `hostUnreachable` for a ROUTER with ``setRouterMandatory(_:)`` when the first
    ///   part names an unknown peer.
    public func send(parts: [any ContiguousBytes], flags: SendFlags = []) throws(ZMQError) {
        let handle = try rawHandle("send(parts:)")
        guard !parts.isEmpty else {
            throw ZMQError(errno: EINVAL, operation: "send(parts: []) (no parts)")
        }
        let lastIndex = parts.count - 1
        for (index, part) in parts.enumerated() {
            var partFlags = flags
            if index < lastIndex { partFlags.insert(.more) }
            // Check the dynamic type first: `as?` on a `[UInt8]` existential would bridge the whole
            // array through NSArray (boxing every byte) before failing.
            if Swift.type(of: part) == Message.self, let message = part as? Message {
                try Self.send(handle, message, partFlags.rawValue)
                continue
            }
            let result: ZMQError? = part.withUnsafeBytes { buffer in
                do throws(ZMQError) {
                    try Self.send(handle, buffer, partFlags.rawValue)
                    return nil
                } catch {
                    return error
                }
            }
            if let result { throw result }
        }
    }

    private static func send(
        _ handle: UnsafeMutableRawPointer,
        _ buffer: UnsafeRawBufferPointer,
        _ flags: Int32
    ) throws(ZMQError) {
        // libzmq accepts a NULL buffer together with a zero length.
        while zmq_send(handle, buffer.baseAddress, buffer.count, flags) < 0 {
            let error = ZMQError.last("send")
            if error.kind != .interrupted { throw error }
        }
    }

    private static func send(
        _ handle: UnsafeMutableRawPointer,
        _ message: Message,
        _ flags: Int32
    ) throws(ZMQError) {
        var copy = zmq_msg_t()
        try withUnsafeMutablePointer(to: &copy) { (copy: UnsafeMutablePointer<zmq_msg_t>) throws(ZMQError) in
            zmq_msg_init(copy)
            defer { zmq_msg_close(copy) }
            guard zmq_msg_copy(copy, message.pointer) == 0 else {
                throw ZMQError.last("send(message)")
            }
            while zmq_msg_send(copy, handle, flags) < 0 {
                let error = ZMQError.last("send(message)")
                if error.kind != .interrupted { throw error }
            }
        }
    }

    // MARK: - Receiving

    /// Receives one frame as a ``Message`` (`zmq_msg_recv`), without copying its
    /// bytes into Swift memory. Check ``Message/more`` (or ``receiveMore``) for
    /// further frames.
    ///
    /// - Throws: ``ZMQError``; ``ZMQError/Kind/wouldBlock`` with `.dontWait` when
    ///   nothing is queued or when the receive timeout expires.
    public func receiveMessage(flags: ReceiveFlags = []) throws(ZMQError) -> Message {
        let handle = try rawHandle("receive")
        let message = Message()
        try Self.receive(handle, into: message.pointer, flags.rawValue)
        return message
    }

    /// Receives one frame as bytes. See ``receiveMessage(flags:)``.
    public func receive(flags: ReceiveFlags = []) throws(ZMQError) -> [UInt8] {
        try receiveMessage(flags: flags).bytes
    }

    /// Receives one frame and decodes it as UTF-8 (invalid sequences become U+FFFD).
    public func receiveString(flags: ReceiveFlags = []) throws(ZMQError) -> String {
        try receiveMessage(flags: flags).string
    }

    /// Receives one frame into `buffer` (`zmq_recv`) and returns the frame's full
    /// size, which is larger than `buffer.count` if the frame was truncated.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, flags: ReceiveFlags = []) throws(ZMQError) -> Int {
        let handle = try rawHandle("receive(into:)")
        while true {
            let rc = zmq_recv(handle, buffer.baseAddress, buffer.count, flags.rawValue)
            if rc >= 0 { return Int(rc) }
            let error = ZMQError.last("receive(into:)")
            if error.kind != .interrupted { throw error }
        }
    }

    /// Receives all frames of one multipart message as ``Message``s (zero-copy),
    /// reading until `ZMQ_RCVMORE` is 0. `.dontWait` applies to the first frame (the
    /// rest of a message is always already there).
    public func receiveMultipartMessages(flags: ReceiveFlags = []) throws(ZMQError) -> [Message] {
        let handle = try rawHandle("receiveMultipart")
        var messages: [Message] = []
        repeat {
            let message = Message()
            try Self.receive(handle, into: message.pointer, flags.rawValue)
            messages.append(message)
        } while messages[messages.count - 1].more
        return messages
    }

    /// Receives all frames of one multipart message as byte arrays.
    /// See ``receiveMultipartMessages(flags:)``.
    public func receiveMultipart(flags: ReceiveFlags = []) throws(ZMQError) -> [[UInt8]] {
        try receiveMultipartMessages(flags: flags).map(\.bytes)
    }

    /// Waits up to `timeout` for a frame; `nil` if none arrived in time.
    public func receiveMessage(timeout: Duration) throws(ZMQError) -> Message? {
        try untilReadable(timeout) { () throws(ZMQError) in try receiveMessage(flags: .dontWait) }
    }

    /// Waits up to `timeout` for a frame; `nil` if none arrived in time.
    public func receive(timeout: Duration) throws(ZMQError) -> [UInt8]? {
        try untilReadable(timeout) { () throws(ZMQError) in try receive(flags: .dontWait) }
    }

    /// Waits up to `timeout` for a frame and decodes it as UTF-8; `nil` if none arrived in time.
    public func receiveString(timeout: Duration) throws(ZMQError) -> String? {
        try untilReadable(timeout) { () throws(ZMQError) in try receiveString(flags: .dontWait) }
    }

    /// Waits up to `timeout` for a multipart message; `nil` if none arrived in time.
    public func receiveMultipartMessages(timeout: Duration) throws(ZMQError) -> [Message]? {
        try untilReadable(timeout) { () throws(ZMQError) in try receiveMultipartMessages(flags: .dontWait) }
    }

    /// Waits up to `timeout` for a multipart message; `nil` if none arrived in time.
    public func receiveMultipart(timeout: Duration) throws(ZMQError) -> [[UInt8]]? {
        try untilReadable(timeout) { () throws(ZMQError) in try receiveMultipart(flags: .dontWait) }
    }

    /// Retries a non-blocking `attempt` whenever the socket becomes readable, until
    /// it succeeds (result) or `timeout` has passed (`nil`).
    private func untilReadable<R>(_ timeout: Duration, _ attempt: () throws(ZMQError) -> R) throws(ZMQError) -> R? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            do throws(ZMQError) {
                return try attempt()
            } catch {
                if error.kind != .wouldBlock { throw error }
            }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            _ = try poll(.readable, timeout: remaining)
        }
    }

    private static func receive(
        _ handle: UnsafeMutableRawPointer,
        into message: UnsafeMutablePointer<zmq_msg_t>,
        _ flags: Int32
    ) throws(ZMQError) {
        while zmq_msg_recv(message, handle, flags) < 0 {
            let error = ZMQError.last("receive")
            if error.kind != .interrupted { throw error }
        }
    }

    // MARK: - Waiting

    /// Waits until the socket is ready for any of `events` (`zmq_poll` on this
    /// socket alone) and returns the ready events, empty on timeout.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits indefinitely, `.zero` polls.
    public func poll(_ events: PollEvents = .readable, timeout: Duration?) throws(ZMQError) -> PollEvents {
        let handle = try rawHandle("poll")
        var item = zmq_pollitem_t(socket: handle, fd: 0, events: events.rawValue, revents: 0)
        try Poller.poll(items: &item, count: 1, timeout: timeout)
        return PollEvents(rawValue: item.revents)
    }
}
