import RNN
import Wire

/// The coordinator's state in sharded aggregation: the table, the norm's parts and the loss of the step
/// being reduced, the owners' updated slices being gathered (at a sync step) or their acknowledgements
/// (between sync steps), and a fetch of the owners' slices in flight.
struct CoordinatorShard {
    /// Where the step is.
    enum Phase {
        /// Between steps.
        case idle
        /// The owners are reducing the step.
        case reducing
        /// APPLY went out; the owners' updated slices are coming in.
        case applying(ApplyStep, lossSum: Float, optimizerStart: Double)
    }

    var table: ShardTable
    var plan: ShardPlan
    var assembly: NormAssembly
    var lossSum: Float?
    var phase = Phase.idle
    /// The weights being gathered, and the owners heard.
    var incoming: [Float] = []
    var heard: Set<Int> = []
    /// Workers that hold the weights (the others get the whole vector before their next ORDER).
    var holding: Set<UInt32> = []
    /// Every worker's peer endpoint (from its HELLO).
    var endpoints: [UInt32: String] = [:]
    /// The owners got their seed (their slice's weights and optimizer state).
    var seeded = false
    /// The step whose update also gathers the owners' optimizer state, and the state gathered so far.
    var gathering = false
    var gatheredM: [Float] = []
    var gatheredV: [Float] = []
    /// The step at which the run state's optimizer was last current (seeded or gathered).
    var gatheredAt = -1
    /// The step at which the run state's weights were last current (the run's start, a sync step, a
    /// fetch, a rollback).
    var weightsAt = -1
    /// The owners' slices being fetched (``CoordinatorCore/fetchShards(for:now:)``).
    var fetch: ShardFetch?
    /// A fetch asked for while an APPLY was out: sent once that step is complete.
    var wanted: ShardFetchPurpose?

    /// Is a step or a fetch in flight?
    var busy: Bool {
        if fetch != nil { return true }
        if case .idle = phase { return false }
        return true
    }
}

/// Sharded aggregation on the coordinator: the table, the orders without weights, the owners' parts of
/// the norm, the step rule (``RunState/decideSharded(lossSum:windows:norm:finite:evaluation:keepClosed:settled:)``),
/// APPLY, and the updated slices gathered into the run's weights.
extension CoordinatorCore {
    /// The owners are fixed when the run starts: the ready shard processes in id order, else the ready
    /// workers, at most one per block.
    func startSharding(now: Double) -> [CoordinatorEffect] {
        guard options.aggregation == .sharded, shard == nil else { return [] }
        let ids = ownerCandidates
        let blocks = ShardPlan.blockCount(parameterCount)
        let owners = Array(ids.prefix(max(1, min(ids.count, blocks))))
        let plan = ShardPlan(parameterCount: parameterCount, owners: owners.count)
        let table = ShardTable(version: 1, parameterCount: parameterCount, owners: owners, peers: [])
        var s = CoordinatorShard(table: table, plan: plan, assembly: NormAssembly(plan: plan))
        s.endpoints = shardEndpoints
        s.weightsAt = state.step  // the run state is the owners' seed: fresh, or a checkpoint's
        s.gatheredAt = state.step
        shard = s
        return []
    }

    /// Sends the table again when workers joined or left, and the whole weights to workers that lack them.
    func prepareShardedStep() -> [CoordinatorEffect] {
        guard var s = shard else { return [] }
        var out: [CoordinatorEffect] = []
        let live = liveWorkers.sorted { $0.id < $1.id }
        let peers = tablePeers(s.endpoints)
        if peers != s.table.peers {
            s.table.version += 1
            s.table.peers = peers
            for w in peers { if let p = membership.peer(of: w.worker) { out.append(reply(p, w.worker, .table(s.table))) } }
        }
        for w in live where !s.holding.contains(w.id) {
            guard let p = membership.peer(of: w.id) else { continue }
            out.append(reply(p, w.id, .slice(ParameterSlice(version: UInt64(state.step), range: 0..<parameterCount, values: state.parameters,
                                                             generation: s.table.generation ?? 0))))
            s.holding.insert(w.id)
        }
        if !s.seeded {
            // the owners start from the run state's optimizer (fresh, or a checkpoint's when resuming)
            for (o, id) in s.table.owners.enumerated() {
                guard let p = membership.peer(of: id) else { continue }
                let r = s.plan.range(ofOwner: o)
                let part = state.optimizer.slice(r)
                let seed = ParameterSlice(version: UInt64(state.step), range: r, values: Array(state.parameters[r]),
                                          state: [part.m, part.v].filter { !$0.isEmpty }, generation: s.table.generation ?? 0)
                out.append(reply(p, id, .slice(seed)))
            }
            s.seeded = true
            s.gatheredAt = state.step
        }
        s.assembly.begin(step: state.step + 1)
        s.lossSum = nil
        s.phase = .reducing
        shard = s
        return out
    }

