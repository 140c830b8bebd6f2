import Dispatch
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
import Wire
import Support
import Transport
import ZeroMQ

/// The coordinator's transport: one ROUTER socket, a poll loop, and the ``CoordinatorCore`` it drives.
public final class CoordinatorServer {
    public let core: CoordinatorCore
    public let endpoint: String
    /// All framing: validation, the stranger rule, zero-copy ASSIGNs, drop logs.
    private let router: RouterEndpoint
    private let logger: Logger
    private let clock = ContinuousClock()
    private let t0: ContinuousClock.Instant
    /// Messages that could not be sent (peer gone or not reading).
    public var unsent: Int { router.unsent }
    /// Refreshed about once a second while the loop runs (for liveness probes).
    public var healthFile: HealthFile?
    /// Gets the loop's timer ticks (straggler report, metrics).
    public var observer: (any CoordinatorObserver)?
    /// Quarantined workers whose CURVE keys left the allow-list.
    private var revokedKeys = 0

    /// Binds `bind` (`tcp://HOST:PORT`, `tcp://127.0.0.1:*`, `ipc://PATH`).
    ///
    /// With `security`, the socket is a CURVE server whose ZAP handler admits only the allow-listed worker
    /// keys; refusals (unknown keys, plaintext clients) are logged as warnings and counted in
    /// ``refusedConnections``. Without it, binding an address other machines can reach logs a warning.
    public init(core: CoordinatorCore, bind: String, security: CurveServerSecurity? = nil, logger: Logger) throws(TrainingError) {
        self.core = core
        self.logger = logger
        t0 = clock.now
        // the core measures its own work (reducing, the update) on this clock
        let start = t0
        core.stopwatch = { seconds(since: start) }
        if 4 * core.parameterCount >= LargeBuffers.threshold { LargeBuffers.reuse() }
        if security == nil && !isLocalEndpoint(bind) {
            logger.warning("binding \(bind) without CURVE: anyone who can reach it can join the run and read the model; give the coordinator --curve-dir (see 'ztrain keygen')")
        }
        var options = EndpointOptions()
        if let security {
            let log = logger
            // anyone who can reach the port can make these happen: at most one line per kind per 5 s
            // (with the count of those left out), and the totals at the end of the run
            let limited = SharedRateLimitedLog(interval: 5)
            options.curve = .server(secretKey: security.certificate.secretKey ?? "", allowed: security.allowed) { event in
                switch event {
                case .accepted(let key, let address):
                    log.info("worker key \(key) from \(address) admitted")
                case .refusedKey(let key, let address):
                    limited.log(log, key: "key", "refused a connection from \(address): CURVE key \(key) is not in the allow-list")
                case .refusedMechanism(let m, let address):
                    limited.log(log, key: "mechanism", "refused a \(m) connection from \(address): CURVE required")
                case .handshakeFailed(let endpoint, let reason):
                    limited.log(log, key: "handshake", "refused a connection on \(endpoint): \(reason)")
                }
            }
        }
        // every frame a worker may send is bounded by the model size
        options.maxMessageBytes = core.limits.maxPayloadBytes + 4096
        options.heartbeatInterval = .milliseconds(Int64(core.options.heartbeat * 1000))
        options.heartbeatTimeout = .milliseconds(Int64(core.options.liveness * 1000))
        options.sendHighWaterMark = 10_000
        // per peer: what any one peer can have queued here is this many frames of at most the
        // size above (a worker's sends wait in its own queue meanwhile; nothing is lost)
        options.receiveHighWaterMark = CoordinatorServer.receiveHighWaterMark
        do {
            router = try RouterEndpoint(bind: [bind], options: options, strangerFrameBytes: CoordinatorCore.strangerFrameBytes,
                                        logger: logger)
        } catch {
            throw .invalidConfig("cannot bind \(bind): \(error)")
        }
        endpoint = router.endpoint
    }

    public var now: Double { seconds(since: t0) }

