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

/// How a run starts: `--resume DIR`, `--auto-resume` (the `--out` folder's newest usable checkpoint,
/// else a new run), or a new run from the flags. Returns nil when the run to resume is already
/// complete: that is logged, and nothing in its folder is touched.
func prepareRun(_ options: RunOptions, resume: String?, autoResume: Bool, logger: Logger) throws -> PreparedCLIRun? {
    let given = givenFlags()
    if let dir = resume {
        if autoResume { throw ValidationError("--resume and --auto-resume exclude each other") }
        if let out = options.out, standardPath(out) != standardPath(dir) {
            throw ValidationError("--out \(out) differs from --resume \(dir): a resumed run writes into its own folder; leave --out out")
        }
        let store = CheckpointStore(runDirectory: URL(fileURLWithPath: dir, isDirectory: true), keep: 1)
        logRemovedTemporaries(store, logger: logger)
        let c: RunCheckpoint
        do { c = try store.latest(onSkip: { logger.warning("\($0)") }) } catch { throw fail("\(error)") }
        var p = try PreparedCLIRun(resuming: c, directory: dir, options: options, given: given, logger: logger)
        p?.hashEvery = options.hashEvery
        return p
    }
    if autoResume {
        guard let out = options.out else { throw ValidationError("--auto-resume needs --out DIR (where the checkpoints are)") }
        let store = CheckpointStore(runDirectory: URL(fileURLWithPath: out, isDirectory: true), keep: 1)
        logRemovedTemporaries(store, logger: logger)
        if !store.files().isEmpty {
            if let c = store.newest(onSkip: { logger.warning("\($0)") }) {
                logger.notice("resuming from the checkpoints in \(store.directory.path)")
                var p = try PreparedCLIRun(resuming: c, directory: out, options: options, given: given, logger: logger)
                p?.hashEvery = options.hashEvery
                return p
            }
            let moved = store.setAsideUnusable()
            logger.warning("no usable checkpoint in \(store.directory.path) (set aside: \(moved.joined(separator: ", "))); starting a new run")
        } else {
            logger.notice("no checkpoint in \(store.directory.path) yet; starting a new run")
        }
    }
    // with --auto-resume and no usable checkpoint, what is in --out is an earlier start of this same run
    var p = try PreparedCLIRun(options, existing: autoResume ? .resume : nil, logger: logger)
    p.hashEvery = options.hashEvery
    return p
}

/// Removes what writes interrupted by a kill left in the run's folder: temporary checkpoints, and
/// temporary copies of the outputs.
private func logRemovedTemporaries(_ store: CheckpointStore, logger: Logger) {
    let outputs: Set<String> = ["model.safetensors", "summary.json", "loss.svg"]
    let runDirectory = store.directory.deletingLastPathComponent().path
    let removed = store.removeStaleTemporaries() + AtomicFile.removeStaleTemporaries(in: runDirectory) { outputs.contains($0) }
    if !removed.isEmpty {
        logger.notice("removed \(removed.count) unfinished write(s) left by a killed run: \(removed.prefix(3).joined(separator: ", "))")
    }
}

private func standardPath(_ p: String) -> String {
    URL(fileURLWithPath: p, isDirectory: true).standardizedFileURL.path
}

/// The long flags given on this process's command line (`--lr 0.5` and `--lr=0.5` give `--lr`).
func givenFlags(_ arguments: [String] = CommandLine.arguments) -> Set<String> {
    var flags = Set<String>()
    for a in arguments.dropFirst() {
        if a == "--" { break }
        guard a.hasPrefix("--") else { continue }
        flags.insert(String(a.split(separator: "=", maxSplits: 1)[0]))
    }
    return flags
}

