import RNN
import Wire

/// Why the coordinator fetches the owners' slices (``CoordinatorCore/fetchShards(for:now:)``), and so
/// what it does once they are in (``CoordinatorCore/shardsFetched(_:now:)``).
///
///     out += fetchShards(for: .stop("the coordinator was stopped (signal 2)"), now: now)
///     // … the owners' SLICEs come in; then the run's state is exact and the workers are told to stop
public enum ShardFetchPurpose: Sendable, Equatable {
    /// A graceful stop: the run's exact state (a checkpoint of it resumes to the same bits), then the
    /// workers are told to stop, with this reason.
    case stop(String)
    /// Workers joined (or came back) between sync steps: they get the current weights, then the step starts.
    case join
    /// The audit's tie-break: the coordinator computes a disputed node with the step's weights.
    case dispute
    /// The audit quarantined a worker: the owners are reseeded with the step's state and it is taken again.
    case retake

    /// The stop's reason, for ``stop(_:)``.
    var stopReason: String? {
        if case .stop(let reason) = self { return reason }
        return nil
    }
}

/// The owners' slices being fetched: the step they hold, the weights and optimizer state gathered so
/// far (the run state's, overwritten slice by slice), and the owners heard.
struct ShardFetch {
    var purpose: ShardFetchPurpose
    var step: Int
    var weights: [Float]
    var m: [Float]
    var v: [Float]
    var heard: Set<Int> = []
}

/// Sync steps in sharded aggregation. Between sync steps an owner answers APPLY with a bare APPLIED and
/// the coordinator's copy of the weights (``RunState/parameters``) stays at the last sync step; the
/// owners' updated slices (and, with owner recovery or a checkpoint due, their optimizer state) come
/// to the coordinator only at the steps whose end needs them (``syncsAtThisStep``). A FETCH brings them
/// at any point between steps (``fetchShards(for:now:)``). A lost owner rolls the run back to the last
/// sync step's snapshot and replays (``recoverLostOwner(_:now:)``).
extension CoordinatorCore {
    /// Are the run state's weights the owners' (an evaluation, a hash or a checkpoint of them now is
    /// the run's)? Always in star mode; in sharded mode after a sync step, a fetch or a rollback.
    ///
    ///     if core.weightsAreCurrent && core.optimizerIsCurrent { try write(core.checkpoint()) }
    public var weightsAreCurrent: Bool {
        guard let s = shard else { return true }
        return s.weightsAt == state.step
    }

    /// Is a stop waiting for the owners' slices (a sharded run stopped between sync steps)? The driver
    /// then keeps carrying messages until the core is done.
    public var stopAwaitsShards: Bool {
        guard !isDone, let s = shard else { return false }
        return s.fetch?.purpose.stopReason != nil || s.wanted?.stopReason != nil
    }

    /// Does the coordinator need the weights after the step being decided? Every
    /// ``AuditState/snapshotEvery`` steps (the snapshots a lost owner rolls back to, and the audit's),
    /// at an epoch's end (its evaluation, hash and decisions), at the last step of the step limit, at a
    /// due checkpoint and at a due `--hash-every` hash. With owner recovery also at the step after one
    /// whose snapshot could not be taken (an epoch's end whose evaluation ran on while the next step
    /// computed), so the rollback of a lost owner stays within about ``AuditState/snapshotEvery`` steps.
    var syncsAtThisStep: Bool {
        let next = state.step + 1
        if next % AuditState.snapshotEvery == 0 { return true }
        if options.ownerRecovery, let last = auditing.snapshots.last, state.step - last.state.step >= AuditState.snapshotEvery { return true }
        if state.stepInEpoch + 1 >= state.stepsPerEpoch || config.steps == next { return true }
        if checkpointEvery > 0 && next % checkpointEvery == 0 { return true }
        return hashEvery > 0 && next % hashEvery == 0
    }

    /// Asks every owner for the slice it holds (weights and optimizer state); once all are in, the run
    /// state is current (``weightsAreCurrent``, ``optimizerIsCurrent``) and the core goes on with
    /// `purpose` (``shardsFetched(_:now:)``). At once when the state is current already; after the step
    /// when an APPLY is out. A step being reduced goes on meanwhile (its APPLY leaves the owners after
    /// the FETCH, so they answer with the step the coordinator holds). To add a use, add a
    /// ``ShardFetchPurpose`` and its continuation in ``shardsFetched(_:now:)``.
    ///
    ///     return fetchShards(for: .stop(reason), now: now)   // the run's exact state, then the stop
    func fetchShards(for purpose: ShardFetchPurpose, now: Double) -> [CoordinatorEffect] {
        guard var s = shard, !(weightsAreCurrent && optimizerIsCurrent) else { return shardsFetched(purpose, now: now) }
        if case .applying = s.phase {
            s.wanted = purpose
            shard = s
            return []
        }
        s.fetch = ShardFetch(purpose: purpose, step: state.step, weights: state.parameters, m: state.optimizer.m, v: state.optimizer.v)
        shard = s
        let f = FetchSlices(step: UInt64(state.step), table: s.table.version)
        return s.table.owners.compactMap { id in membership.peer(of: id).map { reply($0, id, .fetch(f)) } }
    }

    /// What a fetch was for, done now that the run state is current.
    func shardsFetched(_ purpose: ShardFetchPurpose, now: Double) -> [CoordinatorEffect] {
        switch purpose {
        case .stop(let reason): return settlePendingEpoch(then: .stop(reason), now: now)
        case .join: return startStep(now: now)
        case .dispute: return settleDisputes(now: now)
        case .retake: return retakeStep(now: now)
        }
    }

