#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An axis: its domain in data units and its labelled ("major") and unlabelled ("minor") ticks.
package struct AxisScale: Sendable, Equatable {
    /// Lower end of the domain (data units; positive for log axes).
    package var lower: Double
    /// Upper end of the domain (data units; `upper > lower`).
    package var upper: Double
    /// `true`: positions are proportional to `log10(value)`.
    package var isLog: Bool
    /// Labelled tick values, ascending, all inside `lower...upper`.
    package var ticks: [Double]
    /// Tick labels, one per entry of `ticks`.
    package var labels: [String]
    /// Unlabelled grid positions (log axes: 2×…9× each decade).
    package var minorTicks: [Double]

    /// Where `value` falls in the domain: 0 at `lower`, 1 at `upper` (not clamped).
    package func fraction(_ value: Double) -> Double {
        if isLog {
            let l0 = log10(lower), l1 = log10(upper)
            return (log10(value) - l0) / (l1 - l0)
        }
        return (value - lower) / (upper - lower)
    }
}

/// "Nice" tick generation (1, 2, 5 × 10^k) and compact tick labels.
package enum Ticks {
    /// Largest magnitude accepted; bigger inputs are clamped so arithmetic cannot overflow.
    static let limit = 1e300

    /// Exact-as-possible `10^e`.
    package static func pow10(_ e: Int) -> Double {
        if e >= 0 {
            return e <= 22 ? exactPowers[e] : pow(10.0, Double(e))
        }
        // 1 / 10^n is correctly rounded when 10^n is exact, so 0.1, 0.01 … come out as literals do.
        return -e <= 22 ? 1.0 / exactPowers[-e] : pow(10.0, Double(e))
    }

    private static let exactPowers: [Double] = {
        var p: [Double] = [1]
        for _ in 1...22 { p.append(p[p.count - 1] * 10) }
        return p
    }()

    /// The smallest step `m × 10^e` with `m ∈ {1, 2, 5}` that is at least `rough`.
    package static func niceStep(_ rough: Double) -> (mantissa: Double, exponent: Int) {
        guard rough.isFinite, rough > 0 else { return (1, 0) }
        var e = Int(floor(log10(rough)))
        let f = rough / pow10(e)
        let m: Double
        if f <= 1 + 1e-9 {
            m = 1
        } else if f <= 2 + 1e-9 {
            m = 2
        } else if f <= 5 + 1e-9 {
            m = 5
        } else {
            m = 1
            e += 1
        }
        return (m, e)
    }

    /// A linear axis with about `targetCount` intervals (at most `targetCount + 2`).
    ///
    /// With `expand` the domain grows outward to the nearest ticks, so the ticks cover
    /// `lower...upper`; of the two nice steps around `range / targetCount`, the one wasting
    /// less room is used (on a tie, the one giving about `targetCount + 1` ticks). Without
    /// `expand` the domain is exactly `lower...upper` and the finer step is used if its ticks
    /// inside number at most `targetCount + 3`. A zero-width (or non-finite) range is widened
    /// instead of dividing by zero.
    package static func linear(
        lower: Double, upper: Double, targetCount: Int = 5, expand: Bool = true
    ) -> AxisScale {
        var lo = lower, hi = upper
        if !lo.isFinite || !hi.isFinite {
            (lo, hi) = (lo.isFinite ? lo : (hi.isFinite ? hi : 0), hi.isFinite ? hi : (lo.isFinite ? lo : 1))
        }
        lo = min(max(lo, -limit), limit)
        hi = min(max(hi, -limit), limit)
        if lo > hi { swap(&lo, &hi) }
        (lo, hi) = widened(lo, hi)
        let target = max(2, targetCount)
        let coarse = niceStep((hi - lo) / Double(target))
        let finer: (mantissa: Double, exponent: Int) =
            switch coarse.mantissa {
            case 1: (5, coarse.exponent - 1)
            case 2: (1, coarse.exponent)
            default: (2, coarse.exponent)
            }
        var best = ticks(lo, hi, step: coarse, expand: expand)
        var stepExponent = coarse.exponent
        let alternative = ticks(lo, hi, step: finer, expand: expand)
        if alternative.count >= 2 && alternative.count <= target + 3 {
            var useFiner = !expand
            if expand, let a0 = alternative.first, let a1 = alternative.last,
                let b0 = best.first, let b1 = best.last
            {
                // Less wasted room wins; on a tie, the tick count nearer `target + 1`.
                let (finerRange, coarseRange) = (a1 - a0, b1 - b0)
                let ideal = target + 1
                useFiner = finerRange < coarseRange * (1 - 1e-9)
                    || (finerRange <= coarseRange * (1 + 1e-9)
                        && abs(alternative.count - ideal) < abs(best.count - ideal))
            }
            if useFiner {
                best = alternative
                stepExponent = finer.exponent
            }
        }
        let step = best.count >= 2 ? (best[1] - best[0]) : 0
        if expand, let first = best.first, let last = best.last, last > first {
            lo = first
            hi = last
        }
        best = best.filter { $0 >= lo - step * 1e-6 && $0 <= hi + step * 1e-6 }
        let scientific = stepExponent < -4 || max(abs(lo), abs(hi)) >= 1e6
        let labels = best.map { format($0, stepExponent: stepExponent, scientific: scientific) }
        return AxisScale(lower: lo, upper: hi, isLog: false, ticks: best, labels: labels, minorTicks: [])
    }

    /// `lo...hi`, widened by 10 % of the magnitude (or ±1 around zero) if it has (almost) no width.
    package static func widened(_ lo: Double, _ hi: Double) -> (Double, Double) {
        let magnitude = max(abs(lo), abs(hi))
        guard hi - lo <= magnitude * 1e-12 else { return (lo, hi) }
        let d = magnitude == 0 ? 1 : magnitude * 0.1
        return (lo - d, hi + d)
    }

    /// Multiples of `m × 10^e` covering (`expand`) or inside `lo...hi`.
    static func ticks(
        _ lo: Double, _ hi: Double, step: (mantissa: Double, exponent: Int), expand: Bool
    ) -> [Double] {
        let (m, e) = step
        let size = m * pow10(e)
        // k·m·10^e, computed as k·m / 10^-e for e < 0 so that 0.3 is 3/10 rather than 3·0.1.
        func tick(_ k: Double) -> Double {
            let v = e >= 0 ? k * m * pow10(e) : k * m / pow10(-e)
            return v == 0 ? 0 : v
        }
        let kLo = expand ? floor(lo / size + 1e-9) : ceil(lo / size - 1e-9)
        let kHi = expand ? ceil(hi / size - 1e-9) : floor(hi / size + 1e-9)
        guard kHi >= kLo, kHi - kLo <= 1000 else { return [] }
        return stride(from: kLo, through: kHi, by: 1).map(tick)
    }

    /// A logarithmic axis with labels at decades (every n-th decade if there are more than
    /// `maxMajorCount`; 2× and 5× as well when the range spans about one decade).
    ///
    /// With `expand` the domain grows to whole (labelled) decades. Non-positive or non-finite
    /// bounds fall back to something sensible; equal bounds are widened by √10 each way.
    package static func log(
        lower: Double, upper: Double, maxMajorCount: Int = 6, expand: Bool = true
    ) -> AxisScale {
        var lo = lower, hi = upper
        if !(lo.isFinite && lo > 0) && !(hi.isFinite && hi > 0) {
            (lo, hi) = (0.1, 1)
        } else if !(lo.isFinite && lo > 0) {
            lo = hi / 1000
        } else if !(hi.isFinite && hi > 0) {
            hi = lo * 1000
        }
        lo = min(max(lo, 1 / limit), limit)
        hi = min(max(hi, 1 / limit), limit)
        if lo > hi { swap(&lo, &hi) }
        if hi / lo < 1 + 1e-9 {
            lo /= 10.0.squareRoot()
            hi *= 10.0.squareRoot()
        }
        var e0 = Int(floor(log10(lo) + 1e-9))
        var e1 = Int(ceil(log10(hi) - 1e-9))
        if e1 <= e0 { e1 = e0 + 1 }
        let decadeStep = max(1, Int((Double(e1 - e0) / Double(max(1, maxMajorCount - 1))).rounded(.up)))
        if decadeStep > 1 {
            e0 = Int(floor(Double(e0) / Double(decadeStep))) * decadeStep
            e1 = Int(ceil(Double(e1) / Double(decadeStep))) * decadeStep
        }
        if expand {
            lo = pow10(e0)
            hi = pow10(e1)
        }
        let tolerance = 1e-9
        func inside(_ v: Double) -> Bool { v >= lo * (1 - tolerance) && v <= hi * (1 + tolerance) }

        // Candidate values as (mantissa, exponent) so labels can be built exactly.
        var major: [(m: Int, e: Int)] = []
        var minor: [(m: Int, e: Int)] = []
        for e in e0...e1 {
            let isMajorDecade = (e - e0) % decadeStep == 0
            if inside(pow10(e)) {
                if isMajorDecade { major.append((1, e)) } else { minor.append((1, e)) }
            }
            if decadeStep == 1, e < e1 {
                for m in 2...9 where inside(Double(m) * pow10(e)) { minor.append((m, e)) }
            }
        }
        if major.count < 3 && decadeStep == 1 {
            // About one decade: label 2× and 5× too; if still too few, every mantissa.
            let promote: Set<Int> = major.count + minor.filter { $0.m == 2 || $0.m == 5 }.count >= 2
                ? [2, 5] : [2, 3, 4, 5, 6, 7, 8, 9]
            major += minor.filter { promote.contains($0.m) }
            minor.removeAll { promote.contains($0.m) }
        }
        func value(_ t: (m: Int, e: Int)) -> Double { Double(t.m) * pow10(t.e) }
        major.sort { value($0) < value($1) }
        return AxisScale(
            lower: lo, upper: hi, isLog: true,
            ticks: major.map(value), labels: major.map { logLabel(mantissa: $0.m, exponent: $0.e) },
            minorTicks: minor.map(value))
    }

    /// Label for `m × 10^e` on a log axis: plain digits for 1 … 9000, otherwise `"1e-3"`, `"5e6"`.
    package static func logLabel(mantissa m: Int, exponent e: Int) -> String {
        if (0...3).contains(e) {
            var v = m
            for _ in 0..<e { v *= 10 }
            return String(v)
        }
        return "\(m)e\(e)"
    }

    /// Compact label for a tick on a linear axis whose step is `m × 10^stepExponent`.
    ///
    /// Fixed-point with just enough decimals (`"0.001"`, `"2.5"`, `"250"`, trailing zeros
    /// dropped) or, if `scientific`, mantissa/exponent form (`"1e-5"`, `"2.5e6"`).
    package static func format(_ value: Double, stepExponent: Int, scientific: Bool) -> String {
        if value == 0 || !value.isFinite { return value.isFinite ? "0" : String(value) }
        if !scientific {
            return trimmed(fixed(value, decimals: max(0, -stepExponent)))
        }
        var mag = Int(floor(log10(abs(value)) + 1e-9))
        var mantissa = trimmed(fixed(value / pow10(mag), decimals: max(0, mag - stepExponent)))
        if let m = Double(mantissa), abs(m) >= 10 {
            mag += 1
            mantissa = trimmed(fixed(value / pow10(mag), decimals: max(0, mag - stepExponent)))
        }
        return "\(mantissa)e\(mag)"
    }

    /// `value` with `decimals` digits after the point, as C's `printf("%.*f")` writes it.
    static func fixed(_ value: Double, decimals: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = Int(withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(decimals)f", $0) })
        if count >= buffer.count {
            buffer = [CChar](repeating: 0, count: count + 1)
            _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(decimals)f", $0) }
        }
        return String(decoding: buffer.prefix(max(0, count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Drops trailing zeros after a decimal point, the point itself if bare, and a minus on zero.
    static func trimmed(_ s: String) -> String {
        var s = s
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        if s == "-0" { s = "0" }
        return s
    }
}
