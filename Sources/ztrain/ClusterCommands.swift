import ArgumentParser
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
import Observe
import RNN
import Training
import Wire
import Support

/// Flags of the coordinator that do not change the result.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Start with this many workers once --join-timeout has passed (default: all of --workers).")
    var minWorkers: Int?

    @Option(help: "Seconds to wait for workers to join.")
    var joinTimeout: Double = 60

    @Option(help: "Refuse workers beyond this many (workers may join and leave at any step; default: no limit).")
    var maxWorkers: Int?

    @Option(help: "Seconds of silence after which a worker counts as dead.")
    var liveness: Double = 3

    @Option(help: "Seconds after which an unanswered order is given again (default: --liveness).")
    var retryAfter: Double?

    @Flag(help: "Do not give idle workers copies of a straggler's micro-batches.")
    var noSpeculation = false

    @Flag(help: "Workers read the CSV themselves, at the same absolute path (shared storage), checked by hash, instead of receiving the series in WELCOME ('train --workers' does this for a CSV).")
    var sharedData = false

    @Option(help: "How steps are aggregated: star (every gradient through the coordinator, which sends the weights back), sharded (workers own slices of the parameters: reduce-scatter and all-gather between the workers, the same bits), or auto (sharded from \(AggregationChoice.autoCrossover) parameters with 2+ workers on other machines; star for train --workers, whose workers share this machine).")
    var aggregation: AggregationChoice = .star

    @Option(help: "Sharded: 'ztrain shard' processes (dedicated owners of the slices) to wait for besides the workers; the shards there when the run starts own the slices, else the workers do.")
    var shards: Int = 0

    @Flag(help: "Sharded: the owners do not send their optimizer state to the coordinator every step (P floats into it a step instead of 3·P with Adam); a lost owner then stops the run (resume it from a checkpoint).")
    var noOwnerRecovery = false

    @Option(help: ArgumentHelp("Write a Chrome-trace JSON of every step (compute, send, wait, reduce, optimizer spans of the coordinator and each worker) to this file; open it in chrome://tracing or Perfetto.", valueName: "file"))
    var timeline: String?

    @Option(help: "Each step, also order this seeded fraction of the leaf runs from a second worker and compare the two answers bit for bit; a worker caught computing wrong bits is quarantined (0: no audit).")
    var auditRate: Double = CoordinatorOptions.defaultAuditRate

    @OptionGroup(title: "Observing") var watch: WatchFlags

    func options(workers: Int) throws -> CoordinatorOptions {
        guard auditRate.isFinite && (0...1).contains(auditRate) else { throw ValidationError("--audit-rate must be in 0...1 (got \(auditRate))") }
        guard joinTimeout.isFinite && joinTimeout > 0 else { throw ValidationError("--join-timeout must be a positive number of seconds") }
        guard liveness.isFinite && liveness >= 0.2 else { throw ValidationError("--liveness must be at least 0.2 seconds") }
        if let m = minWorkers, !(1...workers).contains(m) { throw ValidationError("--min-workers must be in 1...\(workers) (got \(m))") }
        if let m = maxWorkers, m < workers { throw ValidationError("--max-workers must be at least --workers \(workers) (got \(m))") }
        if let r = retryAfter, !(r.isFinite && r > 0) { throw ValidationError("--retry-after must be a positive number of seconds") }
        guard (0...256).contains(shards) else { throw ValidationError("--shards must be in 0...256 (got \(shards))") }
        if shards > 0 && aggregation == .star { throw ValidationError("--shards needs --aggregation sharded (shard processes own slices of a sharded run)") }
        var o = CoordinatorOptions(workers: workers, minWorkers: minWorkers, joinTimeout: joinTimeout,
                                   liveness: liveness, heartbeat: max(0.05, liveness / 3), retryAfter: retryAfter,
                                   speculate: !noSpeculation, maxWorkers: maxWorkers)
        o.sharedData = sharedData
        o.aggregationChoice = aggregation
        o.ownerRecovery = !noOwnerRecovery
        o.shards = shards
        o.auditRate = auditRate
        return o
    }
}

/// CURVE keys and the health file (coordinator, worker and launch).
struct SecurityOptions: ParsableArguments {
    @Option(help: "CURVE keys from 'ztrain keygen': the coordinator reads coordinator.key_secret and allowed/*.key; a worker reads coordinator.key and worker-RANK.key_secret or worker.key_secret.")
    var curveDir: String?