    /// Messages queued per peer before the socket stops reading from it.
    public static let receiveHighWaterMark = 128

    /// Runs until the core is done or `stop` is raised; then tells every worker to shut down.
    ///
    /// The loop wakes on every message; timers (liveness, heartbeats, retries, speculation) are
    /// looked at when nothing arrived and otherwise at most once a millisecond, so a busy step
    /// pays for them rarely. A sharded run asked to stop between sync steps first fetches the
    /// owners' slices (the exact state of the step it stops at): the loop goes on until the core is
    /// done, at most ``stopGraceSeconds`` (then the core goes back to its last sync step).
    public func run(stop: StopFlag) {
        var lastTick = -1.0
        var stoppedAt: Double?
        while !core.isDone {
            if stop.isSet {
                guard let t = stoppedAt else {
                    stoppedAt = now
                    feed(.shutdown(reason: "the coordinator was stopped (signal \(stop.signal))"))
                    if core.stopAwaitsShards { continue }
                    break
                }
                if now - t > stopGraceSeconds { break }
            }
            var readable = false
            do {
                readable = try router.poll(timeout: .milliseconds(20))
                if readable { drain() }
            } catch {
                if error.kind == .interrupted { continue }
                logger.error("poll failed: \(error)")
                break
            }
            let t = now
            if !readable || t - lastTick >= 0.001 {
                lastTick = t
                send(core.perform(core.handle(.tick, now: t), now: now))
                healthFile?.beat(now: t)
                observer?.tick(self, now: t)
            }
        }
        if core.failure != nil || stop.isSet {
            feed(.shutdown(reason: "the run stopped"))
        }
    }

    /// How long a stop waits for the owners' slices (sharded) before it settles for the last sync step.
    public var stopGraceSeconds: Double { core.options.liveness + 1 }

    /// How long the coordinator stays after the end for workers it has not told yet: a worker
    /// declared dead (paused, slow) heartbeats within `--heartbeat` and says HELLO again after
    /// `--liveness` of silence.
    public var farewellSeconds: Double { min(10, max(1, core.options.liveness + core.options.heartbeat)) }

    /// After the end, for up to `seconds`: every peer that speaks is told once that the run is over
    /// (``CoordinatorCore/farewell(to:now:)``), so a worker the coordinator had declared dead, or one
    /// saying HELLO to rejoin, exits now instead of saying HELLO until its `--reconnect-timeout`.
    /// Returns at once when every worker that may still run has been told (the usual case). Call it
    /// after the run's outputs are written (a coordinator killed meanwhile leaves them whole).
    public func dismissStragglers(for seconds: Double) {
        let end = now + seconds
        answerPeers(on: router, while: { now < end && !core.everyWorkerDismissed }) { id in
            feed(.farewell(PeerID(id)))
        }
    }

    /// Reads every frame waiting (bounded per round, so ticks still happen under a flood): the
    /// endpoint validates, the core decides, the outputs go back through the endpoint.
    private func drain() {
        router.receive(limits: core.limits, isKnown: { [core] in core.isWorker(PeerID($0)) }) { inbound in
            switch inbound {
            case .gradient(let peer, let v, let payload, let bytes):
                // the hot path: a GRADIENT is validated and reduced straight from the received frame
                feed(.gradient(header: v.header, payload: payload, from: PeerID(peer), bytes: bytes))
            case .message(let peer, let env, let bytes):
                feed(.message(env, from: PeerID(peer), bytes: bytes))
            case .bad(let peer, .wrongFrameCount(let n), _):
                // counted, never answered (a peer that cannot frame cannot read an answer either)
                _ = core.perform(core.handle(.badFrame(from: PeerID(peer), error: .wrongFrameCount(n)), now: now), now: now)
            case .bad(let peer, let error, _):
                feed(.badFrame(from: PeerID(peer), error: error))
            case .stranger(let peer, let bytes):
                feed(.stranger(PeerID(peer), bytes: bytes))
            case .assign:
                break  // only with assignView
            }
        }
    }

