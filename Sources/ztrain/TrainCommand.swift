import ArgumentParser
import Checkpoint
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Observe
import RNN
import Series
import Training
import Support

/// The flags that define a run, shared by `train` and `coordinator`.
struct RunOptions: ParsableArguments {
    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Windows") var windows: WindowOptions
    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Real series") var seriesOptions: SeriesOptions
    @OptionGroup(title: "Optimisation") var optim: OptimOptions

    @Option(help: "Start from these weights (a model.safetensors of the same shape).")
    var `init`: String?

    @Option(help: "Output folder; must be new or empty (default: runs/<UTC date-time>, made unique).")
    var out: String?

    @Flag(help: "Replace the run already in --out (its files are removed first).")
    var overwrite = false

    @Option(help: "Write a checkpoint to OUT/checkpoints every this many steps, and one where the run ends (0: never).")
    var checkpointEvery: Int = 0

    @Option(help: "Checkpoints to keep.")
    var keep: Int = 3

    @Option(help: "Add a hash line (XXH64 of the weights) to metrics.jsonl every this many steps, for 'ztrain diff' (0: only the epoch lines' hashes).")
    var hashEvery: Int = 0

    /// Checks `--checkpoint-every` and `--keep`.
    func validateCheckpointFlags() throws {
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be 0 or more (got \(checkpointEvery))") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1 (got \(keep))") }
        guard hashEvery >= 0 else { throw ValidationError("--hash-every must be 0 or more (got \(hashEvery))") }
    }
}

/// A run ready to start: configuration, data, first weights, output folder.
struct PreparedCLIRun {
    let config: TrainingConfig
    /// The series as loaded, and the one the model trains on (differenced and scaled when
    /// `config.transform` says so); workers receive `series` in WELCOME, so every process trains on it.
    let raw: Series
    let series: Series
    let initial: [Float]?
    let dir: RunDirectory
    /// Set when continuing a checkpointed run.
    var resume: RunCheckpoint? = nil
    /// When this process started the run (ISO 8601, UTC).
    let startedAt = isoTimestamp()
    /// `--hash-every`: a hash line in `metrics.jsonl` every this many steps (0: none).
    var hashEvery = 0

    /// A new run from the flags. `existing` is what to do with a non-empty `--out` (default: what
    /// `--overwrite` says).
    init(_ o: RunOptions, existing: ExistingOutput? = nil, logger: Logger) throws {
        if o.overwrite && o.out == nil { throw ValidationError("--overwrite needs --out DIR (the default folder is always new)") }
        let spec = try o.data.spec()
        let raw: Series
        do {
            raw = try spec.load()
        } catch {
            if case .invalidArgument(let m) = error, m.hasPrefix("--series-column") { throw ValidationError(m) }
            throw fail("\(error)")
        }
        if let seg = raw.segments {
            logger.info("\(seg.ids.count) series (--series-column), \(raw.count) points in all; one model over every series, windows within each")
        }
        for name in raw.indexLikeChannels {
            logger.warning("column \"\(name)\" looks like a row index, not data; leave it out with --columns, or pass it as --time-column")
        }
        config = try makeTrainingConfig(data: o.data, windows: o.windows, model: o.model, optim: o.optim,
                                        series: o.seriesOptions, raw: raw)
        self.raw = raw
        do { series = try config.transform?.apply(raw) ?? raw } catch { throw fail("\(error)") }
        if let t = config.transform {
            let how = t.differenceChosenBy == "auto" ? "chosen by KPSS on the training part" : "--difference"
            logger.info("series: difference order \(t.difference) (\(how))\(t.seasonalPeriod > 0 ? ", seasonal difference \(t.seasonalPeriod)" : ""), scale \(t.scale.rawValue), head \(config.model.head.rawValue)")
        }
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
        do {
            if let out = o.out {
                dir = try RunDirectory(path: out, existing: existing ?? (o.overwrite ? .overwrite : .refuse))
            } else {
                dir = try RunDirectory.createUnique(parent: "runs", stem: utcTimestamp("%Y%m%d-%H%M%S"))
            }
        } catch {
            throw fail("\(error)")
        }
    }

    /// The checkpoints of this run, when it writes them: with `--checkpoint-every`, or when it was
    /// resumed from them (so that its folder's newest checkpoint is always where it ended).
    func checkpointStore(every: Int, keep: Int) -> CheckpointStore? {
        guard every > 0 || resume != nil else { return nil }
        return CheckpointStore(runDirectory: dir.url, keep: keep, seriesFingerprint: series.fingerprint)
    }

