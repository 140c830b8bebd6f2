import Foundation
import RNN
import Testing

@testable import Bench

@Suite("Bench: goals, ratios, FLOPs, JSON, markdown")
struct BenchTests {
    // MARK: goals and ratios

    @Test func pytorchFiguresAreReadFromTheBaselineJSON() throws {
        let json = #"{"eager_h32_b32_samples_per_s": 60000, "gloo_allreduce_1e7_ms": 12.5, "ddp_gloo_2x1_b64_samples_per_s": null, "torch": "2.5.1", "x": [1]}"#
        let f = try PyTorchFigures.load(json: Data(json.utf8), path: "p.json")
        #expect(f.eagerH32 == PyTorchFigure(value: 60000, unit: "samples/s", source: .sameRun))
        #expect(f.allreduce1e7 == PyTorchFigure(value: 12.5, unit: "ms", source: .sameRun))
        #expect(f.ddp == PyTorchFigures.recorded.ddp && f.torchVersion == "2.5.1")
        for (bad, said) in [(#"{"eager_h32_b32_samples_per_s": "fast"}"#, #"(got "fast")"#),
                            (#"{"eager_h32_b32_samples_per_s": -1}"#, "(got -1)"),
                            ("[1]", "must hold a JSON object"), ("nope", "is not JSON")] {
            #expect(throws: BenchError.self) { try PyTorchFigures.load(json: Data(bad.utf8), path: "p.json") }
            do { _ = try PyTorchFigures.load(json: Data(bad.utf8), path: "p.json") } catch {
                #expect("\(error)".contains(said), "\(error)")
            }
        }
    }

    @Test func goalOnValueAtLeast() {
        let g = Goal(on: .value, op: .atLeast, threshold: 1_000_000, text: "")
        #expect(g.isMet(value: 1_000_000, ratio: nil) == true)
        #expect(g.isMet(value: 999_999, ratio: 50) == false)
        #expect(g.isMet(value: nil, ratio: 2) == nil)
        #expect(g.isMet(value: .nan, ratio: nil) == nil)
    }

    @Test func goalOnRatioAtMost() {
        let g = Goal(on: .ratio, op: .atMost, threshold: 3, text: "")
        #expect(g.isMet(value: 500, ratio: 3) == true)
        #expect(g.isMet(value: 500, ratio: 3.01) == false)
        #expect(g.isMet(value: 500, ratio: nil) == nil)
    }

    @Test func resultComputesRatioAndMet() {
        let r = BenchResult(name: "round-h32", target: "4", title: "t", value: 450, unit: "µs", baseline: 150,
                            baselineName: "bare", baselineSource: .sameRun,
                            goal: Goal(on: .ratio, op: .atMost, threshold: 3, text: "≤ 3×"), detail: "d")
        #expect(r.ratio == 3)
        #expect(r.met == true)
        let slower = BenchResult(name: "x", target: "4", title: "t", value: 451, unit: "µs", baseline: 150,
                                 goal: Goal(on: .ratio, op: .atMost, threshold: 3, text: ""), detail: "")
        #expect(slower.met == false)
    }

    @Test func ratioNeedsAPositiveFiniteBaseline() {
        #expect(BenchResult.ratio(10, 0) == nil)
        #expect(BenchResult.ratio(10, nil) == nil)
        #expect(BenchResult.ratio(nil, 5) == nil)
        #expect(BenchResult.ratio(10, .infinity) == nil)
        #expect(BenchResult.ratio(10, 4) == 2.5)
    }

    @Test func failedResultHasNoValueRatioOrVerdict() {
        let r = BenchResult(name: "single-h32", target: "1", title: "t", value: 2e6, unit: "samples/s", baseline: 52_000,
                            goal: Goal(on: .value, op: .atLeast, threshold: 1e6, text: ""), detail: "")
        #expect(r.met == true)
        let f = r.failed("boom")
        #expect(f.value == nil && f.ratio == nil && f.met == nil && f.error == "boom")
    }

    // MARK: FLOPs

    @Test func flopsOfTheReferenceModel() {
        let h32 = ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4)
        // forward 2·32·34·3 + 2·2·34 = 6,664; dW the same; dh 2·32·32·2 + 2·2·32 = 4,224
        #expect(FlopCount.forward(h32) == 6_664)
        #expect(FlopCount.backward(h32) == 6_664 + 4_224)
        #expect(FlopCount.perSample(h32) == 17_552)
        let h256 = ModelConfig(inputSize: 2, hiddenSize: 256, outputSize: 2, seqLen: 4)
        #expect(FlopCount.perSample(h256) == 1_057_808)
    }

    @Test func flopsOfTheElmanCellAndLossAll() {
        // elman: S = T hidden steps, output from h (F = H)
        let e = ModelConfig(inputSize: 1, hiddenSize: 4, outputSize: 1, seqLen: 3, cell: .elman, loss: .all)
        #expect(FlopCount.hiddenSteps(e) == 3)
        #expect(FlopCount.outputs(e) == 3)
        // forward 2·4·5·3 + 2·1·4·3 = 144; dW 144; dh 2·4·4·2 + 2·1·4·3 = 88
        #expect(FlopCount.perSample(e) == 144 + 144 + 88)
        let s = ModelConfig(inputSize: 1, hiddenSize: 4, outputSize: 1, seqLen: 1)
        // one step: no hidden state feeds anything; the output reads h_{-1} = 0 and x
        #expect(FlopCount.hiddenSteps(s) == 0)
        #expect(FlopCount.perSample(s) == 2 * (2 * 1 * 5))
    }

    @Test func gemmShapesMatchTheFlopCountOfTheHiddenLayer() {
        let c = ModelConfig(inputSize: 2, hiddenSize: 256, outputSize: 2, seqLen: 4)
        let shapes = FlopCount.gemmShapes(c, batch: 996)
        #expect(shapes.map(\.name) == ["forward", "dW", "dh"])
        #expect(shapes[0].m == 996 && shapes[0].n == 256 && shapes[0].k == 258 && shapes[0].count == 3)
        let total = shapes.reduce(0.0) { $0 + $1.flops * Double($1.count) }
        // every FLOP of the sample except the O = 2 wide output layer
        let H = 256.0, D = 258.0
        #expect(total == 996 * (2 * H * D * 3 * 2 + 2 * H * H * 2))
    }

    // MARK: options

    @Test func onlyAcceptsNamesAndNumbers() throws {
        #expect(try BenchGroup.parse("1,round-h32, GEMM") == [.singleH32, .roundH32, .gemm])
        #expect(try BenchGroup.parse("8") == [.timeToTarget])
        #expect(throws: BenchError.self) { try BenchGroup.parse("1,nine") }
        #expect(throws: BenchError.self) { try BenchGroup.parse("") }
        #expect(BenchGroup.targets.count == 11)
        #expect(try BenchGroup.parse("10,round-bytes") == [.roundVsGloo, .roundBytes])
    }

    @Test func pytorchJSONReplacesRecordedFigures() throws {
        let json = Data(#"{"torch": "2.5.1", "eager_h32_b32_samples_per_s": 50000.5, "gloo_allreduce_1e7_ms": null}"#.utf8)
        let f = try PyTorchFigures.load(json: json, path: "p.json")
        #expect(f.eagerH32 == PyTorchFigure(value: 50000.5, unit: "samples/s", source: .sameRun))
        #expect(f.eagerH256 == PyTorchFigures.recorded.eagerH256)
        #expect(f.allreduce1e7.source == .recorded)
        #expect(f.torchVersion == "2.5.1")
        #expect(f.anySameRun)
        #expect(!PyTorchFigures.recorded.anySameRun)
        #expect(throws: BenchError.self) { try PyTorchFigures.load(json: Data("[1]".utf8), path: "p") }
        #expect(throws: BenchError.self) {
            try PyTorchFigures.load(json: Data(#"{"eager_h32_b32_samples_per_s": -1}"#.utf8), path: "p")
        }
        #expect(throws: BenchError.self) { try PyTorchFigures.load(json: Data("not json".utf8), path: "p") }
    }

    // MARK: JSON

    func sampleReport() -> BenchReport {
        let machine = MachineInfo(cpu: "AMD EPYC", cores: 2, flags: ["avx2": true, "avx512f": true, "fma": true], os: "Debian",
                                  kernel: "6.1", swift: "6.3", ztrainVersion: "0.1.0", ztrainCommit: nil, blas: "OpenBLAS",
                                  memoryBytes: nil)
        let ok = BenchResult(name: "single-h32", target: "1", title: "1 thread", value: 2e6, unit: "samples/s", baseline: 52_000,
                             baselineName: "PyTorch eager loop", baselineSource: .recorded,
                             goal: Goal(on: .value, op: .atLeast, threshold: 1e6, text: "≥ 1,000,000 samples/s"), detail: "d")
        let bad = BenchResult(name: "round-10m", target: "5", title: "round", value: nil, unit: "ms",
                              goal: Goal(on: .ratio, op: .atMost, threshold: 1.5, text: "≤ 1.5×"), detail: "",
                              reference: Reference(name: "gloo", value: 31, unit: "ms", source: .recorded)).failed("no workers")
        return BenchReport(machine: machine, command: "ztrain bench", date: "2025-01-01T00:00:00Z", quick: true, seconds: 1.5,
                           pytorch: .recorded, floors: [Floor(name: "memcpy", title: "memcpy", value: 11, unit: "GB/s", detail: "")],
                           results: [ok, bad])
    }

    @Test func jsonHasTheIssueShapeWithExplicitNulls() throws {
        let data = try sampleReport().json()
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let root = try #require(object)
        #expect(root["machine"] is [String: Any])
        let results = try #require(root["results"] as? [[String: Any]])
        #expect(results.count == 2)
        for r in results {
            for key in ["name", "value", "unit", "baseline", "ratio", "goal", "met"] {
                #expect(r.keys.contains(key), "result \(r["name"] ?? "?") lacks \(key)")
            }
        }
        #expect((results[0]["ratio"] as? Double).map { abs($0 - 2e6 / 52_000) < 1e-9 } == true)
        #expect(results[0]["met"] as? Bool == true)
        #expect(results[1]["value"] is NSNull)
        #expect(results[1]["met"] is NSNull)
        #expect(results[1]["error"] as? String == "no workers")
        let goal = try #require(results[0]["goal"] as? [String: Any])
        #expect(goal["op"] as? String == ">=")
        #expect(goal["on"] as? String == "value")
        let machine = try #require(root["machine"] as? [String: Any])
        #expect((machine["flags"] as? [String: Bool])?["avx512f"] == true)
        #expect(machine.keys.contains("ztrain_version"))
    }

    @Test func jsonRoundTrips() throws {
        let report = sampleReport()
        #expect(try BenchReport.decode(report.json()) == report)
    }

    // MARK: rendering

    @Test func numbersAreFormattedForPeople() {
        #expect(Format.number(1_234_567.8) == "1,234,568")
        #expect(Format.number(199) == "199")
        #expect(Format.number(31.26) == "31.3")
        #expect(Format.number(0.2234) == "0.223")
        #expect(Format.number(0) == "0")
        #expect(Format.ratio(3.5812) == "3.58×")
        #expect(Format.ratio(nil) == "n/a")
        #expect(Format.met(false) == "NO")
    }

    @Test func tableHasOneRowPerResult() {
        let text = Render.table(sampleReport())
        #expect(text.contains("single-h32") == false)  // titles, not keys, in the table
        #expect(text.contains("1 thread"))
        #expect(text.contains("failed"))
        #expect(text.contains("1 of 2 goals met"))
    }

    // MARK: markdown markers

    @Test func markdownReplacesOnlyBetweenMarkers() throws {
        let existing = "# Benchmarks\n\nintro\n\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\n\n## Notes\n\nhand-written\n"
        let merged = try Render.merge(existing: existing, block: "new table")
        #expect(merged == "# Benchmarks\n\nintro\n\n<!-- bench:begin -->\nnew table\n<!-- bench:end -->\n\n## Notes\n\nhand-written\n")
        #expect(try Render.merge(existing: merged, block: "new table") == merged)
    }

    @Test func markdownWithoutMarkersIsAppendedAndANewFileHasNotes() throws {
        let appended = try Render.merge(existing: "# Mine\n", block: "b")
        #expect(appended == "# Mine\n\n<!-- bench:begin -->\nb\n<!-- bench:end -->\n")
        let fresh = try Render.merge(existing: nil, block: "b")
        #expect(fresh.contains("<!-- bench:begin -->\nb\n<!-- bench:end -->"))
        #expect(fresh.contains("## Notes"))
    }

    @Test func brokenMarkersAreRefused() {
        #expect(throws: BenchError.self) { try Render.merge(existing: "<!-- bench:begin -->\nx\n", block: "b") }
        #expect(throws: BenchError.self) { try Render.merge(existing: "<!-- bench:end -->\n<!-- bench:begin -->\n", block: "b") }
    }

    @Test func markdownBlockHasMachineCommandTableFloorsAndPyTorch() {
        let md = Render.markdown(sampleReport())
        #expect(md.contains("Command: `ztrain bench`"))
        #expect(md.contains("AMD EPYC"))
        #expect(md.contains("| # | target | value | baseline | ratio | goal | met |"))
        #expect(md.contains("### Floors"))
        #expect(md.contains("### Against PyTorch"))
        #expect(md.contains("recorded on the reference machine"))
    }

    // MARK: stats

    @Test func medianAndPercentile() {
        #expect(Stats.median([3, 1, 2]) == 2)
        #expect(Stats.median([4, 1, 2, 3]) == 2.5)
        #expect(Stats.median([]) == nil)
        #expect(Stats.percentile(Array(1...100).map(Double.init), 90) == 90)
        #expect(Stats.percentile([5], 99) == 5)
    }

    // MARK: targets 10 and 11 (structure, not timings)

    @Test func roundVsGlooTargetsCompareWithGlooOnTheRatio() {
        for sizes in [BenchSizes.full, .quick] {
            let t = BenchRunner.templatesRoundVsGloo(sizes)
            // a star and a sharded row per comparison
            #expect(t.map(\.name) == ["round-10m-vs-gloo", "round-10m-vs-gloo-sharded", "round-1m-4w-vs-gloo", "round-1m-4w-vs-gloo-sharded"])
            #expect(t.map(\.target) == ["10a", "10a", "10b", "10b"])
            for r in t {
                #expect(r.unit == "ms" && r.goal.on == .ratio && r.goal.op == .atMost && r.goal.threshold == 1.0)
                #expect(r.baselineName?.contains("gloo all_reduce") == true && r.baselineSource == .sameRun)
                #expect(r.value == nil && r.met == nil)
            }
        }
        let cases = BenchRunner.glooCases(.full)
        #expect(cases.map(\.workers) == [2, 2, 4, 4] && cases.map(\.parameters) == [10_000_000, 10_000_000, 1_000_000, 1_000_000])
        #expect(cases.map(\.aggregation) == [.star, .sharded, .star, .sharded])
        #expect(BenchRunner.templatesRoundVsGloo(.full, modes: [.sharded]).map(\.name) == ["round-10m-vs-gloo-sharded", "round-1m-4w-vs-gloo-sharded"])
        #expect(BenchRunner.templatesRoundVsGloo(.full, modes: [.star]).map(\.name) == ["round-10m-vs-gloo", "round-1m-4w-vs-gloo"])
        #expect(BenchRunner.templatesRoundVsGloo(.full)[0].goal.text.contains("moonshot 0.7"))
    }

    @Test func roundBytesTargetsAreAgainstTheAllReduceFloor() {
        let t = BenchRunner.templatesRoundBytes(.full)
        #expect(t.map(\.name) == ["bytes-busiest-n2", "bytes-busiest-n2-sharded", "bytes-busiest-n3", "bytes-busiest-n3-sharded",
                                   "bytes-busiest-n4", "bytes-busiest-n4-sharded"])
        #expect(t.map(\.target) == ["11a", "11a", "11b", "11b", "11c", "11c"])
        for (r, c) in zip(t, BenchRunner.bytesCases(.full)) {
            let floor = 2 * Double(c.workers - 1) / Double(c.workers) * 4 * Double(c.parameters)
            #expect(r.unit == "MB" && r.baseline == floor / 1e6)
            #expect(r.goal.on == .value && r.goal.op == .atMost)
            #expect(abs(r.goal.threshold - (1.1 * floor + BenchRunner.headerAllowance(workers: c.workers)) / 1e6) < 1e-9)
        }
        #expect(BenchRunner.bytesCases(.full).map(\.workers) == [2, 2, 3, 3, 4, 4])
        #expect(BenchRunner.bytesCases(.full, modes: [.star]).map(\.workers) == [2, 3, 4])
    }

    @Test func stressRunsArePregeneratedProcessesAndPassTheAggregationOn() {
        let c = BenchRunner.glooCases(.quick, modes: [.star])[1]
        let plain = BenchRunner.stressArguments(c, aggregation: nil)
        #expect(plain.first == "stress" && plain.contains("--processes") && plain.contains("--pregenerate"))
        #expect(!plain.contains("--aggregation"))
        #expect(Array(plain.drop { $0 != "--workers" }.prefix(2)) == ["--workers", "4"])
        let sharded = BenchRunner.stressArguments(c, aggregation: "sharded")
        #expect(Array(sharded.suffix(2)) == ["--aggregation", "sharded"])
    }

    @Test func crossoverComparesShardedWithStarAndRunsOnlyWhenAskedFor() throws {
        #expect(try BenchGroup.parse("crossover") == [.crossover])
        #expect(!BenchGroup.byDefault.contains(.crossover) && BenchGroup.byDefault.count == BenchGroup.allCases.count - 1)
        #expect(BenchGroup.crossover.number == nil)
        let cases = BenchRunner.crossoverCases(.full)
        #expect(cases.map(\.workers) == [2, 2, 2, 2, 4, 4, 4, 4])
        #expect(cases.map(\.parameters) == [10_000, 100_000, 1_000_000, 10_000_000, 10_000, 100_000, 1_000_000, 10_000_000])
        #expect(cases.allSatisfy { $0.rounds >= 10 && $0.rounds <= 200 })
        for t in BenchRunner.templatesCrossover(.full) {
            #expect(t.unit == "ms" && t.goal.on == .ratio && t.goal.op == .atMost && t.goal.threshold == 1.0)
            #expect(t.baselineName?.contains("star") == true && t.name.hasPrefix("crossover-n"))
        }
    }

    @Test func roundBytesOfTheStressProtocol() {
        let b = RoundBytes.stress(parameters: 1190, leaves: 2, headerSize: 64)
        #expect(b.out == 64 + 4 * 1192)
        #expect(b.back == 64 + 4 * 1191)
    }
}
