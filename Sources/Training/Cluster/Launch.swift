import Support

/// Where a process launched by a cluster engine stands in the job: its rank, the world size, and the
/// coordinator's address, read from the environment the engine sets (``LaunchPlan/resolve(environment:flags:)``).
///
/// Engines and the variables read (the first engine found gives the rank, in this order):
///
/// | engine | rank | world size | coordinator host |
/// |---|---|---|---|
/// | torchrun style | `RANK` | `WORLD_SIZE` | `MASTER_ADDR` |
/// | Open MPI (`mpirun`) | `OMPI_COMM_WORLD_RANK` | `OMPI_COMM_WORLD_SIZE` | `MASTER_ADDR`, else loopback when `OMPI_COMM_WORLD_LOCAL_SIZE` equals the size |
/// | Slurm (`srun`) | `SLURM_PROCID` | `SLURM_NTASKS` (or `SLURM_NPROCS`) | first host of `SLURM_JOB_NODELIST` |
/// | Kubernetes indexed Job | `JOB_COMPLETION_INDEX` (+ `--rank-offset`) | `WORLD_SIZE` | `MASTER_ADDR` (the coordinator's Service) |
///
/// The port is the one in `--coordinator`, else `--port`, else `MASTER_PORT`, else 29500 (torchrun's
/// default). What an engine does not set comes from `WORLD_SIZE`/`MASTER_ADDR`/`MASTER_PORT`; explicit
/// flags (`--rank`, `--world-size`, `--coordinator`, `--port`) override the environment. An engine's
/// world size that disagrees with `WORLD_SIZE`, or its rank that disagrees with `RANK` (unless torchrun's
/// `LOCAL_RANK` says torchrun runs inside the engine), is an error naming both, never a silent pick.
///
/// ```swift
/// let plan = try LaunchPlan.resolve(environment: ProcessInfo.processInfo.environment, flags: LaunchFlags())
/// if plan.isCoordinator { /* bind plan.bindEndpoint, wait for plan.workers */ } else { /* connect plan.connectEndpoint */ }
/// ```
public struct LaunchPlan: Sendable, Equatable {
    /// This process's rank, `0 ..< worldSize`; rank 0 runs the coordinator.
    public var rank: Int
    /// Processes in the job.
    public var worldSize: Int
    /// The coordinator's host (name or address) as the other ranks reach it.
    public var coordinatorHost: String
    public var port: Int
    /// The engine the rank came from (`slurm`, `openmpi`, `kubernetes`, `torchrun`, `flags`).
    public var engine: String
    /// Does rank 0 also run a worker?
    public var rankZeroWorks: Bool

    /// Rank 0 runs the coordinator.
    public var isCoordinator: Bool { rank == 0 }
    /// Workers the coordinator waits for: every other rank, plus rank 0's own when it works too.
    public var workers: Int { worldSize - 1 + (rankZeroWorks ? 1 : 0) }
    /// Does the coordinator listen on loopback only (every rank on this host)?
    public var isLoopback: Bool { LaunchPlan.isLoopback(coordinatorHost) }
    /// What rank 0 binds: loopback stays loopback; anything else listens on every interface.
    public var bindEndpoint: String { "tcp://\(isLoopback ? "127.0.0.1" : "*"):\(port)" }
    /// What the workers connect to.
    public var connectEndpoint: String { "tcp://\(LaunchPlan.bracketed(coordinatorHost)):\(port)" }

    public init(rank: Int, worldSize: Int, coordinatorHost: String, port: Int, engine: String, rankZeroWorks: Bool) {
        self.rank = rank
        self.worldSize = worldSize
        self.coordinatorHost = coordinatorHost
        self.port = port
        self.engine = engine
        self.rankZeroWorks = rankZeroWorks
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func bracketed(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }
}

/// What the command line says; `nil` means "from the environment".
public struct LaunchFlags: Sendable, Equatable {
    public var rank: Int?
    public var worldSize: Int?
    /// `HOST`, `HOST:PORT` or `tcp://HOST:PORT`.
    public var coordinator: String?
    public var port: Int?
    /// Added to an indexed Job's `JOB_COMPLETION_INDEX` (the coordinator runs outside the Job as rank 0).
    public var rankOffset: Int
    public var rankZeroWorks: Bool

