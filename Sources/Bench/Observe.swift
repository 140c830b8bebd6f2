#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Target 9: what watching a run costs. `train --workers 2` (H=32, global batch 64) with every observer on
/// (`--metrics-bind`, `--tensorboard`, `--log-every 1`, `--report-every 1`, `--hang-after 10`) against the
/// same run with all of them off (`--hang-after 0`), in pairs in this invocation (which goes first alternates):
/// fifteen pairs (one with `--quick`), since a pair's ratio moves by several percent on a shared machine.
extension BenchRunner {
    func templateObserve() -> BenchResult {
        BenchResult(name: "observe-overhead", target: "9", title: "train --workers 2, H=32, batch 64: every observer on vs off",
                    value: nil, unit: "samples/s", baselineName: "the same runs with every observer off", baselineSource: .sameRun,
                    goal: Goal(on: .ratio, op: .atLeast, threshold: 0.97, text: "≥ 0.97× off"), detail: "")
    }

    func observeOverhead() throws(BenchError) -> [BenchResult] {
        func args(_ steps: Int) -> [String] { ["--workers", "2", "--threads", "1", "--batch", "64", "--steps", String(steps)] }
        var steps = 30
        if !quick {
            let probe = try train(args(150) + ["--hang-after", "0"], label: "observe-probe", sampleMemory: false)
            steps = min(100_000, max(150, Int(sizes.clusterSeconds * probe.samplesPerSecond / 64)))
        }
        var off: [Double] = [], on: [Double] = []
        let runs = max(quick ? 1 : 15, sizes.clusterRuns)
        for i in 0..<runs {
            let tb = nextScratch("observe-tensorboard")
            defer { try? FileManager.default.removeItem(at: tb) }
            let watched = args(steps) + ["--metrics-bind", "127.0.0.1:0", "--tensorboard", tb.path, "--log-every", "1",
                                         "--report-every", "1", "--hang-after", "10"]
            // which goes first alternates, so neither side always runs on a machine the other just warmed
            for side in i % 2 == 0 ? [false, true] : [true, false] {
                if side {
                    on.append(try train(watched, label: "observe-on", sampleMemory: false).samplesPerSecond)
                } else {
                    off.append(try train(args(steps) + ["--hang-after", "0"], label: "observe-off", sampleMemory: false).samplesPerSecond)
                }
            }
        }
        let paired = zip(on, off).map { $0 / max($1, 1e-9) }
        let t = templateObserve()
        return [BenchResult(name: t.name, target: t.target, title: t.title, value: Stats.median(on), unit: t.unit,
                            baseline: Stats.median(off), baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal,
                            detail: "ztrain train --workers 2 --threads 1 --batch 64 --steps \(steps), off (--hang-after 0) and on (--metrics-bind 127.0.0.1:0 --tensorboard DIR --log-every 1 --report-every 1 --hang-after 10) alternating (off first in odd pairs, on first in even ones), \(runs) each; summary.json samples_per_second, medians; off \(Stats.spread(off, Format.number)), on \(Stats.spread(on, Format.number)); on ÷ off of the same pair, median \(Format.number(Stats.median(paired) ?? .nan)) (quartiles \(Format.number(Stats.percentile(paired, 25) ?? .nan))–\(Format.number(Stats.percentile(paired, 75) ?? .nan)), all \(Stats.spread(paired, Format.number)))")]
    }
}
