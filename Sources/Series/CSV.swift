#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

import Support

/// What to do with a missing cell (empty, `NA`, `N/A`, `null`, `None`; `NaN` too except under `error`) of a selected column.
public enum MissingPolicy: String, Sendable, Codable, CaseIterable {
    /// Stop with an error that names the row and column.
    case error
    /// Drop the whole row.
    case drop
    /// Repeat the value of the row before (a missing first row is an error).
    case ffill
    /// Linear in the row number between the neighbouring values (before the first value: the first value,
    /// after the last: the last).
    case interpolate
}

/// How a CSV file is read beyond its columns.
public struct CSVOptions: Sendable, Codable, Equatable {
    /// The column holding each row's time label (by name or 0-based index), or nil.
    public var timeColumn: String?
    public var missing: MissingPolicy
    /// The field separator (one ASCII character).
    public var delimiter: UInt8
    /// The column holding each row's series ID (by name or 0-based index) in a long-format file, or nil
    /// (one series). Each series' rows must be consecutive, in time order.
    public var seriesColumn: String?

    public init(timeColumn: String? = nil, missing: MissingPolicy = .error, delimiter: UInt8 = 0x2C,
                seriesColumn: String? = nil) {
        self.timeColumn = timeColumn
        self.missing = missing
        self.delimiter = delimiter
        self.seriesColumn = seriesColumn
    }
}

extension Series {
    /// Loads a series from a CSV file with a header row.
    ///
    /// - Parameters:
    ///   - path: the file; its name (as given) prefixes every error message.
    ///   - columns: the columns to keep, in this order, each given by header name or by 0-based
    ///     index written as digits (`"0"`, `"2"`); a header name wins over an index. `nil` keeps
    ///     every column.
    ///
    /// See ``csv(text:source:columns:)`` for the accepted format.
    public static func csv(path: String, columns: [String]? = nil, options: CSVOptions = CSVOptions())
        throws(SeriesError) -> Series
    {
        var parser: CSVParser? = nil
        try forEachChunk(of: path, maxBytes: maxCSVBytes) { (size) in
            parser = CSVParser(source: path, columns: columns, options: options, sizeHint: size)
        } body: { (chunk) throws(SeriesError) in
            try parser?.consume(chunk)
        }
        guard var parser else { return try Series.csv(text: "", source: path, columns: columns, options: options) }
        return try parser.finish()
    }

    /// The largest CSV file ``csv(path:columns:options:)`` reads: 2 GiB.
    public static let maxCSVBytes = 2 << 30

    /// Parses CSV text with a header row. `source` names the text in error messages.
    ///
    /// Format: the first line holds the column names; every later line holds one point, with
    /// as many comma-separated fields as the header. Fields are trimmed of spaces and tabs and may
    /// be enclosed in double quotes (`""` inside quotes is one quote); quoted fields cannot span
    /// lines. Lines may end in `\n` or `\r\n`; a UTF-8 byte order mark and blank lines at the end
    /// are ignored. Every cell of a selected column must be a finite number that fits a `Float`;
    /// other columns may hold anything. At least 2 data rows are required.
    ///
    /// Errors name the source, the 1-based line (the header is line 1) and the column, e.g.
    /// `data.csv:17: column "temp": "abc" is not a number`.
    public static func csv(text: String, source: String, columns: [String]? = nil, options: CSVOptions = CSVOptions())
        throws(SeriesError) -> Series
    {
        var parser = CSVParser(source: source, columns: columns, options: options)
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { (b) throws(SeriesError) in try parser.consume(b) }
        return try parser.finish()
    }

    /// Feature channels that look like a row index rather than data: named like one (`index`, `rownames`,
    /// `Unnamed: 0`, `rowid`, or no name) or holding strictly increasing integers. The CLI warns about them.
    public var indexLikeChannels: [String] {
        let names: Set<String> = ["", "index", "rownames", "unnamed: 0", "rowid"]
        return (0..<channels).compactMap { c in
            let n = self.names[c]
            if names.contains(n.lowercased()) { return n }
            let v = channel(c)
            guard v.count >= 3 else { return nil }
            for i in v.indices {
                guard v[i].rounded() == v[i] else { return nil }
                if i > 0 && !(v[i] > v[i - 1]) { return nil }
            }
            return n
        }
    }
}

/// Is a cell a missing value: empty, `NA`, `N/A`, `null`, `None` (and, unless `--missing error`, `NaN`)?
private func isMissing(_ cell: String) -> Bool {
    switch cell {
    case "", "NA", "N/A", "n/a", "null", "NULL", "None", "none", "na": return true
    default: return false
    }
}

