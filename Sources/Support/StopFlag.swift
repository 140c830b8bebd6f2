/// A stop request that a signal handler (or any thread) can raise and a loop can poll.
public final class StopFlag: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = Lock()
    private var raised = false
    private var signalNumber: Int32 = 0

    public init() {}

    public func set(signal: Int32 = 0) {
        lock.lock()
        raised = true
        if signalNumber == 0 { signalNumber = signal }
        lock.unlock()
    }

    public var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return raised
    }

    /// The signal that raised the flag, or 0.
    public var signal: Int32 {
        lock.lock()
        defer { lock.unlock() }
        return signalNumber
    }
}
