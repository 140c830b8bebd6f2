import Wire
import ZeroMQ

/// One message as an endpoint read it: the sender's routing id (empty on a DEALER, whose only peer
/// is what it connected to) and its frames, header first, not yet validated. The frames stay
/// alive as long as the value, so ``open(limits:assignView:_:)`` can hand out views of them.
///
/// A receiver that must see a backlog before it acts (answer only the newest ASSIGN) reads
/// deliveries first and opens the ones it wants:
///
/// ```swift
/// var backlog: [Delivery] = []
/// while let d = try dealer.next() { backlog.append(d) }
/// for d in backlog where d.type == .assign {
///     d.open(limits: limits, assignView: true) { inbound in
///         if case .assign(_, let v, let weights, _, _) = inbound { use(v.header, weights) }
///     }
/// }
/// ```
public struct Delivery {
    /// The sender's routing id (empty for a DEALER's messages).
    public let peer: [UInt8]
    /// The frames after the routing id.
    let frames: [ZeroMQ.Message]
    /// Bytes after the routing id.
    public let bytes: Int
    /// Frames the message must have after the routing id, or nil when it is malformed.
    let framing: WireError?

    init(peer: [UInt8], frames: [ZeroMQ.Message], framing: WireError?) {
        self.peer = peer
        self.frames = frames
        self.framing = framing
        var n = 0
        for f in frames { n += f.count }
        bytes = n
    }

    /// The message type byte of a well-formed header frame (nothing checked beyond its size).
    public var type: MessageType? {
        guard framing == nil, let h = frames.first, h.count == Header.size else { return nil }
        return h.withUnsafeBytes { MessageType(rawValue: $0.load(fromByteOffset: 6, as: UInt8.self)) }
    }

    /// The decoded header (`Header.decode`: magic, version, type; no payload checks), or why not.
    public func header() -> Result<Header, WireError> {
        if let framing { return .failure(framing) }
        return frames[0].withUnsafeBytes { h in Result { () throws(WireError) -> Header in try Header.decode(h) } }
    }

    /// Validates the message and hands it to `body`: a GRADIENT as a zero-copy view (header
    /// validated, payload left in the received frame), an ASSIGN likewise when `assignView`, any
    /// other message decoded, and anything invalid as ``Inbound/bad(peer:_:bytes:)``. The views
    /// are valid only inside `body`.
    public func open<R>(limits: Limits, assignView: Bool = false, _ body: (Inbound) -> R) -> R {
        if let framing { return body(.bad(peer: peer, framing, bytes: bytes)) }
        return frames[0].withUnsafeBytes { h in
            let kind = h.count == Header.size ? h.load(fromByteOffset: 6, as: UInt8.self) : 0
            if kind == MessageType.gradient.rawValue, frames.count == 2 {
                return frames[1].withUnsafeBytes { p in
                    do throws(WireError) {
                        let v = try Wire.validate(header: h, payload: p, limits: limits)
                        return body(.gradient(peer: peer, v, payload: p, bytes: bytes))
                    } catch {
                        return body(.bad(peer: peer, error, bytes: bytes))
                    }
                }
            }
            if assignView, kind == MessageType.assign.rawValue, frames.count == 3 {
                return frames[1].withUnsafeBytes { w in
                    frames[2].withUnsafeBytes { n in
                        do throws(WireError) {
                            let v = try Wire.validate(header: h, frames: [w, n], limits: limits)
                            return body(.assign(peer: peer, v, weights: w, windows: n, bytes: bytes))
                        } catch {
                            return body(.bad(peer: peer, error, bytes: bytes))
                        }
                    }
                }
            }
            let decoded: Result<Envelope, WireError>
            if frames.count == 2 {
                decoded = frames[1].withUnsafeBytes { p in
                    Result { () throws(WireError) -> Envelope in try Wire.decode(header: h, frames: [p], limits: limits) }
                }
            } else {
                decoded = frames[1].withUnsafeBytes { w in
                    frames[2].withUnsafeBytes { n in
                        Result { () throws(WireError) -> Envelope in try Wire.decode(header: h, frames: [w, n], limits: limits) }
                    }
                }
            }
            switch decoded {
            case .success(let envelope): return body(.message(peer: peer, envelope, bytes: bytes))
            case .failure(let error): return body(.bad(peer: peer, error, bytes: bytes))
            }
        }
    }
}

extension Delivery {
    /// Validates a message of header and one payload frame (any type but ASSIGN: checksum, header and
    /// the type's rules, nothing materialized) and hands `body` the header and the payload as received,
    /// without a copy (a sharded NODE's or SLICE's floats straight from the frame), or why it is invalid.
    /// The view is valid only inside `body`.
    ///
    /// ```swift
    /// d.openPayload(limits: limits) { checked, payload in
    ///     if case .success(let v) = checked, v.header.type == .node { reduce(v.header, payload) }
    /// }
    /// ```
    public func openPayload<R>(limits: Limits, _ body: (Result<Wire.Validated, WireError>, UnsafeRawBufferPointer) -> R) -> R {
        if let framing { return body(.failure(framing), UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard frames.count == 2 else { return body(.failure(.wrongFrameCount(frames.count + 1)), UnsafeRawBufferPointer(start: nil, count: 0)) }
        return frames[0].withUnsafeBytes { h in
            frames[1].withUnsafeBytes { p in
                do throws(WireError) {
                    return body(.success(try Wire.validate(header: h, payload: p, limits: limits)), p)
                } catch {
                    return body(.failure(error), p)
                }
            }
        }
    }
}

/// What an endpoint hands its owner for each message: a validated view, a decoded message, a
/// frame it dropped and why, or a stranger's frame it dropped unread. Views point into the
/// received frames and are valid only inside the callback that got them.
public enum Inbound {
    /// A GRADIENT that passed every check of `Wire.validate`; its P + 1 sums are at byte 0 of
    /// `payload` (the frame as received).
    case gradient(peer: [UInt8], Wire.Validated, payload: UnsafeRawBufferPointer, bytes: Int)
    /// An ASSIGN that passed every check (only with `assignView`): P weights in `weights`, the
    /// window starts in `windows`, both the frames as received.
    case assign(peer: [UInt8], Wire.Validated, weights: UnsafeRawBufferPointer, windows: UnsafeRawBufferPointer, bytes: Int)
    /// Any other message, decoded.
    case message(peer: [UInt8], Envelope, bytes: Int)
    /// A message that failed framing or validation (counted and logged by the endpoint).
    case bad(peer: [UInt8], WireError, bytes: Int)
    /// Frames of a peer the owner does not know that were not a small HELLO: dropped unread
    /// (no checksum, no decoding).
    case stranger(peer: [UInt8], bytes: Int)

    /// The sender's routing id.
    public var peer: [UInt8] {
        switch self {
        case .gradient(let p, _, _, _), .assign(let p, _, _, _, _), .message(let p, _, _), .bad(let p, _, _), .stranger(let p, _): p
        }
    }
}
