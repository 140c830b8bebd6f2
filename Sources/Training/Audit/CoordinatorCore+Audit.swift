import RNN
import Wire

/// What the coordinator keeps for the audit (`--audit-rate`): the engine that breaks ties, the
/// snapshots it rolls back to, and who contributed unverified answers since when.
struct AuditState {
    /// Computes a disputed node in-process (made at the first dispute).
    var engine: GradientEngine?
    /// Snapshots of the run, oldest first (taken at step starts when the audit is on: answers no
    /// audit checked, also at rate 1 a retry's or a lost worker's reassigned leaves, can be in the model).
    var snapshots: [AuditSnapshot] = []
    /// Per worker, the first step in which it contributed an answer that no audit checked.
    var firstUnverified: [UInt32: Int] = [:]
    /// A rollback decided while the core waited (an evaluation, a checkpoint): done at the next step start.
    var pendingRollback: AuditSnapshot?
    /// Rollbacks done.
    var rollbacks = 0
    /// The CURVE key each worker announced in HELLO (a quarantined worker's is refused).
    var keys: [UInt32: String] = [:]
    /// Steps between snapshots.
    static let snapshotEvery = 16
    /// How long a dispute waits for its referee's answer before the coordinator decides it itself.
    static func refereeTimeout(_ retryAfter: Double) -> Double { max(1, 4 * retryAfter) }
    /// Snapshots kept (older ones are thinned, the first one stays).
    static let maxSnapshots = 32
}

/// The run as it stood when a step started (a rollback restores it and replays from there).
struct AuditSnapshot {
    var state: RunState
    var metricsCount: Int
    var trainSeconds: Double
    var epochTiming: StepTiming
    var epochSteps: Int
    var epochTrain: Double
}

extension CoordinatorCore {
    /// Runs audited whose answers agreed, so far.
    public var audited: Int { aggregator.audit.audited }
    /// Audited nodes whose answers differed, so far.
    public var auditMismatches: Int { aggregator.audit.mismatches }
    /// The workers quarantined, in order.
    public var quarantined: [QuarantineEntry] { membership.quarantine.entries }
    /// Times the run went back to a snapshot to drop a quarantined worker's unverified answers.
    public var rollbacks: Int { auditing.rollbacks }

    /// The audit's counters on an epoch line.
    func noteAudit(_ m: inout EpochMetrics) {
        guard aggregator.auditPlan != nil else { return }
        m.audited = audited
        m.auditMismatches = auditMismatches
        m.quarantined = quarantined.count
    }

    /// At a step's start: a pending rollback, then a snapshot when one is due. Returns whether the
    /// run went back.
    @discardableResult
    func auditStepStart() -> Bool {
        var rolledBack = false
        if let snap = auditing.pendingRollback, parked == nil {
            auditing.pendingRollback = nil
            restore(snap)
            rolledBack = true
        }
        defer { takeSnapshotIfDue() }
        return rolledBack
    }

    /// A snapshot of the run at this step start, when one is due.
    private func takeSnapshotIfDue() {
        // a sharded run's state is the owners' only at some step starts: a snapshot is taken there
        guard aggregator.auditPlan != nil, pendingEpoch == nil, parked == nil, stateIsCurrent else { return }
        if let last = auditing.snapshots.last, state.step - last.state.step < AuditState.snapshotEvery { return }
        auditing.snapshots.append(AuditSnapshot(state: state, metricsCount: metrics.count, trainSeconds: trainSeconds,
                                                epochTiming: epochTiming, epochSteps: epochSteps, epochTrain: epochTrain))
        if auditing.snapshots.count > AuditState.maxSnapshots {
            // keep the first, thin the older half
            let old = auditing.snapshots.count / 2
            auditing.snapshots = [auditing.snapshots[0]] + auditing.snapshots[1..<old].enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
                + auditing.snapshots[old...]
        }
    }

    /// An accepted answer for `block` from `worker`: unverified unless its node is audited (an
    /// audited node is compared before the step's update).
    func noteContribution(worker: UInt32, block: Range<Int>) {
        guard aggregator.auditPlan != nil, !aggregator.audit.covers(block), auditing.firstUnverified[worker] == nil else { return }
        auditing.firstUnverified[worker] = state.step
    }

