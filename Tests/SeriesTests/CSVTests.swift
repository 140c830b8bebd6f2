import Foundation
import Testing

@testable import Series

/// The message thrown when parsing `text` as `data.csv`, or nil if it parsed.
private func csvMessage(_ text: String, columns: [String]? = nil) -> String? {
    seriesMessage {
        try Series.csv(text: text, source: "data.csv", columns: columns)
    }
}

@Suite struct CSVHappyPathTests {
    let text = """
        date, "temp" ,hum
        2024-01-01,1.5,10
        2024-01-02, -2 ,2e1
        2024-01-03,3.25e-1,  +30

        """

    @Test func allColumnsWhenAllNumeric() throws {
        let s = try Series.csv(text: "a,b\n1,2\n3,4\n", source: "x.csv")
        #expect(s.names == ["a", "b"])
        #expect(s.values == [1, 2, 3, 4])
        #expect(s.count == 2)
    }

    @Test func selectByName() throws {
        let s = try Series.csv(text: text, source: "data.csv", columns: ["hum", "temp"])
        #expect(s.names == ["hum", "temp"])
        #expect(s.channels == 2 && s.count == 3)
        #expect(s.values == [10, 1.5, 20, -2, 30, 0.325])
    }

    @Test func selectByIndex() throws {
        let s = try Series.csv(text: text, source: "data.csv", columns: ["2", "1"])
        #expect(s.names == ["hum", "temp"])
        #expect(s.values == [10, 1.5, 20, -2, 30, 0.325])
    }

    @Test func headerNameWinsOverIndex() throws {
        let s = try Series.csv(text: "1,0\n5,6\n7,8\n", source: "d.csv", columns: ["0"])
        #expect(s.names == ["0"])
        #expect(s.values == [6, 8])
    }

    @Test func bomCRLFAndTrailingBlankLines() throws {
        let t = "\u{FEFF}x,\"y\"\r\n1,2\r\n3,4\r\n\r\n"
        let s = try Series.csv(text: t, source: "w.csv")
        #expect(s.names == ["x", "y"])
        #expect(s.values == [1, 2, 3, 4])
    }

    @Test func quotedHeaderWithCommaAndQuote() throws {
        let t = "\"a,1\",\"say \"\"hi\"\"\"\n1,2\n3,4"
        let s = try Series.csv(text: t, source: "q.csv", columns: ["say \"hi\"", "a,1"])
        #expect(s.names == ["say \"hi\"", "a,1"])
        #expect(s.values == [2, 1, 4, 3])
    }

    @Test func doubleIsRoundedToFloat() throws {
        let s = try Series.csv(text: "v\n0.1\n1e-3\n", source: "f.csv")
        #expect(s.values == [Float(0.1 as Double), Float(1e-3 as Double)])
    }

    @Test func readsFileWithBOMAndCRLF() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/data.csv"
            var bytes: [UInt8] = [0xEF, 0xBB, 0xBF]
            bytes += Array("t,temp,rh\r\n0,20.5,0.5\r\n1,21,0.25\r\n2,19.75,1\r\n".utf8)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let s = try Series.csv(path: path, columns: ["temp", "2"])
            #expect(s.names == ["temp", "rh"])
            #expect(s.values == [20.5, 0.5, 21, 0.25, 19.75, 1])
            #expect(s == (try Series(names: ["temp", "rh"], values: [20.5, 0.5, 21, 0.25, 19.75, 1])))
        }
    }
}