/// A decimal number as written in a CSV file: an optional sign, digits with an optional point, and an
/// optional exponent (`-1.5`, `.5`, `3.`, `1e-3`); not hexadecimal (`0x10`, `0x1p3`), which `Double`
/// would also read.
func isDecimal(_ s: String) -> Bool {
    var u = Substring(s).utf8[...]
    func digits() -> Int {
        var n = 0
        while let c = u.first, c >= 0x30 && c <= 0x39 { u = u.dropFirst(); n += 1 }
        return n
    }
    if let c = u.first, c == 0x2B || c == 0x2D { u = u.dropFirst() }
    var mantissa = digits()
    if u.first == 0x2E { u = u.dropFirst(); mantissa += digits() }
    guard mantissa > 0 else { return false }
    if let c = u.first, c == 0x65 || c == 0x45 {
        u = u.dropFirst()
        if let c = u.first, c == 0x2B || c == 0x2D { u = u.dropFirst() }
        guard digits() > 0 else { return false }
    }
    return u.isEmpty
}

/// How a column is named in messages: `"temp"`, or `#3` when the header cell is empty.
private func label(_ header: [String], _ i: Int) -> String {
    header[i].isEmpty ? "#\(i)" : "\"\(excerpt(header[i]))\""
}

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

private func isBlank(_ line: ArraySlice<UInt8>) -> Bool { line.allSatisfy(isSpace) }

/// Splits one line (without its terminator) into trimmed, unquoted fields.
private func splitFields(_ line: ArraySlice<UInt8>, lineNumber: Int, source: String, delimiter: UInt8)
    throws(SeriesError) -> [String]
{
    guard let text = validUTF8(line) else {
        throw .csv(source: source, line: lineNumber, message: "line is not valid UTF-8 text; save the file as UTF-8")
    }
    let u = Array(text.utf8)
    var fields: [String] = []
    var i = 0
    let quote: UInt8 = 0x22
    let comma = delimiter
    func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b == 0x09 && delimiter != 0x09) }
    while true {
        // One field starting at i.
        while i < u.count, isSpace(u[i]) { i += 1 }
        if i < u.count, u[i] == quote {
            i += 1
            var content: [UInt8] = []
            var closed = false
            while i < u.count {
                if u[i] == quote {
                    if i + 1 < u.count, u[i + 1] == quote {
                        content.append(quote)
                        i += 2
                    } else {
                        i += 1
                        closed = true
                        break
                    }
                } else {
                    content.append(u[i])
                    i += 1
                }
            }
            guard closed else {
                throw .csv(
                    source: source, line: lineNumber,
                    message: "field \(fields.count + 1) has an opening quote but no closing quote")
            }
            while i < u.count, isSpace(u[i]) { i += 1 }
            guard i == u.count || u[i] == comma else {
                throw .csv(
                    source: source, line: lineNumber,
                    message: "field \(fields.count + 1) has text after its closing quote")
            }
            fields.append(String(decoding: content, as: UTF8.self))
        } else {
            var end = i
            while end < u.count, u[end] != comma { end += 1 }
            var last = end
            while last > i, isSpace(u[last - 1]) { last -= 1 }
            fields.append(String(decoding: u[i..<last], as: UTF8.self))
            i = end
        }
        if i == u.count { return fields }
        i += 1  // the comma
    }
}

// MARK: - The streaming parser

/// Reads a CSV file chunk by chunk (``consume(_:)``, then ``finish()``): lines are parsed where they lie in
/// the chunk (only a line cut by a chunk's end is copied), plain numeric cells are read straight from their
/// bytes (exact decimal-to-Double conversion where it is exact, `Double(String)` otherwise, then rounded to
/// Float as before), and nothing is kept per row but the values (and the time label with `--time-column`).
/// Quoted fields, non-ASCII lines and anything that is not a plain decimal take the general path.
struct CSVParser {
    let source: String
    let columns: [String]?
    let options: CSVOptions

    private var line = 0  // 1-based number of the line being parsed
    private var carry: [UInt8] = []  // a line cut by the end of a chunk
    private var header: [String]? = nil
    private var headerBlankLine = false  // the first line was blank: an error once a later line is not
    private var blankSince: Int? = nil  // the first of blank lines seen after data (an error if data follows)
    private var dataLines = 0
    private var selected: [Int] = []
    /// Per column: its slot in `selected` (>= 0), -1 unused, -2 the time column, -3 the series column.
    private var role: [Int] = []
    private var timeIndex: Int? = nil
    private var seriesIndex: Int? = nil
    private var row: [Float] = []
    private var rowMissing: [Int] = []

