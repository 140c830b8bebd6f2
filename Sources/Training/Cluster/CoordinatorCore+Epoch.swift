/// A step's end (the step rule of ``RunState``), the epoch's close and its evaluation, and what the
/// core waits for (an evaluation's or a checkpoint's answer) before it goes on.
extension CoordinatorCore {
    /// An epoch deferred in the run state (``RunState/deferEpochClose(evaluated:)``) while the next
    /// step computes: its metrics without the losses, and either its evaluation (requested with
    /// `evaluationID`, its `losses` once answered) or, when nil, the next step measures its loss
    /// (``RunState/nextStepMeasuresEpochLoss``).
    struct PendingEpoch {
        var metrics: EpochMetrics
        var evaluationID: Int?
        var losses: EpochLosses?
        /// A checkpoint was due at the epoch's end: it is written once the epoch is settled.
        var checkpoint: Bool
    }

    /// What the core does once the answer it waits for has come.
    enum Resume {
        /// Nothing (a query settles the run; the driver discards the messages).
        case none
        case finishStep
        case startStep
        case finishRun
        /// Stop: every worker is told, with this reason.
        case stop(String)
        /// Close the ended epoch with the evaluation's losses (then checkpoint, then the next step).
        case closeEpoch(EpochMetrics)
        /// The rest of a step's end, after the checkpoint of the epoch it settled.
        case stepRest(StepRest)
        /// Sharded: APPLY the decided step (after the checkpoint of the epoch it settled).
        case applyShard
        /// The run-end checkpoint is written: the workers are told, with this reason (`stopping`: the
        /// driver stopped the run, and a failed checkpoint does not change the reason).
        case dismissAll(String, stopping: Bool)
    }

    /// What the core waits for.
    enum Parked {
        case evaluation(Int, then: Resume)
        case checkpoint(then: Resume)
    }

    /// A step's end once its update is applied: its outcome, the stopwatch when the update began,
    /// and when the step's last answer came.
    struct StepRest {
        var outcome: RunState.StepOutcome
        var optimizerStart: Double
        var now: Double
    }

    func finishStep(now: Double) -> [CoordinatorEffect] {
        // the previous epoch's evaluation (or, at full batch, this step's loss) decides whether this step counts
        if let p = pendingEpoch, let id = p.evaluationID, p.losses == nil {
            parked = .evaluation(id, then: .finishStep)
            return [.awaitEvaluation(id: id)]
        }
        if shard != nil { return decideShardedStep(now: now) }
        let (n, pending, evaluation, t1) = beginStepEnd(now: now)
        var settled: RunState.SettledEpoch?
        let outcome: RunState.StepOutcome
        do {
            // the tree was summed while the answers came in: the root is read in place
            guard let o = try aggregator.finish({ (r) throws(TrainingError) -> RunState.StepOutcome in
                try state.finish(root: r, windows: n, evaluation: evaluation, keepClosed: pending?.checkpoint == true) { s in settled = s }
            }) else { return [] }
            outcome = o
        } catch {
            failure = error
            return shutdownAll(reason: "training diverged")
        }
        let rest = StepRest(outcome: outcome, optimizerStart: t1, now: now)
        if let pending, let settled { return recordSettled(pending, settled, then: .stepRest(rest), now: now) }
        return finishStepRest(rest)
    }

    /// What both ends of a step (star and sharded) start from: the step's window count, the epoch
    /// whose close waits on this step (taken), its evaluation if it has one, and the optimizer's start.
    func beginStepEnd(now: Double) -> (windows: Int, pending: PendingEpoch?, evaluation: (loss: Double, valLoss: Double?)?, optimizerStart: Double) {
        let pending = pendingEpoch
        pendingEpoch = nil
        stepTiming.wait = max(0, now - lastAssignSentAt)
        return (stepWindows, pending, pending?.losses.map { (loss: $0.loss, valLoss: $0.valLoss) }, mark())
    }

