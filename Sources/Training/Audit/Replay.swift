import Series

/// Replays a checkpointed run in this process, step by step, hashing the weights after every step:
/// by ztrain's determinism that is the run's own history (whatever its worker count), so two runs'
/// replays from a point where they agree name the first step where they part.
///
/// ```swift
/// let c = try CheckpointStore.load(url)
/// let series = try c.config.loadSeries().model
/// let hashes = try Replay.stepHashes(from: c, series: series, through: 40)   // [step: hash], steps c.step+1 ... 40
/// ```
public enum Replay {
    /// The weights hash after each step from the checkpoint's step + 1 to `through` (or the run's end,
    /// if sooner), replayed with the checkpoint's configuration on `series` (the run's training series:
    /// ``TrainingConfig/loadSeries()``'s `model`). Refuses a series whose fingerprint the checkpoint
    /// records differently.
    public static func stepHashes(from checkpoint: RunCheckpoint, series: Series, through: Int, threads: Int = 1) throws(TrainingError) -> [Int: UInt64] {
        if let f = checkpoint.seriesFingerprint, f != series.fingerprint {
            throw .data("the data \(checkpoint.config.data) is not what the run trained on (its hash differs from the checkpoint's); put the original data back to replay it")
        }
        let trainer = try InProcessTrainer(config: checkpoint.config, series: series, threads: threads, resume: checkpoint)
        trainer.shouldStop = { [unowned trainer] in trainer.state.step >= through }
        var hashes: [Int: UInt64] = [:]
        _ = try trainer.run { event in
            if case .step(_, let step, _, _, _, _, _) = event { hashes[step] = trainer.state.weightsHash }
        }
        return hashes
    }
}
