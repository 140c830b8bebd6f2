import Foundation
import Testing

/// Every process below `root` (children, grandchildren, …).
func descendantPIDs(of root: Int32) -> [Int32] {
    var out: [Int32] = []
    var frontier = [root]
    while let p = frontier.popLast() {
        let kids = childPIDs(of: p)
        out += kids
        frontier += kids
    }
    return out
}

@Suite("ztrain bench")
struct BenchCLITests {
    @Test func quickBenchReportsEveryTarget() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let md = tmp.path("BENCHMARKS.md")
        try "# Mine\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\n## Notes\n\nkeep me\n".write(toFile: md, atomically: true, encoding: .utf8)
        let r = try runZtrain(["bench", "--quick", "--json", tmp.path("bench.json"), "--markdown", md, "--quiet"], timeout: 300)
        #expect(r.exitedNormally && r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("goals met"), "no table: \(r.stdout)")

        let data = try Data(contentsOf: URL(fileURLWithPath: tmp.path("bench.json")))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let machine = try #require(root["machine"] as? [String: Any])
        for key in ["cpu", "cores", "flags", "os", "swift"] { #expect(machine.keys.contains(key), "machine lacks \(key)") }
        let results = try #require(root["results"] as? [[String: Any]])
        let targets = Set(results.compactMap { ($0["target"] as? String)?.prefix(1) }.map(String.init))
        // the targets (10 and 11 count as "1"), the real-series figures (csv: parsing rate and memory; series:
        // many series), the audit's cost (audit: H=32 and H=256) and a dedicated owner's memory (owner)
        #expect(targets == Set((1...9).map(String.init) + ["c", "s", "a", "o"]), "targets: \(targets.sorted())")
        // 15, targets 10a-b (against gloo) and 11a-c (bytes), each for the star and sharded, the audit's four (0.05 and
        // the default, H=32 and H=256) and the owner's memory
        #expect(results.count == 30)
        #expect(results.contains { $0["name"] as? String == "owner-memory" })
        #expect(Set(results.compactMap { $0["name"] as? String }).isSuperset(of: ["round-10m-vs-gloo", "round-1m-4w-vs-gloo", "bytes-busiest-n2", "bytes-busiest-n3", "bytes-busiest-n4", "audit-overhead-h32", "audit-overhead-h256", "audit-default-h32", "audit-default-h256"]))
        #expect(Set(results.compactMap { $0["name"] as? String }).isSuperset(of: ["csv-parse", "csv-peak-memory", "many-series-workers2"]))
        for entry in results {
            for key in ["name", "value", "unit", "baseline", "ratio", "goal", "met"] {
                #expect(entry.keys.contains(key), "\(entry["name"] ?? "?") lacks \(key)")
            }
            #expect(entry["error"] is NSNull, "\(entry["name"] ?? "?") failed: \(entry["error"] ?? "")")
            #expect(entry["value"] is NSNumber, "\(entry["name"] ?? "?") has no value")
        }
        let floors = try #require(root["floors"] as? [[String: Any]])
        #expect(floors.count == 5)

        let text = try String(contentsOfFile: md, encoding: .utf8)
        #expect(text.hasPrefix("# Mine\n"))
        #expect(text.hasSuffix("## Notes\n\nkeep me\n"))
        #expect(!text.contains("\nold\n"))
        #expect(text.contains("| 8b |"))
    }

