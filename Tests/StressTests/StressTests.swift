import Foundation
import Logging
import RNN
import Support
import Testing
import Training
import Wire
@testable import Stress

/// A quiet logger (warnings and errors only).
func testLogger() -> Logger {
    var logger = Logger(label: "stress-tests")
    logger.logLevel = .warning
    return logger
}

/// The `ztrain` binary built next to this test bundle.
func ztrainBinary() -> URL? {
    let exe = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    var dir = exe.deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent("ztrain")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return candidate
        }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

@Suite("ztrain stress", .serialized)
struct StressTests {
    @Test("a clean run is exact, with no fault and nothing refused")
    func cleanRun() throws {
        let config = StressConfig(workers: 4, parameterCount: 2_000, rounds: 50, seed: 7)
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exitStatus == 0)
        #expect(report.rounds == 50 && report.exactRounds == 50)
        #expect(report.wrongAggregates == 0 && report.lostRounds == 0)
        for kind in FaultKind.allCases { #expect(report.faults[kind.rawValue]?.injected == 0, "\(kind)") }
        #expect(report.invalidFrames == 0 && report.invalidAnswers == 0)
        #expect(report.leakedWorkers == 0)
        #expect(report.joinedWorkers == 4)
        // 50 rounds × 4 ASSIGNs of 2,000 weights + 4 window starts, and 4 GRADIENTs of 2,001 sums
        #expect(report.bytesSent >= 50 * 4 * (64 + 4 * 2_004))
        #expect(report.bytesReceived >= 50 * 4 * (64 + 4 * 2_001))
        #expect(report.latencyMicros.p50 > 0 && report.latencyMicros.max >= report.latencyMicros.p99)
        #expect(report.rssFirstQuarter != nil && report.rssLastQuarter != nil && report.peakRSS != nil)
        let json = try JSONSerialization.jsonObject(with: report.json()) as? [String: Any]
        #expect(json?["passed"] as? Bool == true)
        #expect(json?["exact_rounds"] as? Int == 50)
    }

