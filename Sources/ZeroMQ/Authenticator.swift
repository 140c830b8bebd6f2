import CZeroMQ
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Support

/// What the ``Authenticator`` saw.
public enum AuthEvent: Sendable, Equatable {
    /// A CURVE client whose public key is on the allow-list (`address` is the peer's IP).
    case accepted(key: String, address: String)
    /// A CURVE client whose key is not on the allow-list: refused before it can send a message.
    case refusedKey(key: String, address: String)
    /// A client with another mechanism (NULL = plaintext, PLAIN) asked the ZAP handler: refused.
    case refusedMechanism(mechanism: String, address: String)
    /// A connection on `endpoint` failed the security handshake: a plaintext client talking to a CURVE
    /// server, a client with the wrong server key, or garbage. libzmq reports no peer address here.
    case handshakeFailed(endpoint: String, reason: String)
}

/// A ZAP handler (ZeroMQ RFC 27) that admits CURVE clients whose public key is on an allow-list, plus an
/// optional monitor of one server socket that reports failed security handshakes (which never reach ZAP).
///
/// Create it **before** the CURVE server socket binds: libzmq admits every CURVE client when no ZAP
/// handler is bound. It runs on its own thread with its own sockets; ``stop()`` ends it (also called from
/// `deinit`), and must come before the context is terminated.
///
/// ```swift
/// let auth = try Authenticator(context: ctx, allowed: Set(workerKeys), watching: router) { event in log(event) }
/// try router.configureCurveServer(secretKey: server.secretKey)
/// try router.bind("tcp://0.0.0.0:5555")
/// …
/// auth.stop()
/// ```
public final class Authenticator: @unchecked Sendable {
    // @unchecked: after `init`, the two sockets are used only by the handler thread; the counters and the
    // stop flag are guarded by `lock`.
    private let lock = Lock()
    private var stopping = false
    private var counts = (accepted: 0, refused: 0, failedHandshakes: 0)
    private var allowList: Set<String>
    private let done = DispatchSemaphore(value: 0)
    private var started = false
    private weak var watched: Socket?

    /// Sets up the handler on `context` and starts its thread.
    ///
    /// - Parameters:
    ///   - allowed: Z85 public keys admitted.
    ///   - socket: a server socket to monitor for failed handshakes (nil: none). The monitor is set up here,
    ///     so call this on the thread that owns `socket`.
    ///   - onEvent: called on the handler's thread for every event.
    public init(context: Context, allowed: Set<String>, watching socket: Socket? = nil,
                onEvent: @escaping @Sendable (AuthEvent) -> Void) throws(ZMQError) {
        allowList = allowed
        let zap = try context.socket(.rep)
        try zap.setLinger(.zero)
        try zap.bind("inproc://zeromq.zap.01")
        var monitor: Socket? = nil
        if let socket {
            let endpoint = "inproc://ztrain-monitor-\(UInt64.random(in: 0...UInt64.max))"
            let handle = try socket.rawHandle("zmq_socket_monitor")
            let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            guard zmq_socket_monitor(handle, endpoint, events) == 0 else {
                zap.close()
                throw ZMQError.last("zmq_socket_monitor(\(endpoint))")
            }
            let pair = try context.socket(.pair)
            try pair.setLinger(.zero)
            try pair.connect(endpoint)
            monitor = pair
            watched = socket
        }
        let job = Job(zap: zap, monitor: monitor, onEvent: onEvent, owner: self)
        // a thread of its own for the life of the handler (it polls; it never returns to a pool)
        DispatchQueue(label: "ztrain.zap").async { job.run() }
        started = true
    }

    deinit { stop() }

    /// Ends the handler thread and closes its sockets (idempotent). Turn the monitor off from the owning
    /// thread first with ``unwatch()`` when the watched socket lives on.
    public func stop() {
        lock.lock()
        let wait = started && !stopping
        stopping = true
        lock.unlock()
        if wait { done.wait() }
    }

