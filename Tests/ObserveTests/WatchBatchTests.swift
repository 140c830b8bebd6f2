import Foundation
import Logging
@testable import Observe
@testable import Training
import Support
import Testing

/// Values appended from another thread.
private final class Collected: @unchecked Sendable {
    // @unchecked: `values` is guarded by `lock`.
    private let lock = Lock()
    private var stored: [Int] = []
    func append(_ v: Int) { lock.withLock { stored.append(v) } }
    var values: [Int] { lock.withLock { stored } }
}

@Suite struct BackgroundQueueTests {
    @Test func runsInOrderDrainsAndStops() {
        let q = BackgroundQueue(limit: 2)
        let seen = Collected()
        // more jobs than the limit: async waits for room instead of dropping any
        for i in 0..<200 { q.async { seen.append(i) } }
        q.sync()
        #expect(seen.values == Array(0..<200))
        q.async { seen.append(200) }
        q.stop()
        #expect(seen.values == Array(0...200))
        // after stop: dropped, and nothing waits
        q.async { seen.append(-1) }
        q.sync()
        q.stop()
        #expect(seen.values.count == 201)
    }
}

@Suite struct RunWatchBatchTests {
    /// Steps and epochs are handed in batches, yet `metrics.jsonl` keeps their order, and an epoch's
    /// line carries the time it ended (not the time it was written).
    @Test func stepAndEpochLinesKeepTheirOrder() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-watch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dir = try RunDirectory(path: path)
        let watch = try RunWatch(options: WatchOptions(logEvery: 2), directory: dir, mode: "test", coordinator: false,
                                 logger: Logger(label: "test"))
        #expect(watch.writesEpochLines)
        var step = 0
        for epoch in 1...3 {
            for _ in 0..<4 {
                step += 1
                watch.step(StepRecord(step: step, epoch: epoch, loss: 0.5 / Double(step), learningRate: 0.01, gradNorm: 1, windows: 8,
                                      samples: 8 * step, samplesPerSecond: 1000))
            }
            watch.epoch(EpochMetrics(epoch: epoch, step: step, samples: 32, trainLoss: 0.1, loss: 0.1, valLoss: nil, samplesPerSecond: 1000,
                                     epochSeconds: 0.01, wallSeconds: 0.01, gradNorm: 1))
        }
        #expect(watch.close() == nil)
        let lines = try String(contentsOfFile: path + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let objects = try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let kinds = objects.map { ($0["kind"] as? String ?? "epoch") + " \($0["step"] as? Int ?? -1)" }
        #expect(kinds == ["step 2", "step 4", "epoch 4", "step 6", "step 8", "epoch 8", "step 10", "step 12", "epoch 12"])
        for o in objects where o["kind"] == nil {
            let time = try #require(o["time"] as? String)
            #expect(time.count == 20 && time.hasSuffix("Z"), "\(time)")
        }
    }
}
