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

/// A synthetic worker of a sharded stress run (``StressAggregation/sharded``): a DEALER to the
/// coordinator as ``StressWorker``, plus a peer ROUTER bound for the other workers (announced in its
/// HELLO) and a DEALER to each other worker of the coordinator's ``ShardTable``.
///
/// Per round, on the ORDER (step = round, its run of leaves, table = the coordinator's attempt): the
/// canonical node sums of its run (``LeafGradients``) cut by the table's ``ShardPlan``: each owner's
/// slice goes to that owner as a NODE (the last owner's ends with the loss value), the worker's own
/// slice is reduced here; as an owner it reduces its slice in the canonical order
/// (``SliceReduction``, straight from the received frames) and sends the result to every other worker
/// as a SLICE (an all-gather); once it holds every slice it reports a ``ShardReport`` (digests, loss,
/// bytes) to the coordinator. A repeated ORDER of the same attempt sends everything again (the
/// owners ignore nodes they have); a newer attempt starts the round over.
///
/// At log level trace it times its phases for profiling: `shard-phase SERIAL rROUND begin|sent|own|sliceK|held
/// MICROS`, CLOCK_MONOTONIC µs, the same clock in every process of the machine.
///
/// Faults as ``StressWorker``: kill and slow per round; drop, duplicate and corrupt per NODE and SLICE
/// sent to a peer; wrong per attempt (with that probability one of the worker's NODEs of the attempt
/// has one sum off, checksum valid).
public final class ShardStressWorker {
    let config: StressConfig
    let serial: Int
    let sink: any FaultSink
    let stop: StopFlag
    let parentPID: Int32?
    let killSelf: Bool
    let logger: Logger

    let p: Int
    let m: Int
    let gen: LeafGradients
    let limits: Limits
    let matrix: LeafMatrix
    let heartbeat: Double
    private let t0 = ContinuousClock.now

    /// The ZeroMQ context of every socket of the worker.
    var context: Context?
    var coordinator: DealerEndpoint?
    var peerRouter: RouterEndpoint?
    /// DEALERs to the other workers of the table, and where they point.
    var links: [UInt32: (endpoint: String, dealer: DealerEndpoint)] = [:]
    var workerID: UInt32 = 0
    var runID: UInt64 = 0
    var lastSent = 0.0
    var helloSent = -1.0
    var table: ShardTable?

    /// The round in progress.
    var state: ShardRoundState?
    /// Node sums generated ahead (``StressConfig/pregenerate``) and what they were generated for.
    var prepared: (round: Int, leaves: Range<Int>, owners: Int, nodes: [ShardNode], nanos: UInt64)?
    var toPrepare: (round: Int, leaves: Range<Int>, owners: Int)?
    /// What to prepare once the coordinator says the round is over.
    var prepareAfterRound: (round: Int, leaves: Range<Int>, owners: Int)?
    /// Peer messages of a later round or attempt than the current one (bounded).
    var early: [Delivery] = []
    static let maxEarly = 4096
    /// The worker's whole vector (P reduced sums) and its own reduced slices by slice index (reused
    /// every round).
    var full: [Float]
    var sliceOut: [Int: [Float]] = [:]
    /// The reductions of the last attempt, by slice index (their buffers reused).
    var spareReductions: [Int: SliceReduction] = [:]
    var lastRound = 0
    var lastRoundStart: Double?
    var recentIntervals: [Double] = []
    var messages: UInt64 = 0
    /// Attempts begun (seeds the `--wrong-rate` dice).
    var attempts: UInt64 = 0
    var peerBytesIn = 0
    var peerBytesOut = 0
    /// Peer frames dropped as invalid since the last report, and of those checksum mismatches.
    var peerInvalid = 0
    var peerChecksum = 0

    /// A worker; the parameters are ``StressWorker``'s.
    public init(config: StressConfig, serial: Int, sink: any FaultSink, stop: StopFlag,
                parentPID: Int32? = nil, killSelf: Bool = false, logger: Logger) {
        self.config = config
        self.serial = serial
        self.sink = sink
        self.stop = stop
        self.parentPID = parentPID
        self.killSelf = killSelf
        self.logger = logger
        p = config.parameterCount
        m = config.leafCount
        if 4 * p >= LargeBuffers.threshold { LargeBuffers.reuse() }
        gen = LeafGradients(seed: config.seed, parameterCount: p, leafCount: m)
        limits = Limits.training(parameterCount: p, maxWindows: m)
        matrix = LeafMatrix(rows: m)
        heartbeat = max(0.005, config.liveness / 4)
        full = [Float](repeating: 0, count: p)
    }

