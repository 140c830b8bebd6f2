import Foundation
import Testing
import Wire

@Suite struct XXH64Tests {
    @Test func specVectors() {
        #expect(Wire.xxh64(Array("".utf8)) == 0xEF46_DB37_51D8_E999)
        #expect(Wire.xxh64(Array("a".utf8)) == 0xD24E_C4F1_A98C_6E5B)
        #expect(Wire.xxh64(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        #expect(Wire.emptyChecksum == 0xEF46_DB37_51D8_E999)
        #expect(Wire.xxh64(UnsafeRawBufferPointer(start: nil, count: 0)) == Wire.emptyChecksum)
    }

    /// Every prefix length 0...71 (all tail paths, below and above one 32-byte stripe) and some
    /// long ones, seed 0; expected values from Python's `xxhash` package.
    @Test func patternPrefixes() {
        let expected: [(Int, UInt64)] = [
            (0, 0xEF46DB3751D8E999), (1, 0xAD10CD9780AC4FF7), (2, 0xB22635899E8F2235),
            (3, 0x40626D96276E4594), (4, 0x882207C122C76E23), (5, 0xA3DA885EEC618BB4),
            (6, 0xAD9C2ECD863325F1), (7, 0xCFC90033AA9DAC4F), (8, 0x90FDA2F089FA86DE),
            (9, 0xA80DEB192B8C5215), (10, 0x3AAF07FC10721C6D), (11, 0xD2953E1354CAEF18),
            (12, 0x333861B25FD6348B), (13, 0x4E8F0D349A6F20EF), (14, 0x4DF943FE248C8BBA),
            (15, 0x59F95BAD12D14C9D), (16, 0x3A5B1165D151AA50), (17, 0xC0BBB6AC5DBEFE29),
            (18, 0xA43333C50C99A7B9), (19, 0xF919C24061C10223), (20, 0xBD5C3B7ACE1CF9C6),
            (21, 0x2718C52BDD650ABF), (22, 0x955BDFDEB57244D6), (23, 0xB2D26D6E52E62480),
            (24, 0x22A0F61ABE725BF4), (25, 0x2E7D73F3896A812E), (26, 0x05286F7B4D3669BA),
            (27, 0x581E8369415863B4), (28, 0x3BEE93D5A57498CA), (29, 0x186A89BD8A211C92),
            (30, 0xC2FE19097A329DE7), (31, 0x44CC9EFE5D2D0233), (32, 0x0E1AAB1D173CF196),
            (33, 0x5C820B4B4FE28FDC), (34, 0x674271278616AB41), (35, 0x22DE45605909B372),
            (36, 0x4085F13B32C5FEB0), (37, 0x92E43D6D89A524DE), (38, 0x36BD670CD3955867),
            (39, 0xD0AB734277760E45), (40, 0xC0441297B12D2395), (41, 0x77DEC64A3B3BC5C3),
            (42, 0x32AC8537AA1EE157), (43, 0x533C78D7B4373E03), (44, 0x0D95EE4190E08749),
            (45, 0xA05508CB6737D409), (46, 0xC87DD14C48FE91C1), (47, 0xA4D02F0326869446),
            (48, 0x8E7952E9DB8EAE71), (49, 0x4C5A1F7910733F74), (50, 0x4D87691089AA979B),
            (51, 0x7B9CF9C7EE42EDFF), (52, 0xC1A02E8D0A24430D), (53, 0x1B90E8100ED94B5E),
            (54, 0xBD61FC2BF492D4DD), (55, 0x910E8A09EEB42EC5), (56, 0x88576C889955FCE8),
            (57, 0x247644B2BC54C238), (58, 0xF30240A3A869130B), (59, 0x319659E04033E85D),
            (60, 0x137A5DEB3F660384), (61, 0x159B99D9E0929A9A), (62, 0xD73D713C67CE4B7A),
            (63, 0x1153D36CADE87066), (64, 0xD4C20EF54CBC9F67), (65, 0xAC086C9B87BAEA67),
            (66, 0x1B497BB2FD3D5691), (67, 0x087FA05DC97EEEBD), (68, 0xF9394FBD99B2B1E1),
            (69, 0x4F755863C483139B), (70, 0x56F7033D775AE682), (71, 0x363D9F519148F6C1),
            (100, 0x7F8375F3E09D8123), (255, 0xFC0C21A234C0A092), (1000, 0x9FB3251BEF67C2B5),
            (2000, 0x87E83A9FF28CB2CD),
        ]
        let bytes = pattern(2000)
        for (n, value) in expected {
            #expect(Wire.xxh64(Array(bytes[0..<n])) == value, "prefix of \(n) bytes")
        }
    }