    private(set) var values: [Float] = []
    private var times: [String] = []
    private var ids: [String] = []
    private var lastID: [UInt8] = []
    private var starts: [Int] = []
    private var idLines: [String: Int] = [:]
    /// Flat indices into `values` of missing cells (NaN placeholders), and the line of each such cell's row.
    private var missingAt: [Int] = []
    private var missingLines: [Int] = []
    private var sizeHint: Int

    init(source: String, columns: [String]?, options: CSVOptions, sizeHint: Int = 0) {
        self.source = source
        self.columns = columns
        self.options = options
        self.sizeHint = sizeHint
    }

    private func fail(_ line: Int?, _ message: String) -> SeriesError {
        .csv(source: source, line: line, message: message)
    }

    /// Parses every complete line of `chunk` (and the one cut at the end of the previous chunk).
    mutating func consume(_ chunk: UnsafeBufferPointer<UInt8>) throws(SeriesError) {
        guard let base = chunk.baseAddress, !chunk.isEmpty else { return }
        var start = 0
        let n = chunk.count
        while start < n {
            guard let nl = memchr(base + start, 0x0A, n - start) else {
                carry.append(contentsOf: UnsafeBufferPointer(start: base + start, count: n - start))
                return
            }
            let end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
            if carry.isEmpty {
                try parseLine(UnsafeBufferPointer(start: base + start, count: end - start))
            } else {
                carry.append(contentsOf: UnsafeBufferPointer(start: base + start, count: end - start))
                let whole = carry
                carry.removeAll(keepingCapacity: true)
                try whole.withUnsafeBufferPointer { (b) throws(SeriesError) in try parseLine(b) }
            }
            start = end + 1
        }
    }

    private mutating func parseLine(_ raw: UnsafeBufferPointer<UInt8>) throws(SeriesError) {
        line += 1
        var b = raw
        if let last = b.last, last == 0x0D { b = UnsafeBufferPointer(rebasing: b.dropLast()) }
        if line == 1, b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { b = UnsafeBufferPointer(rebasing: b.dropFirst(3)) }
        let blank = b.allSatisfy { $0 == 0x20 || $0 == 0x09 }
        if blank {
            if header == nil && line == 1 { headerBlankLine = true }
            if header != nil && blankSince == nil { blankSince = line }
            return
        }
        if headerBlankLine {
            throw fail(1, "the first line is empty; it must be the header (column names separated by commas)")
        }
        if header == nil { return try parseHeader(b) }
        if let blankSince { throw fail(blankSince, "empty line; remove blank lines between data rows") }
        dataLines += 1
        try parseRow(b)
    }

