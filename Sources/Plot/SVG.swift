#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Renders ``Chart``s as one standalone SVG 1.1 document.
public enum SVG {
    /// Default series colours: the Okabe–Ito colour-blind-safe palette (yellow, weakest on white,
    /// last). Series with `color == nil` take `palette[index % palette.count]`.
    public static let palette: [String] = [
        "#0072B2",  // blue
        "#E69F00",  // orange
        "#009E73",  // bluish green
        "#D55E00",  // vermillion
        "#CC79A7",  // reddish purple
        "#56B4E9",  // sky blue
        "#000000",  // black
        "#F0E442",  // yellow
    ]

    /// Smallest panel width honoured; smaller requests are enlarged to this.
    public static let minimumPanelWidth = 240
    /// Smallest panel height honoured; smaller requests are enlarged to this.
    public static let minimumPanelHeight = 160

    /// Renders `charts` as a grid of panels, filled row by row, in one SVG document.
    ///
    /// - Parameters:
    ///   - charts: The panels, in reading order.
    ///   - title: Optional figure title drawn above the grid.
    ///   - columns: Panels per row (clamped to `1...charts.count`).
    ///   - panelWidth: Width of each panel in pixels.
    ///   - panelHeight: Height of each panel in pixels.
    /// - Returns: A complete SVG 1.1 document (with XML declaration, `xmlns`, `width`/`height`,
    ///   `viewBox` and a white background) that renders standalone, e.g. with `rsvg-convert`.
    ///   Each series segment of two or more points is one `<polyline class="line">`; an isolated
    ///   single point is one `<circle class="point">`. Series longer than about two points per
    ///   pixel column are decimated to the minimum and maximum of each column.
    public static func render(
        _ charts: [Chart], title: String? = nil, columns: Int = 1,
        panelWidth: Int = 720, panelHeight: Int = 300
    ) -> String {
        let pw = max(panelWidth, minimumPanelWidth)
        let ph = max(panelHeight, minimumPanelHeight)
        let cols = max(1, min(columns, charts.count))
        let rows = (charts.count + cols - 1) / cols
        let title = title ?? ""
        let titleBand = title.isEmpty ? 0 : 36
        let width = cols * pw
        let height = max(40, titleBand + rows * ph)

        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(width)" height="\(height)" \
            viewBox="0 0 \(width) \(height)" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">

            """
        if !title.isEmpty { out += "<title>\(escape(title))</title>\n" }
        out += "<rect x=\"0\" y=\"0\" width=\"\(width)\" height=\"\(height)\" fill=\"#ffffff\"/>\n"
        if !title.isEmpty {
            let text = fit(title, maxWidth: Double(width) - 20, fontSize: 18 * 1.1)  // bold
            out += "<text x=\"\(fmt(Double(width) / 2))\" y=\"25\" font-size=\"18\" font-weight=\"bold\" "
                + "text-anchor=\"middle\" fill=\"#222222\">\(escape(text))</text>\n"
        }
        for (i, chart) in charts.enumerated() {
            let x = (i % cols) * pw
            let y = titleBand + (i / cols) * ph
            out += "<g transform=\"translate(\(x),\(y))\">\n"
            Panel(chart: chart, width: Double(pw), height: Double(ph), index: i).render(into: &out)
            out += "</g>\n"
        }
        out += "</svg>\n"
        return out
    }

    /// Escapes the XML special characters `& < > " '` so `text` is safe in content and attributes.
    /// Control characters not allowed in XML 1.0 are dropped.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value >= 0x20 && scalar.value != 0xFFFE && scalar.value != 0xFFFF {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

// MARK: - Geometry helpers

struct Point {
    var x: Double
    var y: Double
}

struct Rect {
    var x: Double
    var y: Double
    var w: Double
    var h: Double

    var maxX: Double { x + w }
    var maxY: Double { y + h }

    func contains(_ p: Point) -> Bool { p.x >= x && p.x <= maxX && p.y >= y && p.y <= maxY }

    func intersects(_ o: Rect) -> Bool { x < o.maxX && o.x < maxX && y < o.maxY && o.y < maxY }

    /// Whether the segment `a–b` touches this rectangle (Liang–Barsky).
    func intersects(_ a: Point, _ b: Point) -> Bool {
        var t0 = 0.0, t1 = 1.0
        let dx = b.x - a.x, dy = b.y - a.y
        for (p, q) in [(-dx, a.x - x), (dx, maxX - a.x), (-dy, a.y - y), (dy, maxY - a.y)] {
            if p == 0 {
                if q < 0 { return false }
            } else {
                let r = q / p
                if p < 0 {
                    if r > t1 { return false }
                    t0 = max(t0, r)
                } else {
                    if r < t0 { return false }
                    t1 = min(t1, r)
                }
            }
        }
        return true
    }
}

/// A coordinate with one decimal, no trailing zeros (`"12.5"`, `"-3"`, `"0"`).
func fmt(_ v: Double) -> String {
    guard v.isFinite else { return "0" }
    let r = (v * 10).rounded()
    if r == 0 { return "0" }
    guard abs(r) < 1e15 else { return String(v) }
    let i = Int(r)
    let whole = i / 10, frac = abs(i % 10)
    var s = (i < 0 && whole == 0) ? "-0" : String(whole)
    if frac != 0 { s += "." + String(frac) }
    return s
}

/// Estimated rendered width of `s` at `fontSize`, using DejaVu Sans advance widths (a wide
/// sans-serif, so Helvetica/Arial renderings come out narrower, never wider).
func textWidth(_ s: String, fontSize: Double) -> Double {
    var em = 0.0
    for scalar in s.unicodeScalars {
        let v = scalar.value
        em += v < 128 ? asciiWidths[Int(v)] : 0.7
    }
    return em * fontSize
}

/// Advance widths (in em) of ASCII characters in DejaVu Sans.
private let asciiWidths: [Double] = {
    var w = [Double](repeating: 0.62, count: 128)
    for v in 0..<32 { w[v] = 0 }
    let table: [(String, Double)] = [
        (" ", 0.32), ("!", 0.40), ("\"", 0.46), ("#", 0.84), ("$", 0.64), ("%", 0.95), ("&", 0.78),
        ("'", 0.28), ("(", 0.39), (")", 0.39), ("*", 0.50), ("+", 0.84), (",", 0.32), ("-", 0.36),
        (".", 0.32), ("/", 0.34), ("0123456789", 0.64), (":;", 0.34), ("<=>", 0.84), ("?", 0.53),
        ("@", 1.0), ("ABCDEFGHJKLNOPQRSTUVXYZ", 0.73), ("I", 0.30), ("M", 0.86), ("W", 0.99),
        ("[]", 0.39), ("\\", 0.34), ("^", 0.84), ("_", 0.50), ("`", 0.50),
        ("abdeghnopqu", 0.63), ("c", 0.55), ("f", 0.35), ("ijl", 0.28), ("k", 0.58), ("m", 0.97),
        ("r", 0.41), ("s", 0.52), ("t", 0.39), ("vxy", 0.59), ("w", 0.82), ("z", 0.53),
        ("{}", 0.64), ("|", 0.34), ("~", 0.84),
    ]
    for (chars, width) in table {
        for scalar in chars.unicodeScalars { w[Int(scalar.value)] = width }
    }
    return w
}()

/// `s`, shortened with "…" so its estimated width is at most `maxWidth`.
func fit(_ s: String, maxWidth: Double, fontSize: Double) -> String {
    if textWidth(s, fontSize: fontSize) <= maxWidth { return s }
    var kept = ""
    var used = textWidth("…", fontSize: fontSize)
    for ch in s {
        let w = textWidth(String(ch), fontSize: fontSize)
        if used + w > maxWidth { break }
        used += w
        kept.append(ch)
    }
    return kept + "…"
}

// MARK: - Panel

/// One series after validation: its valid points split into segments (data units).
struct PreparedSeries {
    var name: String
    var color: String
    var dashed: Bool
    var width: Double
    var markers: Bool
    var segments: [[Point]]
}

/// The geometry of one panel for a given amount of y headroom.
struct Layout {
    var plot: Rect
    var x: AxisScale
    var y: AxisScale
    /// Pixel coordinates (panel space), per series, per segment; decimated.
    var lines: [[[Point]]]
    var markerLabels: [(rect: Rect, text: String)]
    var markerLines: [Double]
}

struct Panel {
    let chart: Chart
    let width: Double
    let height: Double
    let index: Int
    let series: [PreparedSeries]
    let xBounds: (lo: Double, hi: Double)?
    let yBounds: (lo: Double, hi: Double)?

    static let tickFont = 11.0
    static let labelFont = 12.0
    static let titleFont = 14.0
    static let legendFont = 11.0
    static let legendRow = 16.0

    init(chart: Chart, width: Double, height: Double, index: Int) {
        self.chart = chart
        self.width = width
        self.height = height
        self.index = index
        var prepared: [PreparedSeries] = []
        var xlo = Double.infinity, xhi = -Double.infinity
        var ylo = Double.infinity, yhi = -Double.infinity
        for (i, s) in chart.series.enumerated() {
            var segments: [[Point]] = []
            var current: [Point] = []
            for k in 0..<min(s.xs.count, s.ys.count) {
                let x = s.xs[k], y = s.ys[k]
                if x.isFinite && y.isFinite && (!chart.logY || y > 0) {
                    current.append(Point(x: x, y: y))
                    xlo = min(xlo, x)
                    xhi = max(xhi, x)
                    ylo = min(ylo, y)
                    yhi = max(yhi, y)
                } else if !current.isEmpty {
                    segments.append(current)
                    current = []
                }
            }
            if !current.isEmpty { segments.append(current) }
            let color = s.color.flatMap { $0.isEmpty ? nil : $0 } ?? SVG.palette[i % SVG.palette.count]
            let width = s.width.isFinite && s.width > 0 ? min(s.width, 40) : 1.5
            prepared.append(
                PreparedSeries(
                    name: s.name, color: color, dashed: s.dashed, width: width, markers: s.markers,
                    segments: segments))
        }
        for m in chart.verticalMarkers where m.x.isFinite {
            xlo = min(xlo, m.x)
            xhi = max(xhi, m.x)
        }
        series = prepared
        xBounds = xlo <= xhi ? (xlo, xhi) : nil
        yBounds = ylo <= yhi ? (ylo, yhi) : nil
    }

    // MARK: Scales

    func xScale(plotWidth: Double) -> AxisScale {
        let (lo, hi) = xBounds ?? (0, 1)
        let target = max(2, Int(plotWidth / 90))
        let expanded = Ticks.linear(lower: lo, upper: hi, targetCount: target, expand: true)
        // Round out to ticks only when that costs little room; otherwise end exactly at the data.
        if hi > lo && (expanded.upper - expanded.lower) > (hi - lo) * 1.06 {
            return Ticks.linear(lower: lo, upper: hi, targetCount: target, expand: false)
        }
        return expanded
    }

    func yScale(plotHeight: Double, headroom: Double) -> AxisScale {
        let target = max(2, Int(plotHeight / 45))
        if let r = chart.yRange {
            if chart.logY {
                let hi = r.upperBound > 0 && r.upperBound.isFinite ? r.upperBound : (yBounds?.hi ?? 1)
                var lo = r.lowerBound
                if !(lo > 0 && lo.isFinite && lo < hi) {
                    lo = yBounds.map { $0.lo < hi ? $0.lo : hi / 1000 } ?? hi / 1000
                }
                return Ticks.log(lower: lo, upper: hi, maxMajorCount: target + 1, expand: false)
            }
            return Ticks.linear(lower: r.lowerBound, upper: r.upperBound, targetCount: target, expand: false)
        }
        let h = min(max(headroom, 0), 0.8)
        if chart.logY {
            var (lo, hi) = yBounds ?? (0.1, 1)
            if hi / lo < 1 + 1e-9 {
                lo /= 10.0.squareRoot()
                hi *= 10.0.squareRoot()
            }
            var l0 = log10(lo), l1 = log10(hi)
            if h > 0 { l1 = l0 + (l1 - l0) / (1 - h) }
            let decades = Ticks.log(lower: pow(10, l0), upper: pow(10, l1), maxMajorCount: target + 1)
            // Whole decades unless that leaves the data squeezed into a small part of the axis.
            if (l1 - l0) >= 0.6 * (log10(decades.upper) - log10(decades.lower)) { return decades }
            let pad = 0.04 * (l1 - l0)
            return Ticks.log(
                lower: pow(10, l0 - pad), upper: pow(10, l1 + pad), maxMajorCount: target + 1, expand: false)
        }
        var (lo, hi) = Ticks.widened(yBounds?.lo ?? 0, yBounds?.hi ?? 1)
        if h > 0 { hi = lo + (hi - lo) / (1 - h) }
        let nice = Ticks.linear(lower: lo, upper: hi, targetCount: target)
        // Round out to ticks unless that wastes much room; then pad the data range by 4 %.
        if (hi - lo) >= 0.75 * (nice.upper - nice.lower) { return nice }
        let pad = 0.04 * (hi - lo)
        return Ticks.linear(lower: lo - pad, upper: hi + pad, targetCount: target, expand: false)
    }

    // MARK: Layout

    func layout(headroom: Double) -> Layout {
        let top = chart.title.isEmpty ? 14.0 : 34.0
        let bottom = chart.xLabel.isEmpty ? 28.0 : 46.0
        let plotH = max(20, height - top - bottom)
        let y = yScale(plotHeight: plotH, headroom: headroom)
        let yTickWidth = y.labels.map { textWidth($0, fontSize: Self.tickFont) }.max() ?? 0
        let left = 8 + (chart.yLabel.isEmpty ? 0 : 20) + yTickWidth + 7
        var right = 16.0
        var x = xScale(plotWidth: width - left - right)
        if let last = x.labels.last, let t = x.ticks.last, x.fraction(t) > 0.98 {
            let needed = textWidth(last, fontSize: Self.tickFont) / 2 + 4
            if needed > right {
                right = needed
                x = xScale(plotWidth: width - left - right)
            }
        }
        let plot = Rect(x: left, y: top, w: max(20, width - left - right), h: plotH)

        let lines = series.map { s in s.segments.map { project($0, x: x, y: y, plot: plot) } }

        var markerLabels: [(rect: Rect, text: String)] = []
        var markerLines: [Double] = []
        for m in chart.verticalMarkers where m.x.isFinite {
            let f = x.fraction(m.x)
            guard f >= -1e-9 && f <= 1 + 1e-9 else { continue }
            let px = plot.x + f * plot.w
            markerLines.append(px)
            guard !m.label.isEmpty else { continue }
            let text = fit(m.label, maxWidth: plot.w - 12, fontSize: Self.tickFont)
            let w = textWidth(text, fontSize: Self.tickFont) + 8
            // Right of the line if it fits, else left of it.
            let rightOfLine = px + 3 + w <= plot.maxX - 2
            var rect = Rect(x: rightOfLine ? px + 3 : px - 3 - w, y: plot.y + 4, w: w, h: 16)
            rect.x = min(max(rect.x, plot.x + 1), plot.maxX - 1 - w)
            while markerLabels.contains(where: { $0.rect.intersects(rect) }) && rect.maxY < plot.maxY - 18 {
                rect.y += 18
            }
            markerLabels.append((rect, text))
        }
        return Layout(plot: plot, x: x, y: y, lines: lines, markerLabels: markerLabels, markerLines: markerLines)
    }

    /// Maps a data segment to panel pixels (clamped far outside the plot so coordinates stay
    /// short; the clip path hides the excess), then decimates it.
    func project(_ segment: [Point], x: AxisScale, y: AxisScale, plot: Rect) -> [Point] {
        let xl0 = x.isLog ? log10(x.lower) : x.lower
        let xl1 = x.isLog ? log10(x.upper) : x.upper
        let yl0 = y.isLog ? log10(y.lower) : y.lower
        let yl1 = y.isLog ? log10(y.upper) : y.upper
        let ax = plot.w / (xl1 - xl0), ay = plot.h / (yl1 - yl0)
        let limit = 10 * max(width, height)
        var out: [Point] = []
        out.reserveCapacity(segment.count)
        for p in segment {
            let dx = x.isLog ? log10(p.x) : p.x
            let dy = y.isLog ? log10(p.y) : p.y
            let px = plot.x + (dx - xl0) * ax
            let py = plot.maxY - (dy - yl0) * ay
            out.append(Point(x: min(max(px, -limit), limit), y: min(max(py, -limit), limit)))
        }
        return decimate(out, columns: Int(plot.w.rounded(.up)))
    }

    /// Keeps at most about two points per pixel column: for x-monotonic data the minimum and
    /// maximum of each column (in their original order), otherwise every n-th point.
    func decimate(_ points: [Point], columns: Int) -> [Point] {
        let columns = max(1, columns)
        guard points.count > 2 * columns else { return points }
        var monotonic = true
        for i in 1..<points.count where points[i].x < points[i - 1].x {
            monotonic = false
            break
        }
        var out: [Point] = []
        if monotonic {
            out.reserveCapacity(4 * columns)
            var i = 0
            while i < points.count {
                let column = points[i].x.rounded(.down)
                var lowest = i, highest = i, j = i + 1
                while j < points.count && points[j].x.rounded(.down) == column {
                    if points[j].y < points[lowest].y { lowest = j }
                    if points[j].y > points[highest].y { highest = j }
                    j += 1
                }
                if i == 0 || j == points.count {
                    // Keep the true end points of the segment.
                    let keep = Set([i, lowest, highest, j - 1]).sorted()
                    out.append(contentsOf: keep.map { points[$0] })
                } else {
                    out.append(points[min(lowest, highest)])
                    if lowest != highest { out.append(points[max(lowest, highest)]) }
                }
                i = j
            }
        } else {
            let step = (points.count + 4 * columns - 1) / (4 * columns)
            out = stride(from: 0, to: points.count, by: step).map { points[$0] }
            if (points.count - 1) % step != 0, let last = points.last { out.append(last) }
        }
        return out
    }

    // MARK: Legend

    struct LegendEntry {
        var text: String
        var series: PreparedSeries
    }

    /// A placed legend: a column of entries in a box, or (if `horizontal`) one row.
    struct Legend {
        var entries: [LegendEntry]
        var horizontal: Bool
        var rect: Rect
    }

    static let legendSample = 26.0
    static let legendGap = 6.0
    static let legendItemSpacing = 16.0

    func legendEntries(plotWidth: Double) -> [LegendEntry] {
        let maxText = max(30, plotWidth - 16 - 50)
        return series.filter { !$0.name.isEmpty }.map {
            LegendEntry(text: fit($0.name, maxWidth: maxText, fontSize: Self.legendFont), series: $0)
        }
    }

    func legendSize(_ entries: [LegendEntry], horizontal: Bool) -> (w: Double, h: Double) {
        let widths = entries.map { textWidth($0.text, fontSize: Self.legendFont) }
        let item = Self.legendSample + Self.legendGap
        if horizontal {
            let spacing = Self.legendItemSpacing * Double(max(0, entries.count - 1))
            return (20 + widths.reduce(0) { $0 + item + $1 } + spacing, 8 + Self.legendRow)
        }
        return (20 + item + (widths.max() ?? 0), 8 + Double(entries.count) * Self.legendRow)
    }

    /// How much `rect` (a legend candidate; nil for none) would hide: data segments and points
    /// under it and under the marker labels, marker lines and labels under it.
    func overlap(_ rect: Rect?, in layout: Layout) -> Int {
        var score = 0
        func hits(_ r: Rect) -> Int {
            var n = 0
            for series in layout.lines {
                for seg in series {
                    if seg.count == 1 {
                        if r.contains(seg[0]) { n += 1 }
                        continue
                    }
                    for k in 1..<seg.count where r.intersects(seg[k - 1], seg[k]) { n += 1 }
                }
            }
            return n
        }
        for label in layout.markerLabels { score += hits(label.rect) }
        if let rect {
            score += hits(rect)
            for label in layout.markerLabels where label.rect.intersects(rect) { score += 1000 }
            for px in layout.markerLines where px >= rect.x && px <= rect.maxX { score += 5 }
        }
        return score
    }

    func legendCandidates(size: (w: Double, h: Double), plot: Rect) -> [Rect] {
        let inset = 8.0
        let l = plot.x + inset, r = plot.maxX - inset - size.w, c = plot.x + (plot.w - size.w) / 2
        let t = plot.y + inset, b = plot.maxY - inset - size.h
        return [(r, t), (l, t), (r, b), (l, b), (c, t), (c, b)].map {
            Rect(x: $0.0, y: $0.1, w: size.w, h: size.h)
        }
    }

    /// Picks the layout and legend placement that hide the least data: a legend column in a
    /// corner, or a one-row legend along an edge; if neither is free and the y range is
    /// automatic, retries with headroom above the data.
    func chooseLayout() -> (Layout, Legend?) {
        var best: (score: Int, layout: Layout, legend: Legend?)?
        var headroom = 0.0
        for attempt in 0..<4 {
            let layout = layout(headroom: headroom)
            let entries = legendEntries(plotWidth: layout.plot.w)
            var choice: (score: Int, legend: Legend?) = (overlap(nil, in: layout), nil)
            var needed = (layout.markerLabels.map(\.rect.maxY).max() ?? layout.plot.y) - layout.plot.y
            if !entries.isEmpty {
                choice = (Int.max, nil)
                var bandHeight = Double.infinity
                for horizontal in [false, true] {
                    let size = legendSize(entries, horizontal: horizontal)
                    if horizontal && (entries.count < 2 || size.w > layout.plot.w - 16) { continue }
                    bandHeight = min(bandHeight, size.h)
                    for rect in legendCandidates(size: size, plot: layout.plot) {
                        let s = overlap(rect, in: layout)
                        if s < choice.score {
                            choice = (s, Legend(entries: entries, horizontal: horizontal, rect: rect))
                        }
                    }
                }
                needed = max(needed, bandHeight + 8)
            }
            if best == nil || choice.score < best!.score {
                best = (choice.score, layout, choice.legend)
            }
            if choice.score == 0 || chart.yRange != nil || yBounds == nil { break }
            let fraction = (needed + 8) / layout.plot.h
            headroom = min(0.7, fraction * (1 + 0.4 * Double(attempt)))
        }
        return (best!.layout, best!.legend)
    }

    // MARK: Drawing

    func render(into out: inout String) {
        let (layout, legend) = chooseLayout()
        let plot = layout.plot
        let clipID = "plot-clip-\(index)"
        out += "<defs><clipPath id=\"\(clipID)\"><rect x=\"\(fmt(plot.x))\" y=\"\(fmt(plot.y))\" "
            + "width=\"\(fmt(plot.w))\" height=\"\(fmt(plot.h))\"/></clipPath></defs>\n"

        // Grid.
        func yPixel(_ v: Double) -> Double { plot.maxY - layout.y.fraction(v) * plot.h }
        func xPixel(_ v: Double) -> Double { plot.x + layout.x.fraction(v) * plot.w }
        out += "<g class=\"grid\" stroke-width=\"1\" fill=\"none\">\n"
        for v in layout.y.minorTicks {
            let py = fmt(yPixel(v))
            out += "<line x1=\"\(fmt(plot.x))\" y1=\"\(py)\" x2=\"\(fmt(plot.maxX))\" y2=\"\(py)\" stroke=\"#f0f0f0\"/>\n"
        }
        for v in layout.y.ticks {
            let py = fmt(yPixel(v))
            out += "<line x1=\"\(fmt(plot.x))\" y1=\"\(py)\" x2=\"\(fmt(plot.maxX))\" y2=\"\(py)\" stroke=\"#dddddd\"/>\n"
        }
        for v in layout.x.ticks {
            let px = fmt(xPixel(v))
            out += "<line x1=\"\(px)\" y1=\"\(fmt(plot.y))\" x2=\"\(px)\" y2=\"\(fmt(plot.maxY))\" stroke=\"#dddddd\"/>\n"
        }
        out += "</g>\n"
        out += "<rect x=\"\(fmt(plot.x))\" y=\"\(fmt(plot.y))\" width=\"\(fmt(plot.w))\" height=\"\(fmt(plot.h))\" "
            + "fill=\"none\" stroke=\"#888888\" stroke-width=\"1\"/>\n"

        // Tick marks and labels.
        out += "<g class=\"ticks\" stroke=\"#888888\" stroke-width=\"1\">\n"
        for v in layout.y.ticks {
            let py = fmt(yPixel(v))
            out += "<line x1=\"\(fmt(plot.x - 4))\" y1=\"\(py)\" x2=\"\(fmt(plot.x))\" y2=\"\(py)\"/>\n"
        }
        for v in layout.x.ticks {
            let px = fmt(xPixel(v))
            out += "<line x1=\"\(px)\" y1=\"\(fmt(plot.maxY))\" x2=\"\(px)\" y2=\"\(fmt(plot.maxY + 4))\"/>\n"
        }
        out += "</g>\n"
        out += "<g class=\"tick-labels\" font-size=\"\(fmt(Self.tickFont))\" fill=\"#333333\">\n"
        for (v, label) in zip(layout.y.ticks, layout.y.labels) {
            out += "<text x=\"\(fmt(plot.x - 7))\" y=\"\(fmt(yPixel(v) + 4))\" text-anchor=\"end\">"
                + "\(SVG.escape(label))</text>\n"
        }
        for (v, label) in zip(layout.x.ticks, layout.x.labels) {
            out += "<text x=\"\(fmt(xPixel(v)))\" y=\"\(fmt(plot.maxY + 17))\" text-anchor=\"middle\">"
                + "\(SVG.escape(label))</text>\n"
        }
        out += "</g>\n"

        // Titles.
        if !chart.title.isEmpty {
            let center = plot.x + plot.w / 2
            let room = 2 * min(center - 8, width - center - 8)
            let text = fit(chart.title, maxWidth: room, fontSize: Self.titleFont * 1.1)  // bold
            out += "<text class=\"title\" x=\"\(fmt(center))\" y=\"22\" font-size=\"\(fmt(Self.titleFont))\" "
                + "font-weight=\"bold\" text-anchor=\"middle\" fill=\"#222222\">\(SVG.escape(text))</text>\n"
        }
        if !chart.xLabel.isEmpty {
            let text = fit(chart.xLabel, maxWidth: plot.w, fontSize: Self.labelFont)
            out += "<text class=\"xlabel\" x=\"\(fmt(plot.x + plot.w / 2))\" y=\"\(fmt(plot.maxY + 36))\" "
                + "font-size=\"\(fmt(Self.labelFont))\" text-anchor=\"middle\" fill=\"#222222\">"
                + "\(SVG.escape(text))</text>\n"
        }
        if !chart.yLabel.isEmpty {
            let text = fit(chart.yLabel, maxWidth: plot.h, fontSize: Self.labelFont)
            out += "<text class=\"ylabel\" transform=\"translate(21,\(fmt(plot.y + plot.h / 2))) rotate(-90)\" "
                + "font-size=\"\(fmt(Self.labelFont))\" text-anchor=\"middle\" fill=\"#222222\">"
                + "\(SVG.escape(text))</text>\n"
        }

        // Data, clipped to the plot area; vertical markers underneath.
        out += "<g clip-path=\"url(#\(clipID))\">\n"
        for px in layout.markerLines {
            out += "<line class=\"vmarker\" x1=\"\(fmt(px))\" y1=\"\(fmt(plot.y))\" x2=\"\(fmt(px))\" "
                + "y2=\"\(fmt(plot.maxY))\" stroke=\"#555555\" stroke-width=\"1.2\" stroke-dasharray=\"5 3\"/>\n"
        }
        for (s, segments) in zip(series, layout.lines) {
            let color = SVG.escape(s.color)
            let dash = s.dashed ? " stroke-dasharray=\"\(fmt(4 * s.width)) \(fmt(2.5 * s.width))\"" : ""
            for seg in segments {
                if seg.count == 1 {
                    out += "<circle class=\"point\" cx=\"\(fmt(seg[0].x))\" cy=\"\(fmt(seg[0].y))\" "
                        + "r=\"\(fmt(max(2, s.width * 1.2)))\" fill=\"\(color)\"/>\n"
                    continue
                }
                out += "<polyline class=\"line\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(fmt(s.width))\""
                    + "\(dash) stroke-linejoin=\"round\" stroke-linecap=\"round\" points=\""
                var first = true
                for p in seg {
                    if !first { out += " " }
                    first = false
                    out += fmt(p.x)
                    out += ","
                    out += fmt(p.y)
                }
                out += "\"/>\n"
                if s.markers {
                    let r = fmt(max(2, s.width * 1.2))
                    for p in seg {
                        out += "<circle class=\"marker\" cx=\"\(fmt(p.x))\" cy=\"\(fmt(p.y))\" r=\"\(r)\" fill=\"\(color)\"/>\n"
                    }
                }
            }
        }
        out += "</g>\n"

        // Marker labels on a translucent background.
        for label in layout.markerLabels {
            let r = label.rect
            out += "<rect x=\"\(fmt(r.x))\" y=\"\(fmt(r.y))\" width=\"\(fmt(r.w))\" height=\"\(fmt(r.h))\" "
                + "fill=\"#ffffff\" fill-opacity=\"0.85\"/>\n"
            out += "<text class=\"vmarker-label\" x=\"\(fmt(r.x + 4))\" y=\"\(fmt(r.y + 12))\" "
                + "font-size=\"\(fmt(Self.tickFont))\" fill=\"#333333\">\(SVG.escape(label.text))</text>\n"
        }

        // Legend.
        if let legend {
            let rect = legend.rect
            out += "<g class=\"legend\">\n"
            out += "<rect x=\"\(fmt(rect.x))\" y=\"\(fmt(rect.y))\" width=\"\(fmt(rect.w))\" height=\"\(fmt(rect.h))\" "
                + "rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#bbbbbb\" stroke-width=\"1\"/>\n"
            var x = rect.x + 10
            var cy = rect.y + 4 + Self.legendRow / 2
            for entry in legend.entries {
                let s = entry.series
                let color = SVG.escape(s.color)
                let lineWidth = min(s.width, 6)
                let dash = s.dashed ? " stroke-dasharray=\"\(fmt(4 * lineWidth)) \(fmt(2.5 * lineWidth))\"" : ""
                out += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(cy))\" x2=\"\(fmt(x + Self.legendSample))\" y2=\"\(fmt(cy))\" "
                    + "stroke=\"\(color)\" stroke-width=\"\(fmt(lineWidth))\"\(dash)/>\n"
                if s.markers {
                    out += "<circle cx=\"\(fmt(x + Self.legendSample / 2))\" cy=\"\(fmt(cy))\" "
                        + "r=\"\(fmt(max(2, lineWidth * 1.2)))\" fill=\"\(color)\"/>\n"
                }
                let textX = x + Self.legendSample + Self.legendGap
                out += "<text x=\"\(fmt(textX))\" y=\"\(fmt(cy + 4))\" font-size=\"\(fmt(Self.legendFont))\" "
                    + "fill=\"#222222\">\(SVG.escape(entry.text))</text>\n"
                if legend.horizontal {
                    x = textX + textWidth(entry.text, fontSize: Self.legendFont) + Self.legendItemSpacing
                } else {
                    cy += Self.legendRow
                }
            }
            out += "</g>\n"
        }
    }
}
