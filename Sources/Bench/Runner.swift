#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import RNN
import Series
import Stress
import Training
import Wire
import Support

/// Runs the selected benchmarks in this process and in child processes it starts
/// (`executable`, the running `ztrain`), and collects a ``BenchReport``.
///
/// Every child is ended before ``run(command:version:)`` returns or throws, also when `stop` is
/// raised (Ctrl-C), which makes it throw ``BenchError/interrupted(_:)``. A measurement that fails
/// does not stop the bench: its results carry the error.
public final class BenchRunner {
    /// The `ztrain` binary the bench starts.
    public let executable: URL
    /// `--quick`.
    public let quick: Bool
    /// `.full` or `.quick`.
    public let sizes: BenchSizes
    /// What runs (`--only`, or everything).
    public let selection: Set<BenchGroup>
    /// The PyTorch baselines.
    public let pytorch: PyTorchFigures
    let stop: StopFlag
    let logger: Logger
    let progress: (String) -> Void

    private var floors: [Floor] = []
    private var results: [BenchResult] = []
    private var scratch: URL
    private var runCounter = 0
    private var gemmModelRate: Double?
    private var zmqSmall: [Double]?
    private var zmqBig: [Double]?
    /// Targets 10 and 11: the Python that has torch (`--python`; nil: `python3` on the PATH) and
    /// `scripts/pytorch_baseline.py` (`--baseline-script`; nil: found next to the binary's
    /// checkout or in the current folder).
    public var python: String?
    public var baselineScript: String?
    /// Targets 10 and 11: `--aggregation MODE` passed on to `ztrain stress` (nil: its default).
    public var aggregation: String?
    /// `ztrain stress` reports of this run by "workers×params×rounds×mode", shared by targets 10 and 11.
    var stressRuns: [String: StressReport] = [:]
    /// gloo's figures of this run by "world×params×rounds" (the star and sharded rows share them).
    var glooRuns: [String: Result<GlooFigure, Unavailable>] = [:]