    /// Is an owner gone? Then the run cannot go on exactly (its slice's optimizer state is lost).
    func lostOwner() -> UInt32? {
        guard let s = shard else { return nil }
        let live = liveHolders
        return s.table.owners.first { !live.contains($0) }
    }

    /// An owner is gone: with ``CoordinatorOptions/ownerRecovery`` the run goes back to its last sync
    /// step (the snapshot taken there: weights, every owner's optimizer state, the schedule), the slices
    /// are re-planned among the live workers, the new owners seeded from the snapshot, every worker given
    /// its weights, and the steps since are replayed (the same windows: the bits of a run without the
    /// fault); else the run stops.
    func recoverLostOwner(_ id: UInt32, now: Double) -> [CoordinatorEffect] {
        guard options.ownerRecovery, shard != nil, parked == nil, let snap = auditing.snapshots.last else {
            return parked == nil ? failLostOwner(id) : []  // parked: tried again on the next tick
        }
        let live = ownerCandidates
        guard !live.isEmpty else { return failLostOwner(id) }
        let stopping = shard?.fetch?.purpose.stopReason ?? shard?.wanted?.stopReason
        let from = state.step
        rollBack(to: snap)
        replayedSteps += from - state.step
        guard var s = shard else { return [] }
        let owners = Array(live.prefix(max(1, min(live.count, ShardPlan.blockCount(parameterCount)))))
        s.plan = ShardPlan(parameterCount: parameterCount, owners: owners.count)
        s.assembly = NormAssembly(plan: s.plan)
        s.table.owners = owners
        s.table.version += 1
        s.table.peers = tablePeers(s.endpoints)
        s.seeded = false
        s.holding = []
        shard = s
        replans += 1
        emit(.dropped(peer: PeerID([]), reason: "worker \(id), the owner of a slice, is gone: \(owners.count) owner(s) take the slices over from step \(state.step + 1) (the last sync step; \(from - state.step) step(s) replayed)"))
        var out: [CoordinatorEffect] = []
        for w in s.table.peers { if let p = membership.peer(of: w.worker) { out.append(reply(p, w.worker, .table(s.table))) } }
        if let stopping { return out + settlePendingEpoch(then: .stop(stopping), now: now) }
        guard started, !isDone else { return out }
        return out + startStep(now: now)
    }

    func failLostOwner(_ id: UInt32) -> [CoordinatorEffect] {
        failure = .invalidConfig("sharded aggregation lost worker \(id), the owner of a slice and its optimizer state; resume the run from its last checkpoint (--resume)")
        return shutdownAll(reason: "an owner was lost")
    }

    /// An owner's NORM.
    func shardNorm(_ part: NormPart, from peer: PeerID, workerID: UInt32, now: Double) -> [CoordinatorEffect] {
        guard var s = shard, case .reducing = s.phase, let w = membership.workers[peer], w.phase == .ready, w.id == workerID else {
            return []
        }
        guard part.step == UInt64(state.step + 1), part.generation == s.table.generation ?? 0 else { return [] }
        guard let o = s.table.owners.firstIndex(of: workerID), s.plan.blocks(ofOwner: o) == part.blocks,
              (o == s.plan.owners - 1) == (part.lossSum != nil) else {
            return drop(peer, "NORM from worker \(workerID) for blocks it does not own")
        }
        let added = (try? s.assembly.add(ShardOwner.PartialNorm(step: Int(part.step), blocks: part.blocks,
                                                                sumsOfSquares: part.sumsOfSquares, isFinite: part.isFinite))) ?? false
        if added, let l = part.lossSum { s.lossSum = l }
        shard = s
        // every leaf is in; the step is decided once its audit is settled too
        return decideShardedIfSettled(now: now)
    }

