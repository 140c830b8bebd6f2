import Logging
import ZeroMQ

/// The socket options of an endpoint, set by ``RouterEndpoint`` and ``DealerEndpoint`` before they
/// bind or connect. Every field left nil keeps libzmq's default.
///
/// ```swift
/// var options = EndpointOptions()
/// options.maxMessageBytes = limits.maxPayloadBytes + 4096
/// options.receiveHighWaterMark = 128
/// let router = try RouterEndpoint(bind: ["tcp://127.0.0.1:*"], options: options, logger: logger)
/// ```
public struct EndpointOptions: Sendable {
    /// How long unsent messages may keep a closing socket (`ZMQ_LINGER`).
    public var linger: Duration = .milliseconds(500)
    /// The largest message a peer may send (`ZMQ_MAXMSGSIZE`; nil: unbounded).
    public var maxMessageBytes: Int?
    /// ZMTP heartbeats (`ZMQ_HEARTBEAT_IVL`, `ZMQ_HEARTBEAT_TIMEOUT`).
    public var heartbeatInterval: Duration?
    public var heartbeatTimeout: Duration?
    /// Messages queued per peer before sends fail (`ZMQ_SNDHWM`) or reads stop (`ZMQ_RCVHWM`).
    public var sendHighWaterMark: Int?
    public var receiveHighWaterMark: Int?
    /// Reconnection back-off of a connecting socket (`ZMQ_RECONNECT_IVL`, `ZMQ_RECONNECT_IVL_MAX`).
    public var reconnectInterval: Duration?
    public var reconnectIntervalMax: Duration?
    /// A DEALER's routing id (nil: 16 random bytes, the first never zero).
    public var routingID: [UInt8]?
    /// CURVE, or plaintext (`.none`).
    public var curve: Curve = .none
    /// The level of the endpoint's rate-limited lines about dropped frames.
    public var dropLogLevel: Logger.Level = .warning
    /// Seconds between two lines about one kind of drop.
    public var dropLogInterval: Double = 5

    public init() {}

    /// CURVE for one endpoint.
    public enum Curve: Sendable {
        /// Plaintext.
        case none
        /// A CURVE server (a ROUTER that binds) whose ZAP handler admits only `allowed` public keys;
        /// `onEvent` hears every admission and refusal (on the handler's thread).
        case server(secretKey: String, allowed: Set<String>, onEvent: @Sendable (AuthEvent) -> Void)
        /// A CURVE client that reaches only the server with public key `serverKey`.
        case client(serverKey: String, publicKey: String, secretKey: String)
    }

    /// Applies every option but CURVE to `socket`.
    func apply(to socket: Socket) throws(ZMQError) {
        try socket.setLinger(linger)
        if let maxMessageBytes { try socket.setMaxMessageSize(Int64(maxMessageBytes)) }
        if let heartbeatInterval { try socket.setHeartbeatInterval(heartbeatInterval) }
        if let heartbeatTimeout { try socket.setHeartbeatTimeout(heartbeatTimeout) }
        if let sendHighWaterMark { try socket.setSendHighWaterMark(sendHighWaterMark) }
        if let receiveHighWaterMark { try socket.setReceiveHighWaterMark(receiveHighWaterMark) }
        if let reconnectInterval { try socket.setReconnectInterval(reconnectInterval) }
        if let reconnectIntervalMax { try socket.setReconnectIntervalMax(reconnectIntervalMax) }
    }
}

/// Seconds since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// A routing id as hex (how logs name a peer).
public func peerName(_ id: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var s = [UInt8]()
    s.reserveCapacity(2 * id.count)
    for b in id {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 15)])
    }
    return String(decoding: s, as: UTF8.self)
}
