#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Support
import Wire
import ZeroMQ

/// A bound ROUTER and all of its framing: `[routing id, header, payload]` in, validated values out;
/// envelopes in, frames out (an ASSIGN's weights straight from the sender's parameter array).
///
/// The owner supplies who its known peers are; frames from anyone else are dropped by routing id,
/// unread (no checksum, no decoding), unless they are a small HELLO. Sends never block: a peer
/// that is gone or not reading loses the message (counted in ``unsent``).
///
/// ```swift
/// let router = try RouterEndpoint(bind: ["tcp://127.0.0.1:*"], options: EndpointOptions(), logger: logger)
/// if try router.poll(timeout: .milliseconds(20)) {
///     router.receive(limits: limits, isKnown: { workers.contains($0) }) { inbound in
///         if case .message(let peer, let envelope, _) = inbound { router.send(reply(envelope), to: peer) }
///     }
/// }
/// ```
public final class RouterEndpoint {
    /// The first bound address as libzmq reports it (a `tcp://…:*` bind names its port here).
    public let endpoint: String
    let socket: Socket
    private let context: Context
    private let ownsContext: Bool
    private var authenticator: Authenticator?
    private let logger: Logger
    private var drops: RateLimitedLog
    private let t0 = ContinuousClock.now
    private let strangerFrameBytes: Int
    /// Messages that could not be sent (peer gone or not reading).
    public private(set) var unsent = 0
    /// Bytes of the messages read and sent so far (header and payload frames; for a ROUTER not the
    /// routing id): cheap counters, for the bytes a process reports (``Traffic``).
    public private(set) var bytesIn = 0
    public private(set) var bytesOut = 0
    /// Bytes of strangers' frames dropped unread.
    public private(set) var strangerBytesDropped = 0
    private var strangerBytesSinceTrim = 0
    private var lastTrim = 0.0
    /// What the ASSIGNs of the current step share: the checksum of weights and windows, and the
    /// windows frame. (The weights are not kept: a frame still holding them after the step would
    /// make the optimizer's write copy them.)
    private var assignShared: (runID: UInt64, step: UInt64, checksum: UInt64, windows: [UInt8])?

    /// Binds every address of `bind` (`tcp://HOST:PORT`, `tcp://127.0.0.1:*`, `ipc://PATH`).
    ///
    /// - Parameters:
    ///   - strangerFrameBytes: the largest HELLO read from a peer the owner does not know.
    ///   - context: a context shared with other endpoints of this process (nil: one of its own,
    ///     terminated by ``close()``). A context holds at most one CURVE server.
    public init(bind: [String], options: EndpointOptions, strangerFrameBytes: Int = 64 << 10,
                context given: Context? = nil, logger: Logger) throws(ZMQError) {
        self.logger = logger
        self.strangerFrameBytes = strangerFrameBytes
        drops = RateLimitedLog(interval: options.dropLogInterval, level: options.dropLogLevel)
        ownsContext = given == nil
        let context: Context
        if let given { context = given } else { context = try Context(blocky: false) }
        self.context = context
        do {
            socket = try context.socket(.router)
            switch options.curve {
            case .server(let secretKey, let allowed, let onEvent):
                // the ZAP handler must be bound before the socket accepts anyone
                authenticator = try Authenticator(context: context, allowed: allowed, watching: socket, onEvent: onEvent)
                try socket.configureCurveServer(secretKey: secretKey)
            case .client(let serverKey, let publicKey, let secretKey):
                try socket.configureCurveClient(serverKey: serverKey, publicKey: publicKey, secretKey: secretKey)
            case .none:
                break
            }
            try socket.setRouterMandatory(true)
            try options.apply(to: socket)
            for address in bind { try socket.bind(address) }
            endpoint = try socket.lastEndpoint
        } catch {
            authenticator?.stop()
            if ownsContext { try? context.terminate() }
            throw error
        }
    }

    /// Waits up to `timeout` for a message; true if one is waiting.
    public func poll(timeout: Duration) throws(ZMQError) -> Bool {
        try socket.poll(.readable, timeout: timeout).contains(.readable)
    }