    /// - Parameters:
    ///   - executable: the `ztrain` binary to start (workers, coordinators, echo peers).
    ///   - only: the selection of `--only`; nil runs everything.
    ///   - progress: one line per finished measurement (stderr in the CLI).
    public init(executable: URL, quick: Bool, only: Set<BenchGroup>?, pytorch: PyTorchFigures, stop: StopFlag,
                logger: Logger, progress: @escaping (String) -> Void) {
        self.executable = executable
        self.quick = quick
        sizes = quick ? .quick : .full
        selection = only ?? BenchGroup.byDefault
        self.pytorch = pytorch
        self.stop = stop
        self.logger = logger
        self.progress = progress
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("ztrain-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Runs everything selected and reports. Throws only when interrupted or when the scratch
    /// folder cannot be made.
    public func run(command: String, version: String) throws(BenchError) -> BenchReport {
        let start = ContinuousClock.now
        let date = utcTimestamp("%Y-%m-%dT%H:%M:%SZ")
        let loadAtStart = loadAverage()
        do { try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true) } catch {
            throw .io("cannot create \(scratch.path): \(systemMessage(error))")
        }
        defer { try? FileManager.default.removeItem(at: scratch) }
        _ = OpenBLAS.shared  // loaded (one thread) before the first measurement
        floors = []
        results = []

        if selection.contains(.memcpy) { try attempt([]) { () throws(BenchError) in try measureMemcpy(); return [] } }
        if selection.contains(.gemm) || selection.contains(.singleH256) {
            try attempt([]) { () throws(BenchError) in try measureGemm(); return [] }
        }
        if selection.contains(.singleH32) { try attempt(templatesSingleH32()) { () throws(BenchError) in try singleH32() } }
        if selection.contains(.singleH256) { try attempt(templatesSingleH256()) { () throws(BenchError) in try singleH256() } }
        if selection.contains(.workersH32) || selection.contains(.rss) {
            try attempt(templatesClusterH32()) { () throws(BenchError) in try clusterH32() }
        }
        if selection.contains(.zmq) || selection.contains(.roundH32) {
            try attempt([]) { () throws(BenchError) in try measureZeroMQ(big: false); return [] }
        }
        if selection.contains(.roundH32) { try attempt([templateRoundH32()]) { () throws(BenchError) in try roundH32() } }
        if selection.contains(.zmq) || selection.contains(.round10M) {
            try attempt([]) { () throws(BenchError) in try measureZeroMQ(big: true); return [] }
        }
        if selection.contains(.round10M) { try attempt([templateRound10M()]) { () throws(BenchError) in try round10M() } }
        if selection.contains(.scalingH256) { try attempt([templateScaling()]) { () throws(BenchError) in try scalingH256() } }
        if selection.contains(.timeToTarget) { try attempt(templatesTimeToTarget()) { () throws(BenchError) in try timeToTarget() } }
        if selection.contains(.observe) { try attempt([templateObserve()]) { () throws(BenchError) in try observeOverhead() } }
        stressRuns = [:]
        if selection.contains(.roundVsGloo) {
            for t in templatesRoundVsGloo() { try attempt([t]) { () throws(BenchError) in [try roundVsGloo(t)] } }
        }
        if selection.contains(.roundBytes) {
            for t in templatesRoundBytes() { try attempt([t]) { () throws(BenchError) in [try roundBytes(t)] } }
        }
        if selection.contains(.crossover) {
            for t in templatesCrossover() { try attempt([t]) { () throws(BenchError) in [try crossover(t)] } }
        }
        if selection.contains(.audit) { try attempt(templatesAudit()) { () throws(BenchError) in try auditOverhead() } }
        if selection.contains(.ownerMemory) { try attempt([templateOwnerMemory()]) { () throws(BenchError) in try ownerMemory() } }
        if selection.contains(.csv) || selection.contains(.manySeries) {
            try attempt(templatesSeries()) { () throws(BenchError) in try seriesBenchmarks() }
        }

        return BenchReport(machine: MachineInfo.current(version: version), command: command, date: date, quick: quick,
                           seconds: seconds(since: start), loadAtStart: loadAtStart, loadAtEnd: loadAverage(),
                           pytorch: pytorch, floors: floors, results: results)
    }

    /// Runs `body`; on a failure other than an interruption, records `templates` as failed.
    private func attempt(_ templates: [BenchResult], _ body: () throws(BenchError) -> [BenchResult]) throws(BenchError) {
        if stop.isSet { throw .interrupted(stop.signal) }
        do {
            let r = try body()
            results += r
            for x in r { progress("\(x.target) \(x.name): \(Format.value(x.value, x.unit))  (goal \(x.goal.text): \(Format.met(x.met)))") }
        } catch {
            if case .interrupted = error { throw error }
            if stop.isSet { throw .interrupted(stop.signal) }
            logger.error("\(error)")
            progress("failed: \(error)")
            results += templates.map { $0.failed(error.description) }
        }
    }

    func nextScratch(_ label: String) -> URL {
        runCounter += 1
        return scratch.appendingPathComponent("\(label)-\(runCounter)")
    }

    // MARK: - floors

    private func measureMemcpy() throws(BenchError) {
        let n = sizes.memcpyBytes
        let (median, all) = MemcpyFloor.measure(bytes: n, repetitions: quick ? 3 : 21)
        let mb = Format.number(Double(n) / 1e6)
        floors.append(Floor(name: "memcpy-\(mb)MB", title: "memcpy of \(mb) MB", value: median / 1e9, unit: "GB/s",
                            detail: "median of \(all.count) copies between touched buffers; range \(Stats.spread(all) { Format.number($0 / 1e9) }) GB/s"))
        progress("floor memcpy: \(Format.number(median / 1e9)) GB/s")
    }

    private var bigModel: ModelConfig {
        ModelConfig(inputSize: 2, hiddenSize: sizes.bigHidden, outputSize: 2, seqLen: 4)
    }

    private func measureGemm() throws(BenchError) {
        let reps = quick ? 2 : 5
        let n = sizes.gemmSquare
        let square = try GemmFloor.measure(shapes: GemmFloor.square(n), repetitions: reps, minSeconds: sizes.gemmSeconds)
        floors.append(Floor(name: "gemm-square-\(n)", title: "float32 GEMM \(n)×\(n)×\(n), 1 thread (peak)",
                            value: square.median / 1e9, unit: "GFLOP/s",
                            detail: "cblas_sgemm (\(openblasCore())), openblas_set_num_threads(1), median of \(reps); range \(Stats.spread(square.all) { Format.number($0 / 1e9) })"))
        if stop.isSet { throw .interrupted(stop.signal) }
        let shapes = FlopCount.gemmShapes(bigModel, batch: sizes.bigMicroBatch)
        let model = try GemmFloor.measure(shapes: shapes, repetitions: reps, minSeconds: sizes.gemmSeconds)
        gemmModelRate = model.median
        floors.append(Floor(name: "gemm-model-h\(sizes.bigHidden)-b\(sizes.bigMicroBatch)",
                            title: "float32 GEMM at the H=\(sizes.bigHidden), micro-batch \(sizes.bigMicroBatch) step's shapes, 1 thread",
                            value: model.median / 1e9, unit: "GFLOP/s",
                            detail: "cblas_sgemm over one micro-batch's hidden-layer products (M×N×K×count: \(shapes.map(\.description).joined(separator: ", "))), median of \(reps); range \(Stats.spread(model.all) { Format.number($0 / 1e9) })"))
        progress("floor GEMM: \(Format.number(square.median / 1e9)) GFLOP/s square \(n), \(Format.number(model.median / 1e9)) GFLOP/s at the model's shapes")
    }

    private func openblasCore() -> String {
        (try? OpenBLAS.shared.get()).map { "OpenBLAS core \($0.core)" } ?? "OpenBLAS"
    }

    private var smallParameters: Int { ParameterLayout(ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4)).count }

