import ArgumentParser
import Checkpoint
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import RNN
import Series
import Training

/// The flags that define a run, shared by `train` and `coordinator`.
struct RunOptions: ParsableArguments {
    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Windows") var windows: WindowOptions
    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Optimisation") var optim: OptimOptions

    @Option(help: "Start from these weights (a model.safetensors of the same shape).")
    var `init`: String?

    @Option(help: "Output folder (default: runs/<UTC date-time>).")
    var out: String?

    @Option(help: "With workers: write a checkpoint to OUT/checkpoints every this many steps (0: never).")
    var checkpointEvery: Int = 0

    @Option(help: "Checkpoints to keep.")
    var keep: Int = 3
}

/// A run ready to start: configuration, data, first weights, output folder.
struct PreparedCLIRun {
    let config: TrainingConfig
    let series: Series
    let initial: [Float]?
    let dir: RunDirectory
    /// Set when continuing a checkpointed run.
    var resume: RunCheckpoint? = nil

    /// Continues the newest checkpoint in `directory` (its configuration wins over any flag).
    init(resume directory: String, logger: Logger) throws {
        let store = CheckpointStore(runDirectory: URL(fileURLWithPath: directory, isDirectory: true), keep: 1)
        let c: RunCheckpoint
        do { c = try store.latest() } catch { throw fail("\(error)") }
        config = c.config
        do { series = try c.config.data.load() } catch { throw fail("cannot reload the data of the checkpointed run: \(error)") }
        initial = nil
        do { dir = try RunDirectory(path: directory, history: c.metrics) } catch { throw fail("\(error)") }
        resume = c
        logger.info("resuming run \(String(c.runID, radix: 16)) from step \(c.counters.step) (epoch \(c.counters.epoch)) in \(directory)")
    }

    init(_ o: RunOptions, logger: Logger) throws {
        let spec = try o.data.spec()
        let series: Series
        do { series = try spec.load() } catch { throw fail("\(error)") }
        config = try makeTrainingConfig(data: o.data, windows: o.windows, model: o.model, optim: o.optim, channels: series.channels)
        self.series = series
        if let path = o.`init` {
            do {
                initial = try loadModel(path: path, expecting: config.model).parameters
                logger.info("starting from \(path)")
            } catch {
                throw fail("\(error)")
            }
        } else {
            initial = nil
        }
        do { dir = try RunDirectory(path: o.out ?? defaultRunDirectory()) } catch { throw fail("\(error)") }
    }

    /// Writes model, summary and loss plot, whatever happened.
    func writeOutputs(parameters: [Float], summary: RunSummary) throws {
        do {
            try dir.writeModel(parameters: parameters, config: config, extra: ["training_config": configJSON(config)])
            try dir.writeSummary(summary)
            try dir.writeLossPlot(title: "ztrain: \(config.data) H=\(config.model.hiddenSize) \(config.model.cell.rawValue)")
        } catch {
            throw fail("\(error)")
        }
    }

    func summary(result: TrainingResult?, parameters: [Float], finalLoss: Double, mode: String, threads: Int,
                 split: WindowSplit, error: (any Error)?) -> RunSummary {
        RunSummary(
            finalLoss: finalLoss, finalValLoss: result?.finalValLoss,
            epochs: result?.epochs ?? 0, steps: result?.steps ?? 0, samples: result?.samples ?? 0,
            wallSeconds: result?.wallSeconds ?? 0, trainSeconds: result?.trainSeconds ?? 0,
            samplesPerSecond: result.map { $0.trainSeconds > 0 ? Double($0.samples) / $0.trainSeconds : 0 } ?? 0,
            targetLoss: config.targetLoss, targetReached: result?.targetReached,
            mode: mode, threads: threads, parameters: parameters.count,
            windows: split.all.count, trainWindows: split.train.count, validationWindows: split.validation.count,
            config: config, model: dir.modelURL.path, error: error.map { "\($0)" })
    }