    /// Reads up to `max` waiting messages, without blocking.
    ///
    /// Each goes to `body` as an ``Inbound``: a message of other than routing id, header and
    /// payload is ``Inbound/bad(peer:_:bytes:)`` (`wrongFrameCount`), a frame from a peer for which
    /// `isKnown` is false that is not a HELLO of at most `strangerFrameBytes` is
    /// ``Inbound/stranger(peer:bytes:)``; drops are logged at a limited rate. Returns how many
    /// messages it read.
    @discardableResult
    public func receive(limits: Limits, max: Int = 10_000, isKnown: (([UInt8]) -> Bool)? = nil,
                        _ body: (Inbound) -> Void) -> Int {
        var n = 0
        while n < max, let d = next() {
            n += 1
            if let isKnown, d.framing == nil, !isKnown(d.peer), d.type != .hello || d.bytes > strangerFrameBytes {
                strangerBytesDropped += d.bytes
                strangerBytesSinceTrim += d.bytes
                drops.log(logger, key: "stranger", now: now,
                          "dropped \(d.bytes) bytes from \(peerName(d.peer)), which has not said HELLO (\(strangerBytesDropped) bytes from strangers dropped so far)")
                body(.stranger(peer: d.peer, bytes: d.bytes))
                continue
            }
            d.open(limits: limits) { inbound in
                if case .bad(let peer, let error, _) = inbound {
                    if case .wrongFrameCount(let k) = error, d.framing != nil {
                        drops.log(logger, key: "frames", now: now,
                                  "dropped a message of \(k) frames from \(peerName(peer)) (expected identity, header, payload)")
                    } else {
                        drops.log(logger, key: "decode", now: now, "dropped a frame from \(peerName(peer)): \(error)")
                    }
                }
                body(inbound)
            }
        }
        trimIfFlooded()
        return n
    }

    /// Reads the next waiting message, or nil when none is (or the socket failed; logged). Unlike
    /// ``receive(limits:max:isKnown:_:)`` it applies no stranger rule and opens nothing: for a
    /// receiver that reads payloads in place (``Delivery/openPayload(limits:_:)``).
    public func next() -> Delivery? {
        let frames: [ZeroMQ.Message]
        do {
            frames = try socket.receiveMultipartMessages(flags: .dontWait)
        } catch {
            if error.kind != .wouldBlock { logger.error("receive failed: \(error)") }
            return nil
        }
        guard frames.count == 3, !frames[0].isEmpty else {
            return Delivery(peer: frames.first?.bytes ?? [], frames: [], framing: .wrongFrameCount(frames.count))
        }
        let d = Delivery(peer: frames[0].bytes, frames: Array(frames[1...]), framing: nil)
        bytesIn += d.bytes
        return d
    }

    /// Dropped floods leave freed blocks in the heap: hands them back to the system (at most once a second).
    private func trimIfFlooded() {
        guard strangerBytesSinceTrim >= 16 << 20 else { return }
        let t = now
        guard t - lastTrim >= 1 else { return }
        strangerBytesSinceTrim = 0
        lastTrim = t
        LargeBuffers.trim()
    }

    /// After a run's end: waits up to `timeout` and returns the routing ids of the messages that
    /// arrived (at most 10,000; the messages themselves are not read). Nil if the socket failed.
    public func waitingPeers(timeout: Duration) -> [[UInt8]]? {
        do {
            guard try poll(timeout: timeout) else { return [] }
        } catch {
            return error.kind == .interrupted ? [] : nil
        }
        var ids: [[UInt8]] = []
        for _ in 0..<10_000 {
            guard let frames = try? socket.receiveMultipartMessages(flags: .dontWait) else { break }
            guard let id = frames.first?.bytes, !id.isEmpty else { continue }
            ids.append(id)
        }
        return ids
    }

    // MARK: Sending

