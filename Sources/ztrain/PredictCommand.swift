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
import Support

/// A model file, the configuration it was trained with, and its series (raw and as the model sees it).
struct TrainedModel {
    let path: String
    let loaded: LoadedModel
    let config: TrainingConfig
    let raw: Series
    let model: Series

    /// Loads `path` and the series it was trained on (or the one `data` names, transformed the same way).
    init(path: String, data: DataOptions) throws {
        self.path = path
        do {
            loaded = try loadModel(path: path, expecting: nil)
        } catch {
            throw fail("\(error)")
        }
        let trained = loaded.metadata["training_config"].flatMap {
            try? JSONStyle.canonical.decode(TrainingConfig.self, from: $0)
        }
        var config = trained ?? TrainingConfig(
            model: loaded.config, optimizer: OptimizerConfig(kind: .adam, learningRate: 1e-2, momentum: 0),
            data: .sincos(points: 1000, from: 0, to: 100), batch: 1, microBatch: 1, epochs: 1, steps: nil, seed: 0,
            shuffle: false, clipNorm: nil, targetLoss: nil, validationFraction: 0)
        config.model = loaded.config
        config.data = try data.spec(base: trained?.data)
        self.config = config
        do {
            (raw, model) = try config.loadSeries()
        } catch {
            throw fail("\(error)")
        }
        guard model.channels == loaded.config.inputSize else {
            throw fail("\(path) expects \(loaded.config.inputSize) channels but \(config.data) has \(model.channels)")
        }
        guard model.count > loaded.config.seqLen else {
            throw fail("the series (\(model.count) points as the model sees it) is shorter than a window of \(loaded.config.seqLen) points")
        }
    }

    var seriesName: String { config.data.seriesName }
}

