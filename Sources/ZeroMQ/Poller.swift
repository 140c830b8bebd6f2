import CZeroMQ
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Readiness conditions for ``Poller`` and ``Socket/poll(_:timeout:)``.
public struct PollEvents: OptionSet, Sendable, Hashable {
    /// The `ZMQ_POLL*` bits.
    public let rawValue: Int16
    /// Creates events from libzmq's `ZMQ_POLL*` bits.
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// `ZMQ_POLLIN`: at least one message (or byte, for a file descriptor) can be read.
    public static let readable = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// `ZMQ_POLLOUT`: at least one message can be sent without blocking.
    public static let writable = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// `ZMQ_POLLERR`: an error condition (file descriptors only).
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))
    /// `ZMQ_POLLPRI`: urgent data (file descriptors only).
    public static let priority = PollEvents(rawValue: Int16(ZMQ_POLLPRI))
}

/// Waits on several sockets and file descriptors at once (`zmq_poll`).
///
/// ```swift
/// let poller = Poller()
/// poller.register(workers, for: .readable)
/// poller.register(control, for: .readable)
/// let ready = try poller.poll(timeout: .seconds(1))
/// if ready.events(for: workers).contains(.readable) { ... }
/// ```
///
/// A poller is not `Sendable`; use it from one thread. Registered sockets must stay
/// open while polling (a closed socket makes ``poll(timeout:)`` fail with
/// ``ZMQError/Kind/socketClosed``).
public final class Poller {
    /// Something a poller watches.
    public enum Item: Sendable {
        /// A ZeroMQ socket.
        case socket(Socket)
        /// A raw file descriptor (socket, pipe, ...).
        case fileDescriptor(Int32)

        func matches(_ other: Item) -> Bool {
            switch (self, other) {
            case let (.socket(a), .socket(b)): a === b
            case let (.fileDescriptor(a), .fileDescriptor(b)): a == b
            default: false
            }
        }
    }

    /// One item that is ready after ``Poller/poll(timeout:)``.
    public struct Ready: Sendable {
        /// The registration index (as returned by `register`).
        public let index: Int
        /// The item.
        public let item: Item
        /// The events that are ready (a subset of the registered ones, plus `.error`).
        public let events: PollEvents

        /// The socket, if the item is a socket.
        public var socket: Socket? {
            if case let .socket(socket) = item { socket } else { nil }
        }

        /// The file descriptor, if the item is a file descriptor.
        public var fileDescriptor: Int32? {
            if case let .fileDescriptor(fd) = item { fd } else { nil }
        }
    }

    /// The outcome of one ``Poller/poll(timeout:)``: the ready items only.
    public struct Result: Sendable {
        /// The items with at least one ready event, in registration order.
        public let ready: [Ready]

        /// Whether nothing was ready (the poll timed out).
        public var isEmpty: Bool { ready.isEmpty }

        /// The ready events of `socket` (empty if it is not ready or not registered).
        public func events(for socket: Socket) -> PollEvents {
            ready.first { $0.item.matches(.socket(socket)) }?.events ?? []
        }

        /// The ready events of file descriptor `fd`.
        public func events(forFileDescriptor fd: Int32) -> PollEvents {
            ready.first { $0.item.matches(.fileDescriptor(fd)) }?.events ?? []
        }

        /// Whether `socket` is readable.
        public func isReadable(_ socket: Socket) -> Bool {
            events(for: socket).contains(.readable)
        }
    }

    private var entries: [(item: Item, events: PollEvents)] = []

    /// Creates an empty poller.
    public init() {}

    /// The registered items, in registration order.
    public var items: [Item] { entries.map(\.item) }

    /// Watches `socket` for `events`; registering the same socket again replaces its
    /// events. Returns the registration index.
    @discardableResult
    public func register(_ socket: Socket, for events: PollEvents = .readable) -> Int {
        register(.socket(socket), events)
    }

    /// Watches a raw file descriptor for `events`; registering the same descriptor
    /// again replaces its events. Returns the registration index.
    @discardableResult
    public func register(fileDescriptor: Int32, for events: PollEvents = .readable) -> Int {
        register(.fileDescriptor(fileDescriptor), events)
    }

    /// Stops watching `socket`. Indices of later registrations shift down by one.
    public func unregister(_ socket: Socket) {
        entries.removeAll { $0.item.matches(.socket(socket)) }
    }

    /// Stops watching file descriptor `fd`. Indices of later registrations shift down by one.
    public func unregister(fileDescriptor fd: Int32) {
        entries.removeAll { $0.item.matches(.fileDescriptor(fd)) }
    }

    private func register(_ item: Item, _ events: PollEvents) -> Int {
        if let index = entries.firstIndex(where: { $0.item.matches(item) }) {
            entries[index].events = events
            return index
        }
        entries.append((item, events))
        return entries.count - 1
    }

    /// Waits until at least one registered item is ready or `timeout` passes.
    ///
    /// - Parameter timeout: `nil` waits indefinitely (not allowed with no items),
    ///   `.zero` returns immediately.
    /// - Returns: the ready items; empty on timeout.
    public func poll(timeout: Duration?) throws(ZMQError) -> Result {
        if entries.isEmpty && timeout == nil {
            throw ZMQError(errno: EINVAL, operation: "poll (no items, no timeout)")
        }
        var items: [zmq_pollitem_t] = []
        items.reserveCapacity(entries.count)
        for entry in entries {
            switch entry.item {
            case let .socket(socket):
                let handle = try socket.rawHandle("poll(\(socket.type) socket)")
                items.append(zmq_pollitem_t(socket: handle, fd: 0, events: entry.events.rawValue, revents: 0))
            case let .fileDescriptor(fd):
                items.append(zmq_pollitem_t(socket: nil, fd: fd, events: entry.events.rawValue, revents: 0))
            }
        }
        let count = Int32(items.count)
        try items.withUnsafeMutableBufferPointer { (buffer) throws(ZMQError) in
            try Self.poll(items: buffer.baseAddress, count: count, timeout: timeout)
        }
        var ready: [Ready] = []
        for (index, item) in items.enumerated() where item.revents != 0 {
            ready.append(Ready(index: index, item: entries[index].item, events: PollEvents(rawValue: item.revents)))
        }
        return Result(ready: ready)
    }

    /// `zmq_poll` with EINTR retried against the remaining time.
    static func poll(items: UnsafeMutablePointer<zmq_pollitem_t>?, count: Int32, timeout: Duration?) throws(ZMQError) {
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now.advanced(by: $0) }
        var milliseconds: Int = timeout.map { Int(clamping: $0.zmqMilliseconds) } ?? -1
        while zmq_poll(items, count, milliseconds) < 0 {
            let error = ZMQError.last("poll")
            guard error.kind == .interrupted else { throw error }
            if let deadline {
                milliseconds = Int(clamping: clock.now.duration(to: deadline).zmqMilliseconds)
            }
        }
    }
}
