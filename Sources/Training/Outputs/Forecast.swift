import Plot
import RNN
import Series

/// One-step-ahead predictions and a free-running rollout of a trained model over a series.
public struct Forecast: Sendable {
    /// Point index `w + T` of each one-step prediction.
    public var oneStepIndex: [Int]
    /// `(count, C)` row-major: the prediction for point `oneStepIndex[k]` from the true window before it.
    public var oneStep: [Float]
    /// First predicted point of the rollout (the model is fed its own outputs from here on).
    public var rolloutStart: Int
    /// `(steps, C)`: the rollout's points `rolloutStart ..< rolloutStart + steps`.
    public var rollout: [Float]
    /// MSE of the one-step predictions, and of the rollout where the truth exists (all channels).
    public var oneStepMSE: Double
    public var rolloutMSE: Double
    /// The same per channel.
    public var oneStepMSEPerChannel: [Double]
    public var rolloutMSEPerChannel: [Double]

    /// - Parameters:
    ///   - rolloutFrom: the rollout starts from the true window `rolloutFrom ..< rolloutFrom + T` and
    ///     predicts `steps` points after it.
    public static func make(
        config: ModelConfig, parameters: [Float], series: Series, rolloutFrom: Int, steps: Int
    ) -> Forecast {
        let T = config.seqLen, C = series.channels
        let windows = Array(0..<(series.count - T))
        let ws = RNNWorkspace<Float>(config: config, maxBatch: 256)
        let one = ws.predictions(params: parameters, series: series.values, windows: windows)
        var se = [Double](repeating: 0, count: C)
        for (k, w) in windows.enumerated() {
            for c in 0..<C {
                let e = Double(one[k * C + c]) - Double(series.values[(w + T) * C + c])
                se[c] += e * e
            }
        }
        // rollout: a (T+1)-point buffer, the last point a dummy target the loss ignores
        var buffer = Array(series.values[(rolloutFrom * C)..<((rolloutFrom + T) * C)]) + [Float](repeating: 0, count: C)
        var rollout: [Float] = []
        rollout.reserveCapacity(steps * C)
        var rse = [Double](repeating: 0, count: C), rn = 0
        let single = RNNWorkspace<Float>(config: config, maxBatch: 1)
        for k in 0..<steps {
            let next = single.predictions(params: parameters, series: buffer, windows: [0])
            rollout.append(contentsOf: next)
            let idx = rolloutFrom + T + k
            if idx < series.count {
                for c in 0..<C {
                    let e = Double(next[c]) - Double(series.values[idx * C + c])
                    rse[c] += e * e
                }
                rn += 1
            }
            buffer.removeFirst(C)
            buffer.removeLast(C)
            buffer.append(contentsOf: next)
            buffer.append(contentsOf: [Float](repeating: 0, count: C))
        }
        return Forecast(
            oneStepIndex: windows.map { $0 + T }, oneStep: one, rolloutStart: rolloutFrom + T, rollout: rollout,
            oneStepMSE: se.reduce(0, +) / Double(max(1, windows.count * C)),
            rolloutMSE: rn > 0 ? rse.reduce(0, +) / Double(rn * C) : .nan,
            oneStepMSEPerChannel: se.map { $0 / Double(max(1, windows.count)) },
            rolloutMSEPerChannel: se.indices.map { rn > 0 ? rse[$0] / Double(rn) : .nan })
    }

    /// Two panels per channel, like the figures of the blog post: the one-step predictions over the true
    /// series, and the free-running rollout from its start marker.
    public func charts(series: Series) -> [Chart] {
        let C = series.channels
        var out: [Chart] = []
        for c in 0..<C {
            let name = series.names[c]
            let truth = LineSeries(name: "true \(name)", ys: series.channel(c).map(Double.init), color: "#444444", width: 2.5)
            let pred = LineSeries(
                name: "one-step prediction", xs: oneStepIndex.map(Double.init),
                ys: (0..<oneStepIndex.count).map { Double(oneStep[$0 * C + c]) }, color: "#D55E00")
            out.append(Chart(title: "\(name): one-step predictions (MSE \(format(oneStepMSEPerChannel[c])))", xLabel: "point",
                             yLabel: name, series: [truth, pred]))
            let steps = rollout.count / C
            let roll = LineSeries(
                name: "free-running rollout", xs: (0..<steps).map { Double(rolloutStart + $0) },
                ys: (0..<steps).map { Double(rollout[$0 * C + c]) }, color: "#0072B2", dashed: true, width: 2)
            out.append(Chart(title: "\(name): free-running rollout (MSE \(format(rolloutMSEPerChannel[c])))", xLabel: "point", yLabel: name,
                             series: [truth, roll], verticalMarkers: [(x: Double(rolloutStart), label: "rollout starts")]))
        }
        return out
    }
}
