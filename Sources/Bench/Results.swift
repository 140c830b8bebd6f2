#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Support

/// Where a baseline figure comes from.
public enum BaselineSource: String, Sendable, Codable, Equatable {
    /// Measured by this bench invocation (a floor, one worker, or PyTorch via `--pytorch-json`).
    case sameRun = "same-run"
    /// A figure recorded on the reference machine (PyTorch was not measured in this run).
    case recorded
}

/// What a target requires: `value` or `ratio` (`value / baseline`) compared with a threshold.
public struct Goal: Sendable, Codable, Equatable {
    /// The number the goal is about.
    public enum Subject: String, Sendable, Codable {
        case value
        case ratio
    }

    /// The comparison.
    public enum Comparison: String, Sendable, Codable {
        case atLeast = ">="
        case atMost = "<="
    }

    /// Whether the threshold applies to the value or to the ratio.
    public var on: Subject
    /// At least or at most.
    public var op: Comparison
    /// The number to compare with (in the value's unit, or a plain factor).
    public var threshold: Double
    /// For people: `≥ 1,000,000 samples/s`, `≤ 3× floor`.
    public var text: String

    public init(on: Subject, op: Comparison, threshold: Double, text: String) {
        self.on = on
        self.op = op
        self.threshold = threshold
        self.text = text
    }

    /// `value ≥ threshold` (and the like); nil when the number it needs was not measured.
    public func isMet(value: Double?, ratio: Double?) -> Bool? {
        guard let x = on == .value ? value : ratio, x.isFinite else { return nil }
        switch op {
        case .atLeast: return x >= threshold
        case .atMost: return x <= threshold
        }
    }
}

/// A figure shown next to a result for comparison only (no goal depends on it), e.g. gloo's
/// all_reduce of 1e7 floats next to our 10M-parameter round.
public struct Reference: Sendable, Codable, Equatable {
    /// What it is, e.g. `gloo all_reduce of 1e7 floats, 2 ranks`.
    public var name: String
    /// The figure, in `unit`.
    public var value: Double
    public var unit: String
    /// Measured in this run or recorded on the reference machine.
    public var source: BaselineSource

    public init(name: String, value: Double, unit: String, source: BaselineSource) {
        self.name = name
        self.value = value
        self.unit = unit
        self.source = source
    }
}

/// One performance target, measured: one entry of the JSON `results`.
///
/// `ratio` is always `value / baseline` (so for times and latencies below 1 is better); `met` is
/// the goal applied to `value` or `ratio`. Every key is written, as `null` when unknown, so a
/// consumer can rely on the shape.
public struct BenchResult: Sendable, Equatable {
    /// Stable key (`single-h32`, `round-10m`, …).
    public var name: String
    /// The target's number, with a letter where one target has two goals (`2a`, `7b`).
    public var target: String
    /// What was measured, for people.
    public var title: String
    /// The median (or p50) measured; nil when the measurement failed.
    public var value: Double?
    /// `samples/s`, `µs`, `ms`, `s`, `MB` (10⁶ bytes), `GFLOP/s`.
    public var unit: String
    /// The figure `value` is compared with, in the same unit; nil when the target has none.
    public var baseline: Double?
    /// What the baseline is (`PyTorch eager loop`, `bare ZeroMQ round trip`, …).
    public var baselineName: String?
    /// Measured in this run, or recorded on the reference machine.
    public var baselineSource: BaselineSource?
    /// `value / baseline`.
    public var ratio: Double?
    /// The goal.
    public var goal: Goal
    /// The goal applied; nil when value or baseline is missing.
    public var met: Bool?
    /// The exact workload (sizes, repetitions, the spread of the runs).
    public var detail: String
    /// A figure shown for comparison only.
    public var reference: Reference?
    /// Why there is no value, when the measurement failed.
    public var error: String?

    public init(
        name: String, target: String, title: String, value: Double?, unit: String,
        baseline: Double? = nil, baselineName: String? = nil, baselineSource: BaselineSource? = nil,
        goal: Goal, detail: String, reference: Reference? = nil, error: String? = nil
    ) {
        self.name = name
        self.target = target
        self.title = title
        self.value = value
        self.unit = unit
        self.baseline = baseline
        self.baselineName = baselineName
        self.baselineSource = baselineSource
        self.goal = goal
        self.detail = detail
        self.reference = reference
        self.error = error
        ratio = BenchResult.ratio(value, baseline)
        met = error == nil ? goal.isMet(value: value, ratio: ratio) : nil
    }

    /// `value / baseline`, nil unless both are finite and the baseline is positive.
    public static func ratio(_ value: Double?, _ baseline: Double?) -> Double? {
        guard let v = value, let b = baseline, v.isFinite, b.isFinite, b > 0 else { return nil }
        return v / b
    }

    /// The same entry without a value, carrying the reason.
    public func failed(_ why: String) -> BenchResult {
        var r = self
        r.value = nil
        r.ratio = nil
        r.met = nil
        r.error = why
        return r
    }
}

