// # ZeroMQ
//
// A small, safe Swift API over libzmq (4.3.x). It knows nothing about training.
//
// ## Types
//
// - `Context`: owns a `zmq_ctx`; safe to share across threads. Sockets keep their
//   context alive, and a context is terminated in `deinit` (or by `terminate()`).
// - `Socket`: one libzmq socket (`SocketType`: pair, pub, sub, req, rep, dealer,
//   router, pull, push, xpub, xsub). Closed by `close()` or `deinit`.
//   **Rule: only one thread uses a given socket at a time** (hand it over freely,
//   but never call into it concurrently). To wake a thread that is blocked in a
//   socket call, call `Context.shutdown()` from another thread.
// - `Message`: a received or to-be-sent frame owning a `zmq_msg_t`, for the
//   zero-copy paths (`withUnsafeBytes`, re-sending without copying the payload).
// - `Poller`: `zmq_poll` over sockets and raw file descriptors.
// - `Curve`, `Z85`: CURVE key pairs and Z85 text encoding.
// - `ZMQError`: every failure, with `errno`, `zmq_strerror` text and the operation.
//
// ## Conventions
//
// - All socket and context operations use typed throws: `throws(ZMQError)`.
// - "Nothing there (yet)" is `ZMQError.Kind.wouldBlock` (EAGAIN) for the
//   flag/option based calls (`.dontWait`, `setReceiveTimeout`), while the
//   `timeout:` variants (`receive(timeout:)`, `receiveMultipart(timeout:)`,
//   `receiveMessage(timeout:)`) return `nil` when the timeout expires.
// - Blocking calls retry internally on EINTR.
// - Time-valued options take `Duration` (millisecond resolution, rounded up);
//   `nil` means "infinite" where libzmq uses -1.
// - libzmq's default linger is infinite: a context cannot be terminated while a
//   closed socket still has undelivered messages. Use `Context(blocky: false)` or
//   `socket.setLinger(.zero)` when exiting must not hang.
// - `ZeroMQ.version` and `ZeroMQ.has("curve")` are module-level (module-qualified
//   spelling). Inside Swift Testing's `#expect`, bind them to a local first: the
//   macro would try to treat the module name as a value.
//
// ## Example
//
// ```swift
// import ZeroMQ
//
// let context = try Context(blocky: false)        // sockets default to linger 0
//
// let router = try context.socket(.router)
// try router.setRouterMandatory(true)
// try router.bind("tcp://127.0.0.1:*")
// let endpoint = try router.lastEndpoint         // "tcp://127.0.0.1:41234"
//
// let dealer = try context.socket(.dealer)
// try dealer.setRoutingID(Array("worker-1".utf8))
// try dealer.connect(endpoint)
// try dealer.send(parts: [Array("grad".utf8), [1, 2, 3] as [UInt8]])
//
// if let frames = try router.receiveMultipart(timeout: .seconds(5)) {
//     // frames == [Array("worker-1".utf8), Array("grad".utf8), [1, 2, 3]]
//     try router.send(parts: [frames[0], Array("ok".utf8)])
// }
// let reply = try dealer.receiveString()          // "ok"
// ```

import CZeroMQ

// `version` and `has(_:)` are module-level on purpose: spelled `ZeroMQ.version` and
// `ZeroMQ.has("curve")` they are module-qualified, and no `enum ZeroMQ` shadows the
// module name (which would break qualified names such as `ZeroMQ.Socket`).

/// The version of the libzmq that is linked at run time (`zmq_version`).
///
/// Usually spelled module-qualified: `ZeroMQ.version.major`.
public var version: (major: Int, minor: Int, patch: Int) {
    var major: Int32 = 0
    var minor: Int32 = 0
    var patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return (Int(major), Int(minor), Int(patch))
}

/// Whether libzmq was built with a capability (`zmq_has`), e.g. `"curve"`, `"ipc"`,
/// `"draft"`.
///
/// Usually spelled module-qualified: `ZeroMQ.has("curve")`.
public func has(_ capability: String) -> Bool {
    capability.withCString { zmq_has($0) } == 1
}

// MARK: - Duration helpers

extension Duration {
    /// Whole milliseconds, rounded up, clamped to `0...Int64.max`.
    var zmqMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return Int64.max }
        // attoseconds is in 0..<1e18 for a positive duration; 1 ms = 1e15 as.
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let extra = attoseconds / perMillisecond + (attoseconds % perMillisecond > 0 ? 1 : 0)
        let (total, overflow2) = ms.addingReportingOverflow(extra)
        return overflow2 ? Int64.max : total
    }

    /// Milliseconds as a libzmq `int` option value (clamped to `Int32.max`).
    var zmqOptionMilliseconds: Int32 {
        Int32(clamping: zmqMilliseconds)
    }
}
