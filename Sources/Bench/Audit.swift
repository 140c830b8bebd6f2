#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Training

/// What the audit costs: `train --workers 2` at `--audit-rate 0.05` (the rate the overhead goal is
/// set at; the default is lower) against `--audit-rate 0`, at H=32 (global batch 64) and H=256
/// (global batch 996), in pairs in this invocation (which goes first alternates).
extension BenchRunner {
    /// The audit rate measured against 0.
    static let benchAuditRate = 0.05

    func templatesAudit() -> [BenchResult] {
        [32, 256].map { h in
            BenchResult(name: "audit-overhead-h\(h)", target: "audit", title: "train --workers 2, H=\(h): --audit-rate \(Self.benchAuditRate) vs 0",
                        value: nil, unit: "samples/s", baselineName: "the same runs with --audit-rate 0", baselineSource: .sameRun,
                        goal: Goal(on: .ratio, op: .atLeast, threshold: 0.9, text: "≥ 0.9× off"), detail: "")
        }
    }

    func auditOverhead() throws(BenchError) -> [BenchResult] {
        var results: [BenchResult] = []
        for (template, (h, batch)) in zip(templatesAudit(), [(32, 64), (256, 996)]) {
            func args(_ steps: Int, _ rate: Double) -> [String] {
                ["--workers", "2", "--threads", "1", "--hidden", String(h), "--batch", String(batch), "--steps", String(steps),
                 "--hang-after", "0", "--audit-rate", String(rate)]
            }
            var steps = h == 32 ? 30 : 4
            if !quick {
                let probe = try train(args(h == 32 ? 150 : 10, 0), label: "audit-probe", sampleMemory: false)
                steps = min(100_000, max(h == 32 ? 150 : 10, Int(sizes.clusterSeconds * probe.samplesPerSecond / Double(batch))))
            }
            var off: [Double] = [], on: [Double] = []
            let runs = max(quick ? 1 : 5, sizes.clusterRuns)
            let rate = Self.benchAuditRate
            for i in 0..<runs {
                for side in i % 2 == 0 ? [false, true] : [true, false] {
                    let r = try train(args(steps, side ? rate : 0), label: side ? "audit-on" : "audit-off", sampleMemory: false)
                    if side { on.append(r.samplesPerSecond) } else { off.append(r.samplesPerSecond) }
                }
            }
            let paired = zip(on, off).map { $0 / max($1, 1e-9) }
            results.append(BenchResult(name: template.name, target: template.target, title: template.title, value: Stats.median(on),
                                       unit: template.unit, baseline: Stats.median(off), baselineName: template.baselineName,
                                       baselineSource: template.baselineSource, goal: template.goal,
                                       detail: "ztrain train --workers 2 --threads 1 --hidden \(h) --batch \(batch) --steps \(steps) --hang-after 0, --audit-rate \(rate) and 0 alternating, \(runs) each; summary.json samples_per_second, medians; off \(Stats.spread(off, Format.number)), on \(Stats.spread(on, Format.number)); on ÷ off of the same pair, median \(Format.number(Stats.median(paired) ?? .nan))"))
        }
        return results
    }
}
