import Checkpoint
import Foundation
import Logging
import Testing
import RNN
import Series
import Support
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

@Suite("Run folders: never overwritten by accident")
struct RunFolderTests {
    func tempDir() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-runfolder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    func message(_ body: () throws(TrainingError) -> RunDirectory) -> String {
        do { _ = try body(); return "created" } catch { return error.description }
    }

    @Test("a folder with a run is refused, replaced with --overwrite, kept when resuming")
    func existingRun() throws {
        let tmp = try tempDir()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let path = tmp.appendingPathComponent("run").path
        let d = try RunDirectory(path: path)
        try d.writeSummary(RunSummary(finalLoss: 1, finalValLoss: nil, epochs: 1, steps: 1, samples: 1, wallSeconds: 0,
                                      trainSeconds: 0, samplesPerSecond: 0, targetLoss: nil, targetReached: nil, mode: "x",
                                      threads: 1, parameters: 1, windows: 1, trainWindows: 1, validationWindows: 0,
                                      config: .init(model: .init(inputSize: 1, hiddenSize: 1, outputSize: 1, seqLen: 1),
                                                    optimizer: .init(kind: .adam, learningRate: 0.1), data: .sincos(points: 10, from: 0, to: 1),
                                                    batch: 1, microBatch: 1, epochs: 1, steps: nil, seed: 0, shuffle: true,
                                                    clipNorm: nil, targetLoss: nil, validationFraction: 0),
                                      model: "m", error: nil))
        try Data("<svg/>".utf8).write(to: URL(fileURLWithPath: path + "/predictions.svg"))
        let refused = message { () throws(TrainingError) in try RunDirectory(path: path) }
        #expect(refused.contains("already holds a run") && refused.contains("--overwrite"), "\(refused)")
        _ = try RunDirectory(path: path, existing: .resume)
        #expect(FileManager.default.fileExists(atPath: path + "/summary.json"))
        _ = try RunDirectory(path: path, existing: .overwrite)
        let left = try FileManager.default.contentsOfDirectory(atPath: path)
        #expect(left == ["metrics.jsonl"], "\(left)")

        // a folder of other files is never emptied
        let other = tmp.appendingPathComponent("other").path
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: other + "/notes.txt"))
        #expect(message { () throws(TrainingError) in try RunDirectory(path: other) }.contains("not empty"))
        #expect(message { () throws(TrainingError) in try RunDirectory(path: other, existing: .overwrite) }.contains("not a run's"))
        #expect(FileManager.default.fileExists(atPath: other + "/notes.txt"))
        // an empty folder is fine
        let empty = tmp.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        _ = try RunDirectory(path: empty)
    }

    @Test("default folders started in the same second are distinct")
    func uniqueDefault() throws {
        let tmp = try tempDir()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let parent = tmp.appendingPathComponent("runs").path
        let a = try RunDirectory.createUnique(parent: parent, stem: "20261128-030000")
        let b = try RunDirectory.createUnique(parent: parent, stem: "20261128-030000")
        let c = try RunDirectory.createUnique(parent: parent, stem: "20261128-030000")
        #expect(a.url.lastPathComponent == "20261128-030000")
        #expect(b.url.lastPathComponent == "20261128-030000-2")
        #expect(c.url.lastPathComponent == "20261128-030000-3")
    }

    @Test("metrics.jsonl lines carry time and lr; JSON slashes are not escaped")
    func metricsLine() throws {
        let tmp = try tempDir()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let d = try RunDirectory(path: tmp.appendingPathComponent("r").path)
        try d.append(EpochMetrics(epoch: 1, step: 2, samples: 3, trainLoss: 0.5, loss: 0.25, valLoss: nil, lr: 0.01,
                                  samplesPerSecond: 1, epochSeconds: 1, wallSeconds: 1, gradNorm: 1))
        let line = try String(contentsOf: d.metricsURL, encoding: .utf8)
        #expect(line.contains("\"lr\":0.01"), "\(line)")
        #expect(line.range(of: #""time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ""#, options: .regularExpression) != nil, "\(line)")
        let json = try JSONStyle.files.encode(["model": "/a/b"])
        #expect(String(decoding: json, as: UTF8.self) == #"{"model":"/a/b"}"#)
    }
}

