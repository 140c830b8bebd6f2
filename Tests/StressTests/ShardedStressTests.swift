import Foundation
import Logging
import RNN
import Support
import Testing
import Training
import Wire
@testable import Stress

@Suite("ztrain stress --aggregation sharded", .serialized)
struct ShardedStressTests {
    func sharded(_ c: StressConfig) -> StressConfig {
        var c = c
        c.aggregation = .sharded
        return c
    }

    @Test("threads: every round's whole vector exact at every worker; bytes per process at the all-reduce floor")
    func cleanThreads() throws {
        // 3 owners of one 4096-float block each: every worker sends 2 NODEs and 2 SLICEs of 4096 floats
        let p = 3 * ShardPlan.blockSize
        var config = sharded(StressConfig(workers: 3, parameterCount: p, rounds: 20, seed: 7))
        config.pregenerate = true
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20 && report.wrongAggregates == 0 && report.lostRounds == 0)
        let s = try #require(report.sharded)
        #expect(s.tables == 1 && s.attemptsRedone == 0 && s.ownersLost == 0)
        let a = try #require(report.aggregationLatencyMicros)
        #expect(a.p50 > 0 && a.p50 <= report.latencyMicros.p50)
        #expect((report.generationMicros?.p50 ?? 0) > 0, "the workers recorded no generation")
        let b = try #require(report.bytesPerRound)
        #expect(b.workers.count == 3 && b.rounds == 20)
        let floor = StressBytes.floor(workers: 3, parameterCount: p)
        #expect(b.floorBytes == floor)
        // peer bytes are exact per round (payloads plus a 64-byte header each; the last owner's NODEs
        // carry the loss too); the coordinator link adds an ORDER, a report and heartbeats
        for w in b.workers {
            #expect(w.bytesOut >= floor && w.bytesIn >= floor, "\(w)")
            #expect(w.busier <= 1.1 * floor + Double(4 * 128 + 1024), "\(w)")
        }
        #expect(b.coordinator.busier < 2048, "\(b.coordinator)")
        #expect(b.busiest.hasPrefix("worker"))
        #expect(report.summary.contains(", sharded, P = 12288"))
        #expect(report.summary.contains("sharded       tables 1"))
        let json = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        #expect((json["config"] as? [String: Any])?["aggregation"] as? String == "sharded")
        #expect(json["sharded"] is [String: Any])
        let decoded = try JSONStyle.files.decode(StressReport.self, from: report.json())
        #expect(decoded.sharded == report.sharded && decoded.config.aggregation == .sharded)
    }

    @Test("threads: killed workers (owners among them) and stragglers are survived exactly; the round starts over under a new table")
    func killsAndStragglers() throws {
        // P = 10,000 is 3 blocks for 4 workers: one worker owns no elements (a kill of a worker that is
        // no owner), the others own one block each
        let config = sharded(StressConfig(workers: 4, parameterCount: 10_000, rounds: 20, leavesPerWorker: 2, seed: 11,
                                          killRate: 0.1, slowRate: 0.1, slowFactor: 2, liveness: 0.3, retryAfter: 0.05))
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20)
        for kind in [FaultKind.kill, .slow] {
            let f = try #require(report.faults[kind.rawValue])
            #expect(f.injected > 0 && f.survived == f.injected, "\(kind): \(f.survived) of \(f.injected) survived")
        }
        let s = try #require(report.sharded)
        #expect(s.ownersLost >= 1 && s.attemptsRedone >= s.ownersLost && s.tables >= 2, "\(s)")
        #expect(report.replacements == report.faults[FaultKind.kill.rawValue]?.injected)
        #expect(report.unexpectedDeaths.isEmpty && report.leakedWorkers == 0)
    }

    @Test("threads: dropped, duplicated and corrupted NODEs and SLICEs are survived exactly; corruption fails the checksum")
    func lostAndBrokenMessages() throws {
        let config = sharded(StressConfig(workers: 3, parameterCount: 20_000, rounds: 20, seed: 11, dropRate: 0.05,
                                          duplicateRate: 0.05, corruptRate: 0.05, liveness: 0.5, retryAfter: 0.05))
        var c = config
        c.sliceFloats = ShardPlan.blockSize  // 2 slices per worker: more messages
        let report = try StressHarness(config: c, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20)
        for kind in [FaultKind.drop, .duplicate, .corrupt] {
            let f = try #require(report.faults[kind.rawValue])
            #expect(f.injected > 0 && f.survived == f.injected, "\(kind): \(f.survived) of \(f.injected) survived")
        }
        let corrupt = report.faults[FaultKind.corrupt.rawValue]?.injected ?? 0
        #expect(report.checksumMismatches >= 1 && report.checksumMismatches <= corrupt, "\(report.checksumMismatches) of \(corrupt)")
        #expect((report.sharded?.ordersRepeated ?? 0) >= 1)
        #expect(report.unexpectedDeaths.isEmpty && report.leakedWorkers == 0)
    }

    @Test("wrong sums with valid checksums are caught by the digests and the round computed again")
    func wrongAnswers() throws {
        var config = sharded(StressConfig(workers: 3, parameterCount: 10_000, rounds: 20, seed: 3))
        config.wrongRate = 0.2
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20 && report.wrongAggregates == 0)
        #expect((report.faults[FaultKind.wrong.rawValue]?.injected ?? 0) >= 1)
        #expect(report.wrongDetected >= 1 && report.sharded?.attemptsRedone == report.wrongDetected)
        #expect(report.summary.contains("computed again"))
    }

    @Test("a wrong vector (a worker's bug) is reported and fails the run")
    func wrongVector() throws {
        let config = sharded(StressConfig(workers: 3, parameterCount: 10_000, rounds: 6, seed: 5, perturbRound: 3))
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(!report.passed && report.exitStatus == 1)
        #expect(report.wrongAggregates == 1 && report.exactRounds == 5)
        #expect(report.wrongDetails.first?.hasPrefix("round 3:") == true, "\(report.wrongDetails)")
    }

    @Test("--processes over ipc: killed owners replaced, drops and corruption survived, every process reaped")
    func processes() throws {
        let binary = try #require(ztrainBinary(), "the ztrain binary is not next to the test bundle")
        let config = sharded(StressConfig(workers: 3, parameterCount: 10_000, rounds: 20, seed: 3, killRate: 0.08,
                                          dropRate: 0.05, corruptRate: 0.05, liveness: 0.5, retryAfter: 0.1, transport: .ipc))
        let report = try StressHarness(config: config, mode: .processes(executable: binary), logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20 && report.mode == "processes")
        let kills = try #require(report.faults[FaultKind.kill.rawValue])
        #expect(kills.injected >= 1 && kills.survived == kills.injected)
        #expect((report.sharded?.ownersLost ?? 0) >= 1)
        #expect(report.workerPids.count == 3 + report.replacements)
        #expect(report.leakedWorkers == 0)
        for pid in report.workerPids {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "worker process \(pid) is still there")
        }
    }

    @Test("the report rides a NORM through the codec unchanged; the digests are the SLICE checksums")
    func reportCodec() throws {
        var r = ShardReport(round: 12, attempt: 70_000, digest: 0xFEDC_BA98_7654_3210, sliceDigest: 0x0123_4567_89AB_CDEF, loss: 1.5,
                            peerBytesIn: 123_456_789, peerBytesOut: 987_654_321, generationNanos: 42)
        r.invalidFrames = 3
        r.checksumMismatches = 2
        let frames = Wire.encode(Envelope(runID: 9, workerID: 2, message: .norm(r.norm)))
        let decoded = try Wire.decode(frames: frames, limits: .handshake)
        guard case .norm(let n) = decoded.message else { Issue.record("not a NORM: \(decoded.message)"); return }
        #expect(ShardReport(n) == r)
        var none = r
        none.sliceDigest = nil
        none.loss = nil
        #expect(ShardReport(none.norm) == none)
        #expect(ShardReport(NormPart(step: 1, blocks: 0..<2, sumsOfSquares: [1, 2], isFinite: true, lossSum: nil)) == nil)

        let values: [Float] = (0..<100).map { Float($0) * 0.5 }
        let slice = Wire.encode(Envelope(runID: 1, workerID: 1, message: .slice(ParameterSlice(version: 1, range: 0..<100, values: values))))
        let header = try Header.decode(slice[0])
        #expect(header.checksum == values.withUnsafeBufferPointer { ShardDigest.slice($0) })
        #expect(ShardDigest.whole([1, 2]) != ShardDigest.whole([2, 1]))
    }

    @Test("sharded configurations: the worker command line carries the mode; --reorder is refused")
    func configuration() throws {
        let c = sharded(StressConfig(workers: 2, parameterCount: 100, rounds: 1))
        let args = c.workerArguments(endpoint: "tcp://127.0.0.1:1", serial: 0, parentPID: 1, ledger: "/tmp/x")
        #expect(Array(args.drop { $0 != "--aggregation" }.prefix(2)) == ["--aggregation", "sharded"])
        #expect(!StressConfig(workers: 2, parameterCount: 100, rounds: 1)
            .workerArguments(endpoint: "e", serial: 0, parentPID: 1, ledger: "l").contains("--aggregation"))
        var bad = c
        bad.reorder = true
        #expect(throws: StressError.self) { try bad.validate() }
    }
}
