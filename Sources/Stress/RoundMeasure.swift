import Histogram

/// Bytes one process sent and received per round, on average over the rounds of a run.
public struct ProcessBytes: Sendable, Equatable, Codable {
    /// `coordinator` or `worker #ID`.
    public var process: String
    /// Bytes it received per round (header and payload frames).
    public var bytesIn: Double
    /// Bytes it sent per round.
    public var bytesOut: Double

    public init(process: String, bytesIn: Double, bytesOut: Double) {
        self.process = process
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
    }

    /// The larger direction: what a full-duplex link has to carry for this process.
    public var busier: Double { max(bytesIn, bytesOut) }
}

/// The bytes of a run's rounds per process, and the busiest process against the bandwidth-optimal
/// floor of an all-reduce.
///
/// The floor is `2·(N−1)/N·4P` bytes: what each of `N` processes that hold `P` float32 gradients
/// has to send (and receive) for all of them to end up with the sum (a reduce-scatter then an
/// all-gather; ring and halving-doubling algorithms reach it). `N` is the number of workers (the
/// gradient holders). A star sends every byte through the coordinator: `N·4P` each way there,
/// `N²/(2(N−1))` times the floor.
///
/// ```swift
/// let b = report.bytesPerRound!   // a StressReport's
/// print(b.busiest, b.busiestBytes, b.busiestToFloor ?? .nan)
/// ```
public struct StressBytes: Sendable, Equatable, Codable {
    /// The coordinator's bytes per round.
    public var coordinator: ProcessBytes
    /// Each worker's bytes per round (by worker id; a worker talks only to the coordinator, so
    /// these are what the coordinator sent to and received from it).
    public var workers: [ProcessBytes]
    /// The process that carried the most bytes in one direction per round.
    public var busiest: String
    /// Its bytes per round (the larger of in and out).
    public var busiestBytes: Double
    /// `2·(N−1)/N·4P` bytes, N = workers (0 for one worker).
    public var floorBytes: Double
    /// `busiestBytes / floorBytes` (nil for one worker, whose floor is 0).
    public var busiestToFloor: Double?
    /// Rounds the averages are over.
    public var rounds: Int

    /// Per-round averages of the totals of `rounds` rounds (a worker that served no round is
    /// left out).
    public init(coordinator: (in: Int, out: Int), workers: [UInt32: (in: Int, out: Int)], rounds: Int,
                workerCount: Int, parameterCount: Int) {
        let r = Double(max(1, rounds))
        self.rounds = rounds
        self.coordinator = ProcessBytes(process: "coordinator", bytesIn: Double(coordinator.in) / r, bytesOut: Double(coordinator.out) / r)
        self.workers = workers.keys.sorted().compactMap { id in
            workers[id].map { ProcessBytes(process: "worker #\(id)", bytesIn: Double($0.in) / r, bytesOut: Double($0.out) / r) }
        }
        let all = [self.coordinator] + self.workers
        let top = all.max { $0.busier < $1.busier } ?? self.coordinator
        busiest = top.process
        busiestBytes = top.busier
        floorBytes = Self.floor(workers: workerCount, parameterCount: parameterCount)
        busiestToFloor = floorBytes > 0 ? busiestBytes / floorBytes : nil
    }

    /// `2·(N−1)/N·4P`: the bytes each of N processes sends in a bandwidth-optimal all-reduce of P
    /// float32 values.
    public static func floor(workers n: Int, parameterCount p: Int) -> Double {
        n > 1 ? 2 * Double(n - 1) / Double(n) * 4 * Double(p) : 0
    }
}

/// What a stress run measures per round besides its aggregate: the latency without the workers'
/// generation, the generation, and the bytes per peer (counted from the first round on).
struct RoundMeasure {
    /// Latency minus the round's on-receipt generation, µs.
    var aggregation = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                                        numberOfSignificantValueDigits: .three)
    /// The largest on-receipt generation (`computeNanos`) of an answer of the current round.
    var roundCompute: UInt64 = 0
    /// Counting bytes (from the first round on).
    var counting = false
    var coordinatorIn = 0
    var coordinatorOut = 0
    var peers: [UInt32: (in: Int, out: Int)] = [:]
    /// Workers that said they have their next round generated (a heartbeat after their last
    /// answer), with ``StressConfig/pregenerate``.
    var ready = Set<UInt32>()

    /// `bytes` sent to worker `id` (nil: to no known worker).
    mutating func sent(_ bytes: Int, to id: UInt32?) {
        guard counting else { return }
        coordinatorOut += bytes
        if let id { peers[id, default: (0, 0)].in += bytes }
    }

    /// `bytes` received from worker `id` (nil: from no known worker).
    mutating func received(_ bytes: Int, from id: UInt32?) {
        guard counting else { return }
        coordinatorIn += bytes
        if let id { peers[id, default: (0, 0)].out += bytes }
    }

    /// Records an exact round of `micros` µs.
    mutating func recordExact(micros: Double) {
        aggregation.record(UInt64(max(1, micros - Double(roundCompute) / 1e3)))
    }
}

extension LatencySummary {
    /// The percentiles of `h` (zeros when it is empty).
    init(_ h: Histogram<UInt64>) {
        self = h.totalCount > 0
            ? LatencySummary(p50: h.valueAtPercentile(50), p90: h.valueAtPercentile(90), p99: h.valueAtPercentile(99), max: h.max, mean: h.mean)
            : LatencySummary(p50: 0, p90: 0, p99: 0, max: 0, mean: 0)
    }

    /// The percentiles of nanosecond values, in µs (zeros when empty).
    init(nanos values: [UInt64]) {
        var h = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                                  numberOfSignificantValueDigits: .three)
        for v in values { h.record(Swift.max(1, Swift.min(3_600_000_000, v / 1_000))) }
        self.init(h)
    }
}