extension PreparedCLIRun {
    /// Continues checkpoint `c` of the run in `directory`. Flags given on the command line that
    /// contradict the run are refused, by name; `--epochs` and `--steps` may extend it (logged).
    /// The data must hash as it did when the checkpoint was written.
    init?(resuming checkpoint: RunCheckpoint, directory: String, options o: RunOptions, given: Set<String>, logger: Logger) throws {
        var c = checkpoint
        let recorded = c.config
        var conflicts: [String] = []
        var changes: [String] = []
        func check<T: Equatable>(_ flag: String, _ value: T, _ run: T, _ show: (T) -> String = { "\($0)" }) {
            if given.contains(flag) && value != run { conflicts.append("\(flag) \(show(value)) (the run has \(show(run)))") }
        }
        func optional(_ v: Double?) -> String { v.map { "\($0)" } ?? "none" }
        let m = recorded.model
        check("--hidden", o.model.hidden, m.hiddenSize)
        check("--cell", o.model.cell, m.cell, \.rawValue)
        check("--activation", o.model.activation, m.activation, \.rawValue)
        check("--loss", o.model.loss, m.loss, \.rawValue)
        check("--seq-len", o.windows.seqLen, m.seqLen)
        check("--val-fraction", o.windows.valFraction, recorded.validationFraction)
        check("--batch", o.optim.batch, recorded.batch)
        check("--micro-batch", o.optim.microBatch ?? recorded.microBatch, recorded.microBatch)
        check("--lr", o.optim.lr, recorded.optimizer.learningRate)
        check("--optimizer", o.optim.optimizer, recorded.optimizer.kind, \.rawValue)
        check("--momentum", o.optim.momentum, recorded.optimizer.momentum)
        check("--clip-norm", o.optim.clipNorm, recorded.clipNorm, optional)
        check("--target-loss", o.optim.targetLoss, recorded.targetLoss, optional)
        check("--seed", o.optim.seed, recorded.seed)
        check("--no-shuffle", !o.optim.noShuffle, recorded.shuffle) { $0 ? "shuffled" : "not shuffled" }
        check("--head", o.model.head ?? m.head, m.head, \.rawValue)
        check("--early-stopping", o.optim.earlyStopping, recorded.earlyStopping) { $0.map(String.init) ?? "none" }
        let scheduleFlags: Set<String> = ["--lr-schedule", "--warmup", "--lr-step-size", "--lr-gamma", "--lr-t-max", "--lr-min",
                                          "--lr-patience", "--lr-factor"]
        if !given.isDisjoint(with: scheduleFlags), try o.optim.schedule() != recorded.schedule {
            conflicts.append("\(given.intersection(scheduleFlags).sorted().joined(separator: ", ")) (the run has its own learning-rate schedule)")
        }
        let transformFlags: Set<String> = ["--scale", "--difference", "--seasonal-difference"]
        if !given.isDisjoint(with: transformFlags) {
            conflicts.append("\(given.intersection(transformFlags).sorted().joined(separator: ", ")) (the run keeps the scaling and differencing fitted when it started)")
        }
        if !given.isDisjoint(with: ["--data", "--points", "--range", "--columns", "--time-column", "--missing", "--delimiter"]) {
            let spec = try o.data.spec()
            if spec != recorded.data { conflicts.append("--data \(spec) (the run has \(recorded.data))") }
        }
        if given.contains("--init") { conflicts.append("--init (a resumed run continues from its checkpoint's weights)") }
        // the limits may change, as long as they are not behind the run
        if given.contains("--epochs"), let e = o.optim.epochs, e != recorded.epochs {
            if e < c.counters.epoch {
                conflicts.append("--epochs \(e) (the run is already at epoch \(c.counters.epoch))")
            } else {
                changes.append("--epochs \(recorded.epochs.map(String.init) ?? "none") -> \(e)")
                c.config.epochs = e
            }
        }
        if given.contains("--steps"), let s = o.optim.steps, s != recorded.steps {
            if s < c.counters.step {
                conflicts.append("--steps \(s) (the run is already at step \(c.counters.step))")
            } else {
                changes.append("--steps \(recorded.steps.map(String.init) ?? "none") -> \(s)")
                c.config.steps = s
            }
        }
        if !conflicts.isEmpty {
            throw fail("these flags contradict the run in \(directory), which keeps its own configuration: \(conflicts.joined(separator: "; ")). Leave them out, or start a new run in another --out")
        }
        if !changes.isEmpty { logger.notice("the resumed run's limits change: \(changes.joined(separator: ", "))") }

        let raw: Series, series: Series
        do { (raw, series) = try c.config.loadSeries() } catch { throw fail("cannot reload the data of the checkpointed run: \(error)") }
        if let recordedHash = c.seriesFingerprint {
            guard recordedHash == series.fingerprint else {
                throw fail("the data \(c.config.data) is not what the run in \(directory) trained on (its hash changed since the checkpoint was written); put the original data back, or start a new run in another --out")
            }
        } else {
            logger.warning("the checkpoint records no hash of the data (written by an older ztrain): the data cannot be checked")
        }
        do {
            if try c.isComplete(series: series) {
                let how = c.counters.targetReached ? "its target loss was reached" : "give more --epochs or --steps to continue it"
                logger.notice("the run in \(directory) is complete (epoch \(c.counters.epoch), step \(c.counters.step)); nothing to do: \(how)")
                return nil
            }
        } catch {
            throw fail("\(error)")
        }
        config = c.config
        self.raw = raw
        self.series = series
        initial = nil
        // the hash lines up to the checkpoint stay, as they were written (the epoch lines come from the checkpoint)
        let hashLines = HashLine.lines(inRunDirectory: directory).filter { $0.step <= c.counters.step }
        do { dir = try RunDirectory(path: directory, existing: .resume, history: c.metrics, hashLines: hashLines) } catch { throw fail("\(error)") }
        resume = c
        logger.info("resuming run \(String(c.runID, radix: 16)) from step \(c.counters.step) (epoch \(c.counters.epoch)) in \(directory)")
    }
}

/// Writes checkpoints into the run's folder; a failed write becomes an error that says where the
/// run stopped, which checkpoint is the newest whole one, and how to continue.
func checkpointWriter(_ store: CheckpointStore, directory: String, logger: Logger) -> (RunCheckpoint) throws(TrainingError) -> Void {
    { (c: RunCheckpoint) throws(TrainingError) in
        do {
            try store.save(c)
            logger.debug("checkpoint at step \(c.counters.step)")
        } catch {
            let last = store.files().last.map { "the newest whole checkpoint is \($0.lastPathComponent)" } ?? "no checkpoint was written before"
            throw .output("\(error); the run stopped at step \(c.counters.step) rather than go on without checkpoints: \(last); make room and continue with --resume \(directory)")
        }
    }
}
