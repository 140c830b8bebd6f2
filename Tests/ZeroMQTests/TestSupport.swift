import Foundation
import Testing
import ZeroMQ

/// The transports the round-trip tests run over.
enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inproc, ipc, tcp
    var testDescription: String { rawValue }
}

/// A context whose sockets default to linger 0, so nothing in a test can hang on exit.
func makeContext() throws -> Context {
    try Context(blocky: false)
}

/// A fresh, unique `inproc://` endpoint.
func uniqueInproc(_ label: String = "test") -> String {
    "inproc://\(label)-\(UUID().uuidString)"
}

/// Runs `body` with a fresh temporary directory (short path, for `ipc://`), removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = "/tmp/zmqt-\(UUID().uuidString.prefix(12))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Binds `socket` on `transport` and returns the endpoint peers should connect to
/// (for tcp the concrete port read back from `lastEndpoint`).
func bindEndpoint(_ socket: Socket, _ transport: Transport, directory: String) throws -> String {
    switch transport {
    case .inproc:
        let endpoint = uniqueInproc()
        try socket.bind(endpoint)
        return endpoint
    case .ipc:
        let endpoint = "ipc://\(directory)/\(UUID().uuidString.prefix(8)).sock"
        try socket.bind(endpoint)
        return endpoint
    case .tcp:
        try socket.bind("tcp://127.0.0.1:*")
        return try socket.lastEndpoint
    }
}

/// The port of a `tcp://host:port` endpoint, if it has a numeric one.
func tcpPort(of endpoint: String) -> Int? {
    guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return nil }
    return Int(endpoint[endpoint.index(after: colon)...])
}

/// Deterministic test bytes.
func pattern(count: Int, seed: UInt8 = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// A value shared with a helper thread.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// Runs `body` on a new OS thread (never on the cooperative pool, which blocking
/// libzmq calls must not occupy for long) and reports whether it finished within
/// `seconds`.
func finishes(within seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.start()
    return done.wait(timeout: .now() + seconds) == .success
}

/// Elapsed time of `body`.
func measure<R>(_ body: () throws -> R) rethrows -> (result: R, elapsed: Duration) {
    let clock = ContinuousClock()
    let start = clock.now
    let result = try body()
    return (result, clock.now - start)
}