    /// Hands `input` to the core (now) and carries out its effects (``CoordinatorCore/perform(_:now:)``:
    /// answers it waits for are fed back at the clock's time); then sends its messages.
    private func feed(_ input: CoordinatorInput) {
        send(core.perform(core.handle(input, now: now), now: now))
    }

    /// Sends the core's outputs without blocking (a peer that does not read must not stall the
    /// run; liveness and retries take care of what is lost).
    private func send(_ out: [Outgoing]) {
        revokeQuarantinedKeys()
        for o in out {
            let t = clock.now
            // an ASSIGN's weights go out straight from the run's parameter buffer (protocol v2)
            guard let bytes = router.send(o.envelope, to: o.peer.bytes).bytes else { continue }
            var isAssign = false
            if case .assign = o.envelope.message { isAssign = true }
            let at = now
            _ = core.perform(core.handle(.sent(peer: o.peer, bytes: bytes, seconds: seconds(since: t), isAssign: isAssign,
                                               at: isAssign ? at : nil), now: at), now: now)
        }
    }

    /// A quarantined worker's CURVE key leaves the allow-list: a process holding it cannot even
    /// connect again (its HELLO would be refused too, ``Quarantine/refusal(host:pid:key:)``).
    private func revokeQuarantinedKeys() {
        let q = core.quarantined
        guard q.count > revokedKeys else { return }
        for e in q[revokedKeys...] {
            guard let key = e.key, router.allowedKeys.contains(key) else { continue }
            router.allowedKeys.remove(key)
            logger.warning("CURVE key \(key) of quarantined worker \(e.worker) (\(e.host) pid \(e.pid)) removed from the allow-list")
        }
        revokedKeys = q.count
    }

    /// Connections the CURVE allow-list refused (unknown keys, plaintext clients, failed handshakes).
    public var refusedConnections: Int {
        router.refusedConnections
    }

    /// Closes the socket and the context (messages still queued get the linger time).
    public func close() { router.close() }
}

extension CoordinatorServer {
    /// A coordinator started for a run that is already complete (`--resume`, `--auto-resume`): its
    /// predecessor may have been killed after the run-end checkpoint but before its SHUTDOWNs left,
    /// and its workers say HELLO to rejoin. For `seconds` (longer than libzmq's reconnect interval, so
    /// the HELLOs they queued meanwhile arrive), every peer that speaks is told once that the run is
    /// complete; at most ``CoordinatorCore/maxDismissed`` peers. Returns how many were told.
    public static func dismissWaitingWorkers(bind: String, security: CurveServerSecurity?, seconds: Double,
                                             logger: Logger) throws(TrainingError) -> Int {
        var options = EndpointOptions()
        if let security {
            let limited = SharedRateLimitedLog(interval: 5)
            options.curve = .server(secretKey: security.certificate.secretKey ?? "", allowed: security.allowed) { event in
                if case .refusedKey(let key, let address) = event {
                    limited.log(logger, key: "key", "refused a connection from \(address): CURVE key \(key) is not in the allow-list")
                }
            }
        }
        options.maxMessageBytes = CoordinatorCore.strangerFrameBytes + 4096
        options.receiveHighWaterMark = receiveHighWaterMark
        let router: RouterEndpoint
        do {
            router = try RouterEndpoint(bind: [bind], options: options, logger: logger)
        } catch {
            throw .invalidConfig("cannot bind \(bind): \(error)")
        }
        defer { router.close() }
        let start = ContinuousClock.now
        var told: Set<[UInt8]> = []
        let shutdown = Wire.encode(Envelope(runID: 0, workerID: 0, message: .shutdown("the run is complete")))
        answerPeers(on: router, while: { Training.seconds(since: start) < seconds }) { id in
            guard !told.contains(id), told.count < CoordinatorCore.maxDismissed else { return }
            told.insert(id)
            router.send(frames: shutdown, to: id)
        }
        return told.count
    }
}