    @Test("every fault kind at a high rate is injected and survived, and the aggregates stay exact")
    func everyFault() throws {
        let config = StressConfig(
            workers: 4, parameterCount: 1_000, rounds: 30, leavesPerWorker: 3, seed: 11,
            killRate: 0.1, slowRate: 0.1, slowFactor: 3, dropRate: 0.1, duplicateRate: 0.1, corruptRate: 0.1,
            reorder: true, liveness: 0.3, retryAfter: 0.1)
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 30)
        // (wrong answers need every answer audited, which retries and reassignments are not: see wrongAnswers)
        for kind in FaultKind.allCases where kind != .wrong {
            let f = try #require(report.faults[kind.rawValue])
            #expect(f.injected > 0, "no \(kind) fault was injected")
            #expect(f.survived == f.injected, "\(kind): \(f.survived) of \(f.injected) survived")
        }
        let corrupt = report.faults[FaultKind.corrupt.rawValue]?.injected ?? 0
        #expect(report.checksumMismatches >= 1 && report.checksumMismatches <= corrupt)
        #expect(report.lateOrDuplicate >= 1)
        #expect(report.retried + report.speculative + report.reassigned >= 1)
        #expect(report.replacements == report.faults[FaultKind.kill.rawValue]?.injected)
        #expect(report.unexpectedDeaths.isEmpty && report.leakedWorkers == 0)
    }

    @Test("wrong sums with valid checksums are caught by the audit, and every round stays exact")
    func wrongAnswers() throws {
        // (no retries: a copy given to another worker is not audited)
        var config = StressConfig(workers: 3, parameterCount: 500, rounds: 40, leavesPerWorker: 2, seed: 5, retryAfter: 10)
        config.wrongRate = 0.1
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 40)
        let wrong = try #require(report.faults[FaultKind.wrong.rawValue])
        #expect(wrong.injected > 0)
        #expect(report.wrongDetected >= 1 && report.wrongDetected <= wrong.injected)
        #expect(report.summary.contains("audit         wrong answers injected"))
    }

    @Test("the expected aggregate is deterministic, chunk-independent and order-sensitive")
    func generator() throws {
        let p = 2_000, m = 12
        let gen = LeafGradients(seed: 7, parameterCount: p, leafCount: m)
        let weights = (0..<p).map { Float($0 % 17) * 0.25 - 2 }
        func root(chunk: Int?) -> [Float] {
            var out = [Float](repeating: 0, count: p + 1)
            weights.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { o in
                    _ = gen.nodeSum(round: 3, block: 0..<m, columns: 0..<(p + 1), weights: w,
                                    matrix: LeafMatrix(rows: m, chunk: chunk), into: o.baseAddress!)
                }
            }
            return out
        }
        let a = root(chunk: nil), b = root(chunk: 7), c = root(chunk: p + 1)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(a.map(\.bitPattern) == c.map(\.bitPattern))

        // the workers' way: node sums of two runs, combined by the aggregator's TreeReducer
        var tree = TreeReducer<Float>(leafCount: m, width: p + 1)
        for run in [0..<5, 5..<12] {
            for block in CanonicalTree.blocks(of: run, leafCount: m) {
                var node = [Float](repeating: 0, count: p + 1)
                weights.withUnsafeBufferPointer { w in
                    node.withUnsafeMutableBufferPointer { o in
                        _ = gen.nodeSum(round: 3, block: block, columns: 0..<(p + 1), weights: w,
                                        matrix: LeafMatrix(rows: m, chunk: 100), into: o.baseAddress!)
                    }
                }
                let inserted = tree.insert(block: block, values: node)
                #expect(inserted)
            }
        }
        let root = tree.reduce()
        let reduced = try #require(root)
        #expect(reduced.map(\.bitPattern) == a.map(\.bitPattern))

        // another order of the same leaves (left to right) gives other bits: the check can fail
        var sequential = [Float](repeating: 0, count: p + 1)
        weights.withUnsafeBufferPointer { w in
            for leaf in 0..<m {
                for col in 0...p { sequential[col] += gen.value(round: 3, leaf: leaf, column: col, weights: w) }
            }
        }
        let differing = (0...p).filter { sequential[$0].bitPattern != a[$0].bitPattern }.count
        #expect(differing > p / 10, "only \(differing) of \(p + 1) values depend on the order")
        // and another round or seed gives other values
        let other = LeafGradients(seed: 8, parameterCount: p, leafCount: m)
        #expect(other.value(round: 3, leaf: 0, column: 0, weights: nil) != gen.value(round: 3, leaf: 0, column: 0, weights: nil))
        #expect(gen.value(round: 4, leaf: 0, column: 0, weights: nil) != gen.value(round: 3, leaf: 0, column: 0, weights: nil))
        // values are in [-2^7, 2^7) and finite
        for leaf in 0..<m {
            for col in 0..<p {
                let v = gen.value(round: 3, leaf: leaf, column: col, weights: nil)
                #expect(v.isFinite && abs(v) <= 128)
            }
        }
    }

    @Test("a wrong aggregate is detected and fails the run")
    func wrongAggregate() throws {
        let config = StressConfig(workers: 3, parameterCount: 500, rounds: 6, seed: 5, perturbRound: 3)
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(!report.passed)
        #expect(report.exitStatus == 1)
        #expect(report.wrongAggregates == 1)
        #expect(report.exactRounds == 5)
        #expect(report.wrongDetails.first?.hasPrefix("round 3:") == true, "\(report.wrongDetails)")
        #expect(report.problems.contains { $0.contains("wrong aggregate") })
        #expect(report.summary.contains("FAIL"))
    }

    @Test("--processes: worker processes (some killed and replaced) complete the run and none is left")
    func processes() throws {
        let binary = try #require(ztrainBinary(), "the ztrain binary is not next to the test bundle")
        let config = StressConfig(workers: 3, parameterCount: 500, rounds: 20, seed: 3, killRate: 0.05,
                                  dropRate: 0.05, liveness: 0.5, retryAfter: 0.2, transport: .ipc)
        let report = try StressHarness(config: config, mode: .processes(executable: binary), logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20)
        #expect(report.mode == "processes")
        #expect(report.workerPids.count == 3 + report.replacements)
        let kills = try #require(report.faults[FaultKind.kill.rawValue])
        #expect(kills.survived == kills.injected)
        // a worker killed in the last round may end with the run before its replacement starts
        #expect(report.replacements <= kills.injected && report.replacements >= kills.injected - 1,
                "\(report.replacements) replacements for \(kills.injected) kills")
        #expect(report.leakedWorkers == 0)
        #expect((report.workerPeakRSS ?? 0) > 0)
        for pid in report.workerPids {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "worker process \(pid) is still there")
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)"), "/proc/\(pid) exists")
        }
    }

    @Test("a stranger flooding big frames and HELLOs changes no aggregate, holds no handshake slot for long, and is ended")
    func strangers() throws {
        let binary = try #require(ztrainBinary(), "the ztrain binary is not next to the test bundle")
        var config = StressConfig(workers: 3, parameterCount: 20_000, rounds: 60, seed: 5, liveness: 0.5, retryAfter: 0.2)
        config.strangerFrames = 200
        config.strangerHellos = 300
        let harness = try StressHarness(config: config, logger: testLogger())
        harness.strangerExecutable = binary
        let report = try harness.run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 60)
        // only the three workers joined; the strangers' HELLOs were deferred or their handshakes forgotten
        #expect(report.joinedWorkers == 3)
        #expect(report.strangerHellosDeferred + report.strangerHandshakesAbandoned >= 1, "\(report.summary)")
        #expect(report.summary.contains("strangers     attacked with 200 frame(s)"))
        #expect((report.peakRSS ?? 0) > 0)
    }

    @Test("--pregenerate: every aggregate still exact; latency without generation, generation and bytes per process reported")
    func pregenerated() throws {
        var config = StressConfig(workers: 3, parameterCount: 20_000, rounds: 20, leavesPerWorker: 2, seed: 5)
        config.pregenerate = true
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(report.passed, "\(report.problems)")
        #expect(report.exactRounds == 20 && report.wrongAggregates == 0)
        let a = try #require(report.aggregationLatencyMicros)
        #expect(a.p50 > 0 && a.p50 <= report.latencyMicros.p50 && a.max >= a.p99)
        let g = try #require(report.generationMicros)
        #expect(g.p50 > 0, "the workers recorded no generation")
        let b = try #require(report.bytesPerRound)
        #expect(b.rounds == 20 && b.workers.count == 3)
        // a star: every worker gets P weights and sends P + 1 sums per round, the coordinator all of
        // it (a last-round answer that a speculative copy beat may arrive after the count ends)
        for w in b.workers {
            #expect(w.bytesIn >= Double(64 + 4 * 20_000), "\(w)")
            #expect(20 * w.bytesOut >= 19 * Double(64 + 4 * 20_001), "\(w)")
        }
        #expect(b.coordinator.bytesOut >= 3 * Double(4 * 20_000) && b.busiest == "coordinator")
        let floor: Double = StressBytes.floor(workers: 3, parameterCount: 20_000)
        #expect(abs(floor - 320_000.0 / 3) < 1e-9 && b.floorBytes == floor)
        #expect(abs((b.busiestToFloor ?? 0) - b.busiestBytes / b.floorBytes) < 1e-12)
        #expect(report.summary.contains("aggregation   without generation"))
        #expect(report.summary.contains("busiest       coordinator"))
        let json = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        for key in ["aggregation_latency_micros", "generation_micros", "bytes_per_round", "latency_micros"] {
            #expect(json[key] != nil, "the JSON lacks \(key)")
        }
        let bytes = try #require(json["bytes_per_round"] as? [String: Any])
        for key in ["coordinator", "workers", "busiest", "busiest_bytes", "floor_bytes", "busiest_to_floor", "rounds"] {
            #expect(bytes[key] != nil, "bytes_per_round lacks \(key)")
        }
        // the bench reads it back
        let decoded = try JSONStyle.files.decode(StressReport.self, from: report.json())
        #expect(decoded.aggregationLatencyMicros == report.aggregationLatencyMicros && decoded.generationMicros == report.generationMicros)
        #expect(decoded.bytesPerRound?.workers.count == 3 && decoded.bytesPerRound?.busiest == b.busiest)
    }

    @Test("--pregenerate: a worker's wrong sums are still caught, in that round only")
    func pregeneratedPerturbation() throws {
        var config = StressConfig(workers: 2, parameterCount: 3_000, rounds: 8, leavesPerWorker: 3, seed: 9, perturbRound: 5)
        config.pregenerate = true
        let report = try StressHarness(config: config, logger: testLogger()).run()
        #expect(!report.passed)
        #expect(report.wrongAggregates == 1 && report.exactRounds == 7, "\(report.summary)")
        #expect(report.wrongDetails.first?.hasPrefix("round 5:") == true, "\(report.wrongDetails)")
    }

    @Test("a worker's generation lines reach the ledger with its faults")
    func generationLedgerFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("faults-0.txt").path
        do {
            let file = try FaultFile(path: path)
            file.record(.drop, round: 3)
            file.generated(round: 3, nanos: 5_000)
            file.generated(round: 3, nanos: 7_000)
            file.generated(round: 4, nanos: 1_000)
        }
        let ledger = FaultLedger()
        #expect(ledger.merge(file: URL(fileURLWithPath: path)) == 1)
        #expect(ledger.injected(.drop) == 1)
        #expect(ledger.generationByRound == [3: 7_000, 4: 1_000])
    }

    @Test("invalid configurations are refused with the flag's name")
    func validation() {
        func message(_ c: StressConfig) -> String? {
            do throws(StressError) { try c.validate(); return nil } catch { return "\(error)" }
        }
        #expect(message(StressConfig(workers: 0, parameterCount: 10, rounds: 1))?.contains("--workers") == true)
        #expect(message(StressConfig(workers: 1, parameterCount: 0, rounds: 1))?.contains("--params") == true)
        #expect(message(StressConfig(workers: 1, parameterCount: 10, rounds: 1, killRate: 1))?.contains("--kill-rate") == true)
        #expect(message(StressConfig(workers: 1, parameterCount: 10, rounds: 1, dropRate: 0.6, corruptRate: 0.6))?.contains("--drop-rate") == true)
        #expect(message(StressConfig(workers: 1, parameterCount: 10, rounds: 1, liveness: 0))?.contains("--liveness") == true)
        #expect(message(StressConfig(workers: 2, parameterCount: 10, rounds: 5)) == nil)
        let args = StressConfig(workers: 2, parameterCount: 10, rounds: 5, reorder: true)
            .workerArguments(endpoint: "tcp://127.0.0.1:1", serial: 4, parentPID: 99, ledger: "/tmp/x")
        #expect(args.first == "stress" && args.contains("--reorder") && args.contains("--worker-connect"))
        #expect(!args.contains("--pregenerate"))
        var measured = StressConfig(workers: 2, parameterCount: 10, rounds: 5)
        measured.pregenerate = true
        #expect(measured.workerArguments(endpoint: "tcp://127.0.0.1:1", serial: 0, parentPID: 99, ledger: "/tmp/x").contains("--pregenerate"))
    }
}