extension BenchResult: Codable {
    enum CodingKeys: String, CodingKey {
        case name, target, title, value, unit, baseline, baselineName, baselineSource, ratio, goal, met, detail,
             reference, error
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(target, forKey: .target)
        try c.encode(title, forKey: .title)
        try c.encode(value.flatMap(finite), forKey: .value)
        try c.encode(unit, forKey: .unit)
        try c.encode(baseline.flatMap(finite), forKey: .baseline)
        try c.encode(baselineName, forKey: .baselineName)
        try c.encode(baselineSource, forKey: .baselineSource)
        try c.encode(ratio.flatMap(finite), forKey: .ratio)
        try c.encode(goal, forKey: .goal)
        try c.encode(met, forKey: .met)
        try c.encode(detail, forKey: .detail)
        try c.encode(reference, forKey: .reference)
        try c.encode(error, forKey: .error)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        target = try c.decode(String.self, forKey: .target)
        title = try c.decode(String.self, forKey: .title)
        value = try c.decodeIfPresent(Double.self, forKey: .value)
        unit = try c.decode(String.self, forKey: .unit)
        baseline = try c.decodeIfPresent(Double.self, forKey: .baseline)
        baselineName = try c.decodeIfPresent(String.self, forKey: .baselineName)
        baselineSource = try c.decodeIfPresent(BaselineSource.self, forKey: .baselineSource)
        ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
        goal = try c.decode(Goal.self, forKey: .goal)
        met = try c.decodeIfPresent(Bool.self, forKey: .met)
        detail = try c.decode(String.self, forKey: .detail)
        reference = try c.decodeIfPresent(Reference.self, forKey: .reference)
        error = try c.decodeIfPresent(String.self, forKey: .error)
    }
}

/// JSON has no NaN or infinity: those are written as `null`.
private func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }

/// A floor: what the machine itself can do (GEMM rate, memcpy, bare ZeroMQ), measured in the run.
/// Targets 2, 4 and 5 are ratios to floors; the floors are also reported on their own.
public struct Floor: Sendable, Codable, Equatable {
    /// Stable key (`memcpy-40MB`, `gemm-model-shapes`, `zmq-round-h32`, …).
    public var name: String
    /// For people: `memcpy of 40 MB`.
    public var title: String
    /// The median (or p50).
    public var value: Double
    /// `GB/s`, `GFLOP/s`, `µs`, `ms`.
    public var unit: String
    /// How it was measured.
    public var detail: String

    public init(name: String, title: String, value: Double, unit: String, detail: String) {
        self.name = name
        self.title = title
        self.value = value
        self.unit = unit
        self.detail = detail
    }
}

/// Everything one `ztrain bench` run found: the JSON written by `--json`.
public struct BenchReport: Sendable, Codable, Equatable {
    /// `ztrain-bench/1`.
    public var schema = "ztrain-bench/1"
    /// Where it ran.
    public var machine: MachineInfo
    /// The command that produced the report.
    public var command: String
    /// UTC start time, ISO 8601.
    public var date: String
    /// `--quick`: tiny sizes, few repetitions; the figures mean nothing.
    public var quick: Bool
    /// Wall-clock seconds of the whole bench.
    public var seconds: Double
    /// `/proc/loadavg` (1, 5, 15 minutes) when the bench started and ended: other work on the
    /// machine makes every figure noisier.
    public var loadAtStart: [Double]?
    public var loadAtEnd: [Double]?
    /// The PyTorch figures the baselines came from.
    public var pytorch: PyTorchFigures
    /// What the machine itself can do (a separate key: floors are not targets).
    public var floors: [Floor]
    /// One entry per target (two for targets 2, 7 and 8, which have two goals).
    public var results: [BenchResult]

    public init(machine: MachineInfo, command: String, date: String, quick: Bool, seconds: Double,
                loadAtStart: [Double]? = nil, loadAtEnd: [Double]? = nil,
                pytorch: PyTorchFigures, floors: [Floor], results: [BenchResult]) {
        self.machine = machine
        self.command = command
        self.date = date
        self.quick = quick
        self.seconds = seconds
        self.loadAtStart = loadAtStart
        self.loadAtEnd = loadAtEnd
        self.pytorch = pytorch
        self.floors = floors
        self.results = results
    }

    /// ``JSONStyle/files``, pretty-printed: sorted keys, snake_case.
    public func json() throws(BenchError) -> Data {
        do { return Data(try JSONStyle.files.pretty.encode(self)) } catch { throw .io("cannot encode the bench report: \(error)") }
    }

    /// Reads a report written by ``json()``.
    public static func decode(_ data: Data) throws(BenchError) -> BenchReport {
        do { return try JSONStyle.files.decode(BenchReport.self, from: data) } catch {
            throw .io("not a ztrain bench report: \(error)")
        }
    }
}

/// Why the bench could not do something. Failed measurements do not throw: they become results
/// with an `error`.
public enum BenchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A flag or option value is wrong (the text names it).
    case invalidOption(String)
    /// A file could not be read or written.
    case io(String)
    /// A child process could not be started or failed.
    case process(String)
    /// A measurement could not be carried out.
    case measurement(String)
    /// Stopped by a signal.
    case interrupted(Int32)

    public var description: String {
        switch self {
        case .invalidOption(let s): s
        case .io(let s): s
        case .process(let s): s
        case .measurement(let s): s
        case .interrupted(let sig): "interrupted by signal \(sig)"
        }
    }
}
