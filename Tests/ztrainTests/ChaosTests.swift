import Checkpoint
import Foundation
import Testing

/// A child process this test owns; `deinit` never leaves it running.
final class Child {
    let process = Process()
    let name: String
    /// This child's own log (stdout and stderr): one file per process, so lines never interleave.
    let log: URL

    init(_ name: String, _ args: [String], log: URL) throws {
        self.name = name
        self.log = log
        process.executableURL = ztrainBinary()
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The child's log so far.
    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// The last `count` characters of the log, headed by the child's name and pid.
    func tail(_ count: Int = 2000) -> String { "--- \(name) (pid \(pid)) ---\n\(logText.suffix(count))" }

    func signal(_ s: Int32) { if process.isRunning { kill(pid, s) } }

    /// SIGKILL and reap.
    func kill9() {
        signal(SIGKILL)
        process.waitUntilExit()
    }

    func wait(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGCONT)
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Epochs written so far to a run's metrics.jsonl.
func epochsWritten(_ dir: String) -> Int {
    guard let s = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return 0 }
    return s.split(separator: "\n").count
}

@Suite("Chaos: killed, paused and restarted processes", .serialized)
struct ChaosTests {
    /// Workers are SIGKILLed and restarted 5 times, one is SIGSTOPped past the liveness window, and the
    /// coordinator is SIGKILLed once and resumed from its checkpoint: the run still reaches the target,
    /// uses every window exactly once per epoch, and ends with the same bits as a clean run.
    @Test func chaosRunMatchesACleanRun() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("chaos")
        // one log per child process (named after it), all kept for the checks and failure messages
        var children: [Child] = []
        func start(_ name: String, _ args: [String]) throws -> Child {
            let c = try Child(name, args, log: tmp.url.appendingPathComponent("\(name).log"))
            children.append(c)
            return c
        }
        // (95 epochs: the faults, the last near epoch 9-13, land in the first seventh of the run even when a loaded
        // machine makes this test slow to start processes while the run goes on)
        let training = ["--target-loss", "1e-5", "--epochs", "150", "--micro-batch", "4", "--seed", "0"]
        // the children log more than warnings (joins, drops, handshakes): the evidence when this fails
        let coordinatorLog = ["--log-level", "debug"], workerLog = ["--log-level", "info"]

        let clean = try runZtrain(["train", "--in-process", "--out", tmp.path("clean"), "--quiet"] + training, timeout: 300)
        #expect(clean.status == 0, "\(clean.stderr)")

        let endpoint = "ipc://\(tmp.path("c.sock"))"
        let coordinatorArgs = ["coordinator", "--bind", endpoint, "--workers", "3", "--min-workers", "1", "--join-timeout", "5",
                               "--liveness", "1", "--checkpoint-every", "15", "--keep", "2", "--out", run] + training + coordinatorLog
        var coordinator = try start("coordinator", coordinatorArgs)
        let workerArgs = ["worker", "--connect", endpoint, "--threads", "1", "--connect-timeout", "60", "--reconnect-timeout", "60"] + workerLog
        var workers = try (0..<3).map { i in try start("worker\(i)", workerArgs) }
        var kills = 0, stopped = false, continued = false, coordinatorKilled = false
        var continueAt = Date.distantFuture, stoppedAtEpoch = 0
        // where the coordinator was killed: it must still have been running, before the run's end
        var killedAtEpoch = 0, coordinatorWasRunning = false
        var rng = SystemRandomNumberGenerator()
        let deadline = Date().addingTimeInterval(240)