    func logDone(_ r: TrainingResult, summary: RunSummary, windows: Int, logger: Logger) {
        let reached = r.targetReached.map { $0 ? "  target reached" : "  target NOT reached" } ?? ""
        logger.info("done: \(r.epochs) epochs, \(r.steps) steps, final MSE over all \(windows) windows \(cFormat("%.4e", r.finalLoss)), \(cFormat("%.3f", r.wallSeconds)) s wall, \(cFormat("%.0f", summary.samplesPerSecond)) samples/s\(reached)")
        if r.targetReached == false, let t = config.targetLoss {
            logger.warning("the MSE did not reach --target-loss \(t) within the epoch/step limit")
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model; writes model.safetensors, metrics.jsonl, summary.json and loss.svg to --out.",
        discussion: """
            Without --workers the run stays in this process. With --workers N it starts a coordinator here \
            and N worker processes on this machine, talking over ZeroMQ (ipc://), and gives the same bits.

            Examples:
              ztrain train --target-loss 1e-4 --out runs/sincos
              ztrain train --workers 4 --target-loss 1e-4
            """)

    @OptionGroup var runOptions: RunOptions

    @Option(help: "Start a coordinator and this many local worker processes (default: train in this process).")
    var workers: Int?

    @Flag(help: "Train in this process (the default without --workers).")
    var inProcess = false

    @Option(help: "Compute threads: in this process, or per worker with --workers (default 1, or cores/workers).")
    var threads: Int?

    @Option(help: "With --workers: the coordinator's endpoint (default: ipc:// in a private temp folder).")
    var bind: String?

    @OptionGroup(title: "Data-parallel") var cluster: ClusterOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if inProcess && workers != nil { throw ValidationError("--in-process and --workers exclude each other") }
        if let w = workers, !(1...256).contains(w) { throw ValidationError("--workers must be in 1...256 (got \(w))") }
        if let t = threads, !(1...1024).contains(t) { throw ValidationError("--threads must be in 1...1024 (got \(t))") }
        if workers == nil && cluster.timeline != nil {
            throw ValidationError("--timeline needs --workers (or 'ztrain coordinator'): it draws the data-parallel steps")
        }
        if workers == nil && runOptions.checkpointEvery != 0 {
            throw ValidationError("--checkpoint-every needs --workers (or 'ztrain coordinator'); in-process runs do not checkpoint yet")
        }
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.train")
        let prepared = try PreparedCLIRun(runOptions, logger: logger)
        if let n = workers {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let perWorker = threads ?? max(1, cores / n)
            let code = try runCoordinator(
                prepared: prepared, options: cluster.options(workers: n), bind: bind, spawnWorkers: n,
                workerThreads: perWorker, checkpointEvery: runOptions.checkpointEvery, keep: runOptions.keep,
                timeline: cluster.timeline, global: global, logger: logger)
            if code != 0 { throw ExitCode(code) }
            return
        }
        try runInProcess(prepared: prepared, threads: threads ?? 1, logger: logger)
    }

    func runInProcess(prepared p: PreparedCLIRun, threads: Int, logger: Logger) throws {
        let trainer: InProcessTrainer
        do {
            trainer = try InProcessTrainer(config: p.config, series: p.series, initialParameters: p.initial, threads: threads)
        } catch {
            throw fail("\(error)")
        }
        let config = p.config
        logger.info("training in-process: \(p.series.count) points, \(trainer.split.all.count) windows (\(trainer.split.train.count) train, \(trainer.split.validation.count) validation), H=\(config.model.hiddenSize), cell \(config.model.cell.rawValue), \(config.optimizer.kind.rawValue) lr \(config.optimizer.learningRate), batch \(config.batch), micro-batch \(config.microBatch), \(threads) thread(s), out \(p.dir.url.path)")
        let progress = ProgressReporter(logger: logger, live: !global.quiet && ProgressReporter.stderrIsTerminal,
                                        totalEpochs: config.epochs, totalSteps: config.steps)
        var writeError: (any Error)? = nil
        var result: TrainingResult? = nil
        var runError: (any Error)? = nil
        do {
            result = try trainer.run { event in
                progress.handle(event)
                if case .epoch(let m) = event, writeError == nil {
                    do { try p.dir.append(m) } catch { writeError = error }
                }
            }
        } catch {
            runError = error
        }
        progress.finish()
        let params = result?.parameters ?? trainer.parameters
        let summary = p.summary(result: result, parameters: params,
                                finalLoss: result?.finalLoss ?? trainer.meanLoss(windows: trainer.split.all),
                                mode: "in-process", threads: threads, split: trainer.split, error: runError)
        try p.writeOutputs(parameters: params, summary: summary)
        if let e = writeError { throw fail("\(e)") }
        if let e = runError { throw fail("\(e) (last good weights saved to \(p.dir.modelURL.path))") }
        if let r = result, !r.finalLoss.isFinite {
            throw fail("\(TrainingError.diverged("the final loss is \(r.finalLoss); lower --lr or set --clip-norm")) (weights saved to \(p.dir.modelURL.path))")
        }
        if let r = result { p.logDone(r, summary: summary, windows: trainer.split.all.count, logger: logger) }
        print(p.dir.url.path)
    }
}

func defaultRunDirectory() -> String {
    "runs/\(utcTimestamp("%Y%m%d-%H%M%S"))"
}

func configJSON(_ c: TrainingConfig) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    guard let d = try? e.encode(c) else { return "{}" }
    return String(decoding: d, as: UTF8.self)
}