    var now: Double {
        let d = ContinuousClock.now - t0
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// The typical interval between rounds (median of the recent ones), 20 ms before any.
    var typicalRound: Double {
        guard !recentIntervals.isEmpty else { return 0.02 }
        return recentIntervals.sorted()[recentIntervals.count / 2]
    }

    /// Where this worker's peer router binds: a free loopback port, or a socket next to the
    /// coordinator's for `ipc://`.
    func peerBind(_ endpoint: String) -> String {
        guard endpoint.hasPrefix("ipc://") else { return "tcp://127.0.0.1:*" }
        let path = String(endpoint.dropFirst(6))
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return "ipc://\(dir.isEmpty ? "." : dir)/peer-\(getpid())-\(serial).sock"
    }

    /// Connects to the coordinator at `endpoint`, binds the peer router, and serves until SHUTDOWN,
    /// the stop flag, an injected kill or an error.
    public func run(endpoint: String) -> WorkerExit {
        var options = EndpointOptions()
        options.linger = .zero
        options.maxMessageBytes = limits.maxPayloadBytes + 4096
        options.dropLogLevel = .debug
        // one context (one I/O thread) for every socket of the worker: fewer threads to wake
        let ctx: Context
        do { ctx = try Context(blocky: false) } catch { return .failed("cannot create a ZeroMQ context: \(error)") }
        context = ctx
        let dealer: DealerEndpoint
        let router: RouterEndpoint
        do {
            dealer = try DealerEndpoint(connect: [endpoint], options: options, context: ctx, logger: logger)
        } catch {
            try? ctx.terminate()
            return .failed("cannot connect to \(endpoint): \(error)")
        }
        do {
            router = try RouterEndpoint(bind: [peerBind(endpoint)], options: options, context: ctx, logger: logger)
        } catch {
            dealer.close()
            try? ctx.terminate()
            return .failed("cannot bind the peer endpoint: \(error)")
        }
        coordinator = dealer
        peerRouter = router
        defer {
            for (_, l) in links { l.dealer.close() }
            links = [:]
            coordinator = nil
            peerRouter = nil
            dealer.close()
            router.close()
            context = nil
            try? ctx.terminate()
        }
        let group = PollGroup()
        group.add(dealer)
        group.add(router)
        while true {
            if stop.isSet { return .stopped }
            if let pp = parentPID, getppid() != pp { return .failed("the harness (pid \(pp)) is gone") }
            if workerID == 0 && (helloSent < 0 || now - helloSent > 0.5) { sendHello(router.endpoint) }
            do {
                _ = try group.poll(timeout: .milliseconds(10))
            } catch {
                if error.kind != .interrupted { return .failed("poll: \(error)") }
            }
            if let exit = drainCoordinator(dealer) { return exit }
            drainPeers(router)
            if let next = toPrepare {
                toPrepare = nil
                if !prepare(next.round, leaves: next.leaves, owners: next.owners) { return .stopped }
            }
            if workerID != 0 && now - lastSent > heartbeat { sendHeartbeat() }
        }
    }

    // MARK: - the coordinator

    private func drainCoordinator(_ dealer: DealerEndpoint) -> WorkerExit? {
        for _ in 0..<64 {
            let next: Delivery?
            do { next = try dealer.next() } catch { return .failed("receive: \(error)") }
            guard let d = next else { return nil }
            let exit: WorkerExit?? = d.open(limits: limits) { inbound -> WorkerExit?? in
                guard case .message(_, let envelope, _) = inbound else { return nil }
                switch envelope.message {
                case .heartbeat:
                    if let next = prepareAfterRound {
                        prepareAfterRound = nil
                        toPrepare = next
                    }
                    if workerID == 0 && envelope.workerID != 0 {
                        workerID = envelope.workerID
                        runID = envelope.runID
                        sendHeartbeat()
                        logger.debug("sharded worker serial \(serial) joined as #\(workerID)")
                    }
                case .shutdown:
                    return .some(.shutdown)
                case .table(let t):
                    take(t)
                case .order(let o):
                    return .some(order(o))
                default:
                    break
                }
                return nil
            }
            if let e = exit, let stopWith = e { return stopWith }
        }
        return nil
    }

    /// A newer table: links to its workers (and none to those it left out).
    private func take(_ t: ShardTable) {
        if let old = table, old.version >= t.version { return }
        guard t.parameterCount == p else { return }
        table = t
        var options = EndpointOptions()
        options.linger = .zero
        options.reconnectInterval = .milliseconds(100)
        options.reconnectIntervalMax = .seconds(1)
        options.maxMessageBytes = limits.maxPayloadBytes + 4096
        options.sendHighWaterMark = 100_000
        options.dropLogLevel = .debug
        let members = Set(t.peers.map(\.worker))
        for id in Array(links.keys) where !members.contains(id) {
            links[id]?.dealer.close()
            links[id] = nil
        }
        for peer in t.peers where peer.worker != workerID {
            if links[peer.worker]?.endpoint == peer.endpoint { continue }
            links[peer.worker]?.dealer.close()
            do {
                guard let context else { return }
                links[peer.worker] = (peer.endpoint, try DealerEndpoint(connect: [peer.endpoint], options: options, context: context, logger: logger))
            } catch {
                links[peer.worker] = nil
                logger.warning("worker serial \(serial): cannot connect to worker #\(peer.worker) at \(peer.endpoint): \(error)")
            }
        }
    }

    // MARK: - sending

    func sendHeartbeat() { sendToCoordinator(.heartbeat) }

    private func sendHello(_ peer: String) {
        guard let coordinator else { return }
        let hello = Hello(host: hostName(), pid: getpid(), threads: 1, ztrainVersion: "stress-worker-\(serial)", peer: peer)
        _ = coordinator.send(Envelope(runID: 0, workerID: 0, message: .hello(hello)))
        helloSent = now
        lastSent = helloSent
    }

    /// Sends `values` behind `header` to worker `id`, subject to the drop, duplicate and corrupt faults
    /// (the payload leaves without a copy unless it is corrupted).
    func sendPeer(_ id: UInt32, header: [UInt8], values: [Float], round: Int) {
        guard let link = links[id]?.dealer else {
            logger.debug("worker serial \(serial): no link to worker #\(id)")
            return
        }
        messages &+= 1
        let u = uniform(config.seed, 4, UInt64(serial), messages)
        var copies = 1
        if u < config.dropRate {
            sink.record(.drop, round: round)
            return
        } else if u < config.dropRate + config.duplicateRate {
            sink.record(.duplicate, round: round)
            copies = 2
        } else if u < config.dropRate + config.duplicateRate + config.corruptRate {
            sink.record(.corrupt, round: round)
            var bytes = values.withUnsafeBytes { [UInt8]($0) }
            if !bytes.isEmpty {
                let flips = 1 + Int(uniform(config.seed, 5, UInt64(serial), messages) * 4)
                for f in 0..<flips {
                    let at = Int(uniform(config.seed, 6, UInt64(serial), messages, UInt64(f)) * Double(bytes.count))
                    let x = UInt8(1 + Int(uniform(config.seed, 7, UInt64(serial), messages, UInt64(f)) * 255))
                    bytes[min(at, bytes.count - 1)] ^= x
                }
            }
            if let b = link.send(frames: [header, bytes]).bytes { peerBytesOut += b }
            return
        }
        for _ in 0..<copies {
            do {
                let frame = try ZeroMQ.Message(keeping: values)
                if let b = link.send(frames: [header, frame]).bytes { peerBytesOut += b }
            } catch {
                logger.debug("worker serial \(serial): send to #\(id) failed: \(error)")
            }
        }
    }

}

/// One tree node of a worker's run, cut into the slices of the plan (`slices[o]` holds slice `o`'s
/// elements, plus the loss value for the last slice; empty for a slice without elements), with each
/// cut's checksum (computed with the sums, before the round when they are prepared).
struct ShardNode {
    var block: Range<Int>
    var slices: [[Float]]
    var checksums: [UInt64]
}

/// A sharded stress worker's state in one attempt of one round.
struct ShardRoundState {
    var round: Int
    var attempt: UInt32
    var leaves: Range<Int>
    var plan: ShardPlan
    /// The worker of each slice, and the table's workers.
    var owners: [UInt32]
    var members: [UInt32]
    /// The slices this worker owns, and per owned slice its reduction (nil: no elements), whether
    /// it is reduced and sent.
    var owned: [Int]
    var reductions: [SliceReduction?]
    var done: [Bool]
    /// The reduction of the loss (the owner of the last slice).
    var loss: SliceReduction?
    var lossSum: Float?
    var nodes: [ShardNode]
    var generationNanos: UInt64
    /// Slices held (by slice index) and their digests.
    var held: [Bool]
    var digests: [UInt64]
    var reported = false
}
