import Checkpoint
import Foundation
import Testing

/// Sharded aggregation with real processes: `train --workers N --aggregation sharded` (the workers own
/// slices, talk to each other over their peer endpoints) trains the bits of `--in-process`.
@Suite("Sharded aggregation from the command line")
struct ShardedCLITests {
    /// P = 17 030 with --hidden 128 (five 4096-float blocks: an owner per worker up to four).
    @Test(arguments: [nil, "0.05"] as [String?])
    func oneToFourWorkersGiveTheInProcessBits(clip: String?) throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--hidden", "128", "--steps", "12", "--batch", "40", "--micro-batch", "4", "--quiet"]
            + (clip.map { ["--clip-norm", $0] } ?? [])
        let a = try runZtrain(["train", "--in-process", "--out", tmp.path("a")] + common)
        #expect(a.status == 0, "\(a.stderr)")
        let reference = try loadModel(path: tmp.path("a/model.safetensors"), expecting: nil).parameters
        for n in 1...4 {
            let out = tmp.path("s\(n)")
            let r = try runZtrain(["train", "--workers", "\(n)", "--aggregation", "sharded", "--out", out] + common, timeout: 180)
            #expect(r.status == 0, "\(n) workers: \(r.stderr)")
            let w = try loadModel(path: out + "/model.safetensors", expecting: nil).parameters
            #expect(w == reference, "\(n) workers, clip \(clip ?? "off")")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any])
            for worker in (summary["workers"] as? [[String: Any]]) ?? [] {
                if let pid = worker["pid"] as? Int { #expect(!pidAlive(Int32(pid)), "worker \(pid) still running") }
            }
        }
    }

    /// The coordinator carries no gradient in sharded mode: its bytes in are the owners' slices at sync
    /// steps (P floats; 3·P with the optimizer state for owner recovery) and small messages, a fraction
    /// of the star run's nodes of P + 1 floats each.
    @Test func theCoordinatorCarriesAFractionOfTheStarBytes() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--hidden", "128", "--steps", "10", "--batch", "40", "--micro-batch", "4", "--quiet", "--workers", "3"]
        let star = try runZtrain(["train", "--out", tmp.path("star")] + common, timeout: 180)
        let sharded = try runZtrain(["train", "--aggregation", "sharded", "--no-owner-recovery", "--out", tmp.path("sharded")] + common, timeout: 180)
        let recovering = try runZtrain(["train", "--aggregation", "sharded", "--out", tmp.path("recovering")] + common, timeout: 180)
        #expect(star.status == 0 && sharded.status == 0 && recovering.status == 0, "\(star.stderr)\n\(sharded.stderr)\n\(recovering.stderr)")
        func bytes(_ dir: String) throws -> (Int, Int) {
            let last = try String(contentsOfFile: tmp.path(dir + "/metrics.jsonl"), encoding: .utf8).split(separator: "\n").last ?? ""
            let line = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
            return (line["bytes_in"] as? Int ?? -1, line["bytes_out"] as? Int ?? -1)
        }
        let (starIn, starOut) = try bytes("star")
        let (shardedIn, shardedOut) = try bytes("sharded")
        let (recoveringIn, recoveringOut) = try bytes("recovering")
        #expect(shardedIn * 2 < starIn && shardedOut * 4 < starOut, "star \(starIn)/\(starOut), sharded \(shardedIn)/\(shardedOut)")
        #expect(recoveringIn < starIn && recoveringOut * 4 < starOut, "star \(starIn)/\(starOut), recovering \(recoveringIn)/\(recoveringOut)")
        #expect(try loadModel(path: tmp.path("star/model.safetensors"), expecting: nil).parameters
                == loadModel(path: tmp.path("sharded/model.safetensors"), expecting: nil).parameters)
    }

    /// A sharded run with checkpoints writes the star run's checkpoint files (weights and optimizer state),
    /// so either mode resumes the other's.
    @Test func checkpointsAreTheStarRunsAndResumeAcrossModes() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--hidden", "128", "--steps", "12", "--batch", "40", "--micro-batch", "4", "--quiet", "--workers", "2",
                      "--checkpoint-every", "5"]
        let star = try runZtrain(["train", "--out", tmp.path("star")] + common, timeout: 180)
        let sharded = try runZtrain(["train", "--aggregation", "sharded", "--out", tmp.path("sharded")] + common, timeout: 180)
        #expect(star.status == 0 && sharded.status == 0, "\(star.stderr)\n\(sharded.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: tmp.path("star/checkpoints")).filter { $0.hasSuffix(".safetensors") }
        #expect(files.count >= 2, "\(files)")
        for f in files {
            let a = try SafeTensors.read(path: tmp.path("star/checkpoints/" + f))
            let b = try SafeTensors.read(path: tmp.path("sharded/checkpoints/" + f))
            #expect(a.tensors == b.tensors, "\(f)")
        }
    }
}

