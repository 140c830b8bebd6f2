import Foundation
import Logging
import Testing
import RNN
import Series
import Wire
import ZeroMQ
@testable import Training
import Support

@Suite("Hostile frames at a live coordinator")
struct LiveFuzzTests {
    /// Throws `count` random and mutated frames at the coordinator from several sockets while two real
    /// workers train, one of the fuzzing sockets even joining as a worker that answers with garbage.
    /// The run must end with the weights of a clean run, and every bad frame must have been dropped.
    @Test func hundredThousandHostileFramesDoNotChangeTheResult() throws {
        let series = try referenceSeries()
        let config = parallelConfig(steps: 150)
        let reference = try InProcessTrainer(config: config, series: series).run().parameters
        let logger: Logger = {
            var l = Logger(label: "fuzz")
            l.logLevel = .error
            return l
        }()
        let core = try CoordinatorCore(config: config, series: series,
                                       options: CoordinatorOptions(workers: 2, joinTimeout: 30, liveness: 3, retryAfter: 0.5), runID: 77)
        let server = try CoordinatorServer(core: core, bind: "tcp://127.0.0.1:*", logger: logger)
        let endpoint = server.endpoint
        let stop = StopFlag()
        let outcomes = Outcomes(2)
        let group = DispatchGroup()
        for i in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let client = try WorkerClient(core: WorkerCore(options: WorkerOptions(threads: 1, host: "w", pid: Int32(i))),
                                                  connect: endpoint, logger: logger)
                    outcomes.set(i, client.run(stop: stop, connectTimeout: 30))
                    client.close()
                } catch {
                    outcomes.set(i, "\(error)")
                }
            }
        }
        let sent = Counter()
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            do { try fuzz(endpoint: endpoint, frames: 100_000, sent: sent, stop: stop) } catch { outcomes.set(0, "fuzzer: \(error)") }
        }
        server.run(stop: StopFlag())
        stop.set()
        group.wait()
        server.close()
        #expect(sent.value >= 100_000, "the fuzzer sent only \(sent.value) frames")
        #expect(core.failure == nil)
        #expect(core.state.step == 150)
        // most of the flood arrives while training runs, and every bad frame is counted
        #expect(core.droppedFrames > 50_000, "bad frames counted: \(core.droppedFrames) of \(sent.value)")
        #expect(core.state.parameters == reference, "hostile frames changed the weights")
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