    @Option(help: "Coordinator: its secret key file (instead of --curve-dir). Worker: its own secret key file.")
    var curveSecret: String?

    @Option(help: "Coordinator: the folder of admitted worker public keys (*.key; instead of --curve-dir).")
    var curveAllow: String?

    @Option(help: "Worker: the coordinator's public key file (instead of --curve-dir).")
    var curveServer: String?

    @Option(help: "Refresh this file about once a second while running (for liveness probes).")
    var healthFile: String?

    /// The coordinator's CURVE setting, or nil for plaintext.
    func server() throws -> CurveServerSecurity? {
        do {
            if let secret = curveSecret {
                guard let allow = curveAllow ?? curveDir.map({ $0 + "/allowed" }) else {
                    throw ValidationError("--curve-secret needs --curve-allow DIR (the admitted worker keys)")
                }
                return try CurveServerSecurity(secretFile: secret, allowDirectory: allow)
            }
            if let dir = curveDir {
                try checkKeyFolder(dir)
                return try CurveServerSecurity(secretFile: dir + "/coordinator.key_secret", allowDirectory: curveAllow ?? dir + "/allowed")
            }
        } catch let e as TrainingError {
            throw fail("\(e)")
        }
        if curveAllow != nil { throw ValidationError("--curve-allow needs --curve-secret or --curve-dir") }
        return nil
    }

    /// A worker's CURVE setting (`rank` picks worker-RANK.key_secret when present), or nil for plaintext.
    func client(rank: Int? = nil) throws -> CurveClientSecurity? {
        do {
            if curveSecret != nil || curveServer != nil {
                guard let server = curveServer ?? curveDir.map({ $0 + "/coordinator.key" }) else {
                    throw ValidationError("--curve-secret needs --curve-server FILE (the coordinator's public key)")
                }
                guard let secret = curveSecret ?? curveDir.map({ $0 + "/worker.key_secret" }) else {
                    throw ValidationError("--curve-server needs --curve-secret FILE (this worker's key pair)")
                }
                return try CurveClientSecurity(serverFile: server, secretFile: secret)
            }
            if let dir = curveDir { return try CurveClientSecurity(directory: dir, rank: rank) }
        } catch let e as TrainingError {
            throw fail("\(e)")
        }
        return nil
    }

    func health() throws -> HealthFile? {
        do { return try healthFile.map { path throws(TrainingError) in try HealthFile(path: path) } } catch { throw fail("\(error)") }
    }
}

struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the coordinator of a data-parallel job: waits for workers, then trains.",
        discussion: """
            Workers connect with 'ztrain worker --connect ENDPOINT'. The default --bind is loopback; \
            bind a non-loopback address explicitly to accept workers from other machines.

            Example: ztrain coordinator --bind tcp://0.0.0.0:5555 --workers 2 --target-loss 1e-4
            """)

    @OptionGroup var runOptions: RunOptions

    @Option(help: "Endpoint to bind: tcp://HOST:PORT (tcp://127.0.0.1:* picks a free port), or ipc://PATH.")
    var bind: String = "tcp://127.0.0.1:5555"

    @Option(help: "Workers to wait for.")
    var workers: Int

    @Option(help: "Continue the run whose output folder (with checkpoints/) is this; its configuration wins.")
    var resume: String?

    @Flag(help: "Continue from --out's checkpoints when it has a usable one, else start a new run (for restarts by systemd or Kubernetes).")
    var autoResume = false

    @OptionGroup(title: "Data-parallel") var cluster: ClusterOptions

    @OptionGroup(title: "Security") var security: SecurityOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if !(1...256).contains(workers) { throw ValidationError("--workers must be in 1...256 (got \(workers))") }
        try runOptions.validateCheckpointFlags()
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.coordinator")
        guard let prepared = try prepareRun(runOptions, resume: resume, autoResume: autoResume, logger: logger) else {
            // the run is complete: workers still waiting to rejoin it (their coordinator was killed
            // after the run-end checkpoint, before its SHUTDOWNs left) are told so
            let told = try CoordinatorServer.dismissWaitingWorkers(bind: bind, security: security.server(), seconds: 3, logger: logger)
            if told > 0 { logger.notice("told \(told) waiting worker(s) that the run is complete") }
            return
        }
        let code = try runCoordinator(prepared: prepared, options: cluster.options(workers: workers), bind: bind,
                                      spawnWorkers: 0, workerThreads: 1, checkpointEvery: runOptions.checkpointEvery,
                                      keep: runOptions.keep, timeline: cluster.timeline, security: security.server(),
                                      healthFile: security.health(), watch: cluster.watch.options, global: global, logger: logger)
        if code != 0 { throw ExitCode(code) }
    }
}

struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a worker: connects to a coordinator, computes gradients until told to stop.",
        discussion: """
            The model and data come from the coordinator. --hidden, --cell, --seq-len and --micro-batch, \
            when given, are what this worker expects: a coordinator running anything else refuses it.

            Example: ztrain worker --connect tcp://10.0.0.1:5555 --threads 8
            """)

    @Option(help: "The coordinator's endpoint.")
    var connect: String

    @Option(help: "Compute threads (default: the cores of this machine).")
    var threads: Int?

    @Option(help: "Refuse a run whose hidden size differs.")
    var hidden: Int?

    @Option(help: "Refuse a run whose cell differs.")
    var cell: Cell?

    @Option(help: "Refuse a run whose window length differs.")
    var seqLen: Int?

    @Option(help: "Refuse a run whose micro-batch differs.")
    var microBatch: Int?

    @Option(help: "Seconds to wait for the coordinator's first welcome.")
    var connectTimeout: Double = 60

    @Option(help: "Seconds to keep saying HELLO to a coordinator that went silent (restarted, or resuming).")
    var reconnectTimeout: Double = 600

    @Option(help: "Where this worker's peer endpoint binds for sharded runs (other workers connect there; its address goes to the coordinator in HELLO). Default: next to the coordinator's socket for ipc://, else a free port on the address that reaches the coordinator.")
    var peerBind: String?

    @Option(help: .hidden)
    var parentPid: Int32?

    @Option(help: .hidden)
    var protocolVersion: UInt16 = Wire.protocolVersion

    @Option(help: "Testing aid: corrupt one value of this seeded fraction of the answers (their checksums stay valid), for audit drills.")
    var faultWrongRate: Double = 0

    @Option(help: "Testing aid: the seed of --fault-wrong-rate.")
    var faultSeed: UInt64 = 0

    @OptionGroup(title: "Security") var security: SecurityOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let t = threads, !(1...1024).contains(t) { throw ValidationError("--threads must be in 1...1024 (got \(t))") }
        if let h = hidden, h < 1 { throw ValidationError("--hidden must be at least 1 (got \(h))") }
        guard connectTimeout.isFinite && connectTimeout > 0 else { throw ValidationError("--connect-timeout must be positive") }
        guard reconnectTimeout.isFinite && reconnectTimeout > 0 else { throw ValidationError("--reconnect-timeout must be positive") }
        guard faultWrongRate.isFinite && (0...1).contains(faultWrongRate) else { throw ValidationError("--fault-wrong-rate must be in 0...1") }
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.worker")
        let expect: Expectation? = (hidden == nil && cell == nil && seqLen == nil && microBatch == nil) ? nil
            : Expectation(hidden: hidden, input: nil, output: nil, seqLen: seqLen, cell: cell?.rawValue, activation: nil, microBatch: microBatch)
        try runWorker(connect: connect, threads: threads, expect: expect, protocolVersion: protocolVersion, parentPID: parentPid,
                      connectTimeout: connectTimeout, reconnectTimeout: reconnectTimeout, security: security.client(),
                      healthFile: security.health(), peerBind: peerBind, fault: (faultWrongRate, faultSeed), logger: logger)
    }
}

