#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Order statistics of a handful of measurements.
public enum Stats {
    /// The median (mean of the two middle values for an even count); nil for no values.
    public static func median(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        let m = s.count / 2
        return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
    }

    /// The `p`-th percentile (0...100) by the nearest-rank method; nil for no values.
    public static func percentile(_ xs: [Double], _ p: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        let rank = Int((p / 100 * Double(s.count)).rounded(.up))
        return s[min(s.count - 1, max(0, rank - 1))]
    }

    /// `min–max` of the values, formatted with `format` (just the value when there is one).
    public static func spread(_ xs: [Double], _ format: (Double) -> String) -> String {
        guard let lo = xs.min(), let hi = xs.max() else { return "n/a" }
        return xs.count == 1 ? format(lo) : "\(format(lo))–\(format(hi))"
    }
}

/// Seconds on the monotonic clock since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
