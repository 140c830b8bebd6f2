import CZeroMQ
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Typed socket options. Setters are `set…(_:)` methods and getters are throwing
// properties (Swift properties cannot have throwing setters). Most options must be
// set before `bind`/`connect` to affect the connections made by those calls.
extension Socket {
    // MARK: Lifetime and flow control

    /// `ZMQ_LINGER`: how long undelivered messages are kept after ``close()``;
    /// `nil` = forever (libzmq's default unless the context is non-blocky),
    /// `.zero` = drop them at once.
    public func setLinger(_ linger: Duration?) throws(ZMQError) {
        try setInt32(ZMQ_LINGER, "ZMQ_LINGER", milliseconds(linger))
    }

    /// `ZMQ_LINGER`; `nil` = forever.
    public var linger: Duration? {
        get throws(ZMQError) { duration(try int32(ZMQ_LINGER, "ZMQ_LINGER")) }
    }

    /// `ZMQ_SNDHWM`: the maximum number of outstanding outgoing messages per peer
    /// (0 = unlimited). What happens at the limit depends on the socket type
    /// (block/`wouldBlock` for DEALER, PUSH, PAIR; drop for PUB and ROUTER unless
    /// router-mandatory).
    public func setSendHighWaterMark(_ messages: Int) throws(ZMQError) {
        try setInt32(ZMQ_SNDHWM, "ZMQ_SNDHWM", checkedInt32(messages, "ZMQ_SNDHWM"))
    }

    /// `ZMQ_SNDHWM`.
    public var sendHighWaterMark: Int {
        get throws(ZMQError) { Int(try int32(ZMQ_SNDHWM, "ZMQ_SNDHWM")) }
    }

    /// `ZMQ_RCVHWM`: the maximum number of queued incoming messages per peer (0 = unlimited).
    public func setReceiveHighWaterMark(_ messages: Int) throws(ZMQError) {
        try setInt32(ZMQ_RCVHWM, "ZMQ_RCVHWM", checkedInt32(messages, "ZMQ_RCVHWM"))
    }

    /// `ZMQ_RCVHWM`.
    public var receiveHighWaterMark: Int {
        get throws(ZMQError) { Int(try int32(ZMQ_RCVHWM, "ZMQ_RCVHWM")) }
    }

