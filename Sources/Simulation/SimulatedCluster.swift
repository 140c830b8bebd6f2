import Series
import Training
import Wire

/// Faults a ``SimulatedCluster`` injects, drawn from a seeded generator (the same seed, the same run).
///
/// ```swift
/// var faults = SimulatedFaults(seed: 7)
/// faults.reorder = true       // any message in flight may arrive next
/// faults.maxDelay = 0.2       // each message waits up to 0.2 virtual seconds more
/// faults.dropStepTraffic = 0.05
/// faults.duplicate = 0.05
/// ```
public struct SimulatedFaults: Sendable {
    public var seed: UInt64
    /// Deliver a random message among those due, not the oldest.
    public var reorder = false
    /// Each message is held back a random 0...maxDelay virtual seconds.
    public var maxDelay = 0.0
    /// Probability that an ASSIGN or GRADIENT (sharded: an ORDER or NODE) is lost (the handshake is never lost: a simulated
    /// worker, unlike ``WorkerClient``, does not say HELLO again).
    public var dropStepTraffic = 0.0
    /// Probability that a message from a worker arrives twice.
    public var duplicate = 0.0

    public init(seed: UInt64) { self.seed = seed }
}

/// A coordinator and workers in one process, on a virtual clock: the REAL ``CoordinatorCore`` and
/// ``WorkerCore``s, every message encoded by ``Wire`` into bytes and decoded from them on every hop
/// (as NIO's embedded channel stands in for a socket). Delivery is in order unless
/// ``SimulatedFaults`` say otherwise; workers can join late, leave (BYE), die silently, or have
/// their messages filtered.
///
/// ```swift
/// let cluster = try SimulatedCluster(config: config, series: series, workers: 3)
/// cluster.faults = SimulatedFaults(seed: 1)
/// cluster.faults?.reorder = true
/// try cluster.run()
/// assert(cluster.coordinator.state.parameters == InProcessTrainer(config: config, series: series).run().parameters)
/// ```
public final class SimulatedCluster {
    public let coordinator: CoordinatorCore
    public var workers: [(peer: PeerID, core: WorkerCore, alive: Bool)] = []
    /// The virtual time, in seconds.
    public var now = 0.0
    private var toCoordinator: [InFlight] = []
    private var toWorker: [InFlight] = []
    /// Messages delivered to workers.
    public var delivered = 0
    /// Called before each delivery to a worker; return false to drop it.
    public var filter: (PeerID, Envelope) -> Bool = { _, _ in true }
    /// Deliver every n-th message from a worker twice (0: never).
    public var duplicateEvery = 0
    /// Stop driving the coordinator once it has taken this many steps (a crash).
    public var stopAfterStep: Int? = nil
    /// Workers that say HELLO only once the coordinator has reached a step: index → step.
    public var joinAt: [Int: Int] = [:]
    /// Workers that say BYE (and stop) at a step: index → step.
    public var leaveAt: [Int: Int] = [:]
    /// Workers that fall silent (a killed process) at a step: index → step.
    public var killAt: [Int: Int] = [:]
    /// Bytes (header and payload frames) each process put on the wire and was sent, by process:
    /// "coordinator", "worker 0", "worker 1", …; only messages `counts` accepts are counted.
    public private(set) var traffic: [String: (sent: Int, received: Int)] = [:]
    /// Which messages ``traffic`` counts (default: all).
    public var counts: (Envelope) -> Bool = { _ in true }
    /// Called whenever the coordinator's step changes (a rollback's too), with the core.
    public var afterStep: (CoordinatorCore) -> Void = { _ in }
    /// Stop the run (``CoordinatorCore/shutdown(reason:now:)``, as a signal does) once the coordinator
    /// reaches this step; the cluster then runs until the coordinator is done.
    public var stopAt: Int? = nil
    /// Seeded faults (nil: none, every message arrives in order at once).
    public var faults: SimulatedFaults? { didSet { rng = faults.map { SeededRNG(seed: $0.seed) } } }
    private var rng: SeededRNG?
    private var fromWorkers = 0

    /// A message on the wire: who it is to or from, its bytes, and when it may arrive.
    private struct InFlight {
        var peer: PeerID
        var frames: [[UInt8]]
        var due: Double
        var bytes: Int { frames.reduce(0) { $0 + $1.count } }
    }

    /// Everything a ``CoordinatorCore`` and its ``WorkerCore``s take; `workerOptions` gives worker `i` its options.
    public init(config: TrainingConfig, series: Series, workers n: Int, threads: Int = 1, options: CoordinatorOptions? = nil,
                resume: RunCheckpoint? = nil, workerOptions: ((Int) -> WorkerOptions)? = nil,
                onEvent: @escaping (CoordinatorEvent) -> Void = { _ in }) throws {
        coordinator = try CoordinatorCore(config: config, series: series, options: options ?? CoordinatorOptions(workers: n),
                                          runID: 42, resume: resume, onEvent: onEvent)
        for i in 0..<n {
            let opts = workerOptions?(i) ?? WorkerOptions(threads: threads, host: "test", pid: Int32(1000 + i))
            let core = WorkerCore(options: opts)
            core.peerEndpoint = "sim://worker-\(i)"  // the simulation routes peer messages by worker id
            workers.append((PeerID([UInt8(i + 1), 7]), core, true))
        }
    }

