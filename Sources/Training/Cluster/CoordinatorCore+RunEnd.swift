/// The run's end: stopping, the run-end checkpoint, checkpoints' answers, telling workers (and
/// peers heard after the end) that the run is over, and the outcome.
extension CoordinatorCore {
    /// Stop now: tell every worker to shut down (a pending epoch is settled first). A sharded run
    /// between sync steps first fetches the owners' slices (``stopSharded(reason:now:)``).
    func stop(reason: String, now: Double) -> [CoordinatorEffect] {
        if let out = stopSharded(reason: reason, now: now) { return sent(out, now: now) }
        return sent(settlePendingEpoch(then: .stop(reason), now: now), now: now)
    }

    /// Asks for `checkpoint` to be written; the core goes on with `then` once it is.
    func checkpoint(_ checkpoint: RunCheckpoint, then: Resume) -> [CoordinatorEffect] {
        parked = .checkpoint(then: then)
        return [.checkpoint(checkpoint)]
    }

    /// A checkpoint's answer. One that could not be written stops the run with that error as
    /// ``failure``: the work since the last good checkpoint would otherwise be lost to the next failure.
    func checkpointDone(_ error: TrainingError?, now: Double) -> [CoordinatorEffect] {
        guard case .checkpoint(let then)? = parked else { return [] }
        parked = nil
        guard let error else { return resume(then, now: now) }
        failure = error
        switch then {
        case .none:
            return []
        case .stop(let reason), .dismissAll(let reason, stopping: true):
            finishedFlag = true
            return shutdownAll(reason: reason)
        default:
            // a step sent meanwhile is abandoned: the driver sees the failure and stops
            return shutdownAll(reason: "the run stopped: \(error)")
        }
    }

    /// The run reached its end: the end is made durable (the run-end checkpoint, when checkpoints
    /// are on) before any worker is told. A coordinator killed in between is thus either resumed at
    /// the end (the run is complete) or before it with its workers still waiting to rejoin, never
    /// resumed before the end with its workers dismissed (it would wait for them in vain).
    /// `reason`: the driver stopped the run meanwhile (its reason is what the workers are told).
    func finishRun(dismissing reason: String? = nil) -> [CoordinatorEffect] {
        finishedFlag = true
        emit(.finished)
        if checkpointEvery > 0 {
            let c = RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds)
            return checkpoint(c, then: .dismissAll(reason ?? "training finished", stopping: reason != nil))
        }
        return shutdownAll(reason: reason ?? "training finished")
    }

    /// A peer heard after the run ended (a worker declared dead, one saying HELLO to rejoin, one whose
    /// SHUTDOWN was lost): told once that the run is over, so it exits now instead of saying HELLO
    /// until its `--reconnect-timeout`. Nothing before the end.
    func farewell(to peer: PeerID) -> [CoordinatorEffect] {
        guard isDone, !dismissed.contains(peer), dismissed.count < Self.maxDismissed else { return [] }
        dismissed.insert(peer)
        let reason = failure == nil ? "the run is over" : "the run stopped"
        return [reply(peer, membership.workers[peer]?.id ?? 0, .shutdown(reason))]
    }

    /// At most this many peers are told after the end (a flood of routing ids gets nothing more).
    public static let maxDismissed = 4096

    /// Has every worker that may still be running been told that the run is over? (A worker that
    /// said BYE is gone; one declared dead may only have been paused or slow.)
    public var everyWorkerDismissed: Bool {
        workers.allSatisfy { peer, w in w.phase == .left || dismissed.contains(peer) }
    }

    func shutdownAll(reason: String) -> [CoordinatorEffect] {
        workers.filter { $0.value.phase == .ready || $0.value.phase == .welcomed }.map { peer, w in
            dismissed.insert(peer)
            return reply(peer, w.id, .shutdown(reason))
        }
    }

    /// Settles a pending epoch for a query of the run's outcome (nothing is sent: the driver keeps
    /// the effects other than `.send`). An evaluation not answered yet is computed here.
    public func settleForQuery() -> [CoordinatorEffect] {
        notes = []
        let reply = settlePendingEpoch(then: .none, now: 0)
        let out = notes + reply
        notes = []
        return out
    }

    /// The outcome, for the outputs (after ``settleForQuery()``).
    public func settledResult(now: Double) -> TrainingResult {
        evaluator.result(state: state, metrics: metrics, wallSeconds: now - (wallStart ?? now), trainSeconds: trainSeconds)
    }

    /// The run as it stands between steps (after ``settleForQuery()``).
    public func settledCheckpoint() -> RunCheckpoint {
        RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds)
    }

    /// Mean loss of the current weights over the training windows (after ``settleForQuery()``).
    public func settledMeanLoss() -> Double {
        evaluator.meanLoss(state.parameters, windows: state.split.train)
    }
}