    public init(rank: Int? = nil, worldSize: Int? = nil, coordinator: String? = nil, port: Int? = nil,
                rankOffset: Int = 0, rankZeroWorks: Bool = true) {
        self.rank = rank
        self.worldSize = worldSize
        self.coordinator = coordinator
        self.port = port
        self.rankOffset = rankOffset
        self.rankZeroWorks = rankZeroWorks
    }
}

/// Why the launch environment could not be understood; the message names the variables looked at.
public struct LaunchError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

extension LaunchPlan {
    /// Every variable ``resolve(environment:flags:)`` reads.
    public static let variables = [
        "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_JOB_NODELIST",
        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE",
        "JOB_COMPLETION_INDEX", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    ]

    /// torchrun's default `MASTER_PORT`.
    public static let defaultPort = 29500

    /// Works out this process's place in the job from `environment` and `flags`.
    ///
    /// One engine supplies the rank: torchrun-style `RANK` when set (the innermost launcher: torchrun
    /// under `srun`, or a script that exports `RANK`), else Open MPI, else Slurm, else an indexed Job.
    /// Its world size must agree with `WORLD_SIZE` when both are set.
    public static func resolve(environment env: [String: String], flags: LaunchFlags) throws(LaunchError) -> LaunchPlan {
        let looked = "looked at --rank, --world-size, --coordinator and " + variables.joined(separator: ", ")
        let worldSize = try int(env, "WORLD_SIZE")
        var engine: String
        var rank: (source: String, value: Int)
        var size: (source: String, value: Int)?
        if let r = try int(env, "RANK") {
            engine = "torchrun"; rank = ("RANK", r)
        } else if let r = try int(env, "OMPI_COMM_WORLD_RANK") {
            engine = "openmpi"; rank = ("OMPI_COMM_WORLD_RANK", r)
            if let s = try int(env, "OMPI_COMM_WORLD_SIZE") { size = ("OMPI_COMM_WORLD_SIZE", s) }
        } else if let r = try int(env, "SLURM_PROCID") {
            engine = "slurm"; rank = ("SLURM_PROCID", r)
            let tasks = try int(env, "SLURM_NTASKS"), procs = try int(env, "SLURM_NPROCS")
            if let s = tasks { size = ("SLURM_NTASKS", s) } else if let s = procs { size = ("SLURM_NPROCS", s) }
        } else if let r = try int(env, "JOB_COMPLETION_INDEX") {
            engine = "kubernetes"; rank = ("JOB_COMPLETION_INDEX+\(flags.rankOffset)", r + flags.rankOffset)
        } else if let r = flags.rank {
            engine = "flags"; rank = ("--rank", r)
        } else {
            throw LaunchError("no rank: not started by torchrun, Open MPI, Slurm or a Kubernetes indexed Job (\(looked)); pass --rank and --world-size, or to train on this machine alone run 'ztrain train --workers N'")
        }
        // RANK beside the engine's own rank must agree, unless torchrun (LOCAL_RANK) runs inside the engine
        if engine == "torchrun", flags.rank == nil, env["LOCAL_RANK"] == nil {
            var beneath: (String, Int)? = nil
            if let r = try int(env, "OMPI_COMM_WORLD_RANK") {
                beneath = ("OMPI_COMM_WORLD_RANK", r)
            } else if let r = try int(env, "SLURM_PROCID") {
                beneath = ("SLURM_PROCID", r)
            } else if let r = try int(env, "JOB_COMPLETION_INDEX") {
                beneath = ("JOB_COMPLETION_INDEX+\(flags.rankOffset)", r + flags.rankOffset)
            }
            if let (name, value) = beneath, value != rank.value {
                throw LaunchError("contradictory ranks: RANK=\(rank.value) but \(name)=\(value); unset RANK or pass --rank")
            }
        }
        if let s = size, let w = worldSize, w != s.value, flags.worldSize == nil {
            throw LaunchError("contradictory world sizes: \(s.source)=\(s.value) but WORLD_SIZE=\(w); unset WORLD_SIZE or pass --world-size")
        }
        if size == nil, let w = worldSize { size = ("WORLD_SIZE", w) }
        if let r = flags.rank { rank = ("--rank", r) }
        if let s = flags.worldSize { size = ("--world-size", s) }
        guard let size else {
            throw LaunchError("no world size for rank \(rank.value) (from \(rank.source)): set WORLD_SIZE or pass --world-size (\(looked))")
        }
        guard size.value >= 1 else { throw LaunchError("the world size must be at least 1 (\(size.source)=\(size.value))") }
        guard (0..<size.value).contains(rank.value) else {
            throw LaunchError("rank \(rank.value) (from \(rank.source)) is outside 0..<\(size.value) (world size from \(size.source))")
        }
        guard size.value >= 2 || flags.rankZeroWorks else {
            throw LaunchError("a world of 1 with --no-rank0-works has no worker; run more ranks or let rank 0 work")
        }

        // the coordinator: --coordinator, else the engine (Slurm's first node), else MASTER_ADDR, else loopback on one host
        var host: String? = nil
        var flagPort: Int? = nil
        if let c = flags.coordinator { (host, flagPort) = try parseCoordinator(c) }
        if host == nil, engine == "slurm", let list = env["SLURM_JOB_NODELIST"], !list.isEmpty {
            guard let first = firstHost(ofSlurmNodeList: list) else {
                throw LaunchError("cannot read SLURM_JOB_NODELIST '\(list)'; set MASTER_ADDR or pass --coordinator")
            }
            host = first
        }
        if host == nil, let m = env["MASTER_ADDR"]?.trimmingWhitespace, !m.isEmpty { host = m }
        if host == nil {
            let oneHost = size.value == 1 || engine == "flags"
                || (engine == "openmpi" && env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } == size.value)
            guard oneHost else {
                throw LaunchError("no coordinator address for a world of \(size.value) (\(engine)): set MASTER_ADDR (and MASTER_PORT) or pass --coordinator HOST:PORT (\(looked))")
            }
            host = "127.0.0.1"
        }
        let masterPort = try int(env, "MASTER_PORT")
        let port = flagPort ?? flags.port ?? masterPort ?? defaultPort
        guard (1...65535).contains(port) else { throw LaunchError("port \(port) is outside 1...65535 (--coordinator, --port or MASTER_PORT)") }
        return LaunchPlan(rank: rank.value, worldSize: size.value, coordinatorHost: host ?? "127.0.0.1", port: port,
                          engine: engine, rankZeroWorks: flags.rankZeroWorks)
    }

