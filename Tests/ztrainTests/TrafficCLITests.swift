import Foundation
import Testing

/// Every process's bytes per step on the epoch lines of metrics.jsonl (the coordinator's own count, the
/// workers' and shards' reported in TRAFFIC), and their totals in summary.json.
@Suite("Bytes per process per step")
struct TrafficCLITests {
    /// The epoch lines' `processes` (role, id, bytes in and out per step).
    static func processes(_ run: String) throws -> [[[String: Any]]] {
        let text = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["processes"] as? [[String: Any]]
        }
    }

    /// Star, two workers, one tree node each a step (P = 17 030), no speculative copies or audits: the
    /// coordinator takes in two GRADIENTs of 4·(P + 1) bytes a step, and each worker takes in an ASSIGN's
    /// weights, 4·P, and sends a GRADIENT (its counters go just ahead of its GRADIENT, so the coordinator
    /// holds them as of each step's start).
    @Test func aStarCoordinatorTakesInTwoGradientsAStep() throws {
        let tmp = try TempDir()
        defer { tmp.cleanup() }
        let run = tmp.path("star")
        let r = try runZtrain(["train", "--workers", "2", "--hidden", "128", "--batch", "40", "--micro-batch", "20", "--epochs", "3",
                               "--no-speculation", "--audit-rate", "0", "--quiet", "--out", run], timeout: 180)
        #expect(r.status == 0, "\(r.stderr)")
        let epochs = try Self.processes(run)
        #expect(epochs.count == 3, "\(epochs)")
        let last = try #require(epochs.last)
        let p = 4.0 * 17_030
        let coordinator = try #require(last.first { $0["role"] as? String == "coordinator" })
        let cin = coordinator["bytes_in_per_step"] as? Double ?? 0
        #expect(cin > 2 * p && cin < 2.3 * p, "coordinator in \(cin) a step, 2 × 4P = \(2 * p)")
        let workers = last.filter { $0["role"] as? String == "worker" }
        #expect(workers.count == 2, "\(last)")
        var sent = 0.0
        for w in workers {
            let i = w["bytes_in_per_step"] as? Double ?? 0, o = w["bytes_out_per_step"] as? Double ?? 0
            #expect(i > p && i < 1.2 * p && o > p && o < 1.2 * p, "worker in \(i), out \(o) a step, 4P = \(p)")
            sent += o
        }
        #expect(abs(sent - cin) < 0.05 * cin, "the workers sent \(sent) a step, the coordinator took in \(cin)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any])
        // the totals: what the workers say they sent, the coordinator took in (but their last step's answers)
        let records = (summary["workers"] as? [[String: Any]]) ?? []
        let totalSent = records.reduce(0) { $0 + ($1["process_bytes_out"] as? Int ?? 0) }
        let totalIn = summary["bytes_in"] as? Int ?? 0
        #expect(records.count == 2 && totalIn > 0 && Double(abs(totalSent - totalIn)) < 0.05 * Double(totalIn),
                "the workers sent \(totalSent) in all, the coordinator took in \(totalIn)")
    }
}