/// Runs a worker until the coordinator shuts it down; throws (exit 1) with the reason otherwise.
func runWorker(connect: String, threads: Int?, expect: Expectation?, protocolVersion: UInt16 = Wire.protocolVersion,
               parentPID: Int32?, connectTimeout: Double, reconnectTimeout: Double, security: CurveClientSecurity? = nil,
               healthFile: HealthFile? = nil, peerBind: String? = nil, fault: (wrongRate: Double, seed: UInt64) = (0, 0),
               isShard: Bool = false, logger: Logger) throws {
    let k = threads ?? ProcessInfo.processInfo.activeProcessorCount
    var workerOptions = WorkerOptions(threads: k, expect: expect, protocolVersion: protocolVersion)
    workerOptions.isShard = isShard
    workerOptions.faultWrongRate = fault.wrongRate
    workerOptions.faultSeed = fault.seed
    if fault.wrongRate > 0 { logger.warning("testing aid: corrupting one value of \(fault.wrongRate) of the answers (--fault-wrong-rate)") }
    workerOptions.loadData = { config in try config.loadSeries().model }
    let core = WorkerCore(options: workerOptions)
    let client: WorkerClient
    let bind = peerBind ?? defaultPeerBind(connect: connect, pid: getpid())
    do { client = try WorkerClient(core: core, connect: connect, security: security, peerBind: bind, logger: logger) } catch { throw fail("\(error)") }
    client.healthFile = healthFile
    let stop = StopFlag()
    let trap = SignalTrap(stop)
    logger.info(isShard ? "shard connecting to \(connect)" : "worker connecting to \(connect) with \(k) thread(s)")
    let problem = client.run(stop: stop, parentPID: parentPID, connectTimeout: connectTimeout, reconnectTimeout: reconnectTimeout)
    client.close()
    _ = trap
    if let p = problem {
        throw fail(p)
    }
    logger.info(isShard ? "shard \(core.workerID) done" : "worker \(core.workerID) done after \(core.steps) assignments")
}

