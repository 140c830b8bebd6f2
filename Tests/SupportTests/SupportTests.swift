import Support
import Testing

@Suite("Support: formatting, stop flags, wake pipes")
struct SupportTests {
    @Test func cFormatFollowsPrintf() {
        #expect(cFormat("%.4e", 0.000123456) == "1.2346e-04")
        #expect(cFormat("%ld|%02x", 42, 10) == "42|0a")
        // longer than the first buffer
        #expect(cFormat("%300d", 1).count == 300)
    }

    @Test func trimmingWhitespaceTrimsBothEnds() {
        #expect(trimmingWhitespace("  a b \n") == "a b")
        #expect(trimmingWhitespace(" \t ") == "")
    }

    @Test func stopFlagKeepsTheFirstSignal() {
        let flag = StopFlag()
        #expect(!flag.isSet && flag.signal == 0)
        flag.set(signal: 15)
        flag.set(signal: 2)
        #expect(flag.isSet && flag.signal == 15)
    }

    @Test func wakePipeSignalsAndDrains() throws {
        let pipe = try #require(WakePipe())
        defer { pipe.close() }
        pipe.signal()
        pipe.signal()
        pipe.drain()
        pipe.drain()  // empty: returns at once (non-blocking)
    }
}

@Suite("Support: JSON")
struct JSONStyleTests {
    struct Sample: Codable, Equatable {
        var seqLen: Int
        var path: String
        var loss: Double
    }

    @Test func canonicalSortsKeysAndLeavesSlashes() throws {
        let s = Sample(seqLen: 4, path: "a/b", loss: 0.5)
        #expect(try JSONStyle.canonical.string(s) == #"{"loss":0.5,"path":"a/b","seqLen":4}"#)
        #expect(try JSONStyle.canonical.decode(Sample.self, from: #"{"path":"a\/b","seqLen":4,"loss":0.5,"x":1}"#) == s)
        #expect(throws: EncodingError.self) { try JSONStyle.canonical.encode(Sample(seqLen: 1, path: "", loss: .nan)) }
    }

    @Test func filesUseSnakeCaseAndNonFiniteStrings() throws {
        let s = Sample(seqLen: 4, path: "a/b", loss: .infinity)
        let line = try JSONStyle.files.line(s)
        #expect(String(decoding: line, as: UTF8.self) == "{\"loss\":\"inf\",\"path\":\"a/b\",\"seq_len\":4}\n")
        #expect(try JSONStyle.files.decode(Sample.self, from: line.dropLast()) == s)
        #expect(try JSONStyle.files.pretty.string(s).contains("\n"))
    }

    @Test func treesKeepNumbersExactlyAndHaveOneForm() throws {
        let json = #"{"a":[18446744073709551615,-9223372036854775808,0.1,2.0,-0.0,1e300],"b":{"c":null,"d":true,"e":"x\"/"}}"#
        let tree = try JSONStyle.canonical.decode(JSONTree.self, from: json)
        #expect(tree == .object([
            "a": .array([.unsigned(.max), .integer(.min), .double(0.1), .integer(2), .integer(0), .double(1e300)]),
            "b": .object(["c": .null, "d": .bool(true), "e": .string("x\"/")]),
        ]))
        let again = try JSONStyle.canonical.decode(JSONTree.self, from: JSONStyle.canonical.encode(tree))
        #expect(again == tree)
        let s = Sample(seqLen: 7, path: "p", loss: 1.25)
        #expect(try JSONTree(encoding: s).decode(Sample.self) == s)
    }

    @Test func validUTF8RefusesWhatRepairWouldChange() {
        #expect(validUTF8(Array("néode".utf8)) == "néode")
        #expect(validUTF8([UInt8]()) == "")
        for bad: [UInt8] in [[0xFF], [0xC3], [0xED, 0xA0, 0x80]] { #expect(validUTF8(bad) == nil) }
    }
}
