import Testing
@testable import RNN

/// Sharded aggregation updates each slice with the slice's own optimizer state: the bits must be those of
/// the whole-vector update restricted to the slice.
@Suite("Optimizer on a slice")
struct OptimizerSliceTests {
    func randomVector(_ n: Int, _ rng: inout TestRNG, scale: Double) -> [Float] {
        (0..<n).map { _ in Float((2 * rng.unit() - 1) * scale) }
    }

    static let configs = [
        OptimizerConfig(kind: .adam, learningRate: 1e-2),
        OptimizerConfig(kind: .adam, learningRate: 3e-3, beta1: 0.8, beta2: 0.99, epsilon: 1e-6),
        OptimizerConfig(kind: .sgd, learningRate: 0.05),
        OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9),
    ]

    @Test(arguments: configs)
    func aSliceUpdatesAsTheWholeVectorDoes(config: OptimizerConfig) {
        var rng = TestRNG(11)
        let b = ShardPlan.blockSize
        let p = 3 * b + 77
        // block-aligned slices of every owner count, and arbitrary ones (odd offsets and lengths)
        var slices: [Range<Int>] = []
        for s in 1...5 { let plan = ShardPlan(parameterCount: p, owners: s); slices += (0..<s).map(plan.range(ofOwner:)) }
        slices += [0..<1, 1..<18, 5..<(b + 3), (p - 9)..<p, 13..<13]
        var full = Optimizer<Float>(config: config, parameterCount: p)
        var params = randomVector(p, &rng, scale: 0.5)
        var parts = slices.map { full.slice($0) }
        var sliceParams = slices.map { Array(params[$0]) }
        for step in 1...6 {
            var g = randomVector(p, &rng, scale: 2)
            let lr = config.learningRate * (1 - 0.1 * Double(step))  // a schedule: another rate each step
            let coef: Double? = step % 2 == 0 ? 0.37 : nil  // the clip scale factor, passed in
            for (k, r) in slices.enumerated() {
                var gs = Array(g[r])
                if let c = coef { gs.withUnsafeMutableBufferPointer { GradientNorm.scale($0, by: c) } }
                parts[k].update(&sliceParams[k], gradient: gs, learningRate: lr)
            }
            if let c = coef { g.withUnsafeMutableBufferPointer { GradientNorm.scale($0, by: c) } }
            full.update(&params, gradient: g, learningRate: lr)
            for (k, r) in slices.enumerated() {
                #expect(sliceParams[k].map(\.bitPattern) == params[r].map(\.bitPattern), "\(config.kind) step \(step) slice \(r)")
                let want = full.slice(r)
                #expect(parts[k].m.map(\.bitPattern) == want.m.map(\.bitPattern) && parts[k].v.map(\.bitPattern) == want.v.map(\.bitPattern))
                #expect(parts[k].step == full.step)
            }
        }
        // an owner count's slices join to the whole state
        let plan = ShardPlan(parameterCount: p, owners: 3)
        let joined = Optimizer.joining((0..<3).map { full.slice(plan.range(ofOwner: $0)) })
        #expect(joined?.m == full.m && joined?.v == full.v && joined?.step == full.step)
    }

    @Test func joiningRefusesSlicesOfDifferentSteps() {
        var a = Optimizer<Float>(config: OptimizerConfig(kind: .adam, learningRate: 1e-2), parameterCount: 2)
        let b = a
        var p: [Float] = [0, 0]
        a.update(&p, gradient: [1, 1])
        #expect(Optimizer.joining([a, b]) == nil)
        #expect(Optimizer<Float>.joining([]) == nil)
    }
}