    /// Stops monitoring the watched socket (call on its owning thread, before closing it).
    public func unwatch() {
        if let s = watched, let handle = try? s.rawHandle("zmq_socket_monitor") {
            zmq_socket_monitor(handle, nil, 0)
        }
        watched = nil
    }

    /// The Z85 public keys admitted from now on (connections already admitted stay; ZAP asks only
    /// during a connection's handshake).
    ///
    /// ```swift
    /// auth.allowed = Set(table.peers.compactMap(\.key))
    /// ```
    public var allowed: Set<String> {
        get {
            lock.lock()
            defer { lock.unlock() }
            return allowList
        }
        set {
            lock.lock()
            allowList = newValue
            lock.unlock()
        }
    }

    /// Clients admitted, refused (key or mechanism) and failed handshakes so far.
    public var statistics: (accepted: Int, refused: Int, failedHandshakes: Int) {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    fileprivate var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    fileprivate func count(_ event: AuthEvent) {
        lock.lock()
        switch event {
        case .accepted: counts.accepted += 1
        case .refusedKey, .refusedMechanism: counts.refused += 1
        case .handshakeFailed: counts.failedHandshakes += 1
        }
        lock.unlock()
    }

    fileprivate func finished() { done.signal() }
}

/// The handler thread's state (its sockets are touched by that thread only).
private final class Job: @unchecked Sendable {
    let zap: Socket
    let monitor: Socket?
    let onEvent: @Sendable (AuthEvent) -> Void
    unowned let owner: Authenticator

    init(zap: Socket, monitor: Socket?, onEvent: @escaping @Sendable (AuthEvent) -> Void, owner: Authenticator) {
        self.zap = zap
        self.monitor = monitor
        self.onEvent = onEvent
        self.owner = owner
    }

    func run() {
        let poller = Poller()
        _ = poller.register(zap)
        if let m = monitor { _ = poller.register(m) }
        while !owner.isStopping {
            guard let ready = try? poller.poll(timeout: .milliseconds(50)) else { continue }
            if ready.isReadable(zap) { answer() }
            if let m = monitor, ready.isReadable(m) { readMonitor(m) }
        }
        zap.close()
        monitor?.close()
        owner.finished()
    }

    /// One ZAP request: version, request id, domain, address, identity, mechanism, credentials...
    private func answer() {
        guard let frames = try? zap.receiveMultipart(flags: .dontWait) else { return }
        guard frames.count >= 6 else {
            // not a ZAP request (only libzmq writes here); a REP socket must still answer before it reads again
            try? zap.send(parts: [Array("1.0".utf8), frames.count > 1 ? frames[1] : [], Array("500".utf8), Array("malformed".utf8), [], []])
            return
        }
        let requestID = frames[1]
        let address = String(decoding: frames[3], as: UTF8.self)
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        var event: AuthEvent
        if mechanism == "CURVE", frames.count >= 7, frames[6].count == 32, let key = try? Z85.encode(frames[6]) {
            event = owner.allowed.contains(key) ? .accepted(key: key, address: address) : .refusedKey(key: key, address: address)
        } else {
            event = .refusedMechanism(mechanism: mechanism, address: address)
        }
        let ok: Bool
        if case .accepted = event { ok = true } else { ok = false }
        let reply: [[UInt8]] = [Array("1.0".utf8), requestID, Array((ok ? "200" : "400").utf8),
                                Array((ok ? "OK" : "not allowed").utf8), [], []]
        try? zap.send(parts: reply)
        owner.count(event)
        onEvent(event)
    }

    private func readMonitor(_ m: Socket) {
        while let frames = try? m.receiveMultipart(flags: .dontWait) {
            guard let f = HandshakeMonitor.decode(frames) else { continue }
            let endpoint = f.endpoint
            let reason = f.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "authentication refused (ZAP status \(f.value))" : f.reason(peer: "client")
            let e = AuthEvent.handshakeFailed(endpoint: endpoint, reason: reason)
            owner.count(e)
            onEvent(e)
        }
    }
}
