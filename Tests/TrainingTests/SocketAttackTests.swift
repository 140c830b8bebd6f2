import Foundation
import Logging
import Testing
import Wire
import ZeroMQ
@testable import Training
import Support

/// Slow steps and strangers against a coordinator on a real ROUTER socket.
@Suite("Coordinator over real sockets: slow steps and strangers")
struct SocketAttackTests {
    /// Trains over `tcp://127.0.0.1:*` with `n` worker threads while `attack(endpoint)` runs on its own
    /// thread; stops after `deadline` seconds whatever happens.
    func train(workers n: Int, steps: Int, delay: Double = 0, options: CoordinatorOptions, deadline: Double = 120,
               attack: (@Sendable (String, StopFlag, DispatchSemaphore) -> Void)? = nil) throws -> (CoordinatorCore, [String?]) {
        let series = try referenceSeries()
        let logger = Logger(label: "test")
        let core = try CoordinatorCore(config: parallelConfig(steps: steps), series: series, options: options, runID: 11)
        let server = try CoordinatorServer(core: core, bind: "tcp://127.0.0.1:*", logger: logger)
        let bound = server.endpoint
        let stop = StopFlag()
        let outcomes = Outcomes(n)
        // the attacker starts first and says when it is under way (so that its frames meet the run)
        let attacker = DispatchGroup()
        if let attack {
            let underWay = DispatchSemaphore(value: 0)
            attacker.enter()
            Thread.detachNewThread {
                defer { attacker.leave() }
                attack(bound, stop, underWay)
            }
            _ = underWay.wait(timeout: .now() + 20)
        }
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    var opts = WorkerOptions(threads: 1, host: "t", pid: Int32(i))
                    opts.artificialDelay = delay
                    let client = try WorkerClient(core: WorkerCore(options: opts), connect: bound, logger: logger)
                    outcomes.set(i, client.run(stop: stop, connectTimeout: 30))
                    client.close()
                } catch {
                    outcomes.set(i, "\(error)")
                }
            }
        }
        let serverStop = StopFlag()
        let timer = DispatchWorkItem { serverStop.set() }
        DispatchQueue.global().asyncAfter(deadline: .now() + deadline, execute: timer)
        server.run(stop: serverStop)
        timer.cancel()
        // the workers end on the coordinator's SHUTDOWN; a stop is for a test that already failed
        if group.wait(timeout: .now() + 20) == .timedOut { stop.set() }
        stop.set()
        group.wait()
        attacker.wait()
        server.close()
        return (core, outcomes.values)
    }

    @Test func aStepSlowerThanRetryAfterJustTrains() throws {
        // every computation takes 1 s; orders are given again after 0.1 s: one worker, three steps
        let reference = try InProcessTrainer(config: parallelConfig(steps: 3), series: try referenceSeries()).run().parameters
        let options = CoordinatorOptions(workers: 1, joinTimeout: 30, liveness: 2, heartbeat: 0.2, retryAfter: 0.1, speculate: false)
        let (core, outcomes) = try train(workers: 1, steps: 3, delay: 1.0, options: options)
        #expect(core.failure == nil && outcomes.allSatisfy { $0 == nil }, "\(String(describing: core.failure)) \(outcomes)")
        #expect(core.state.step == 3)
        #expect(core.state.parameters == reference)
        // 0.1, 0.2, 0.4, 0.8 s: about four copies a step, answered from the worker's last answer
        #expect(core.retried <= 3 * 6, "\(core.retried) retries for 3 steps")
        #expect(core.workers.values.allSatisfy { $0.phase == .ready })
    }

    @Test func aStrangerFloodingFramesCostsNothingAndChangesNoBit() throws {
        let reference = try InProcessTrainer(config: parallelConfig(steps: 600), series: try referenceSeries()).run().parameters
        let options = CoordinatorOptions(workers: 2, joinTimeout: 30)
        let sent = Counter()
        let (core, outcomes) = try train(workers: 2, steps: 600, options: options) { endpoint, stop, underWay in
            defer { underWay.signal() }
            // frames that fit but come from a peer that never said HELLO, then 1 MiB frames (the
            // socket refuses them before allocating: the model's frames are far smaller)
            guard let ctx = try? Context(), let s = try? ctx.socket(.dealer) else { return }
            defer { s.close(); try? ctx.terminate() }
            try? s.setLinger(.milliseconds(0))
            try? s.connect(endpoint)
            let small = [UInt8](repeating: 0xA5, count: 32 << 10)
            let header = Header(type: .gradient, runID: 11, step: 1, workerID: 1).encode()
            for k in 0..<2000 where !stop.isSet {
                if (try? s.send(parts: [header, small], flags: .dontWait)) != nil { sent.add(1) } else { usleep(1000) }
                if k == 100 { underWay.signal() }
            }
            let big = [UInt8](repeating: 0x5A, count: 1 << 20)
            for _ in 0..<50 where !stop.isSet {
                if (try? s.send(parts: [header, big], flags: .dontWait)) != nil { sent.add(1) }
            }
        }
        #expect(core.failure == nil && outcomes.allSatisfy { $0 == nil }, "\(String(describing: core.failure)) \(outcomes)")
        #expect(core.state.parameters == reference)
        #expect(sent.value > 0)
        // the socket's frame bound is the model's, not 1 MiB
        #expect(core.limits.maxPayloadBytes < 1 << 20)
        // what got through was dropped before any checksum, and no stranger entered the worker table
        #expect(core.strangerBytesDropped > 0)
        #expect(core.workers.count == 2)
    }
}