    /// Settles the step's disputes: a third live worker is asked for each disputed node and the
    /// majority of the three answers decides (the coordinator computes the node itself when there is no
    /// third worker, when the three differ, or when the referee does not answer in time); every worker
    /// whose answer is wrong is quarantined, and the step is computed again without them (its tree, or
    /// its owners' reduction, may hold a wrong node); when a quarantined worker's unverified answers are
    /// in earlier steps, the run goes back to the last snapshot before them and replays.
    func settleDisputes(now: Double) -> [CoordinatorEffect] {
        guard aggregator.audit.hasDisputes else { return [] }
        var referrals: [Order] = []
        var waiting = false
        let live = liveWorkers.map(\.id).sorted()
        for d in aggregator.audit.disputes {
            if let r = d.referee {
                if d.digests[r] == nil && live.contains(r) && now - d.referred <= AuditState.refereeTimeout(options.retryAfter) { waiting = true }
            } else if let third = live.first(where: { d.digests[$0] == nil }), let o = aggregator.refer(d.block, to: third, now: now) {
                referrals.append(o)
                waiting = true
            }
        }
        if waiting { return send(referrals) }
        // a node the coordinator computes itself needs the step's weights: a sharded run's come from the owners first
        if shard != nil, !weightsAreCurrent,
           aggregator.audit.disputes.contains(where: { $0.digests.count < 3 || Self.majority($0.digests) == nil }) {
            return shard?.fetch == nil ? fetchShards(for: .dispute, now: now) : []
        }
        let disputes = aggregator.takeDisputes()
        var wrong: [UInt32: String] = [:]
        for d in disputes {
            let where_ = "its sums of leaves \(d.block) at step \(d.step + 1)"
            if d.digests.count >= 3, let (right, voters) = Self.majority(d.digests) {
                for (w, digest) in d.digests where digest != right {
                    wrong[w] = "\(where_) differ from those of workers \(voters.map(String.init).joined(separator: " and ")) (digest \(WeightsHash.hex(digest)), theirs \(WeightsHash.hex(right)))"
                }
                continue
            }
            let reference = referenceDigest(block: d.block)
            for (w, digest) in d.digests where digest != reference {
                wrong[w] = "\(where_) differ from the coordinator's own (digest \(WeightsHash.hex(digest)), expected \(WeightsHash.hex(reference)))"
            }
        }
        var out: [CoordinatorEffect] = []
        var back: AuditSnapshot?
        for (id, reason) in wrong.sorted(by: { $0.key < $1.key }) {
            guard let peer = membership.peer(of: id), var w = membership.workers[peer] else { continue }
            let entry = QuarantineEntry(worker: id, host: w.host, pid: w.pid, step: state.step + 1, reason: reason, key: auditing.keys[id])
            membership.quarantine.add(entry)
            w.phase = .quarantined
            membership.workers[peer] = w
            emit(.quarantined(w, entry))
            dismissed.insert(peer)
            out.append(reply(peer, id, .shutdown("quarantined: \(reason)")))
            if let first = auditing.firstUnverified[id], first < state.step,
               let snap = auditing.snapshots.last(where: { $0.state.step <= first }) {
                if back.map({ snap.state.step < $0.state.step }) ?? true { back = snap }
            }
        }
        aggregator.abandon()
        if let back {
            auditing.pendingRollback = back
            if parked == nil { return out + startStep(now: now) }
        }
        return out + retakeStep(now: now)
    }

    /// The digest that at least two of the answers share, and who gave it (nil: no majority).
    static func majority(_ digests: [UInt32: UInt64]) -> (UInt64, [UInt32])? {
        let votes = Dictionary(grouping: digests.keys.sorted(), by: { digests[$0] ?? 0 })
        guard let best = votes.max(by: { $0.value.count < $1.value.count }), best.value.count >= 2,
              votes.values.filter({ $0.count == best.value.count }).count == 1 else { return nil }
        return (best.key, best.value)
    }

    /// The digest of tree node `block` of the step in flight, computed here.
    func referenceDigest(block: Range<Int>) -> UInt64 {
        if auditing.engine == nil { auditing.engine = GradientEngine(config: config.model, microBatch: microBatch, threads: 1) }
        guard let engine = auditing.engine, let weights = tieBreakWeights() else { return 0 }
        let n = stepWindows
        return weights.withUnsafeBufferPointer { p in
            series.values.withUnsafeBufferPointer { s in
                windows.withUnsafeBufferPointer { w in
                    let nodes = engine.compute(params: p, series: s, windows: UnsafeBufferPointer(rebasing: w[0..<n]), run: block)
                    guard let node = nodes.first(where: { $0.block == block }) else { return 0 }
                    return AuditBook.digest(.floats(node.sums))
                }
            }
        }
    }

    /// Puts the run back as it stood at `snap` (the steps since are computed again); `counted`: one of
    /// the audit's ``rollbacks`` (not a lost owner's rollback).
    func restore(_ snap: AuditSnapshot, counted: Bool = true) {
        state = snap.state
        metrics = Array(metrics.prefix(snap.metricsCount))
        trainSeconds = snap.trainSeconds
        epochTiming = snap.epochTiming
        epochSteps = snap.epochSteps
        epochTrain = snap.epochTrain
        pendingEpoch = nil
        auditing.snapshots.removeAll { $0.state.step > snap.state.step }
        auditing.firstUnverified = auditing.firstUnverified.filter { $0.value < snap.state.step }
        if counted {
            auditing.rollbacks += 1
            epochsEmitted = min(epochsEmitted, snap.metricsCount)  // the replay's lines are the corrected ones
        }
        // sharded: the owners and every worker start again from the snapshot's weights and optimizer state
        reseedShards()
    }
}

extension AuditBook {
    /// Is `block` a node of a run audited this step?
    func covers(_ block: Range<Int>) -> Bool { runs.contains { $0.blocks.contains(block) } }
    /// Are there disputes to settle?
    public var hasDisputes: Bool { !disputes.isEmpty }
}
