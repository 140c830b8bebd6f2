import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Watches one socket for failed security handshakes (`ZMQ_EVENT_HANDSHAKE_FAILED_*`), read without a
/// thread: the owner calls ``poll()`` from its own loop. A CURVE client learns here why a server never
/// answers (its key refused, the server's key wrong, no CURVE on one side), which it otherwise cannot
/// tell from silence.
///
/// Create, poll and close it on the thread that owns the watched socket.
public final class HandshakeMonitor {
    /// A failed handshake: the libzmq event and its value (an errno or a `ZMQ_PROTOCOL_ERROR_*`).
    public struct Failure: Sendable, Equatable {
        public var event: Int32
        public var value: UInt32
        /// Where: the endpoint libzmq names.
        public var endpoint: String

        /// Was it the server's ZAP handler that said no (the client's key is not allowed)?
        public var isRefusal: Bool { event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH }

        /// Do the two sides use different security mechanisms (CURVE on one side only)?
        public var isMechanismMismatch: Bool {
            event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && Int32(bitPattern: value) == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
        }

        /// What happened, in words (`role` is how the other side is named: "client", "coordinator").
        public func reason(peer: String = "peer") -> String {
            switch event {
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                return "the \(peer) refused this connection's key (authentication status \(value))"
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                switch Int32(bitPattern: value) {
                case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                    return "security mechanism mismatch: one side uses CURVE and the other does not"
                case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
                    return "the CURVE handshake did not decrypt: the server key the client uses is not the server's"
                default:
                    return "protocol error 0x\(String(value, radix: 16)) in the security handshake"
                }
            default:
                return "the security handshake failed (\(String(cString: strerror(Int32(bitPattern: value))))): "
                    + "a plaintext peer, or a CURVE peer with another server key?"
            }
        }
    }

    private let pair: Socket
    private weak var watched: Socket?

    /// Starts monitoring `socket` (on `context`).
    public init(context: Context, watching socket: Socket) throws(ZMQError) {
        let endpoint = "inproc://ztrain-handshake-\(UInt64.random(in: 0...UInt64.max))"
        let handle = try socket.rawHandle("zmq_socket_monitor")
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else {
            throw ZMQError.last("zmq_socket_monitor(\(endpoint))")
        }
        let p = try context.socket(.pair)
        try p.setLinger(.zero)
        try p.connect(endpoint)
        pair = p
        watched = socket
    }

    /// The monitor socket (to poll together with others).
    public var socket: Socket { pair }

    /// Has a handshake of the watched socket succeeded (seen by a ``poll()`` so far)? A CURVE client
    /// knows from then on that the server admitted its key.
    public private(set) var succeeded = false

    /// The failures reported since the last call (non-blocking); a success sets ``succeeded``.
    public func poll() -> [Failure] {
        var out: [Failure] = []
        while let frames = try? pair.receiveMultipart(flags: .dontWait) {
            guard let f = Self.decode(frames) else { continue }
            if f.event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED { succeeded = true } else { out.append(f) }
        }
        return out
    }

    /// A monitor event (two frames: event id and value, endpoint), or nil if it is not one.
    static func decode(_ frames: [[UInt8]]) -> Failure? {
        guard frames.count == 2, frames[0].count == 6 else { return nil }
        let event = UInt16(frames[0][0]) | UInt16(frames[0][1]) << 8
        let value = UInt32(frames[0][2]) | UInt32(frames[0][3]) << 8 | UInt32(frames[0][4]) << 16 | UInt32(frames[0][5]) << 24
        return Failure(event: Int32(event), value: value, endpoint: String(decoding: frames[1], as: UTF8.self))
    }

    /// Stops monitoring and closes the monitor socket (before the watched socket is closed).
    public func close() {
        if let s = watched, let handle = try? s.rawHandle("zmq_socket_monitor") {
            zmq_socket_monitor(handle, nil, 0)
        }
        watched = nil
        pair.close()
    }
}
