#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutual-exclusion lock over `pthread_mutex_t`, with `NSLock`'s interface, so that the package's
/// modules need no full Foundation (and its CoreFoundation and ICU start-up) for their locks.
///
/// Not recursive: a thread that holds it must not lock it again.
public final class Lock: @unchecked Sendable {
    // @unchecked: the mutex is the synchronization; its storage never moves (heap-allocated once).
    fileprivate let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// A new, unlocked lock.
    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Blocks until the calling thread holds the lock.
    public func lock() { pthread_mutex_lock(mutex) }

    /// Releases the lock, which the calling thread holds.
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` while holding the lock.
    public func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A lock with a condition variable (`pthread_cond_t`), with `NSCondition`'s interface: `wait()`
/// releases the lock while it sleeps and holds it again when it returns; call it in a loop that
/// checks the awaited state.
public final class Condition: @unchecked Sendable {
    // @unchecked: as `Lock`; the condition variable is used only with `mutex`'s mutex.
    private let mutex = Lock()
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    /// A new, unlocked condition.
    public init() {
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deinitialize(count: 1)
        cond.deallocate()
    }

    /// Blocks until the calling thread holds the lock.
    public func lock() { mutex.lock() }

    /// Releases the lock, which the calling thread holds.
    public func unlock() { mutex.unlock() }

    /// Runs `body` while holding the lock.
    public func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        try mutex.withLock(body)
    }

    /// Releases the lock (which the calling thread holds), sleeps until signalled (or spuriously),
    /// and holds the lock again.
    public func wait() { pthread_cond_wait(cond, mutex.mutex) }

    /// Wakes one waiting thread.
    public func signal() { pthread_cond_signal(cond) }

    /// Wakes every waiting thread.
    public func broadcast() { pthread_cond_broadcast(cond) }
}
