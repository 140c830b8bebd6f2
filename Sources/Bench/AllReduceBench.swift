#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Stress
import Wire
import Support

/// Targets 10 and 11: ztrain's aggregation round against gloo's `all_reduce` of the same floats,
/// both measured in this run, and the busiest process's bytes per round against the all-reduce
/// floor.
///
/// ztrain's side runs as a child: `ztrain stress --processes --pregenerate --workers N --params P
/// --rounds K --json FILE`, once as the star and once sharded (`--aggregation sharded`; only the
/// mode the bench was given with `--aggregation MODE`), and the figure is the round latency without
/// the workers' generation (`aggregation_latency_micros`). Each comparison has a row per mode
/// (the sharded one's name ends in `-sharded`), both against the same gloo figure.
/// gloo's side is `scripts/pytorch_baseline.py --allreduce --world N --params P --rounds K` under
/// the Python of `--python` (default: `python3` on the PATH); when that cannot run (no torch, no
/// script), the result keeps ztrain's figure and says why the baseline is unavailable.
extension BenchRunner {
    /// One comparison of target 10.
    struct GlooCase {
        var name: String
        var target: String
        var workers: Int
        var parameters: Int
        var rounds: Int
        /// How the stress run aggregates (the star runs without the flag: stress's default).
        var aggregation: StressAggregation = .star
    }

    /// Both modes, star first.
    static let bothModes: [StressAggregation] = [.star, .sharded]

    /// The modes a run measures: `--aggregation MODE`'s, or both.
    var modes: [StressAggregation] { aggregation.flatMap(StressAggregation.init(rawValue:)).map { [$0] } ?? Self.bothModes }

    /// `cases` once per mode (star rows keep their names, sharded rows get `-sharded`), by case.
    static func perMode(_ cases: [GlooCase], _ modes: [StressAggregation]) -> [GlooCase] {
        cases.flatMap { c in
            modes.map { mode in
                var x = c
                x.aggregation = mode
                if mode != .star { x.name += "-\(mode.rawValue)" }
                return x
            }
        }
    }

    static func glooCases(_ sizes: BenchSizes, modes: [StressAggregation] = bothModes) -> [GlooCase] {
        perMode([GlooCase(name: "round-10m-vs-gloo", target: "10a", workers: 2, parameters: sizes.glooBigParameters, rounds: sizes.glooBigRounds),
                 GlooCase(name: "round-1m-4w-vs-gloo", target: "10b", workers: 4, parameters: sizes.glooSmallParameters, rounds: sizes.glooSmallRounds)],
                modes)
    }

    var glooCases: [GlooCase] { Self.glooCases(sizes, modes: modes) }
    var bytesCases: [GlooCase] { Self.bytesCases(sizes, modes: modes) }

    /// Target 11's runs: N = 2 and N = 4 are target 10's (shared when both run), N = 3 its own.
    static func bytesCases(_ sizes: BenchSizes, modes: [StressAggregation] = bothModes) -> [GlooCase] {
        perMode([GlooCase(name: "bytes-busiest-n2", target: "11a", workers: 2, parameters: sizes.glooBigParameters, rounds: sizes.glooBigRounds),
                 GlooCase(name: "bytes-busiest-n3", target: "11b", workers: 3, parameters: sizes.bytesParameters, rounds: sizes.bytesRounds),
                 GlooCase(name: "bytes-busiest-n4", target: "11c", workers: 4, parameters: sizes.glooSmallParameters, rounds: sizes.glooSmallRounds)],
                modes)
    }

    /// Header bytes allowed on top of the floor per round: two messages per worker, each a
    /// 64-byte header and up to 64 bytes of trailer or window starts.
    static func headerAllowance(workers n: Int) -> Double { Double(2 * n * (Header.size + 64)) }

