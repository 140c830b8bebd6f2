import Training

extension StressRun {
    /// A round whose audit found two answers that differ (`--wrong-rate`): its tree may hold the
    /// wrong one, so the round is ordered again from the start (the disputes are counted in
    /// ``StepAggregator/audit``).
    func redoAudited(round r: Int) -> [Order] {
        _ = agg.takeDisputes()
        return agg.begin(step: UInt64(r), windows: m, microBatch: 1, workers: liveIDs, now: now)
    }
}
