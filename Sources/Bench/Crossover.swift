import Stress

/// The crossover measurement (`ztrain bench --only crossover`): for P = 10⁴ … 10⁷ and 2 and 4 worker
/// processes, a star and a sharded `ztrain stress --processes --pregenerate` run (the same child
/// runs as targets 10 and 11), the round latency without generation of each, and their ratio.
/// Where the ratio falls below 1, sharded aggregation is the faster one: the measured basis of
/// `--aggregation auto`'s crossover (see BENCHMARKS.md).
///
/// One row per size: value = the sharded p50 (ms), baseline = the star p50 of the same run,
/// ratio = sharded ÷ star, "met" = sharded is at least as fast.
extension BenchRunner {
    /// The crossover's cases: per worker count, per P (the star and the sharded run of each).
    static func crossoverCases(_ sizes: BenchSizes) -> [GlooCase] {
        sizes.crossoverWorkers.flatMap { n in
            sizes.crossoverParameters.map { p in
                let rounds = min(200, max(sizes.crossoverMinRounds, Int(sizes.crossoverBytes / (4 * Double(p)))))
                return GlooCase(name: "crossover-n\(n)-p\(p)", target: "x", workers: n, parameters: p, rounds: rounds)
            }
        }
    }

    func templatesCrossover() -> [BenchResult] { Self.templatesCrossover(sizes) }

    static func templatesCrossover(_ sizes: BenchSizes) -> [BenchResult] {
        crossoverCases(sizes).map { c in
            BenchResult(name: c.name, target: c.target,
                        title: "sharded ÷ star round without generation, P=\(Format.grouped(Double(c.parameters))), \(c.workers) worker processes, tcp",
                        value: nil, unit: "ms", baselineName: "star round, same sizes, same run", baselineSource: .sameRun,
                        goal: Goal(on: .ratio, op: .atMost, threshold: 1.0, text: "sharded ≤ star (where the crossover lies)"), detail: "")
        }
    }

    func crossover(_ t: BenchResult) throws(BenchError) -> BenchResult {
        guard var c = Self.crossoverCases(sizes).first(where: { $0.name == t.name }) else { throw .measurement("no crossover case named \(t.name)") }
        c.aggregation = .star
        let star = try stressRun(c)
        let starCommand = stressCommand(c)
        c.aggregation = .sharded
        let sharded = try stressRun(c)
        guard let s = star.aggregationLatencyMicros, let h = sharded.aggregationLatencyMicros else {
            throw .measurement("ztrain stress wrote no aggregation latency (an older binary?)")
        }
        func ms(_ micros: UInt64) -> String { Format.number(Double(micros) / 1e3) }
        func busiest(_ r: StressReport) -> String {
            r.bytesPerRound.map { "busiest \($0.busiest) \(Format.number($0.busiestBytes / 1e6)) MB per round" } ?? "no bytes"
        }
        let detail = "\(starCommand) and the same with --aggregation sharded, \(c.rounds) rounds each: "
            + "star p50 \(ms(s.p50)) ms (p90 \(ms(s.p90))), \(busiest(star)); sharded p50 \(ms(h.p50)) ms (p90 \(ms(h.p90))), \(busiest(sharded))"
        return BenchResult(name: t.name, target: t.target, title: t.title, value: Double(h.p50) / 1e3, unit: t.unit,
                           baseline: Double(s.p50) / 1e3, baselineName: t.baselineName, baselineSource: .sameRun, goal: t.goal,
                           detail: detail)
    }
}
