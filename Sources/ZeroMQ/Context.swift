import CZeroMQ
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Support

/// A libzmq context (`zmq_ctx_new`): the container for sockets and I/O threads.
///
/// A context is safe to share across threads and tasks. Every ``Socket`` keeps a
/// strong reference to its context, so the context lives at least as long as its
/// sockets; when the last reference goes away it is terminated in `deinit`.
///
/// Shutting down:
/// - ``shutdown()`` (`zmq_ctx_shutdown`) makes every blocking call on the
///   context's sockets, in any thread, fail with ``ZMQError/Kind/contextTerminated``
///   and all further operations except `close()` fail the same way. It does not wait.
/// - ``terminate()`` (`zmq_ctx_term`) additionally **waits until every socket of
///   the context is closed** and, for each closed socket, until its linger period
///   is over. With libzmq's default (infinite) linger, undelivered messages can
///   block it forever: set ``Socket/setLinger(_:)`` to zero, or create the context
///   with `blocky: false`.
public final class Context: @unchecked Sendable {
    // Thread safety: `state` and `handle`'s validity are guarded by `lock`;
    // libzmq's context functions themselves are thread-safe.
    private let lock = Lock()
    private let handle: UnsafeMutableRawPointer
    private var state: State = .active

    private enum State { case active, shutDown, terminated }

    /// Creates a context.
    ///
    /// - Parameters:
    ///   - ioThreads: the size of libzmq's I/O thread pool (`ZMQ_IO_THREADS`);
    ///     `nil` keeps libzmq's default (1).
    ///   - blocky: `ZMQ_BLOCKY`. `nil`/`true` keeps libzmq's default, where new
    ///     sockets have an infinite linger. `false` gives every socket created
    ///     afterwards a linger of 0, so ``terminate()`` never waits for undelivered
    ///     messages.
    public init(ioThreads: Int? = nil, blocky: Bool? = nil) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else {
            throw ZMQError.last("zmq_ctx_new")
        }
        self.handle = handle
        if let ioThreads {
            guard let value = Int32(exactly: ioThreads), value >= 0,
                  zmq_ctx_set(handle, ZMQ_IO_THREADS, value) == 0
            else {
                let error = ZMQError(errno: EINVAL, operation: "zmq_ctx_set(ZMQ_IO_THREADS, \(ioThreads))")
                zmq_ctx_term(handle)
                throw error
            }
        }
        if let blocky {
            guard zmq_ctx_set(handle, ZMQ_BLOCKY, blocky ? 1 : 0) == 0 else {
                let error = ZMQError.last("zmq_ctx_set(ZMQ_BLOCKY, \(blocky))")
                zmq_ctx_term(handle)
                throw error
            }
        }
    }

    deinit {
        // No socket can be open here: every Socket holds a strong reference to us.
        if state != .terminated {
            while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
        }
    }

    /// The number of I/O threads (`ZMQ_IO_THREADS`).
    public var ioThreads: Int {
        lock.withLock {
            state == .terminated ? 0 : Int(zmq_ctx_get(handle, ZMQ_IO_THREADS))
        }
    }

    /// Whether ``shutdown()`` or ``terminate()`` has been called.
    public var isShutDown: Bool {
        lock.withLock { state != .active }
    }

    /// Creates a socket of the given type in this context.
    ///
    /// Fails with ``ZMQError/Kind/contextTerminated`` after ``shutdown()`` or ``terminate()``.
    public func socket(_ type: SocketType) throws(ZMQError) -> Socket {
        try Socket(context: self, type: type)
    }

    /// Creates the raw socket; called by `Socket.init`.
    func makeRawSocket(_ type: SocketType) throws(ZMQError) -> UnsafeMutableRawPointer {
        lock.lock()
        defer { lock.unlock() }
        guard state != .terminated else {
            throw ZMQError(errno: ZMQErrorCode.term, operation: "socket(\(type))")
        }
        guard let raw = zmq_socket(handle, type.rawValue) else {
            throw ZMQError.last("socket(\(type))")
        }
        return raw
    }

    /// Starts shutting the context down (`zmq_ctx_shutdown`) without waiting.
    ///
    /// Any blocking operation on the context's sockets, in any thread, returns
    /// ``ZMQError/Kind/contextTerminated`` promptly, as do all later operations
    /// except ``Socket/close()``. Sockets must still be closed (explicitly or by
    /// being released) before the context can be terminated. Idempotent.
    public func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        guard state == .active else { return }
        zmq_ctx_shutdown(handle)
        state = .shutDown
    }

    /// Terminates the context (`zmq_ctx_term`), shutting it down first if needed.
    ///
    /// **Blocks until every socket of this context has been closed** and their
    /// linger periods are over (see the type documentation). Call it after
    /// closing your sockets, or from a supervising thread after ``shutdown()``.
    /// Idempotent; `deinit` does the same if it was never called.
    public func terminate() throws(ZMQError) {
        lock.lock()
        if state == .terminated {
            lock.unlock()
            return
        }
        // Mark it first so no new socket can be created on a context being freed.
        state = .terminated
        lock.unlock()
        while zmq_ctx_term(handle) != 0 {
            let error = ZMQError.last("zmq_ctx_term")
            if error.kind != .interrupted { throw error }
        }
    }
}
