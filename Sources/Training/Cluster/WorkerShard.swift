import RNN
import Series
import Wire

/// A worker's part in sharded aggregation, as a value (``WorkerCore`` holds one when its WELCOME says
/// `aggregation: "sharded"`): the weights assembled from the owners' slices, the owner of a slice when
/// the ``ShardTable`` names this worker, and the cutting of the worker's tree-node sums into the owners'
/// slices. No I/O: every function returns what to send (``WorkerEffect``).
///
/// Per step: ORDER (parked until the weights of its step are held) → the computation's GRADIENTs cut
/// into NODEs, one per owner (this worker's own slice stays here) → as an owner, the step's nodes in any
/// order (``ShardOwner``), the loss too for the last owner → NORM to the coordinator → APPLY → SLICE to
/// every worker of the table, and to the coordinator the SLICE at a sync step or an APPLIED (no floats)
/// between them; a FETCH is answered with the SLICE held (weights and optimizer state).
struct WorkerShard {
    let runID: UInt64
    let workerID: UInt32
    let parameterCount: Int
    let microBatch: Int
    let optimizer: OptimizerConfig
    /// False in a `ztrain shard` process: it computes nothing, so it neither assembles the whole weights
    /// from the owners' slices nor takes orders (only its own slice and its optimizer state are held).
    let holdsWeights: Bool
    private(set) var table: ShardTable?
    private(set) var plan: ShardPlan?
    /// This worker's slice index in ``plan`` (nil: not an owner).
    private(set) var ownerIndex: Int?
    private(set) var owner: ShardOwner?
    /// The loss sum's reduction (the last owner only).
    private var loss = SliceReduction(elements: 0..<1, leafCount: 1)
    private var normSent = false
    /// The weights held, after ``version`` updates (-1: none yet).
    private(set) var weights: [Float] = []
    private(set) var version = -1
    /// The weights of `version + 1` being assembled from the owners' slices, and the owners heard.
    private var next: [Float] = []
    private var nextHeard: Set<Int> = []
    /// The weights of `version - 1` (an ORDER of the step before the held weights: the step taken again
    /// after an owner was lost, when this worker already had its update).
    private var previous: [Float] = []
    /// Slices of later versions (an owner may be faster than another's slice of the version before).
    private var later: [ParameterSlice] = []
    /// Nodes that came before this owner could take them (no table, or the step not begun).
    private var early: [NodeSlice] = []
    /// The coordinator's seed of this owner (its slice's weights and optimizer state), until the table names it.
    private var seed: ParameterSlice?
    /// The seed last used (a re-planned table that comes after its seed uses it again).
    private var lastSeed: ParameterSlice?
    /// An APPLY that names a table this worker has not received yet.
    private var parkedApply: ApplyStep?
    /// A FETCH that names a table this worker has not received yet.
    private var parkedFetch: FetchSlices?
    /// The ORDER waiting for the weights of its step.
    private(set) var parkedOrder: StepOrder?
    /// The table's generation: a newer one means the coordinator reseeds everything (an audit's
    /// rollback, or a step taken again without a quarantined worker).
    private(set) var generation: UInt32 = 0
    /// Bound on buffered messages (a misbehaving peer cannot grow them without limit).
    static let maxBuffered = 4096

    init(runID: UInt64, workerID: UInt32, parameterCount: Int, microBatch: Int, optimizer: OptimizerConfig, holdsWeights: Bool = true) {
        self.holdsWeights = holdsWeights
        self.runID = runID
        self.workerID = workerID
        self.parameterCount = parameterCount
        self.microBatch = microBatch
        self.optimizer = optimizer
    }

    private func envelope(_ m: Message) -> Envelope { Envelope(runID: runID, workerID: workerID, message: m) }

    // MARK: - The table