    /// Puts a worker's message on the wire to the coordinator.
    public func post(_ env: Envelope, from peer: PeerID) {
        let m = InFlight(peer: peer, frames: Wire.encode(env), due: now + delay())
        account(env, bytes: m.bytes, from: name(of: peer), to: "coordinator")
        toCoordinator.append(m)
    }

    /// Puts the coordinator's messages on the wire to their workers.
    public func route(_ out: [Outgoing]) {
        for o in out {
            if isStepTraffic(o.envelope), lose() { continue }
            let m = InFlight(peer: o.peer, frames: Wire.encode(o.envelope), due: now + delay())
            account(o.envelope, bytes: m.bytes, from: "coordinator", to: name(of: o.peer))
            toWorker.append(m)
        }
    }

    /// Runs until the coordinator is done or `maxTime` virtual seconds pass.
    public func run(maxTime: Double = 600) throws {
        for (i, w) in workers.enumerated() where joinAt[i] == nil { post(w.core.hello(), from: w.peer) }
        var seenStep = coordinator.state.step
        while !coordinator.isDone && now < maxTime {
            if coordinator.state.step != seenStep {
                seenStep = coordinator.state.step
                afterStep(coordinator)
            }
            if let s = stopAfterStep, coordinator.state.step >= s { return }
            if let s = stopAt, coordinator.state.step >= s {
                stopAt = nil
                route(coordinator.shutdown(reason: "stopped", now: now))
                continue
            }
            for (i, step) in joinAt where coordinator.state.step >= step {
                post(workers[i].core.hello(), from: workers[i].peer)
                joinAt[i] = nil
            }
            for (i, step) in leaveAt where coordinator.state.step >= step {
                let w = workers[i]
                post(Envelope(runID: w.core.runID, workerID: w.core.workerID, message: .bye("leaving")), from: w.peer)
                workers[i].alive = false
                leaveAt[i] = nil
            }
            for (i, step) in killAt where coordinator.state.step >= step {
                workers[i].alive = false
                killAt[i] = nil
            }
            if let m = next(&toCoordinator) {
                let env = try Wire.decode(frames: m.frames, limits: coordinator.limits)
                route(coordinator.handle(env, from: m.peer, bytes: m.bytes, now: now))
            } else if let m = next(&toWorker) {
                guard let i = workers.firstIndex(where: { $0.peer == m.peer }), workers[i].alive else { continue }
                let env = try Wire.decode(frames: m.frames, limits: Limits(maxPayloadBytes: Int.max))
                guard filter(m.peer, env) else { continue }
                delivered += 1
                for (to, reply) in workers[i].core.handleRouted(env) {
                    if isStepTraffic(reply), lose() { continue }
                    if let to {
                        // sharded aggregation: worker to worker, through Wire bytes like every hop
                        guard let target = workers.first(where: { $0.core.hasJoined && $0.core.workerID == to }) else { continue }
                        let hop = InFlight(peer: target.peer, frames: Wire.encode(reply), due: now + delay())
                        account(reply, bytes: hop.bytes, from: name(of: m.peer), to: name(of: target.peer))
                        toWorker.append(hop)
                        continue
                    }
                    post(reply, from: m.peer)
                    fromWorkers += 1
                    if duplicateEvery > 0 && fromWorkers % duplicateEvery == 0 { post(reply, from: m.peer) }
                    if let p = faults?.duplicate, p > 0, draw() < p { post(reply, from: m.peer) }
                }
            } else {
                now += 0.05
                route(coordinator.tick(now: now))
                // live workers heartbeat while idle
                for w in workers where w.alive && w.core.phase == .ready {
                    post(Envelope(runID: w.core.runID, workerID: w.core.workerID, message: .heartbeat), from: w.peer)
                }
            }
        }
    }

    /// The next message due in `queue` (the oldest, or with ``SimulatedFaults/reorder`` any), removed.
    private func next(_ queue: inout [InFlight]) -> InFlight? {
        guard faults != nil else { return queue.isEmpty ? nil : queue.removeFirst() }
        let due = queue.indices.filter { queue[$0].due <= now }
        guard !due.isEmpty else { return nil }
        let k = faults?.reorder == true ? due[Int(draw() * Double(due.count)) % due.count] : due[0]
        return queue.remove(at: k)
    }

    private func name(of peer: PeerID) -> String {
        workers.firstIndex { $0.peer == peer }.map { "worker \($0)" } ?? "stranger"
    }

    private func account(_ env: Envelope, bytes: Int, from: String, to: String) {
        guard counts(env) else { return }
        traffic[from, default: (0, 0)].sent += bytes
        traffic[to, default: (0, 0)].received += bytes
    }

    private func isStepTraffic(_ env: Envelope) -> Bool {
        switch env.message {
        case .assign, .gradient, .order, .node: return true
        default: return false
        }
    }

    private func lose() -> Bool {
        guard let p = faults?.dropStepTraffic, p > 0 else { return false }
        return draw() < p
    }

    private func delay() -> Double {
        guard let d = faults?.maxDelay, d > 0 else { return 0 }
        return draw() * d
    }

    /// A uniform draw in [0, 1).
    private func draw() -> Double {
        guard var r = rng else { return 0 }
        let x = Double(r.next() >> 11) / Double(1 << 53)
        rng = r
        return x
    }
}
