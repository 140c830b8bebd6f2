import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Training

struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run as one rank of a job started by Slurm, mpirun, a Kubernetes indexed Job or torchrun-style variables.",
        discussion: """
            Rank 0 runs the coordinator (and, unless --no-rank0-works, one worker beside it); every other rank \
            is a worker. The rank, the world size and the coordinator's address come from the engine: \
            RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (torchrun style), OMPI_COMM_WORLD_RANK/SIZE (Open MPI), \
            SLURM_PROCID/SLURM_NTASKS/SLURM_JOB_NODELIST (Slurm, the first node coordinates), \
            JOB_COMPLETION_INDEX (Kubernetes indexed Job, with --rank-offset). Flags override the environment. \
            Training flags are read by rank 0 only; every rank must be given the same ones.

            Examples:
              srun -n 4 ztrain launch --target-loss 1e-4 --out runs/slurm
              mpirun -np 3 ztrain launch --target-loss 1e-4
              RANK=1 WORLD_SIZE=2 MASTER_ADDR=node0 ztrain launch
            """)

    @Option(help: "This process's rank (default: from the environment).")
    var rank: Int?

    @Option(help: "Processes in the job (default: from the environment).")
    var worldSize: Int?

    @Option(help: "The coordinator as HOST, HOST:PORT or tcp://HOST:PORT (default: from the environment, else loopback).")
    var coordinator: String?

    @Option(help: "The coordinator's port when neither --coordinator nor MASTER_PORT gives one (default: 29500).")
    var port: Int?

    @Option(help: "Added to JOB_COMPLETION_INDEX (1 when the coordinator runs outside the indexed Job as rank 0).")
    var rankOffset: Int = 0

    @Flag(inversion: .prefixedNo, help: "Rank 0 also runs a worker.")
    var rank0Works = true

    @Option(help: "Compute threads of each worker (default: the cores of the machine, shared among its ranks).")
    var threads: Int?

    @Option(help: "Seconds a worker waits for the coordinator's first welcome.")
    var connectTimeout: Double = 120

    @Option(help: "A worker rank: where its peer endpoint binds for sharded runs, e.g. tcp://$POD_IP:5556 (default: a free port on the address that reaches the coordinator).")
    var peerBind: String?

    @Flag(help: "Rank 0: continue from --out's checkpoints when it has any, else start.")
    var autoResume = false

    @Option(help: "Rank 0: continue the run in this folder (its configuration wins).")
    var resume: String?

    @OptionGroup var runOptions: RunOptions

    @OptionGroup(title: "Data-parallel") var cluster: ClusterOptions

    @OptionGroup(title: "Security") var security: SecurityOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try runOptions.validateCheckpointFlags()
        if let r = rank, r < 0 { throw ValidationError("--rank must be 0 or more (got \(r))") }
        if let w = worldSize, !(1...257).contains(w) { throw ValidationError("--world-size must be in 1...257 (got \(w))") }
        if let p = port, !(1...65535).contains(p) { throw ValidationError("--port must be in 1...65535 (got \(p))") }
        if rankOffset < 0 { throw ValidationError("--rank-offset must be 0 or more (got \(rankOffset))") }
        if let t = threads, !(1...1024).contains(t) { throw ValidationError("--threads must be in 1...1024 (got \(t))") }
        guard connectTimeout.isFinite && connectTimeout > 0 else { throw ValidationError("--connect-timeout must be positive") }
    }

    func run() throws {
        let flags = LaunchFlags(rank: rank, worldSize: worldSize, coordinator: coordinator, port: port,
                                rankOffset: rankOffset, rankZeroWorks: rank0Works)
        let plan: LaunchPlan
        do { plan = try LaunchPlan.resolve(environment: ProcessInfo.processInfo.environment, flags: flags) } catch {
            throw fail("\(error)")
        }
        let logger = try global.bootstrap(label: plan.isCoordinator ? "ztrain.coordinator" : "ztrain.worker")
        logger.info("launch: rank \(plan.rank) of \(plan.worldSize) (\(plan.engine)), coordinator \(plan.connectEndpoint)")
        if plan.isCoordinator {
            guard let prepared = try prepareRun(runOptions, resume: resume, autoResume: autoResume, logger: logger) else { return }
            let code = try runCoordinator(prepared: prepared, options: cluster.options(workers: plan.workers), bind: plan.bindEndpoint,
                                          spawnWorkers: plan.rankZeroWorks ? 1 : 0, workerThreads: threads ?? 1,
                                          checkpointEvery: runOptions.checkpointEvery, keep: runOptions.keep,
                                          timeline: cluster.timeline, security: security.server(), healthFile: security.health(),
                                          workerSecurity: security.curveDir == nil ? [] : ["--curve-dir", security.curveDir ?? ""],
                                          watch: cluster.watch.options, global: global, logger: logger)
            if code != 0 { throw ExitCode(code) }
        } else {
            try runWorker(connect: plan.connectEndpoint, threads: threads, expect: nil, parentPID: nil,
                          connectTimeout: connectTimeout, reconnectTimeout: 600, security: security.client(rank: plan.rank),
                          healthFile: security.health(), peerBind: peerBind, logger: logger)
        }
    }
}
