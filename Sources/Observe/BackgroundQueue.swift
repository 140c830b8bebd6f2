#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Support

/// A serial queue on a thread of its own that the scheduler runs behind the training threads (on
/// Linux the thread's nice value is 19), so formatting and writing what a run is watched with takes
/// the CPU the training leaves idle rather than the training's own.
///
/// At most `limit` jobs wait: ``async(_:)`` blocks beyond that (the watch's batches are about a
/// second each, so memory stays bounded when the machine is too busy to let the thread run).
///
/// ```swift
/// let q = BackgroundQueue()
/// q.async { write(batch) }
/// q.sync()   // every job handed so far has run
/// q.stop()
/// ```
final class BackgroundQueue: @unchecked Sendable {
    // @unchecked: `jobs`, `running` and `stopped` are guarded by `condition`.
    private let condition = Condition()
    private var jobs: [@Sendable () -> Void] = []
    private var running = false
    private var stopped = false
    let limit: Int

    /// Starts the thread.
    init(limit: Int = 64) {
        self.limit = max(1, limit)
        detachThread { [self] in
            #if os(Linux)
            // on Linux the nice value is the calling thread's own (who 0: this thread)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            #endif
            loop()
        }
    }

    /// Runs `job` on the queue's thread after the jobs before it.
    func async(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        while jobs.count >= limit && !stopped { condition.wait() }
        if !stopped { jobs.append(job) }
        condition.broadcast()
        condition.unlock()
    }

    /// Returns once every job handed before has run.
    func sync() {
        condition.lock()
        while (!jobs.isEmpty || running) && !stopped { condition.wait() }
        condition.unlock()
    }

    /// Runs the jobs still waiting, then ends the thread; later jobs are dropped. Idempotent.
    func stop() {
        sync()
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while true {
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty { break }
            let job = jobs.removeFirst()
            running = true
            condition.unlock()
            job()
            condition.lock()
            running = false
            condition.broadcast()
        }
        condition.unlock()
    }
}
