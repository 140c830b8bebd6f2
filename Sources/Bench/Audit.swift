#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Training

/// What the audit costs: `train --workers 2` at `--audit-rate 0.05` (the rate of the overhead goal)
/// and at the default `--audit-rate` against `--audit-rate 0`, at H=32 (global batch 64) and H=256
/// (global batch 996), in rotations in this invocation (which rate goes first rotates).
extension BenchRunner {
    /// The audit rate the overhead goal is set at.
    static let benchAuditRate = 0.05

    /// The rates measured against 0, and their results' names.
    private static func auditRates() -> [(rate: Double, name: String)] {
        [(benchAuditRate, "audit-overhead"), (CoordinatorOptions.defaultAuditRate, "audit-default")]
    }

    func templatesAudit() -> [BenchResult] {
        [32, 256].flatMap { h in
            Self.auditRates().map { r in
                BenchResult(name: "\(r.name)-h\(h)", target: "audit", title: "train --workers 2, H=\(h): --audit-rate \(r.rate) vs 0",
                            value: nil, unit: "samples/s", baselineName: "the same runs with --audit-rate 0", baselineSource: .sameRun,
                            goal: Goal(on: .ratio, op: .atLeast, threshold: 0.9, text: "≥ 0.9× off"), detail: "")
            }
        }
    }

    func auditOverhead() throws(BenchError) -> [BenchResult] {
        var results: [BenchResult] = []
        let templates = templatesAudit()
        let rates = [0] + Self.auditRates().map(\.rate)
        for (k, (h, batch)) in [(32, 64), (256, 996)].enumerated() {
            func args(_ steps: Int, _ rate: Double) -> [String] {
                ["--workers", "2", "--threads", "1", "--hidden", String(h), "--batch", String(batch), "--steps", String(steps),
                 "--hang-after", "0", "--audit-rate", String(rate)]
            }
            var steps = h == 32 ? 30 : 4
            if !quick {
                let probe = try train(args(h == 32 ? 150 : 10, 0), label: "audit-probe", sampleMemory: false)
                steps = min(100_000, max(h == 32 ? 150 : 10, Int(sizes.clusterSeconds * probe.samplesPerSecond / Double(batch))))
            }
            var rate: [[Double]] = rates.map { _ in [] }
            let runs = max(quick ? 1 : 5, sizes.clusterRuns)
            for i in 0..<runs {
                for j in rates.indices {
                    let side = (i + j) % rates.count
                    let r = try train(args(steps, rates[side]), label: side == 0 ? "audit-off" : "audit-on", sampleMemory: false)
                    rate[side].append(r.samplesPerSecond)
                }
            }
            let off = rate[0]
            for (j, template) in templates[(2 * k)..<(2 * k + 2)].enumerated() {
                let on = rate[j + 1]
                let paired = zip(on, off).map { $0 / max($1, 1e-9) }
                results.append(BenchResult(name: template.name, target: template.target, title: template.title, value: Stats.median(on),
                                           unit: template.unit, baseline: Stats.median(off), baselineName: template.baselineName,
                                           baselineSource: template.baselineSource, goal: template.goal,
                                           detail: "ztrain train --workers 2 --threads 1 --hidden \(h) --batch \(batch) --steps \(steps) --hang-after 0, --audit-rate \(rates[j + 1]), \(rates.map { "\($0)" }.joined(separator: ", ")) in rotation, \(runs) each; summary.json samples_per_second, medians; off \(Stats.spread(off, Format.number)), on \(Stats.spread(on, Format.number)); on ÷ off of the same rotation, median \(Format.number(Stats.median(paired) ?? .nan))"))
            }
        }
        return results
    }
}