    /// Times and reports an applied step, closes its epoch if it ended, writes a due checkpoint and
    /// starts the next step.
    func finishStepRest(_ r: StepRest) -> [CoordinatorEffect] {
        guard case .applied(let loss) = r.outcome else { return [] }
        let now = r.now
        stepTiming.optimizer = measured(since: r.optimizerStart)
        let step = state.step - 1
        span(TimelineSpan(process: 0, name: "wait", start: lastAssignSentAt, duration: stepTiming.wait, step: step))
        span(TimelineSpan(process: 0, name: "optimizer", start: now, duration: stepTiming.optimizer, step: step))
        let stepSeconds = now - stepStart + stepTiming.optimizer
        trainSeconds += stepSeconds
        epochTrain += stepSeconds
        epochTiming.add(stepTiming)
        epochSteps += 1
        emit(.step(epoch: state.epoch, step: state.step, stepInEpoch: state.stepInEpoch, stepsPerEpoch: state.stepsPerEpoch,
                   loss: loss, samplesPerSecond: epochTrain > 0 ? Double(state.epochSamples) / epochTrain : 0, timing: stepTiming))
        // `now` is when the last gradient arrived; the update ran since: the next step starts now + that
        // time, so its step time does not count it (its `wait` starts when its ASSIGNs really go out,
        // as the transport reports)
        let next = now + measured(since: r.optimizerStart)
        guard state.epochEnded else { return checkpointThenStep(now: next) }
        var m = evaluator.epochMetrics(state: state, epochSeconds: epochTrain, wallSeconds: now - (wallStart ?? now), evaluate: false)
        m.timing = epochTiming.scaled(1 / Double(max(1, epochSteps)))
        m.bytesIn = bytesIn
        m.bytesOut = bytesOut
        m.processes = epochTraffic(steps: epochSteps)
        m.speculative = aggregator.speculative
        m.retried = aggregator.retried
        m.reassigned = aggregator.reassigned
        m.lateOrDuplicate = aggregator.lateOrDuplicate
        m.droppedFrames = droppedFrames
        m.workers = liveWorkers.count
        noteAudit(&m)
        epochTiming = StepTiming()
        epochSteps = 0
        epochTrain = 0
        let checkpointDue = checkpointEvery > 0 && state.step % checkpointEvery == 0
        if state.nextStepMeasuresEpochLoss {
            // Full batch: the next step's forward pass runs on these weights over every window,
            // so its loss sum is this epoch's loss (as in-process: same rule, same bits). The
            // next step goes out at once; its end settles this epoch before applying it, or
            // drops it unapplied when the target turns out reached (``RunState/finish(root:windows:evaluation:keepClosed:settled:)``).
            // A checkpoint due now is written then, of the run as it is here.
            state.deferEpochClose(evaluated: false)
            pendingEpoch = PendingEpoch(metrics: m, evaluationID: nil, losses: nil, checkpoint: checkpointDue)
            return startStep(now: next)
        }
        let id = nextEvaluationID
        nextEvaluationID += 1
        if checkpointDue || !overlapEvaluation {
            parked = .evaluation(id, then: .closeEpoch(m))
            return [.evaluate(EvaluationRequest(id: id, parameters: state.parameters, background: false)), .awaitEvaluation(id: id)]
        }
        // The next step does not wait for the evaluation: it goes out now, as if the target were not
        // reached, and the evaluation runs while the workers compute. Whoever needs the outcome (the
        // next step's end, the run's end) waits for it; if the target turns out reached, the run is
        // put back to this point and the extra step is dropped unapplied, so the result is the
        // in-process run's.
        state.deferEpochClose(evaluated: true)
        pendingEpoch = PendingEpoch(metrics: m, evaluationID: id, losses: nil, checkpoint: false)
        let request = CoordinatorEffect.evaluate(EvaluationRequest(id: id, parameters: state.parameters, background: true))
        return [request] + checkpointThenStep(now: next)
    }