@Suite("Progress line")
struct ProgressLineTests {
    @Test("parts are dropped by priority to fit, then cut; never wider than asked")
    func fit() {
        let parts: [(String, Int)] = [("epoch 3/100 step 96", 0), ("loss 1.0000e-03", 0), ("ETA 0:01:05", 1),
                                      ("45.3k samples/s", 2), ("[µs/step compute 100 wait 200 reduce 3 opt 4 bcast 5]", 4)]
        #expect(ProgressReporter.fit(parts, width: 200).contains("[µs/step"))
        let at79 = ProgressReporter.fit(parts, width: 79)
        #expect(at79 == "epoch 3/100 step 96  loss 1.0000e-03  ETA 0:01:05  45.3k samples/s")
        #expect(ProgressReporter.fit(parts, width: 40) == "epoch 3/100 step 96  loss 1.0000e-03")
        #expect(ProgressReporter.fit(parts, width: 10) == "epoch 3/10")
        for w in 1...200 { #expect(ProgressReporter.fit(parts, width: w).count <= w) }
    }

    @Test("durations as h:mm:ss")
    func durations() {
        #expect(formatDuration(0) == "0:00:00")
        #expect(formatDuration(65.4) == "0:01:05")
        #expect(formatDuration(3725) == "1:02:05")
        #expect(formatDuration(.infinity) == "?")
    }

    @Test("mid-epoch the line shows this epoch's loss, not the previous epoch's")
    func currentLoss() {
        final class Sink: @unchecked Sendable { var text = "" }
        let sink = Sink()
        let p = ProgressReporter(logger: Logger(label: "test"), live: true, totalEpochs: 10, totalSteps: nil,
                                 columns: { 120 }, output: { sink.text += $0 })
        p.handle(.epoch(EpochMetrics(epoch: 1, step: 4, samples: 8, trainLoss: 2, loss: 1, valLoss: nil, samplesPerSecond: 1,
                                     epochSeconds: 1, wallSeconds: 1, gradNorm: 1)))
        p.handle(.step(epoch: 2, step: 5, stepInEpoch: 1, stepsPerEpoch: 4, loss: 0.5, samplesPerSecond: 1))
        let last = sink.text.components(separatedBy: "\r").last ?? ""
        #expect(last.contains("epoch 2/10 step 5") && last.contains("loss 5.0000e-01"), "\(last)")
        #expect(last.range(of: #"ETA \d+:\d\d:\d\d"#, options: .regularExpression) != nil, "\(last)")
    }
}

@Suite("Local workers")
struct LocalWorkerNamingTests {
    @Test("a killed local worker is named by its pid, as the coordinator names it")
    func killedWorker() throws {
        let w = LocalWorkers(executable: URL(fileURLWithPath: "/bin/sh"), arguments: [["-c", "kill -9 $$"]])
        try w.start()
        w.stop(grace: 30)
        #expect(w.failures == ["the worker with pid \(w.pids[0]) was killed by signal 9"])
    }

    @Test("stale private folders of dead launchers are removed; those of live ones stay")
    func staleFolders() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-stale-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        // a pid that is certainly dead: a child that has exited and been reaped
        let child = LocalWorkers(executable: URL(fileURLWithPath: "/bin/sh"), arguments: [["-c", "exit 0"]])
        try child.start()
        child.stop(grace: 30)
        let dead = child.pids[0]
        let fm = FileManager.default
        for name in ["ztrain-\(dead)-7", "ztrain-\(getpid())-7", "ztrain-cli-x", "ztrain-torch"] {
            try fm.createDirectory(at: tmp.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        let removed = LocalWorkers.removeStaleFolders(in: tmp)
        #expect(removed == [tmp.appendingPathComponent("ztrain-\(dead)-7").path])
        #expect(try fm.contentsOfDirectory(atPath: tmp.path).sorted() == ["ztrain-\(getpid())-7", "ztrain-cli-x", "ztrain-torch"])
    }
}