        // The loop never sleeps for long: the run goes on meanwhile (an epoch takes ~0.1 s), and a loop
        // blind for a second and a half (the pause below once was a usleep) saw epoch 9 only near the
        // end of the run, or after it, when killing the coordinator no longer tests anything.
        while coordinator.isRunning || !coordinatorKilled || (stopped && !continued), Date() < deadline {
            let epochs = epochsWritten(run)
            if stopped && !continued && Date() >= continueAt {
                workers[0].signal(SIGCONT)
                continued = true
            }
            if kills < 5 && epochs >= 1 + kills {
                // SIGKILL a random worker at a random moment of the epoch, and start a new one
                usleep(UInt32.random(in: 0...30_000, using: &rng))
                let victim = Int.random(in: 0..<workers.count, using: &rng)
                workers[victim].kill9()
                workers[victim] = try start("worker-r\(kills)", workerArgs)
                kills += 1
            } else if kills >= 5 && !stopped && epochs >= 7 {
                // pause one worker for longer than the liveness window, then let it go on
                workers[0].signal(SIGSTOP)
                continueAt = Date().addingTimeInterval(1.6)
                stopped = true
                stoppedAtEpoch = epochs
            } else if stopped && !coordinatorKilled && ((continued && epochs >= 9) || epochs >= stoppedAtEpoch + 4) {
                // after the pause, or during it if the other workers race on (an order the paused worker
                // holds is given again after --retry-after, so the run need not wait out the liveness
                // window: on an idle machine the rest of the run once took less than the 1.6 s pause)
                coordinatorWasRunning = coordinator.isRunning
                killedAtEpoch = epochs
                coordinator.kill9()
                coordinatorKilled = true
                // the workers' HELLO back-off grows to 8 s while the coordinator is away: a resumed
                // coordinator waits longer than that for them (the CLI's default is 60 s)
                coordinator = try start("coordinator-resumed", ["coordinator", "--bind", endpoint, "--workers", "3", "--min-workers", "1",
                                                                "--join-timeout", "20", "--liveness", "1", "--checkpoint-every", "15",
                                                                "--keep", "2", "--resume", run] + coordinatorLog)
            } else if coordinatorKilled && continued && !coordinator.isRunning {
                break
            }
            usleep(10_000)
        }
        if stopped && !continued { workers[0].signal(SIGCONT) }  // never leave a stopped process behind
        let finished = coordinator.wait(timeout: 30)
        let coordinators = children.filter { $0.name.hasPrefix("coordinator") }
        #expect(finished && coordinator.process.terminationStatus == 0,
                "coordinator: \(coordinators.map { $0.tail(3000) }.joined(separator: "\n"))")
        #expect(kills == 5 && stopped && continued && coordinatorKilled,
                "chaos incomplete: kills \(kills), stopped \(stopped), continued \(continued), coordinator killed \(coordinatorKilled)")
        #expect(coordinatorWasRunning, "the coordinator had finished before it was killed (at epoch \(killedAtEpoch)): nothing was resumed")
        for w in workers {
            #expect(w.wait(timeout: 20), "\(w.name) did not exit after the run:\n\(w.tail())\n\(coordinator.tail(3000))")
        }
        for w in workers where w.isRunning { w.kill9() }
        // every child's log, each whole (one file per process), for the contains-checks below
        let logText = children.map { $0.tail(Int.max) }.joined(separator: "\n")
        // kept after the temp folder goes (one file per test process: instances may run at once)
        try? logText.write(toFile: "/tmp/ztrain-chaos-\(getpid()).log", atomically: true, encoding: .utf8)
        let workerTails = children.filter { !$0.name.hasPrefix("coordinator") }.map { $0.tail(1500) }.joined(separator: "\n")

        // the target, exact window accounting, and the same bits as the clean run
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any])
        let cleanSummary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("clean/summary.json")))) as? [String: Any])
        #expect(summary["target_reached"] as? Bool == true)
        let epochs = try #require(summary["epochs"] as? Int)
        #expect(epochs == cleanSummary["epochs"] as? Int)
        #expect(killedAtEpoch < epochs, "the coordinator was killed at epoch \(killedAtEpoch) of \(epochs)")
        #expect(summary["samples"] as? Int == epochs * 996, "every window once per epoch")
        let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == epochs)
        for line in lines {
            let m = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(m["samples"] as? Int == 996)
        }
        // the faults were seen: lost workers, workers rejoining the resumed coordinator
        // (how many kills the coordinator saw before the next fault depends on the machine's load;
        // the SIGSTOP lasts longer than the liveness window, so at least that one is seen)
        #expect(logText.contains("is gone"), "no lost worker in the log:\n\(coordinators.map { $0.tail(3000) }.joined(separator: "\n"))")
        #expect(logText.contains("saying HELLO again"), "no worker noticed the coordinator's death:\n\(workerTails)\n\(coordinators.map { $0.tail(3000) }.joined(separator: "\n"))")
        let chaos = try loadModel(path: run + "/model.safetensors").parameters
        let reference = try loadModel(path: tmp.path("clean/model.safetensors")).parameters
        #expect(chaos == reference, "weights differ from the clean run")
    }
}