    /// `ZMQ_MAXMSGSIZE`: the largest inbound message (in bytes) accepted from a
    /// tcp/ipc peer; a peer sending a larger one is disconnected and the message is
    /// dropped. `nil` = no limit.
    public func setMaxMessageSize(_ bytes: Int64?) throws(ZMQError) {
        if let bytes, bytes < 0 {
            throw ZMQError(errno: EINVAL, operation: "setsockopt(ZMQ_MAXMSGSIZE, \(bytes))")
        }
        try setInt64(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", bytes ?? -1)
    }

    /// `ZMQ_MAXMSGSIZE`; `nil` = no limit.
    public var maxMessageSize: Int64? {
        get throws(ZMQError) {
            let value = try int64(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE")
            return value < 0 ? nil : value
        }
    }

    /// `ZMQ_SNDTIMEO`: how long a blocking send waits before throwing
    /// ``ZMQError/Kind/wouldBlock``; `nil` = forever (default).
    public func setSendTimeout(_ timeout: Duration?) throws(ZMQError) {
        try setInt32(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO", milliseconds(timeout))
    }

    /// `ZMQ_SNDTIMEO`; `nil` = forever.
    public var sendTimeout: Duration? {
        get throws(ZMQError) { duration(try int32(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO")) }
    }

    /// `ZMQ_RCVTIMEO`: how long a blocking receive waits before throwing
    /// ``ZMQError/Kind/wouldBlock``; `nil` = forever (default).
    public func setReceiveTimeout(_ timeout: Duration?) throws(ZMQError) {
        try setInt32(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO", milliseconds(timeout))
    }

    /// `ZMQ_RCVTIMEO`; `nil` = forever.
    public var receiveTimeout: Duration? {
        get throws(ZMQError) { duration(try int32(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO")) }
    }

    /// `ZMQ_IMMEDIATE`: queue outgoing messages only on completed connections
    /// (instead of also on connections still being established).
    public func setImmediate(_ on: Bool) throws(ZMQError) {
        try setInt32(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", on ? 1 : 0)
    }

    /// `ZMQ_IMMEDIATE`.
    public var immediate: Bool {
        get throws(ZMQError) { try int32(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE") != 0 }
    }

    // MARK: Connection management

    /// `ZMQ_RECONNECT_IVL`: the initial delay before reconnecting a lost or failed
    /// connection; `nil` = never reconnect. Default 100 ms.
    public func setReconnectInterval(_ interval: Duration?) throws(ZMQError) {
        try setInt32(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL", milliseconds(interval))
    }

    /// `ZMQ_RECONNECT_IVL`; `nil` = never reconnect.
    public var reconnectInterval: Duration? {
        get throws(ZMQError) { duration(try int32(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL")) }
    }

    /// `ZMQ_RECONNECT_IVL_MAX`: the cap for exponential reconnect back-off;
    /// `.zero` (default) = always wait ``reconnectInterval``.
    public func setReconnectIntervalMax(_ interval: Duration) throws(ZMQError) {
        try setInt32(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX", interval.zmqOptionMilliseconds)
    }

    /// `ZMQ_RECONNECT_IVL_MAX`.
    public var reconnectIntervalMax: Duration {
        get throws(ZMQError) { .milliseconds(try int32(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX")) }
    }

    /// `ZMQ_HEARTBEAT_IVL`: send a ZMTP PING this often on every connection
    /// (`.zero` = off, the default).
    public func setHeartbeatInterval(_ interval: Duration) throws(ZMQError) {
        try setInt32(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", interval.zmqOptionMilliseconds)
    }

    /// `ZMQ_HEARTBEAT_IVL`.
    public var heartbeatInterval: Duration {
        get throws(ZMQError) { .milliseconds(try int32(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL")) }
    }

    /// `ZMQ_HEARTBEAT_TIMEOUT`: close a connection when no traffic arrives this long
    /// after a PING (`.zero` = use the heartbeat interval).
    public func setHeartbeatTimeout(_ timeout: Duration) throws(ZMQError) {
        try setInt32(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", timeout.zmqOptionMilliseconds)
    }

    /// `ZMQ_HEARTBEAT_TIMEOUT`.
    public var heartbeatTimeout: Duration {
        get throws(ZMQError) { .milliseconds(try int32(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT")) }
    }

    /// `ZMQ_HEARTBEAT_TTL`: asks the peer to time out the connection after this long
    /// without traffic (deci-second resolution, at most 6553.5 s; `.zero` = off).
    public func setHeartbeatTTL(_ ttl: Duration) throws(ZMQError) {
        try setInt32(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", ttl.zmqOptionMilliseconds)
    }

    /// `ZMQ_HEARTBEAT_TTL` (rounded down to deci-seconds by libzmq).
    public var heartbeatTTL: Duration {
        get throws(ZMQError) { .milliseconds(try int32(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL")) }
    }

    /// `ZMQ_IPV6`: allow IPv6 on tcp endpoints (default off: IPv4 only).
    public func setIPv6(_ on: Bool) throws(ZMQError) {
        try setInt32(ZMQ_IPV6, "ZMQ_IPV6", on ? 1 : 0)
    }

    /// `ZMQ_IPV6`.
    public var ipv6: Bool {
        get throws(ZMQError) { try int32(ZMQ_IPV6, "ZMQ_IPV6") != 0 }
    }

    // MARK: Routing

    /// `ZMQ_ROUTING_ID`: this socket's identity as seen by a ROUTER peer
    /// (1...255 bytes, must not start with a zero byte). Set before `connect`.
    public func setRoutingID(_ id: some ContiguousBytes) throws(ZMQError) {
        try setBytes(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", id)
    }

    /// `ZMQ_ROUTING_ID` from the UTF-8 bytes of `id`.
    public func setRoutingID(_ id: String) throws(ZMQError) {
        try setRoutingID(Array(id.utf8))
    }

    /// `ZMQ_ROUTING_ID` (empty if none was set).
    public var routingID: [UInt8] {
        get throws(ZMQError) { try bytes(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", capacity: 256) }
    }

    /// `ZMQ_ROUTER_MANDATORY` (ROUTER only): sending to a routing id that is not
    /// connected fails with ``ZMQError/Kind/hostUnreachable`` instead of silently
    /// dropping the message (and a full peer gives `wouldBlock`).
    public func setRouterMandatory(_ on: Bool) throws(ZMQError) {
        try setInt32(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", on ? 1 : 0)
    }

    /// `ZMQ_ROUTER_HANDOVER` (ROUTER only): a new connection with an existing routing
    /// id takes it over (e.g. a restarted worker) instead of being rejected.
    public func setRouterHandover(_ on: Bool) throws(ZMQError) {
        try setInt32(ZMQ_ROUTER_HANDOVER, "ZMQ_ROUTER_HANDOVER", on ? 1 : 0)
    }

    /// `ZMQ_SUBSCRIBE` (SUB): receive messages whose first frame starts with `prefix`
    /// (empty = everything).
    public func subscribe(_ prefix: some ContiguousBytes) throws(ZMQError) {
        try setBytes(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", prefix)
    }

    /// `ZMQ_SUBSCRIBE` with the UTF-8 bytes of `prefix` (`""` = everything).
    public func subscribe(_ prefix: String) throws(ZMQError) {
        try subscribe(Array(prefix.utf8))
    }

    /// `ZMQ_UNSUBSCRIBE` (SUB): removes one matching ``subscribe(_:)-(String)``.
    public func unsubscribe(_ prefix: some ContiguousBytes) throws(ZMQError) {
        try setBytes(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE", prefix)
    }

    /// `ZMQ_UNSUBSCRIBE` with the UTF-8 bytes of `prefix`.
    public func unsubscribe(_ prefix: String) throws(ZMQError) {
        try unsubscribe(Array(prefix.utf8))
    }

    // MARK: CURVE security

    /// `ZMQ_CURVE_SERVER`: act as CURVE server (needs ``setCurveSecretKey(_:)-(String)``).
    public func setCurveServer(_ on: Bool) throws(ZMQError) {
        try setInt32(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", on ? 1 : 0)
    }

    /// `ZMQ_CURVE_SERVER`.
    public var curveServer: Bool {
        get throws(ZMQError) { try int32(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER") != 0 }
    }

    /// `ZMQ_CURVE_PUBLICKEY` as 40-character Z85 text.
    public func setCurvePublicKey(_ z85: String) throws(ZMQError) {
        try setCurveKey(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", z85)
    }

    /// `ZMQ_CURVE_PUBLICKEY` as 32 raw bytes.
    public func setCurvePublicKey(_ key: [UInt8]) throws(ZMQError) {
        try setCurveKey(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", key)
    }

    /// `ZMQ_CURVE_PUBLICKEY` as Z85 text (all `0` characters if unset).
    public var curvePublicKey: String {
        get throws(ZMQError) {
            String(decoding: try bytes(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", capacity: 41).prefix { $0 != 0 },
                   as: UTF8.self)
        }
    }

    /// `ZMQ_CURVE_SECRETKEY` as 40-character Z85 text.
    public func setCurveSecretKey(_ z85: String) throws(ZMQError) {
        try setCurveKey(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", z85)
    }

    /// `ZMQ_CURVE_SECRETKEY` as 32 raw bytes.
    public func setCurveSecretKey(_ key: [UInt8]) throws(ZMQError) {
        try setCurveKey(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", key)
    }

    /// `ZMQ_CURVE_SERVERKEY` (clients): the server's public key as 40-character Z85 text.
    public func setCurveServerKey(_ z85: String) throws(ZMQError) {
        try setCurveKey(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", z85)
    }

    /// `ZMQ_CURVE_SERVERKEY` (clients): the server's public key as 32 raw bytes.
    public func setCurveServerKey(_ key: [UInt8]) throws(ZMQError) {
        try setCurveKey(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", key)
    }

    /// Makes this socket a CURVE server with the given Z85 secret key. Call before `bind`.
    public func configureCurveServer(secretKey: String) throws(ZMQError) {
        try setCurveServer(true)
        try setCurveSecretKey(secretKey)
    }

    /// Makes this socket a CURVE client of the server whose Z85 public key is
    /// `serverKey`, using its own Z85 key pair. Call before `connect`.
    public func configureCurveClient(serverKey: String, publicKey: String, secretKey: String) throws(ZMQError) {
        try setCurveServerKey(serverKey)
        try setCurvePublicKey(publicKey)
        try setCurveSecretKey(secretKey)
    }

    // MARK: Read-only state

    /// `ZMQ_LAST_ENDPOINT`: the endpoint of the last bind/connect, with wildcards
    /// resolved, e.g. `tcp://127.0.0.1:41234` after `bind("tcp://127.0.0.1:*")`.
    public var lastEndpoint: String {
        get throws(ZMQError) {
            let raw = try bytes(ZMQ_LAST_ENDPOINT, "ZMQ_LAST_ENDPOINT", capacity: 1024)
            return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// `ZMQ_RCVMORE`: whether the last received frame has more frames following.
    public var receiveMore: Bool {
        get throws(ZMQError) { try int32(ZMQ_RCVMORE, "ZMQ_RCVMORE") != 0 }
    }

    /// `ZMQ_FD`: a file descriptor that becomes readable when ``events`` may have
    /// changed (edge-triggered; for integrating with other event loops).
    public var fileDescriptor: Int32 {
        get throws(ZMQError) {
            var value: zmq_fd_t = 0
            var size = MemoryLayout<zmq_fd_t>.size
            let handle = try rawHandle("getsockopt(ZMQ_FD)")
            guard zmq_getsockopt(handle, ZMQ_FD, &value, &size) == 0 else {
                throw ZMQError.last("getsockopt(ZMQ_FD)")
            }
            return Int32(value)
        }
    }

    /// `ZMQ_EVENTS`: whether the socket can be read (`.readable`) or written
    /// (`.writable`) without blocking right now.
    public var events: PollEvents {
        get throws(ZMQError) { PollEvents(rawValue: Int16(truncatingIfNeeded: try int32(ZMQ_EVENTS, "ZMQ_EVENTS"))) }
    }

    // MARK: Raw access

    /// Sets an `int` option by its libzmq number (for options without a typed API).
    public func setOption(_ option: Int32, int32 value: Int32) throws(ZMQError) {
        try setInt32(option, "option \(option)", value)
    }

    /// Sets an `int64_t` option by its libzmq number.
    public func setOption(_ option: Int32, int64 value: Int64) throws(ZMQError) {
        try setInt64(option, "option \(option)", value)
    }

    /// Sets a binary option by its libzmq number.
    public func setOption(_ option: Int32, bytes value: some ContiguousBytes) throws(ZMQError) {
        try setBytes(option, "option \(option)", value)
    }

    /// Reads an `int` option by its libzmq number.
    public func int32Option(_ option: Int32) throws(ZMQError) -> Int32 {
        try int32(option, "option \(option)")
    }

    /// Reads an `int64_t` option by its libzmq number.
    public func int64Option(_ option: Int32) throws(ZMQError) -> Int64 {
        try int64(option, "option \(option)")
    }

    /// Reads a binary option of at most `capacity` bytes by its libzmq number.
    public func bytesOption(_ option: Int32, capacity: Int = 256) throws(ZMQError) -> [UInt8] {
        try bytes(option, "option \(option)", capacity: capacity)
    }

    // MARK: - Helpers

    private func milliseconds(_ duration: Duration?) -> Int32 {
        duration?.zmqOptionMilliseconds ?? -1
    }

    private func duration(_ milliseconds: Int32) -> Duration? {
        milliseconds < 0 ? nil : .milliseconds(milliseconds)
    }

    private func checkedInt32(_ value: Int, _ name: String) throws(ZMQError) -> Int32 {
        guard let result = Int32(exactly: value), result >= 0 else {
            throw ZMQError(errno: EINVAL, operation: "setsockopt(\(name), \(value))")
        }
        return result
    }

    private func setInt32(_ option: Int32, _ name: String, _ value: Int32) throws(ZMQError) {
        let handle = try rawHandle("setsockopt(\(name), \(value))")
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("setsockopt(\(name), \(value))")
        }
    }

    private func setInt64(_ option: Int32, _ name: String, _ value: Int64) throws(ZMQError) {
        let handle = try rawHandle("setsockopt(\(name), \(value))")
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("setsockopt(\(name), \(value))")
        }
    }

    private func setBytes(_ option: Int32, _ name: String, _ value: some ContiguousBytes) throws(ZMQError) {
        let handle = try rawHandle("setsockopt(\(name))")
        let errno: Int32 = value.withUnsafeBytes { buffer in
            zmq_setsockopt(handle, option, buffer.baseAddress, buffer.count) == 0 ? 0 : zmq_errno()
        }
        if errno != 0 { throw ZMQError(errno: errno, operation: "setsockopt(\(name))") }
    }

    private func setCurveKey(_ option: Int32, _ name: String, _ z85: String) throws(ZMQError) {
        // libzmq takes 40 bytes as Z85 text and 32 bytes as a raw key; reject anything
        // else here so a wrong-length string is never misread as a raw key.
        let utf8 = Array(z85.utf8)
        guard utf8.count == 40 else {
            throw ZMQError(errno: EINVAL, operation: "setsockopt(\(name)): Z85 key must be 40 characters, got \(utf8.count)")
        }
        try setBytes(option, name, utf8)
    }

    private func setCurveKey(_ option: Int32, _ name: String, _ key: [UInt8]) throws(ZMQError) {
        guard key.count == 32 else {
            throw ZMQError(errno: EINVAL, operation: "setsockopt(\(name)): binary key must be 32 bytes, got \(key.count)")
        }
        try setBytes(option, name, key)
    }

    private func int32(_ option: Int32, _ name: String) throws(ZMQError) -> Int32 {
        let handle = try rawHandle("getsockopt(\(name))")
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, option, &value, &size) == 0 else {
            throw ZMQError.last("getsockopt(\(name))")
        }
        return value
    }

    private func int64(_ option: Int32, _ name: String) throws(ZMQError) -> Int64 {
        let handle = try rawHandle("getsockopt(\(name))")
        var value: Int64 = 0
        var size = MemoryLayout<Int64>.size
        guard zmq_getsockopt(handle, option, &value, &size) == 0 else {
            throw ZMQError.last("getsockopt(\(name))")
        }
        return value
    }

    private func bytes(_ option: Int32, _ name: String, capacity: Int) throws(ZMQError) -> [UInt8] {
        let handle = try rawHandle("getsockopt(\(name))")
        var buffer = [UInt8](repeating: 0, count: max(capacity, 0))
        var size = buffer.count
        let errno: Int32 = buffer.withUnsafeMutableBytes { raw in
            zmq_getsockopt(handle, option, raw.baseAddress, &size) == 0 ? 0 : zmq_errno()
        }
        if errno != 0 { throw ZMQError(errno: errno, operation: "getsockopt(\(name))") }
        return Array(buffer.prefix(min(size, buffer.count)))
    }
}
