import Foundation
import Testing
@testable import RNN

/// One case of `rnn_reference.json` (PyTorch autograd, Float64).
struct ReferenceCase {
    let config: ModelConfig
    let batch: [Int]
    let initial: [Double]
    let loss: Double
    let grad: [Double]
    let lossAllWindows: Double
    let adamLR: Double, beta1: Double, beta2: Double, eps: Double
    let adamBatch: Int, adamSteps: Int
    let adamAfter: [Double]
}

enum ReferenceError: Error { case malformed(String) }

func flatten(_ any: Any?) throws -> [Double] {
    if let n = any as? NSNumber { return [n.doubleValue] }
    if let a = any as? [Any] { return try a.flatMap { try flatten($0) } }
    throw ReferenceError.malformed("expected numbers, got \(String(describing: any))")
}

func loadReference() throws -> [ReferenceCase] {
    let data = try Data(contentsOf: fixtureURL("rnn_reference.json"))
    guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
          let cases = root["cases"] as? [[String: Any]] else { throw ReferenceError.malformed("root") }
    let names = ["get_ht.weight", "get_ht.bias", "get_yt.weight", "get_yt.bias"]
    return try cases.map { c in
        guard let hidden = c["hidden"] as? Int, let seqLen = c["seq_len"] as? Int,
              let cellName = c["cell"] as? String, let cell = Cell(rawValue: cellName),
              let actName = c["activation"] as? String, let act = Activation(rawValue: actName),
              let initial = c["init"] as? [String: Any], let grad = c["grad"] as? [String: Any],
              let adam = c["adam"] as? [String: Any], let after = adam["weights_after"] as? [String: Any],
              let betas = adam["betas"] as? [Double]
        else { throw ReferenceError.malformed("case fields") }
        let config = ModelConfig(inputSize: 2, hiddenSize: hidden, outputSize: 2, seqLen: seqLen, cell: cell, activation: act)
        return ReferenceCase(
            config: config,
            batch: (c["batch_windows"] as? [Int]) ?? [],
            initial: try names.flatMap { try flatten(initial[$0]) },
            loss: (c["loss"] as? Double) ?? .nan,
            grad: try names.flatMap { try flatten(grad[$0]) },
            lossAllWindows: (c["loss_all_windows"] as? Double) ?? .nan,
            adamLR: (adam["lr"] as? Double) ?? .nan, beta1: betas[0], beta2: betas[1],
            eps: (adam["eps"] as? Double) ?? .nan,
            adamBatch: (adam["batch"] as? Int) ?? 0, adamSteps: (adam["steps"] as? Int) ?? 0,
            adamAfter: try names.flatMap { try flatten(after[$0]) })
    }
}

@Suite("PyTorch reference (rnn_reference.json)")
struct ReferenceTests {
    @Test func fileHasBothCells() throws {
        let cases = try loadReference()
        #expect(Set(cases.map(\.config.cell)) == [.seed, .elman])
        for c in cases {
            #expect(c.initial.count == ParameterLayout(c.config).count)
            #expect(c.grad.count == ParameterLayout(c.config).count)
            #expect(c.adamAfter.count == ParameterLayout(c.config).count)
        }
    }

    func check<S: RNNScalar>(_ type: S.Type, tolerance: Double) throws {
        for c in try loadReference() {
            let series: [S] = sincos(1000)
            let ws = RNNWorkspace<S>(config: c.config, maxBatch: 64)
            let p = c.initial.map { S($0) }
            let (lossSum, g) = ws.lossAndGradient(params: p, series: series, windows: c.batch)
            let B = Double(c.batch.count)
            let loss = Double(lossSum) / B
            #expect(abs(loss - c.loss) / c.loss < tolerance, "\(c.config.cell) loss \(loss) vs \(c.loss)")
            let gmean = g.map { Double($0) / B }
            let gmax = c.grad.map(abs).max() ?? 1
            let gerr = maxRelativeError(gmean, c.grad, floor: 1e-2 * gmax)
            #expect(gerr < tolerance, "\(c.config.cell) gradient relative error \(gerr)")

            let all = ws.lossSum(params: p, series: series, windows: Array(0..<996)) / 996
            #expect(abs(all - c.lossAllWindows) / c.lossAllWindows < tolerance, "\(c.config.cell) all-window loss \(all)")

            // Adam trajectory: step s uses windows [s*batch, (s+1)*batch)
            var params = p
            var opt = Optimizer<S>(config: OptimizerConfig(kind: .adam, learningRate: c.adamLR, beta1: c.beta1, beta2: c.beta2, epsilon: c.eps),
                                   parameterCount: params.count)
            for s in 0..<c.adamSteps {
                let batch = Array((s * c.adamBatch)..<((s + 1) * c.adamBatch))
                var (_, grad) = ws.lossAndGradient(params: params, series: series, windows: batch)
                let n = S(batch.count)
                for i in grad.indices { grad[i] /= n }
                opt.update(&params, gradient: grad)
            }
            let wmax = c.adamAfter.map(abs).max() ?? 1
            let werr = maxRelativeError(params, c.adamAfter, floor: 1e-2 * wmax)
            #expect(werr < tolerance, "\(c.config.cell) Adam weights relative error \(werr)")
        }
    }

    @Test func float32MatchesTo1e5() throws { try check(Float.self, tolerance: 1e-5) }
    @Test func float64MatchesTo1e10() throws { try check(Double.self, tolerance: 1e-10) }
}