/// After a run's end: polls `router` while `keepGoing()` holds (checked every 20 ms) and hands the
/// routing id of each message that arrives to `answer` (at most 10,000 a round); stops early if the socket fails.
private func answerPeers(on router: RouterEndpoint, while keepGoing: () -> Bool, _ answer: ([UInt8]) -> Void) {
    while keepGoing() {
        guard let ids = router.waitingPeers(timeout: .milliseconds(20)) else { return }
        for id in ids { answer(id) }
    }
}

/// The worker's transport: one DEALER socket connected to the coordinator, and the ``WorkerCore``.
///
/// A short computation (the last one took less than ``inlineLimit``) runs right on the poll
/// thread: the GRADIENT leaves the moment it is ready. A long one (the first, or with an
/// artificial delay) runs on a compute thread so heartbeats keep flowing; that thread wakes the
/// poll loop through a pipe the loop polls together with the socket, so the answer leaves at
/// once too.
public final class WorkerClient {
    public let core: WorkerCore
    /// All framing: validation, drop logs, the handshake monitor.
    private let dealer: DealerEndpoint
    private let logger: Logger
    private let endpoint: String
    private let t0 = ContinuousClock.now
    private var lastHeard = 0.0
    private var lastSent = 0.0
    /// When the message being handled was read.
    private var receivedAt = ContinuousClock.now
    /// While a computation runs off the poll thread, the poll thread leaves `core` alone and
    /// queues what arrives.
    private let computeQueue = DispatchQueue(label: "ztrain.worker.compute")
    private let mailbox = Mailbox()
    private var computing = false
    private var queued: [(Envelope, ContinuousClock.Instant)] = []
    /// Queued ASSIGNs of steps the coordinator had already moved past, skipped.
    public private(set) var skippedAssigns = 0
    private var heartbeatIDs: (run: UInt64, worker: UInt32) = (0, 0)
    /// Seconds the last computation took (infinity before the first).
    private var lastCompute = Double.infinity
    /// When the ASSIGN being answered arrived.
    private var assignReceived: ContinuousClock.Instant?
    private let poller = PollGroup()
    private let wake: WakePipe?
    private let usesCurve: Bool
    private var handshakeFailures = 0
    private var lastMonitorPoll = 0.0
    private var lastHandshakeFailure: HandshakeMonitor.Failure?
    /// Sharded aggregation: the links to the other workers (nil: not bound).
    private let peers: PeerLinks?
    /// A heartbeat or a message to another worker went out: the byte counters follow (TRAFFIC) once
    /// the loop has handled what is waiting (a step's answer to the coordinator takes them along first).
    private var trafficDue = false

    /// Computations expected to take less than this many seconds run on the poll thread.
    public var inlineLimit = 0.05
    /// Refreshed about once a second while the loop runs (for liveness probes).
    public var healthFile: HealthFile?

