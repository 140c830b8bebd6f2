import Foundation
import Testing

/// A `ztrain` (or other) process in the background, its stderr in a file; ended by `stop()`.
final class BackgroundProcess {
    let process = Process()
    let errPath: String

    init(_ executable: String, _ args: [String], errPath: String) throws {
        self.errPath = errPath
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// Waits (up to `timeout` s) for a line of stderr containing `text`; returns it.
    func waitForLine(containing text: String, timeout: Double = 120, after: Int = 0) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let lines = stderr.split(separator: "\n")
            if let l = lines.dropFirst(after).first(where: { $0.contains(text) }) { return String(l) }
            if !process.isRunning { return nil }
            usleep(50_000)
        }
        return nil
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the exit.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A port nobody listens on now (bound to 0 and released).
func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: sin.sin_port))
}

/// An HTTP GET through python3's urllib (the body, or nil on any failure).
func fetchURL(_ url: String) -> String? {
    let r = try? runCommand("/usr/bin/env", ["python3", "-c", "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", url], timeout: 20)
    guard let r, r.status == 0 else { return nil }
    return r.stdout
}

@Suite struct ObserveCLITests {
    /// A real Prometheus scrapes a live 2-worker run and answers a PromQL query for the step counter, twice, increasing.
    @Test func prometheusScrapesLiveRun() throws {
        guard let prometheus = which("prometheus") else {
            try Test.cancel("prometheus is not installed; scripts/ensure-deps.sh --test (run by scripts/test) installs Debian's package")
        }
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = try BackgroundProcess(ztrainBinary().path, ["train", "--workers", "2", "--steps", "100000000", "--batch", "64",
                                                       "--metrics-bind", "127.0.0.1:0", "--out", tmp.path("run")],
                                 errPath: tmp.path("train.err"))
        defer { run.stop() }
        let line = try #require(run.waitForLine(containing: "metrics at http://"), "\(run.stderr)")
        let address = try #require(line.components(separatedBy: "http://").last?.components(separatedBy: "/metrics").first)
        let page = try #require(fetchURL("http://\(address)/metrics"))
        #expect(page.contains("ztrain_build_info{"), "\(page)")

        let port = freeTCPPort()
        let config = """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: ztrain
                static_configs:
                  - targets: ['\(address)']
            """
        try config.write(toFile: tmp.path("prometheus.yml"), atomically: true, encoding: .utf8)
        let prom = try BackgroundProcess(prometheus, ["--config.file=\(tmp.path("prometheus.yml"))", "--storage.tsdb.path=\(tmp.path("tsdb"))",
                                               "--web.listen-address=127.0.0.1:\(port)"], errPath: tmp.path("prometheus.err"))
        defer { prom.stop() }

        func query(_ q: String) -> [[String: Any]]? {
            let enc = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q
            guard let body = fetchURL("http://127.0.0.1:\(port)/api/v1/query?query=\(enc)"),
                  let obj = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  obj["status"] as? String == "success",
                  let data = obj["data"] as? [String: Any] else { return nil }
            return data["result"] as? [[String: Any]]
        }
        func steps() -> Double? {
            guard let r = query("ztrain_steps_total"), let v = r.first?["value"] as? [Any], let s = v.last as? String else { return nil }
            return Double(s)
        }
        var first: Double?
        var second: Double?
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && second == nil {
            if let v = steps(), v > 0 {
                if let f = first { if v > f { second = v } } else { first = v }
            }
            if !prom.process.isRunning || !run.process.isRunning { break }
            usleep(500_000)
        }
        let a = try #require(first, "Prometheus never answered ztrain_steps_total > 0\n\(prom.stderr.suffix(2000))\n\(run.stderr.suffix(2000))")
        let b = try #require(second, "the step counter did not move after \(a)")
        #expect(b > a)
        let heard = query("ztrain_worker_last_heard_seconds") ?? []
        #expect(heard.count == 2, "one last-heard series per live worker: \(heard)")
        #expect(!((query("ztrain_worker_step_seconds_count") ?? []).isEmpty))
    }

