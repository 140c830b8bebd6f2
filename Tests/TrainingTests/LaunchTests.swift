import Testing
@testable import Training

@Suite("ztrain launch: rank, world and coordinator from the engine's environment")
struct LaunchTests {
    func plan(_ env: [String: String], _ flags: LaunchFlags = LaunchFlags()) throws -> LaunchPlan {
        try LaunchPlan.resolve(environment: env, flags: flags)
    }

    func error(_ env: [String: String], _ flags: LaunchFlags = LaunchFlags()) -> String {
        do {
            _ = try LaunchPlan.resolve(environment: env, flags: flags)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test("torchrun: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT")
    func torchrun() throws {
        let p = try plan(["RANK": "2", "WORLD_SIZE": "4", "MASTER_ADDR": "node7", "MASTER_PORT": "6000"])
        #expect(p == LaunchPlan(rank: 2, worldSize: 4, coordinatorHost: "node7", port: 6000, engine: "torchrun", rankZeroWorks: true))
        #expect(!p.isCoordinator)
        #expect(p.connectEndpoint == "tcp://node7:6000")
        #expect(p.workers == 4)
        let zero = try plan(["RANK": "0", "WORLD_SIZE": "4", "MASTER_ADDR": "node7"])
        #expect(zero.isCoordinator)
        #expect(zero.port == LaunchPlan.defaultPort)
        #expect(zero.bindEndpoint == "tcp://*:29500")
    }

    @Test("Slurm: SLURM_PROCID, SLURM_NTASKS, the first host of SLURM_JOB_NODELIST")
    func slurm() throws {
        let p = try plan(["SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "gpu[07-09,12],cpu1"])
        #expect(p.rank == 3 && p.worldSize == 4 && p.coordinatorHost == "gpu07" && p.engine == "slurm")
        let local = try plan(["SLURM_PROCID": "0", "SLURM_NPROCS": "2", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": "7001"])
        #expect(local.isLoopback && local.bindEndpoint == "tcp://127.0.0.1:7001")
    }

    @Test("Slurm node lists", arguments: [
        ("node01", "node01"), ("node[01-04]", "node01"), ("node[3,5-7]", "node3"), ("a,b", "a"),
        ("rack[1-2]-n[001-004],x", "rack1-n001"), ("gpu[10-11],cpu[1-2]", "gpu10"),
    ])
    func nodeLists(list: String, first: String) {
        #expect(LaunchPlan.firstHost(ofSlurmNodeList: list) == first)
    }

    @Test("malformed Slurm node lists", arguments: ["node[", "node]1", "node[a-b]", "[]"])
    func badNodeLists(list: String) {
        #expect(LaunchPlan.firstHost(ofSlurmNodeList: list) == nil)
    }

    @Test("Open MPI: loopback when every rank is on this host, else MASTER_ADDR")
    func openMPI() throws {
        let p = try plan(["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "3"])
        #expect(p.rank == 1 && p.worldSize == 3 && p.coordinatorHost == "127.0.0.1" && p.engine == "openmpi")
        let e = error(["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "1"])
        #expect(e.contains("MASTER_ADDR") && e.contains("--coordinator"))
        let far = try plan(["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "3", "MASTER_ADDR": "10.1.2.3"])
        #expect(far.connectEndpoint == "tcp://10.1.2.3:29500")
    }

    @Test("Kubernetes indexed Job: JOB_COMPLETION_INDEX plus --rank-offset, WORLD_SIZE, MASTER_ADDR")
    func kubernetes() throws {
        let p = try plan(["JOB_COMPLETION_INDEX": "0", "WORLD_SIZE": "3", "MASTER_ADDR": "ztrain-coordinator", "MASTER_PORT": "5555"],
                         LaunchFlags(rankOffset: 1))
        #expect(p.rank == 1 && p.engine == "kubernetes" && p.connectEndpoint == "tcp://ztrain-coordinator:5555")
    }

    @Test("explicit flags override the environment")
    func flagsWin() throws {
        let env = ["RANK": "2", "WORLD_SIZE": "4", "MASTER_ADDR": "node7", "MASTER_PORT": "6000"]
        let p = try plan(env, LaunchFlags(rank: 0, worldSize: 2, coordinator: "tcp://[::1]:7000"))
        #expect(p.rank == 0 && p.worldSize == 2 && p.coordinatorHost == "::1" && p.port == 7000)
        #expect(p.connectEndpoint == "tcp://[::1]:7000" && p.bindEndpoint == "tcp://127.0.0.1:7000")
        let q = try plan(env, LaunchFlags(port: 8000))
        #expect(q.port == 8000)
        let r = try plan([:], LaunchFlags(rank: 1, worldSize: 3))
        #expect(r.engine == "flags" && r.coordinatorHost == "127.0.0.1")
    }

    @Test("missing or contradictory environments name the variables looked at")
    func errors() {
        let none = error([:])
        #expect(none.contains("RANK") && none.contains("SLURM_PROCID") && none.contains("OMPI_COMM_WORLD_RANK")
                && none.contains("JOB_COMPLETION_INDEX") && none.contains("--rank"))
        #expect(error(["RANK": "1"]).contains("WORLD_SIZE"))
        #expect(error(["RANK": "4", "WORLD_SIZE": "4"]).contains("outside 0..<4"))
        #expect(error(["RANK": "x", "WORLD_SIZE": "4"]).contains("RANK='x'"))
        #expect(error(["RANK": "-1", "WORLD_SIZE": "4"]).contains("RANK='-1'"))
        let sizes = error(["SLURM_PROCID": "1", "SLURM_NTASKS": "4", "WORLD_SIZE": "3", "SLURM_JOB_NODELIST": "n1"])
        #expect(sizes.contains("SLURM_NTASKS=4") && sizes.contains("WORLD_SIZE=3"))
        #expect(error(["RANK": "1", "WORLD_SIZE": "2"]).contains("MASTER_ADDR"))
        #expect(error(["RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"]).contains("70000"))
        #expect(error([:], LaunchFlags(rank: 0, worldSize: 1, rankZeroWorks: false)).contains("no worker"))
        #expect(error([:], LaunchFlags(rank: 0, worldSize: 2, coordinator: "a:b:c")).contains("--coordinator"))
    }

    @Test("a world of one: rank 0 coordinates and works")
    func single() throws {
        let p = try plan(["RANK": "0", "WORLD_SIZE": "1"])
        #expect(p.isCoordinator && p.workers == 1 && p.isLoopback)
        let q = try plan(["RANK": "0", "WORLD_SIZE": "3"], LaunchFlags(coordinator: "h", rankZeroWorks: false))
        #expect(q.workers == 2)
    }
}

@Suite("Launch: contradictions and hints")
struct LaunchContradictionTests {
    func error(_ env: [String: String], _ flags: LaunchFlags = LaunchFlags()) -> String {
        do {
            _ = try LaunchPlan.resolve(environment: env, flags: flags)
            return "resolved"
        } catch {
            return error.description
        }
    }

    @Test("RANK that disagrees with the engine's rank is an error naming both")
    func rankContradiction() throws {
        let e = error(["RANK": "0", "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "n1"])
        #expect(e.contains("RANK=0") && e.contains("SLURM_PROCID=1"), "\(e)")
        let m = error(["RANK": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "3", "WORLD_SIZE": "3"])
        #expect(m.contains("RANK=2") && m.contains("OMPI_COMM_WORLD_RANK=1"), "\(m)")
        // agreeing, overridden by --rank, or torchrun inside srun (LOCAL_RANK): no error
        let env = ["RANK": "1", "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"]
        #expect(try LaunchPlan.resolve(environment: env, flags: LaunchFlags()).rank == 1)
        var torchrun = env
        torchrun["RANK"] = "0"
        torchrun["LOCAL_RANK"] = "0"
        #expect(try LaunchPlan.resolve(environment: torchrun, flags: LaunchFlags()).rank == 0)
        torchrun["LOCAL_RANK"] = nil
        #expect(try LaunchPlan.resolve(environment: torchrun, flags: LaunchFlags(rank: 0)).rank == 0)
    }

    @Test("no environment at all suggests train --workers")
    func noEnvironment() {
        #expect(error([:]).contains("ztrain train --workers N"))
    }
}
