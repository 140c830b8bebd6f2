import ZeroMQ

/// Polls several endpoints (and file descriptors, such as a compute thread's wake pipe) together:
/// a worker with a DEALER to its coordinator and a ROUTER for its peers waits on both at once.
///
/// ```swift
/// let group = PollGroup()
/// group.add(dealer)
/// group.add(fileDescriptor: wake.readFD)
/// let ready = try group.poll(timeout: .milliseconds(20))
/// if ready.isReadable(dealer) { dealer.receive(limits: { limits }) { _ in true } }
/// ```
public final class PollGroup {
    private let poller = Poller()

    public init() {}

    /// Polls `endpoint` for messages.
    public func add(_ endpoint: RouterEndpoint) { poller.register(endpoint.socket, for: .readable) }
    /// Polls `endpoint` for messages.
    public func add(_ endpoint: DealerEndpoint) { poller.register(endpoint.socket, for: .readable) }
    /// Polls `fileDescriptor` for reading.
    public func add(fileDescriptor: Int32) { poller.register(fileDescriptor: fileDescriptor, for: .readable) }

    /// Waits up to `timeout` (nil: forever) until something is readable.
    public func poll(timeout: Duration?) throws(ZMQError) -> Ready {
        Ready(result: try poller.poll(timeout: timeout))
    }

    /// What a ``poll(timeout:)`` found readable.
    public struct Ready {
        let result: Poller.Result
        public var isEmpty: Bool { result.isEmpty }
        public func isReadable(_ endpoint: RouterEndpoint) -> Bool { result.isReadable(endpoint.socket) }
        public func isReadable(_ endpoint: DealerEndpoint) -> Bool { result.isReadable(endpoint.socket) }
        public func isReadable(fileDescriptor fd: Int32) -> Bool { result.events(forFileDescriptor: fd).contains(.readable) }
    }
}