/// Runs a coordinator until the run ends; with `spawnWorkers > 0` also starts and reaps local workers.
/// Returns the exit status.
func runCoordinator(
    prepared p: PreparedCLIRun, options: CoordinatorOptions, bind: String?, spawnWorkers: Int, workerThreads: Int,
    checkpointEvery: Int, keep: Int, timeline: String? = nil, security: CurveServerSecurity? = nil,
    healthFile: HealthFile? = nil, workerSecurity: [String] = [], watch: WatchOptions = WatchOptions(), global: GlobalOptions,
    logger: Logger
) throws -> Int32 {
    let config = p.config
    var options = options
    options.aggregation = options.aggregationChoice.resolve(parameterCount: ParameterLayout(config.model).count, workers: options.workers,
                                                            sameHost: spawnWorkers > 0)
    if options.aggregation != .sharded { options.shards = 0 }  // auto chose star: shard processes are refused
    // sharded with CURVE: the workers' peer links are CURVE too, admitting the allow-listed keys of the table
    options.peerKeys = security?.allowed
    let progress = ProgressReporter(logger: logger, live: !global.quiet && ProgressReporter.stderrIsTerminal,
                                    totalEpochs: config.epochs, totalSteps: config.steps)
    var writeError: (any Error)? = nil
    let hub = WatchHub()
    var runID = UInt64.random(in: 1...UInt64.max)
    if runID == 0 { runID = 1 }
    let core: CoordinatorCore
    do {
        core = try CoordinatorCore(config: config, series: p.series, initialParameters: p.initial, options: options, runID: runID,
                                   resume: p.resume) { event in
            switch event {
            case .step(let e, let s, let i, let per, let loss, let sps, let timing):
                progress.handle(.step(epoch: e, step: s, stepInEpoch: i, stepsPerEpoch: per, loss: loss, samplesPerSecond: sps, timing: timing))
                if let w = hub.watch, let c = hub.core {
                    w.step(StepRecord(state: c.state, loss: loss, samplesPerSecond: sps, timing: timing, bytesIn: c.bytesIn, bytesOut: c.bytesOut))
                }
                // a lost owner's replay passes its steps again, with the same bits: each hash line is written
                // once (an audit's rollback writes its corrected lines again)
                if p.hashEvery > 0, let c = hub.core, s > hub.hashedThrough || c.rollbacks > hub.auditRollbacks, writeError == nil {
                    hub.hashedThrough = s
                    hub.auditRollbacks = c.rollbacks
                    do { try p.recordHash(c.state, watch: hub.watch) } catch { writeError = error }
                }
            case .epoch(let m):
                progress.handle(.epoch(m))
                hub.watch?.epoch(m)
                if hub.watch?.writesEpochLines != true, writeError == nil { do { try p.dir.append(m) } catch { writeError = error } }
            case .joined(let w):
                logger.info(w.shard == true ? "shard \(w.id) joined: \(w.host) pid \(w.pid)" : "worker \(w.id) joined: \(w.host) pid \(w.pid), \(w.threads) thread(s)")
                hub.timeline?.name(process: w.id, host: w.host, pid: w.pid)
            case .fingerprintMismatch(let w):
                logger.warning("worker \(w.id) (\(w.host) pid \(w.pid)) computes different bits for the same gradient (numerics fingerprint differs): its machine, compiler or build differs; results will not be bit-identical")
            case .rejected(let peer, let reason):
                logger.warning("refused a worker (\(peer)): \(reason)")
            case .workerLost(let w, let n):
                logger.warning("worker \(w.id) (\(w.host) pid \(w.pid)) is gone (\(w.phase.rawValue)); \(n) run(s) of its step reassigned")
            case .quarantined(let w, let q):
                logger.error("worker \(w.id) (\(w.host) pid \(w.pid)) quarantined at step \(q.step): \(q.reason)")
            case .dropped(let peer, let reason):
                logger.debug("dropped a message from \(peer): \(reason)")
            case .started(let n):
                logger.info("training with \(n) worker(s)")
            case .finished:
                break
            }
        }
    } catch {
        throw fail("\(error)")
    }

    let watcher = try startWatch(watch, directory: p.dir, mode: spawnWorkers > 0 && bind == nil ? "train --workers" : "coordinator",
                                 coordinator: true, logger: logger)
    hub.watch = watcher
    hub.core = core
    core.hashEvery = p.hashEvery  // sharded: the hashed steps are sync steps
    core.observer = watcher
    defer {
        watcher?.close()
        hub.core = nil
    }

    var timelineWriter: TimelineWriter? = nil
    if let path = timeline {
        do { timelineWriter = try TimelineWriter(path: path, coordinatorName: "coordinator (\(RunIdentity.host) pid \(getpid()))") } catch { throw fail("\(error)") }
        hub.timeline = timelineWriter
        core.onSpan = { span in timelineWriter?.add(span) }
    }
    defer {
        timelineWriter?.close()
        if let t = timelineWriter {
            logger.info("timeline: \(t.written) spans in \(t.path)\(t.omitted > 0 ? " (\(t.omitted) more left out)" : "")")
        }
    }

    let writeCheckpoint = p.checkpointStore(every: checkpointEvery, keep: keep).map {
        checkpointWriter($0, directory: p.dir.url.path, logger: logger)
    }
    if let writeCheckpoint {
        core.checkpointEvery = checkpointEvery
        core.onCheckpoint = writeCheckpoint
    }

    // local workers talk over ipc:// in a private folder unless told otherwise
    var tempDir: URL? = nil
    var endpoint = bind ?? "tcp://127.0.0.1:5555"
    if spawnWorkers > 0 && bind == nil {
        let temp = FileManager.default.temporaryDirectory
        for path in LocalWorkers.removeStaleFolders(in: temp) { logger.info("removed \(path), left by a launcher that is gone") }
        let dir = LocalWorkers.privateFolder(in: temp)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw fail("cannot create \(dir.path): \(systemMessage(error))")
        }
        tempDir = dir
        endpoint = "ipc://\(dir.path)/coordinator.sock"
    }
    defer { if let d = tempDir { try? FileManager.default.removeItem(at: d) } }

    let server: CoordinatorServer
    do { server = try CoordinatorServer(core: core, bind: endpoint, security: security, logger: logger) } catch { throw fail("\(error)") }
    server.healthFile = healthFile
    server.observer = watcher
    logger.info("coordinator on \(server.endpoint): \(p.series.count) points, H=\(config.model.hiddenSize), cell \(config.model.cell.rawValue), batch \(config.batch), micro-batch \(config.microBatch), waiting for \(options.workers) worker(s); out \(p.dir.url.path)")

    let stop = StopFlag()
    var local: LocalWorkers? = nil
    let trap = SignalTrap(stop)
    if spawnWorkers > 0 {
        var args: [[String]] = []
        for _ in 0..<spawnWorkers {
            args.append(["worker", "--connect", server.endpoint, "--threads", String(workerThreads),
                         "--parent-pid", String(getpid()), "--log-level", global.quiet ? "warning" : "notice",
                         "--connect-timeout", String(options.joinTimeout)] + workerSecurity)
        }
        let w = LocalWorkers(executable: LocalWorkers.currentExecutable, arguments: args)
        do { try w.start() } catch { server.close(); throw fail("\(error)") }
        local = w
        logger.info("started \(spawnWorkers) local worker(s): pids \(w.pids.map(String.init).joined(separator: " ")), \(workerThreads) thread(s) each")
    }

    server.run(stop: stop)
    progress.finish()
    if let e = watcher?.close(), writeError == nil { writeError = e }
    if server.refusedConnections > 0 {
        logger.warning("\(server.refusedConnections) connection(s) refused by the CURVE allow-list during the run")
    }
    local?.stop(grace: 5)
    _ = trap

    let now = server.now
    // where the run ended, as a checkpoint (not after a failure: its newest checkpoint stays the last good one;
    // a run that reached its end wrote it before telling the workers)
    var problems: [TrainingError] = []
    if core.failure == nil, !core.wroteEndCheckpoint, let writeCheckpoint {
        if core.optimizerIsCurrent && core.weightsAreCurrent {
            do { try writeCheckpoint(core.checkpoint()) } catch { problems.append(error) }
        } else {
            // sharded: the owners' state of this step could not be fetched (an owner was lost while the run stopped)
            logger.warning("stopped between checkpoints of a sharded run: the newest checkpoint stays the last one written")
        }
    }
    let result = core.result(now: now)
    var summary = p.summary(result: result, parameters: core.state.parameters, finalLoss: result.finalLoss,
                            mode: "data-parallel", threads: workerThreads, split: core.state.split,
                            error: core.failure ?? (stop.isSet ? TrainingError.invalidConfig("stopped by signal \(stop.signal)") : nil))
    summary.workers = core.workers.values.filter { $0.phase != .welcomed }.sorted { $0.id < $1.id }  // not peers mid-handshake
    summary.droppedFrames = core.droppedFrames
    summary.lateOrDuplicate = core.lateOrDuplicate
    if core.options.auditRate > 0 { summary.quarantined = core.quarantined; summary.rollbacks = core.rollbacks }
    summary.reassigned = core.reassigned
    summary.retried = core.retried
    summary.speculative = core.speculative
    summary.unsent = server.unsent
    summary.strangerBytesDropped = core.strangerBytesDropped
    summary.abandonedHandshakes = core.abandonedHandshakes
    summary.deferredHellos = core.deferredHellos
    summary.bytesIn = core.bytesIn
    summary.bytesOut = core.bytesOut
    let steps = max(1, result.steps)
    summary.timing = result.metrics.compactMap { $0.timing }.reduce(into: StepTiming()) { acc, t in acc.add(t) }
        .scaled(1 / Double(max(1, result.metrics.count)))
    _ = steps
    problems += p.writeOutputs(parameters: core.state.parameters, best: core.state.bestParameters, split: core.state.split,
                                summary: summary, logger: logger)
    // the outputs are whole: now tell workers that missed the SHUTDOWN (declared dead, saying HELLO
    // to rejoin) that the run is over, then close (the socket's linger flushes the last messages)
    if !stop.isSet { server.dismissStragglers(for: server.farewellSeconds) }
    server.close()
    if let f = core.failure {
        writeToStandardError("error: \(f)\(problems.isEmpty ? " (last good weights saved to \(p.dir.modelURL.path))" : "")\n")
    }
    for e in problems { writeToStandardError("error: \(e)\n") }
    if stop.isSet {
        logger.warning("stopped by signal \(stop.signal); \(problems.isEmpty ? "last weights saved to \(p.dir.modelURL.path)" : "some outputs could not be saved")")
        return 128 + stop.signal
    }
    if core.failure != nil || !problems.isEmpty { return 1 }
    if let e = writeError {
        writeToStandardError("error: \(e)\n")
        return 1
    }
    p.logDone(result, summary: summary, windows: core.state.split.train.count, logger: logger)
    if p.nanFailure(result) != nil { return 1 }   // the message is written
    let failures = local?.failures ?? []
    if !failures.isEmpty {
        writeToStandardError("error: training finished, but \(failures.joined(separator: "; "))\n")
        return 1
    }
    print(p.dir.url.path)
    return 0
}
