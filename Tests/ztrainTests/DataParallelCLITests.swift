import Checkpoint
import Foundation
import RNN
import Testing

/// Whether this machine can build network namespaces (root and iproute2), and why not.
let netnsAvailability: (ok: Bool, why: String) = {
    guard geteuid() == 0 else { return (false, "not root: ip netns needs root") }
    guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip")
            || FileManager.default.isExecutableFile(atPath: "/usr/bin/ip") else { return (false, "iproute2 (ip) is not installed") }
    return (true, "")
}()

func repoRoot() -> URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

func pidAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno != ESRCH }

@Suite("Data-parallel from the command line")
struct DataParallelCLITests {
    @Test func twoWorkersGiveTheSameWeightsAsInProcess() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--hidden", "16", "--steps", "200", "--batch", "32", "--micro-batch", "4", "--quiet"]
        let a = try runZtrain(["train", "--in-process", "--out", tmp.path("a")] + common)
        let b = try runZtrain(["train", "--workers", "2", "--out", tmp.path("b")] + common)
        let c = try runZtrain(["train", "--workers", "3", "--threads", "2", "--out", tmp.path("c")] + common)
        for r in [a, b, c] { #expect(r.status == 0, "\(r.stderr)") }
        let wa = try loadModel(path: tmp.path("a/model.safetensors"), expecting: nil).parameters
        let wb = try loadModel(path: tmp.path("b/model.safetensors"), expecting: nil).parameters
        let wc = try loadModel(path: tmp.path("c/model.safetensors"), expecting: nil).parameters
        #expect(wa == wb && wa == wc)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("b/summary.json")))) as? [String: Any])
        let workers = try #require(summary["workers"] as? [[String: Any]])
        #expect(workers.count == 2)
        #expect(summary["mode"] as? String == "data-parallel")
        let metrics = try String(contentsOfFile: tmp.path("b/metrics.jsonl"), encoding: .utf8)
        #expect(metrics.contains("\"timing\"") && metrics.contains("\"bytes_out\""))
        for w in workers { if let pid = w["pid"] as? Int { #expect(!pidAlive(Int32(pid)), "worker \(pid) still running") } }
    }

    /// Full batch with a target: the next step measures each epoch's loss, in-process and with
    /// two workers alike, so both stop at the same epoch with the same bytes and the same losses.
    @Test func divergenceIsTheSameDiagnosisAndStatusInEveryMode() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--activation", "relu", "--seq-len", "400", "--lr", "1", "--steps", "50"]
        let a = try runZtrain(["train", "--in-process", "--out", tmp.path("a")] + common)
        let b = try runZtrain(["train", "--workers", "2", "--out", tmp.path("b")] + common, timeout: 120)
        func diagnosis(_ stderr: String) -> String? {
            stderr.split(separator: "\n").first { $0.hasPrefix("error: training diverged") }
                .map { String($0.prefix { $0 != "(" }) }
        }
        #expect(a.status == 1 && b.status == 1, "\(a.stderr)\n\(b.stderr)")
        #expect(diagnosis(a.stderr) != nil && diagnosis(a.stderr) == diagnosis(b.stderr), "\(a.stderr)\n\(b.stderr)")
        #expect(!b.stderr.contains("every worker was lost"))
    }

    @Test func fullBatchRunsStopAtTheSameEpochWithTheSameBytes() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let common = ["--hidden", "16", "--batch", "996", "--micro-batch", "250", "--epochs", "60",
                      "--target-loss", "0.03", "--quiet"]
        let a = try runZtrain(["train", "--in-process", "--out", tmp.path("a")] + common)
        let b = try runZtrain(["train", "--workers", "2", "--out", tmp.path("b")] + common)
        for r in [a, b] { #expect(r.status == 0, "\(r.stderr)") }
        let bytesA = try Data(contentsOf: URL(fileURLWithPath: tmp.path("a/model.safetensors")))
        let bytesB = try Data(contentsOf: URL(fileURLWithPath: tmp.path("b/model.safetensors")))
        #expect(bytesA == bytesB)
        func lines(_ run: String) throws -> [[String: Any]] {
            try String(contentsOfFile: tmp.path("\(run)/metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
        let la = try lines("a"), lb = try lines("b")
        let lossA = la.compactMap { $0["loss"] as? Double }, lossB = lb.compactMap { $0["loss"] as? Double }
        #expect(lossA.count == la.count && lossA == lossB)
        #expect(lossA.count > 1 && lossA.count < 60 && (lossA.last ?? 1) < 0.03)
        // every epoch but the last has the next step's loss: the next epoch's train loss
        let trainA = la.compactMap { $0["train_loss"] as? Double }
        #expect(Array(lossA.dropLast()) == Array(trainA.dropFirst()))
        for run in ["a", "b"] {
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("\(run)/summary.json")))) as? [String: Any])
            #expect(summary["target_reached"] as? Bool == true && summary["epochs"] as? Int == lossA.count, "\(run)")
        }
    }

