#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Series
import Wire

/// One computation a ``WorkerCore`` hands out (``WorkerEffect/compute(_:)``): the leaves of an
/// ASSIGN, checked. The driver runs it, on any thread, and answers with its GRADIENTs.
public struct ComputeOrder: @unchecked Sendable {
    // @unchecked: the engine and the scratch windows are used by one computation at a time (the
    // core hands out one order and waits for its answer before the next).
    let engine: GradientEngine
    let series: Series
    let assign: Assign
    let plan: StepPlan
    let runID: UInt64
    let workerID: UInt32
    let scratch: WindowScratch
    /// Seconds to sleep before computing (``WorkerOptions/artificialDelay``: a slow machine).
    public let artificialDelay: Double
    /// Corrupt one value of the answer (``FaultInjection``, a testing aid).
    var corrupt = false
    /// The step the order belongs to.
    public var step: UInt64 { assign.step }

    /// Computes the order's leaves (after its artificial delay) and returns its GRADIENTs. `clock`
    /// reads the driver's clock in seconds; `receivedAt` is when the ASSIGN arrived on it (a GRADIENT
    /// reports its compute start relative to that).
    public func run(receivedAt: Double, clock: () -> Double) -> [Envelope] {
        if artificialDelay > 0 { usleep(UInt32(min(artificialDelay, 60) * 1e6)) }
        let n = assign.windows.count
        let m = plan.leafCount
        if scratch.windows.count < n { scratch.windows = [Int](repeating: 0, count: n) }
        for i in 0..<n { scratch.windows[i] = Int(assign.windows[i]) }
        let t0 = clock()
        var out: [Envelope] = []
        assign.weights.withUnsafeBufferPointer { p in
            series.values.withUnsafeBufferPointer { s in
                scratch.windows.withUnsafeBufferPointer { w in
                    let nodes = engine.compute(params: p, series: s, windows: UnsafeBufferPointer(rebasing: w[0..<n]), run: assign.leaves)
                    let nanos = UInt64(max(0, clock() - t0) * 1e9)
                    let startNanos = UInt64(max(0, t0 - receivedAt) * 1e9)
                    for (k, node) in nodes.enumerated() {
                        let samples = plan.samples(in: node.block)
                        var sums = Array(node.sums)
                        if corrupt && k == 0 { FaultInjection.corrupt(&sums) }
                        out.append(Envelope(runID: runID, workerID: workerID, message: .gradient(Gradient(
                            step: assign.step, block: node.block, leafCount: m, samples: samples,
                            computeNanos: nanos, startNanos: startNanos, sums: sums))))
                    }
                }
            }
        }
        return out
    }
}

/// The windows of a step as `Int`s, reused from step to step.
final class WindowScratch {
    var windows: [Int] = []
}

/// The in-process effect interpreter of a ``WorkerCore``: computations run here, on this thread.
extension WorkerCore {
    /// Carries out `effects` (computations in place, their GRADIENTs fed back) and returns the messages
    /// to send. `clock` reads the driver's clock in seconds; `receivedAt` is when the message arrived.
    public func perform(_ effects: [WorkerEffect], receivedAt: Double, clock: () -> Double) -> [Envelope] {
        performRouted(effects, receivedAt: receivedAt, clock: clock).compactMap { $0.to == nil ? $0.envelope : nil }
    }

    /// ``perform(_:receivedAt:clock:)`` with the messages to other workers too (sharded aggregation):
    /// `to` nil for the coordinator, else the worker id.
    public func performRouted(_ effects: [WorkerEffect], receivedAt: Double, clock: () -> Double) -> [(to: UInt32?, envelope: Envelope)] {
        var out: [(to: UInt32?, envelope: Envelope)] = []
        var list = effects
        var i = 0
        while i < list.count {
            switch list[i] {
            case .send(let env): out.append((nil, env))
            case .sendPeer(let id, let env): out.append((id, env))
            case .compute(let order): list += handle(.computed(order.run(receivedAt: receivedAt, clock: clock)), now: clock())
            case .exit, .peers: break
            }
            i += 1
        }
        return out
    }

    /// ``handle(_:)`` with the messages to other workers (``performRouted(_:receivedAt:clock:)``).
    public func handleRouted(_ env: Envelope) -> [(to: UInt32?, envelope: Envelope)] {
        let start = ContinuousClock.now
        let clock = { seconds(since: start) }
        return performRouted(handle(.message(env, receivedAt: 0), now: 0), receivedAt: 0, clock: clock)
    }

    /// Handles one decoded message in place (computations on this thread, timed on a monotonic clock
    /// from now); returns the replies.
    ///
    /// ```swift
    /// let replies = worker.handle(welcome)  // [READY]
    /// ```
    public func handle(_ env: Envelope) -> [Envelope] {
        let start = ContinuousClock.now
        let clock = { seconds(since: start) }
        return perform(handle(.message(env, receivedAt: 0), now: 0), receivedAt: 0, clock: clock)
    }
}