    @Test func glooBaselineComesFromTheScriptInTheSameRunOrIsUnavailable() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        // a stand-in for scripts/pytorch_baseline.py --allreduce: its JSON line, whatever the sizes
        let fake = tmp.path("fake_baseline.sh")
        try #"echo '{"mode": "gloo_allreduce", "p50_ms": 1000, "torch": "stand-in"}'"#.write(toFile: fake, atomically: true, encoding: .utf8)
        let r = try runZtrain(["bench", "--quick", "--only", "round-vs-gloo", "--python", "/bin/sh", "--baseline-script", fake,
                               "--json", tmp.path("b.json"), "--quiet"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("b.json")))) as? [String: Any])
        let results = try #require(root["results"] as? [[String: Any]])
        #expect(results.compactMap { $0["target"] as? String } == ["10a", "10a", "10b", "10b"])
        for entry in results {
            #expect(entry["baseline"] as? Double == 1000, "\(entry)")
            #expect(entry["baseline_source"] as? String == "same-run")
            #expect(entry["ratio"] is NSNumber && entry["met"] is Bool)
            #expect((entry["detail"] as? String)?.contains("torch stand-in") == true)
        }

        // a Python that fails: the baseline is unavailable and says why; ztrain's figure stays
        let broken = tmp.path("broken.sh")
        try "echo \"ModuleNotFoundError: No module named 'torch'\" >&2; exit 1\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let u = try runZtrain(["bench", "--quick", "--only", "10", "--python", "/bin/sh", "--baseline-script", broken,
                               "--json", tmp.path("u.json"), "--quiet"], timeout: 120)
        #expect(u.status == 0, "\(u.stderr)")
        let uroot = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("u.json")))) as? [String: Any])
        for entry in try #require(uroot["results"] as? [[String: Any]]) {
            #expect(entry["baseline"] is NSNull && entry["met"] is NSNull && entry["value"] is NSNumber, "\(entry)")
            #expect((entry["baseline_name"] as? String)?.contains("baseline unavailable") == true, "\(entry)")
            #expect((entry["baseline_name"] as? String)?.contains("cannot import torch") == true, "\(entry)")
        }
        #expect(u.stdout.contains("unavailable"))
    }

    @Test func onlySelectsAndBadFlagsAreUsageErrors() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["bench", "--quick", "--only", "memcpy,gemm", "--json", tmp.path("b.json"), "--quiet"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("b.json")))) as? [String: Any])
        #expect((root["results"] as? [Any])?.isEmpty == true)
        #expect((root["floors"] as? [Any])?.count == 3)

        for (args, needle) in [(["bench", "--only", "nine"], "unknown benchmark 'nine'"),
                               (["bench", "--pytorch-json", tmp.path("missing.json")], "--pytorch-json"),
                               (["bench", "--json", "/nonexistent-ztrain-dir/b.json"], "does not exist"),
                               (["bench", "--no-such-flag"], "no-such-flag")] {
            let bad = try runZtrain(args, timeout: 60)
            #expect(bad.exitedNormally && bad.status == 64, "\(args): status \(bad.status)")
            #expect(bad.stderr.contains(needle), "\(args): \(bad.stderr)")
        }
        let garbage = tmp.path("garbage.json")
        try "[1, 2]".write(toFile: garbage, atomically: true, encoding: .utf8)
        let g = try runZtrain(["bench", "--pytorch-json", garbage], timeout: 60)
        #expect(g.status == 64 && g.stderr.contains("JSON object"), "\(g.stderr)")
    }

    @Test func interruptEndsEveryProcessItStarted() throws {
        let p = Process()
        p.executableURL = ztrainBinary()
        // not --quick: the first run of train --workers 2 lasts long enough to be interrupted
        p.arguments = ["bench", "--only", "workers-h32", "--quiet"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // wait for the coordinator and its two workers
        var seen: [Int32] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && p.isRunning {
            seen = descendantPIDs(of: p.processIdentifier)
            if seen.count >= 3 { break }
            usleep(20_000)
        }
        #expect(seen.count >= 3, "expected a coordinator and 2 workers, saw \(seen)")
        kill(p.processIdentifier, SIGINT)
        let stopBy = Date().addingTimeInterval(30)
        while p.isRunning && Date() < stopBy { usleep(20_000) }
        #expect(!p.isRunning, "the bench did not stop on SIGINT")
        p.waitUntilExit()
        #expect(p.terminationStatus == 128 + SIGINT)
        let settle = Date().addingTimeInterval(5)
        while seen.contains(where: pidAlive) && Date() < settle { usleep(20_000) }
        for c in seen { #expect(!pidAlive(c), "process \(c) left behind") }
    }
}