    /// A newer table: the owners and the peers. An owner keeps its slice and state across tables that
    /// keep its index and the plan.
    mutating func take(_ t: ShardTable) -> [WorkerEffect] {
        if let old = table, old.version >= t.version { return [] }
        guard t.parameterCount == parameterCount else { return [] }
        let oldOwners = table?.owners ?? []
        let reseeded = (t.generation ?? 0) > generation
        if reseeded { dropForReseed(generation: t.generation ?? 0) }
        table = t
        let p = ShardPlan(parameterCount: parameterCount, owners: t.owners.count)
        let index = t.owners.firstIndex(of: workerID)
        if reseeded {
            early = early.filter { $0.table == UInt16(truncatingIfNeeded: t.version) }
        } else if let old = plan, p != old || index != ownerIndex || t.owners != oldOwners {
            // re-planned: the step starts over under the new owners, seeded anew (a seed that came
            // before this table is used now)
            owner = nil
            seed = seed ?? lastSeed
            next = []
            nextHeard = []
            later = []
            early = early.filter { $0.table == UInt16(truncatingIfNeeded: t.version) }
            parkedApply = nil
            parkedFetch = nil
            normSent = false
        } else if p != plan || index != ownerIndex {
            owner = nil
        }
        plan = p
        ownerIndex = index
        var out: [WorkerEffect] = [.peers(t)]
        if reseeded {
            // the coordinator's seed and weights of this generation that came before the table
            let waiting = later
            later = []
            for s in waiting { out += take(s) }
        }
        out += makeOwnerIfReady()
        if let a = parkedApply, a.table <= t.version {
            parkedApply = nil
            out += apply(a)
        }
        if let f = parkedFetch, f.table <= t.version {
            parkedFetch = nil
            out += fetch(f)
        }
        return out
    }

    /// Becomes the owner of its slice once it holds the table and the coordinator's seed of that slice
    /// (the weights and optimizer state after the seed's version: fresh at a run's start, a checkpoint's
    /// when the run resumed).
    private mutating func makeOwnerIfReady() -> [WorkerEffect] {
        guard owner == nil, let plan, let o = ownerIndex, let s = seed, s.range == plan.range(ofOwner: o), let state = s.state else { return [] }
        let needsM = optimizer.kind == .adam || optimizer.momentum != 0
        let needsV = optimizer.kind == .adam
        guard state.count == (needsM ? 1 : 0) + (needsV ? 1 : 0) else { return [] }
        seed = nil
        lastSeed = s
        let state0 = needsM ? state[0] : []
        let state1 = needsV ? state[state.count - 1] : []
        owner = ShardOwner(plan: plan, owner: o, parameters: s.values,
                           optimizer: Optimizer(config: optimizer, step: Int(s.version), m: state0, v: state1),
                           stepsApplied: Int(s.version))
        var out = retryEarly()
        if let f = parkedFetch {
            parkedFetch = nil
            out += fetch(f)
        }
        return out
    }

    /// A newer generation: the weights, the owner and everything buffered of the older one are
    /// dropped (stale slices of it that arrive later are refused by their generation); the
    /// coordinator sends the weights and the owners' seeds of the new one.
    private mutating func dropForReseed(generation g: UInt32) {
        generation = g
        owner = nil
        seed = nil
        weights = []
        version = -1
        next = []
        nextHeard = []
        previous = []
        later.removeAll { $0.generation != g }
        parkedApply = nil
        parkedFetch = nil
        lastSeed = nil
        normSent = false
        plan = nil
        ownerIndex = nil
    }

    // MARK: - The weights

    /// A run of the weights: the coordinator's whole vector (a joining worker) or an owner's updated slice.
    mutating func take(_ s: ParameterSlice) -> [WorkerEffect] {
        guard s.range.upperBound <= parameterCount, s.values.count == s.range.count, s.generation >= generation else { return [] }
        if s.generation > generation {
            // of a generation whose table is on the way
            if later.count < Self.maxBuffered { later.append(s) }
            return []
        }
        if s.state != nil {
            // a seed: the coordinator's start of this owner (the run's start, or a rollback)
            owner = nil
            seed = s
            return makeOwnerIfReady()
        }
        guard holdsWeights else { return [] }
        let v = Int(s.version)
        if s.range == 0..<parameterCount {
            // the coordinator's whole vector (a join, or a rollback to its last sync step): it wins
            previous = v == version + 1 ? weights : []
            weights = s.values
            version = v
            next = []
            nextHeard = []
            later.removeAll { $0.generation == generation && Int($0.version) <= v }
            return settleWeights()
        }
        guard version >= 0, let plan else {
            if later.count < Self.maxBuffered { later.append(s) }
            return []
        }
        if v > version + 1 {
            if later.count < Self.maxBuffered { later.append(s) }
            return []
        }
        guard v == version + 1, let o = (0..<plan.owners).first(where: { plan.range(ofOwner: $0) == s.range }),
              !nextHeard.contains(o) else { return [] }
        if next.isEmpty { next = weights }
        next.withUnsafeMutableBufferPointer { n in
            s.values.withUnsafeBufferPointer { src in
                for (k, i) in s.range.enumerated() { n[i] = src[k] }
            }
        }
        nextHeard.insert(o)
        guard nextHeard.count == (0..<plan.owners).filter({ !plan.range(ofOwner: $0).isEmpty }).count else { return [] }
        swap(&weights, &next)
        previous = next
        next = []
        nextHeard = []
        version = v
        return settleWeights()
    }

