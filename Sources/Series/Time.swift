/// Time labels of a series' `--time-column`: what they say about the series' season and how they go on.
///
/// Understood forms: numbers (`1749`, `1959.25`), dates `YYYY-MM`, `YYYY-MM-DD` (anything after the day,
/// such as a time of day, is ignored) and quarters `YYYYQn` / `YYYY-Qn`. Anything else is a plain label.
public enum TimeAxis: Sendable, Equatable {
    /// Numbers with a constant step (the last step of the labels).
    case numeric(values: [Double], step: Double, decimals: Int)
    /// Calendar dates as days since 1970-01-01, with the month step between the last two (0: not monthly).
    case dates(days: [Int], monthStep: Int, dayStep: Int, withDay: Bool)
    /// Quarters as `year * 4 + quarter - 1`.
    case quarters([Int])
    /// Labels without a known order.
    case labels

    /// Reads the labels. Needs every label in the same form; otherwise `.labels`.
    public init(_ time: [String]) {
        guard time.count >= 2 else { self = .labels; return }
        if let v = parseAll(time, Double.init) {
            let decimals = time.map { t in t.firstIndex(of: ".").map { t.distance(from: $0, to: t.endIndex) - 1 } ?? 0 }.max() ?? 0
            self = .numeric(values: v, step: v[v.count - 1] - v[v.count - 2], decimals: decimals)
        } else if let q = parseAll(time, parseQuarter) {
            self = .quarters(q)
        } else if let d = parseAll(time, { parseDate($0) }) {
            let days = d.map { daysFromCivil($0.y, $0.m, $0.d) }
            let a = d[d.count - 2], b = d[d.count - 1]
            let months = (b.y - a.y) * 12 + (b.m - a.m)
            let monthly = a.d == b.d && months >= 1
            self = .dates(days: days, monthStep: monthly ? months : 0, dayStep: days[days.count - 1] - days[days.count - 2],
                          withDay: time.allSatisfy { $0.count >= 10 })
        } else {
            self = .labels
        }
    }

    /// The season implied by the spacing of the labels: 12 for months, 4 for quarters (also as
    /// decimal years of step 1/4), 52 for weeks, 7 for days, 24 for hours as decimal days; nil otherwise.
    public var season: Int? {
        switch self {
        case .numeric(_, let step, _):
            if abs(step - 0.25) < 1e-6 { return 4 }
            if abs(step - 1.0 / 12) < 1e-4 { return 12 }
            return nil
        case .quarters: return 4
        case .dates(_, let monthStep, let dayStep, _):
            if monthStep == 1 { return 12 }
            if monthStep == 3 { return 4 }
            if dayStep == 7 { return 52 }
            if dayStep == 1 { return 7 }
            return nil
        case .labels: return nil
        }
    }

    /// A number per label for the x axis of plots: the value, the decimal year of a date or quarter, or nil.
    public var xValues: [Double]? {
        switch self {
        case .numeric(let v, _, _): return v
        case .quarters(let q): return q.map { Double($0) / 4 }
        case .dates(let days, _, _, _): return days.map { 1970 + Double($0) / 365.2425 }
        case .labels: return nil
        }
    }

    /// The label `k` steps (1-based) after the last one, in the same form; "" when the labels do not say.
    public func label(after k: Int) -> String {
        switch self {
        case .numeric(let v, let step, let decimals):
            guard step > 0, let last = v.last else { return "" }
            let x = last + Double(k) * step
            return decimals == 0 ? String(Int(x.rounded())) : fixed(x, decimals)
        case .quarters(let q):
            guard let last = q.last else { return "" }
            let n = last + k
            return "\(n / 4)Q\(n % 4 + 1)"
        case .dates(let days, let monthStep, let dayStep, let withDay):
            guard let last = days.last else { return "" }
            let (y, m, d) = civilFromDays(last)
            if monthStep > 0 {
                let total = y * 12 + (m - 1) + k * monthStep
                let ny = total / 12, nm = total % 12 + 1
                return withDay ? "\(pad(ny, 4))-\(pad(nm, 2))-\(pad(d, 2))" : "\(pad(ny, 4))-\(pad(nm, 2))"
            }
            guard dayStep > 0 else { return "" }
            let (ny, nm, nd) = civilFromDays(last + k * dayStep)
            return "\(pad(ny, 4))-\(pad(nm, 2))-\(pad(nd, 2))"
        case .labels:
            return ""
        }
    }
}

private func parseAll<T>(_ time: [String], _ f: (String) -> T?) -> [T]? {
    var out: [T] = []
    out.reserveCapacity(time.count)
    for t in time {
        guard let v = f(t) else { return nil }
        out.append(v)
    }
    return out
}

private func digits(_ s: Substring) -> Int? {
    guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return Int(s)
}

/// `YYYYQn` or `YYYY-Qn` as `year * 4 + n - 1`.
private func parseQuarter(_ t: String) -> Int? {
    let parts = t.split(separator: "Q", omittingEmptySubsequences: false)
    guard parts.count == 2, let q = digits(parts[1]), (1...4).contains(q) else { return nil }
    var y = parts[0]
    if y.last == "-" { y = y.dropLast() }
    guard y.count == 4, let year = digits(y) else { return nil }
    return year * 4 + q - 1
}

/// `YYYY-MM` or `YYYY-MM-DD...` (day 1 when absent).
private func parseDate(_ t: String) -> (y: Int, m: Int, d: Int)? {
    let u = Array(t.utf8)
    guard u.count >= 7, u[4] == 0x2D else { return nil }
    let s = Substring(t)
    guard let y = digits(s.prefix(4)), let m = digits(s.dropFirst(5).prefix(2)), (1...12).contains(m) else { return nil }
    if u.count == 7 { return (y, m, 1) }
    guard u.count >= 10, u[7] == 0x2D, let d = digits(s.dropFirst(8).prefix(2)), (1...31).contains(d) else { return nil }
    return (y, m, d)
}

private func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

private func fixed(_ x: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let n = Int((abs(x) * scale).rounded())
    let whole = n / Int(scale), frac = n % Int(scale)
    return (x < 0 ? "-" : "") + "\(whole).\(pad(frac, decimals))"
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146097 + doe - 719468
}

func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
    let z = z0 + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let y = yoe + era * 400
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? y + 1 : y, m, d)
}
