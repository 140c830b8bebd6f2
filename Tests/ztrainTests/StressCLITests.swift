import Foundation
import Testing

@Suite("ztrain stress CLI")
struct StressCLITests {
    @Test("--aggregation sharded --processes: exact, the summary's sharded and bytes lines, the JSON's per-process bytes")
    func shardedProcesses() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let r = try runZtrain(["stress", "--aggregation", "sharded", "--processes", "--pregenerate", "--workers", "3", "--params", "12288",
                               "--rounds", "10", "--slice-floats", "4096", "--json", tmp.path("s.json"), "--quiet"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("3 worker processes, sharded, P = 12288"), "\(r.stdout)")
        #expect(r.stdout.contains("sharded       tables 1, attempts redone 0"), "\(r.stdout)")
        #expect(r.stdout.contains("bytes/round   coordinator in"), "\(r.stdout)")
        #expect(r.stdout.contains("result        PASS"))
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("s.json")))) as? [String: Any])
        let bytes = try #require(root["bytes_per_round"] as? [String: Any])
        let workers = try #require(bytes["workers"] as? [[String: Any]])
        #expect(workers.count == 3)
        // each worker: 2 NODEs and 2 SLICEs of 4096 floats out and in per round (the floor), plus headers
        let floor = try #require(bytes["floor_bytes"] as? Double)
        for w in workers {
            let out = try #require(w["bytes_out"] as? Double), inn = try #require(w["bytes_in"] as? Double)
            #expect(out >= floor && inn >= floor && max(out, inn) <= 1.1 * floor + 2048, "\(w)")
        }
        #expect((root["config"] as? [String: Any])?["aggregation"] as? String == "sharded")
    }

    @Test("--aggregation is star or sharded; sharded refuses --reorder")
    func flags() throws {
        let bad = try runZtrain(["stress", "--aggregation", "ring", "--workers", "2", "--params", "10", "--rounds", "1"])
        #expect(bad.status == 64 && bad.stderr.contains("error:"), "\(bad.stderr)")
        let reorder = try runZtrain(["stress", "--aggregation", "sharded", "--reorder", "--workers", "2", "--params", "10", "--rounds", "1"])
        #expect(reorder.status == 64 && reorder.stderr.contains("--reorder"), "\(reorder.stderr)")
    }
}