    /// The loss plot's title: the settings that shape the curve.
    var plotTitle: String {
        let c = config
        return "ztrain: H=\(c.model.hiddenSize), \(c.model.cell.rawValue) cell, \(c.optimizer.kind.rawValue) lr \(cFormat("%g", c.optimizer.learningRate)), batch \(c.batch), random seed \(c.seed)"
    }

    /// Writes model, summary and loss plot, whatever happened; returns what could not be written. With
    /// a validation part (`split`), `model.safetensors` is the best epoch's weights (`best`; the last
    /// ones before any epoch ended) and `last.safetensors` the last ones. The summary's one-step
    /// metrics are those of `model.safetensors`.
    func writeOutputs(parameters: [Float], best: [Float]?, split: WindowSplit, summary: RunSummary,
                      logger: Logger? = nil) -> [TrainingError] {
        var summary = summary
        let model = split.validation.isEmpty ? parameters : best ?? parameters
        if let e = evaluate(parameters: model) {
            summary.evaluation = e
            logger?.info("one-step metrics in the series' own units (season \(e.season.map(String.init) ?? "none")\(e.perSeries.map { ", pooled over \($0.count) series" } ?? "")):\n\(e.text)")
        }
        // each output is tried, so a full disk still leaves the smaller ones a chance
        var problems: [TrainingError] = []
        let extra = ["training_config": configJSON(config)]
        if !split.validation.isEmpty {
            do { try dir.writeModel(parameters: parameters, config: config, extra: extra, to: dir.lastModelURL) } catch { problems.append(error) }
        }
        do { try dir.writeModel(parameters: model, config: config, extra: extra) } catch { problems.append(error) }
        do { try dir.writeSummary(summary) } catch { problems.append(error) }
        do { try dir.writeLossPlot(title: plotTitle, data: config.data.description, target: config.targetLoss) } catch {
            problems.append(error)
        }
        return problems
    }

    /// The metrics of `ztrain predict` for these weights (nil if the weights are not finite).
    func evaluate(parameters: [Float]) -> Evaluation? {
        guard parameters.allSatisfy(\.isFinite),
              let p = try? SeriesPredictions.make(config: config, parameters: parameters, raw: raw, model: series,
                                                  rolloutFrom: .point(0), steps: 1)
        else { return nil }
        let e = p.evaluation(config: config, season: nil)
        // a prediction that overflowed would make summary.json unwritable: leave the metrics out then
        return (try? JSONStyle.canonical.encode(e)) == nil ? nil : e
    }

    func summary(result: TrainingResult?, parameters: [Float], finalLoss: Double, mode: String, threads: Int,
                 split: WindowSplit, error: (any Error)?) -> RunSummary {
        var s = RunSummary(
            finalLoss: finalLoss, finalValLoss: result?.finalValLoss,
            epochs: result?.epochs ?? 0, steps: result?.steps ?? 0, samples: result?.samples ?? 0,
            wallSeconds: result?.wallSeconds ?? 0, trainSeconds: result?.trainSeconds ?? 0,
            samplesPerSecond: result.map { $0.trainSeconds > 0 ? Double($0.samples) / $0.trainSeconds : 0 } ?? 0,
            targetLoss: config.targetLoss, targetReached: result?.targetReached,
            mode: mode, threads: threads, parameters: parameters.count,
            windows: split.all.count, trainWindows: split.train.count, validationWindows: split.validation.count,
            config: config, model: dir.modelURL.path, error: error.map { "\($0)" })
        s.version = ztrainVersion
        s.host = ProcessInfo.processInfo.hostName
        s.commandLine = CommandLine.arguments
        s.startedAt = startedAt
        s.finishedAt = isoTimestamp()
        s.bestEpoch = result?.bestEpoch
        s.bestValLoss = result?.bestValLoss
        s.earlyStopped = result?.earlyStopped
        s.gitCommit = RunIdentity.gitCommit
        s.exitReason = exitReason(result: result, steps: result?.steps ?? 0, error: error)
        s.weightsHash = WeightsHash.hex(WeightsHash.of(parameters))
        return s
    }