    /// The tensorboard package reads ztrain's scalars back and finds the losses of metrics.jsonl.
    @Test func tensorBoardReadsScalarsBack() throws {
        let python = try tensorboardPython()
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--workers", "2", "--epochs", "4", "--batch", "64", "--tensorboard", tmp.path("tb"),
                               "--log-every", "1", "--out", tmp.path("run"), "--quiet"], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let script = """
            import json, sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
            ea.Reload()
            print(json.dumps({t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}))
            """
        let read = try runCommand(python, ["-c", script, tmp.path("tb")], timeout: 120)
        #expect(read.status == 0, "\(read.stderr)")
        let tags = try #require(JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: [[Double]]], "\(read.stdout)")
        for t in ["step/loss", "step/learning_rate", "step/gradient_norm", "step/samples_per_second", "step/wait_seconds",
                  "epoch/loss", "epoch/samples_per_second"] {
            #expect(tags[t] != nil, "tag \(t) missing: \(tags.keys.sorted())")
        }
        let lines = try String(contentsOfFile: tmp.path("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let epochs = lines.filter { $0["kind"] == nil }
        let steps = lines.filter { $0["kind"] as? String == "step" }
        #expect(epochs.count == 4)
        #expect(steps.count == (4 * 16))
        func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-6 * max(1e-3, abs(b)) }
        let tbEpochs = tags["epoch/loss"] ?? []
        #expect(tbEpochs.count == epochs.count)
        for (e, tb) in zip(epochs, tbEpochs) {
            #expect(Int(tb[0]) == (e["step"] as? Int))
            #expect(close(tb[1], (e["loss"] as? Double) ?? .nan), "epoch loss \(tb[1]) vs \(e)")
        }
        let tbSteps = tags["step/loss"] ?? []
        #expect(tbSteps.count == steps.count)
        for (s, tb) in zip(steps, tbSteps) {
            #expect(Int(tb[0]) == (s["step"] as? Int))
            #expect(close(tb[1], (s["loss"] as? Double) ?? .nan), "step loss \(tb[1]) vs \(s)")
            #expect((s["time"] as? String) != nil)
        }
    }

