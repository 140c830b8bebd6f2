import Foundation
import Plot
import Testing

/// Whether `step` is 1, 2 or 5 times a power of ten.
private func isNice(_ step: Double) -> Bool {
    guard step > 0, step.isFinite else { return false }
    let e = (log10(step)).rounded(.down)
    let m = step / pow(10, e)
    return [1.0, 2.0, 5.0, 10.0].contains { abs(m - $0) < 1e-6 }
}

/// Asserts that `ticks` are evenly spaced by a nice step and that each is a multiple of it
/// (up to the rounding of doubles of the ticks' magnitude).
private func expectNiceTicks(_ ticks: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
    guard ticks.count >= 2 else {
        Issue.record("fewer than two ticks: \(ticks)", sourceLocation: sourceLocation)
        return
    }
    let magnitude = ticks.map(abs).max()!
    let rounding = magnitude * 1e-15
    // Snap the observed spacing to the nearest 1/2/5 × 10^k it can be.
    let observed = ticks[1] - ticks[0]
    let e = log10(observed).rounded(.down)
    let step = [1.0, 2.0, 5.0, 10.0].map { $0 * pow(10, e) }.min { abs($0 - observed) < abs($1 - observed) }!
    #expect(isNice(step) && abs(step - observed) <= step * 1e-9 + 2 * rounding,
            "spacing \(observed) not 1/2/5×10^k", sourceLocation: sourceLocation)
    for (a, b) in zip(ticks, ticks.dropFirst()) {
        #expect(abs((b - a) - step) <= step * 1e-9 + 2 * rounding, "uneven spacing in \(ticks)",
                sourceLocation: sourceLocation)
    }
    for t in ticks {
        let k = t / step
        #expect(abs(k - k.rounded()) < 1e-6 + rounding / step, "\(t) not a multiple of \(step)",
                sourceLocation: sourceLocation)
    }
}

@Suite struct TicksTests {
    @Test func niceStepRoundsUpToOneTwoFive() {
        #expect(Ticks.niceStep(1).mantissa == 1 && Ticks.niceStep(1).exponent == 0)
        #expect(Ticks.niceStep(0.3) == (5, -1))
        #expect(Ticks.niceStep(0.12) == (2, -1))
        #expect(Ticks.niceStep(7) == (1, 1))
        #expect(Ticks.niceStep(2e-7) == (2, -7))
        #expect(Ticks.niceStep(.nan) == (1, 0))
        #expect(Ticks.niceStep(0) == (1, 0))
    }

    @Test(arguments: [
        (0.0, 1.0), (-1.05, 1.05), (0.0, 999.0), (1.0, 300.0), (3.7, 3.9), (-0.00042, 0.0013),
        (1e-6, 7e-5), (12345.0, 98765.0), (-5e9, 3e9), (0.1, 0.3), (1e9, 1e9 + 1), (-273.15, -200.0),
    ])
    func linearTicksAreNiceAndCoverTheRange(range: (Double, Double)) {
        let (lo, hi) = range
        for target in [2, 4, 5, 8] {
            let axis = Ticks.linear(lower: lo, upper: hi, targetCount: target)
            expectNiceTicks(axis.ticks)
            #expect(axis.ticks.first! <= lo && axis.ticks.last! >= hi, "\(axis.ticks) vs \(lo)...\(hi)")
            #expect(axis.lower == axis.ticks.first && axis.upper == axis.ticks.last)
            #expect(axis.ticks.count >= 2 && axis.ticks.count <= target + 3)
            #expect(axis.labels.count == axis.ticks.count)
            #expect(Set(axis.labels).count == axis.labels.count, "duplicate labels \(axis.labels)")
        }
    }

    @Test func linearWithoutExpandKeepsTheDomain() {
        let axis = Ticks.linear(lower: -1.13, upper: 1.13, targetCount: 4, expand: false)
        #expect(axis.lower == -1.13 && axis.upper == 1.13)
        #expect(axis.ticks == [-1, -0.5, 0, 0.5, 1])
        #expect(axis.labels == ["-1", "-0.5", "0", "0.5", "1"])
    }

