import Foundation
import Testing

@testable import Series

/// A fresh directory under the system temp dir, removed when `body` returns.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("ztrain-series-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// The message of the `SeriesError` thrown by `body`, or nil if it did not throw.
/// Any other error is reported as such, so a test comparing messages fails.
func seriesMessage<R>(_ body: () throws -> R) -> String? {
    do {
        _ = try body()
        return nil
    } catch let error as SeriesError {
        return error.description
    } catch {
        return "unexpected error type: \(error)"
    }
}

@Suite struct SinCosTests {
    @Test func referenceSeriesShapeAndEndpoints() throws {
        let s = try Series.sincos()
        #expect(s.count == 1000)
        #expect(s.channels == 2)
        #expect(s.names == ["sin", "cos"])
        #expect(s.values.count == 2000)
        #expect(Array(s.point(0)) == [0, 1])
        #expect(Array(s.point(999)) == [Float(sin(100.0)), Float(cos(100.0))])
        // Known values of sin/cos(100) to float precision.
        #expect(abs(s[point: 999, channel: 0] - (-0.50636564)) < 1e-7)
        #expect(abs(s[point: 999, channel: 1] - 0.86231887) < 1e-7)
    }

    @Test func linspaceMatchesNumpyBitForBit() {
        // Bit patterns of numpy.linspace(0, 100, 1000)[i]. At i = 7 and 998, numpy's
        // `i * step + start` differs from `i * (to - from) / (n - 1)` in the last bit.
        let x = Series.linspace(from: 0, to: 100, points: 1000)
        #expect(x.count == 1000)
        #expect(x[0] == 0)
        #expect(x[1].bitPattern == 0x3fb9_a029_0041_9a03)
        #expect(x[7].bitPattern == 0x3fe6_6c23_e039_66c3)
        #expect(x[333].bitPattern == 0x4040_aaaa_aaaa_aaab)
        #expect(x[500].bitPattern == 0x4049_0668_0a40_1067)
        #expect(x[998].bitPattern == 0x4058_f997_f5bf_ef9a)
        #expect(x[999] == 100)
        // numpy.linspace(-3.5, 2.25, 7)
        let y = Series.linspace(from: -3.5, to: 2.25, points: 7).map(\.bitPattern)
        #expect(
            y == [
                0xc00c_0000_0000_0000, 0xc004_5555_5555_5555, 0xbff9_5555_5555_5555,
                0xbfe4_0000_0000_0000, 0x3fd5_5555_5555_5558, 0x3ff4_aaaa_aaaa_aaac,
                0x4002_0000_0000_0000,
            ])
    }

    @Test func matchesNumpyReferenceData() throws {
        // FNV-1a of np.stack([sin(x), cos(x)], 1).astype(float32) for x = linspace(0, 100, 1000),
        // computed with numpy: the whole reference data set is bit-identical.
        let s = try Series.sincos()
        #expect(s.fingerprint == 0x7760_8580_33d1_8517)
        #expect(Array(s.point(1)) == [0.09993301, 0.99499416])
        #expect(Array(s.point(333)) == [0.9405296, -0.33971182])
        #expect(Array(s.point(998)) == [-0.590005, 0.80739963])
    }

    @Test func customRange() throws {
        let s = try Series.sincos(points: 2, from: -1, to: 2)
        #expect(s.count == 2)
        #expect(Array(s.point(0)) == [Float(sin(-1.0)), Float(cos(-1.0))])
        #expect(Array(s.point(1)) == [Float(sin(2.0)), Float(cos(2.0))])
        #expect(s.channel(0) == [Float(sin(-1.0)), Float(sin(2.0))])
    }

    @Test func rejectsBadArguments() {
        #expect(seriesMessage { try Series.sincos(points: 1) } == "--points must be at least 2 (got 1)")
        #expect(seriesMessage { try Series.sincos(points: -5) } == "--points must be at least 2 (got -5)")
        #expect(
            seriesMessage { try Series.sincos(points: 10, from: 5, to: 5) }
                == "the range of x must go upwards: start 5.0 must be less than end 5.0")
        #expect(seriesMessage { try Series.sincos(points: 10, from: 6, to: 5) } != nil)
        #expect(
            seriesMessage { try Series.sincos(points: 10, from: 0, to: .infinity) }
                == "the range of x must have finite bounds (got 0.0 to inf)")
        #expect(seriesMessage { try Series.sincos(points: 10, from: .nan, to: 1) } != nil)
        #expect(seriesMessage { try Series.sincos(points: Int.max) } != nil)
    }
}

@Suite struct SeriesValueTests {
    @Test func initValidates() throws {
        let s = try Series(names: ["a", "b"], values: [1, 2, 3, 4, 5, 6])
        #expect(s.count == 3 && s.channels == 2)
        #expect(Array(s.point(2)) == [5, 6])
        #expect(s.withUnsafeBufferPointer { Array($0) } == [1, 2, 3, 4, 5, 6])
        #expect(seriesMessage { try Series(names: [], values: []) } != nil)
        #expect(
            seriesMessage { try Series(names: ["a", "b"], values: [1, 2, 3]) }
                == "3 values do not fill whole points of 2 channels; pass a multiple of 2 values")
        #expect(
            seriesMessage { try Series(names: ["a"], values: [1]) }
                == "a series needs at least 2 points (got 1)")
        #expect(
            seriesMessage { try Series(names: ["a", "b"], values: [1, 2, 3, .nan]) }
                == "value at point 1, channel \"b\" is nan; every value must be finite")
    }

    @Test func fingerprintIsStableAndSensitive() throws {
        // FNV-1a 64 over LE UInt64 channels (2), count (2), then LE float bits of 1, 2, 3, 4;
        // computed independently in Python.
        let s = try Series(names: ["a", "b"], values: [1, 2, 3, 4])
        #expect(s.fingerprint == 4_578_153_140_145_711_384)
        #expect(s.fingerprint == (try Series(names: ["x", "y"], values: [1, 2, 3, 4])).fingerprint)

        let base = try Series.sincos(points: 50)
        #expect(base.fingerprint == (try Series.sincos(points: 50)).fingerprint)
        for i in [0, 17, 99] {
            var v = base.values
            v[i] = v[i].nextUp
            let changed = try Series(names: base.names, values: v)
            #expect(changed.fingerprint != base.fingerprint, "changing value \(i) must change the hash")
        }
        // Same values, different shape.
        let flat = try Series(names: ["a"], values: [1, 2, 3, 4])
        #expect(flat.fingerprint != s.fingerprint)
        // -0 and +0 have different bit patterns.
        let pz = try Series(names: ["a"], values: [0, 1])
        let nz = try Series(names: ["a"], values: [-0.0, 1])
        #expect(pz.fingerprint != nz.fingerprint)
    }
}
