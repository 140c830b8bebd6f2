import Foundation
import Plot
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

// MARK: - A minimal XML reader for the tests

/// One element of a parsed document, in document order.
struct Element {
    var name: String
    var attributes: [String: String]
    /// Character data directly inside the element (for `<text>` and `<title>`).
    var text: String = ""

    var cssClass: String? { attributes["class"] }

    func number(_ attribute: String) -> Double? { attributes[attribute].flatMap(Double.init) }

    /// The `points` of a `<polyline>` as (x, y) pairs.
    var points: [(x: Double, y: Double)] {
        (attributes["points"] ?? "").split(separator: " ").compactMap { pair in
            let xy = pair.split(separator: ",").compactMap { Double($0) }
            return xy.count == 2 ? (xy[0], xy[1]) : nil
        }
    }
}

final class Collector: NSObject, XMLParserDelegate {
    var elements: [Element] = []
    private var open: [Int] = []

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
    ) {
        open.append(elements.count)
        elements.append(Element(name: elementName, attributes: attributeDict))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let i = open.last { elements[i].text += string }
    }

    func parser(
        _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?
    ) {
        _ = open.popLast()
    }
}

/// Parses `svg` as XML; records an issue and returns nil if it is not well-formed.
func parse(_ svg: String, sourceLocation: SourceLocation = #_sourceLocation) -> [Element]? {
    let parser = XMLParser(data: Data(svg.utf8))
    let collector = Collector()
    parser.delegate = collector
    guard parser.parse() else {
        Issue.record("not well-formed XML: \(parser.parserError.map(String.init(describing:)) ?? "?")",
                     sourceLocation: sourceLocation)
        return nil
    }
    return collector.elements
}

extension [Element] {
    /// The first panel's plot area: the rectangle inside its clip path.
    var plotArea: Element? { drop { $0.name != "clipPath" }.dropFirst().first }

    func with(name: String, class cssClass: String? = nil) -> [Element] {
        filter { $0.name == name && (cssClass == nil || $0.cssClass == cssClass) }
    }
}

/// Every number in the document's attribute values must be finite (no "nan", "inf").
func expectFiniteNumbers(_ svg: String, sourceLocation: SourceLocation = #_sourceLocation) {
    for bad in ["nan", "NaN", "inf", "Inf"] {
        #expect(!svg.contains("=\"\(bad)") && !svg.contains(",\(bad)") && !svg.contains(" \(bad)"),
                "found \(bad)", sourceLocation: sourceLocation)
    }
}

// MARK: - Tests

@Suite struct SVGTests {
    @Test func documentIsStandaloneSVG() throws {
        let chart = Chart(title: "t", xLabel: "x", yLabel: "y", series: [LineSeries(name: "a", ys: [1, 2, 3])])
        let svg = SVG.render([chart, chart, chart], title: "Figure", columns: 2, panelWidth: 400, panelHeight: 250)
        #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "))
        let elements = try #require(parse(svg))
        let root = try #require(elements.first)
        #expect(root.name == "svg")
        #expect(root.attributes["xmlns"] == "http://www.w3.org/2000/svg")
        #expect(root.attributes["version"] == "1.1")
        #expect(root.attributes["width"] == "800")
        #expect(root.attributes["height"] == "\(36 + 2 * 250)")
        #expect(root.attributes["viewBox"] == "0 0 800 536")
        let background = try #require(elements.with(name: "rect").first)
        #expect(background.attributes["fill"] == "#ffffff")
        #expect(background.attributes["width"] == "800" && background.attributes["height"] == "536")
        #expect(elements.with(name: "text", class: "title").count == 3)
        #expect(elements.with(name: "polyline", class: "line").count == 3)
        #expect(elements.with(name: "clipPath").map { $0.attributes["id"] } == ["plot-clip-0", "plot-clip-1", "plot-clip-2"])
    }

    @Test func oneLinePerSegmentBrokenAtNonFiniteValues() throws {
        let nan = Double.nan
        let series = LineSeries(
            name: "s", xs: [0, 1, 2, 3, 4, 5, 6, 7, .nan, 9, 10],
            ys: [1, 2, nan, 4, 5, .infinity, 7, -.infinity, 8, 9, 10])
        let svg = SVG.render([Chart(series: [series])], title: nil)
        expectFiniteNumbers(svg)
        let elements = try #require(parse(svg))
        let lines = elements.with(name: "polyline", class: "line")
        // Segments: [0,1] [3,4] [6] [9,10]: three lines and one isolated point.
        #expect(lines.map(\.points.count) == [2, 2, 2])
        #expect(elements.with(name: "circle", class: "point").count == 1)
    }

    @Test func logAxisSkipsNonPositiveValues() throws {
        let series = LineSeries(name: "loss", ys: [1, 0.1, 0, 0.01, 0.001, -1, 1e-4, .nan, 1e-5, 2e-6])
        let svg = SVG.render([Chart(series: [series], logY: true)], title: nil)
        expectFiniteNumbers(svg)
        let elements = try #require(parse(svg))
        #expect(elements.with(name: "polyline", class: "line").map(\.points.count) == [2, 2, 2])
        #expect(elements.with(name: "circle", class: "point").count == 1)
        let labels = elements.with(name: "text").map(\.text)
        #expect(labels.contains("1e-2") && labels.contains("1e-4"))
    }

