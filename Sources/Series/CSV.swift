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
        let bytes = try readWholeFile(path)
        return try parseCSV(bytes, source: path, columns: columns, options: options)
    }

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
        try parseCSV(Array(text.utf8), source: source, columns: columns, options: options)
    }

    static func parseCSV(_ bytes: [UInt8], source: String, columns: [String]?, options: CSVOptions)
        throws(SeriesError) -> Series
    {
        let delimiter = options.delimiter
        func fail(_ line: Int?, _ message: String) -> SeriesError {
            .csv(source: source, line: line, message: message)
        }

        // Lines, without the byte order mark, the line terminators and trailing blank lines.
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        var lines = body.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? line.dropLast() : line
        }
        while let last = lines.last, isBlank(last) { lines.removeLast() }
        guard !lines.isEmpty else {
            throw fail(nil, "file is empty; expected a header line followed by rows of numbers")
        }

        // Header.
        guard !isBlank(lines[0]) else {
            throw fail(1, "the first line is empty; it must be the header (column names separated by commas)")
        }
        let header = try splitFields(lines[0], lineNumber: 1, source: source, delimiter: delimiter)
        var firstIndex: [String: Int] = [:]
        for (i, name) in header.enumerated() {
            if let j = firstIndex[name] {
                throw fail(
                    1,
                    "column name \"\(name)\" appears twice (columns \(j) and \(i)); "
                        + "column names must be unique")
            }
            firstIndex[name] = i
        }

        // Column selection.
        func resolve(_ spec: String) throws(SeriesError) -> Int {
            if let i = firstIndex[spec] { return i }
            if !spec.isEmpty, spec.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                guard let i = Int(spec), i < header.count else {
                    throw fail(
                        1,
                        "column index \(spec) is out of range; the header has \(header.count) "
                            + "column\(header.count == 1 ? "" : "s") (indices 0 to \(header.count - 1))")
                }
                return i
            }
            let available = header.map { "\"\($0)\"" }.joined(separator: ", ")
            throw fail(
                1,
                "no column named \"\(spec)\"; available columns: \(available) "
                    + "(or give a 0-based column index)")
        }
        var timeIndex: Int? = nil
        if let t = options.timeColumn { timeIndex = try resolve(t) }
        var seriesIndex: Int? = nil
        if let sc = options.seriesColumn {
            let i: Int
            do { i = try resolve(sc) } catch { throw .invalidArgument("--series-column: \(error)") }
            if i == timeIndex {
                throw .invalidArgument("column \(label(header, i)) of \(source) is the --time-column; it cannot also be the --series-column")
            }
            seriesIndex = i
        }
        let selected: [Int]
        if let columns {
            guard !columns.isEmpty else {
                throw .invalidArgument(
                    "no columns selected from \(source); give at least one column name or index")
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

        // Rows.
        let rowCount = lines.count - 1
        guard rowCount >= 1 else {
            throw fail(
                nil,
                "the header is not followed by any data rows; add at least \(minimumPoints) rows of numbers")
        }
        guard rowCount >= minimumPoints else {
            throw fail(
                nil,
                "only \(rowCount) data row; a series needs at least \(minimumPoints) rows")
        }
        var values: [Float] = []
        values.reserveCapacity(rowCount * selected.count)
        var times: [String] = []
        var rowLines: [Int] = []  // the line of each kept row
        var missingAt: [Int] = []  // flat indices into values of missing cells (NaN placeholders)
        var ids: [String] = []  // with --series-column: each series' ID, in file order
        var starts: [Int] = []  // the first kept row of each series
        var idLines: [String: Int] = [:]  // the line where each ID's rows start
        for lineIndex in 1..<lines.count {
            let lineNumber = lineIndex + 1
            let line = lines[lineIndex]
            guard !isBlank(line) else {
                throw fail(lineNumber, "empty line; remove blank lines between data rows")
            }
            let fields = try splitFields(line, lineNumber: lineNumber, source: source, delimiter: delimiter)
            guard fields.count == header.count else {
                throw fail(
                    lineNumber,
                    "expected \(header.count) field\(header.count == 1 ? "" : "s") (as in the header) "
                        + "but found \(fields.count)")
            }
            var row: [Float] = []
            var rowMissing: [Int] = []
            for c in selected {
                let cell = fields[c]
                if isMissing(cell) || (options.missing != .error && (cell == "nan" || cell == "NaN" || cell == "NAN")) {
                    if options.missing == .error {
                        throw fail(
                            lineNumber,
                            "column \(label(header, c)): missing value (\(cell.isEmpty ? "empty cell" : "\"\(cell)\"")); "
                                + "fill it in, or pass --missing drop, ffill or interpolate")
                    }
                    rowMissing.append(row.count)
                    row.append(.nan)
                    continue
                }
                guard let d = Double(cell) else {
                    throw fail(lineNumber, "column \(label(header, c)): \"\(cell)\" is not a number")
                }
                guard !d.isFinite || isDecimal(cell) else {
                    throw fail(
                        lineNumber,
                        "column \(label(header, c)): \"\(cell)\" is not a decimal number "
                            + "(hexadecimal is not read); write it as digits, e.g. 16 or 1.5e-3")
                }
                guard d.isFinite else {
                    throw fail(
                        lineNumber,
                        "column \(label(header, c)): \"\(cell)\" is not a finite number; "
                            + "NaN and infinity are not allowed")
                }
                let f = Float(d)
                guard f.isFinite else {
                    throw fail(
                        lineNumber,
                        "column \(label(header, c)): \"\(cell)\" is too large for a 32-bit float")
                }
                row.append(f)
            }
            if let si = seriesIndex, fields[si] != ids.last {
                let id = fields[si]
                if let first = idLines[id] {
                    throw fail(
                        lineNumber,
                        "column \(label(header, si)): the rows of series \"\(id)\" (from line \(first)) are not consecutive; "
                            + "sort the file by the series column, keeping each series in time order")
                }
                idLines[id] = lineNumber
                ids.append(id)
                starts.append(values.count / selected.count)
            }
            if !rowMissing.isEmpty && options.missing == .drop { continue }
            missingAt += rowMissing.map { values.count + $0 }
            values += row
            rowLines.append(lineNumber)
            if let t = timeIndex { times.append(fields[t]) }
        }
        let C = selected.count
        let kept = values.count / C
        guard kept >= minimumPoints else {
            throw fail(nil, "only \(kept) complete row\(kept == 1 ? "" : "s") left after --missing drop; a series needs at least \(minimumPoints)")
        }
        // each series' rows (one range without --series-column); a series left with too few rows is an error
        var bounds = [0]
        if seriesIndex != nil {
            bounds = starts + [kept]
            for s in 0..<(bounds.count - 1) where bounds[s + 1] - bounds[s] < minimumPoints {
                throw fail(idLines[ids[s]], "series \"\(ids[s])\" has \(bounds[s + 1] - bounds[s]) row\(bounds[s + 1] - bounds[s] == 1 ? "" : "s")\(options.missing == .drop ? " left after --missing drop" : ""); every series needs at least \(minimumPoints)")
            }
        } else {
            bounds.append(kept)
        }
        if !missingAt.isEmpty {
            for c in 0..<C {
              for s in 0..<(bounds.count - 1) {
                let column = selected[c]
                let rows = bounds[s]..<bounds[s + 1]
                let name = seriesIndex == nil ? "" : " of series \"\(ids[s])\""
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
                            throw fail(rowLines[r], "column \(label(header, column)): missing value in the first row\(name); nothing to fill it forward from (use --missing interpolate or drop)")
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
        return Series(unchecked: selected.map { header[$0] }, values: values, time: timeIndex == nil ? nil : times,
                      segments: segments)
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
    header[i].isEmpty ? "#\(i)" : "\"\(header[i])\""
}

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

private func isBlank(_ line: ArraySlice<UInt8>) -> Bool { line.allSatisfy(isSpace) }

/// Splits one line (without its terminator) into trimmed, unquoted fields.
private func splitFields(_ line: ArraySlice<UInt8>, lineNumber: Int, source: String, delimiter: UInt8)
    throws(SeriesError) -> [String]
{
    guard let text = strictUTF8(line) else {
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

/// `bytes` as a `String` if they are valid UTF-8, else nil. (Decoding repairs invalid sequences
/// with U+FFFD, so a repaired result no longer matches the input bytes.)
private func strictUTF8(_ bytes: ArraySlice<UInt8>) -> String? {
    let s = String(decoding: bytes, as: UTF8.self)
    return s.utf8.elementsEqual(bytes) ? s : nil
}
