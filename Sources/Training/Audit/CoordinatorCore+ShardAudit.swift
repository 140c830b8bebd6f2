import RNN
import Wire

/// The audit in sharded aggregation (`--aggregation sharded`): the coordinator never sees a sharded
/// run's sums, so every worker sends it a DIGEST of each tree node it computes (``NodeDigest``), and
/// the same ``AuditBook`` compares them as it compares the digests of star-mode GRADIENTs. The owners
/// are told to apply a step only once its audit is settled; a dispute quarantines the wrong worker and
/// takes the step again from a reseed of the owners (``reseedShards()``), and a rollback reseeds them
/// from the restored snapshot.
extension CoordinatorCore {
    /// A worker's DIGEST of a node it computed (sharded runs only).
    func shardDigest(_ d: NodeDigest, from peer: PeerID, runID r: UInt64, workerID: UInt32, now: Double) -> [CoordinatorEffect] {
        guard shard != nil, let w = membership.workers[peer], w.phase == .ready, w.id == workerID else {
            return drop(peer, "DIGEST from an unknown or not-ready worker")
        }
        guard r == runID else { return drop(peer, "DIGEST for run \(r), this run is \(runID)") }
        guard d.generation == shard?.table.generation ?? 0 else { return [] }  // of a step since taken again
        switch aggregator.acceptDigest(worker: w.id, step: d.step, block: d.block, leafCount: d.leafCount, digest: d.digest) {
        case .invalid(let reason):
            return drop(peer, "DIGEST from worker \(w.id): \(reason)")
        case .lateOrDuplicate:
            return []
        case .accepted:
            // whichever copy of a node the owners took, its worker contributed it
            noteContribution(worker: w.id, block: d.block)
        }
        if aggregator.audit.hasDisputes { return settleDisputes(now: now) }
        return decideShardedIfSettled(now: now)
    }

    /// The owners' reduction of the step is in (every NORM, the loss) and its audit is settled: the
    /// step rule decides, and APPLY goes out. Nothing (the step waits) otherwise.
    func decideShardedIfSettled(now: Double) -> [CoordinatorEffect] {
        guard let s = shard, case .reducing = s.phase, s.assembly.isComplete, s.lossSum != nil, stepActive,
              aggregator.audit.settled, parked == nil else { return [] }
        aggregator.abandon()  // every leaf is in and checked: no order is retried
        return finishStep(now: now)
    }

    /// Is the run state the owners' (weights and optimizer state), so that a snapshot of it is exact
    /// and the owners can be reseeded from it? Always in star mode; in sharded mode before the owners
    /// are first seeded and at the step starts whose update gathered their optimizer state.
    var stateIsCurrent: Bool {
        guard let s = shard else { return true }
        return !s.seeded || (optimizerIsCurrent && weightsAreCurrent)
    }

    /// The weights of the step in flight for the coordinator's tie-break, or nil when this core does
    /// not hold them.
    func tieBreakWeights() -> [Float]? {
        // sharded runs: current after a sync step or a FETCH (``settleDisputes(now:)`` fetches first)
        weightsAreCurrent ? state.parameters : nil
    }

    /// A new generation of the sharded table: the owners re-planned among the live workers and seeded
    /// again from the run state, every worker given the run state's weights, at the next
    /// ``prepareShardedStep()``. Workers drop what they hold of the older generation (also its slices
    /// still on the way). Needs ``stateIsCurrent``.
    func reseedShards() {
        guard var s = shard else { return }
        let live = ownerCandidates
        let owners = Array(live.prefix(max(1, min(live.count, ShardPlan.blockCount(parameterCount)))))
        if !owners.isEmpty {  // none live: the plan stays (the run is failing or waiting for workers)
            s.plan = ShardPlan(parameterCount: parameterCount, owners: owners.count)
            s.assembly = NormAssembly(plan: s.plan)
            s.table.owners = owners
        }
        s.table.generation = (s.table.generation ?? 0) + 1
        s.table.peers = []  // the table goes out again (a newer version) at the next step's preparation
        s.seeded = false
        s.gatheredAt = state.step  // the owners will hold the run state's optimizer state
        s.holding = []
        s.phase = .idle
        s.lossSum = nil
        s.incoming = []
        s.heard = []
        s.gathering = false
        s.gatheredM = []
        s.gatheredV = []
        s.fetch = nil
        s.wanted = nil
        s.weightsAt = state.step
        shard = s
    }

    /// Takes the step in flight again without the quarantined workers: in star mode the orders go out
    /// again; in sharded mode the owners (whose reduction may hold a wrong node) are reseeded from the
    /// run state first, fetched from them when it is not theirs (between sync steps), or, when a
    /// quarantined worker owned a slice, the run goes back to the last snapshot (always taken where it is).
    func retakeStep(now: Double) -> [CoordinatorEffect] {
        guard shard != nil else {
            return send(aggregator.begin(step: aggregator.step, windows: stepWindows, microBatch: microBatch,
                                         workers: liveWorkers.map(\.id), now: now))
        }
        guard stateIsCurrent else {
            // between sync steps: the owners' state of the step comes first (a FETCH), unless a quarantined
            // worker owned a slice (its state, maybe wrong, is gone with it: back to the last snapshot)
            if let s = shard, Set(s.table.owners).isSubset(of: liveHolders) {
                return s.fetch == nil ? fetchShards(for: .retake, now: now) : []
            }
            if let snap = auditing.snapshots.last {
                auditing.pendingRollback = snap
                return parked == nil ? startStep(now: now) : []
            }
            failure = .invalidConfig("the audit found a wrong worker in a sharded run whose owners' state the coordinator does not hold; resume the run from its last checkpoint (--resume)")
            return shutdownAll(reason: "the audit cannot take the step again")
        }
        reseedShards()
        stepStart = now
        stepCredits = [:]
        return prepareShardedStep() + send(aggregator.begin(step: UInt64(state.step), windows: stepWindows, microBatch: microBatch,
                                                            workers: liveWorkers.map(\.id), now: now))
    }
}
