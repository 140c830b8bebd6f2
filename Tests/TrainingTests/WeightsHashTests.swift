import Checkpoint
import Foundation
import Series
import Support
import Testing
import Wire
@testable import Training

@Suite("Weights hashes: the run's hash chain")
struct WeightsHashTests {
    let series = try! Series.sincos()

    @Test func theHashIsXXH64OfTheLittleEndianFloat32Bytes() {
        #expect(WeightsHash.of([]) == 0xEF46_DB37_51D8_E999)  // XXH64 of no bytes, seed 0
        let p: [Float] = [1, -2.5, 0, .leastNonzeroMagnitude, 3e38]
        var bytes: [UInt8] = []
        for v in p { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        #expect(WeightsHash.of(p) == Wire.xxh64(bytes))
        // -0 and +0 are other bits: other weights
        #expect(WeightsHash.of([0]) != WeightsHash.of([-0.0]))
    }

    @Test func hexKeepsSixteenDigitsAndParsesBack() {
        #expect(WeightsHash.hex(0xff) == "00000000000000ff")
        #expect(WeightsHash.hex(.max) == "ffffffffffffffff")
        for h: UInt64 in [0, 1, 0xff, 0x0123_4567_89ab_cdef, .max] { #expect(WeightsHash.parse(WeightsHash.hex(h)) == h) }
        #expect(WeightsHash.parse("00000000000000FF") == 0xff)
        for bad in ["", "ff", "0x00000000000000f", "00000000000000fg", "+000000000000000f", "000000000000000000"] {
            #expect(WeightsHash.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func aHashLineIsEncodedWithSortedSnakeCaseKeys() throws {
        let line = HashLine(step: 12, hash: 0xff, time: "2026-11-28T06:00:00Z")
        let text = String(decoding: try JSONStyle.files.line(line), as: UTF8.self)
        #expect(text == #"{"kind":"hash","step":12,"time":"2026-11-28T06:00:00Z","weights_hash":"00000000000000ff"}"# + "\n")
        #expect(try JSONStyle.files.decode(HashLine.self, from: Array(text.utf8)) == line)
    }

    @Test func theRecordsOfMetricsJSONLAreReadByStep() throws {
        let text = """
            {"epoch":1,"loss":0.5,"step":4,"time":"t","weights_hash":"0000000000000004"}
            {"kind":"hash","step":2,"time":"t","weights_hash":"0000000000000002"}
            {"kind":"step","loss":"nan","step":3,"time":"t"}

            {"kind":"hash","step":4,"time":"t","weights_hash":"0000000000000004"}
            {"epoch":1,"loss":0.5,"step":8,"weights_hash":"0000000000000008"}
            {"kind":"hash","step":8,"weights_hash":"0000000000000009"}
            {"kind":"hash","step":10,"wei
            """
        let h = try RunHashes.read(metricsJSONL: Array(text.utf8), source: "m")
        #expect(h.byStep == [2: 2, 4: 4, 8: 8])
        #expect(h.conflicts == [8])
        #expect(h.unreadable == 1)
        #expect(h.lines == 7)
        #expect(throws: TrainingError.self) {
            try RunHashes.read(metricsJSONL: Array(#"{"step":1,"weights_hash":"xyz"}"#.utf8), source: "m")
        }
    }

    @Test func aResumedFolderInterleavesItsHashLinesWithTheEpochLinesByStep() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-hashlines-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        func epoch(_ step: Int) -> EpochMetrics {
            EpochMetrics(epoch: step / 4, step: step, samples: 1, trainLoss: 1, loss: 1, valLoss: nil, samplesPerSecond: 1,
                         epochSeconds: 1, wallSeconds: 1, gradNorm: 1, weightsHash: WeightsHash.hex(UInt64(step)))
        }
        let hashes = [6, 2, 4].map { HashLine(step: $0, hash: UInt64($0), time: "t") }
        _ = try RunDirectory(path: dir.path, existing: .resume, history: [epoch(4), epoch(8)], hashLines: hashes)
        let text = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        struct Line: Decodable { var kind: String?; var step: Int }
        let order = try text.split(separator: "\n").map { l in
            let line = try JSONStyle.files.decode(Line.self, from: Array(l.utf8))
            return (line.kind == "hash" ? "h" : "e") + String(line.step)
        }
        #expect(order == ["h2", "h4", "e4", "h6", "e8"])
        #expect(HashLine.lines(inRunDirectory: dir.path) == hashes.sorted { $0.step < $1.step })
    }

    @Test func alignmentComparesOnlyTheStepsBothHashed() {
        #expect(HashAlignment.compare([1: 7, 2: 8, 3: 9], [2: 8, 3: 5]) == .differ(at: 3, lastAgreeing: 2, agreeing: 1))
        #expect(HashAlignment.compare([2: 1, 4: 2, 6: 3], [4: 2, 6: 3, 9: 9]) == .identical(agreeing: 2, upTo: 6))
        #expect(HashAlignment.compare([2: 1, 4: 2], [2: 0, 4: 2]) == .differ(at: 2, lastAgreeing: nil, agreeing: 0))
        #expect(HashAlignment.compare([1: 1], [2: 1]) == .noCommonStep)
        #expect(HashAlignment.compare([:], [:]) == .noCommonStep)
        // the first difference wins, whatever agrees after it
        #expect(HashAlignment.compare([1: 1, 2: 2, 3: 3], [1: 1, 2: 0, 3: 3]) == .differ(at: 2, lastAgreeing: 1, agreeing: 1))
    }

    @Test(arguments: [32, 1000])  // mini-batch epochs, and full-batch ones (closed by the next step)
    func everyEpochRecordCarriesTheHashOfItsLastStep(batch: Int) throws {
        let config = referenceConfig(hidden: 8, batch: batch, epochs: nil, steps: 6, val: 0)
        var perStep: [Int: UInt64] = [:]
        let t = try InProcessTrainer(config: config, series: series)
        let r = try t.run { if case .step(_, let s, _, _, _, _, _) = $0 { perStep[s] = t.state.weightsHash } }
        #expect(!r.metrics.isEmpty)
        for m in r.metrics { #expect(m.weightsHash == perStep[m.step].map(WeightsHash.hex), "epoch \(m.epoch)") }
        #expect(perStep[r.steps] == WeightsHash.of(r.parameters))
    }

    @Test func checkpointsRecordTheStepAndTheHashAndRefuseAMismatch() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-hash-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try InProcessTrainer(config: referenceConfig(hidden: 8, epochs: nil, steps: 3), series: series)
        _ = try t.run()
        let store = CheckpointStore(runDirectory: dir, keep: 2)
        try store.save(t.checkpoint())
        let url = try #require(store.files().last)
        let (tensors, meta) = try SafeTensors.decode(AtomicFile.read(url.path), source: url.path)
        #expect(meta["step"] == "3")
        #expect(meta["weights_hash"] == WeightsHash.hex(t.state.weightsHash))
        #expect(try CheckpointStore.load(url).weightsHash == t.state.weightsHash)
        // a checkpoint from before weights hashes still loads
        var old = meta
        old["step"] = nil
        old["weights_hash"] = nil
        try AtomicFile.write(SafeTensors.encode(tensors: Array(tensors.values), metadata: old), to: url.path)
        #expect(try CheckpointStore.load(url).parameters == t.parameters)
        // one whose weights are not those hashed is damaged
        var wrong = meta
        wrong["weights_hash"] = WeightsHash.hex(t.state.weightsHash ^ 1)
        try AtomicFile.write(SafeTensors.encode(tensors: Array(tensors.values), metadata: wrong), to: url.path)
        #expect {
            try CheckpointStore.load(url)
        } throws: { "\($0)".contains("do not match the recorded weights hash") }
    }

    @Test func aReplayFromACheckpointHashesTheStepsTheRunTook() throws {
        let config = referenceConfig(hidden: 8, batch: 64, epochs: nil, steps: 20)
        var perStep: [Int: UInt64] = [:]
        var saved: RunCheckpoint?
        let t = try InProcessTrainer(config: config, series: series)
        t.checkpointEvery = 7
        t.onCheckpoint = { c in if c.counters.step == 7 { saved = c } }
        _ = try t.run { if case .step(_, let s, _, _, _, _, _) = $0 { perStep[s] = t.state.weightsHash } }
        let c = try #require(saved)
        let replayed = try Replay.stepHashes(from: c, series: series, through: 15)
        #expect(replayed.keys.sorted() == Array(8...15))
        for (s, h) in replayed { #expect(perStep[s] == h, "step \(s)") }
    }
}
