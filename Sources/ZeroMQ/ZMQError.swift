import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An error reported by libzmq (or by this wrapper's own argument checks).
///
/// Every error carries the raw `errno` value, the `zmq_strerror` text for it
/// and a short description of the operation that failed, so that
/// `String(describing: error)` reads like
/// `bind(tcp://127.0.0.1:notaport): Invalid argument`.
///
/// Branch on ``kind`` to react to the cases that matter in practice:
///
/// ```swift
/// do throws(ZMQError) {   // or: catch let error as ZMQError where ...
///     let frame = try socket.receive()
/// } catch where error.kind == .wouldBlock {
///     // ZMQ_RCVTIMEO expired, or .dontWait and nothing was queued
/// } catch where error.kind == .contextTerminated {
///     // Context.shutdown() / terminate() was called: close the socket and leave
/// } catch {
///     throw error
/// }
/// ```
public struct ZMQError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A coarse classification of ``errno``.
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        /// `EAGAIN`: a non-blocking operation could not complete, or a send/receive
        /// timeout (`ZMQ_SNDTIMEO` / `ZMQ_RCVTIMEO`) expired.
        case wouldBlock
        /// `ETERM`: the socket's context was shut down or terminated.
        case contextTerminated
        /// `EINTR`: a blocking call was interrupted by a signal. Blocking calls of
        /// this module retry internally, so this is rarely seen.
        case interrupted
        /// `EHOSTUNREACH`: a ROUTER socket with ``Socket/setRouterMandatory(_:)``
        /// was asked to send to a routing id that is not connected.
        case hostUnreachable
        /// `EMSGSIZE`: the message is too large for the operation.
        case messageTooLarge
        /// `ENOTSOCK`: the socket was closed (or is otherwise invalid).
        case socketClosed
        /// `EADDRINUSE`: the address is already bound.
        case addressInUse
        /// `EFSM`: the operation is not valid in the socket's current state
        /// (for example two sends in a row on a REQ socket).
        case invalidState
        /// `EINVAL`: an argument (endpoint, option value, key, ...) is invalid.
        case invalidArgument
        /// `EPROTONOSUPPORT` / `ENOCOMPATPROTO` / `ENOTSUP`: unsupported transport,
        /// incompatible socket types, or a feature missing from this libzmq build.
        case notSupported
        /// Any other error; inspect ``ZMQError/errno``.
        case other

        /// The case name.
        public var description: String {
            switch self {
            case .wouldBlock: "wouldBlock"
            case .contextTerminated: "contextTerminated"
            case .interrupted: "interrupted"
            case .hostUnreachable: "hostUnreachable"
            case .messageTooLarge: "messageTooLarge"
            case .socketClosed: "socketClosed"
            case .addressInUse: "addressInUse"
            case .invalidState: "invalidState"
            case .invalidArgument: "invalidArgument"
            case .notSupported: "notSupported"
            case .other: "other"
            }
        }
    }

    /// The raw error number (a system `errno` or a libzmq-specific code such as `ETERM`).
    public let errno: Int32
    /// The human-readable text from `zmq_strerror(errno)`.
    public let message: String
    /// The operation that failed, e.g. `bind(tcp://127.0.0.1:5555)` or `send`.
    public let operation: String

    /// Creates an error for `errno` raised by `operation`; ``message`` is filled from `zmq_strerror`.
    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
        if let text = zmq_strerror(errno) {
            self.message = String(cString: text)
        } else {
            self.message = "error \(errno)"
        }
    }

    /// Creates an error from the calling thread's current `zmq_errno()`.
    static func last(_ operation: @autoclosure () -> String) -> ZMQError {
        ZMQError(errno: zmq_errno(), operation: operation())
    }

    /// The classification of ``errno``.
    public var kind: Kind {
        switch errno {
        case EAGAIN: .wouldBlock
        case ZMQErrorCode.term: .contextTerminated
        case EINTR: .interrupted
        case EHOSTUNREACH: .hostUnreachable
        case EMSGSIZE: .messageTooLarge
        case ENOTSOCK: .socketClosed
        case EADDRINUSE: .addressInUse
        case ZMQErrorCode.fsm: .invalidState
        case EINVAL: .invalidArgument
        case EPROTONOSUPPORT, ENOTSUP, ZMQErrorCode.noCompatProto: .notSupported
        default: .other
        }
    }

    /// `operation: message`, for example `bind(tcp://127.0.0.1:notaport): Invalid argument`.
    public var description: String { "\(operation): \(message)" }

    /// Shorthand for `kind == .wouldBlock` (EAGAIN: timeout or non-blocking call with nothing to do).
    public var isWouldBlock: Bool { kind == .wouldBlock }

    /// Shorthand for `kind == .contextTerminated` (ETERM).
    public var isContextTerminated: Bool { kind == .contextTerminated }
}

/// libzmq's own error numbers (defined relative to `ZMQ_HAUSNUMERO`).
enum ZMQErrorCode {
    static let fsm: Int32 = Int32(ZMQ_HAUSNUMERO) + 51
    static let noCompatProto: Int32 = Int32(ZMQ_HAUSNUMERO) + 52
    static let term: Int32 = Int32(ZMQ_HAUSNUMERO) + 53
}
