#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Training
import Support

/// What `--only` can select: the performance targets (by name or number) and the floors.
public enum BenchGroup: String, CaseIterable, Sendable, Comparable {
    /// 1. Single thread, seed cell, H=32, batch 32.
    case singleH32 = "single-h32"
    /// 2. Single thread, H=256, batch 996: against PyTorch and against the GEMM floor.
    case singleH256 = "single-h256"
    /// 3. `ztrain train --workers 2`, H=32, global batch 64.
    case workersH32 = "workers-h32"
    /// 4. One aggregation round, H=32, 2 worker processes, tcp loopback.
    case roundH32 = "round-h32"
    /// 5. One aggregation round of 10,000,000 parameters, 2 workers.
    case round10M = "round-10m"
    /// 6. Two workers × one thread against one, H=256, global batch 996.
    case scalingH256 = "scaling-h256"
    /// 7. Peak RSS of a worker and of the coordinator at H=32.
    case rss
    /// 8. The reference task to MSE < 1e-4, whole process, in-process and with 2 workers.
    case timeToTarget = "time-to-target"
    /// 9. `train --workers 2` with every observer on (Prometheus, TensorBoard, step lines, reports) against off.
    case observe
    /// 10. Aggregation rounds (generation excluded) against gloo's all_reduce of the same floats,
    /// same run: P = 10,000,000 with 2 workers, P = 1,000,000 with 4.
    case roundVsGloo = "round-vs-gloo"
    /// 11. The busiest process's bytes per round against the all-reduce floor 2·(N−1)/N·4P, N = 2, 3, 4.
    case roundBytes = "round-bytes"
    /// Star against sharded aggregation rounds (`ztrain stress`) over P = 10⁴ … 10⁷ with 2 and 4
    /// worker processes: where sharded gets faster (the crossover behind `--aggregation auto`).
    /// Only with `--only crossover` (not in a default run).
    case crossover
    /// `train --workers 2` at the default `--audit-rate` against 0, H=32 and H=256.
    case audit
    /// Peak RSS of a dedicated owner (`ztrain shard`) against its slice's bytes, P ≈ 10⁷, 2 workers + 2 shards.
    case ownerMemory = "owner-memory"
    /// Real series: CSV parsing rate and peak memory on one core (a long-format file).
    case csv
    /// Real series: `train --workers 2` against in-process on at least 10 million windows of many series.
    case manySeries = "many-series"
    /// Floor: memcpy of 40 MB.
    case memcpy
    /// Floor: float32 GEMM, one thread (square, and the model's shapes).
    case gemm
    /// Floor: bare ZeroMQ round trips of the H=32 and 10M rounds' bytes.
    case zmq

    /// The target's number (nil for floors).
    public var number: Int? {
        switch self {
        case .singleH32: 1
        case .singleH256: 2
        case .workersH32: 3
        case .roundH32: 4
        case .round10M: 5
        case .scalingH256: 6
        case .rss: 7
        case .timeToTarget: 8
        case .observe: 9
        case .roundVsGloo: 10
        case .roundBytes: 11
        case .crossover, .audit, .ownerMemory, .csv, .manySeries, .memcpy, .gemm, .zmq: nil
        }
    }

    public static func < (a: BenchGroup, b: BenchGroup) -> Bool {
        (allCases.firstIndex(of: a) ?? 0) < (allCases.firstIndex(of: b) ?? 0)
    }

    /// What runs without `--only`: everything but the crossover measurement.
    public static var byDefault: Set<BenchGroup> { Set(allCases.filter { $0 != .crossover }) }

    /// The targets (without the floors).
    public static var targets: [BenchGroup] { allCases.filter { $0.number != nil } }

    /// Parses `--only`: names or target numbers, comma-separated (`1,round-h32,gemm`).
    public static func parse(_ list: String) throws(BenchError) -> Set<BenchGroup> {
        var out = Set<BenchGroup>()
        for raw in list.split(separator: ",", omittingEmptySubsequences: false) {
            let item = trimmingWhitespace(raw).lowercased()
            if let g = BenchGroup(rawValue: item) {
                out.insert(g)
            } else if let n = Int(item), let g = allCases.first(where: { $0.number == n }) {
                out.insert(g)
            } else {
                let names = allCases.map { g in g.number.map { "\($0)|\(g.rawValue)" } ?? g.rawValue }.joined(separator: ", ")
                throw .invalidOption("--only: unknown benchmark '\(item)'; use a comma-separated list of \(names)")
            }
        }
        return out
    }
}