    /// Connects (the coordinator may come up later; messages wait for it). With `security`, the
    /// connection is CURVE-encrypted and authenticated (a coordinator with another key is never reached).
    ///
    /// With `peerBind`, a ROUTER is bound there for the other workers of a sharded run (``PeerLinks``)
    /// and announced in HELLO.
    public init(core: WorkerCore, connect: String, security: CurveClientSecurity? = nil, peerBind: String? = nil,
                logger: Logger) throws(TrainingError) {
        self.core = core
        do {
            // a CURVE run's peer links use the worker's own key pair (the one the coordinator admitted)
            peers = try peerBind.map { (bind) throws(TrainingError) in try PeerLinks(bind: bind, curve: security?.certificate, logger: logger) }
        } catch {
            // a star run does not need the peer endpoint; a sharded coordinator refuses a worker without one
            logger.warning("\(error); this worker can take part in star runs only")
            peers = nil
        }
        core.peerEndpoint = peers?.endpoint
        core.peerKey = peers?.curve?.publicKey
        self.logger = logger
        endpoint = connect
        usesCurve = security != nil
        if security == nil && !isLocalEndpoint(connect) {
            logger.warning("connecting to \(connect) without CURVE: traffic is neither encrypted nor authenticated; give the worker --curve-dir (see 'ztrain keygen')")
        }
        var options = EndpointOptions()
        if let security {
            options.curve = .client(serverKey: security.serverKey, publicKey: security.certificate.publicKey,
                                    secretKey: security.certificate.secretKey ?? "")
        }
        // the largest frame a coordinator sends is WELCOME with the series
        options.maxMessageBytes = Limits.handshake.maxPayloadBytes + 4096
        options.heartbeatInterval = .seconds(1)
        options.heartbeatTimeout = .seconds(3)
        options.reconnectInterval = .milliseconds(100)
        options.reconnectIntervalMax = .seconds(2)
        do {
            // failed security handshakes: a refused key, a wrong server key, CURVE on one side only
            dealer = try DealerEndpoint(connect: [connect], options: options, monitorHandshakes: true, logger: logger)
        } catch {
            throw .invalidConfig("cannot connect to \(connect): \(error)")
        }
        wake = WakePipe()
        poller.add(dealer)
        if let peers { poller.add(peers.router) }
        if let wake { poller.add(fileDescriptor: wake.readFD) }
    }

    deinit { wake?.close() }

    public var now: Double { seconds(since: t0) }

