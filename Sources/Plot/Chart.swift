/// One line in a chart: paired `xs`/`ys` values drawn as a polyline.
///
/// Points where `x` or `y` is NaN or ±infinity (or where `y ≤ 0` on a log axis) are skipped
/// and break the line into separate segments. If `xs` and `ys` differ in length, the extra
/// values of the longer array are ignored.
public struct LineSeries: Sendable {
    /// Legend text. Series with an empty name are drawn but not listed in the legend.
    public var name: String
    /// Horizontal coordinates, in data units.
    public var xs: [Double]
    /// Vertical coordinates, in data units.
    public var ys: [Double]
    /// Any SVG colour (`"#0072B2"`, `"black"`, …); `nil` picks from ``SVG/palette`` by series index.
    public var color: String?
    /// Draw the line dashed (e.g. for a free-running rollout or a validation curve).
    public var dashed: Bool
    /// Stroke width in pixels.
    public var width: Double
    /// Draw a small dot at every (possibly decimated) point.
    public var markers: Bool

    /// Creates a series from explicit coordinates.
    public init(
        name: String, xs: [Double], ys: [Double],
        color: String? = nil, dashed: Bool = false, width: Double = 1.5, markers: Bool = false
    ) {
        self.name = name
        self.xs = xs
        self.ys = ys
        self.color = color
        self.dashed = dashed
        self.width = width
        self.markers = markers
    }

    /// Creates a series whose x coordinates are the indices `0, 1, 2, …` of `ys`.
    public init(
        name: String, ys: [Double],
        color: String? = nil, dashed: Bool = false, width: Double = 1.5, markers: Bool = false
    ) {
        self.init(
            name: name, xs: ys.indices.map(Double.init), ys: ys,
            color: color, dashed: dashed, width: width, markers: markers)
    }
}

/// One panel: axes, grid, title, legend and any number of line series.
public struct Chart: Sendable {
    /// Panel title, drawn above the plot area (empty: none).
    public var title: String
    /// Label under the x axis (empty: none).
    public var xLabel: String
    /// Label left of the y axis, rotated (empty: none).
    public var yLabel: String
    /// The lines, drawn in order (later series on top) and listed in the legend in order.
    public var series: [LineSeries]
    /// Logarithmic y axis with decade ticks; non-positive values are skipped.
    public var logY: Bool
    /// Fixed y range; `nil` fits the data (with "nice" rounded ends). Data outside is clipped.
    public var yRange: ClosedRange<Double>?
    /// Labelled dashed vertical lines, e.g. `(x: 60, label: "rollout starts here")`.
    public var verticalMarkers: [(x: Double, label: String)]

    /// Creates a chart.
    public init(
        title: String = "", xLabel: String = "", yLabel: String = "",
        series: [LineSeries] = [], logY: Bool = false, yRange: ClosedRange<Double>? = nil,
        verticalMarkers: [(x: Double, label: String)] = []
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logY = logY
        self.yRange = yRange
        self.verticalMarkers = verticalMarkers
    }
}