    private mutating func parseHeader(_ b: UnsafeBufferPointer<UInt8>) throws(SeriesError) {
        let header = try splitFields(ArraySlice(b), lineNumber: 1, source: source, delimiter: options.delimiter)
        var firstIndex: [String: Int] = [:]
        for (i, name) in header.enumerated() {
            if let j = firstIndex[name] {
                throw fail(1, "column name \"\(excerpt(name))\" appears twice (columns \(j) and \(i)); column names must be unique")
            }
            firstIndex[name] = i
        }
        func resolve(_ spec: String) throws(SeriesError) -> Int {
            if let i = firstIndex[spec] { return i }
            if !spec.isEmpty, spec.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                guard let i = Int(spec), i < header.count else {
                    throw fail(
                        1,
                        "column index \(excerpt(spec)) is out of range; the header has \(header.count) "
                            + "column\(header.count == 1 ? "" : "s") (indices 0 to \(header.count - 1))")
                }
                return i
            }
            var available = header.prefix(12).map { "\"\(excerpt($0))\"" }.joined(separator: ", ")
            if header.count > 12 { available += " and \(header.count - 12) more" }
            throw fail(1, "no column named \"\(excerpt(spec))\"; available columns: \(available) (or give a 0-based column index)")
        }
        if let t = options.timeColumn { timeIndex = try resolve(t) }
        if let sc = options.seriesColumn {
            let i: Int
            do { i = try resolve(sc) } catch { throw .invalidArgument("--series-column: \(error)") }
            if i == timeIndex {
                throw .invalidArgument("column \(label(header, i)) of \(source) is the --time-column; it cannot also be the --series-column")
            }
            seriesIndex = i
        }
        if let columns {
            guard !columns.isEmpty else {
                throw .invalidArgument("no columns selected from \(source); give at least one column name or index")
            }
            var picked: [Int] = []
            for spec in columns {
                let index = try resolve(spec)
                if index == timeIndex {
                    throw .invalidArgument(
                        "column \(label(header, index)) of \(source) is the --time-column; it cannot also be a feature in --columns")
                }
                if index == seriesIndex {
                    throw .invalidArgument(
                        "column \(label(header, index)) of \(source) is the --series-column; it cannot also be a feature in --columns")
                }
                if picked.contains(index) {
                    throw .invalidArgument(
                        "column \(label(header, index)) of \(source) is selected twice; select each column once")
                }
                picked.append(index)
            }
            selected = picked
        } else {
            selected = header.indices.filter { $0 != timeIndex && $0 != seriesIndex }
            guard !selected.isEmpty else {
                throw fail(1, "the only columns are the --time-column and --series-column; the file has no feature column")
            }
        }
        role = [Int](repeating: -1, count: header.count)
        for (slot, c) in selected.enumerated() { role[c] = slot }
        if let t = timeIndex { role[t] = -2 }
        if let s = seriesIndex { role[s] = -3 }
        row = [Float](repeating: 0, count: selected.count)
        // room for every value at the file's size and the header's bytes per row, at most; pages never written
        // are never resident
        if sizeHint > 0 {
            let perRow = max(2 * header.count, 1)
            values.reserveCapacity(sizeHint / perRow * selected.count + selected.count * 16)
        }
        self.header = header
    }

    private mutating func parseRow(_ b: UnsafeBufferPointer<UInt8>) throws(SeriesError) {
        let header = self.header ?? []
        let delimiter = options.delimiter
        let tabIsSpace = delimiter != 0x09
        // the general path: quotes or non-ASCII bytes anywhere in the line
        var plain = true
        for x in b where x == 0x22 || x >= 0x80 { plain = false; break }
        guard plain else { return try parseRowSlowly(b, header: header) }
        rowMissing.removeAll(keepingCapacity: true)
        var field = 0, i = 0
        let n = b.count
        var idField: UnsafeBufferPointer<UInt8>? = nil
        var timeField: UnsafeBufferPointer<UInt8>? = nil
        while true {
            var end = i
            while end < n && b[end] != delimiter { end += 1 }
            if field < role.count {
                var lo = i, hi = end
                while lo < hi && (b[lo] == 0x20 || (tabIsSpace && b[lo] == 0x09)) { lo += 1 }
                while hi > lo && (b[hi - 1] == 0x20 || (tabIsSpace && b[hi - 1] == 0x09)) { hi -= 1 }
                let cell = UnsafeBufferPointer(rebasing: b[lo..<hi])
                let r = role[field]
                if r >= 0 {
                    if let v = fastDecimal(cell) {
                        row[r] = v
                    } else if let v = try slowCell(String(decoding: cell, as: UTF8.self), column: field, header: header) {
                        row[r] = v
                    } else {
                        row[r] = .nan
                        rowMissing.append(r)
                    }
                } else if r == -2 {
                    timeField = cell
                } else if r == -3 {
                    idField = cell
                }
            }
            field += 1
            if end >= n { break }
            i = end + 1
        }
        guard field == header.count else {
            throw fail(line, "expected \(header.count) field\(header.count == 1 ? "" : "s") (as in the header) but found \(field)")
        }
        if let idField, !idField.elementsEqual(lastID) || ids.isEmpty {
            try newSeries(String(decoding: idField, as: UTF8.self), bytes: idField, header: header)
        }
        try keepRow(time: timeField.map { String(decoding: $0, as: UTF8.self) })
    }

    private mutating func newSeries(_ id: String, bytes: UnsafeBufferPointer<UInt8>?, header: [String]) throws(SeriesError) {
        if let first = idLines[id] {
            throw fail(
                line,
                "column \(label(header, seriesIndex ?? 0)): the rows of series \"\(excerpt(id))\" (from line \(first)) are not consecutive; "
                    + "sort the file by the series column, keeping each series in time order")
        }
        idLines[id] = line
        ids.append(id)
        lastID = bytes.map(Array.init) ?? Array(id.utf8)
        starts.append(values.count / max(1, selected.count))
    }

    private mutating func keepRow(time: String?) throws(SeriesError) {
        if !rowMissing.isEmpty && options.missing == .drop { return }
        for r in rowMissing {
            missingAt.append(values.count + r)
            missingLines.append(line)
        }
        values.append(contentsOf: row)
        if let time { times.append(time) }
    }

    /// Quoted fields or non-ASCII text: split into strings (checking UTF-8) and read each cell.
    private mutating func parseRowSlowly(_ b: UnsafeBufferPointer<UInt8>, header: [String]) throws(SeriesError) {
        let fields = try splitFields(ArraySlice(b), lineNumber: line, source: source, delimiter: options.delimiter)
        guard fields.count == header.count else {
            throw fail(line, "expected \(header.count) field\(header.count == 1 ? "" : "s") (as in the header) but found \(fields.count)")
        }
        rowMissing.removeAll(keepingCapacity: true)
        for (slot, c) in selected.enumerated() {
            if let v = try slowCell(fields[c], column: c, header: header) {
                row[slot] = v
            } else {
                row[slot] = .nan
                rowMissing.append(slot)
            }
        }
        if let si = seriesIndex, fields[si].utf8.elementsEqual(lastID) == false || ids.isEmpty {
            try newSeries(fields[si], bytes: nil, header: header)
        }
        try keepRow(time: timeIndex.map { fields[$0] })
    }

    /// A cell's value, nil when missing (under a policy that fills or drops), or an error naming line and column.
    private func slowCell(_ cell: String, column c: Int, header: [String]) throws(SeriesError) -> Float? {
        if isMissing(cell) || (options.missing != .error && (cell == "nan" || cell == "NaN" || cell == "NAN")) {
            if options.missing == .error {
                throw fail(
                    line,
                    "column \(label(header, c)): missing value (\(cell.isEmpty ? "empty cell" : "\"\(excerpt(cell))\"")); "
                        + "fill it in, or pass --missing drop, ffill or interpolate")
            }
            return nil
        }
        guard let d = Double(cell) else {
            throw fail(line, "column \(label(header, c)): \"\(excerpt(cell))\" is not a number")
        }
        guard !d.isFinite || isDecimal(cell) else {
            throw fail(
                line,
                "column \(label(header, c)): \"\(excerpt(cell))\" is not a decimal number "
                    + "(hexadecimal is not read); write it as digits, e.g. 16 or 1.5e-3")
        }
        guard d.isFinite else {
            throw fail(line, "column \(label(header, c)): \"\(excerpt(cell))\" is not a finite number; NaN and infinity are not allowed")
        }
        let f = Float(d)
        guard f.isFinite else {
            throw fail(line, "column \(label(header, c)): \"\(excerpt(cell))\" is too large for a 32-bit float")
        }
        return f
    }

    /// The series, once every chunk has been consumed: missing cells filled within each series, the series'
    /// boundaries checked.
    mutating func finish() throws(SeriesError) -> Series {
        if !carry.isEmpty {
            let last = carry
            carry = []
            try last.withUnsafeBufferPointer { (b) throws(SeriesError) in try parseLine(b) }
        }
        guard let header else {
            throw fail(nil, "file is empty; expected a header line followed by rows of numbers")
        }
        guard dataLines >= 1 else {
            throw fail(nil, "the header is not followed by any data rows; add at least \(Series.minimumPoints) rows of numbers")
        }
        guard dataLines >= Series.minimumPoints else {
            throw fail(nil, "only \(dataLines) data row; a series needs at least \(Series.minimumPoints) rows")
        }
        let C = selected.count
        let kept = values.count / C
        guard kept >= Series.minimumPoints else {
            throw fail(nil, "only \(kept) complete row\(kept == 1 ? "" : "s") left after --missing drop; a series needs at least \(Series.minimumPoints)")
        }
        // each series' rows (one range without --series-column); a series left with too few rows is an error
        var bounds = [0]
        if seriesIndex != nil {
            bounds = starts + [kept]
            for s in 0..<(bounds.count - 1) where bounds[s + 1] - bounds[s] < Series.minimumPoints {
                let k = bounds[s + 1] - bounds[s]
                throw fail(idLines[ids[s]], "series \"\(excerpt(ids[s]))\" has \(k) row\(k == 1 ? "" : "s")\(options.missing == .drop ? " left after --missing drop" : ""); every series needs at least \(Series.minimumPoints)")
            }
        } else {
            bounds.append(kept)
        }
        if !missingAt.isEmpty {
            var lineOfRow: [Int: Int] = [:]
            for (k, at) in missingAt.enumerated() { lineOfRow[at / C] = missingLines[k] }
            for c in 0..<C {
                for s in 0..<(bounds.count - 1) {
                    let column = selected[c]
                    let rows = bounds[s]..<bounds[s + 1]
                    let name = seriesIndex == nil ? "" : " of series \"\(excerpt(ids[s]))\""
                    // rows of this channel that hold a value
                    let known = rows.filter { !values[$0 * C + c].isNaN }
                    guard let first = known.first, let last = known.last else {
                        throw fail(nil, "column \(label(header, column))\(name) has no value at all; nothing to fill its missing cells from")
                    }
                    var k = 0  // index into known of the last known row at or before r
                    for r in rows where values[r * C + c].isNaN {
                        while k + 1 < known.count && known[k + 1] < r { k += 1 }
                        switch options.missing {
                        case .error, .drop:
                            break
                        case .ffill:
                            guard r > first else {
                                throw fail(lineOfRow[r], "column \(label(header, column)): missing value in the first row\(name); nothing to fill it forward from (use --missing interpolate or drop)")
                            }
                            values[r * C + c] = values[known[k] * C + c]
                        case .interpolate:
                            if r < first {
                                values[r * C + c] = values[first * C + c]
                            } else if r > last {
                                values[r * C + c] = values[last * C + c]
                            } else {
                                let a = known[k], b = known[k + 1]
                                let va = Double(values[a * C + c]), vb = Double(values[b * C + c])
                                values[r * C + c] = Float(va + (vb - va) * Double(r - a) / Double(b - a))
                            }
                        }
                    }
                }
            }
        }
        let segments = seriesIndex == nil ? nil : SeriesSegments(ids: ids, starts: bounds)
        let out = Series(unchecked: selected.map { header[$0] }, values: values, time: timeIndex == nil ? nil : times,
                         segments: segments)
        values = []
        times = []
        return out
    }
}

