#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import RNN
import Training
import Transport
import Wire
import ZeroMQ
import Support

/// Why a synthetic worker stopped.
public enum WorkerExit: Sendable, Equatable, CustomStringConvertible {
    /// The coordinator sent SHUTDOWN.
    case shutdown
    /// The stop flag was raised.
    case stopped
    /// An injected `kill` fault in this round (threads; a process sends SIGKILL to itself instead).
    case killed(round: Int)
    /// Something went wrong (socket, parent process gone).
    case failed(String)

    public var description: String {
        switch self {
        case .shutdown: "shut down by the coordinator"
        case .stopped: "stopped"
        case .killed(let r): "killed (injected) in round \(r)"
        case .failed(let s): "failed: \(s)"
        }
    }
}

/// A synthetic worker: a DEALER socket in its own ZeroMQ context that answers ASSIGNs with the
/// canonical node sums of ``LeafGradients``, injecting the faults of its ``StressConfig``.
///
/// Handshake (the stress coordinator's minimal one): the worker sends a `Wire` HELLO; the
/// coordinator answers with a HEARTBEAT whose header carries the run id and the worker id it
/// gave, which the worker then puts in every message. It heartbeats every `liveness / 4` s
/// (also while computing or sleeping as a straggler), so only a dead worker falls silent.
///
/// Every fault decision is a seeded dice roll on (seed, worker serial, round or message counter),
/// and is recorded in its ``FaultSink`` *before* it takes effect.
public final class StressWorker {
    let config: StressConfig
    let serial: Int
    let sink: any FaultSink
    let stop: StopFlag
    let parentPID: Int32?
    let killSelf: Bool
    let logger: Logger

    private let gen: LeafGradients
    private let limits: Limits
    private let matrix: LeafMatrix
    private let weights: UnsafeMutableBufferPointer<Float>
    private let sumsBase: UnsafeMutablePointer<Float>
    private var pool: [[UInt8]] = []
    private var outbox: [(header: [UInt8], slot: Int, round: Int)] = []
    /// ``StressConfig/pregenerate``: the next round's sums, and the run to prepare them for once
    /// this batch's answers are out.
    private let prepared: PreparedSums
    private var toPrepare: (round: Int, run: Range<Int>)?

    private let t0 = ContinuousClock.now
    private var dealer: DealerEndpoint?
    private var workerID: UInt32 = 0
    private var runID: UInt64 = 0
    private var lastSent = 0.0
    private var helloSent = -1.0
    private var lastRound = 0
    private var lastRoundStart: Double?
    /// The last intervals between the first ASSIGNs of consecutive rounds, seconds.
    private var recentIntervals: [Double] = []
    private var messages: UInt64 = 0
    private var orders: UInt64 = 0
    private var batches: UInt64 = 0
    private let heartbeat: Double

    /// A worker.
    ///
    /// - Parameters:
    ///   - serial: this worker's number in the run (0, 1, …; replacements get new ones): seeds its dice.
    ///   - sink: where injected faults are recorded.
    ///   - stop: raised to end the worker (threads).
    ///   - parentPID: for a worker process, the harness's pid: the worker exits when it is gone.
    ///   - killSelf: inject `kill` as SIGKILL to this process (worker processes) rather than by
    ///     returning ``WorkerExit/killed(round:)``.
    public init(config: StressConfig, serial: Int, sink: any FaultSink, stop: StopFlag,
                parentPID: Int32? = nil, killSelf: Bool = false, logger: Logger) {
        self.config = config
        self.serial = serial
        self.sink = sink
        self.stop = stop
        self.parentPID = parentPID
        self.killSelf = killSelf
        self.logger = logger
        if 4 * config.parameterCount >= LargeBuffers.threshold { LargeBuffers.reuse() }
        gen = LeafGradients(seed: config.seed, parameterCount: config.parameterCount, leafCount: config.leafCount)
        limits = Limits.training(parameterCount: config.parameterCount, maxWindows: config.leafCount)
        matrix = LeafMatrix(rows: config.leafCount)
        weights = .allocate(capacity: config.parameterCount)
        weights.initialize(repeating: 0)
        sumsBase = .allocate(capacity: config.parameterCount + 1)
        sumsBase.initialize(repeating: 0, count: config.parameterCount + 1)
        heartbeat = max(0.005, config.liveness / 4)
        prepared = PreparedSums(parameterCount: config.parameterCount)
    }

