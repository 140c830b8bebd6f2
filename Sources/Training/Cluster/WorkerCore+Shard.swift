import Wire

/// A `ztrain shard` process (``WorkerOptions/isShard``): a dedicated owner in sharded aggregation. Its
/// WELCOME carries no series; it builds no gradient engine, answers READY without a numerics fingerprint
/// (it computes nothing), and its ``WorkerShard`` never assembles the whole weights: it holds its slice,
/// the slice's optimizer state and the reduction of the slice's nodes.
extension WorkerCore {
    func welcomeShard(_ w: Welcome, config cfg: TrainingConfig, fail: (String) -> [Envelope]) -> [Envelope] {
        guard w.aggregation == Aggregation.sharded.rawValue else {
            return fail("this shard process was welcomed into a run that does not aggregate sharded: run the coordinator with --aggregation sharded")
        }
        adopt(w, config: cfg)
        shard = WorkerShard(runID: w.runID, workerID: w.workerID, parameterCount: w.parameterCount, microBatch: w.microBatch,
                            optimizer: cfg.optimizer, holdsWeights: false)
        return [Envelope(runID: runID, workerID: workerID, message: .ready(Ready(numericsFingerprint: 0, threads: options.threads)))]
    }
}