    /// After the weights moved on: slices of the next version that came early, then the parked ORDER.
    private mutating func settleWeights() -> [WorkerEffect] {
        var out: [WorkerEffect] = []
        let ready = later.filter { $0.generation == generation && Int($0.version) == version + 1 }
        later.removeAll { $0.generation == generation && Int($0.version) <= version + 1 }
        for s in ready { out += take(s) }
        return out
    }

    /// The ORDER to compute now (its step's weights are held), or nil (parked until they are).
    mutating func admit(_ o: StepOrder) -> Assign? {
        guard holdsWeights, let table, o.table >= table.version else { return nil }  // an order of an older table: moot
        if o.table > table.version {
            parkedOrder = o  // its table is on the way: the nodes must be cut by it
            return nil
        }
        if Int(o.step) == version {
            parkedOrder = nil
            return Assign(step: o.step, leaves: o.leaves, leafCount: o.leafCount, weights: weights, windows: o.windows)
        }
        if Int(o.step) == version - 1, previous.count == parameterCount {
            parkedOrder = nil
            return Assign(step: o.step, leaves: o.leaves, leafCount: o.leafCount, weights: previous, windows: o.windows)
        }
        parkedOrder = o  // a later step, or a rollback's step whose whole weights are on the way
        return nil
    }

    /// The parked ORDER, if the weights of its step are now held.
    mutating func parkedReady() -> Assign? {
        guard let o = parkedOrder, Int(o.step) == version else { return nil }
        return admit(o)
    }

    // MARK: - Nodes out

    /// A computation's GRADIENTs cut into the owners' slices: NODEs to the other owners, this worker's
    /// own slice taken here.
    mutating func distribute(_ replies: [Envelope], stepWindows: Int) -> [WorkerEffect] {
        guard let table, let plan else { return [] }
        var out: [WorkerEffect] = []
        for case .gradient(let g) in replies.map(\.message) where g.sums.count == parameterCount + 1 {
            // the audit's evidence: the coordinator compares the digests of audited nodes
            let digest = g.sums.withUnsafeBufferPointer { AuditBook.digest(.floats($0)) }
            out.append(.send(envelope(.digest(NodeDigest(step: g.step, block: g.block, leafCount: g.leafCount, digest: digest,
                                                         generation: generation)))))
            for o in 0..<plan.owners {
                let r = plan.range(ofOwner: o)
                let last = o == plan.owners - 1
                guard !r.isEmpty || last else { continue }
                var values = Array(g.sums[r])
                if last { values.append(g.sums[parameterCount]) }
                let node = NodeSlice(step: g.step, block: g.block, leafCount: g.leafCount, samples: g.samples,
                                     windows: stepWindows, owner: o, values: values, table: UInt16(truncatingIfNeeded: table.version))
                if o == ownerIndex {
                    out += receive(node)
                } else {
                    out.append(.sendPeer(table.owners[o], envelope(.node(node))))
                }
            }
        }
        return out
    }

    // MARK: - The owner