    /// An owner's answer to a FETCH; the last one makes the run state current.
    func fetchedSlice(_ slice: ParameterSlice, from peer: PeerID, workerID: UInt32, now: Double) -> [CoordinatorEffect] {
        guard var s = shard, var f = s.fetch, slice.version == UInt64(f.step),
              let o = s.table.owners.firstIndex(of: workerID), s.plan.range(ofOwner: o) == slice.range, !f.heard.contains(o) else { return [] }
        let arrays = [f.m, f.v].filter { !$0.isEmpty }.count
        guard let st = slice.state, st.count == arrays, st.allSatisfy({ $0.count == slice.range.count }) else {
            return drop(peer, "SLICE of step \(slice.version) from worker \(workerID) without the optimizer state a FETCH asks for")
        }
        f.weights.replaceSubrange(slice.range, with: slice.values)
        var k = 0
        if !f.m.isEmpty { f.m.replaceSubrange(slice.range, with: st[k]); k += 1 }
        if !f.v.isEmpty { f.v.replaceSubrange(slice.range, with: st[k]) }
        f.heard.insert(o)
        guard f.heard.count == s.plan.owners else { s.fetch = f; shard = s; return [] }
        s.fetch = nil
        shard = s
        do {
            try state.adoptParameters(f.weights)
            try state.adoptOptimizer(Optimizer(config: state.optimizer.config, step: state.optimizer.step, m: f.m, v: f.v))
        } catch {
            failure = error
            return shutdownAll(reason: "the owners' slices do not fit the run")
        }
        shard?.weightsAt = state.step
        shard?.gatheredAt = state.step
        return shardsFetched(f.purpose, now: now)
    }

    /// An owner's APPLIED (a step between sync steps); the last one completes the step (the weights
    /// stay with the owners).
    func shardApplied(_ ack: AppliedStep, from peer: PeerID, workerID: UInt32, now: Double) -> [CoordinatorEffect] {
        guard var s = shard, case .applying(let a, let lossSum, let t1) = s.phase, a.acknowledge, ack.step == a.step, ack.table == a.table,
              let o = s.table.owners.firstIndex(of: workerID), s.plan.range(ofOwner: o) == ack.range, !s.heard.contains(o) else { return [] }
        s.heard.insert(o)
        guard s.heard.count == s.plan.owners else { shard = s; return [] }
        s.heard = []
        s.phase = .idle
        shard = s
        let loss = state.completeSharded(parameters: nil, lossSum: lossSum, windows: stepWindows)
        return finishStepRest(StepRest(outcome: .applied(loss: loss), optimizerStart: t1, now: now))
    }

    /// Before a sharded step draws its windows: a lost owner is replaced (the run rolls back), a fetch
    /// in flight or asked for goes first, and workers that joined between sync steps wait for the
    /// current weights (a FETCH). Nil: the step starts.
    func shardedStepStart(now: Double) -> [CoordinatorEffect]? {
        guard var s = shard else { return nil }
        if let id = lostOwner(), !(state.isFinished && weightsAreCurrent) { return recoverLostOwner(id, now: now) }
        if s.fetch != nil { return [] }
        if let wanted = s.wanted {
            s.wanted = nil
            shard = s
            return fetchShards(for: wanted, now: now)
        }
        if !weightsAreCurrent, liveWorkers.contains(where: { !s.holding.contains($0.id) }) { return fetchShards(for: .join, now: now) }
        return nil
    }

    /// At a step's start after a sync step (owner recovery): the snapshot a lost owner rolls back to.
    /// Without the audit only the newest is kept (the audit keeps its own list, and these join it).
    func takeSyncSnapshot() {
        guard options.ownerRecovery, pendingEpoch == nil, parked == nil, weightsAreCurrent, optimizerIsCurrent else { return }
        if let last = auditing.snapshots.last, last.state.step >= state.step { return }
        let snap = AuditSnapshot(state: state, metricsCount: metrics.count, trainSeconds: trainSeconds,
                                 epochTiming: epochTiming, epochSteps: epochSteps, epochTrain: epochTrain)
        if aggregator.auditPlan == nil { auditing.snapshots = [snap] } else { auditing.snapshots.append(snap) }
    }

    /// Puts the run back at `snap` (a sync step's snapshot): nothing in flight, the run state current.
    func rollBack(to snap: AuditSnapshot) {
        aggregator.abandon()
        restore(snap, counted: false)  // sharded: reseeds the owners and every worker (``reseedShards()``)
    }

    /// A stop of a sharded run whose state is not current: the owners' slices are fetched first (an
    /// APPLY out is answered first; a step being reduced is dropped). Asked again while it waits (the
    /// driver's grace ran out), it settles for the last sync step's snapshot. Nil: stop as in star mode.
    func stopSharded(reason: String, now: Double) -> [CoordinatorEffect]? {
        guard let s = shard, started, !isDone else { return nil }
        if s.fetch?.purpose.stopReason != nil || s.wanted?.stopReason != nil {
            guard let snap = auditing.snapshots.last else { return nil }
            rollBack(to: snap)
            return settlePendingEpoch(then: .stop(reason), now: now)
        }
        guard !(weightsAreCurrent && optimizerIsCurrent), parked == nil, lostOwner() == nil else { return nil }
        if case .reducing = s.phase {
            aggregator.abandon()
            shard?.phase = .idle
        }
        return fetchShards(for: .stop(reason), now: now)
    }
}