    static func int(_ env: [String: String], _ name: String) throws(LaunchError) -> Int? {
        guard let v = env[name]?.trimmingWhitespace, !v.isEmpty else { return nil }
        guard let i = Int(v), i >= 0 else { throw LaunchError("\(name)='\(v)' is not a non-negative integer") }
        return i
    }

    /// `HOST`, `HOST:PORT`, `[V6]:PORT` or `tcp://HOST:PORT`.
    static func parseCoordinator(_ s: String) throws(LaunchError) -> (String, Int?) {
        var rest = Substring(s)
        if rest.hasPrefix("tcp://") { rest = rest.dropFirst(6) }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw LaunchError("--coordinator '\(s)': unclosed '['") }
            let host = String(rest[rest.index(after: rest.startIndex)..<close])
            let tail = rest[rest.index(after: close)...]
            if tail.isEmpty { return (host, nil) }
            guard tail.hasPrefix(":"), let p = Int(tail.dropFirst()) else { throw LaunchError("--coordinator '\(s)': expected [HOST]:PORT") }
            return (host, p)
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard let h = parts.first, !h.isEmpty, parts.count <= 2 else {
            throw LaunchError("--coordinator '\(s)': expected HOST, HOST:PORT or tcp://HOST:PORT")
        }
        if parts.count == 2 {
            guard let p = Int(parts[1]) else { throw LaunchError("--coordinator '\(s)': '\(parts[1])' is not a port") }
            return (String(h), p)
        }
        return (String(h), nil)
    }

    /// The first host of a Slurm node list: `node[03-05,9],gpu1` → `node03`, `rack[1-2]-n[01-04]` → `rack1-n01`.
    public static func firstHost(ofSlurmNodeList list: String) -> String? {
        // the first entry: split at the first comma outside brackets
        var depth = 0
        var entry = ""
        for c in list {
            if c == "[" { depth += 1 } else if c == "]" { depth -= 1 }
            if c == "," && depth == 0 { break }
            entry.append(c)
        }
        guard depth == 0 || entry.count < list.count else { return nil }
        // each [a-b,c] group becomes its first item's first number, as written (zero padding kept)
        var out = ""
        var i = entry.startIndex
        while i < entry.endIndex {
            let c = entry[i]
            if c == "[" {
                guard let close = entry[i...].firstIndex(of: "]") else { return nil }
                let inside = entry[entry.index(after: i)..<close]
                let first = inside.split(separator: ",").first.flatMap { $0.split(separator: "-").first } ?? ""
                guard !first.isEmpty, first.allSatisfy(\.isNumber) else { return nil }
                out += first
                i = entry.index(after: close)
            } else if c == "]" {
                return nil
            } else {
                out.append(c)
                i = entry.index(after: i)
            }
        }
        return out.isEmpty ? nil : out
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