    private func measureZeroMQ(big: Bool) throws(BenchError) {
        let p = big ? sizes.bigParameters : smallParameters
        let bytes = RoundBytes.stress(parameters: p, leaves: 2, headerSize: Header.size)
        let floor = ZeroMQFloor(executable: executable, peers: 2, bytes: bytes, scratch: scratch)
        let rounds = big ? sizes.bigRounds : sizes.smallFloorRounds
        let warmup = big ? (quick ? 1 : 2) : (quick ? 5 : 200)
        let times = try floor.measure(rounds: rounds, warmup: warmup, stop: stop)
        guard let p50 = Stats.median(times), let p90 = Stats.percentile(times, 90) else {
            throw .measurement("bare ZeroMQ floor: no rounds")
        }
        let what = "ROUTER here, 2 echo processes (DEALER), tcp loopback; per round \(Format.grouped(Double(bytes.out))) B to each, \(Format.grouped(Double(bytes.back))) B back from each; \(times.count) rounds after \(warmup) warm-up"
        if big {
            zmqBig = times
            floors.append(Floor(name: "zmq-round-p\(p)", title: "bare ZeroMQ round of P=\(Format.grouped(Double(p))) (2 peers)", value: p50 * 1e3,
                                unit: "ms", detail: "median; \(what); p90 \(Format.number(p90 * 1e3)) ms; \(Format.number(2 * Double(bytes.out + bytes.back) / p50 / 1e9)) GB/s through this process"))
            progress("floor ZeroMQ \(Format.grouped(Double(bytes.out))) B round: p50 \(Format.number(p50 * 1e3)) ms")
        } else {
            zmqSmall = times
            floors.append(Floor(name: "zmq-round-h32", title: "bare ZeroMQ round of H=32 (P=\(p), 2 peers)", value: p50 * 1e6, unit: "µs",
                                detail: "p50; \(what); p90 \(Format.number(p90 * 1e6)) µs"))
            progress("floor ZeroMQ H=32 round: p50 \(Format.number(p50 * 1e6)) µs")
        }
    }

    // MARK: - targets 1 and 2: the in-process training loop

