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
import Histogram
import Logging
import RNN
import Training
import Transport
import Wire
import ZeroMQ
import Support

/// `ztrain stress`: drives the real `StepAggregator` (and its `StreamingTree`) over real ZeroMQ sockets
/// and the real `Wire` codec with synthetic workers, injects faults, and checks every round's aggregate
/// bit for bit against an independently computed expectation. Its ROUTER is the trainers'
/// `RouterEndpoint` (the same framing, validation, stranger rule and zero-copy ASSIGN sends as
/// `CoordinatorServer`); its workers' DEALERs are `DealerEndpoint`s.
///
/// Each round `r` (1-based): `StepAggregator.begin(step: r, windows: M, microBatch: 1, workers:)`,
/// one ASSIGN per order (the coordinator's `P` weights, which change every round, window starts
/// `0..<M`, the order's leaf run), GRADIENTs into `accept`, and every loop iteration the liveness
/// rule (`lost`), `overdue` and `speculate`. Once complete, `reduce()` is compared with the checker's
/// expected sum (``LeafGradients`` over all `M` leaves by `CanonicalTree.reduceInPlace`). The
/// weights then move by `1e-3 / M` × the expected aggregate.
///
/// ```swift
/// let harness = try StressHarness(config: StressConfig(workers: 4, parameterCount: 2_000, rounds: 50), logger: logger)
/// let report = try harness.run()
/// print(report.summary)   // report.passed, report.exitStatus
/// ```
public final class StressHarness {
    /// The run's configuration (validated).
    public let config: StressConfig
    /// Threads or processes.
    public let mode: WorkerMode
    let logger: Logger
    /// Called about once a second, on the thread of ``run(stop:)``, with the progress so far.
    public var onProgress: ((StressProgress) -> Void)?
    /// The `ztrain` binary that runs the stranger process of the attacks (default: this process's
    /// executable, or the worker executable in processes mode).
    public var strangerExecutable: URL?

    /// A harness; throws if the configuration is invalid.
    public init(config: StressConfig, mode: WorkerMode = .threads, logger: Logger) throws(StressError) {
        try config.validate()
        self.config = config
        self.mode = mode
        self.logger = logger
    }

    /// Runs every round (or until `stop` is raised), ends every worker, and reports.
    ///
    /// Throws only when the run cannot be carried out (bind, spawn, join timeout); a run that
    /// finds wrong aggregates, lost rounds or leaks returns a report with ``StressReport/passed``
    /// false. Every worker thread and process is ended before it returns or throws.
    public func run(stop: StopFlag = StopFlag()) throws(StressError) -> StressReport {
        let run = try StressRun(config: config, mode: mode, logger: logger, onProgress: onProgress)
        run.strangerExecutable = strangerExecutable
        defer { _ = run.teardown() }
        return try run.execute(stop: stop)
    }
}

/// One run's state: the coordinator loop (single-threaded), the worker pool and the checker.
final class StressRun {
    enum Outcome: Equatable { case pending, exact, wrong, lost }

    struct Peer {
        var identity: [UInt8]
        var lastHeard: Double
        var live: Bool
        /// Welcomed, not yet confirmed: it gets no orders until its first heartbeat with the ids the
        /// welcome gave (proof that it reads), and is forgotten after `--liveness` s without one.
        var pending = false
        /// Its peer endpoint (sharded runs: announced in its HELLO).
        var peerEndpoint: String? = nil
        /// Its serial number (from its HELLO), to tie a reaped worker to its id.
        var serial: Int? = nil
    }

    let config: StressConfig
    let mode: WorkerMode
    let logger: Logger
    let onProgress: ((StressProgress) -> Void)?
    let p: Int
    let m: Int
    let gen: LeafGradients
    let limits: Limits
    let runID: UInt64
    let clock = ContinuousClock()
    let t0: ContinuousClock.Instant

    let router: RouterEndpoint
    let endpoint: String
    let tempDir: URL
    let ledger = FaultLedger()
    let pool: any WorkerPool
    let checker: ExpectedSums