    /// A SIGSTOPped worker is named in the hang report; SIGUSR1 prints the straggler report.
    @Test func hangReportNamesStoppedWorker() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let threshold = 1.0
        let run = try BackgroundProcess(ztrainBinary().path, ["train", "--workers", "2", "--steps", "100000000", "--batch", "64",
                                                       "--liveness", "120", "--retry-after", "120", "--no-speculation",
                                                       "--hang-after", String(threshold), "--out", tmp.path("run")],
                                 errPath: tmp.path("train.err"))
        var stopped: Int32 = 0
        defer {
            if stopped != 0 { kill(stopped, SIGCONT) }
            run.stop()
        }
        let started = try #require(run.waitForLine(containing: "local worker(s): pids"), "\(run.stderr)")
        let pids = started.components(separatedBy: "pids ").last?.components(separatedBy: ",").first?.split(separator: " ").compactMap { Int32($0) } ?? []
        #expect(pids.count == 2, "\(started)")
        #expect((run.waitForLine(containing: "training with 2 worker(s)")) != nil, "\(run.stderr)")
        usleep(300_000)
        kill(run.process.processIdentifier, SIGUSR1)
        #expect(run.waitForLine(containing: "straggler report") != nil, "\(run.stderr)")
        let victim = try #require(pids.last)
        let before = run.stderr.split(separator: "\n").count
        kill(victim, SIGSTOP)
        stopped = victim
        let hang = try #require(run.waitForLine(containing: "waiting for worker", timeout: 60, after: before), "\(run.stderr)")
        #expect(hang.contains("pid \(victim)"), "\(hang)")
        #expect(!(hang.contains("pid \(pids[0])")), "only the stopped worker is waited for: \(hang)")
        #expect(hang.contains("leaves "), "\(hang)")
        let waited = Double(hang.components(separatedBy: "has waited ").last?.split(separator: " ").first ?? "") ?? -1
        #expect(waited >= threshold, "\(hang)")
    }

    /// A 2-worker trace: tracks named by host and pid, and no two spans on one row partially overlap;
    /// summary.json says why the run ended and which commit built ztrain.
    @Test func timelineRowsAndRunIdentity() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["train", "--workers", "2", "--epochs", "20", "--batch", "64", "--timeline", tmp.path("trace.json"),
                               "--out", tmp.path("run"), "--quiet"], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("trace.json")))) as? [String: Any])
        let events = try #require(obj["traceEvents"] as? [[String: Any]])
        let names = events.filter { $0["name"] as? String == "process_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(names.count == 3, "\(names)")
        for n in names { #expect((n.range(of: #"\(\S+ pid \d+\)$"#, options: .regularExpression)) != nil, "\(n)") }
        var rows: [String: [(Int64, Int64)]] = [:]
        for e in events where e["ph"] as? String == "X" {
            let ts = Int64((((e["ts"] as? NSNumber)?.doubleValue ?? 0) * 1000).rounded())
            let dur = Int64((((e["dur"] as? NSNumber)?.doubleValue ?? 0) * 1000).rounded())
            rows["\(e["pid"] ?? 0)/\(e["tid"] ?? 0)", default: []].append((ts, ts + dur))
        }
        var partial = 0, spans = 0
        for (_, list) in rows {
            spans += list.count
            var open: [Int64] = []
            for (s, e) in list.sorted(by: { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 > $1.1 }) {
                while let last = open.last, last <= s { open.removeLast() }
                if let last = open.last, e > last { partial += 1 }
                open.append(e)
            }
        }
        #expect(spans > 1000)
        #expect(partial == 0, "spans on one row that partially overlap")
        let summary = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("run/summary.json")))) as? [String: Any])
        #expect((summary["exit_reason"] as? String) == "epoch_limit")
        if FileManager.default.fileExists(atPath: repoRoot().appendingPathComponent(".git").path) {
            let commit = try #require(summary["git_commit"] as? String, "\(summary)")
            #expect(commit.count == 40)
        }
        let text = try String(contentsOfFile: tmp.path("run/summary.json"), encoding: .utf8)
        #expect(!text.contains("\\/"), "no escaped slashes")
    }

    /// `ztrain stress --metrics-bind` counts its rounds in ztrain_steps_total while it runs.
    @Test func stressServesMetrics() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = try BackgroundProcess(ztrainBinary().path, ["stress", "--workers", "2", "--params", "1000", "--rounds", "100000000",
                                                              "--metrics-bind", "127.0.0.1:0"], errPath: tmp.path("stress.err"))
        defer { run.stop() }
        let line = try #require(run.waitForLine(containing: "metrics at http://"), "\(run.stderr)")
        let address = try #require(line.components(separatedBy: "http://").last?.components(separatedBy: "/metrics").first)
        var rounds = 0.0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && rounds == 0 && run.process.isRunning {
            let page = fetchURL("http://\(address)/metrics") ?? ""
            if let l = page.split(separator: "\n").first(where: { $0.hasPrefix("ztrain_steps_total ") }) {
                rounds = Double(l.split(separator: " ").last ?? "") ?? 0
            }
            usleep(300_000)
        }
        #expect(rounds > 0, "\(run.stderr)")
    }

    /// The Python of a throwaway virtual environment with tensorboard (made once per machine, in the temp folder).
    private func tensorboardPython() throws -> String {
        let venv = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-tensorboard-venv").path
        let python = venv + "/bin/python"
        if FileManager.default.isExecutableFile(atPath: python),
           (try? runCommand(python, ["-c", "import tensorboard"], timeout: 60))?.status == 0 {
            return python
        }
        guard which("python3") != nil else { try Test.cancel("python3 is not installed: cannot make a virtual environment for tensorboard") }
        let staging = venv + "-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let make = try runCommand("/usr/bin/env", ["python3", "-m", "venv", staging], timeout: 120)
        guard make.status == 0 else { try Test.cancel("python3 -m venv failed (python3-venv missing?): \(make.stderr.suffix(500))") }
        let pip = try runCommand(staging + "/bin/pip", ["install", "-q", "--disable-pip-version-check", "tensorboard"], timeout: 600)
        guard pip.status == 0 else { try Test.cancel("tensorboard could not be installed from PyPI (offline?): \(pip.stderr.suffix(500))") }
        // another test process may have finished first: either copy works
        if rename(staging, venv) != 0 && !FileManager.default.isExecutableFile(atPath: python) {
            try Test.cancel("could not move the tensorboard virtual environment into \(venv)")
        }
        return FileManager.default.isExecutableFile(atPath: python) ? python : staging + "/bin/python"
    }
}