    /// Why the run ended, as `summary.json`'s `exit_reason` says it.
    func exitReason(result: TrainingResult?, steps: Int, error: (any Error)?) -> String {
        if let e = error {
            if case .diverged? = e as? TrainingError { return "diverged" }
            if "\(e)".contains("stopped by signal") { return "signal" }
            return "error"
        }
        if result?.earlyStopped == true { return "early_stopped" }
        if result?.targetReached == true { return "target_reached" }
        if let s = config.steps, steps >= s { return "step_limit" }
        return "epoch_limit"
    }

    /// A run whose final loss is NaN or infinite failed (diverged), whatever stopped it: the error to
    /// exit with (its message written), or nil.
    func nanFailure(_ r: TrainingResult) -> ExitCode? {
        let bad = !r.finalLoss.isFinite ? r.finalLoss : r.finalValLoss.flatMap { $0.isFinite ? nil : $0 }
        guard let bad else { return nil }
        let which = r.finalLoss.isFinite ? "validation" : "training"
        return fail("\(TrainingError.diverged("the final \(which) loss is \(bad.isNaN ? "NaN" : "\(bad)"); lower --lr or set --clip-norm")) (weights saved to \(dir.url.path))")
    }

    func logDone(_ r: TrainingResult, summary: RunSummary, windows: Int, logger: Logger) {
        let reached = r.targetReached.map { $0 ? "  target reached" : "  target NOT reached" } ?? ""
        let early = r.earlyStopped == true ? "  stopped early" : ""
        let val = r.finalValLoss.map { v in
            ", validation MSE \(cFormat("%.4e", v)) (best \(r.bestValLoss.map { cFormat("%.4e", $0) } ?? "none") at epoch \(r.bestEpoch ?? 0))"
        } ?? ""
        logger.info("done: \(r.epochs) epochs, \(r.steps) steps, final MSE over the \(windows) training windows \(cFormat("%.4e", r.finalLoss))\(val), \(cFormat("%.3f", r.wallSeconds)) s wall, \(cFormat("%.0f", summary.samplesPerSecond)) samples/s\(reached)\(early)")
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

    @Option(help: "Continue the run whose output folder (with checkpoints/) is this; its configuration wins (more --epochs or --steps may extend it).")
    var resume: String?

    @Flag(help: "Continue from --out's checkpoints when it has any usable one, else start a new run.")
    var autoResume = false

    @OptionGroup(title: "Data-parallel") var cluster: ClusterOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if inProcess && workers != nil { throw ValidationError("--in-process and --workers exclude each other") }
        if let w = workers, !(1...256).contains(w) { throw ValidationError("--workers must be in 1...256 (got \(w))") }
        if let t = threads, !(1...1024).contains(t) { throw ValidationError("--threads must be in 1...1024 (got \(t))") }
        if workers == nil && cluster.timeline != nil {
            throw ValidationError("--timeline needs --workers (or 'ztrain coordinator'): it draws the data-parallel steps")
        }
        try runOptions.validateCheckpointFlags()
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.train")
        guard let prepared = try prepareRun(runOptions, resume: resume, autoResume: autoResume, logger: logger) else { return }
        if let n = workers {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let perWorker = threads ?? max(1, cores / n)
            var options = try cluster.options(workers: n)
            // local workers share this machine's files: each reads the CSV itself (checked by hash) rather
            // than receiving the whole series in its WELCOME
            if case .csv = prepared.config.data { options.sharedData = true }
            let code = try runCoordinator(
                prepared: prepared, options: options, bind: bind, spawnWorkers: n,
                workerThreads: perWorker, checkpointEvery: runOptions.checkpointEvery, keep: runOptions.keep,
                timeline: cluster.timeline, watch: cluster.watch.options, global: global, logger: logger)
            if code != 0 { throw ExitCode(code) }
            return
        }
        try runInProcess(prepared: prepared, threads: threads ?? 1, logger: logger)
    }

