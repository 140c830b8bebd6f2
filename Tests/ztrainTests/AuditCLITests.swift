import Checkpoint
import Foundation
import Testing

@Suite("Audit from the command line")
struct AuditCLITests {
    /// Three worker processes, one corrupting half its answers (`--fault-wrong-rate`): the audit
    /// quarantines it (summary.json names its pid, metrics.jsonl counts the mismatch) and the
    /// weights are the in-process run's bits, with both aggregations (sharded: the workers send the
    /// coordinator their answers' digests, the owners apply a step once its audit agrees).
    @Test(arguments: ["star", "sharded"])
    func aFaultyWorkerProcessIsQuarantinedAndTheWeightsStayExact(_ aggregation: String) throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--hidden", "16", "--steps", "60", "--batch", "32", "--micro-batch", "4", "--quiet"]
        let a = try runZtrain(["train", "--in-process", "--out", tmp.path("a")] + common)
        #expect(a.status == 0, "\(a.stderr)")
        let endpoint = "ipc://\(tmp.path("c.sock"))"
        func start(_ args: [String]) throws -> Process {
            let p = Process()
            p.executableURL = ztrainBinary()
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run()
            return p
        }
        let coordinator = try start(["coordinator", "--bind", endpoint, "--workers", "3", "--audit-rate", "0.2",
                                     "--aggregation", aggregation, "--out", tmp.path("b")] + common)
        let worker = ["worker", "--connect", endpoint, "--threads", "1", "--connect-timeout", "30"]
        let honest = try (0..<2).map { _ in try start(worker) }
        let faulty = try start(worker + ["--fault-wrong-rate", "0.5", "--fault-seed", "3"])
        let all = [coordinator, faulty] + honest
        defer {
            for p in all where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            for p in all { p.waitUntilExit() }
        }
        let deadline = Date().addingTimeInterval(120)
        while coordinator.isRunning && Date() < deadline { usleep(50_000) }
        try #require(!coordinator.isRunning, "the coordinator did not finish")  // (the defer ends every process)
        coordinator.waitUntilExit()
        #expect(coordinator.terminationStatus == 0)
        let wa = try loadModel(path: tmp.path("a/model.safetensors"), expecting: nil).parameters
        let wb = try loadModel(path: tmp.path("b/model.safetensors"), expecting: nil).parameters
        #expect(wa == wb, "the audited run's weights differ from the in-process run's")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("b/summary.json")))) as? [String: Any])
        let quarantined = try #require(summary["quarantined"] as? [[String: Any]])
        #expect(quarantined.count == 1)
        #expect(quarantined.first?["pid"] as? Int == Int(faulty.processIdentifier))
        #expect((quarantined.first?["reason"] as? String)?.contains("differ") == true)
        let metrics = try String(contentsOfFile: tmp.path("b/metrics.jsonl"), encoding: .utf8)
        #expect(metrics.contains("\"audit_mismatches\":1") || metrics.contains("\"audit_mismatches\" : 1"), "\(metrics.prefix(600))")
    }

    /// With CURVE, a quarantined worker's key leaves the coordinator's allow-list: a new process
    /// holding that key is refused (it cannot even connect), and the run ends with its honest workers.
    @Test func aQuarantinedWorkersCurveKeyIsRefusedWhenItComesBack() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        #expect(try runZtrain(["keygen", "--out", tmp.path("keys"), "coordinator", "worker", "worker-1"]).status == 0)
        let endpoint = "tcp://127.0.0.1:\(Int.random(in: 20_000...60_000))"
        let coordinator = try Background(["coordinator", "--bind", endpoint, "--workers", "3", "--curve-dir", tmp.path("keys"),
                                          "--audit-rate", "1", "--hidden", "16", "--steps", "400", "--batch", "32",
                                          "--micro-batch", "4", "--out", tmp.path("run"), "--join-timeout", "60"],
                                         log: tmp.path("coordinator.log"))
        defer { coordinator.stop() }
        let honest = try (1...2).map { i in
            try Background(["worker", "--connect", endpoint, "--curve-dir", tmp.path("keys"), "--threads", "1"], log: tmp.path("honest\(i).log"))
        }
        defer { for h in honest { h.stop() } }
        let faultyKey = ["--curve-server", tmp.path("keys/coordinator.key"), "--curve-secret", tmp.path("keys/worker-1.key_secret")]
        let faulty = try Background(["worker", "--connect", endpoint, "--threads", "1", "--fault-wrong-rate", "1"] + faultyKey,
                                    log: tmp.path("faulty.log"))
        defer { faulty.stop() }
        let deadline = Date().addingTimeInterval(60)
        while !coordinator.stderr.contains("removed from the allow-list") && coordinator.process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(coordinator.stderr.contains("removed from the allow-list"), "\(coordinator.stderr)")
        let again = try Background(["worker", "--connect", endpoint, "--threads", "1", "--connect-timeout", "3"] + faultyKey,
                                   log: tmp.path("again.log"))
        defer { again.stop() }
        #expect(again.wait(seconds: 30) && again.process.terminationStatus != 0, "the quarantined key got in: \(again.stderr)")
        #expect(coordinator.wait(seconds: 120), "the coordinator did not finish")
        #expect(coordinator.process.terminationStatus == 0, "\(coordinator.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("run/summary.json")))) as? [String: Any])
        let quarantined = try #require(summary["quarantined"] as? [[String: Any]])
        #expect(quarantined.count == 1 && quarantined.first?["pid"] as? Int == Int(faulty.process.processIdentifier))
        #expect((quarantined.first?["key"] as? String)?.isEmpty == false)
        #expect((summary["workers"] as? [Any])?.count == 3, "the returning key never joined")
    }
}