    /// The typical round time: the median of the recent round intervals (robust to the long
    /// intervals stragglers and kills cause), 20 ms before any was seen.
    private var typicalRound: Double {
        guard !recentIntervals.isEmpty else { return 0.02 }
        return recentIntervals.sorted()[recentIntervals.count / 2]
    }

    deinit {
        weights.deallocate()
        sumsBase.deallocate()
    }

    private var now: Double {
        let d = ContinuousClock.now - t0
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Connects to `endpoint` and serves until SHUTDOWN, the stop flag, an injected kill or an error.
    public func run(endpoint: String) -> WorkerExit {
        var options = EndpointOptions()
        options.linger = .zero
        options.maxMessageBytes = limits.maxPayloadBytes + 4096
        options.dropLogLevel = .debug
        let dealer: DealerEndpoint
        do {
            dealer = try DealerEndpoint(connect: [endpoint], options: options, logger: logger)
        } catch {
            return .failed("cannot connect to \(endpoint): \(error)")
        }
        self.dealer = dealer
        defer {
            self.dealer = nil
            dealer.close()
        }
        while true {
            if stop.isSet { return .stopped }
            if let p = parentPID, getppid() != p { return .failed("the harness (pid \(p)) is gone") }
            if workerID == 0 && (helloSent < 0 || now - helloSent > 0.5) { sendHello() }
            do {
                if try dealer.poll(timeout: .milliseconds(10)), let exit = drain(dealer) { return exit }
            } catch {
                if error.kind == .interrupted { continue }
                return .failed("poll: \(error)")
            }
            if workerID != 0 && now - lastSent > heartbeat { sendHeartbeat() }
        }
    }

    // MARK: - receiving

    /// Handles every message waiting, then sends the batch's GRADIENTs.
    private func drain(_ dealer: DealerEndpoint) -> WorkerExit? {
        batches &+= 1
        defer { outbox.removeAll(keepingCapacity: true) }
        // Read the backlog first (bounded), so that a worker catching up after a pause answers only
        // the newest round it was given: every older round is over at the coordinator.
        var backlog: [(header: Header, message: Delivery)] = []
        for _ in 0..<64 {
            let next: Delivery?
            do { next = try dealer.next() } catch { return .failed("receive: \(error)") }
            guard let d = next else { break }
            switch d.header() {
            case .success(let header): backlog.append((header, d))
            case .failure(.wrongFrameCount): continue
            case .failure(let error): logger.debug("worker \(serial): dropped a frame: \(error)")
            }
        }
        let newest = backlog.filter { $0.header.type == .assign }.map(\.header.step).max() ?? 0
        for (header, message) in backlog {
            switch header.type {
            case .heartbeat:
                if workerID == 0 && header.workerID != 0 {
                    workerID = header.workerID
                    runID = header.runID
                    logger.debug("worker serial \(serial) joined as #\(workerID)")
                }
            case .shutdown:
                return .shutdown
            case .assign where header.step >= newest:
                if let exit = assign(message) { return exit }
            default:
                break
            }
        }
        flush()
        if let next = toPrepare {
            toPrepare = nil
            if !prepare(next.round, run: next.run) { return .stopped }
        }
        return nil
    }

    /// Generates the gradient columns of `round` for `run` before that round begins
    /// (``StressConfig/pregenerate``), then says so with a heartbeat: the coordinator begins the
    /// round once every worker has. No heartbeat goes out while it generates unless the silence
    /// nears the liveness limit (which would begin the round early, the generation then partly
    /// inside it). Returns false when stopped.
    private func prepare(_ round: Int, run: Range<Int>) -> Bool {
        let finished = prepared.prepare(round: round, run: run, gen: gen, matrix: matrix, tick: { [self] in
            if now - lastSent > config.liveness / 2 { sendHeartbeat() }
            return !stop.isSet
        })
        if finished { sendHeartbeat() }
        return finished
    }

    /// Validates an ASSIGN (zero-copy: the endpoint's view, then the weights straight into this
    /// worker's buffer), then computes and queues the node sums of its run.
    private func assign(_ message: Delivery) -> WorkerExit? {
        let p = config.parameterCount
        let checked: Result<Header, WireError> = message.open(limits: limits, assignView: true) { inbound in
            switch inbound {
            case .assign(_, let v, let w, _, _):
                do throws(WireError) {
                    // only the weights the run's loss values include are read (no copy of all P)
                    let lo = min(Int(v.header.rangeLower), gen.leafCount), hi = min(Int(v.header.rangeUpper), gen.leafCount)
                    for leaf in lo..<max(lo, hi) {
                        let i = gen.weightIndex(leaf: leaf)
                        try Wire.readFloats(w, offset: 4 * i, count: 1, into: UnsafeMutableBufferPointer(rebasing: weights[i..<(i + 1)]))
                    }
                    return .success(v.header)
                } catch {
                    return .failure(error)
                }
            case .bad(_, let error, _):
                return .failure(error)
            default:
                return .failure(.wrongFrameCount(2))
            }
        }
        let h: Header
        switch checked {
        case .success(let header): h = header
        case .failure(let error):
            logger.warning("worker \(serial): dropped an ASSIGN: \(error)")
            return nil
        }
        guard Int(h.leafCount) == gen.leafCount, h.rangeUpper <= h.leafCount, let round = Int(exactly: h.step) else {
            logger.warning("worker \(serial): an ASSIGN for \(h.leafCount) leaves; this run has \(gen.leafCount)")
            return nil
        }
        let run = Int(h.rangeLower)..<Int(h.rangeUpper)
        let t = now
        orders &+= 1
        // The coordinator begins a round only after the previous one ended: an order for an older
        // round than one already seen can only produce a late answer, so it is skipped.
        guard round >= lastRound else { return nil }
        if round > lastRound {
            if let s = lastRoundStart, t > s {
                recentIntervals.append(t - s)
                if recentIntervals.count > 15 { recentIntervals.removeFirst() }
            }
            lastRoundStart = t
            lastRound = round
            if config.killRate > 0 && uniform(config.seed, 1, UInt64(serial), UInt64(round)) < config.killRate {
                sink.record(.kill, round: round)
                if killSelf { kill(getpid(), SIGKILL) }
                return .killed(round: round)
            }
            if config.slowRate > 0 && uniform(config.seed, 2, UInt64(serial), UInt64(round)) < config.slowRate {
                sink.record(.slow, round: round)
                let pause = min(10, config.slowFactor * typicalRound)
                let end = now + pause
                while now < end {
                    if stop.isSet { return .stopped }
                    usleep(UInt32(max(100, min(5_000, (end - now) * 1e6))))
                    if now - lastSent > heartbeat { sendHeartbeat() }
                }
            }
        }
        // generated before the round began (only the loss column left), or here
        let wasPrepared = prepared.round == round && prepared.run == run
        var generationNanos: UInt64 = wasPrepared ? prepared.nanos : 0
        if config.pregenerate && round < config.rounds && !(toPrepare.map { $0.round > round } ?? false) {
            toPrepare = (round + 1, run)
        }
        for block in CanonicalTree.blocks(of: run, leafCount: gen.leafCount) {
            let start = now
            // a prepared node is sent from the preparation's buffer (the perturbation hook works
            // on a copy, so that a second answer of the node is not perturbed twice)
            var out = sumsBase
            var columns = 0..<(p + 1)
            if wasPrepared, let ready = prepared.sums(round: round, block: block) {
                columns = p..<(p + 1)
                if config.perturbRound == round || config.wrongRate > 0 { sumsBase.update(from: ready, count: p) } else { out = ready }
            }
            let finished = gen.nodeSum(
                round: UInt64(round), block: block, columns: columns,
                weights: UnsafeBufferPointer(weights), matrix: matrix, into: out + columns.lowerBound,
                tick: { [self] in
                    if now - lastSent > heartbeat { sendHeartbeat() }
                    return !stop.isSet
                })
            if !finished { return .stopped }
            generationNanos &+= UInt64(max(0, (now - start) * 1e9))
            if config.perturbRound == round && block.contains(0) { out[0] += 1 }
            if config.wrongRate > 0 && uniform(config.seed, 8, UInt64(serial), orders, UInt64(block.lowerBound)) < config.wrongRate {
                // a bit that depends on the worker, so two wrong copies of a node differ too
                out[0] = Float(bitPattern: out[0].bitPattern ^ (1 << UInt32(serial % 20)))
                sink.record(.wrong, round: round)
            }
            let slot = outbox.count
            if pool.count <= slot { pool.append([]) }
            let header = Wire.encodeGradient(
                runID: runID, workerID: workerID, step: UInt64(round), block: block, leafCount: gen.leafCount,
                samples: block.count, computeNanos: UInt64(max(0, (now - start) * 1e9)),
                sums: UnsafeBufferPointer(start: out, count: p + 1), into: &pool[slot])
            outbox.append((header, slot, round))
            if !config.reorder { flush() }
        }
        sink.generated(round: round, nanos: generationNanos)
        return nil
    }

    // MARK: - sending

    /// Sends the queued GRADIENTs (shuffled with `--reorder`), each subject to drop, duplicate
    /// and corrupt faults.
    private func flush() {
        guard !outbox.isEmpty else { return }
        var order = Array(outbox.indices)
        if config.reorder && order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(uniform(config.seed, 3, UInt64(serial), batches, UInt64(i)) * Double(i + 1))
                order.swapAt(i, min(j, i))
            }
            if let displaced = order.enumerated().first(where: { $0.offset != $0.element }) {
                sink.record(.reorder, round: outbox[displaced.element].round)
            }
        }
        for k in order {
            let item = outbox[k]
            messages &+= 1
            let u = uniform(config.seed, 4, UInt64(serial), messages)
            if u < config.dropRate {
                sink.record(.drop, round: item.round)
                continue
            }
            if u < config.dropRate + config.duplicateRate {
                sink.record(.duplicate, round: item.round)
                send(item.header, pool[item.slot])
                send(item.header, pool[item.slot])
                continue
            }
            if u < config.dropRate + config.duplicateRate + config.corruptRate {
                sink.record(.corrupt, round: item.round)
                corrupt(&pool[item.slot])
            }
            send(item.header, pool[item.slot])
        }
        outbox.removeAll(keepingCapacity: true)
    }

    /// Flips 1–4 random bytes of a payload (each XORed with a non-zero byte).
    private func corrupt(_ payload: inout [UInt8]) {
        guard !payload.isEmpty else { return }
        let flips = 1 + Int(uniform(config.seed, 5, UInt64(serial), messages) * 4)
        for f in 0..<flips {
            let at = Int(uniform(config.seed, 6, UInt64(serial), messages, UInt64(f)) * Double(payload.count))
            let x = UInt8(1 + Int(uniform(config.seed, 7, UInt64(serial), messages, UInt64(f)) * 255))
            payload[min(at, payload.count - 1)] ^= x
        }
    }

    private func send(_ header: [UInt8], _ payload: [UInt8]) {
        guard let dealer else { return }
        do {
            // the payload leaves without a copy (libzmq keeps the array's storage until it is sent)
            let frame = try ZeroMQ.Message(keeping: payload)
            if dealer.send(frames: [header, frame], blocking: true).bytes != nil { lastSent = now }
        } catch {
            logger.debug("worker \(serial): send failed: \(error)")
        }
    }

    private func sendHeartbeat() {
        let frames = Wire.encode(Envelope(runID: runID, workerID: workerID, message: .heartbeat))
        send(frames[0], frames[1])
    }

    private func sendHello() {
        let hello = Hello(host: hostName(), pid: getpid(), threads: 1,
                          ztrainVersion: "stress-worker-\(serial)")
        let frames = Wire.encode(Envelope(runID: 0, workerID: 0, message: .hello(hello)))
        send(frames[0], frames[1])
        helloSent = now
    }
}

/// This machine's name (`gethostname`), without a DNS lookup.
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