    /// `--timeline` writes a Chrome trace: valid JSON, one named track per process, and the
    /// compute, send, wait, reduce and optimizer spans.
    @Test func timelineIsAChromeTraceWithEveryProcessAndSpanKind() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--workers", "2", "--steps", "30", "--batch", "64", "--quiet",
                               "--out", tmp.path("run"), "--timeline", tmp.path("trace.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: tmp.path("trace.json")))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let events = try #require(root["traceEvents"] as? [[String: Any]])
        let spans = events.filter { $0["ph"] as? String == "X" }
        let names = events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "process_name" }
            .compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        // named by role, host and pid: "coordinator (HOST pid N)", "worker 1 (HOST pid N)"
        #expect(Set(names.map { $0.components(separatedBy: " (").first ?? $0 }) == ["coordinator", "worker 1", "worker 2"], "process names: \(names)")
        #expect(names.allSatisfy { $0.range(of: #" \(\S+ pid \d+\)$"#, options: .regularExpression) != nil }, "process names: \(names)")
        let pids = Set(spans.compactMap { $0["pid"] as? Int })
        #expect(pids.count == 3, "spans of processes \(pids)")
        let kinds = Set(spans.compactMap { $0["name"] as? String })
        #expect(kinds == ["compute", "send", "wait", "reduce", "optimizer"], "span kinds: \(kinds)")
        for pid in pids.subtracting([1]) {
            let mine = Set(spans.filter { $0["pid"] as? Int == pid }.compactMap { $0["name"] as? String })
            #expect(mine.isSuperset(of: ["compute", "send", "wait"]), "worker track \(pid): \(mine)")
        }
        #expect(spans.allSatisfy { ($0["dur"] as? Double ?? -1) >= 0 && $0["ts"] is Double })
        let steps = Set(spans.compactMap { ($0["args"] as? [String: Any])?["step"] as? Int })
        #expect(steps.count == 30)
    }

    @Test func sigtermStopsTheWholeJobAndLeavesNoProcess() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let p = Process()
        p.executableURL = ztrainBinary()
        p.arguments = ["train", "--workers", "2", "--epochs", "100000", "--out", tmp.path("run"), "--quiet"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // wait until an epoch has been written: the workers are up and training
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: tmp.path("run/metrics.jsonl"), encoding: .utf8), s.contains("epoch") { break }
            usleep(50_000)
        }
        let children = childPIDs(of: p.processIdentifier)
        #expect(children.count == 2, "expected 2 workers, found \(children)")
        kill(p.processIdentifier, SIGTERM)
        let stopBy = Date().addingTimeInterval(20)
        while p.isRunning && Date() < stopBy { usleep(20_000) }
        #expect(!p.isRunning, "the launcher did not stop on SIGTERM")
        p.waitUntilExit()
        #expect(p.terminationStatus == 128 + SIGTERM)
        for c in children { #expect(!pidAlive(c), "worker \(c) left behind") }
        #expect(FileManager.default.fileExists(atPath: tmp.path("run/model.safetensors")), "last weights not saved")
    }

    @Test func mismatchedWorkersAreRefusedWithAClearMessage() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let endpoint = "ipc://\(tmp.path("c.sock"))"
        let coord = Process()
        coord.executableURL = ztrainBinary()
        coord.arguments = ["coordinator", "--bind", endpoint, "--workers", "1", "--steps", "5", "--out", tmp.path("run"), "--quiet"]
        coord.standardOutput = FileHandle.nullDevice
        coord.standardError = FileHandle.nullDevice
        try coord.run()
        defer {
            if coord.isRunning { kill(coord.processIdentifier, SIGTERM) }
            coord.waitUntilExit()
        }
        let hidden = try runZtrain(["worker", "--connect", endpoint, "--hidden", "64", "--connect-timeout", "20"], timeout: 30)
        #expect(hidden.exitedNormally && hidden.status == 1)
        #expect(hidden.stderr.contains("worker expects --hidden 64 but the run has hidden 32"), "\(hidden.stderr)")
        let version = try runZtrain(["worker", "--connect", endpoint, "--protocol-version", "1", "--connect-timeout", "20"], timeout: 30)
        #expect(version.exitedNormally && version.status == 1)
        #expect(version.stderr.contains("protocol version 1") && version.stderr.contains("speaks 3"), "\(version.stderr)")
        // a matching worker still trains the run to its end
        let good = try runZtrain(["worker", "--connect", endpoint, "--hidden", "32", "--connect-timeout", "20"], timeout: 60)
        #expect(good.status == 0, "\(good.stderr)")
        let stopBy = Date().addingTimeInterval(20)
        while coord.isRunning && Date() < stopBy { usleep(20_000) }
        #expect(!coord.isRunning && coord.terminationStatus == 0)
    }

    @Test(.enabled(if: netnsAvailability.ok, "network namespaces need root and iproute2"))
    func trainsAcrossThreeNetworkNamespaces() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let script = repoRoot().appendingPathComponent("scripts/netns-train.sh").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script, ztrainBinary().path, tmp.path("run"), "--target-loss", "1e-4", "--epochs", "200", "--quiet"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let stderr = String(decoding: errData, as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("run/summary.json")))) as? [String: Any])
        #expect(summary["target_reached"] as? Bool == true)
        #expect((summary["final_loss"] as? Double ?? 1) < 1e-4)
    }
}

