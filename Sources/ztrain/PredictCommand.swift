import ArgumentParser
import Checkpoint
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Plot
import RNN
import Series
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot one-step predictions and a free-running rollout of a trained model against the true series.",
        discussion: """
            The series defaults to the one the model was trained on (from the file's metadata); --data \
            and friends override it.

            Example: ztrain predict --model runs/sincos/model.safetensors --out plot.svg
            """)

    @Option(help: "A model.safetensors written by 'ztrain train' (or by PyTorch with the reference tensor names).")
    var model: String

    @Option(help: "The figure to write: an .svg file.")
    var out: String = "predictions.svg"

    @OptionGroup(title: "Data (default: the series the model was trained on)") var data: DataOptions

    @Option(help: "The rollout starts from the true window at this point index (default: the start of the validation part, else 0).")
    var rolloutFrom: Int?

    @Option(help: "Points the rollout predicts (default: to the end of the series).")
    var rolloutSteps: Int?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try PredictOutput(path: out)
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.predict")
        let loaded: LoadedModel
        do {
            loaded = try loadModel(path: model, expecting: nil)
        } catch {
            throw fail("\(error)")
        }
        let trained = loaded.metadata["training_config"].flatMap {
            try? JSONDecoder().decode(TrainingConfig.self, from: Data($0.utf8))
        }
        let spec = try data.spec(base: trained?.data)
        let series: Series
        do {
            series = try spec.load()
        } catch {
            throw fail("\(error)")
        }
        let config = loaded.config
        guard series.channels == config.inputSize else {
            throw fail("\(model) expects \(config.inputSize) channels but \(spec) has \(series.channels)")
        }
        let T = config.seqLen
        guard series.count > T else { throw fail("the series (\(series.count) points) is shorter than a window of \(T) points") }
        let defaultFrom: Int = {
            guard let f = trained?.validationFraction, f > 0 else { return 0 }
            return max(0, min(series.count - T, series.count - Int((f * Double(series.count)).rounded())))
        }()
        let from = rolloutFrom ?? defaultFrom
        guard from >= 0 && from + T <= series.count else {
            throw ValidationError("--rollout-from must be in 0...\(series.count - T) (got \(from))")
        }
        let steps = rolloutSteps ?? (series.count - from - T)
        guard steps >= 1 && steps <= 10_000_000 else { throw ValidationError("--rollout-steps must be in 1...10000000 (got \(steps))") }

        let forecast = Forecast.make(config: config, parameters: loaded.parameters, series: series, rolloutFrom: from, steps: steps)
        let svg = SVG.render(forecast.charts(series: series),
                             title: "ztrain predict: \(URL(fileURLWithPath: model).lastPathComponent), H=\(config.hiddenSize) \(config.cell.rawValue), \(spec)",
                             columns: 2, panelWidth: 640, panelHeight: 280)
        do {
            try AtomicFile.write(Array(svg.utf8), to: out)
        } catch {
            throw fail("\(error)")
        }
        logger.info("one-step MSE \(cFormat("%.4e", forecast.oneStepMSE)), rollout MSE \(cFormat("%.4e", forecast.rolloutMSE)) over \(steps) points from \(from + T)")
        print(out)
    }
}

/// What `predict --out` writes, from the file's extension; any other extension is a usage error.
enum PredictOutput: Equatable {
    case svg

    init(path: String) throws {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let ext = name.contains(".") ? String(name.split(separator: ".").last ?? "").lowercased() : ""
        switch ext {
        case "svg": self = .svg
        default:
            let kind = ext.isEmpty ? "a file without an extension" : "a .\(ext) file"
            throw ValidationError("--out \(path): predict cannot write \(kind); it writes .svg figures (e.g. --out predictions.svg)")
        }
    }
}