    /// A node slice for this owner (from a peer or from this worker).
    mutating func receive(_ n: NodeSlice) -> [WorkerEffect] {
        let current = table.map { UInt16(truncatingIfNeeded: $0.version) }
        if let current, n.table != current {
            // a node of another table: an older one's is moot (its step starts over), a newer one's waits
            if Int16(bitPattern: n.table &- current) > 0, early.count < Self.maxBuffered { early.append(n) }
            return []
        }
        guard var o = owner, n.owner == o.owner else {
            if early.count < Self.maxBuffered { early.append(n) }
            return []
        }
        let step = Int(n.step) + 1
        if step > o.stepsApplied + 1 {
            if early.count < Self.maxBuffered { early.append(n) }
            return []
        }
        owner = nil  // `o` alone holds the slice's buffers: changing it copies none of them
        if step == o.stepsApplied + 1, o.phase == .idle {
            let stepPlan = StepPlan(windows: n.windows, microBatch: microBatch)
            guard stepPlan.leafCount == n.leafCount, (try? o.begin(step: step, plan: stepPlan)) != nil else { owner = o; return [] }
            loss.reset(leafCount: stepPlan.leafCount)
            normSent = false
        }
        let isLast = o.owner == o.plan.owners - 1
        guard n.values.count == o.range.count + (isLast ? 1 : 0) else { owner = o; return [] }
        let receipt = n.values.withUnsafeBufferPointer { v in
            try? o.receive(step: step, block: n.block, values: .floats(UnsafeBufferPointer(rebasing: v[0..<o.range.count])))
        }
        if isLast, receipt == .accepted || receipt == .completed {
            loss.insert(block: n.block, values: [n.values[o.range.count]])
        }
        owner = o
        return reportIfReduced()
    }

    /// The NORM, once the owner's slice (and, for the last owner, the loss) is reduced.
    private mutating func reportIfReduced() -> [WorkerEffect] {
        guard !normSent, let o = owner, let part = o.partialNorm else { return [] }
        let isLast = o.owner == o.plan.owners - 1
        var lossSum: Float?
        if isLast {
            guard let l = loss.result()?.first else { return [] }
            lossSum = l
        }
        normSent = true
        return [.send(envelope(.norm(NormPart(step: UInt64(part.step), blocks: part.blocks, sumsOfSquares: part.sumsOfSquares,
                                             isFinite: part.isFinite, lossSum: lossSum, generation: generation))))]
    }

    /// The coordinator's APPLY: the update of this owner's slice, sent to every worker of the table and
    /// to the coordinator (a repeated APPLY sends the slice again).
    mutating func apply(_ a: ApplyStep) -> [WorkerEffect] {
        guard let table, a.table <= table.version else {
            parkedApply = a
            return []
        }
        guard var o = owner else { return [] }
        let step = Int(a.step)
        if o.stepsApplied < step {
            owner = nil  // as in receive: no copy of the slice's weights and optimizer state
            guard (try? o.apply(step: step, clipCoefficient: a.clipCoefficient, learningRate: a.learningRate)) != nil else { owner = o; return [] }
            owner = o
        } else if o.stepsApplied > step {
            return []
        }
        let s = ParameterSlice(version: UInt64(step), range: o.range, values: o.parameters, generation: generation)
        var gathered = s
        if a.gather { gathered.state = [o.optimizer.m, o.optimizer.v].filter { !$0.isEmpty } }
        var out: [WorkerEffect] = [.send(envelope(a.acknowledge ? .applied(AppliedStep(step: UInt64(step), range: o.range, table: a.table))
                                                                : .slice(gathered)))]
        for peer in table.peers where peer.worker != workerID && peer.shard != true { out.append(.sendPeer(peer.worker, envelope(.slice(s)))) }
        out += take(s)
        out += retryEarly()
        return out
    }

    /// The coordinator's FETCH: the slice this owner holds (the weights and optimizer state of the step
    /// it last applied), to the coordinator.
    mutating func fetch(_ f: FetchSlices) -> [WorkerEffect] {
        guard let table, f.table <= table.version, let o = owner else {
            parkedFetch = f  // its table, or this owner's seed, is on the way
            return []
        }
        let s = ParameterSlice(version: UInt64(o.stepsApplied), range: o.range, values: o.parameters,
                               state: [o.optimizer.m, o.optimizer.v].filter { !$0.isEmpty })
        return [.send(envelope(.slice(s)))]
    }

    /// Nodes that came early, tried again.
    private mutating func retryEarly() -> [WorkerEffect] {
        guard !early.isEmpty, let o = owner else { return [] }
        let waiting = early
        early = []
        var out: [WorkerEffect] = []
        for n in waiting where Int(n.step) + 1 > o.stepsApplied { out += receive(n) }
        return out
    }
}
