#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RNN
import Support
import Training

/// The memory of a dedicated owner: `ztrain coordinator --aggregation sharded --shards 2` with two
/// `ztrain worker`s and two `ztrain shard`s over ipc://, P ≈ 10⁷ (one window per worker a step); the
/// shards' peak RSS (VmHWM, sampled every 5 ms) against their slice's bytes. The goal: at most 4 × the
/// slice's bytes + 50 MB (the slice's weights, Adam's m and v, the reduction's one buffer, and the
/// messages in flight and the runtime in the 50 MB). The figure is of `--no-owner-recovery` runs;
/// the detail adds the default's (each step's SLICE to the coordinator also carries the slice's m and
/// v, encoded in one frame: three slices more in flight).
extension BenchRunner {
    /// The model of the measurement: the seed cell at H = 3160 has 10,001,406 parameters.
    var ownerMemoryModel: ModelConfig {
        ModelConfig(inputSize: 2, hiddenSize: quick ? 200 : 3160, outputSize: 2, seqLen: 4)
    }

    /// The larger of the two shards' slices, bytes.
    var ownerMemorySliceBytes: Int {
        let plan = ShardPlan(parameterCount: ParameterLayout(ownerMemoryModel).count, owners: 2)
        return 4 * ((0..<2).map { plan.range(ofOwner: $0).count }.max() ?? 0)
    }

    func templateOwnerMemory() -> BenchResult {
        let slice = Double(ownerMemorySliceBytes) / 1e6
        let limit = 4 * slice + 50
        return BenchResult(name: "owner-memory", target: "owner", title: "peak RSS of a ztrain shard (dedicated owner), 2 workers + 2 shards, --no-owner-recovery, P = \(Format.grouped(Double(ParameterLayout(ownerMemoryModel).count)))",
                           value: nil, unit: "MB", baseline: slice, baselineName: "its slice's bytes", baselineSource: .sameRun,
                           goal: Goal(on: .value, op: .atMost, threshold: limit, text: "≤ 4 × slice + 50 MB = \(Format.number(limit)) MB"), detail: "")
    }

    func ownerMemory() throws(BenchError) -> [BenchResult] {
        let t = templateOwnerMemory()
        let steps = quick ? 3 : 6
        let lean = try ownerPeak(steps: steps, ownerRecovery: false)
        let recovering = try ownerPeak(steps: steps, ownerRecovery: true)
        let slice = Double(ownerMemorySliceBytes)
        let h = ownerMemoryModel.hiddenSize
        let detail = "ztrain coordinator --aggregation sharded --workers 2 --shards 2 --hidden \(h) --points 40 --seq-len 4 --batch 2 --micro-batch 1 --steps \(steps) over ipc://, 2 × ztrain worker --threads 1, 2 × ztrain shard; VmHWM of /proc/PID/status of each shard sampled every 5 ms, the larger; slice \(Format.number(slice / 1e6)) MB; with --no-owner-recovery \(Format.number(lean / 1e6)) MB = \(Format.number(lean / slice)) × slice (4 × slice + \(Format.number((lean - 4 * slice) / 1e6)) MB), with owner recovery (the default: m and v with every SLICE to the coordinator) \(Format.number(recovering / 1e6)) MB = \(Format.number(recovering / slice)) × slice"
        return [BenchResult(name: t.name, target: t.target, title: t.title, value: lean / 1e6, unit: t.unit, baseline: t.baseline,
                            baselineName: t.baselineName, baselineSource: t.baselineSource, goal: t.goal, detail: detail)]
    }

    /// One run: the larger shard's peak RSS, bytes.
    private func ownerPeak(steps: Int, ownerRecovery: Bool) throws(BenchError) -> Double {
        let dir = nextScratch("owner-memory")
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw .io("cannot create \(dir.path): \(systemMessage(error))")
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let endpoint = "ipc://\(dir.path)/c.sock"
        let me = String(getpid())
        var children: [ChildProcess] = []
        defer { for c in children { c.terminate(grace: 5) } }
        func start(_ args: [String], _ name: String) throws(BenchError) -> ChildProcess {
            let c = try ChildProcess(executable: executable.path, arguments: args, label: "ztrain \(args.prefix(1).joined()) (\(name))",
                                     stderrPath: dir.path + "/\(name).stderr")
            children.append(c)
            return c
        }
        let coordinator = try start(["coordinator", "--bind", endpoint, "--workers", "2", "--shards", "2", "--aggregation", "sharded",
                                     "--hidden", String(ownerMemoryModel.hiddenSize), "--points", "40", "--seq-len", "4",
                                     "--batch", "2", "--micro-batch", "1",
                                     "--steps", String(steps), "--liveness", "60", "--join-timeout", "120", "--hang-after", "0",
                                     "--out", dir.path + "/run", "--quiet"] + (ownerRecovery ? [] : ["--no-owner-recovery"]), "coordinator")
        var shards: [ChildProcess] = []
        for i in 0..<2 {
            shards.append(try start(["shard", "--connect", endpoint, "--parent-pid", me, "--log-level", "warning"], "shard\(i)"))
            _ = try start(["worker", "--connect", endpoint, "--threads", "1", "--parent-pid", me, "--log-level", "warning"], "worker\(i)")
        }
        var sampler = PeakSampler()
        while !coordinator.wait(timeout: 0.005) {
            if stop.isSet { throw .interrupted(stop.signal) }
            if seconds(since: coordinator.started) > 600 { throw .measurement("\(coordinator.label) did not finish within 600 s") }
            sampler.sample(shards.filter { !$0.hasExited }.map(\.pid))
        }
        guard let outcome = coordinator.outcome, outcome.ok else {
            throw .process("\(coordinator.label) \(coordinator.outcome?.text ?? "?"): \(coordinator.stderrTail())")
        }
        for s in shards {
            while !s.wait(timeout: 0.005) {
                if seconds(since: s.started) > 660 { break }
                sampler.sample([s.pid])
            }
        }
        let peaks = shards.compactMap { sampler.peaks[$0.pid] }
        guard peaks.count == 2, let peak = peaks.max() else { throw .measurement("the shards' /proc/PID/status could not be read") }
        return Double(peak)
    }
}