    @Test func logAxisWithOnlyZerosStillRenders() throws {
        let svg = SVG.render([Chart(series: [LineSeries(name: "z", ys: [0, 0, -3])], logY: true)], title: nil)
        expectFiniteNumbers(svg)
        let elements = try #require(parse(svg))
        #expect(elements.with(name: "polyline").isEmpty)
    }

    @Test func escapesSpecialCharactersEverywhere() throws {
        let name = "a<b>&\"c\" 'd'"
        let color = "red\" onload=\"alert(1)"
        let chart = Chart(
            title: "T<&>\"", xLabel: "x<1>", yLabel: "y&z",
            series: [LineSeries(name: name, ys: [1, 2], color: color)],
            verticalMarkers: [(x: 0.5, label: "<start & \"go\">")])
        let svg = SVG.render([chart], title: "<Figure> & \"more\"")
        #expect(!svg.contains(name) && !svg.contains("<b>") && !svg.contains("onload=\"alert"))
        let elements = try #require(parse(svg))
        let texts = elements.filter { $0.name == "text" || $0.name == "title" }.map(\.text)
        for expected in [name, "T<&>\"", "x<1>", "y&z", "<start & \"go\">", "<Figure> & \"more\""] {
            #expect(texts.contains(expected), "missing \(expected) in \(texts)")
        }
        #expect(elements.with(name: "polyline").first?.attributes["stroke"] == color)
    }

    @Test func emptyInputsRender() throws {
        for svg in [
            SVG.render([], title: nil),
            SVG.render([], title: "only a title"),
            SVG.render([Chart()], title: nil),
            SVG.render([Chart(series: [LineSeries(name: "e", xs: [], ys: [])])], title: nil),
            SVG.render([Chart(series: [LineSeries(name: "mismatched", xs: [1, 2, 3], ys: [])])], title: nil),
            SVG.render([Chart(series: [LineSeries(name: "e", ys: [.nan, .nan])], logY: true)], title: nil),
        ] {
            expectFiniteNumbers(svg)
            let elements = try #require(parse(svg))
            #expect(elements.first?.name == "svg")
            #expect(elements.with(name: "polyline").isEmpty)
        }
    }

    @Test func singlePointAndConstantSeries() throws {
        let single = SVG.render([Chart(series: [LineSeries(name: "p", xs: [5], ys: [5])])], title: nil)
        expectFiniteNumbers(single)
        let point = try #require(parse(single)?.with(name: "circle", class: "point").first)
        #expect(point.number("cx") != nil && point.number("cy") != nil)

        let constant = SVG.render([Chart(series: [LineSeries(name: "c", ys: [3, 3, 3, 3])])], title: nil)
        expectFiniteNumbers(constant)
        let elements = try #require(parse(constant))
        let line = try #require(elements.with(name: "polyline", class: "line").first)
        #expect(line.points.count == 4)
        #expect(Set(line.points.map(\.y)).count == 1)
        #expect(Set(line.points.map(\.x)).count == 4)
        // The constant value is labelled on the y axis and the line lies inside the plot area.
        #expect(elements.with(name: "text").contains { $0.text == "3" })
        let plotRect = try #require(elements.plotArea)
        let top = try #require(plotRect.number("y")), height = try #require(plotRect.number("height"))
        #expect(line.points[0].y > top && line.points[0].y < top + height)
    }

    @Test func largeSeriesIsDecimatedButKeepsItsShape() throws {
        var ys = (0..<100_000).map { sin(Double($0) / 5000) }
        ys[54_321] = 10  // a one-sample spike must survive decimation
        let svg = SVG.render([Chart(series: [LineSeries(name: "big", ys: ys)])], title: nil)
        #expect(svg.utf8.count < 60_000, "\(svg.utf8.count) bytes")
        let elements = try #require(parse(svg))
        let line = try #require(elements.with(name: "polyline", class: "line").first)
        #expect(line.points.count <= 2 * 720 + 4)
        #expect(line.points.count >= 600)
        // x stays monotonic; the spike is the highest point.
        #expect(zip(line.points, line.points.dropFirst()).allSatisfy { $0.x <= $1.x })
        let spike = try #require(line.points.min { $0.y < $1.y })
        let clip = try #require(elements.plotArea)
        let plotX = try #require(clip.number("x")), plotW = try #require(clip.number("width"))
        let expectedX = plotX + plotW * 54_321 / 99_999
        #expect(abs(spike.x - expectedX) < 2, "spike at \(spike.x), expected \(expectedX)")
    }