    /// Runs until SHUTDOWN, a refusal, `stop`, or (with `parentPID`) the parent's death.
    ///
    /// A coordinator that goes silent for its liveness window is presumed restarted (or to have given
    /// this worker up): the worker says HELLO again, backing off from 0.5 s to 8 s, for up to
    /// `reconnectTimeout` seconds; a resumed coordinator welcomes it back into the same run.
    ///
    /// - Parameter connectTimeout: seconds to wait for the first WELCOME.
    /// - Returns: nil after a clean shutdown, else why the worker stopped.
    public func run(stop: StopFlag, parentPID: Int32? = nil, connectTimeout: Double = 60, reconnectTimeout: Double = 600) -> String? {
        send(core.hello())
        lastHeard = now
        var lostSince: Double? = nil
        var backoff = 0.5
        var nextHello = 0.0
        var lastParentCheck = -1.0
        while computing || core.phase != .done {
            healthFile?.beat(now: now)
            reportTraffic()
            if stop.isSet {
                send(Envelope(runID: core.runID, workerID: core.workerID, message: .bye("stopped by signal \(stop.signal)")))
                return "stopped by signal \(stop.signal)"
            }
            if let p = parentPID, now - lastParentCheck > 0.05 {
                lastParentCheck = now
                if getppid() != p { return "the process that started this worker (pid \(p)) is gone" }
            }
            do {
                if (computing && wake != nil) || peers != nil {
                    // the compute thread writes to the pipe when it is done; the other workers write to the peer router
                    let ready = try poller.poll(timeout: .milliseconds(20))
                    wake?.drain()
                    if ready.isReadable(dealer) { drain() }
                    if let peers, ready.isReadable(peers.router) { drainPeers(peers) }
                    peers?.maintain()
                } else {
                    if try dealer.poll(timeout: .milliseconds(computing ? 2 : 20)) { drain() }
                }
            } catch {
                if error.kind == .interrupted { continue }
                return "poll failed: \(error)"
            }
            if computing {
                guard let (replies, took) = mailbox.take() else {
                    if now - lastSent > heartbeatInterval {
                        send(Envelope(runID: heartbeatIDs.run, workerID: heartbeatIDs.worker, message: .heartbeat))
                    }
                    continue
                }
                computing = false
                lastCompute = took
                // the computation's GRADIENTs go back to the core (it keeps them for a repeated ASSIGN)
                _ = dispatch(core.handle(.computed(replies), now: now))
                // ASSIGNs of a step older than the newest one queued are moot (the coordinator only
                // moves on once a step is complete): they are skipped, not computed
                let backlog = queued
                queued = []
                let newest = backlog.compactMap { e -> UInt64? in if case .assign(let a) = e.0.message { return a.step } else { return nil } }.max()
                for (k, (env, at)) in backlog.enumerated() {
                    if computing {
                        // a computation started: the rest waits for it (one computation at a time)
                        queued = Array(backlog[k...])
                        break
                    }
                    if case .assign(let a) = env.message, let n = newest, a.step < n { skippedAssigns += 1; continue }
                    handle(env, receivedAt: at)
                }
                if computing { continue }
            }
            switch core.phase {
            case .hello where !core.hasJoined:
                if let why = checkHandshakes() { return why }
                if now - lastHeard > connectTimeout {
                    if let f = lastHandshakeFailure {
                        return "no answer from the coordinator at \(endpoint) within \(Int(connectTimeout)) s: the security handshake failed \(handshakeFailures) time(s): \(f.reason(peer: "coordinator")); \(handshakeHint)"
                    }
                    return "no answer from the coordinator at \(endpoint) within \(Int(connectTimeout)) s; is it running, and is --connect right?"
                }
                // a coordinator with every handshake slot taken leaves a HELLO unanswered: say it again
                if nextHello == 0 { nextHello = now + backoff }
                if now >= nextHello {
                    send(core.hello())
                    backoff = min(8, backoff * 2)
                    nextHello = now + backoff
                }
            case .hello:
                // rejoining: HELLO again with backoff until welcomed or out of patience
                let since = lostSince ?? now
                if now - since > reconnectTimeout {
                    return "the coordinator at \(endpoint) has not answered for \(Int(reconnectTimeout)) s"
                }
                if now >= nextHello {
                    send(core.hello())
                    nextHello = now + backoff
                    backoff = min(8, backoff * 2)
                }
            case .ready:
                lostSince = nil
                backoff = 0.5
                if now - lastMonitorPoll > 1 {
                    // failed handshakes of later reconnections are not kept queued
                    lastMonitorPoll = now
                    _ = dealer.handshakes?.poll()
                }
                if now - lastHeard > core.liveness {
                    logger.warning("the coordinator at \(endpoint) has been silent for \(cFormat("%.1f", core.liveness)) s; saying HELLO again")
                    lostSince = now
                    _ = core.rejoin()
                    lastCompute = .infinity
                    nextHello = now
                } else if now - lastSent > core.heartbeat {
                    send(Envelope(runID: core.runID, workerID: core.workerID, message: .heartbeat))
                }
            case .done:
                break
            }
        }
        return core.failure
    }

    /// Before WELCOME: the handshake bound; after it: ASSIGNs of exactly this model and batch.
    private var limits: Limits {
        if let l = cachedLimits { return l }
        guard let c = core.config else { return .handshake }
        var l = Limits.training(parameterCount: ParameterLayout(c.model).count, maxWindows: c.batch)
        l.maxPayloadBytes = max(l.maxPayloadBytes, Limits.handshake.maxPayloadBytes)  // a re-sent WELCOME still fits
        cachedLimits = l
        return l
    }
    private var cachedLimits: Limits?

    private func drain() {
        let read = { [self] () -> Limits in
            receivedAt = ContinuousClock.now
            lastHeard = now
            if core.config == nil { cachedLimits = nil }
            return limits
        }
        dealer.receive(limits: read) { inbound in
            // bad frames are logged by the endpoint
            guard case .message(_, let env, _) = inbound else { return true }
            if computing {
                queued.append((env, receivedAt))
            } else {
                handle(env, receivedAt: receivedAt)
                if core.phase == .done { return false }
            }
            return true
        }
    }

    /// Heartbeat period while computing (the core's, read before the computation started).
    private var heartbeatInterval = 1.0