    func templatesRoundVsGloo() -> [BenchResult] { Self.templatesRoundVsGloo(sizes, modes: modes) }
    func templatesRoundBytes() -> [BenchResult] { Self.templatesRoundBytes(sizes, modes: modes) }

    static func templatesRoundVsGloo(_ sizes: BenchSizes, modes: [StressAggregation] = bothModes) -> [BenchResult] {
        glooCases(sizes, modes: modes).map { c in
            BenchResult(name: c.name, target: c.target,
                        title: "aggregation round without generation, \(c.aggregation.rawValue), P=\(Format.grouped(Double(c.parameters))), \(c.workers) worker processes, tcp",
                        value: nil, unit: "ms", baselineName: "gloo all_reduce, \(c.workers) ranks, same floats", baselineSource: .sameRun,
                        goal: Goal(on: .ratio, op: .atMost, threshold: 1.0, text: c.workers == 2 ? "≤ 1.0× gloo (moonshot 0.7×)" : "≤ 1.0× gloo"),
                        detail: "")
        }
    }

    static func templatesRoundBytes(_ sizes: BenchSizes, modes: [StressAggregation] = bothModes) -> [BenchResult] {
        bytesCases(sizes, modes: modes).map { c in
            let floor = StressBytes.floor(workers: c.workers, parameterCount: c.parameters)
            let limit = 1.1 * floor + Self.headerAllowance(workers: c.workers)
            return BenchResult(name: c.name, target: c.target,
                               title: "busiest process's bytes per round, \(c.aggregation.rawValue), P=\(Format.grouped(Double(c.parameters))), \(c.workers) worker processes",
                               value: nil, unit: "MB", baseline: floor / 1e6, baselineName: "all-reduce floor 2·(N−1)/N·4P",
                               baselineSource: .sameRun,
                               goal: Goal(on: .value, op: .atMost, threshold: limit / 1e6, text: "≤ 1.1× floor + headers"), detail: "")
        }
    }

    func roundVsGloo(_ t: BenchResult) throws(BenchError) -> BenchResult {
        guard let c = glooCases.first(where: { $0.name == t.name }) else { throw .measurement("no comparison named \(t.name)") }
        let report = try stressRun(c)
        guard let a = report.aggregationLatencyMicros, report.exactRounds > 0 else {
            throw .measurement("ztrain stress wrote no aggregation latency (an older binary?)")
        }
        let gloo = glooFigure(world: c.workers, parameters: c.parameters, rounds: c.rounds)
        let g = report.generationMicros.map { Format.number(Double($0.p50) / 1e3) } ?? "n/a"
        let bytes = report.bytesPerRound.map { b in
            "; busiest process \(b.busiest): \(Format.number(b.busiestBytes / 1e6)) MB per round" + (b.busiestToFloor.map { " = \(Format.number($0))× the all-reduce floor" } ?? "")
        } ?? ""
        let span = c.aggregation == .sharded
            ? "p50 from the ORDERs of round r (every worker holds its node sums) to the last worker's report that it holds the whole reduced vector (digests checked), minus the on-receipt generation "
            : "p50 from the ASSIGN of round r (weights out) to the exact aggregate at the coordinator, minus the on-receipt generation "
        var detail = "\(stressCommand(c)): \(report.exactRounds) exact rounds, aggregation \(c.aggregation.rawValue); "
            + span
            + "(the workers generate their gradients before the round begins: p50 \(g) ms per round, outside the figure); "
            + "p90 \(Format.number(Double(a.p90) / 1e3)) ms, round latency before the subtraction p50 \(Format.number(Double(report.latencyMicros.p50) / 1e3)) ms\(bytes)"
        switch gloo {
        case .success(let figure):
            detail += "; gloo: \(figure.command), p50 of \(figure.rounds) rounds, torch \(figure.torch)"
            return BenchResult(name: t.name, target: t.target, title: t.title, value: Double(a.p50) / 1e3, unit: t.unit,
                               baseline: figure.p50Millis, baselineName: t.baselineName, baselineSource: .sameRun, goal: t.goal,
                               detail: detail)
        case .failure(let why):
            detail += "; gloo baseline unavailable: \(why.text)"
            return BenchResult(name: t.name, target: t.target, title: t.title, value: Double(a.p50) / 1e3, unit: t.unit,
                               baseline: nil, baselineName: "gloo all_reduce: baseline unavailable (\(why.text))", baselineSource: nil,
                               goal: t.goal, detail: detail)
        }
    }