    @Test func manyPointsWithMarkersAndDashesStayBounded() throws {
        let ys = (0..<100_000).map { Double($0 % 977) }
        let svg = SVG.render(
            [Chart(series: [
                LineSeries(name: "a", ys: ys, dashed: true, markers: true),
                LineSeries(name: "b", xs: ys.indices.reversed().map(Double.init), ys: ys),  // x not increasing
            ])], title: nil)
        #expect(svg.utf8.count < 400_000, "\(svg.utf8.count) bytes")
        let elements = try #require(parse(svg))
        #expect(elements.with(name: "polyline", class: "line").allSatisfy { $0.points.count <= 4 * 720 + 1 })
    }

    @Test func legendListsSeriesWithColourAndDash() throws {
        let chart = Chart(series: [
            LineSeries(name: "train", ys: [3, 2, 1]),
            LineSeries(name: "validation", ys: [3.5, 2.5, 1.5], dashed: true),
            LineSeries(name: "", ys: [1, 1, 1]),  // unnamed: drawn, not listed
            LineSeries(name: "custom", ys: [2, 2, 2], color: "#123456", markers: true),
        ])
        let elements = try #require(parse(SVG.render([chart], title: nil)))
        let start = try #require(elements.firstIndex { $0.name == "g" && $0.cssClass == "legend" })
        let legend = Array(elements[start...])
        #expect(legend.with(name: "text").map(\.text) == ["train", "validation", "custom"])
        let samples = legend.with(name: "line")
        #expect(samples.map { $0.attributes["stroke"] } == [SVG.palette[0], SVG.palette[1], "#123456"])
        #expect(samples.map { $0.attributes["stroke-dasharray"] != nil } == [false, true, false])
        let lines = elements.with(name: "polyline", class: "line")
        #expect(lines.map { $0.attributes["stroke"] } == [SVG.palette[0], SVG.palette[1], SVG.palette[2], "#123456"])
        #expect(elements.with(name: "circle", class: "marker").count == 3)
    }

    @Test func legendDoesNotCoverData() throws {
        // Curves filling the whole plot area: the legend must find (or make) free room.
        let xs = (0..<500).map(Double.init)
        let chart = Chart(series: [
            LineSeries(name: "sin", xs: xs, ys: xs.map { sin($0 / 20) }),
            LineSeries(name: "cos", xs: xs, ys: xs.map { cos($0 / 20) }, dashed: true),
            LineSeries(name: "a rather long legend entry", xs: xs, ys: xs.map { sin($0 / 7) }),
        ])
        let elements = try #require(parse(SVG.render([chart], title: nil)))
        let box = try #require(elements.drop { $0.cssClass != "legend" }.dropFirst().first)
        let (bx, by) = (box.number("x")!, box.number("y")!)
        let (bw, bh) = (box.number("width")!, box.number("height")!)
        for line in elements.with(name: "polyline", class: "line") {
            for (a, b) in zip(line.points, line.points.dropFirst()) {
                for t in stride(from: 0.0, through: 1.0, by: 0.1) {
                    let x = a.x + (b.x - a.x) * t, y = a.y + (b.y - a.y) * t
                    #expect(!(x > bx && x < bx + bw && y > by && y < by + bh), "data under legend at \(x),\(y)")
                }
            }
        }
    }

    @Test func verticalMarkersAreDrawnAndLabelled() throws {
        let chart = Chart(
            series: [LineSeries(name: "s", ys: (0..<100).map { Double($0) })],
            verticalMarkers: [(x: 60, label: "rollout starts here"), (x: 1e9, label: "outside")])
        let elements = try #require(parse(SVG.render([chart], title: nil)))
        let markers = elements.with(name: "line", class: "vmarker")
        let labels = elements.with(name: "text", class: "vmarker-label").map(\.text)
        // A marker far outside the data stretches the x axis to include it.
        #expect(markers.count == 2)
        #expect(labels == ["rollout starts here", "outside"])
        #expect(markers[0].attributes["x1"] == markers[0].attributes["x2"])
    }

    @Test func fixedYRangeIsHonouredAndClipped() throws {
        let chart = Chart(series: [LineSeries(name: "r", ys: [-5, 0, 5])], yRange: -1...1)
        let elements = try #require(parse(SVG.render([chart], title: nil)))
        let ticks = elements.with(name: "text").map(\.text)
        #expect(ticks.contains("-1") && ticks.contains("1") && !ticks.contains("5"))
        let group = try #require(elements.first { $0.attributes["clip-path"] != nil })
        #expect(group.attributes["clip-path"] == "url(#plot-clip-0)")
    }

    @Test func tinyPanelsAreEnlargedAndColumnsClamped() throws {
        let chart = Chart(series: [LineSeries(name: "s", ys: [1, 2])])
        let elements = try #require(parse(SVG.render([chart], title: nil, columns: 5, panelWidth: 10, panelHeight: -3)))
        #expect(elements.first?.attributes["width"] == String(SVG.minimumPanelWidth))
        #expect(elements.first?.attributes["height"] == String(SVG.minimumPanelHeight))
    }

    @Test func escapeFunction() {
        #expect(SVG.escape("<a href=\"x\">&'</a>") == "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;")
        #expect(SVG.escape("bell\u{07}tab\t") == "belltab\t")
        #expect(SVG.escape("µ–ü") == "µ–ü")
    }
}