/// Sends random frames, mutations of valid frames, and valid-looking frames with wrong ids, steps and
/// ranges; one socket joins as a worker and answers every ASSIGN with garbage.
func fuzz(endpoint: String, frames: Int, sent: Counter, stop: StopFlag) throws {
    let context = try Context(blocky: false)
    defer { try? context.terminate() }
    var rng = SeededRNG(seed: 2024)
    func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
    var sockets: [Socket] = []
    for i in 0..<4 {
        let s = try context.socket(.dealer)
        try s.setLinger(.zero)
        try s.setSendHighWaterMark(200_000)
        try s.setRoutingID([UInt8(0xF0 + i), 1, 2, 3])
        try s.connect(endpoint)
        sockets.append(s)
    }
    defer { for s in sockets { s.close() } }

    // the templates: valid frames of every kind a worker may send
    let P = ParameterLayout(parallelConfig().model).count
    let hello = Envelope(runID: 0, workerID: 0, message: .hello(Hello(protocolVersion: Int(Wire.protocolVersion), host: "fuzz", pid: 1, threads: 1, ztrainVersion: "x", expect: nil)))
    let templates: [Envelope] = [
        hello,
        Envelope(runID: 77, workerID: 1, message: .heartbeat),
        Envelope(runID: 77, workerID: 2, message: .bye("x")),
        Envelope(runID: 77, workerID: 1, message: .ready(Ready(numericsFingerprint: 1, threads: 1))),
        Envelope(runID: 77, workerID: 1, message: .gradient(Gradient(step: 3, block: 0..<2, leafCount: 10, samples: 10, computeNanos: 1,
                                                                     sums: [Float](repeating: 1e30, count: P + 1)))),
        Envelope(runID: 77, workerID: 2, message: .gradient(Gradient(step: 0, block: 0..<1, leafCount: 10, samples: 5, computeNanos: 1,
                                                                     sums: [Float](repeating: 0.5, count: P + 1)))),
    ]
    let encoded = templates.map { e -> ([UInt8], [UInt8]) in let f = Wire.encode(e); return (f[0], f[1]) }

    // socket 3 joins for real, then answers ASSIGNs with garbage of the right shape
    let joiner = sockets[3]
    try joiner.send(parts: Wire.encode(hello))
    var joinedID: UInt32 = 0

    var n = 0
    while n < frames && !stop.isSet {
        // service the joined socket
        while let msg = try joiner.receiveMultipartMessages(timeout: .zero), msg.count == 2 || msg.count == 3 {
            guard let env = try? Wire.decode(frames: msg.map(\.bytes), limits: .handshake) else { continue }
            switch env.message {
            case .welcome(let w, _):
                joinedID = w.workerID
                try joiner.send(parts: Wire.encode(Envelope(runID: w.runID, workerID: w.workerID, message: .ready(Ready(numericsFingerprint: 0, threads: 1)))))
            case .assign(let a):
                var sums = [Float](repeating: 0, count: P + 1)
                sums[Int(rng.next() % UInt64(P + 1))] = [Float.nan, .infinity, 1e38, -7][Int(rng.next() % 4)]
                let block = a.leaves.lowerBound..<min(a.leaves.upperBound, a.leaves.lowerBound + 1)
                let wrongStep = rng.next() % 2 == 0 ? a.step : a.step + 1
                let g = Gradient(step: wrongStep, block: block, leafCount: a.leafCount, samples: 1 + Int(rng.next() % 3),
                                 computeNanos: 0, sums: sums)
                try joiner.send(parts: Wire.encode(Envelope(runID: 77, workerID: joinedID, message: .gradient(g))))
            default:
                break
            }
        }
        let s = sockets[Int(rng.next() % 3)]
        switch rng.next() % 6 {
        case 0:  // random bytes, 1 to 3 frames
            let parts = (0..<(1 + Int(rng.next() % 3))).map { _ in bytes(Int(rng.next() % 100)) }
            try s.send(parts: parts)
        case 1, 2:  // a valid frame with a few bytes flipped (checksum left stale)
            var (h, p) = encoded[Int(rng.next() % UInt64(encoded.count))]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                if rng.next() % 2 == 0 || p.isEmpty { h[Int(rng.next() % UInt64(h.count))] ^= UInt8(1 + rng.next() % 255) } else {
                    p[Int(rng.next() % UInt64(p.count))] ^= UInt8(1 + rng.next() % 255)
                }
            }
            try s.send(parts: [h, p])
        case 3:  // a mutated payload with a correct checksum: gets past the checksum to the deeper checks
            let k = Int(rng.next() % UInt64(encoded.count))
            var (h, p) = encoded[k]
            if !p.isEmpty { p[Int(rng.next() % UInt64(p.count))] ^= UInt8(1 + rng.next() % 255) }
            let sum = Wire.xxh64(p)  // no template is an ASSIGN: the checksum is the payload's
            withUnsafeBytes(of: sum.littleEndian) { for (i, b) in $0.enumerated() { h[56 + i] = b } }
            try s.send(parts: [h, p])
        case 4:  // a valid frame of a worker this socket is not
            let (h, p) = encoded[1 + Int(rng.next() % UInt64(encoded.count - 1))]
            try s.send(parts: [h, p])
        default:  // truncated or extended frames
            var (h, p) = encoded[Int(rng.next() % UInt64(encoded.count))]
            if rng.next() % 2 == 0 { h = Array(h.prefix(Int(rng.next() % 64))) } else { p += bytes(1 + Int(rng.next() % 16)) }
            try s.send(parts: [h, p])
        }
        n += 1
        sent.add(1)
        if n % 2000 == 0 { usleep(1000) }  // let the coordinator breathe; the flood still arrives during training
    }
}
