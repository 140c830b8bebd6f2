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
