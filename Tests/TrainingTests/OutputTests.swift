import Checkpoint
import Foundation
import Testing
import RNN
import Series
@testable import Training

@Suite("Run outputs")
struct OutputTests {
    @Test func runDirectoryWritesEveryFile() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-out-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let config = referenceConfig(hidden: 8, epochs: 2)
        let t = try InProcessTrainer(config: config, series: try Series.sincos())
        let dir = try RunDirectory(path: tmp.appendingPathComponent("nested/run").path)
        let r = try t.run { if case .epoch(let m) = $0 { try? dir.append(m) } }
        try dir.writeModel(parameters: r.parameters, config: config)
        try dir.writeLossPlot(title: "test")
        let lines = try String(contentsOf: dir.metricsURL, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        for key in ["epoch", "loss", "train_loss", "samples_per_second", "wall_seconds", "step"] {
            #expect(first[key] != nil, "metrics line lacks \(key)")
        }
        let model = try loadModel(path: dir.modelURL.path, expecting: config.model)
        #expect(model.parameters == r.parameters)
        let svg = try String(contentsOf: dir.lossPlotURL, encoding: .utf8)
        #expect(svg.contains("<svg") && svg.contains("polyline"))
    }

    @Test func forecastRollsOutFromTheGivenPoint() throws {
        let series = try Series.sincos()
        let config = referenceConfig(hidden: 8, epochs: 3)
        let t = try InProcessTrainer(config: config, series: series)
        let r = try t.run()
        let f = Forecast.make(config: config.model, parameters: r.parameters, series: series, rolloutFrom: 100, steps: 50)
        #expect(f.oneStep.count == 996 * 2 && f.rollout.count == 100)
        #expect(f.rolloutStart == 104)
        // the first rollout point is the one-step prediction of window 100
        #expect(Array(f.rollout[0..<2]) == Array(f.oneStep[200..<202]))
        #expect(abs(f.oneStepMSE - r.finalLoss) < 1e-6)
        #expect(f.charts(series: series).count == 4)
        let mean = f.oneStepMSEPerChannel.reduce(0, +) / 2
        #expect(abs(mean - f.oneStepMSE) < 1e-12 && f.oneStepMSEPerChannel[0] != f.oneStepMSEPerChannel[1])
    }
}