/// Powers of ten exactly representable in Double.
private let exactPowersOfTen: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { r, _ in r * 10 } }

/// A plain decimal cell (`-12.5`, `3e-2`, at most 19 significant digits) read straight from its bytes, or nil
/// to leave it to the general path. Where it answers, the answer is `Float(Double(cell))` bit for bit: the
/// decimal is converted to Double exactly (mantissa below 2^53 and a power of ten of at most 22, Clinger's
/// fast path, so one correctly rounded multiplication or division), then rounded to Float once, as before.
@inline(__always)
private func fastDecimal(_ cell: UnsafeBufferPointer<UInt8>) -> Float? {
    let n = cell.count
    var i = 0
    guard n > 0 else { return nil }
    var negative = false
    if cell[0] == 0x2D || cell[0] == 0x2B { negative = cell[0] == 0x2D; i = 1 }
    var mantissa: UInt64 = 0, digits = 0, significant = 0, scale = 0
    while i < n, cell[i] &- 0x30 < 10 {
        if significant > 0 || cell[i] != 0x30 { significant += 1 }
        mantissa = mantissa &* 10 &+ UInt64(cell[i] &- 0x30)
        digits += 1
        i += 1
    }
    if i < n, cell[i] == 0x2E {
        i += 1
        while i < n, cell[i] &- 0x30 < 10 {
            if significant > 0 || cell[i] != 0x30 { significant += 1 }
            mantissa = mantissa &* 10 &+ UInt64(cell[i] &- 0x30)
            digits += 1
            scale -= 1
            i += 1
        }
    }
    guard digits > 0, significant <= 19 else { return nil }
    if i < n, cell[i] == 0x65 || cell[i] == 0x45 {
        i += 1
        var expNegative = false
        if i < n, cell[i] == 0x2D || cell[i] == 0x2B { expNegative = cell[i] == 0x2D; i += 1 }
        var e = 0, ed = 0
        while i < n, cell[i] &- 0x30 < 10, ed < 4 {
            e = e * 10 + Int(cell[i] &- 0x30)
            ed += 1
            i += 1
        }
        guard ed > 0 else { return nil }
        scale += expNegative ? -e : e
    }
    guard i == n, mantissa <= (1 << 53) else { return nil }
    var d = Double(mantissa)
    if mantissa != 0 {
        guard scale >= -22 && scale <= 22 else { return nil }
        d = scale < 0 ? d / exactPowersOfTen[-scale] : d * exactPowersOfTen[scale]
    }
    return Float(negative ? -d : d)
}