    func roundBytes(_ t: BenchResult) throws(BenchError) -> BenchResult {
        guard let c = bytesCases.first(where: { $0.name == t.name }) else { throw .measurement("no byte count named \(t.name)") }
        let report = try stressRun(c)
        guard let b = report.bytesPerRound else { throw .measurement("ztrain stress wrote no bytes per round (an older binary?)") }
        let each = ([b.coordinator] + b.workers).map { "\($0.process) in \(Format.number($0.bytesIn / 1e6)) out \(Format.number($0.bytesOut / 1e6))" }
        let detail = "\(stressCommand(c)), aggregation \(c.aggregation.rawValue): MB per round over \(b.rounds) rounds: "
            + each.joined(separator: ", ") + "; busiest \(b.busiest) (the larger direction); goal ≤ 1.1 × \(Format.number(b.floorBytes / 1e6)) MB "
            + "+ \(Int(Self.headerAllowance(workers: c.workers))) bytes of headers"
        return BenchResult(name: t.name, target: t.target, title: t.title, value: b.busiestBytes / 1e6, unit: t.unit,
                           baseline: t.baseline, baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal,
                           detail: detail)
    }

    /// The case's `ztrain stress` arguments (the star without `--aggregation`: stress's default).
    func stressArguments(_ c: GlooCase) -> [String] { Self.stressArguments(c, aggregation: c.aggregation == .star ? nil : c.aggregation.rawValue) }

    /// The `ztrain stress` arguments of a run (`--aggregation` only when given).
    static func stressArguments(_ c: GlooCase, aggregation: String?) -> [String] {
        ["stress", "--processes", "--pregenerate", "--workers", String(c.workers), "--params", String(c.parameters),
         "--rounds", String(c.rounds)] + (aggregation.map { ["--aggregation", $0] } ?? [])
    }

    func stressCommand(_ c: GlooCase) -> String { "ztrain " + stressArguments(c).joined(separator: " ") }

    /// `ztrain stress --processes --pregenerate …` as a child (once per size and mode in a bench run).
    func stressRun(_ c: GlooCase) throws(BenchError) -> StressReport {
        let key = "\(c.workers)x\(c.parameters)x\(c.rounds)x\(c.aggregation.rawValue)"
        if let done = stressRuns[key] { return done }
        let out = nextScratch("stress")
        let json = out.path + ".json", stderr = out.path + ".stderr"
        defer {
            try? FileManager.default.removeItem(atPath: json)
            try? FileManager.default.removeItem(atPath: stderr)
        }
        let child = try ChildProcess(executable: executable.path, arguments: stressArguments(c) + ["--json", json, "--log-level", "warning"],
                                     label: stressCommand(c), stderrPath: stderr)
        defer { if !child.hasExited { child.terminate(grace: 5) } }
        let timeout = 600.0
        while !child.wait(timeout: 0.05) {
            if stop.isSet { throw .interrupted(stop.signal) }
            if seconds(since: child.started) > timeout { throw .measurement("\(child.label) did not finish within \(Int(timeout)) s") }
        }
        guard let data = FileManager.default.contents(atPath: json) else {
            throw .process("\(child.label) \(child.outcome?.text ?? "?") without a report: \(child.stderrTail())")
        }
        let report: StressReport
        do { report = try JSONStyle.files.decode(StressReport.self, from: data) } catch {
            throw .process("\(child.label) wrote an unreadable report: \(error)")
        }
        guard report.passed else { throw .measurement("\(child.label): \(report.problems.joined(separator: "; "))") }
        stressRuns[key] = report
        return report
    }

