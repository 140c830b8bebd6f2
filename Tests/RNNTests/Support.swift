import Foundation
@testable import RNN

/// The reference series `[sin x, cos x]`, `x = linspace(0, 100, n)`, flat `(n, 2)`.
func sincos<S: RNNScalar>(_ n: Int = 1000, as: S.Type = S.self) -> [S] {
    var out = [S]()
    out.reserveCapacity(2 * n)
    for i in 0..<n {
        let x = 100.0 * Double(i) / Double(n - 1)
        out.append(S(Foundation.sin(x)))
        out.append(S(Foundation.cos(x)))
    }
    return out
}

/// A small deterministic generator for tests (SplitMix64).
struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Random parameters of moderate size (so tanh is not saturated and relu units are mixed).
func randomParams(_ config: ModelConfig, seed: UInt64, scale: Double = 0.5) -> [Double] {
    var rng = TestRNG(seed)
    return (0..<ParameterLayout(config).count).map { _ in (2 * rng.unit() - 1) * scale }
}

/// Max over elements of |a-b| / max(|b|, floor).
func maxRelativeError<S: BinaryFloatingPoint>(_ a: [S], _ b: [Double], floor: Double) -> Double {
    precondition(a.count == b.count)
    var worst = 0.0
    for (x, y) in zip(a, b) {
        worst = max(worst, abs(Double(x) - y) / max(abs(y), floor))
    }
    return worst
}

/// Locates a file in this test target's Fixtures folder.
func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}