    @Test func nonZeroSeed() {
        let seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        let expected: [(Int, UInt64)] = [
            (0, 0xC4349FC93C010000), (1, 0xEEE0B6D27C96399C), (3, 0x93BA463A084767E9),
            (4, 0xD0C267B9EE1E5859), (7, 0xD684EDA4399035AF), (8, 0x7DEC350536051091),
            (31, 0x0FB3B15A174B3FF1), (32, 0x860A935AA1FDD66B), (33, 0x3B00A6EF0416E4A4),
            (100, 0x72A72996BC4434AC), (2000, 0xB48808E3B798E162),
        ]
        let bytes = pattern(2000)
        for (n, value) in expected {
            #expect(Wire.xxh64(Array(bytes[0..<n]), seed: seed) == value, "prefix of \(n) bytes")
        }
    }

    /// The hash does not depend on the alignment of the buffer.
    @Test func unalignedStart() {
        let bytes = pattern(2100)
        let reference = Wire.xxh64(Array(bytes[0..<1000]))
        for shift in 0..<8 {
            let shifted = [UInt8](repeating: 0xAA, count: shift) + bytes[0..<1000]
            let h = shifted.withUnsafeBytes { Wire.xxh64(UnsafeRawBufferPointer(rebasing: $0[shift...])) }
            #expect(h == reference, "shift \(shift)")
        }
    }
}

@Suite struct ThroughputTests {
    #if DEBUG
        static let megabytes = 4
    #else
        static let megabytes = 40
    #endif

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Reports XXH64 and gradient-decode throughput (40 MB in release builds, 4 MB in debug).
    /// Measures only; the numbers go to standard output.
    @Test func xxh64AndDecodeThroughput() throws {
        let bytes = Self.megabytes * 1_000_000
        var rng = SplitMix64(seed: 1)
        let floats = randomFloats(bytes / 4, &rng)
        let clock = ContinuousClock()
        var best = Duration.seconds(1000)
        var sink: UInt64 = 0
        floats.withUnsafeBytes { raw in
            for _ in 0..<7 {
                let t = clock.measure { sink ^= Wire.xxh64(raw) }
                best = min(best, t)
            }
        }
        let hashRate = Double(bytes) / Self.seconds(best) / 1e9
        #expect(sink != 0)

        let g = Gradient(step: 1, block: 0..<1, leafCount: 1, samples: 1, computeNanos: 0, sums: floats)
        let (h, p) = encodeJoined(Envelope(runID: 1, workerID: 1, message: .gradient(g)))
        var bestDecode = Duration.seconds(1000)
        let limits = Limits(maxPayloadBytes: p.count)
        for _ in 0..<5 {
            let t = try clock.measure {
                let e = try Wire.decode(frames: wireFrames(h, p), limits: limits)
                guard case .gradient(let back) = e.message, back.sums.count == floats.count else {
                    Issue.record("decode lost data")
                    return
                }
            }
            bestDecode = min(bestDecode, t)
        }
        let decodeRate = Double(p.count) / Self.seconds(bestDecode) / 1e9
        let mode = Self.megabytes == 40 ? "release" : "debug"
        print(
            "throughput (\(mode), \(Self.megabytes) MB): XXH64 \(String(format: "%.2f", hashRate)) GB/s; "
                + "gradient decode (checksum + finite check + copy) \(String(format: "%.2f", decodeRate)) GB/s")
    }
}
