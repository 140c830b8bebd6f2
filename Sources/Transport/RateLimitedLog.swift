import Logging
import Support

/// Logs a message at most once per `interval` seconds per key, counting what it swallowed.
///
/// Anyone who can reach a port can make a receiver drop frames; this keeps that from flooding the
/// log: one line per kind of drop per interval, with the count of those left out.
///
/// ```swift
/// var drops = RateLimitedLog(interval: 5)
/// drops.log(logger, key: "stranger", now: 12.5, "dropped 80 bytes from 01ab")
/// ```
public struct RateLimitedLog: Sendable {
    private var last: [String: Double] = [:]
    private var suppressed: [String: Int] = [:]
    /// Seconds between two lines of one key.
    public let interval: Double
    /// The level lines are logged at.
    public var level: Logger.Level

    public init(interval: Double, level: Logger.Level = .warning) {
        self.interval = interval
        self.level = level
    }

    /// Logs `message` under `key` unless a line of that key was logged less than ``interval`` ago.
    public mutating func log(_ logger: Logger, key: String, now: Double, _ message: @autoclosure () -> String) {
        if let t = last[key], now - t < interval {
            suppressed[key, default: 0] += 1
            return
        }
        let extra = suppressed[key].map { " (\($0) more like it suppressed)" } ?? ""
        logger.log(level: level, "\(message())\(extra)")
        last[key] = now
        suppressed[key] = nil
    }
}

/// A ``RateLimitedLog`` that several threads may use (the ZAP handler's thread logs refusals).
public final class SharedRateLimitedLog: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = Lock()
    private var log: RateLimitedLog
    private let t0 = ContinuousClock.now

    public init(interval: Double) { log = RateLimitedLog(interval: interval) }

    /// See ``RateLimitedLog/log(_:key:now:_:)``; the time is this log's own clock.
    public func log(_ logger: Logger, key: String, _ message: @autoclosure () -> String) {
        lock.lock()
        defer { lock.unlock() }
        log.log(logger, key: key, now: seconds(since: t0), message())
    }
}
