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

/// A multivariate time series: `count` points of `channels` values each, stored flat and row-major.
///
/// Invariants (checked by every public way of making one): at least one channel, one name per
/// channel, at least 2 points, every value finite.
public struct Series: Sendable, Equatable {
    /// `C`: values per point.
    public let channels: Int
    /// One name per channel (CSV header names, or `["sin", "cos"]`).
    public let names: [String]
    /// `(N, C)` row-major: point `i` is `values[i*C ..< (i+1)*C]`.
    public let values: [Float]
    /// `N`: number of points.
    public let count: Int
    /// One label per point from a CSV's `--time-column` (the x axis of plots, the first column of exports;
    /// never a feature), or nil.
    public let time: [String]?
    /// The series of a long-format file (`--series-column`), one after another; nil for one series.
    /// Windows never cross from one to the next (``WindowSplit/make(series:seqLen:validationFraction:)``).
    public let segments: SeriesSegments?

    /// The fewest points a series may have.
    public static let minimumPoints = 2
    /// The most points `sincos` will generate (a guard against typos such as `--points 1e12`).
    public static let maximumGeneratedPoints = 100_000_000

    /// Makes a series from channel names and flat row-major values.
    ///
    /// Throws if there are no names, if `values.count` is not a multiple of `names.count`,
    /// if there are fewer than 2 points, or if a value is NaN or infinite.
    public init(names: [String], values: [Float], time: [String]? = nil, segments: SeriesSegments? = nil) throws(SeriesError) {
        guard !names.isEmpty else {
            throw .invalidArgument("a series needs at least one channel (got no channel names)")
        }
        let c = names.count
        guard values.count % c == 0 else {
            throw .invalidArgument(
                "\(values.count) values do not fill whole points of \(c) channels; "
                    + "pass a multiple of \(c) values")
        }
        let n = values.count / c
        guard n >= Series.minimumPoints else {
            throw .invalidArgument(
                "a series needs at least \(Series.minimumPoints) points (got \(n))")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .invalidArgument(
                "value at point \(bad / c), channel \"\(names[bad % c])\" is \(values[bad]); "
                    + "every value must be finite")
        }
        if let time, time.count != n {
            throw .invalidArgument("\(time.count) time labels for \(n) points; give one label per point")
        }
        if let segments {
            guard segments.starts.first == 0, segments.starts.last == n, segments.ids.count + 1 == segments.starts.count,
                  zip(segments.starts, segments.starts.dropFirst()).allSatisfy({ $1 - $0 >= Series.minimumPoints })
            else {
                throw .invalidArgument("the series boundaries do not cover the \(n) points with at least \(Series.minimumPoints) points per series")
            }
        }
        self.init(unchecked: names, values: values, time: time, segments: segments)
    }

    /// For callers that have already established the invariants.
    init(unchecked names: [String], values: [Float], time: [String]? = nil, segments: SeriesSegments? = nil) {
        self.channels = names.count
        self.names = names
        self.values = values
        self.count = values.count / names.count
        self.time = time
        self.segments = segments
    }

    // MARK: - Several series

    /// How many series this holds (1 without segments).
    public var seriesCount: Int { segments?.ids.count ?? 1 }

    /// The points of series `s`. Precondition: `0 <= s < seriesCount`.
    public func pointRange(ofSeries s: Int) -> Range<Int> {
        guard let segments else { return 0..<count }
        return segments.starts[s]..<segments.starts[s + 1]
    }

    /// Every series' point range, in order (one range for a single series).
    public var pointRanges: [Range<Int>] { (0..<seriesCount).map(pointRange(ofSeries:)) }

    /// Series `s` alone (no segments), with its time labels. Precondition: `0 <= s < seriesCount`.
    public func part(_ s: Int) -> Series {
        guard segments != nil else { return self }
        let r = pointRange(ofSeries: s)
        return Series(unchecked: names, values: Array(values[(r.lowerBound * channels)..<(r.upperBound * channels)]),
                      time: time.map { Array($0[r]) })
    }

    /// The `C` values of point `i`. Precondition: `0 <= i < count`.
    public func point(_ i: Int) -> ArraySlice<Float> {
        precondition(i >= 0 && i < count, "point index \(i) out of range 0..<\(count)")
        return values[(i * channels)..<((i + 1) * channels)]
    }

    /// The value of channel `c` at point `i`. Preconditions: indices in range.
    public subscript(point i: Int, channel c: Int) -> Float {
        precondition(i >= 0 && i < count, "point index \(i) out of range 0..<\(count)")
        precondition(c >= 0 && c < channels, "channel index \(c) out of range 0..<\(channels)")
        return values[i * channels + c]
    }