    func runInProcess(prepared p: PreparedCLIRun, threads: Int, logger: Logger) throws {
        let trainer: InProcessTrainer
        do {
            trainer = try InProcessTrainer(config: p.config, series: p.series, initialParameters: p.initial, threads: threads, resume: p.resume)
        } catch {
            throw fail("\(error)")
        }
        let config = p.config
        logger.info("training in-process: \(p.series.count) points, \(trainer.split.all.count) windows (\(trainer.split.train.count) train, \(trainer.split.validation.count) validation), H=\(config.model.hiddenSize), cell \(config.model.cell.rawValue), \(config.optimizer.kind.rawValue) lr \(config.optimizer.learningRate), batch \(config.batch), micro-batch \(config.microBatch), \(threads) thread(s), out \(p.dir.url.path)")
        let store = p.checkpointStore(every: runOptions.checkpointEvery, keep: runOptions.keep)
        let writeCheckpoint = store.map { checkpointWriter($0, directory: p.dir.url.path, logger: logger) }
        if let writeCheckpoint {
            trainer.checkpointEvery = runOptions.checkpointEvery
            trainer.onCheckpoint = writeCheckpoint
        }
        let stop = StopFlag()
        let trap = SignalTrap(stop)
        trainer.shouldStop = { stop.isSet }
        let progress = ProgressReporter(logger: logger, live: !global.quiet && ProgressReporter.stderrIsTerminal,
                                        totalEpochs: config.epochs, totalSteps: config.steps)
        var writeError: (any Error)? = nil
        var result: TrainingResult? = nil
        var runError: TrainingError? = nil
        let watch = try startWatch(cluster.watch.options, directory: p.dir, mode: "in-process", coordinator: false, logger: logger)
        do {
            result = try trainer.run { event in
                progress.handle(event)
                if let watch {
                    switch event {
                    case .step(_, _, _, _, let loss, let sps, let timing):
                        watch.step(StepRecord(state: trainer.state, loss: loss, samplesPerSecond: sps, timing: timing))
                    case .epoch(let m):
                        watch.epoch(m)
                    }
                }
                if p.hashEvery > 0, case .step = event, writeError == nil {
                    do { try p.recordHash(trainer.state, watch: watch) } catch { writeError = error }
                }
                if case .epoch(let m) = event, writeError == nil, watch?.writesEpochLines != true {
                    do { try p.dir.append(m) } catch { writeError = error }
                }
            }
        } catch {
            runError = error
        }
        progress.finish()
        if let e = watch?.close(), writeError == nil { writeError = e }
        _ = trap
        // where the run ended, as a checkpoint (not after a failure: its newest checkpoint stays the last good one)
        var problems: [TrainingError] = []
        if runError == nil, let writeCheckpoint {
            do { try writeCheckpoint(trainer.checkpoint()) } catch { problems.append(error) }
        }
        let params = result?.parameters ?? trainer.parameters
        let summary = p.summary(result: result, parameters: params,
                                finalLoss: result?.finalLoss ?? trainer.meanLoss(windows: trainer.split.train),
                                mode: "in-process", threads: threads, split: trainer.split,
                                error: runError ?? (trainer.stopped ? TrainingError.invalidConfig("stopped by signal \(stop.signal)") : nil))
        problems += p.writeOutputs(parameters: params, best: result?.bestParameters ?? trainer.state.bestParameters,
                                   split: trainer.split, summary: summary, logger: logger)
        if let e = runError {
            writeToStandardError("error: \(e)\(problems.isEmpty ? " (last good weights saved to \(p.dir.modelURL.path))" : "")\n")
        }
        for e in problems { writeToStandardError("error: \(e)\n") }
        if let e = writeError { writeToStandardError("error: \(e)\n") }
        if trainer.stopped {
            let saved = problems.isEmpty ? "last weights, summary.json and loss.svg saved to \(p.dir.url.path)" : "some outputs could not be saved"
            let again = store != nil && problems.isEmpty && runError == nil ? "; continue with: ztrain train --resume \(p.dir.url.path)" : ""
            logger.warning("stopped by signal \(stop.signal) at step \(trainer.state.step) (epoch \(trainer.state.epoch)); \(saved)\(again)")
            throw ExitCode(128 + stop.signal)
        }
        if runError != nil || !problems.isEmpty || writeError != nil { throw ExitCode.failure }
        if let r = result {
            p.logDone(r, summary: summary, windows: trainer.split.train.count, logger: logger)
            if let e = p.nanFailure(r) { throw e }
        }
        print(p.dir.url.path)
    }
}

/// The configuration as JSON text for the model file's `training_config` metadata (safetensors
/// metadata values are strings by the format, so the object travels as text there).
func configJSON(_ c: TrainingConfig) -> String {
    (try? JSONStyle.canonical.string(c)) ?? "{}"
}