@Suite("Chaos, sharded: a killed owner", .serialized)
struct ShardedChaosTests {
    /// Three worker processes own the five slices of P = 17 030; one is SIGKILLed mid-run: the coordinator
    /// goes back to its last sync step, re-plans the slices among the two left, seeds them from the
    /// snapshot there and replays, and the run ends with the clean run's bits.
    @Test func aKilledOwnerLeavesTheBitsOfACleanRun() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let training = ["--hidden", "128", "--epochs", "30", "--batch", "64", "--micro-batch", "4", "--seed", "0"]
        let clean = try runZtrain(["train", "--in-process", "--out", tmp.path("clean"), "--quiet"] + training, timeout: 300)
        #expect(clean.status == 0, "\(clean.stderr)")
        let run = tmp.path("sharded")
        let endpoint = "ipc://\(tmp.path("c.sock"))"
        var children: [Child] = []
        defer { for c in children where c.isRunning { c.kill9() } }
        let coordinator = try Child("coordinator", ["coordinator", "--bind", endpoint, "--workers", "3", "--liveness", "1",
                                                    "--aggregation", "sharded", "--out", run, "--log-level", "debug"] + training,
                                    log: tmp.url.appendingPathComponent("coordinator.log"))
        children.append(coordinator)
        for i in 0..<3 {
            children.append(try Child("worker\(i)", ["worker", "--connect", endpoint, "--threads", "1", "--log-level", "info"],
                                      log: tmp.url.appendingPathComponent("worker\(i).log")))
        }
        let deadline = Date().addingTimeInterval(120)
        while epochsWritten(run) < 2 && coordinator.isRunning && Date() < deadline { usleep(5_000) }
        #expect(coordinator.isRunning, "the run ended before the kill")
        children[2].kill9()
        #expect(coordinator.wait(timeout: 240), "the coordinator did not finish")
        let log = (try? String(contentsOf: tmp.url.appendingPathComponent("coordinator.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("take the slices over"), "no re-plan in the log:\n\(log.suffix(3000))")
        if let line = log.split(separator: "\n").first(where: { $0.contains("take the slices over") }) { print("sharded chaos: \(line)") }
        let sharded = try loadModel(path: run + "/model.safetensors").parameters
        let reference = try loadModel(path: tmp.path("clean/model.safetensors")).parameters
        #expect(sharded == reference, "weights differ from the clean run")
        for c in children where c.isRunning { c.kill9() }
    }
}

@Suite("Sharded aggregation through launch")
struct ShardedLaunchTests {
    /// Three ranks of `ztrain launch` with torchrun-style variables over loopback TCP (rank 0: the
    /// coordinator and a worker beside it, ranks 1 and 2: workers, each binding its peer endpoint on the
    /// address that reaches the coordinator): the in-process bits. With `--curve-dir` (a key pair per
    /// rank) the links between the workers are CURVE too, and the bits the same.
    @Test(arguments: [false, true])
    func threeRanksGiveTheInProcessBits(curve: Bool) throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let training = ["--hidden", "128", "--steps", "12", "--batch", "40", "--micro-batch", "4", "--quiet"]
        let reference = try runZtrain(["train", "--in-process", "--out", tmp.path("ref")] + training)
        if curve {
            let k = try runZtrain(["keygen", "--out", tmp.path("keys"), "coordinator", "worker", "worker-1", "worker-2"])
            #expect(k.status == 0, "\(k.stderr)")
        }
        // the ranks log (not --quiet): a failing run shows what it was doing; a loaded machine (the
        // whole suite on 2 cores) must not make a rank look dead: lost owners have their own tests
        let common = training.filter { $0 != "--quiet" } + ["--aggregation", "sharded", "--liveness", "30"]
            + (curve ? ["--curve-dir", tmp.path("keys")] : [])
        #expect(reference.status == 0, "\(reference.stderr)")
        let port = freeTCPPort()
        func env(_ rank: Int) -> [String: String] {
            var e = ProcessInfo.processInfo.environment
            e["RANK"] = "\(rank)"
            e["WORLD_SIZE"] = "3"
            e["MASTER_ADDR"] = "127.0.0.1"
            e["MASTER_PORT"] = "\(port)"
            return e
        }
        var ranks: [Process] = []
        defer { for p in ranks where p.isRunning { p.terminate() } }
        for rank in 1...2 {
            let p = Process()
            p.executableURL = ztrainBinary()
            p.arguments = ["launch"] + common
            p.environment = env(rank)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            ranks.append(p)
        }
        let r0 = try runCommand(ztrainBinary().path, ["launch", "--out", tmp.path("launch")] + common, environment: env(0), timeout: 180)
        #expect(r0.status == 0, "\(r0.stderr)")
        let deadline = Date().addingTimeInterval(60)
        while ranks.contains(where: \.isRunning) && Date() < deadline { usleep(10_000) }
        let stillRunning = ranks.filter(\.isRunning).count
        #expect(stillRunning == 0, "a worker rank did not exit")
        let launched = try loadModel(path: tmp.path("launch/model.safetensors"), expecting: nil).parameters
        let inProcess = try loadModel(path: tmp.path("ref/model.safetensors"), expecting: nil).parameters
        #expect(launched == inProcess)
    }
}

@Suite("Shard processes from the command line")
struct ShardProcessCLITests {
    /// `coordinator --shards 2` + two `worker`s + two `shard`s (dedicated owners, computing nothing) over
    /// ipc://: the bits of `--in-process`, every process ends, and the summary lists the shards.
    @Test func twoWorkersAndTwoShardsGiveTheInProcessBits() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let training = ["--hidden", "128", "--steps", "12", "--batch", "40", "--micro-batch", "20"]
        let a = try runZtrain(["train", "--in-process", "--quiet", "--out", tmp.path("a")] + training)
        #expect(a.status == 0, "\(a.stderr)")
        let run = tmp.path("s")
        let endpoint = "ipc://\(tmp.path("c.sock"))"
        var children: [Child] = []
        defer { for c in children where c.isRunning { c.kill9() } }
        let coordinator = try Child("coordinator", ["coordinator", "--bind", endpoint, "--workers", "2", "--shards", "2", "--liveness", "30",
                                                    "--aggregation", "sharded", "--out", run, "--log-level", "info"] + training,
                                    log: tmp.url.appendingPathComponent("coordinator.log"))
        children.append(coordinator)
        for i in 0..<2 {
            children.append(try Child("shard\(i)", ["shard", "--connect", endpoint, "--log-level", "info"],
                                      log: tmp.url.appendingPathComponent("shard\(i).log")))
            children.append(try Child("worker\(i)", ["worker", "--connect", endpoint, "--threads", "1", "--log-level", "info"],
                                      log: tmp.url.appendingPathComponent("worker\(i).log")))
        }
        #expect(coordinator.wait(timeout: 240), "the coordinator did not finish:\n\(children.map { $0.tail() }.joined(separator: "\n"))")
        for c in children { #expect(c.wait(timeout: 30), "\(c.tail())") }
        let log = (try? String(contentsOf: tmp.url.appendingPathComponent("coordinator.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("shard 1 joined") || log.contains("shard 2 joined"), "\(log.suffix(2000))")
        let w = try loadModel(path: run + "/model.safetensors", expecting: nil).parameters
        #expect(w == (try loadModel(path: tmp.path("a/model.safetensors"), expecting: nil).parameters))
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any])
        let records = (summary["workers"] as? [[String: Any]]) ?? []
        #expect(records.filter { $0["shard"] as? Bool == true }.count == 2, "\(records)")
        #expect(records.filter { $0["shard"] as? Bool == true }.allSatisfy { ($0["steps"] as? Int) == 0 }, "\(records)")
        // every process's bytes a step: a shard takes in its slice of the two workers' nodes (one each: half
        // of 4P from each, 4P in all, P = 17 030), never the whole weights beside them
        let last = try #require(try TrafficCLITests.processes(run).last)
        #expect(Set(last.compactMap { $0["role"] as? String }) == ["coordinator", "worker", "shard"], "\(last)")
        for s in last where s["role"] as? String == "shard" {
            let i = s["bytes_in_per_step"] as? Double ?? 0
            #expect(i > 0.8 * 4 * 17_030 && i < 1.6 * 4 * 17_030, "shard in \(i) a step")
        }
    }
}