    /// The step rule on a step the owners reduced; APPLY to every owner, or the run stops.
    func decideShardedStep(now: Double) -> [CoordinatorEffect] {
        guard let s = shard, let lossSum = s.lossSum, let norm = s.assembly.norm else { return [] }
        let (n, pending, evaluation, t1) = beginStepEnd(now: now)
        var settled: RunState.SettledEpoch?
        let decision: RunState.ShardedDecision
        do {
            decision = try state.decideSharded(lossSum: lossSum, windows: n, norm: norm, finite: s.assembly.isFinite,
                                               evaluation: evaluation, keepClosed: pending?.checkpoint == true) { settled = $0 }
        } catch {
            failure = error
            return shutdownAll(reason: "training diverged")
        }
        guard case .apply(let lr, let coef) = decision else {
            shard?.phase = .idle
            if let pending, let settled { return recordSettled(pending, settled, then: .none, now: now) }
            return finishRun()
        }
        let sync = syncsAtThisStep
        let gather = sync && gathersAtThisStep
        let a = ApplyStep(step: UInt64(state.step + 1), learningRate: lr, clipCoefficient: coef, table: s.table.version, gather: gather,
                          acknowledge: !sync)
        shard?.phase = .applying(a, lossSum: lossSum, optimizerStart: t1)
        shard?.gathering = gather
        if gather {
            shard?.gatheredM = state.optimizer.m
            shard?.gatheredV = state.optimizer.v
        }
        shard?.incoming = sync ? state.parameters : []
        shard?.heard = []
        if let pending, let settled { return recordSettled(pending, settled, then: .applyShard, now: now) }
        return sendApply()
    }

    /// At a sync step (``syncsAtThisStep``) the owners also send their optimizer state: always with
    /// owner recovery (the snapshot a lost owner rolls back to is exact), else at every step after which
    /// a checkpoint may be written: one that is due, one that ends an epoch (the run may stop there, and
    /// a deferred epoch's checkpoint is of its end) and the last of the step limit.
    var gathersAtThisStep: Bool {
        guard syncsAtThisStep else { return false }
        if options.ownerRecovery { return true }
        guard checkpointEvery > 0 else { return false }
        let next = state.step + 1
        return next % checkpointEvery == 0 || state.stepInEpoch + 1 >= state.stepsPerEpoch || config.steps == next
    }

    /// Is the run state's optimizer state the owners' (a checkpoint of it now is exact)? Always in star mode.
    public var optimizerIsCurrent: Bool {
        guard let s = shard else { return true }
        return s.gatheredAt == state.step
    }

    /// APPLY to every owner.
    func sendApply() -> [CoordinatorEffect] {
        guard let s = shard, case .applying(let a, _, _) = s.phase else { return [] }
        return s.table.owners.compactMap { id in membership.peer(of: id).map { reply($0, id, .apply(a)) } }
    }

    /// An owner's updated slice at a sync step (the last one completes the step), or its answer to a FETCH.
    func shardSlice(_ slice: ParameterSlice, from peer: PeerID, workerID: UInt32, now: Double) -> [CoordinatorEffect] {
        // a FETCH's answer is of the step the coordinator holds; an update's, of the step after it
        if let f = shard?.fetch, slice.version == UInt64(f.step) { return fetchedSlice(slice, from: peer, workerID: workerID, now: now) }
        guard var s = shard, case .applying(let a, let lossSum, let t1) = s.phase, !a.acknowledge, slice.version == a.step,
              slice.generation == s.table.generation ?? 0,
              let o = s.table.owners.firstIndex(of: workerID), s.plan.range(ofOwner: o) == slice.range,
              !s.heard.contains(o) else { return [] }
        if s.gathering {
            let arrays = [s.gatheredM, s.gatheredV].filter { !$0.isEmpty }.count
            guard let state = slice.state, state.count == arrays, state.allSatisfy({ $0.count == slice.range.count }) else {
                return drop(peer, "SLICE of step \(slice.version) from worker \(workerID) without the optimizer state asked for")
            }
            var k = 0
            if !s.gatheredM.isEmpty { s.gatheredM.replaceSubrange(slice.range, with: state[k]); k += 1 }
            if !s.gatheredV.isEmpty { s.gatheredV.replaceSubrange(slice.range, with: state[k]) }
        }
        s.incoming.withUnsafeMutableBufferPointer { dst in
            slice.values.withUnsafeBufferPointer { src in
                for (k, i) in slice.range.enumerated() { dst[i] = src[k] }
            }
        }
        s.heard.insert(o)
        guard s.heard.count == s.plan.owners else { shard = s; return [] }
        let weights = s.incoming
        s.incoming = []
        s.phase = .idle
        let gathered = s.gathering ? (s.gatheredM, s.gatheredV) : nil
        s.gathering = false
        s.gatheredM = []
        s.gatheredV = []
        shard = s
        let loss = state.completeSharded(parameters: weights, lossSum: lossSum, windows: stepWindows)
        shard?.weightsAt = state.step
        if let (m, v) = gathered {
            do {
                try state.adoptOptimizer(Optimizer(config: state.optimizer.config, step: state.optimizer.step, m: m, v: v))
                shard?.gatheredAt = state.step
            } catch {
                failure = error
                return shutdownAll(reason: "the owners' optimizer state does not fit the run")
            }
        }
        return finishStepRest(StepRest(outcome: .applied(loss: loss), optimizerStart: t1, now: now))
    }
}