    /// What the other workers sent (a sharded run), handled as the coordinator's messages are.
    private func drainPeers(_ peers: PeerLinks) {
        let limits = peerLimits
        peers.receive(limits: limits) { env in
            if computing { queued.append((env, ContinuousClock.now)) } else { handle(env, receivedAt: ContinuousClock.now) }
        }
    }

    /// Frames from other workers: a node's slice or an owner's updated slice, at most P + 1 floats.
    private var peerLimits: Limits {
        guard let c = core.config else { return Limits(maxPayloadBytes: 0) }
        let p = ParameterLayout(c.model).count
        return Limits(maxPayloadBytes: 4 * (p + 1), parameterCount: p, allowNonFinite: true)
    }

    /// Carries out the core's effects but computations; returns the computation to run, if any.
    private func dispatch(_ effects: [WorkerEffect]) -> ComputeOrder? {
        var order: ComputeOrder?
        for effect in effects {
            switch effect {
            case .send(let m): send(m)
            case .sendPeer(let id, let m):
                peers?.send(m, to: id)
                trafficDue = true
            case .peers(let t): peers?.connect(t, selfID: core.workerID)
            case .compute(let o): order = o
            case .exit: break
            }
        }
        return order
    }

    /// A sharded run's message: any of them may let a parked ORDER run (its weights came in).
    private func handleSharded(_ env: Envelope, receivedAt: ContinuousClock.Instant) {
        if case .order = env.message { assignReceived = receivedAt }
        let at = now - seconds(since: receivedAt)
        guard let order = dispatch(core.handle(.message(env, receivedAt: at), now: now)) else { return }
        run(order, at: at)
    }

    /// Hands a message to the core; an ASSIGN is computed inline when it is expected to be short,
    /// else on the compute queue.
    private func handle(_ env: Envelope, receivedAt: ContinuousClock.Instant) {
        if core.isSharded && core.phase == .ready {
            switch env.message {
            case .table, .order, .node, .apply, .slice, .fetch: return handleSharded(env, receivedAt: receivedAt)
            default: break
            }
        }
        guard case .assign = env.message, core.phase == .ready else {
            if case .welcome(let w, _) = env.message {
                lastCompute = .infinity
                // a shard process keeps malloc's own mmap for large blocks: its frames come and go a slice at
                // a time, and each freed one leaves at once (reused blocks would keep its peak resident)
                if 4 * w.parameterCount >= LargeBuffers.threshold {
                    if core.options.isShard { LargeBuffers.release() } else { LargeBuffers.reuse() }
                }
            }
            let before = core.phase
            for reply in core.handle(env) { send(reply) }
            if core.config == nil { cachedLimits = nil }
            switch env.message {
            case .welcome where before == .hello && core.phase == .ready:
                logger.info("welcomed by the coordinator at \(endpoint) as worker \(core.workerID) of run \(String(core.runID, radix: 16))")
            case .shutdown(let reason):
                logger.info("the coordinator ended the run: \(reason)")
            default:
                break
            }
            return
        }
        assignReceived = receivedAt
        if core.isRepeated(env) {
            // answered from the last answer at once; it says nothing about how long a computation takes
            for r in core.handle(env) { send(r) }
            return
        }
        // the core's effects: messages, and (an ASSIGN it accepted) one computation
        let at = now - seconds(since: receivedAt)
        guard let order = dispatch(core.handle(.message(env, receivedAt: at), now: now)) else { return }
        run(order, at: at)
    }