    /// gloo's all_reduce p50, or why it could not be measured.
    struct GlooFigure {
        var p50Millis: Double
        var rounds: Int
        var torch: String
        var command: String
    }

    struct Unavailable: Error {
        var text: String
    }

    /// gloo's figure for these sizes, measured once per bench run (the star and sharded rows share it).
    func glooFigure(world: Int, parameters: Int, rounds: Int) -> Result<GlooFigure, Unavailable> {
        let key = "\(world)x\(parameters)x\(rounds)"
        if let done = glooRuns[key] { return done }
        let figure = glooAllReduce(world: world, parameters: parameters, rounds: rounds)
        glooRuns[key] = figure
        return figure
    }

    func glooAllReduce(world: Int, parameters: Int, rounds: Int) -> Result<GlooFigure, Unavailable> {
        guard let python = python ?? findOnPath("python3") else {
            return .failure(Unavailable(text: "no python3 on the PATH (pass --python)"))
        }
        guard let script = baselineScript ?? findBaselineScript() else {
            return .failure(Unavailable(text: "scripts/pytorch_baseline.py not found (pass --baseline-script)"))
        }
        let args = [script, "--allreduce", "--world", String(world), "--params", String(parameters), "--rounds", String(rounds)]
        let command = "python " + (["scripts/pytorch_baseline.py"] + args.dropFirst()).joined(separator: " ")
        let out = nextScratch("gloo")
        let stdout = out.path + ".json", stderr = out.path + ".stderr"
        defer {
            try? FileManager.default.removeItem(atPath: stdout)
            try? FileManager.default.removeItem(atPath: stderr)
        }
        let child: ChildProcess
        do { child = try ChildProcess(executable: python, arguments: args, label: command, stderrPath: stderr, stdoutPath: stdout) } catch {
            return .failure(Unavailable(text: "\(error)"))
        }
        defer { if !child.hasExited { child.terminate(grace: 5) } }
        while !child.wait(timeout: 0.05) {
            if stop.isSet { return .failure(Unavailable(text: "interrupted")) }
            if seconds(since: child.started) > 600 { return .failure(Unavailable(text: "\(command) did not finish within 600 s")) }
        }
        guard child.outcome?.ok == true else {
            let tail = child.stderrTail(lines: 3)
            if tail.contains("No module named") {
                return .failure(Unavailable(text: "\(python) cannot import torch or numpy (scripts/bench --pytorch makes a virtual environment with them; or pass --python)"))
            }
            return .failure(Unavailable(text: "\(command) \(child.outcome?.text ?? "?"): \(tail)"))
        }
        guard let data = FileManager.default.contents(atPath: stdout),
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let tree = try? JSONStyle.canonical.decode([String: JSONTree].self, from: String(line)),
              let p50 = tree["p50_ms"]?.number, p50.isFinite, p50 > 0 else {
            return .failure(Unavailable(text: "\(command) printed no p50_ms"))
        }
        var torch = "?"
        if case .string(let v)? = tree["torch"] { torch = v }
        return .success(GlooFigure(p50Millis: p50, rounds: rounds, torch: torch, command: command))
    }

    /// `scripts/pytorch_baseline.py` of the checkout the binary was built in (up to four folders
    /// above it), else of the current folder.
    func findBaselineScript() -> String? {
        var dir = executable.deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("scripts/pytorch_baseline.py").path
            if FileManager.default.isReadableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let local = FileManager.default.currentDirectoryPath + "/scripts/pytorch_baseline.py"
        return FileManager.default.isReadableFile(atPath: local) ? local : nil
    }
}

/// The first executable `name` in the folders of `PATH`.
func findOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") where !dir.isEmpty {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