    var agg: StepAggregator
    var weights: [Float]
    let windows: [UInt32]
    /// The step of the ASSIGNs being sent (set by ``prepareAssign(round:)``).
    var assignStep: UInt64?
    let lossMatrix: LeafMatrix

    var peers: [UInt32: Peer] = [:]
    var ids: [[UInt8]: UInt32] = [:]
    var nextID: UInt32 = 1
    var liveIDs: [UInt32] = []
    var nextSerial = 0
    var lastSupervision = -1.0
    var lastMemorySample = -1.0
    var lastTimers = -1.0
    /// The latencies of the last rounds (seconds). Orders are given again only after 3 typical
    /// rounds, or a heavy configuration (64 × 4 MB) drowns in its own retries. "Typical" is the
    /// fastest of the recent rounds: a median or a moving average is dragged up by the rounds that
    /// faults made slow, which makes the next retries slower still (at high fault rates this fed
    /// back into rounds of several seconds).
    var recentRounds: [Double] = []
    var typicalRound: Double { recentRounds.min() ?? 0 }

    var outcomes: [Outcome]
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                                      numberOfSignificantValueDigits: .three)
    var bytesSent = 0
    var bytesReceived = 0
    /// Latency without generation, bytes per peer, readiness (``RoundMeasure``).
    var measure = RoundMeasure()
    /// The sharded rounds' state (``StressAggregation/sharded``).
    var shard = ShardCoordination()
    var invalidFrames = 0
    var checksumMismatches = 0
    var invalidAnswers = 0
    var lostWorkers = 0
    var rejoined = 0
    var joined = 0
    var strangerFramesDropped = 0
    var strangerBytesDropped = 0
    var handshakesAbandoned = 0
    var hellosDeferred = 0
    /// The stranger process (attacks), if one was started, and its binary.
    var stranger: pid_t?
    var strangerExecutable: URL?
    /// Open handshakes at most (as the coordinator: strangers cannot make the run hold more).
    var maxPending: Int { max(8, config.workers) }
    var replacements = 0
    var sendFailures = 0
    /// Workers found unreachable while sending, declared lost once the sending is done.
    var unreachable = Set<UInt32>()
    /// Workers declared lost because the ROUTER no longer knew them (EHOSTUNREACH).
    var disconnected = 0
    var unexpectedDeaths: [String] = []
    var wrongDetails: [String] = []
    var problems: [String] = []
    var rssFirstQuarter: Int?
    var rssLastQuarter: Int?
    var lastWarning: [String: Double] = [:]
    private var tornDown = false
    private var leaked = 0

    init(config: StressConfig, mode: WorkerMode, logger: Logger, onProgress: ((StressProgress) -> Void)?) throws(StressError) {
        self.config = config
        self.mode = mode
        self.logger = logger
        self.onProgress = onProgress
        p = config.parameterCount
        m = config.leafCount
        if 4 * p >= LargeBuffers.threshold { LargeBuffers.reuse() }
        gen = LeafGradients(seed: config.seed, parameterCount: p, leafCount: m)
        limits = Limits.training(parameterCount: p, maxWindows: m)
        runID = UInt64.random(in: 1...UInt64.max)
        t0 = clock.now
        agg = StepAggregator(width: p + 1)
        if config.wrongRate > 0 { agg.auditPlan = AuditPlan(rate: 1, seed: config.seed) }
        weights = (0..<p).map { i in Float(Int(mix64(config.seed &+ UInt64(i)) >> 41) - (1 << 22)) * 0x1p-22 }
        windows = (0..<m).map { UInt32($0) }
        lossMatrix = LeafMatrix(rows: m, chunk: 1)
        outcomes = Array(repeating: .pending, count: config.rounds + 1)

        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ztrain-stress-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw .io("cannot create \(dir.path): \(systemMessage(error))")
        }
        tempDir = dir
        let bind = config.transport == .tcp ? "tcp://127.0.0.1:*" : "ipc://\(dir.path)/coordinator.sock"
        var options = EndpointOptions()
        options.linger = .zero
        options.maxMessageBytes = limits.maxPayloadBytes + 4096
        options.sendHighWaterMark = 100_000
        // per peer, as the coordinator (what one peer can have queued here is bounded)
        options.receiveHighWaterMark = CoordinatorServer.receiveHighWaterMark
        options.dropLogLevel = .debug
        do {
            router = try RouterEndpoint(bind: [bind], options: options, strangerFrameBytes: CoordinatorCore.strangerFrameBytes,
                                        logger: logger)
            endpoint = router.endpoint
        } catch {
            try? FileManager.default.removeItem(at: dir)
            throw .transport("cannot bind \(bind): \(error)")
        }
        switch mode {
        case .threads:
            pool = ThreadWorkers(config: config, endpoint: endpoint, ledger: ledger, logger: logger)
        case .processes(let executable):
            pool = ProcessWorkers(executable: executable, config: config, endpoint: endpoint, ledgerDirectory: dir, logger: logger)
        }
        checker = ExpectedSums(gen: gen)
    }

    var now: Double {
        let d = clock.now - t0
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    // MARK: - the run

    func execute(stop: StopFlag) throws(StressError) -> StressReport {
        logger.info("stress coordinator on \(endpoint): \(config.workers) worker(s), P = \(p), M = \(m), \(config.rounds) round(s)")
        for _ in 0..<config.workers { try spawnWorker() }
        let joinDeadline = now + config.joinTimeout
        while liveIDs.count < config.workers && !stop.isSet {
            if now > joinDeadline {
                throw .joinTimeout("\(liveIDs.count) of \(config.workers) worker(s) joined within \(config.joinTimeout) s")
            }
            service(wait: .milliseconds(10))
        }
        if config.strangerFrames > 0 || config.strangerHellos > 0 { startStranger() }
        let start = now
        measure.counting = true
        var lastProgress = start
        var completed = 0
        let quarter = max(1, config.rounds / 4)
        let lr = Float(1e-3) / Float(m)
        rounds: for r in 1...config.rounds {
            if stop.isSet { break }
            let waitStart = now
            while liveIDs.isEmpty && now - waitStart < config.roundTimeout && !stop.isSet { service(wait: .milliseconds(5)) }
            prepareAssign(round: r)
            checker.request(r)
            // the checker works a round ahead; with --pregenerate only between the rounds, as the
            // workers' generation (inside a round it would take a core from it)
            if r < config.rounds && !config.pregenerate { checker.request(r + 1) }
            if config.pregenerate && r > 1 { awaitGeneration(round: r) }
            measure.roundCompute = 0
            let begun = now
            let round: (Outcome, Double)? = config.aggregation == .sharded
                ? shardedRound(r, begun: begun, stop: stop) : starRound(r, begun: begun, stop: stop)
            guard let (outcome, end) = round else { break rounds }
            outcomes[r] = outcome
            completed = r
            logger.debug("round \(r): \(outcome) after \(Int((end - begun) * 1e6)) µs; totals: retried \(agg.retried), speculative \(agg.speculative), reassigned \(agg.reassigned), late \(agg.lateOrDuplicate), lost workers \(lostWorkers)")
            if outcome == .exact {
                histogram.record(UInt64(max(1, (end - begun) * 1e6)))
                measure.recordExact(micros: (end - begun) * 1e6)
            }
            recentRounds.append(end - begun)
            if recentRounds.count > 21 { recentRounds.removeFirst() }
            _ = checker.withExpected(r) { expected in
                for i in 0..<p { weights[i] -= lr * expected[i] }
            }
            checker.release(r)
            if config.pregenerate && r < config.rounds { checker.request(r + 1) }
            if r == quarter { rssFirstQuarter = MemoryUsage.read()?.residentBytes }
            if r == config.rounds { rssLastQuarter = MemoryUsage.read()?.residentBytes }
            if let onProgress, now - lastProgress >= 1 {
                lastProgress = now
                onProgress(progress(round: r, since: start))
            }
        }
        let seconds = now - start
        measure.counting = false
        if let onProgress { onProgress(progress(round: completed, since: start)) }
        // the attacks are counted whole: the coordinator keeps serving until the stranger is done
        let attackDeadline = now + 60
        while let pid = stranger, !stop.isSet, now < attackDeadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { stranger = nil; break }
            service(wait: .milliseconds(10))
        }
        let leakedWorkers = teardown()
        return report(seconds: seconds, completed: completed, leaked: leakedWorkers, signal: stop.isSet ? max(1, stop.signal) : 0)
    }

    /// Runs round `r` through the `StepAggregator` until its aggregate is complete and checked (or
    /// the round timeout): the outcome and its end, or nil when stopped (or the checker stopped).
    func starRound(_ r: Int, begun: Double, stop: StopFlag) -> (Outcome, Double)? {
        send(agg.begin(step: UInt64(r), windows: m, microBatch: 1, workers: liveIDs, now: begun))
        while true {
            if stop.isSet { return nil }
            service(wait: .milliseconds(2))
            if agg.audit.hasDisputes { send(redoAudited(round: r)) }
            if agg.isComplete, let checked = agg.finish({ root in check(round: r, root) }) {
                guard let o = checked else { return nil }
                return (o, now)
            }
            if now - begun > config.roundTimeout {
                logger.error("round \(r) lost: leaves \(compact(agg.missingLeaves)) missing after \(config.roundTimeout) s")
                return (.lost, now)
            }
        }
    }

    /// With ``StressConfig/pregenerate``: serves until every live worker has said (a heartbeat
    /// after its last answer) that it has generated the next round, or `--round-timeout` s.
    /// The checker's expectation of round `r` is ready first too.
    func awaitGeneration(round r: Int) {
        let waitStart = now
        while !(Set(liveIDs).isSubset(of: measure.ready) && checker.isReady(r)) && now - waitStart < config.roundTimeout {
            service(wait: .milliseconds(1))
        }
    }

    /// Compares a completed round's aggregate with the expectation. Nil if the checker was stopped.
    func check(round r: Int, _ root: UnsafeBufferPointer<Float>) -> Outcome? {
        var loss: Float = 0
        weights.withUnsafeBufferPointer { w in
            _ = gen.nodeSum(round: UInt64(r), block: 0..<m, columns: p..<(p + 1), weights: w, matrix: lossMatrix, into: &loss)
        }
        guard root.count == p + 1 else {
            wrongDetails.append("round \(r): the aggregate has \(root.count) values, expected \(p + 1)")
            return .wrong
        }
        let firstDifference: Int?? = checker.withExpected(r) { expected in
            { (got: UnsafeBufferPointer<Float>) -> Int? in
                guard let g = got.baseAddress, let e = expected.baseAddress else { return nil }
                if memcmp(g, e, p * MemoryLayout<Float>.size) == 0 {
                    return got[p].bitPattern == loss.bitPattern ? nil : p
                }
                return (0..<p).first { got[$0].bitPattern != expected[$0].bitPattern }
            }(root)
        }
        guard let difference = firstDifference else { return nil }
        guard let i = difference else { return .exact }
        let want: Float = i == p ? loss : checker.withExpected(r) { $0[i] } ?? .nan
        let what = i == p ? "the loss sum" : "value \(i)"
        let detail = "round \(r): \(what) is \(root[i]) (0x\(String(root[i].bitPattern, radix: 16))), expected \(want) (0x\(String(want.bitPattern, radix: 16)))"
        logger.error("wrong aggregate in \(detail)")
        if wrongDetails.count < 10 { wrongDetails.append(detail) }
        return .wrong
    }

    // MARK: - the loop's chores

    /// One iteration: wait for messages (at most `wait`), handle them, watch the workers, apply
    /// the liveness rule, give overdue orders again, speculate for stragglers.
    ///
    /// While messages flow, the timers (supervision, liveness, retries, speculation) are looked
    /// at no more than once a millisecond, so a fast round does not pay for them every message.
    func service(wait: Duration) {
        var readable = false
        do {
            readable = try router.poll(timeout: wait)
            if readable { drain() }
        } catch {
            if error.kind != .interrupted { warn("poll", "poll failed: \(error)") }
        }
        let t = now
        if readable && t - lastTimers < 0.001 { return }
        lastTimers = t
        if t - lastSupervision >= 0.01 {
            lastSupervision = t
            supervise()
        }
        if t - lastMemorySample >= 0.25 {
            lastMemorySample = t
            pool.sampleMemory()
        }
        for id in liveIDs {
            if let peer = peers[id], t - peer.lastHeard > config.liveness {
                declareLost(id, because: cFormat("silent for %.2f s", t - peer.lastHeard))
            }
        }
        for (id, peer) in peers where peer.pending && t - peer.lastHeard > config.liveness {
            // never confirmed: forgotten
            peers[id] = nil
            ids[peer.identity] = nil
            handshakesAbandoned += 1
        }
        send(agg.overdue(now: t, timeout: max(config.retryAfter, 3 * typicalRound), live: liveIDs))
        send(agg.speculate(idle: liveIDs.filter { !agg.isBusy($0) }, now: t))
    }

    /// Replaces dead workers (after injected kills, and after crashes, which are also reported).
    func supervise() {
        for death in pool.reap() {
            if config.aggregation == .sharded, let id = peers.first(where: { $0.value.serial == death.serial })?.key {
                // its links to the other workers are gone too: the attempt is moot now, not after --liveness
                declareLost(id, because: "it ended")
            }
            if death.injected {
                logger.debug("\(death.what)")
            } else {
                logger.warning("\(death.what)")
                unexpectedDeaths.append(death.what)
            }
            do {
                try spawnWorker()
                replacements += 1
            } catch {
                warn("spawn", "cannot start a replacement worker: \(error)")
            }
        }
    }

    /// Starts the stranger process (``StrangerAttack``): `ztrain stress --stranger-connect …`.
    func startStranger() {
        let fallback: URL = if case .processes(let e) = mode { e } else { LocalWorkers.currentExecutable }
        let executable = strangerExecutable ?? fallback
        let args = ["stress", "--workers", "1", "--params", "1", "--rounds", "1", "--stranger-connect", endpoint, "--stranger-frames", String(config.strangerFrames),
                    "--stranger-hellos", String(config.strangerHellos), "--parent-pid", String(getpid()),
                    "--log-level", "warning"]
        do { stranger = try ProcessWorkers.spawn(executable.path, args) } catch {
            problems.append("cannot start the stranger process: \(error)")
        }
    }

    /// Ends the stranger process if it still runs, and reaps it.
    func stopStranger() {
        guard let pid = stranger else { return }
        stranger = nil
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return }
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    func spawnWorker() throws(StressError) {
        let serial = nextSerial
        nextSerial += 1
        try pool.spawn(serial: serial)
    }

    /// Reads every message waiting (the endpoint applies the coordinator's rules: strangers first,
    /// before any checksum; only a small HELLO is read from an unknown peer).
    func drain() {
        router.receive(limits: limits, max: 100_000, isKnown: { [unowned self] in ids[$0] != nil }) { inbound in
            switch inbound {
            case .stranger(_, let bytes):
                bytesReceived += bytes
                measure.received(bytes, from: nil)
                strangerFramesDropped += 1
                strangerBytesDropped += bytes
            case .bad(let identity, let error, let bytes):
                bytesReceived += bytes
                measure.received(bytes, from: ids[identity])
                if let id = ids[identity] { touch(id) }
                rejected(error)
            case .gradient(let identity, let v, let payload, let bytes):
                bytesReceived += bytes
                measure.received(bytes, from: ids[identity])
                gradient(identity: identity, v.header, payload)
            case .message(let identity, let envelope, let bytes):
                bytesReceived += bytes
                measure.received(bytes, from: ids[identity])
                handle(identity: identity, envelope)
            case .assign(let identity, _, _, _, let bytes):
                bytesReceived += bytes
                measure.received(bytes, from: ids[identity])
                invalidAnswers += 1
                warn("type", "unexpected ASSIGN from a worker")
            }
        }
    }

    func handle(identity: [UInt8], _ envelope: Envelope) {
        switch envelope.message {
        case .hello:
            if let id = ids[identity] {
                if peers[id]?.pending != true { touch(id) }
                welcome(id)
            } else {
                guard peers.values.filter(\.pending).count < maxPending else {
                    hellosDeferred += 1
                    return
                }
                let id = nextID
                nextID += 1
                peers[id] = Peer(identity: identity, lastHeard: now, live: false, pending: true)
                if case .hello(let hello) = envelope.message {
                    peers[id]?.peerEndpoint = hello.peer
                    peers[id]?.serial = hello.ztrainVersion.hasPrefix("stress-worker-") ? Int(hello.ztrainVersion.dropFirst(14)) : nil
                }
                ids[identity] = id
                welcome(id)
            }
        case .heartbeat:
            guard let id = ids[identity], let peer = peers[id] else { return }
            if peer.pending {
                // it read the welcome: a worker from now on
                guard envelope.runID == runID && envelope.workerID == id else { return }
                peers[id]?.pending = false
                peers[id]?.live = true
                peers[id]?.lastHeard = now
                joined += 1
                updateLive()
                logger.debug("worker #\(id) joined")
            } else {
                touch(id)
                measure.ready.insert(id)
            }
        case .bye(let reason):
            if let id = ids[identity] { declareLost(id, because: "it said BYE (\(reason))") }
        case .norm(let report) where config.aggregation == .sharded:
            guard let id = ids[identity], peers[id]?.pending == false else {
                invalidAnswers += 1
                return
            }
            touch(id)
            shardReport(from: id, report)
        default:
            invalidAnswers += 1
            warn("type", "unexpected \(envelope.message.type) from a worker")
        }
    }

    /// The hot path: a GRADIENT the endpoint validated, its P + 1 sums straight from the received
    /// frame into `StepAggregator.accept`.
    func gradient(identity: [UInt8], _ h: Header, _ payload: UnsafeRawBufferPointer) {
        guard let id = ids[identity] else {
            invalidAnswers += 1
            warn("unknown", "a GRADIENT from a worker that never said HELLO")
            return
        }
        touch(id)
        guard h.runID == runID, h.workerID == id else {
            invalidAnswers += 1
            warn("ids", "a GRADIENT with run \(h.runID) worker \(h.workerID) from worker \(id) of run \(runID)")
            return
        }
        measure.ready.remove(id)
        if h.step == assignStep { measure.roundCompute = max(measure.roundCompute, h.aux) }
        // reduced straight from the received frame (no intermediate copy)
        let verdict = agg.accept(
            worker: id, step: h.step, block: Int(h.rangeLower)..<Int(h.rangeUpper), leafCount: Int(h.leafCount),
            samples: Int(clamping: h.count), littleEndian: UnsafeRawBufferPointer(rebasing: payload[0..<(4 * (p + 1))]), now: now)
        logger.trace("answer: round \(h.step) block \(h.rangeLower)..<\(h.rangeUpper) from #\(id): \(verdict)")
        if case .invalid(let why) = verdict {
            invalidAnswers += 1
            logger.debug("refused an answer of worker #\(id): \(why)")
        }
    }

    func rejected(_ error: WireError?) {
        invalidFrames += 1
        if error == .checksumMismatch { checksumMismatches += 1 }
        logger.debug("dropped a frame: \(error.map { "\($0)" } ?? "?")")
    }

    func touch(_ id: UInt32) {
        guard var peer = peers[id], !peer.pending else { return }
        peer.lastHeard = now
        if !peer.live {
            peer.live = true
            rejoined += 1
            peers[id] = peer
            updateLive()
            logger.info("worker #\(id) spoke again and is back")
        } else {
            peers[id] = peer
        }
    }

    func declareLost(_ id: UInt32, because reason: String) {
        guard var peer = peers[id], peer.live else { return }
        peer.live = false
        peers[id] = peer
        lostWorkers += 1
        updateLive()
        if config.aggregation == .sharded { shardMemberLost(id) }
        let orders = agg.lost(id, live: liveIDs, now: now)
        logger.debug("worker #\(id) lost (\(reason)); \(orders.count) order(s) reassigned")
        send(orders)
    }

    func updateLive() {
        liveIDs = peers.filter { $0.value.live }.map(\.key).sorted()
    }

    /// Prepares the round's ASSIGNs (the endpoint computes their shared checksum and windows frame
    /// on the first; the weights go straight from this run's weight array, protocol v2).
    func prepareAssign(round r: Int) {
        assignStep = UInt64(r)
    }

    func send(_ orders: [Order]) {
        guard !orders.isEmpty, let step = assignStep else { return }
        for o in orders {
            guard let peer = peers[o.worker] else { continue }
            logger.trace("order: round \(step) leaves \(o.run) to #\(o.worker)\(o.speculative ? " (speculative)" : "")")
            // no copy of the weights: libzmq sends from the array's storage, which the message
            // keeps alive (the next round's update then writes a fresh copy if it still holds it)
            let assign = Assign(step: step, leaves: o.run, leafCount: m, weights: weights, windows: windows)
            let outcome = router.send(Envelope(runID: runID, workerID: o.worker, message: .assign(assign)), to: peer.identity)
            if let b = outcome.bytes {
                bytesSent += b
                measure.sent(b, to: o.worker)
            } else {
                sendFailures += 1
                logger.debug("ASSIGN to worker #\(o.worker) not sent: \(outcome)")
                if case .unreachable = outcome { unreachable.insert(o.worker) }
            }
        }
        // With ROUTER_MANDATORY, EHOSTUNREACH means the peer's connection is gone (a killed
        // worker): it is lost now rather than after --liveness, or the aggregator keeps giving its
        // speculative and retried orders to a black hole.
        while let id = unreachable.popFirst() {
            if peers[id]?.live == true {
                disconnected += 1
                declareLost(id, because: "its connection is gone (EHOSTUNREACH)")
            }
        }
    }

    func welcome(_ id: UInt32) {
        guard let peer = peers[id] else { return }
        if let b = router.send(Envelope(runID: runID, workerID: id, message: .heartbeat), to: peer.identity).bytes {
            bytesSent += b
            measure.sent(b, to: id)
        } else {
            sendFailures += 1
        }
    }

    /// Logs a warning at most once a second per key.
    func warn(_ key: String, _ message: @autoclosure () -> String) {
        let t = now
        if let last = lastWarning[key], t - last < 1 { return }
        lastWarning[key] = t
        logger.warning("\(message())")
    }

    func progress(round: Int, since start: Double) -> StressProgress {
        StressProgress(round: round, rounds: config.rounds, seconds: now - start,
                       p50Micros: histogram.totalCount > 0 ? histogram.valueAtPercentile(50) : 0,
                       bytesSent: bytesSent, bytesReceived: bytesReceived, faults: ledger.total,
                       wrong: outcomes.filter { $0 == .wrong }.count, lostWorkers: lostWorkers)
    }

    // MARK: - the end

    /// Tells every worker to shut down, ends them (threads joined, processes reaped), stops the
    /// checker, closes the socket. Idempotent; returns how many workers could not be ended.
    func teardown() -> Int {
        guard !tornDown else { return leaked }
        tornDown = true
        stopStranger()
        pool.sampleMemory()
        let shutdown = Wire.encode(Envelope(runID: runID, workerID: 0, message: .shutdown("the stress run is over")))
        for peer in peers.values {
            router.send(frames: shutdown, to: peer.identity)
        }
        leaked = pool.stopAll(grace: 3)
        if let processes = pool as? ProcessWorkers { processes.mergeLedgers(into: ledger) }
        checker.stop()
        router.close()
        try? FileManager.default.removeItem(at: tempDir)
        return leaked
    }

    func report(seconds: Double, completed: Int, leaked: Int, signal: Int32) -> StressReport {
        let exact = outcomes.filter { $0 == .exact }.count
        let wrong = outcomes.filter { $0 == .wrong }.count
        let lost = outcomes.filter { $0 == .lost }.count
        var faults: [String: FaultCount] = [:]
        for kind in FaultKind.allCases {
            faults[kind.rawValue] = FaultCount(
                injected: ledger.injected(kind),
                survived: ledger.injected(kind) { r in r >= 1 && r < outcomes.count && outcomes[r] == .exact })
        }
        var problems = self.problems
        if wrong > 0 { problems.append("\(wrong) wrong aggregate(s)" + (wrongDetails.first.map { " (first: \($0))" } ?? "")) }
        if lost > 0 { problems.append("\(lost) round(s) lost (not complete within \(config.roundTimeout) s)") }
        if leaked > 0 { problems.append("\(leaked) worker(s) could not be ended (leaked)") }
        if !unexpectedDeaths.isEmpty { problems.append("\(unexpectedDeaths.count) worker(s) died without an injected kill (first: \(unexpectedDeaths[0]))") }
        if signal != 0 { problems.append("interrupted by signal \(signal) after \(completed) of \(config.rounds) round(s)") }
        else if completed < config.rounds { problems.append("only \(completed) of \(config.rounds) round(s) ran") }
        let h = histogram
        let latency = h.totalCount > 0
            ? LatencySummary(p50: h.valueAtPercentile(50), p90: h.valueAtPercentile(90), p99: h.valueAtPercentile(99), max: h.max, mean: h.mean)
            : LatencySummary(p50: 0, p90: 0, p99: 0, max: 0, mean: 0)
        let modeName: String = if case .threads = mode { "threads" } else { "processes" }
        var report = StressReport(
            config: config, mode: modeName, endpoint: endpoint, rounds: exact + wrong, exactRounds: exact,
            wrongAggregates: wrong, lostRounds: lost, wrongDetails: wrongDetails, seconds: seconds,
            roundsPerSecond: seconds > 0 ? Double(exact + wrong) / seconds : 0, latencyMicros: latency,
            bytesSent: bytesSent, bytesReceived: bytesReceived,
            bytesSentPerSecond: seconds > 0 ? Double(bytesSent) / seconds : 0,
            bytesReceivedPerSecond: seconds > 0 ? Double(bytesReceived) / seconds : 0,
            peakRSS: MemoryUsage.read()?.peakResidentBytes, rssFirstQuarter: rssFirstQuarter, rssLastQuarter: rssLastQuarter,
            workerPeakRSS: pool.workerPeakRSS, faults: faults, lateOrDuplicate: agg.lateOrDuplicate,
            invalidFrames: invalidFrames, checksumMismatches: checksumMismatches, invalidAnswers: invalidAnswers,
            retried: agg.retried, speculative: agg.speculative, reassigned: agg.reassigned, lostWorkers: lostWorkers,
            disconnectedWorkers: disconnected, rejoinedWorkers: rejoined, joinedWorkers: joined, replacements: replacements,
            unexpectedDeaths: unexpectedDeaths, leakedWorkers: leaked, workerPids: pool.startedPIDs, interruptedBy: signal,
            problems: problems, passed: problems.isEmpty)
        report.strangerFramesDropped = strangerFramesDropped
        report.strangerBytesDropped = strangerBytesDropped
        report.strangerHandshakesAbandoned = handshakesAbandoned
        report.strangerHellosDeferred = hellosDeferred
        report.aggregationLatencyMicros = LatencySummary(measure.aggregation)
        report.generationMicros = LatencySummary(nanos: ledger.generationByRound.sorted { $0.key < $1.key }.map(\.value))
        report.bytesPerRound = StressBytes(coordinator: (measure.coordinatorIn, measure.coordinatorOut), workers: measure.peers,
                                           rounds: exact + wrong, workerCount: config.workers, parameterCount: p)
        report.wrongDetected = config.aggregation == .sharded ? shard.wrongDetected : agg.audit.mismatches
        if config.aggregation == .sharded {
            report.sharded = ShardedCounters(tables: shard.tables, attemptsRedone: shard.redone, ordersRepeated: shard.repeated,
                                             ownersLost: shard.ownersLost, staleReports: shard.staleReports)
        }
        return report
    }
}

/// `[0..<3, 7]` style text for a list of leaves.
func compact(_ leaves: [Int]) -> String {
    var parts: [String] = []
    var i = 0
    while i < leaves.count {
        var j = i
        while j + 1 < leaves.count && leaves[j + 1] == leaves[j] + 1 { j += 1 }
        parts.append(i == j ? "\(leaves[i])" : "\(leaves[i])..<\(leaves[j] + 1)")
        i = j + 1
    }
    return "[" + parts.joined(separator: ", ") + "]"
}

extension Result {
    /// The error, if any.
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