extension DataParallelCLITests {
    /// Four hosts (a coordinator and three workers in network namespaces), CURVE on, every link shaped
    /// with `tc tbf` and 2 ms of latency each way from a user-space proxy: the same bits as a local run.
    @Test(.enabled(if: netnsAvailability.ok && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"),
                   "network namespaces need root and iproute2; the delay proxy needs python3"))
    func shapedFourHostCurveRunIsBitIdenticalToLocal() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let flags = ["--target-loss", "1e-4", "--epochs", "200", "--quiet"]
        let script = repoRoot().appendingPathComponent("scripts/netns-train.sh").path
        let r = try runCommand("/bin/bash", [script, ztrainBinary().path, tmp.path("cluster")] + flags,
                               environment: ["HOSTS": "4", "CURVE": "1", "RATE": "50mbit", "DELAY_MS": "2"], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("3 workers") && r.stderr.contains("curve 1, rate 50mbit, delay 2 ms"), "\(r.stderr)")
        let local = try runZtrain(["train", "--in-process", "--out", tmp.path("local")] + flags)
        #expect(local.status == 0, "\(local.stderr)")
        let a = try Data(contentsOf: URL(fileURLWithPath: tmp.path("cluster/model.safetensors")))
        let b = try Data(contentsOf: URL(fileURLWithPath: tmp.path("local/model.safetensors")))
        #expect(a == b, "the shaped 4-host run's weights differ from the local run's")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("cluster/summary.json")))) as? [String: Any])
        #expect((summary["workers"] as? [Any])?.count == 3)
        // 2 ms each way through the proxies: a step cannot be faster than the round trip
        let seconds = summary["train_seconds"] as? Double ?? 0, steps = summary["steps"] as? Int ?? 1
        #expect(seconds / Double(steps) > 0.004, "\(seconds) s for \(steps) steps: the delay was not applied")
    }
}

/// Direct children of a process, from /proc.
func childPIDs(of parent: Int32) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap(Int32.init).filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[1]) == parent
    }
}