    /// Runs a computation inline when it is expected to be short, else on the compute queue.
    private func run(_ order: ComputeOrder, at: Double) {
        let start = t0
        let clock: @Sendable () -> Double = { seconds(since: start) }
        if core.options.artificialDelay == 0 && lastCompute < min(inlineLimit, core.heartbeat / 4) {
            let t = ContinuousClock.now
            let replies = order.run(receivedAt: at, clock: clock)
            lastCompute = seconds(since: t)
            _ = dispatch(core.handle(.computed(replies), now: now))
            return
        }
        computing = true
        heartbeatIDs = (core.runID, core.workerID)
        heartbeatInterval = core.heartbeat
        let mailbox = self.mailbox, wake = self.wake
        computeQueue.async {
            let t = ContinuousClock.now
            let replies = order.run(receivedAt: at, clock: clock)
            mailbox.put(replies, took: seconds(since: t))
            wake?.signal()
        }
    }

    private func send(_ env: Envelope) {
        var env = env
        if case .gradient(var g) = env.message, let r = assignReceived {
            g.sendNanos = nanoseconds(since: r)
            env.message = .gradient(g)
        }
        switch env.message {
        case .gradient, .norm, .slice:
            // the counters go just ahead of a step's answer, on the same link: when the coordinator
            // ends a step, it holds every worker's counters as of that step's start
            trafficDue = true
            reportTraffic()
        default:
            break
        }
        // never block on a coordinator that is gone: the message is lost, the coordinator retries
        // (a worker pretending to speak another version: tests of the refusal)
        if dealer.send(env, version: core.options.protocolVersion).bytes != nil { lastSent = now }
        if case .heartbeat = env.message { trafficDue = true }
    }

    /// The bytes this process received and sent so far, over the coordinator's link and the peer links.
    public var traffic: Traffic {
        Traffic(bytesIn: UInt64(dealer.bytesIn + (peers?.bytesIn ?? 0)), bytesOut: UInt64(dealer.bytesOut + (peers?.bytesOut ?? 0)))
    }

    /// TRAFFIC to the coordinator, when due.
    private func reportTraffic() {
        guard trafficDue, core.phase == .ready else { return }
        trafficDue = false
        dealer.send(Envelope(runID: core.runID, workerID: core.workerID, message: .traffic(traffic)), version: core.options.protocolVersion)
    }

    public func close() {
        peers?.close()
        dealer.close()
    }

    /// Before the first WELCOME: why the security handshake keeps failing, once it is clear that it
    /// will not succeed (the coordinator refused the key, or three attempts failed), else nil.
    private func checkHandshakes() -> String? {
        guard let failures = dealer.handshakes?.poll(), !failures.isEmpty, !core.hasJoined else { return nil }
        handshakeFailures += failures.count
        lastHandshakeFailure = failures.last
        if let f = failures.first(where: \.isRefusal) {
            return "the coordinator at \(endpoint) refused this worker: \(f.reason(peer: "coordinator")); "
                + "its public key must be in the coordinator's allowed/ folder (see 'ztrain keygen')"
        }
        guard handshakeFailures >= 3 || failures.contains(where: \.isMechanismMismatch), let f = lastHandshakeFailure else { return nil }
        return "the security handshake with the coordinator at \(endpoint) failed \(handshakeFailures) time(s): \(f.reason(peer: "coordinator")); \(handshakeHint)"
    }

    private var handshakeHint: String {
        usesCurve
            ? "check that coordinator.key (--curve-server) is the coordinator's public key and that the coordinator runs with --curve-dir"
            : "the coordinator requires CURVE: give this worker --curve-dir (see 'ztrain keygen')"
    }
}

/// Nanoseconds since `start`, never negative.
func nanoseconds(since start: ContinuousClock.Instant) -> UInt64 {
    UInt64(max(0, seconds(since: start) * 1e9))
}

/// One computation's replies and duration, handed from the compute queue to the poll thread.
final class Mailbox: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = Lock()
    private var replies: ([Envelope], Double)?

    func put(_ r: [Envelope], took: Double) {
        lock.lock()
        replies = (r, took)
        lock.unlock()
    }

    func take() -> ([Envelope], Double)? {
        lock.lock()
        defer { lock.unlock() }
        let r = replies
        replies = nil
        return r
    }
}

/// Moves a value to another thread when the code guarantees only one side touches it at a time.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
