import Foundation
import Testing
@testable import RNN

/// One case of `lr_schedules.json` (made by `scripts/lr_schedule_reference.py` with PyTorch's schedulers).
private struct ScheduleCase: Decodable {
    let name: String
    let kind: String
    let lr: Double
    let warmup: Int?
    let step_size: Int?
    let gamma: Double?
    let t_max: Int?
    let min_lr: Double?
    let patience: Int?
    let factor: Double?
    let epochs: Int
    let steps_per_epoch: Int
    let losses: [String]?
    let lrs: [String]
}

private struct ScheduleFile: Decodable {
    let torch: String
    let cases: [ScheduleCase]
}

private func hex(_ s: String) throws -> Double {
    guard let d = Double(s) else { throw ReferenceError.malformed("not a hex float: \(s)") }
    return d
}

@Suite("Learning-rate schedules against PyTorch")
struct ScheduleTests {
    private func cases() throws -> [ScheduleCase] {
        try JSONDecoder().decode(ScheduleFile.self, from: Data(contentsOf: fixtureURL("lr_schedules.json"))).cases
    }

    /// Every optimizer step's rate has PyTorch's bits: StepLR, CosineAnnealingLR (past T_max too),
    /// ReduceLROnPlateau on a given loss sequence (with a NaN and a tie inside the threshold), each
    /// alone and after a LinearLR warmup, and the warmup alone.
    @Test func everyStepsRateHasPyTorchsBits() throws {
        let all = try cases()
        #expect(all.count == 10)
        for c in all {
            let kind = try #require(LRScheduleKind(rawValue: c.kind))
            let d = LRScheduleConfig()
            let config = LRScheduleConfig(kind: kind, warmup: c.warmup ?? 0, stepSize: c.step_size, gamma: c.gamma ?? d.gamma,
                                          tMax: c.t_max, minLR: c.min_lr ?? d.minLR, patience: c.patience ?? d.patience,
                                          factor: c.factor ?? d.factor)
            #expect(config.problem() == nil)
            var s = LRScheduler(config: config, baseLR: c.lr, epochs: c.epochs)
            let losses = try (c.losses ?? []).map(hex)
            var got: [Double] = []
            for e in 0..<c.epochs {
                for _ in 0..<c.steps_per_epoch {
                    got.append(s.lr)
                    s.afterStep()
                }
                s.afterEpoch(monitored: e < losses.count ? losses[e] : .nan)
            }
            let want = try c.lrs.map(hex)
            #expect(got.count == want.count, "\(c.name)")
            for (i, (g, w)) in zip(got, want).enumerated() where g.bitPattern != w.bitPattern {
                Issue.record("\(c.name): step \(i) lr \(g) (\(g.bitPattern)), PyTorch \(w)")
                break
            }
        }
    }

    /// A schedule restored from its state continues with the same bits.
    @Test func aRestoredScheduleContinuesBitForBit() {
        let config = LRScheduleConfig(kind: .plateau, warmup: 3, patience: 1, factor: 0.5)
        var a = LRScheduler(config: config, baseLR: 0.01, epochs: 10)
        for e in 0..<4 { a.afterStep(); a.afterStep(); a.afterEpoch(monitored: e == 0 ? 1 : 2) }
        var b = LRScheduler(config: config, baseLR: 0.01, epochs: 10, state: a.state)
        for _ in 0..<5 { a.afterStep(); b.afterStep(); a.afterEpoch(monitored: 3); b.afterEpoch(monitored: 3) }
        #expect(a == b)
    }

    @Test func badValuesNameTheirFlag() {
        #expect(LRScheduleConfig(kind: .step).problem() == "--lr-schedule step needs --lr-step-size EPOCHS")
        #expect(LRScheduleConfig(kind: .step, stepSize: 0).problem()?.hasPrefix("--lr-step-size") == true)
        #expect(LRScheduleConfig(kind: .step, stepSize: 2, gamma: 0).problem()?.hasPrefix("--lr-gamma") == true)
        #expect(LRScheduleConfig(kind: .cosine, tMax: 0).problem()?.hasPrefix("--lr-t-max") == true)
        #expect(LRScheduleConfig(kind: .cosine, minLR: -1).problem()?.hasPrefix("--lr-min") == true)
        #expect(LRScheduleConfig(kind: .plateau, patience: -1).problem()?.hasPrefix("--lr-patience") == true)
        #expect(LRScheduleConfig(kind: .plateau, factor: 1).problem()?.hasPrefix("--lr-factor") == true)
        #expect(LRScheduleConfig(kind: .plateau, factor: .nan).problem()?.hasPrefix("--lr-factor") == true)
        #expect(LRScheduleConfig(warmup: -1).problem()?.hasPrefix("--warmup") == true)
    }

    /// The optimizer runs at the rate it is given: at the configured rate, the same bits as before.
    @Test func theOptimizerUsesTheGivenRate() {
        let g: [Float] = [0.5, -1, 2]
        var a = Optimizer<Float>(config: OptimizerConfig(kind: .adam, learningRate: 0.01), parameterCount: 3)
        var b = a
        var c = Optimizer<Float>(config: OptimizerConfig(kind: .adam, learningRate: 0.03), parameterCount: 3)
        var pa: [Float] = [1, 2, 3], pb = pa, pc = pa
        for _ in 0..<3 {
            a.update(&pa, gradient: g)
            b.update(&pb, gradient: g, learningRate: 0.01)
            c.update(&pc, gradient: g, learningRate: 0.03)
        }
        var d = Optimizer<Float>(config: OptimizerConfig(kind: .adam, learningRate: 0.03), parameterCount: 3)
        var pd: [Float] = [1, 2, 3]
        for _ in 0..<3 { d.update(&pd, gradient: g) }
        #expect(pa == pb)
        #expect(pc == pd)
    }
}