@Suite struct CSVErrorTests {
    @Test func missingFileAndDirectory() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/data.csv"
            #expect(
                seriesMessage { try Series.csv(path: path) }
                    == "cannot read \(path): No such file or directory")
            #expect(seriesMessage { try Series.csv(path: dir) } == "cannot read \(dir): Is a directory")
        }
    }

    @Test func emptyFile() throws {
        let expected = "data.csv: file is empty; expected a header line followed by rows of numbers"
        #expect(csvMessage("") == expected)
        #expect(csvMessage("\u{FEFF}") == expected)
        #expect(csvMessage("\n\r\n  \n") == expected)
        try withTemporaryDirectory { dir in
            let path = dir + "/empty.csv"
            try Data().write(to: URL(fileURLWithPath: path))
            #expect(
                seriesMessage { try Series.csv(path: path) }
                    == "\(path): file is empty; expected a header line followed by rows of numbers")
        }
    }

    @Test func headerOnlyAndSingleRow() {
        #expect(
            csvMessage("a,b\n")
                == "data.csv: the header is not followed by any data rows; add at least 2 rows of numbers")
        #expect(
            csvMessage("a,b") == "data.csv: the header is not followed by any data rows; add at least 2 rows of numbers")
        #expect(csvMessage("a,b\n1,2\n") == "data.csv: only 1 data row; a series needs at least 2 rows")
    }

    @Test func notANumberNamesLineAndColumn() {
        var rows = ["time,temp"]
        for i in 0..<20 { rows.append("\(i),\(i == 15 ? "abc" : "1.0")") }  // line 17
        #expect(csvMessage(rows.joined(separator: "\n")) == "data.csv:17: column \"temp\": \"abc\" is not a number")
        // An unselected column may hold anything.
        #expect(csvMessage(rows.joined(separator: "\n"), columns: ["time"]) == nil)
        // Line numbers count CRLF lines correctly too.
        #expect(
            csvMessage("a,b\r\n1,2\r\n3,x\r\n")
                == "data.csv:3: column \"b\": \"x\" is not a number")
    }

    @Test func nonFiniteAndOutOfRange() {
        for bad in ["nan", "NaN", "inf", "-inf", "infinity"] {
            #expect(
                csvMessage("a,b\n1,2\n3,\(bad)\n")
                    == "data.csv:3: column \"b\": \"\(bad)\" is not a finite number; NaN and infinity are not allowed")
        }
        #expect(
            csvMessage("a,b\n1,2\n1e39,4\n") == "data.csv:3: column \"a\": \"1e39\" is too large for a 32-bit float")
    }

    @Test func emptyCell() {
        #expect(csvMessage("a,b\n1,2\n3, \n") == "data.csv:3: column \"b\": missing value (empty cell); fill it in, or pass --missing drop, ffill or interpolate")
    }

    @Test func wrongFieldCounts() {
        #expect(csvMessage("a,b,c\n1,2,3\n4,5\n") == "data.csv:3: expected 3 fields (as in the header) but found 2")
        #expect(csvMessage("a,b\n1,2,3\n4,5\n") == "data.csv:2: expected 2 fields (as in the header) but found 3")
        #expect(csvMessage("a,b\n1,2\n4,5,\n") == "data.csv:3: expected 2 fields (as in the header) but found 3")
    }

    @Test func blankLineInsideData() {
        #expect(csvMessage("a\n1\n\n2\n") == "data.csv:3: empty line; remove blank lines between data rows")
        #expect(
            csvMessage("\na\n1\n2\n")
                == "data.csv:1: the first line is empty; it must be the header (column names separated by commas)")
    }

    @Test func unknownColumnListsAvailable() {
        #expect(
            csvMessage("time,temp\n1,2\n3,4\n", columns: ["tmp"])
                == "data.csv:1: no column named \"tmp\"; available columns: \"time\", \"temp\" (or give a 0-based column index)")
        #expect(
            csvMessage("time,temp\n1,2\n3,4\n", columns: ["2"])
                == "data.csv:1: column index 2 is out of range; the header has 2 columns (indices 0 to 1)")
        #expect(
            csvMessage("time,temp\n1,2\n3,4\n", columns: ["99999999999999999999999"])?.hasPrefix(
                "data.csv:1: column index 99999999999999999999999 is out of range") == true)
        #expect(
            csvMessage("time,temp\n1,2\n3,4\n", columns: ["temp", "1"])
                == "column \"temp\" of data.csv is selected twice; select each column once")
        #expect(
            csvMessage("time,temp\n1,2\n3,4\n", columns: [])
                == "no columns selected from data.csv; give at least one column name or index")
    }

    @Test func duplicateHeader() {
        #expect(
            csvMessage("a,b,a\n1,2,3\n4,5,6\n")
                == "data.csv:1: column name \"a\" appears twice (columns 0 and 2); column names must be unique")
        #expect(
            csvMessage("a, b ,\"b\"\n1,2,3\n4,5,6\n")
                == "data.csv:1: column name \"b\" appears twice (columns 1 and 2); column names must be unique")
    }

    @Test func badQuotes() {
        #expect(
            csvMessage("\"a,b\n1\n2\n") == "data.csv:1: field 1 has an opening quote but no closing quote")
        #expect(csvMessage("\"a\"x,b\n1,2\n3,4\n") == "data.csv:1: field 1 has text after its closing quote")
    }

    @Test func invalidUTF8() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/bad.csv"
            try Data(Array("a\n1\n".utf8) + [0xFF, 0x0A] + Array("2\n".utf8)).write(to: URL(fileURLWithPath: path))
            #expect(
                seriesMessage { try Series.csv(path: path) }
                    == "\(path):3: line is not valid UTF-8 text; save the file as UTF-8")
        }
    }
}