    /// Writes the checkpoint due at this step (the core goes on once it is written), else starts the next step.
    func checkpointThenStep(now: Double) -> [CoordinatorEffect] {
        if checkpointEvery > 0 && state.step % checkpointEvery == 0 {
            return checkpoint(RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds), then: .startStep)
        }
        return startStep(now: now)
    }

    /// An evaluation's answer.
    func evaluated(id: Int, _ losses: EpochLosses, now: Double) -> [CoordinatorEffect] {
        if pendingEpoch?.evaluationID == id { pendingEpoch?.losses = losses }
        guard case .evaluation(let wanted, let then)? = parked, wanted == id else { return [] }
        parked = nil
        if case .closeEpoch(let m) = then {
            record(epoch: m, loss: losses.loss, valLoss: losses.valLoss)
            state.closeEpoch(loss: losses.loss, valLoss: losses.valLoss)
            return checkpointThenStep(now: now)
        }
        if case .finishStep = then { return finishStep(now: now) }
        // the pending epoch waited for this evaluation: settle it now, then go on
        return settlePendingEpoch(then: then, now: now)
    }

    /// Settles a pending epoch away from a step's end (the run ends or stops before the step that
    /// settles it completes), then goes on with `then`. Waits for its evaluation, or (a query, or
    /// the next step measures it) evaluates it here. If the target turned out reached, the step sent
    /// meanwhile is dropped and the run ends.
    func settlePendingEpoch(then: Resume, now: Double) -> [CoordinatorEffect] {
        guard let p = pendingEpoch else { return resume(then, now: now) }
        if let id = p.evaluationID, p.losses == nil, !isNone(then) {
            parked = .evaluation(id, then: then)
            return [.awaitEvaluation(id: id)]
        }
        pendingEpoch = nil
        let losses = p.losses ?? evaluate(state.deferredEpochParameters ?? state.parameters)
        guard let s = state.settleEpoch(loss: losses.loss, valLoss: losses.valLoss, keepClosed: p.checkpoint) else {
            return resume(then, now: now)
        }
        return recordSettled(p, s, then: then, now: now)
    }

    /// Records a settled epoch; if its decisions ended the run (the run state is back at its end),
    /// drops the step in flight and ends the run; else writes the checkpoint that was due at its end
    /// and goes on with `then`.
    func recordSettled(_ p: PendingEpoch, _ s: RunState.SettledEpoch, then: Resume, now: Double) -> [CoordinatorEffect] {
        record(epoch: p.metrics, loss: s.loss, valLoss: s.valLoss)
        if s.stops {
            aggregator.abandon()
            // the dropped step's answers do not count: every window is counted once
            for (peer, c) in stepCredits {
                guard var w = membership.workers[peer] else { continue }
                w.blocks -= c.blocks
                w.samples -= c.samples
                w.computeSeconds -= c.compute
                w.steps -= c.steps
                membership.workers[peer] = w
            }
            stepCredits = [:]
            if case .stop(let reason) = then { return finishRun(dismissing: reason) }
            return finishRun()
        }
        if let closed = s.closed {
            return checkpoint(RunCheckpoint(runID: runID, state: closed, metrics: metrics, trainSeconds: trainSeconds), then: then)
        }
        return resume(then, now: now)
    }

    /// Records an evaluated epoch's metrics.
    func record(epoch draft: EpochMetrics, loss: Double, valLoss: Double?) {
        var m = draft
        m.loss = loss
        m.valLoss = valLoss
        metrics.append(m)
        // a lost owner's replay closes its epochs again, with the same bits: each line is emitted once
        guard metrics.count > epochsEmitted else { return }
        epochsEmitted = metrics.count
        emit(.epoch(m))
    }

    /// The losses of `parameters` over the training and validation windows, computed here.
    func evaluate(_ parameters: [Float]) -> EpochLosses {
        let split = evaluator.split
        return EpochLosses(loss: evaluator.meanLoss(parameters, windows: split.train),
                           valLoss: split.validation.isEmpty ? nil : evaluator.meanLoss(parameters, windows: split.validation))
    }

    func isNone(_ r: Resume) -> Bool {
        if case .none = r { return true }
        return false
    }

    /// Goes on once what the core waited for has come.
    func resume(_ r: Resume, now: Double) -> [CoordinatorEffect] {
        switch r {
        case .none, .closeEpoch: return []
        case .finishStep: return finishStep(now: now)
        case .startStep: return startStep(now: now)
        case .finishRun: return finishRun()
        case .stop(let reason):
            finishedFlag = true
            return shutdownAll(reason: reason)
        case .stepRest(let rest): return finishStepRest(rest)
        case .applyShard: return sendApply()
        case .dismissAll(let reason, _):
            wroteEndCheckpoint = true
            return shutdownAll(reason: reason)
        }
    }
}