    @Test func linearLabelsAreCompact() {
        #expect(Ticks.linear(lower: 0, upper: 1, targetCount: 5).labels == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(Ticks.linear(lower: 0, upper: 1000, targetCount: 5).labels == ["0", "200", "400", "600", "800", "1000"])
        #expect(Ticks.linear(lower: 0, upper: 0.004, targetCount: 4).labels == ["0", "0.001", "0.002", "0.003", "0.004"])
        let small = Ticks.linear(lower: 0, upper: 4e-5, targetCount: 4).labels
        #expect(small == ["0", "1e-5", "2e-5", "3e-5", "4e-5"])
        let large = Ticks.linear(lower: 0, upper: 1e7, targetCount: 4).labels
        #expect(large == ["0", "2e6", "4e6", "6e6", "8e6", "1e7"])
        #expect(Ticks.linear(lower: 0, upper: 2.4e6, targetCount: 5).labels.contains("1.5e6"))
        // No floating-point noise such as 0.30000000000000004 and no "-0".
        let tenths = Ticks.linear(lower: -0.3, upper: 0.3, targetCount: 6)
        #expect(tenths.ticks.contains(0.3) && tenths.ticks.contains(-0.3))
        #expect(!tenths.labels.contains("-0") && tenths.labels.contains("0"))
        #expect(tenths.labels.allSatisfy { $0.count <= 4 })
    }

    @Test func formatHandlesEdgeCases() {
        #expect(Ticks.format(-0.0, stepExponent: 0, scientific: false) == "0")
        #expect(Ticks.format(0.1 + 0.2, stepExponent: -1, scientific: false) == "0.3")
        #expect(Ticks.format(1.5e-4, stepExponent: -5, scientific: true) == "1.5e-4")
        #expect(Ticks.format(2.5e6, stepExponent: 5, scientific: true) == "2.5e6")
        #expect(Ticks.format(-3e-7, stepExponent: -7, scientific: true) == "-3e-7")
        #expect(Ticks.format(250, stepExponent: 1, scientific: false) == "250")
    }

    @Test func constantAndNonFiniteRangesDoNotDivideByZero() {
        for (lo, hi) in [(3.0, 3.0), (0.0, 0.0), (-2e-9, -2e-9), (.nan, .nan), (-.infinity, .infinity), (5.0, .nan)] {
            let axis = Ticks.linear(lower: lo, upper: hi)
            #expect(axis.lower.isFinite && axis.upper.isFinite && axis.upper > axis.lower)
            #expect(axis.ticks.count >= 2 && axis.ticks.allSatisfy(\.isFinite))
            if lo.isFinite && lo == hi { #expect(axis.lower < lo && axis.upper > lo) }
        }
    }

    @Test func logTicksAreDecadesCoveringTheRange() {
        let axis = Ticks.log(lower: 3e-4, upper: 0.8)
        #expect(axis.isLog)
        #expect(axis.lower == 1e-4 && axis.upper == 1)
        #expect(axis.ticks == [1e-4, 1e-3, 1e-2, 1e-1, 1])
        #expect(axis.labels == ["1e-4", "1e-3", "1e-2", "1e-1", "1"])
        #expect(axis.minorTicks.contains(2e-3) && axis.minorTicks.contains(9e-2))
        #expect(Ticks.log(lower: 2, upper: 900).labels == ["1", "10", "100", "1000"])
    }

    @Test func logTicksThinOutManyDecades() {
        let axis = Ticks.log(lower: 1e-12, upper: 1e3, maxMajorCount: 6)
        #expect(axis.ticks.count <= 7)
        #expect(axis.ticks.first! <= 1e-12 && axis.ticks.last! >= 1e3)
        let exponents = axis.ticks.map { log10($0).rounded() }
        let steps = Set(zip(exponents, exponents.dropFirst()).map { $1 - $0 })
        #expect(steps.count == 1 && steps.first! > 1)
    }

    @Test func logTicksWithinOneDecadeAddTwoAndFive() {
        let axis = Ticks.log(lower: 0.15, upper: 0.9)
        #expect(axis.ticks == [0.1, 0.2, 0.5, 1])
        #expect(axis.labels == ["1e-1", "2e-1", "5e-1", "1"])
        let inside = Ticks.log(lower: 0.32, upper: 0.78, expand: false)
        #expect(inside.ticks.count >= 2 && inside.ticks.allSatisfy { $0 >= 0.32 && $0 <= 0.78 })
    }

    @Test func logHandlesDegenerateInput() {
        for (lo, hi) in [(1.0, 1.0), (0.0, 0.0), (-1.0, 5.0), (.nan, 2.0), (0.0, .infinity)] {
            let axis = Ticks.log(lower: lo, upper: hi)
            #expect(axis.lower > 0 && axis.upper > axis.lower && axis.upper.isFinite)
            #expect(!axis.ticks.isEmpty && axis.ticks.allSatisfy { $0 > 0 && $0.isFinite })
        }
    }
}