    /// Sends `envelope` to `peer` without blocking; an ASSIGN goes as three frames, its weights
    /// straight from `weights`' storage and its checksum and windows frame shared by every ASSIGN
    /// of the step.
    @discardableResult
    public func send(_ envelope: Envelope, to peer: [UInt8]) -> SendOutcome {
        if case .assign(let a) = envelope.message {
            let (checksum, windows) = shared(a, runID: envelope.runID)
            let header = Wire.assignHeader(
                runID: envelope.runID, workerID: envelope.workerID, step: a.step, leaves: a.leaves,
                leafCount: a.leafCount, windows: a.windows.count, checksum: checksum).encode()
            let weights: ZeroMQ.Message
            do { weights = try weightsFrame(a.weights) } catch { return failed(error, to: peer) }
            return send(frames: [header, weights, windows], to: peer)
        }
        return send(frames: Wire.encode(envelope), to: peer)
    }

    /// Sends frames already encoded (one SHUTDOWN encoded once for many peers; fault injection)
    /// to `peer`, without blocking.
    @discardableResult
    public func send(frames: [any ContiguousBytes], to peer: [UInt8]) -> SendOutcome {
        do {
            try socket.send(parts: [peer] + frames, flags: .dontWait)
        } catch {
            return failed(error, to: peer)
        }
        var bytes = 0
        for f in frames { bytes += f.withUnsafeBytes { $0.count } }
        bytesOut += bytes
        return .sent(bytes: bytes)
    }

    private func failed(_ error: ZMQError, to peer: [UInt8]) -> SendOutcome {
        // an unreachable or choked peer loses the message; liveness and retries take care of it
        unsent += 1
        switch error.kind {
        case .hostUnreachable: return .unreachable
        case .wouldBlock: return .full
        default:
            logger.log(level: drops.level, "send to \(peerName(peer)) failed: \(error)")
            return .failed(error)
        }
    }

    /// The step's ASSIGN checksum and windows frame (made on the step's first ASSIGN).
    private func shared(_ a: Assign, runID: UInt64) -> (UInt64, [UInt8]) {
        if let c = assignShared, c.runID == runID, c.step == a.step, c.windows.count == 4 * a.windows.count {
            return (c.checksum, c.windows)
        }
        let windows = a.windows.withUnsafeBufferPointer { Wire.windowsFrame($0) }
        let checksum = windows.withUnsafeBytes { win in
            a.weights.withUnsafeBytes { w in
                #if _endian(little)
                Wire.assignChecksum(weights: w, windows: win)
                #else
                Wire.littleEndianFrame(a.weights).withUnsafeBytes { Wire.assignChecksum(weights: $0, windows: win) }
                #endif
            }
        }
        assignShared = (runID, a.step, checksum, windows)
        return (checksum, windows)
    }

    /// A CURVE server's allow-list: the Z85 public keys admitted from now on (connections already
    /// admitted stay). Setting it on a plaintext endpoint does nothing.
    public var allowedKeys: Set<String> {
        get { authenticator?.allowed ?? [] }
        set { authenticator?.allowed = newValue }
    }

    /// Connections the CURVE allow-list refused (unknown keys, plaintext clients, failed handshakes).
    public var refusedConnections: Int {
        authenticator.map { $0.statistics.refused + $0.statistics.failedHandshakes } ?? 0
    }

    /// Closes the socket (messages still queued get the linger time) and an own context.
    public func close() {
        authenticator?.unwatch()
        authenticator?.stop()
        authenticator = nil
        socket.close()
        if ownsContext { try? context.terminate() }
    }

    private var now: Double { seconds(since: t0) }
}

/// What became of a send.
public enum SendOutcome: Sendable {
    /// Queued; `bytes` after the routing id.
    case sent(bytes: Int)
    /// The peer's connection is gone (ROUTER_MANDATORY's EHOSTUNREACH).
    case unreachable
    /// The peer's queue is full (it does not read).
    case full
    /// Another error (logged).
    case failed(ZMQError)

    /// The bytes sent, or nil.
    public var bytes: Int? {
        if case .sent(let b) = self { return b }
        return nil
    }
}

/// The weights frame of an ASSIGN: on a little-endian host the parameter array itself, sent
/// without a copy (libzmq keeps the storage alive until it is sent; see `Message(keeping:)`).
func weightsFrame(_ weights: [Float]) throws(ZMQError) -> ZeroMQ.Message {
    #if _endian(little)
    try ZeroMQ.Message(keeping: weights)
    #else
    try ZeroMQ.Message(Wire.littleEndianFrame(weights))
    #endif
}
