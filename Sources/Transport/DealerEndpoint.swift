#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Wire
import ZeroMQ

/// A DEALER connected to one or more addresses, and all of its framing: `[header, payload]` (or an
/// ASSIGN's `[header, weights, windows]`) in, validated values out; envelopes in, frames out.
///
/// With several addresses libzmq spreads sends over the connections round-robin and reads from
/// all of them; a worker that talks to several peers individually owns one endpoint per peer (or
/// a ``RouterEndpoint``) and polls them together with ``PollGroup``.
///
/// ```swift
/// let dealer = try DealerEndpoint(connect: ["tcp://127.0.0.1:5555"], options: EndpointOptions(), logger: logger)
/// dealer.send(Envelope(runID: 0, workerID: 0, message: .hello(hello)))
/// if try dealer.poll(timeout: .milliseconds(20)) {
///     dealer.receive(limits: .handshake) { inbound in print(inbound) }
/// }
/// ```
public final class DealerEndpoint {
    /// The addresses connected to.
    public let addresses: [String]
    let socket: Socket
    private let context: Context
    private let ownsContext: Bool
    /// Failed security handshakes (only with `monitorHandshakes`).
    public private(set) var handshakes: HandshakeMonitor?
    private let logger: Logger
    private var drops: RateLimitedLog
    private let t0 = ContinuousClock.now
    /// Messages that could not be sent (no connection, or the queue full).
    public private(set) var unsent = 0
    /// Bytes of the messages read and sent so far (header and payload frames; for a ROUTER not the
    /// routing id): cheap counters, for the bytes a process reports (``Traffic``).
    public private(set) var bytesIn = 0
    public private(set) var bytesOut = 0

    /// Connects to every address of `connect` (the peers may come up later; messages wait for them).
    ///
    /// - Parameters:
    ///   - monitorHandshakes: watch the connection for failed security handshakes (``handshakes``).
    ///   - context: a context shared with other endpoints of this process (nil: one of its own).
    public init(connect: [String], options: EndpointOptions, monitorHandshakes: Bool = false,
                context given: Context? = nil, logger: Logger) throws(ZMQError) {
        self.logger = logger
        addresses = connect
        drops = RateLimitedLog(interval: options.dropLogInterval, level: options.dropLogLevel)
        ownsContext = given == nil
        let context: Context
        if let given { context = given } else { context = try Context(blocky: false) }
        self.context = context
        do {
            socket = try context.socket(.dealer)
            if case .client(let serverKey, let publicKey, let secretKey) = options.curve {
                try socket.configureCurveClient(serverKey: serverKey, publicKey: publicKey, secretKey: secretKey)
            }
            try options.apply(to: socket)
            try socket.setRoutingID(options.routingID ?? DealerEndpoint.randomRoutingID())
            if monitorHandshakes { handshakes = try HandshakeMonitor(context: context, watching: socket) }
            for address in connect { try socket.connect(address) }
        } catch {
            handshakes?.close()
            if ownsContext { try? context.terminate() }
            throw error
        }
    }

    /// 16 random bytes, the first never zero (a ROUTER id must not start with a zero byte).
    public static func randomRoutingID() -> [UInt8] {
        var id = [UInt8](repeating: 0, count: 16)
        var g = SystemRandomNumberGenerator()
        for i in id.indices { id[i] = UInt8.random(in: 0...255, using: &g) }
        id[0] = max(1, id[0])
        return id
    }

    /// Waits up to `timeout` for a message; true if one is waiting.
    public func poll(timeout: Duration) throws(ZMQError) -> Bool {
        try socket.poll(.readable, timeout: timeout).contains(.readable)
    }

    /// Reads the next waiting message without validating it, or nil when none is waiting; throws
    /// when the socket failed. A message of other than 2 or 3 frames comes back with its
    /// `wrongFrameCount` error, which ``Delivery/open(limits:assignView:_:)`` reports.
    public func next() throws(ZMQError) -> Delivery? {
        let frames: [ZeroMQ.Message]
        do {
            frames = try socket.receiveMultipartMessages(flags: .dontWait)
        } catch {
            if error.kind == .wouldBlock { return nil }
            throw error
        }
        guard frames.count == 2 || frames.count == 3 else {
            return Delivery(peer: [], frames: [], framing: .wrongFrameCount(frames.count))
        }
        let d = Delivery(peer: [], frames: frames, framing: nil)
        bytesIn += d.bytes
        return d
    }

    /// Reads up to `max` waiting messages, without blocking, and hands each to `body` (see
    /// ``Delivery/open(limits:assignView:_:)``; bad ones are logged at a limited rate). `limits`
    /// is asked again for every message (a WELCOME changes what may follow). Returns how many
    /// messages it read; stops early when `body` returns false.
    @discardableResult
    public func receive(limits: () -> Limits, max: Int = 1000, assignView: Bool = false,
                        _ body: (Inbound) -> Bool) -> Int {
        var n = 0
        while n < max {
            let d: Delivery?
            do { d = try next() } catch {
                logger.error("receive failed: \(error)")
                break
            }
            guard let d else { break }
            n += 1
            let more = d.open(limits: limits(), assignView: assignView) { inbound in
                if case .bad(_, let error, _) = inbound {
                    if case .wrongFrameCount(let k) = error, d.framing != nil {
                        drops.log(logger, key: "frames", now: now,
                                  "dropped a message of \(k) frames (expected header and payload, or header, weights and windows)")
                    } else {
                        drops.log(logger, key: "decode", now: now, "dropped a frame from \(addresses.joined(separator: ", ")): \(error)")
                    }
                }
                return body(inbound)
            }
            if !more { break }
        }
        return n
    }

    /// Sends `envelope` without blocking (a peer that is gone loses it; the other side retries).
    /// `version` overrides the header's protocol version (tests of a peer that speaks another).
    @discardableResult
    public func send(_ envelope: Envelope, version: UInt16 = Wire.protocolVersion) -> SendOutcome {
        if case .slice(let s) = envelope.message, s.state == nil, version == Wire.protocolVersion {
            // an owner's updated slice goes from its weights' storage, shared by every peer's copy
            let values: ZeroMQ.Message
            do { values = try weightsFrame(s.values) } catch {
                unsent += 1
                logger.log(level: drops.level, "send failed: \(error)")
                return .failed(error)
            }
            return send(frames: [Wire.sliceHeader(runID: envelope.runID, workerID: envelope.workerID, s), values])
        }
        var frames = Wire.encode(envelope)
        if version != Wire.protocolVersion {
            frames[0][4] = UInt8(truncatingIfNeeded: version)
            frames[0][5] = UInt8(truncatingIfNeeded: version >> 8)
        }
        return send(frames: frames)
    }

    /// Sends frames already encoded (a GRADIENT encoded into a reused buffer; fault injection).
    /// `blocking`: wait for room in the queue instead of dropping.
    @discardableResult
    public func send(frames: [any ContiguousBytes], blocking: Bool = false) -> SendOutcome {
        do {
            try socket.send(parts: frames, flags: blocking ? [] : .dontWait)
        } catch {
            unsent += 1
            if error.kind == .wouldBlock { return .full }
            logger.log(level: drops.level, "send failed: \(error)")
            return .failed(error)
        }
        var bytes = 0
        for f in frames { bytes += f.withUnsafeBytes { $0.count } }
        bytesOut += bytes
        return .sent(bytes: bytes)
    }

    /// Closes the socket (messages still queued get the linger time) and an own context.
    public func close() {
        handshakes?.close()
        handshakes = nil
        socket.close()
        if ownsContext { try? context.terminate() }
    }

    private var now: Double { seconds(since: t0) }
}