/// The workload sizes: full (the sizes the targets are defined at) or `--quick` (tiny; for tests).
public struct BenchSizes: Sendable, Equatable {
    /// Timed repetitions of each in-process and process measurement (after a warm-up).
    public var repetitions: Int
    /// Seconds of training steps each repetition of targets 1 and 2 aims for.
    public var secondsPerRepetition: Double
    /// Target 2's model, batch and micro-batch (498: two leaves of 498 windows, whose activations stay in
    /// L2; one leaf of 996 runs at about 87% of the GEMM rate, see `Sources/CKernels/kernels.c`).
    public var bigHidden: Int
    public var bigBatch: Int
    public var bigMicroBatch: Int
    /// Target 3: runs of `train --workers 2` and the training seconds each aims for.
    public var clusterRuns: Int
    public var clusterSeconds: Double
    /// Target 4: stress rounds, and rounds of its bare ZeroMQ floor.
    public var smallRounds: Int
    public var smallFloorRounds: Int
    /// Target 5: parameters and rounds (and rounds of its floor).
    public var bigParameters: Int
    public var bigRounds: Int
    /// Target 10: parameters and rounds of the two-worker and of the four-worker comparison (both
    /// sides: `ztrain stress` and gloo).
    public var glooBigParameters: Int
    public var glooBigRounds: Int
    public var glooSmallParameters: Int
    public var glooSmallRounds: Int
    /// Target 11: parameters and rounds of the three-worker run (two and four workers reuse
    /// target 10's runs when it runs too, else runs of these sizes).
    public var bytesParameters: Int
    public var bytesRounds: Int
    /// Target 6: model, global batch, micro-batch, runs per worker count, training seconds per run.
    public var scalingHidden: Int
    public var scalingBatch: Int
    public var scalingMicroBatch: Int
    public var scalingRuns: Int
    public var scalingSeconds: Double
    /// Target 8: runs of each command.
    public var timeRuns: Int
    /// Real series: the long-format file's series and points per series (`csv`, `many-series`), and the
    /// many-series runs' global batch, hidden units and runs per mode.
    public var seriesCount: Int
    public var seriesPoints: Int
    public var seriesBatch: Int
    public var seriesHidden: Int
    public var seriesRuns: Int
    /// Floors.
    public var memcpyBytes: Int
    public var gemmSquare: Int
    public var gemmSeconds: Double
    /// The crossover measurement: parameter counts, worker counts, and the bytes of gradients a run's
    /// rounds move (rounds = that ÷ 4P, at least ``crossoverMinRounds``, at most 200).
    public var crossoverParameters: [Int] = [10_000, 100_000, 1_000_000, 10_000_000]
    public var crossoverWorkers: [Int] = [2, 4]
    public var crossoverBytes: Double = 4e8
    public var crossoverMinRounds: Int = 10

    /// The sizes the targets are defined at.
    public static let full = BenchSizes(
        repetitions: 5, secondsPerRepetition: 0.4, bigHidden: 256, bigBatch: 996, bigMicroBatch: 498,
        clusterRuns: 3, clusterSeconds: 1.2, smallRounds: 3000, smallFloorRounds: 3000,
        bigParameters: 10_000_000, bigRounds: 12,
        glooBigParameters: 10_000_000, glooBigRounds: 20, glooSmallParameters: 1_000_000, glooSmallRounds: 50,
        bytesParameters: 1_000_000, bytesRounds: 10,
        scalingHidden: 256, scalingBatch: 996, scalingMicroBatch: 249, scalingRuns: 3, scalingSeconds: 1.2,
        timeRuns: 5, seriesCount: 10_000, seriesPoints: 1_005, seriesBatch: 2048, seriesHidden: 128, seriesRuns: 2, memcpyBytes: 40_000_000, gemmSquare: 1024, gemmSeconds: 0.2)

    /// Tiny sizes and few repetitions: the same table in seconds, for tests. The figures mean nothing.
    public static let quick = BenchSizes(
        repetitions: 2, secondsPerRepetition: 0.02, bigHidden: 64, bigBatch: 128, bigMicroBatch: 64,
        clusterRuns: 1, clusterSeconds: 0.05, smallRounds: 50, smallFloorRounds: 50,
        bigParameters: 100_000, bigRounds: 4,
        glooBigParameters: 100_000, glooBigRounds: 4, glooSmallParameters: 20_000, glooSmallRounds: 4,
        bytesParameters: 10_000, bytesRounds: 3,
        scalingHidden: 64, scalingBatch: 128, scalingMicroBatch: 64, scalingRuns: 1, scalingSeconds: 0.05,
        timeRuns: 1, seriesCount: 20, seriesPoints: 60, seriesBatch: 64, seriesHidden: 8, seriesRuns: 1, memcpyBytes: 4_000_000, gemmSquare: 128, gemmSeconds: 0.01,
        crossoverParameters: [1_000, 20_000], crossoverWorkers: [2], crossoverBytes: 1e5, crossoverMinRounds: 3)
}
