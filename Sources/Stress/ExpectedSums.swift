#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Training
import ZeroMQ
import Support

/// The checker: a thread that computes each round's expected gradient aggregate (columns
/// `0..<P` of the canonical sum of all M leaves) from ``LeafGradients`` alone, one round ahead of
/// the coordinator, into two preallocated buffers.
///
/// The expectation never looks at what the workers sent; it is the whole-matrix
/// `CanonicalTree.reduceInPlace` over leaves `0..<M`, whoever computed which node.
final class ExpectedSums: @unchecked Sendable {
    // @unchecked: `slots`, `queue`, `stopping` and `running` are guarded by `condition`; a slot's
    // buffer is written only by the checker thread while the slot is claimed and not ready, and
    // read only by the coordinator while it is ready and not yet released.
    private struct Slot {
        var round = 0  // 0: free
        var ready = false
    }

    let gen: LeafGradients
    private let condition = Condition()
    private var slots = [Slot(), Slot()]
    private let buffers: [UnsafeMutablePointer<Float>]
    private var queue: [Int] = []
    private var stopping = false
    private var running = false
    private let done = DispatchSemaphore(value: 0)

    /// Starts the checker thread.
    init(gen: LeafGradients) {
        self.gen = gen
        buffers = (0..<2).map { _ in
            let b = UnsafeMutablePointer<Float>.allocate(capacity: gen.parameterCount)
            b.initialize(repeating: 0, count: gen.parameterCount)
            return b
        }
        running = true
        detachThread { [self] in
            loop()
            done.signal()
        }
    }

    deinit {
        for b in buffers { b.deallocate() }
    }

    /// Asks for round `r` (idempotent).
    func request(_ r: Int) {
        condition.withLock {
            guard !queue.contains(r), !slots.contains(where: { $0.round == r }) else { return }
            queue.append(r)
            condition.broadcast()
        }
    }

    /// Waits for round `r` (requested before) and calls `body` with its `P` expected values.
    /// Returns nil if the checker was stopped first.
    func withExpected<R>(_ r: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R? {
        request(r)
        let index: Int? = condition.withLock {
            while !stopping {
                if let i = slots.firstIndex(where: { $0.round == r && $0.ready }) { return i }
                condition.wait()
            }
            return nil
        }
        guard let index else { return nil }
        return body(UnsafeBufferPointer(start: buffers[index], count: gen.parameterCount))
    }

    /// Is round `r`'s expectation computed (without waiting)?
    func isReady(_ r: Int) -> Bool {
        condition.withLock { slots.contains { $0.round == r && $0.ready } }
    }

    /// Frees round `r`'s buffer for a later round.
    func release(_ r: Int) {
        condition.withLock {
            for i in slots.indices where slots[i].round == r { slots[i] = Slot() }
            condition.broadcast()
        }
    }

    /// Stops the thread and waits for it to end.
    func stop() {
        let wasRunning: Bool = condition.withLock {
            stopping = true
            condition.broadcast()
            defer { running = false }
            return running
        }
        if wasRunning { done.wait() }
    }

    private func loop() {
        let matrix = LeafMatrix(rows: gen.leafCount)
        let all = 0..<gen.leafCount
        while true {
            let job: (round: Int, slot: Int)? = condition.withLock {
                while !stopping {
                    if !queue.isEmpty, let i = slots.firstIndex(where: { $0.round == 0 }) {
                        let r = queue.removeFirst()
                        slots[i] = Slot(round: r, ready: false)
                        return (r, i)
                    }
                    condition.wait()
                }
                return nil
            }
            guard let job else { return }
            let finished = gen.nodeSum(
                round: UInt64(job.round), block: all, columns: 0..<gen.parameterCount, weights: nil,
                matrix: matrix, into: buffers[job.slot],
                tick: { [self] in !condition.withLock { stopping } })
            guard finished else { return }
            condition.withLock {
                slots[job.slot].ready = true
                condition.broadcast()
            }
        }
    }
}