/// What `--out` is: the `--format` given, else its extension; anything else is refused, naming the flag.
func outputFormat(out: String, format: String?, allowed: [String]) throws -> String {
    let ext = out.split(separator: "/").last.flatMap { name -> String? in
        guard let dot = name.lastIndex(of: "."), dot > name.startIndex else { return nil }
        return String(name[name.index(after: dot)...]).lowercased()
    }
    let list = allowed.map { ".\($0)" }.joined(separator: " or ")
    if let format {
        guard allowed.contains(format) else {
            throw ValidationError("--format must be \(allowed.joined(separator: " or ")) (got '\(format)')")
        }
        if let ext, ext != format {
            throw ValidationError("--out \(out) ends in .\(ext) but --format is \(format); name the file .\(format)")
        }
        return format
    }
    guard let ext, allowed.contains(ext) else {
        throw ValidationError("--out \(out): unknown extension; name the file \(list) (or give --format)")
    }
    return ext
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One-step predictions and a free-running rollout of a trained model, as a plot or a CSV, with metrics.",
        discussion: """
            The series defaults to the one the model was trained on (from the file's metadata); --data \
            and friends override it. Values are in the series' own units (the model's scaling and \
            differencing undone). Prints RMSE, MAE, sMAPE and MASE on each split next to the persistence \
            and seasonal-naive forecasts.

            Examples:
              ztrain predict --model runs/sincos/model.safetensors --out plot.svg
              ztrain predict --model runs/sunspots/model.safetensors --format csv --out predictions.csv
            """)

    @Option(help: "A model.safetensors written by 'ztrain train' (or by PyTorch with the reference tensor names).")
    var model: String

    @Option(help: "The file to write: .svg (plot) or .csv (series,point,time,channel,actual,one_step,rollout).")
    var out: String?

    @Option(help: "svg or csv (default: from the extension of --out, else svg).")
    var format: String?

    @OptionGroup(title: "Data (default: the series the model was trained on)") var data: DataOptions

    @Option(help: "The rollout starts from the true window at this point index of the model's series (default: the start of the validation part, else 0).")
    var rolloutFrom: Int?

    @Option(help: "Points the rollout predicts (default: to the end of the series).")
    var rolloutSteps: Int?

    @Option(help: "Season of the seasonal-naive baseline (default: from training, else inferred from the time column).")
    var season: Int?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let s = season, s < 1 { throw ValidationError("--season must be at least 1 (got \(s))") }
        _ = try outputFormat(out: out ?? "predictions.\(format ?? "svg")", format: format, allowed: ["svg", "csv"])
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.predict")
        let fmt = try outputFormat(out: out ?? "predictions.\(format ?? "svg")", format: format, allowed: ["svg", "csv"])
        let out = self.out ?? "predictions.\(fmt)"
        let m = try TrainedModel(path: model, data: data)
        if let s = rolloutSteps, !(1...10_000_000).contains(s) {
            throw ValidationError("--rollout-steps must be in 1...10000000 (got \(s))")
        }
        let prediction: SeriesPredictions
        do {
            prediction = try SeriesPredictions.make(config: m.config, parameters: m.loaded.parameters, raw: m.raw, model: m.model,
                                                    rolloutFrom: rolloutFrom.map(RolloutStart.point) ?? .validation, steps: rolloutSteps)
        } catch {
            throw ValidationError("\(error)")
        }
        let evaluation = prediction.evaluation(config: m.config, season: season)
        let bytes: [UInt8]
        if fmt == "csv" {
            bytes = Array(prediction.csv().utf8)
        } else {
            let c = m.loaded.config
            if prediction.isMulti && prediction.parts.count > 3 {
                logger.info("the figure shows the first 3 of \(prediction.parts.count) series; --format csv writes them all")
            }
            bytes = Array(SVG.render(prediction.charts(evaluation: evaluation),
                                     title: "ztrain predict: \(URL(fileURLWithPath: model).lastPathComponent), H=\(c.hiddenSize) \(c.cell.rawValue), \(m.config.data)",
                                     columns: 2, panelWidth: 640, panelHeight: 280).utf8)
        }
        do {
            try AtomicFile.write(bytes, to: out)
        } catch {
            throw fail("\(error)")
        }
        if let table = evaluation.perSeriesText { logger.info("one-step metrics per series, in each series' own units:\n\(table)") }
        logger.info("one-step metrics in the series' own units (season \(evaluation.season.map(String.init) ?? "none")\(evaluation.perSeries.map { ", pooled over \($0.count) series" } ?? "")):\n\(evaluation.text)")
        print(out)
    }
}

struct ForecastCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast",
        abstract: "Continue the series a trained model was trained on past its end.",
        discussion: """
            Feeds the model its own predictions from the last window of the series on, for --horizon points, \
            and writes series,point,time,channel,forecast in the series' own units (the time column extended \
            when its labels are numbers, dates or quarters).

            Example: ztrain forecast --model runs/co2/model.safetensors --horizon 24 --out forecast.csv
            """)

    @Option(help: "A model.safetensors written by 'ztrain train'.")
    var model: String

    @Option(help: "Points to forecast past the end of the series.")
    var horizon: Int

    @Option(help: "The CSV file to write.")
    var out: String = "forecast.csv"

    @OptionGroup(title: "Data (default: the series the model was trained on)") var data: DataOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (1...10_000_000).contains(horizon) else { throw ValidationError("--horizon must be in 1...10000000 (got \(horizon))") }
        _ = try outputFormat(out: out, format: nil, allowed: ["csv"])
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.forecast")
        let m = try TrainedModel(path: model, data: data)
        let prediction: SeriesPredictions
        do {
            prediction = try SeriesPredictions.make(config: m.config, parameters: m.loaded.parameters, raw: m.raw, model: m.model,
                                                    rolloutFrom: .end, steps: horizon)
        } catch {
            throw fail("\(error)")
        }
        let text = prediction.forecastCSV()
        do {
            try AtomicFile.write(Array(text.utf8), to: out)
        } catch {
            throw fail("\(error)")
        }
        logger.info("forecast \(horizon) points past the end of \(prediction.isMulti ? "each of the \(prediction.parts.count) series of " : "")\(m.config.data)")
        print(out)
    }
}