@Suite struct CSVDecimalTests {
    @Test("hexadecimal cells are refused with their line and column named, though Double reads them")
    func hexadecimalRefused() {
        for cell in ["0x10", "0x1p3", "-0X1A"] {
            let m = csvMessage("a,b\n1,2\n3,\(cell)\n")
            #expect(m?.contains("data.csv:3:") == true && m?.contains("column \"b\"") == true
                    && m?.contains("\"\(cell)\" is not a decimal number") == true, "\(cell): \(m ?? "parsed")")
        }
    }

    @Test("decimal forms still parse")
    func decimalForms() throws {
        let s = try Series.csv(text: "a\n-1.5\n.5\n3.\n1e-3\n+2E+1\n", source: "x.csv")
        #expect(s.values == [-1.5, 0.5, 3, 1e-3, 20])
        #expect(isDecimal("1") && isDecimal("-0.25e10") && !isDecimal("e3") && !isDecimal(".") && !isDecimal("1e")
                && !isDecimal("0x10") && !isDecimal("1_000"))
    }
}

@Suite struct CSVStreamingTests {
    /// The byte-level reading of plain decimals gives `Float(Double(cell))` bit for bit.
    @Test func fastDecimalsMatchDoubleThenFloat() throws {
        var rng = SeededRNG(seed: 7)
        var cells: [String] = []
        for k in 0..<20_000 {
            let digits = Int(rng.next() % 20) + 1
            var m = (0..<digits).map { _ in String(rng.next() % 10) }.joined()
            if k % 3 == 0 { m.insert(".", at: m.index(m.startIndex, offsetBy: Int(rng.next() % UInt64(digits + 1)))) }
            if k % 5 == 0 { m += "e\(Int(rng.next() % 36) - 20)" }
            if k % 2 == 0 { m = "-" + m }
            cells.append(m)
        }
        cells += ["0", "-0", "0.1", "1e22", "9007199254740993", "3.4028235e38", "1.17549435e-38", "123456789012345678", "+5", ".5", "5."]
        let s = try Series.csv(text: "v\n" + cells.joined(separator: "\n") + "\n", source: "x.csv")
        for (cell, v) in zip(cells, s.values) {
            let expected = Float(try #require(Double(cell)))
            #expect(v.bitPattern == expected.bitPattern, "\(cell): \(v) vs \(expected)")
        }
    }

    /// A file read in 1 MiB chunks (lines cut at chunk ends) gives what the whole text gives.
    @Test func chunkedFileEqualsText() throws {
        var text = "id,time,a,b\n"
        for i in 0..<120_000 { text += "s\(i / 1000),\(i % 1000),\(Double(i) * 0.25),\"\(i % 7)\"\n" }
        try withTemporaryDirectory { dir in
            let path = dir + "/big.csv"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let options = CSVOptions(timeColumn: "time", seriesColumn: "id")
            let a = try Series.csv(path: path, options: options)
            let b = try Series.csv(text: text, source: path, options: options)
            #expect(a == b)
            #expect(a.count == 120_000 && a.seriesCount == 120 && a.values[2 * 77_777] == Float(Double(77_777) * 0.25))
        }
    }
}

@Suite struct CSVBoundsTests {
    @Test func devicesAndFIFOsAreRefusedAtOnce() throws {
        #expect(seriesMessage { try Series.csv(path: "/dev/zero") } == "cannot read /dev/zero: it is a device, not a regular file; give a file")
        try withTemporaryDirectory { dir in
            let fifo = dir + "/data.csv"
            #expect(mkfifo(fifo, 0o644) == 0)
            #expect(seriesMessage { try Series.csv(path: fifo) } == "cannot read \(fifo): it is a FIFO (named pipe), not a regular file; give a file")
        }
    }

    @Test func aFileOverTheLimitIsRefusedUnread() throws {
        try withTemporaryDirectory { dir in
            // sparse: no disk is used, and nothing is read
            let path = dir + "/huge.csv"
            #expect(FileManager.default.createFile(atPath: path, contents: nil))
            #expect(truncate(path, off_t(Series.maxCSVBytes) + 1) == 0)
            #expect(seriesMessage { try Series.csv(path: path) }
                == "cannot read \(path): it has more than \(Series.maxCSVBytes) bytes, the limit for a data file; use a smaller file")
        }
    }

    @Test func messagesQuoteAtMostAFewDozenCharacters() throws {
        let cell = String(repeating: "x", count: 100_000)
        let m = try #require(csvMessage("a,b\n1,2\n3,\(cell)\n"))
        #expect(m == "data.csv:3: column \"b\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (100000 characters)\" is not a number")
        let header = (0..<1000).map { "c\($0)" + String(repeating: "y", count: 100) }.joined(separator: ",")
        let n = try #require(csvMessage(header + "\n" + String(repeating: "1,", count: 999) + "1\n", columns: [String(repeating: "z", count: 5000)]))
        #expect(n.count < 1000, "a \(n.count)-character message")
        #expect(n.contains("and 988 more"))
    }

    @Test func trailingBlankLinesAndCRLFStillParse() throws {
        let s = try Series.csv(text: "a\r\n1\r\n2\r\n \r\n\r\n\n", source: "x.csv")
        #expect(s.values == [1, 2])
        #expect(csvMessage(" \n\n") == "data.csv: file is empty; expected a header line followed by rows of numbers")
    }
}
