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
import Training
import Support

/// Number formatting for the table and BENCHMARKS.md.
public enum Format {
    /// Integers from 1,000 up with thousands separators; smaller numbers with 3 significant digits.
    public static func number(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "∞" : "-∞") }
        let a = abs(v)
        if a >= 999.5 { return grouped(v) }
        if a == 0 { return "0" }
        let decimals = max(0, 2 - Int(floor(log10(a))))
        return cFormat("%.\(decimals)f", v)
    }

    /// `1234567.8` → `1,234,568`.
    public static func grouped(_ v: Double) -> String {
        let n = Int(v.rounded())
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// `186,017 samples/s`, or `n/a`.
    public static func value(_ v: Double?, _ unit: String) -> String {
        guard let v else { return "n/a" }
        return "\(number(v)) \(unit)"
    }

    /// `3.58×`, or `n/a`.
    public static func ratio(_ r: Double?) -> String {
        guard let r, r.isFinite else { return "n/a" }
        return r >= 100 ? cFormat("%.0f×", r) : r >= 10 ? cFormat("%.1f×", r) : cFormat("%.2f×", r)
    }

    /// `yes`, `NO`, or `n/a`.
    public static func met(_ m: Bool?) -> String {
        guard let m else { return "n/a" }
        return m ? "yes" : "NO"
    }
}