    /// All `N` values of channel `c`. Precondition: `0 <= c < channels`.
    public func channel(_ c: Int) -> [Float] {
        precondition(c >= 0 && c < channels, "channel index \(c) out of range 0..<\(channels)")
        return stride(from: c, to: values.count, by: channels).map { values[$0] }
    }

    /// Calls `body` with the flat `(N, C)` row-major storage.
    public func withUnsafeBufferPointer<R, E: Error>(
        _ body: (UnsafeBufferPointer<Float>) throws(E) -> R
    ) throws(E) -> R {
        try values.withUnsafeBufferPointer(body)
    }

    // MARK: - The reference series

    /// The reference data set: point `i` is `[sin x_i, cos x_i]` with `x = linspace(from, to, points)`.
    ///
    /// `x` follows `numpy.linspace` exactly (see ``linspace(from:to:points:)``): `x_i = i * step + from`
    /// in `Double` with `step = (to - from) / (points - 1)`, and the last point is exactly `to`.
    /// `sin` and `cos` are evaluated in `Double` and rounded to `Float`. Names are `["sin", "cos"]`.
    ///
    /// Throws if `points < 2` (or absurdly large), if a bound is not finite, or if `from >= to`.
    public static func sincos(points: Int = 1000, from: Double = 0, to: Double = 100)
        throws(SeriesError) -> Series
    {
        guard points >= minimumPoints else {
            throw .invalidArgument("--points must be at least \(minimumPoints) (got \(points))")
        }
        guard points <= maximumGeneratedPoints else {
            throw .invalidArgument(
                "--points must be at most \(maximumGeneratedPoints) (got \(points))")
        }
        guard from.isFinite, to.isFinite else {
            throw .invalidArgument(
                "the range of x must have finite bounds (got \(from) to \(to))")
        }
        guard from < to else {
            throw .invalidArgument(
                "the range of x must go upwards: start \(from) must be less than end \(to)")
        }
        let step = (to - from) / Double(points - 1)
        guard step > 0, step.isFinite else {
            throw .invalidArgument(
                "the range \(from) to \(to) cannot be divided into \(points) distinct points")
        }
        var values = [Float]()
        values.reserveCapacity(points * 2)
        for x in linspace(from: from, to: to, points: points) {
            values.append(Float(sin(x)))
            values.append(Float(cos(x)))
        }
        return Series(unchecked: ["sin", "cos"], values: values)
    }

    /// `numpy.linspace(from, to, points)` bit for bit: `step = (to - from) / (points - 1)`,
    /// `x_i = Double(i) * step + from`, and the last value replaced by exactly `to`.
    /// (Note: `i * step` rounds differently from `i * (to - from) / (points - 1)`.)
    ///
    /// Precondition: `points >= 2`. `sincos` validates user input before calling it.
    public static func linspace(from: Double, to: Double, points: Int) -> [Double] {
        precondition(points >= 2, "linspace needs at least 2 points (got \(points))")
        let step = (to - from) / Double(points - 1)
        var x = (0..<points).map { Double($0) * step + from }
        x[points - 1] = to
        return x
    }

    // MARK: - Fingerprint

    /// A stable 64-bit hash of the data, used to check that every worker holds the same series.
    ///
    /// FNV-1a 64 over: `channels` and `count` as little-endian `UInt64`, then each value's
    /// `Float` bit pattern as little-endian `UInt32`. Names do not enter the hash.
    public var fingerprint: UInt64 {
        var h = FNV1a64()
        h.add(UInt64(channels))
        h.add(UInt64(count))
        for v in values { h.add(v.bitPattern) }
        return h.value
    }
}

/// Where each series of a long-format file starts in the concatenated points, and its ID.
public struct SeriesSegments: Sendable, Equatable {
    /// One ID per series (the `--series-column` value), in file order.
    public let ids: [String]
    /// `ids.count + 1` point offsets: series `s` is points `starts[s] ..< starts[s+1]`; `starts[0] == 0`.
    public let starts: [Int]

    public init(ids: [String], starts: [Int]) {
        self.ids = ids
        self.starts = starts
    }
}

/// FNV-1a, 64-bit.
struct FNV1a64 {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let prime: UInt64 = 0x0000_0100_0000_01b3

    mutating func add(byte: UInt8) {
        value ^= UInt64(byte)
        value &*= FNV1a64.prime
    }

    /// Adds the bytes of `x`, least significant first.
    mutating func add<T: FixedWidthInteger & UnsignedInteger>(_ x: T) {
        var x = x
        for _ in 0..<(T.bitWidth / 8) {
            add(byte: UInt8(truncatingIfNeeded: x))
            x >>= 8
        }
    }
}