    /// `InProcessTrainer` (the code `train --in-process` runs) for a fixed number of steps on one
    /// thread: samples / training seconds (`TrainingResult.trainSeconds`: steps only, the per-epoch
    /// evaluation excluded). One short run calibrates the steps so a run takes about
    /// `secondsPerRepetition`, one more warms up, then `repetitions` timed runs from the same
    /// initial weights.
    private func inProcessRates(hidden: Int, batch: Int, microBatch: Int, minSteps: Int) throws(BenchError) -> (rates: [Double], steps: Int) {
        let series: Series
        do { series = try Series.sincos(points: 1000, from: 0, to: 100) } catch {
            throw .measurement("cannot make the sincos series: \(error)")
        }
        func once(_ steps: Int) throws(BenchError) -> Double {
            if stop.isSet { throw .interrupted(stop.signal) }
            let config = TrainingConfig(
                model: ModelConfig(inputSize: 2, hiddenSize: hidden, outputSize: 2, seqLen: 4),
                optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2), data: .sincos(points: 1000, from: 0, to: 100),
                batch: batch, microBatch: microBatch, epochs: nil, steps: steps, seed: 0, shuffle: true, clipNorm: nil,
                targetLoss: nil, validationFraction: 0)
            do {
                let trainer = try InProcessTrainer(config: config, series: series, threads: 1)
                let r = try trainer.run()
                guard r.trainSeconds > 0 else { throw BenchError.measurement("a run of \(steps) steps took no time") }
                return Double(r.samples) / r.trainSeconds
            } catch let e as BenchError {
                throw e
            } catch {
                throw .measurement("in-process training (H=\(hidden), batch \(batch)): \(error)")
            }
        }
        let probe = try once(minSteps)
        let steps = min(1_000_000, max(minSteps, Int(sizes.secondsPerRepetition * probe / Double(batch))))
        _ = try once(steps)
        var rates: [Double] = []
        for _ in 0..<sizes.repetitions { rates.append(try once(steps)) }
        return (rates, steps)
    }

    private func templatesSingleH32() -> [BenchResult] {
        [BenchResult(name: "single-h32", target: "1", title: "1 thread, seed cell, H=32, batch 32", value: nil, unit: "samples/s",
                     baseline: pytorch.eagerH32.value, baselineName: "PyTorch eager loop", baselineSource: pytorch.eagerH32.source,
                     goal: Goal(on: .value, op: .atLeast, threshold: 1_000_000, text: "≥ 1,000,000 samples/s"), detail: "")]
    }

    private func singleH32() throws(BenchError) -> [BenchResult] {
        let micro = min(8, 32)
        let (rates, steps) = try inProcessRates(hidden: 32, batch: 32, microBatch: micro, minSteps: 30)
        var r = templatesSingleH32()[0]
        r = BenchResult(name: r.name, target: r.target, title: r.title, value: Stats.median(rates), unit: r.unit,
                        baseline: r.baseline, baselineName: r.baselineName, baselineSource: r.baselineSource, goal: r.goal,
                        detail: "InProcessTrainer (train --in-process), threads 1, micro-batch \(micro) (default), Adam; \(steps) steps × \(rates.count) runs after a warm-up, training steps only; median, runs \(Stats.spread(rates, Format.number)) samples/s; \(Format.grouped(FlopCount.perSample(ModelConfig(inputSize: 2, hiddenSize: 32, outputSize: 2, seqLen: 4)))) FLOP/sample")
        return [r]
    }

    private func templatesSingleH256() -> [BenchResult] {
        let H = sizes.bigHidden, B = sizes.bigBatch
        return [
            BenchResult(name: "single-h256-vs-pytorch", target: "2a", title: "1 thread, H=\(H), batch \(B)", value: nil, unit: "samples/s",
                        baseline: pytorch.eagerH256.value, baselineName: "PyTorch eager loop", baselineSource: pytorch.eagerH256.source,
                        goal: Goal(on: .ratio, op: .atLeast, threshold: 1.05, text: "≥ 1.05× PyTorch"), detail: ""),
            BenchResult(name: "single-h256-gemm-fraction", target: "2b", title: "1 thread, H=\(H), batch \(B): FLOP rate", value: nil,
                        unit: "GFLOP/s", baseline: gemmModelRate.map { $0 / 1e9 }, baselineName: "cblas_sgemm at the model's shapes",
                        baselineSource: .sameRun, goal: Goal(on: .ratio, op: .atLeast, threshold: 0.9, text: "≥ 0.9× GEMM"), detail: ""),
        ]
    }

    private func singleH256() throws(BenchError) -> [BenchResult] {
        let H = sizes.bigHidden, B = sizes.bigBatch
        let M = sizes.bigMicroBatch
        let (rates, steps) = try inProcessRates(hidden: H, batch: B, microBatch: M, minSteps: 2)
        let median = Stats.median(rates)
        let flops = FlopCount.perSample(bigModel)
        let t = templatesSingleH256()
        let common = "InProcessTrainer, threads 1, micro-batch \(M) (\((B + M - 1) / M) leaves), Adam; \(steps) steps × \(rates.count) runs after a warm-up, training steps only; median, runs \(Stats.spread(rates, Format.number)) samples/s"
        let a = BenchResult(name: t[0].name, target: t[0].target, title: t[0].title, value: median, unit: t[0].unit,
                            baseline: t[0].baseline, baselineName: t[0].baselineName, baselineSource: t[0].baselineSource,
                            goal: t[0].goal, detail: common)
        let b = BenchResult(name: t[1].name, target: t[1].target, title: t[1].title, value: median.map { $0 * flops / 1e9 },
                            unit: t[1].unit, baseline: t[1].baseline, baselineName: t[1].baselineName,
                            baselineSource: t[1].baselineSource, goal: t[1].goal,
                            detail: "samples/s × \(Format.grouped(flops)) FLOP/sample (\(FlopCount.formula)) ÷ the GEMM floor at the step's shapes measured in this run; the goal ≥ 0.9× means ≥ \(gemmModelRate.map { Format.grouped(0.9 * $0 / flops) } ?? "n/a") samples/s")
        return [a, b]
    }

    // MARK: - targets 3 and 7: train --workers 2, H=32

    struct ClusterRun {
        var samplesPerSecond: Double
        var summary: SummaryFigures
        var seconds: Double
        var coordinatorPeak: Int?
        var workerPeaks: [Int]
    }

    /// The figures of a run's summary.json that the bench reads (``RunSummary``'s snake-case keys).
    struct SummaryFigures: Decodable {
        var samplesPerSecond: Double?
        var targetReached: Bool?
        var finalLoss: Double?
        var epochs: Int?
    }

    /// Starts `ztrain ARGS --out DIR --quiet`, waits for it (sampling VmHWM of it and its children
    /// every 5 ms when `sampleMemory`), and reads its summary.json. The process and its workers are
    /// ended on a stop, a timeout or an error.
    func train(_ args: [String], label: String, sampleMemory: Bool, timeout: Double = 600) throws(BenchError) -> ClusterRun {
        let out = nextScratch(label)
        defer { try? FileManager.default.removeItem(at: out) }
        let child = try ChildProcess(executable: executable.path, arguments: ["train"] + args + ["--out", out.path, "--quiet"],
                                     label: "ztrain train \(args.joined(separator: " "))",
                                     stderrPath: out.path + ".stderr")
        var sampler = PeakSampler()
        var seen = Set<pid_t>()
        defer {
            if !child.hasExited { child.terminate(grace: 5) }
            // its workers exit with it (--parent-pid); make sure of that
            for pid in seen where commandLine(of: pid).contains(String(child.pid)) { kill(pid, SIGTERM) }
            try? FileManager.default.removeItem(atPath: out.path + ".stderr")
        }
        while !child.wait(timeout: sampleMemory ? 0.005 : 0.05) {
            if stop.isSet { throw .interrupted(stop.signal) }
            if seconds(since: child.started) > timeout {
                throw .measurement("\(child.label) did not finish within \(Int(timeout)) s")
            }
            let kids = child.children
            seen.formUnion(kids)
            if sampleMemory { sampler.sample([child.pid] + kids) }
        }
        guard let outcome = child.outcome, outcome.ok else {
            throw .process("\(child.label) \(child.outcome?.text ?? "?"): \(child.stderrTail())")
        }
        let summaryURL = out.appendingPathComponent("summary.json")
        guard let data = FileManager.default.contents(atPath: summaryURL.path),
              let summary = try? JSONStyle.files.decode(SummaryFigures.self, from: data) else {
            throw .process("\(child.label) wrote no readable \(summaryURL.path)")
        }
        let rate = summary.samplesPerSecond ?? 0
        return ClusterRun(samplesPerSecond: rate, summary: summary, seconds: child.lifetime ?? 0,
                          coordinatorPeak: sampler.peaks[child.pid],
                          workerPeaks: sampler.peaks.filter { $0.key != child.pid }.map(\.value))
    }

    private func templatesClusterH32() -> [BenchResult] {
        var out: [BenchResult] = []
        if selection.contains(.workersH32) {
            out.append(BenchResult(name: "workers2-h32", target: "3", title: "train --workers 2, H=32, global batch 64", value: nil,
                                   unit: "samples/s", baseline: pytorch.ddp.value, baselineName: "PyTorch DDP gloo 2×1",
                                   baselineSource: pytorch.ddp.source,
                                   goal: Goal(on: .value, op: .atLeast, threshold: 250_000, text: "≥ 250,000 samples/s"), detail: ""))
        }
        if selection.contains(.rss) {
            out.append(BenchResult(name: "rss-worker", target: "7a", title: "peak RSS of a worker, H=32", value: nil, unit: "MB",
                                   goal: Goal(on: .value, op: .atMost, threshold: 20, text: "≤ 20 MB"), detail: ""))
            out.append(BenchResult(name: "rss-coordinator", target: "7b", title: "peak RSS of the coordinator, H=32", value: nil, unit: "MB",
                                   goal: Goal(on: .value, op: .atMost, threshold: 30, text: "≤ 30 MB"), detail: ""))
        }
        return out
    }

    private func clusterH32() throws(BenchError) -> [BenchResult] {
        func args(_ steps: Int) -> [String] { ["--workers", "2", "--threads", "1", "--batch", "64", "--steps", String(steps)] }
        var steps = 30
        if !quick {
            let probe = try train(args(150), label: "workers-h32", sampleMemory: true)
            steps = min(100_000, max(150, Int(sizes.clusterSeconds * probe.samplesPerSecond / 64)))
        }
        var runs: [ClusterRun] = []
        for _ in 0..<sizes.clusterRuns { runs.append(try train(args(steps), label: "workers-h32", sampleMemory: true)) }
        let rates = runs.map(\.samplesPerSecond)
        let worker = runs.flatMap(\.workerPeaks).max()
        let coordinator = runs.compactMap(\.coordinatorPeak).max()
        let workersSeen = runs.map(\.workerPeaks.count)
        let memoryDetail = "VmHWM of /proc/PID/status sampled every 5 ms while the processes ran (last value before exit), largest over \(runs.count) run(s) of train --workers 2 --batch 64 --steps \(steps) (workers seen per run: \(workersSeen.map(String.init).joined(separator: ", ")))"
        var out: [BenchResult] = []
        for t in templatesClusterH32() {
            switch t.name {
            case "workers2-h32":
                out.append(BenchResult(name: t.name, target: t.target, title: t.title, value: Stats.median(rates), unit: t.unit,
                                       baseline: t.baseline, baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal,
                                       detail: "ztrain train --workers 2 --threads 1 --batch 64 --steps \(steps) (micro-batch 8, ipc://), summary.json samples_per_second (samples ÷ the coordinator's step time, evaluation excluded); median of \(runs.count), runs \(Stats.spread(rates, Format.number))"))
            case "rss-worker":
                let detail = memoryDetail + (worker.map { "; = \(Format.number(Double($0) / 1_048_576)) MiB (MB here are 10⁶ bytes)" } ?? "")
                out.append(worker == nil ? t.failed("no worker process was seen while the runs lasted")
                           : BenchResult(name: t.name, target: t.target, title: t.title, value: worker.map { Double($0) / 1e6 }, unit: t.unit,
                                         goal: t.goal, detail: detail))
            case "rss-coordinator":
                let detail = memoryDetail + (coordinator.map { "; = \(Format.number(Double($0) / 1_048_576)) MiB (MB here are 10⁶ bytes)" } ?? "")
                out.append(coordinator == nil ? t.failed("the coordinator's /proc/PID/status could not be read")
                           : BenchResult(name: t.name, target: t.target, title: t.title, value: coordinator.map { Double($0) / 1e6 }, unit: t.unit,
                                         goal: t.goal, detail: detail))
            default:
                break
            }
        }
        return out
    }

    // MARK: - targets 4 and 5: aggregation rounds (ztrain stress)

    private func stress(parameters p: Int, rounds: Int) throws(BenchError) -> StressReport {
        var log = logger
        log.logLevel = max(logger.logLevel, .warning)
        var config = StressConfig(workers: 2, parameterCount: p, rounds: rounds, transport: .tcp)
        // the workers' seeded generation happens before each round, not inside the figure
        config.pregenerate = true
        let report: StressReport
        do {
            let harness = try StressHarness(config: config, mode: .processes(executable: executable), logger: log)
            report = try harness.run(stop: stop)
        } catch {
            throw .measurement("ztrain stress --workers 2 --params \(p) --processes: \(error)")
        }
        if report.interruptedBy != 0 || stop.isSet { throw .interrupted(report.interruptedBy != 0 ? report.interruptedBy : stop.signal) }
        guard report.passed else {
            throw .measurement("ztrain stress --workers 2 --params \(p): \(report.problems.joined(separator: "; "))")
        }
        return report
    }

    /// Seconds a stress worker spends making one leaf's seeded gradient of `p` values (median of
    /// `repetitions`): compute that the stress round includes and a real round would not.
    private func generationSeconds(parameters p: Int, repetitions: Int) -> Double {
        let gen = LeafGradients(seed: 0, parameterCount: p, leafCount: 2)
        let matrix = LeafMatrix(rows: 2)
        let weights = [Float](repeating: 0.5, count: p)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: p + 1)
        defer { out.deallocate() }
        var times: [Double] = []
        weights.withUnsafeBufferPointer { w in
            for r in 0..<max(1, repetitions) {
                let t0 = ContinuousClock.now
                gen.nodeSum(round: UInt64(r + 1), block: 0..<1, columns: 0..<(p + 1), weights: w, matrix: matrix, into: out)
                times.append(seconds(since: t0))
            }
        }
        return Stats.median(times) ?? 0
    }

    /// Seconds of one Adam update of `p` parameters (median of `repetitions`): the coordinator's
    /// optimizer step, which the stress round leaves out.
    private func adamSeconds(parameters p: Int, repetitions: Int) -> Double {
        var optimizer = Optimizer<Float>(config: OptimizerConfig(kind: .adam, learningRate: 1e-2), parameterCount: p)
        var params = [Float](repeating: 0.1, count: p)
        let gradient = [Float](repeating: 1e-3, count: p)
        var times: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let t0 = ContinuousClock.now
            optimizer.update(&params, gradient: gradient)
            times.append(seconds(since: t0))
        }
        return Stats.median(times) ?? 0
    }

    private func templateRoundH32() -> BenchResult {
        BenchResult(name: "round-h32", target: "4", title: "aggregation round, H=32 (P=\(smallParameters)), 2 worker processes, tcp",
                    value: nil, unit: "µs", baseline: zmqSmall.flatMap(Stats.median).map { $0 * 1e6 },
                    baselineName: "bare ZeroMQ round, same bytes", baselineSource: .sameRun,
                    goal: Goal(on: .ratio, op: .atMost, threshold: 3, text: "≤ 3× bare ZeroMQ"), detail: "")
    }

    private func roundH32() throws(BenchError) -> [BenchResult] {
        let report = try stress(parameters: smallParameters, rounds: sizes.smallRounds)
        let gen = generationSeconds(parameters: smallParameters, repetitions: 101)
        let adam = adamSeconds(parameters: smallParameters, repetitions: 101)
        let t = templateRoundH32()
        let l = report.aggregationLatencyMicros ?? report.latencyMicros
        return [BenchResult(name: t.name, target: t.target, title: t.title, value: Double(l.p50), unit: t.unit, baseline: t.baseline,
                            baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal,
                            detail: "StressHarness (ztrain stress --workers 2 --params \(smallParameters) --processes --pregenerate), \(report.rounds) rounds, no faults: p50 from StepAggregator.begin (ASSIGN out) to the exact reduced aggregate, without the workers' seeded gradient generation (\(Format.number(gen * 1e6)) µs per leaf, measured here: done before each round, the on-receipt loss value subtracted; p50 with it \(report.latencyMicros.p50) µs); outside it: ASSIGN encoding and the weight update (Adam on P floats: \(Format.number(adam * 1e6)) µs, measured here); p90 \(l.p90) µs, p99 \(l.p99) µs")]
    }

    private func templateRound10M() -> BenchResult {
        let p = sizes.bigParameters
        return BenchResult(name: "round-10m", target: "5", title: "aggregation round, P=\(Format.grouped(Double(p))), 2 worker processes, tcp",
                           value: nil, unit: "ms", baseline: zmqBig.flatMap(Stats.median).map { $0 * 1e3 },
                           baselineName: "bare ZeroMQ round, same bytes", baselineSource: .sameRun,
                           goal: Goal(on: .ratio, op: .atMost, threshold: 1.5, text: "≤ 1.5× bare ZeroMQ"), detail: "",
                           reference: Reference(name: "gloo all_reduce of 1e7 floats, 2 ranks", value: pytorch.allreduce1e7.value,
                                                unit: "ms", source: pytorch.allreduce1e7.source))
    }

    private func round10M() throws(BenchError) -> [BenchResult] {
        let p = sizes.bigParameters
        let report = try stress(parameters: p, rounds: sizes.bigRounds)
        let gen = generationSeconds(parameters: p, repetitions: quick ? 1 : 3)
        let adam = adamSeconds(parameters: p, repetitions: quick ? 1 : 3)
        let t = templateRound10M()
        let l = report.aggregationLatencyMicros ?? report.latencyMicros
        return [BenchResult(name: t.name, target: t.target, title: t.title, value: Double(l.p50) / 1e3, unit: t.unit,
                            baseline: t.baseline, baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal,
                            detail: "StressHarness (--pregenerate), \(report.rounds) rounds, no faults: p50 from ASSIGN out to the exact aggregate, both sides' checksums included, without the workers' seeded gradient generation (\(Format.number(gen * 1e3)) ms per leaf measured here on one core: done before each round, the on-receipt loss value and copy subtracted; p50 with them \(Format.number(Double(report.latencyMicros.p50) / 1e3)) ms); outside it: the weight update, Adam on P floats \(Format.number(adam * 1e3)) ms measured here; p90 \(Format.number(Double(l.p90) / 1e3)) ms; coordinator peak RSS \(report.peakRSS.map { Format.number(Double($0) / 1e6) } ?? "n/a") MB",
                            reference: t.reference)]
    }

    // MARK: - target 6: scaling

    private func templateScaling() -> BenchResult {
        BenchResult(name: "scaling-h256", target: "6",
                    title: "2 workers × 1 thread vs 1, H=\(sizes.scalingHidden), batch \(sizes.scalingBatch), micro-batch \(sizes.scalingMicroBatch)",
                    value: nil, unit: "samples/s", baselineName: "1 worker, same settings", baselineSource: .sameRun,
                    goal: Goal(on: .ratio, op: .atLeast, threshold: 1.8, text: "≥ 1.8× one worker"), detail: "")
    }

    private func scalingH256() throws(BenchError) -> [BenchResult] {
        func args(_ workers: Int, _ steps: Int) -> [String] {
            ["--workers", String(workers), "--threads", "1", "--hidden", String(sizes.scalingHidden), "--batch", String(sizes.scalingBatch),
             "--micro-batch", String(sizes.scalingMicroBatch), "--steps", String(steps)]
        }
        var steps = 3
        if !quick {
            let probe = try train(args(1, 2), label: "scaling", sampleMemory: false)
            steps = min(10_000, max(3, Int(sizes.scalingSeconds * probe.samplesPerSecond / Double(sizes.scalingBatch))))
        }
        var one: [Double] = [], two: [Double] = []
        for _ in 0..<sizes.scalingRuns {
            one.append(try train(args(1, steps), label: "scaling-1", sampleMemory: false).samplesPerSecond)
            two.append(try train(args(2, steps), label: "scaling-2", sampleMemory: false).samplesPerSecond)
        }
        let t = templateScaling()
        return [BenchResult(name: t.name, target: t.target, title: t.title, value: Stats.median(two), unit: t.unit,
                            baseline: Stats.median(one), baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal,
                            detail: "ztrain train --workers 2 vs --workers 1, --threads 1, --steps \(steps), summary.json samples_per_second; medians of \(two.count) alternating runs each; 2 workers \(Stats.spread(two, Format.number)), 1 worker \(Stats.spread(one, Format.number))")]
    }

    // MARK: - target 8: time to MSE < 1e-4

    private func templatesTimeToTarget() -> [BenchResult] {
        [BenchResult(name: "time-to-target-in-process", target: "8a", title: "reference task to MSE < 1e-4, in-process, whole process",
                     value: nil, unit: "s", baseline: pytorch.timeToTarget.value, baselineName: "PyTorch eager loop (training loop only)",
                     baselineSource: pytorch.timeToTarget.source, goal: Goal(on: .value, op: .atMost, threshold: 0.1, text: "≤ 0.1 s"), detail: ""),
         BenchResult(name: "time-to-target-workers2", target: "8b", title: "reference task to MSE < 1e-4, --workers 2, whole process",
                     value: nil, unit: "s", baseline: pytorch.timeToTarget.value, baselineName: "PyTorch eager loop (training loop only)",
                     baselineSource: pytorch.timeToTarget.source, goal: Goal(on: .value, op: .atMost, threshold: 0.5, text: "≤ 0.5 s"), detail: "")]
    }

    private func timeToTarget() throws(BenchError) -> [BenchResult] {
        let t = templatesTimeToTarget()
        var out: [BenchResult] = []
        for (template, mode) in zip(t, [["--in-process"], ["--workers", "2"]]) {
            let args = mode + ["--target-loss", "1e-4"]
            do throws(BenchError) {
                if !quick { _ = try train(args, label: "time", sampleMemory: false) }  // warm-up: page cache, dynamic linking
                var times: [Double] = []
                var epochs: [Int] = []
                for _ in 0..<sizes.timeRuns {
                    let run = try train(args, label: "time", sampleMemory: false)
                    guard run.summary.targetReached == true else {
                        throw .measurement("ztrain train \(args.joined(separator: " ")) stopped without reaching MSE < 1e-4 (final \(run.summary.finalLoss.map { "\($0)" } ?? "?"))")
                    }
                    times.append(run.seconds)
                    epochs.append(run.summary.epochs ?? 0)
                }
                out.append(BenchResult(name: template.name, target: template.target, title: template.title, value: Stats.median(times),
                                       unit: template.unit, baseline: template.baseline, baselineName: template.baselineName,
                                       baselineSource: template.baselineSource, goal: template.goal,
                                       detail: "ztrain train \(args.joined(separator: " ")) --out TMP --quiet, from posix_spawn to exit (start-up, data, training, per-epoch evaluation, outputs); median of \(times.count)\(quick ? "" : " after a warm-up run"), range \(Stats.spread(times, Format.number)) s; epochs \(epochs.map(String.init).joined(separator: ", "))"))
            } catch {
                if case .interrupted = error { throw error }
                out.append(template.failed(error.description))
            }
        }
        return out
    }
}
