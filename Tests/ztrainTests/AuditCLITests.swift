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
        #expect(!coordinator.isRunning, "the coordinator did not finish")
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
}
