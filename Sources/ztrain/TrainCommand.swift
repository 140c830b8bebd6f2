import ArgumentParser
import Checkpoint
import Foundation
import Logging
import RNN
import Series
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model and write model.safetensors, metrics.jsonl, summary.json and loss.svg to --out.",
        discussion: """
            Today every run trains in this process (--in-process); data-parallel training over ZeroMQ \
            workers arrives with --workers.

            Example: ztrain train --target-loss 1e-4 --out runs/sincos
            """)

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Windows") var windows: WindowOptions
    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Optimisation") var optim: OptimOptions

    @Flag(help: "Train in this process (the default; no ZeroMQ workers).")
    var inProcess = false

    @Option(help: "Compute threads in this process (any count gives the same bits).")
    var threads: Int = 1

    @Option(help: "Start from these weights (a model.safetensors of the same shape).")
    var `init`: String?

    @Option(help: "Output folder (default: runs/<UTC date-time>).")
    var out: String?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.train")
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        let spec = try data.spec()
        let series: Series
        do {
            series = try spec.load()
        } catch {
            throw fail("\(error)")
        }
        let config = try makeTrainingConfig(data: data, windows: windows, model: model, optim: optim, channels: series.channels)

        var initial: [Float]? = nil
        if let path = self.`init` {
            do {
                let loaded = try loadModel(path: path, expecting: config.model)
                initial = loaded.parameters
                logger.info("starting from \(path)")
            } catch {
                throw fail("\(error)")
            }
        }

        let outPath = out ?? defaultRunDirectory()
        let trainer: InProcessTrainer
        let dir: RunDirectory
        do {
            trainer = try InProcessTrainer(config: config, series: series, initialParameters: initial, threads: threads)
            dir = try RunDirectory(path: outPath)
        } catch {
            throw fail("\(error)")
        }
        logger.info("training in-process: \(series.count) points, \(trainer.split.all.count) windows (\(trainer.split.train.count) train, \(trainer.split.validation.count) validation), H=\(config.model.hiddenSize), cell \(config.model.cell.rawValue), \(config.optimizer.kind.rawValue) lr \(config.optimizer.learningRate), batch \(config.batch), micro-batch \(config.microBatch), \(threads) thread(s), out \(dir.url.path)")

        let progress = ProgressReporter(logger: logger, live: !global.quiet && ProgressReporter.stderrIsTerminal,
                                        totalEpochs: config.epochs, totalSteps: config.steps)
        var writeError: (any Error)? = nil
        var result: TrainingResult? = nil
        var runError: (any Error)? = nil
        do {
            result = try trainer.run { event in
                progress.handle(event)
                if case .epoch(let m) = event, writeError == nil {
                    do { try dir.append(m) } catch { writeError = error }
                }
            }
        } catch {
            runError = error
        }
        progress.finish()

        // Whatever happened, keep the last good weights and what was measured.
        let params = result?.parameters ?? trainer.parameters
        let finalLoss = result?.finalLoss ?? trainer.meanLoss(windows: trainer.split.all)
        let summary = RunSummary(
            finalLoss: finalLoss,
            finalValLoss: result?.finalValLoss,
            epochs: result?.epochs ?? 0, steps: result?.steps ?? 0, samples: result?.samples ?? 0,
            wallSeconds: result?.wallSeconds ?? 0, trainSeconds: result?.trainSeconds ?? 0,
            samplesPerSecond: result.map { $0.trainSeconds > 0 ? Double($0.samples) / $0.trainSeconds : 0 } ?? 0,
            targetLoss: config.targetLoss, targetReached: result?.targetReached,
            mode: "in-process", threads: threads, parameters: params.count,
            windows: trainer.split.all.count, trainWindows: trainer.split.train.count,
            validationWindows: trainer.split.validation.count,
            config: config, model: dir.modelURL.path, error: runError.map { "\($0)" })
        do {
            try dir.writeModel(parameters: params, config: config, extra: ["training_config": configJSON(config)])
            try dir.writeSummary(summary)
            try dir.writeLossPlot(title: "ztrain: \(config.data) H=\(config.model.hiddenSize) \(config.model.cell.rawValue)")
        } catch {
            throw fail("\(error)")
        }
        if let e = writeError { throw fail("\(e)") }
        if let e = runError { throw fail("\(e) (last good weights saved to \(dir.modelURL.path))") }
        guard let r = result else { return }
        let reached = r.targetReached.map { $0 ? "  target reached" : "  target NOT reached" } ?? ""
        logger.info("done: \(r.epochs) epochs, \(r.steps) steps, final MSE over all \(trainer.split.all.count) windows \(String(format: "%.4e", r.finalLoss)), \(String(format: "%.3f", r.wallSeconds)) s wall, \(String(format: "%.0f", summary.samplesPerSecond)) samples/s\(reached)")
        if r.targetReached == false, let t = config.targetLoss {
            logger.warning("the MSE did not reach --target-loss \(t) within the epoch/step limit")
        }
        print(dir.url.path)
    }
}

func defaultRunDirectory() -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyyMMdd-HHmmss"
    return "runs/\(f.string(from: Date()))"
}

func configJSON(_ c: TrainingConfig) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    guard let d = try? e.encode(c) else { return "{}" }
    return String(decoding: d, as: UTF8.self)
}
