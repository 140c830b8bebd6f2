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
    public static func csv(path: String, columns: [String]? = nil) throws(SeriesError) -> Series {
        let bytes = try readWholeFile(path, maxBytes: maxCSVBytes)
        return try parseCSV(bytes, source: path, columns: columns)
    }

    /// The largest CSV file ``csv(path:columns:)`` reads: 2 GiB.
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
    public static func csv(text: String, source: String, columns: [String]? = nil)
        throws(SeriesError) -> Series
    {
        try parseCSV(Array(text.utf8), source: source, columns: columns)
    }

    static func parseCSV(_ bytes: [UInt8], source: String, columns: [String]?)
        throws(SeriesError) -> Series
    {
        func fail(_ line: Int?, _ message: String) -> SeriesError {
            .csv(source: source, line: line, message: message)
        }

        // The text without the byte order mark and trailing blank lines; its lines are visited one by
        // one (no array of lines: the file's bytes are the only copy of the text held).
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        var end = body.endIndex
        while true {
            let start = body[..<end].lastIndex(of: 0x0A).map { $0 + 1 } ?? body.startIndex
            guard isBlank(withoutCR(body[start..<end])) else { break }
            if start == body.startIndex {
                end = start
                break
            }
            end = start - 1
        }
        let text = body[..<end]
        guard !text.isEmpty else {
            throw fail(nil, "file is empty; expected a header line followed by rows of numbers")
        }
        var cursor = text.startIndex
        /// The next line without its terminator (precondition: `cursor <= text.endIndex`).
        func nextLine() -> ArraySlice<UInt8> {
            let stop = text[cursor...].firstIndex(of: 0x0A) ?? text.endIndex
            let line = withoutCR(text[cursor..<stop])
            cursor = stop + 1
            return line
        }

        // Header.
        let headerLine = nextLine()
        guard !isBlank(headerLine) else {
            throw fail(1, "the first line is empty; it must be the header (column names separated by commas)")
        }
        let header = try splitFields(headerLine, lineNumber: 1, source: source)
        var firstIndex: [String: Int] = [:]
        for (i, name) in header.enumerated() {
            if let j = firstIndex[name] {
                throw fail(
                    1,
                    "column name \"\(excerpt(name))\" appears twice (columns \(j) and \(i)); "
                        + "column names must be unique")
            }
            firstIndex[name] = i
        }

        // Column selection.
        let selected: [Int]
        if let columns {
            guard !columns.isEmpty else {
                throw .invalidArgument(
                    "no columns selected from \(source); give at least one column name or index")
            }
            var picked: [Int] = []
            for spec in columns {
                let index: Int
                if let i = firstIndex[spec] {
                    index = i
                } else if !spec.isEmpty, spec.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    guard let i = Int(spec), i < header.count else {
                        throw fail(
                            1,
                            "column index \(excerpt(spec)) is out of range; the header has \(header.count) "
                                + "column\(header.count == 1 ? "" : "s") (indices 0 to \(header.count - 1))")
                    }
                    index = i
                } else {
                    var available = header.prefix(12).map { "\"\(excerpt($0))\"" }.joined(separator: ", ")
                    if header.count > 12 { available += " and \(header.count - 12) more" }
                    throw fail(
                        1,
                        "no column named \"\(excerpt(spec))\"; available columns: \(available) "
                            + "(or give a 0-based column index)")
                }
                if picked.contains(index) {
                    throw .invalidArgument(
                        "column \(label(header, index)) of \(source) is selected twice; select each column once")
                }
                picked.append(index)
            }
            selected = picked
        } else {
            selected = Array(header.indices)
        }

        // Rows.
        let rowCount = text.lazy.filter { $0 == 0x0A }.count
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
        for lineIndex in 1...rowCount {
            let lineNumber = lineIndex + 1
            let line = nextLine()
            guard !isBlank(line) else {
                throw fail(lineNumber, "empty line; remove blank lines between data rows")
            }
            let fields = try splitFields(line, lineNumber: lineNumber, source: source)
            guard fields.count == header.count else {
                throw fail(
                    lineNumber,
                    "expected \(header.count) field\(header.count == 1 ? "" : "s") (as in the header) "
                        + "but found \(fields.count)")
            }
            for c in selected {
                let cell = fields[c]
                guard !cell.isEmpty else {
                    throw fail(lineNumber, "column \(label(header, c)): empty cell; every cell must hold a number")
                }
                guard let d = Double(cell) else {
                    throw fail(lineNumber, "column \(label(header, c)): \"\(excerpt(cell))\" is not a number")
                }
                guard d.isFinite else {
                    throw fail(
                        lineNumber,
                        "column \(label(header, c)): \"\(excerpt(cell))\" is not a finite number; "
                            + "NaN and infinity are not allowed")
                }
                let f = Float(d)
                guard f.isFinite else {
                    throw fail(
                        lineNumber,
                        "column \(label(header, c)): \"\(excerpt(cell))\" is too large for a 32-bit float")
                }
                values.append(f)
            }
        }
        return Series(unchecked: selected.map { header[$0] }, values: values)
    }
}

/// How a column is named in messages: `"temp"`, or `#3` when the header cell is empty.
private func label(_ header: [String], _ i: Int) -> String {
    header[i].isEmpty ? "#\(i)" : "\"\(excerpt(header[i]))\""
}

private func withoutCR(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> { line.last == 0x0D ? line.dropLast() : line }

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

private func isBlank(_ line: ArraySlice<UInt8>) -> Bool { line.allSatisfy(isSpace) }

/// Splits one line (without its terminator) into trimmed, unquoted fields.
private func splitFields(_ line: ArraySlice<UInt8>, lineNumber: Int, source: String)
    throws(SeriesError) -> [String]
{
    guard let text = strictUTF8(line) else {
        throw .csv(source: source, line: lineNumber, message: "line is not valid UTF-8 text; save the file as UTF-8")
    }
    let u = Array(text.utf8)
    var fields: [String] = []
    var i = 0
    let quote: UInt8 = 0x22
    let comma: UInt8 = 0x2C
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
