import RNN
import Series

/// One order to a worker: compute the leaves `run` of the step.
public struct Order: Sendable, Equatable {
    public var worker: UInt32
    public var run: Range<Int>
    public var speculative: Bool
}

/// What became of an answer.
public enum Verdict: Sendable, Equatable {
    /// Inserted into the tree.
    case accepted
    /// For leaves already covered, or an earlier step: ignored and counted.
    case lateOrDuplicate
    /// Inconsistent with what was asked: dropped (the reason says why).
    case invalid(String)
}

/// The aggregation of one step's micro-batch sums, whoever computes them and however late.
///
/// It hands out contiguous runs of leaves, accepts the sums of the tree nodes of those runs, and makes
/// sure every leaf stays asked for: the leaves of a lost worker go to the survivors, an order with no
/// answer after a while is given again (a dropped or corrupted message), and idle workers get copies of
/// a straggler's leaves. The first answer for a leaf wins; since the tree fixes the order of the sums,
/// the result is the same bits whichever copy arrives first.
public struct StepAggregator: Sendable {
    struct Assignment: Sendable {
        var run: Range<Int>
        var issued: Double
        var speculative: Bool
        /// Given again this many times before (0: a first order); its retry waits
        /// `timeout × 2^attempt` (capped), so a slow step costs a few copies, not a flood.
        var attempt = 0
        /// A retry of this order went out: its answer is still accepted, but it is never given again.
        var superseded = false
    }

    /// Retries wait at most `timeout` × this.
    public static let maxBackoff = 64.0

    /// Values per leaf (the gradient and the loss sum: `P + 1`).
    public let width: Int
    public private(set) var step: UInt64 = 0
    public private(set) var leafCount = 0
    public private(set) var windows = 0
    public private(set) var microBatch = 1
    /// The step in flight, cut into leaves.
    public private(set) var plan = StepPlan(windows: 0, microBatch: 1)
    public private(set) var active = false
    public private(set) var started = 0.0
    /// When the first worker delivered all its leaves this step (for the straggler rule).
    public private(set) var firstDone: Double?
    private var tree: StreamingTree
    private var assignments: [UInt32: [Assignment]] = [:]
    /// Leaves already given out speculatively this step (each at most once).
    private var speculated = Set<Int>()

    public private(set) var lateOrDuplicate = 0
    public private(set) var reassigned = 0
    public private(set) var retried = 0
    public private(set) var speculative = 0
    /// The audit of the step in flight and its totals (``AuditPlan``).
    public internal(set) var audit = AuditBook()

    public init(width: Int) {
        self.width = width
        tree = StreamingTree(leafCount: 1, width: width)
    }

    /// Starts a step: `windows` windows in micro-batches of `microBatch`, shared among `workers`
    /// (contiguous, balanced runs in the given order).
    public mutating func begin(step: UInt64, windows: Int, microBatch: Int, workers: [UInt32], now: Double) -> [Order] {
        precondition(windows >= 1 && microBatch >= 1)
        self.step = step
        self.windows = windows
        self.microBatch = microBatch
        plan = StepPlan(windows: windows, microBatch: microBatch)
        leafCount = plan.leafCount
        tree.reset(leafCount: leafCount)
        assignments = [:]
        speculated = []
        active = true
        started = now
        firstDone = nil
        guard !workers.isEmpty else { return [] }
        var orders: [Order] = []
        for (w, run) in zip(workers, shard(items: leafCount, workers: workers.count)) where !run.isEmpty {
            orders.append(issue(run, to: w, now: now, speculative: false))
        }
        return orders + issueAudits(orders, workers: workers, now: now)
    }

    /// Windows in a tree node.
    public func samples(in block: Range<Int>) -> Int { plan.samples(in: block) }

    public var isComplete: Bool { active && tree.isComplete && audit.settled }
    public var missingLeaves: [Int] { tree.missingLeaves }

    /// Does this worker have an order without an answer?
    public func isBusy(_ worker: UInt32) -> Bool { !(assignments[worker] ?? []).isEmpty }

    /// An answer from `worker`: the sums of tree node `block` of step `step`.
    public mutating func accept(
        worker: UInt32, step s: UInt64, block: Range<Int>, leafCount m: Int, samples: Int,
        sums: UnsafeBufferPointer<Float>, now: Double
    ) -> Verdict {
        accept(worker: worker, step: s, block: block, leafCount: m, samples: samples, values: .floats(sums), now: now)
    }

    /// An answer whose `P + 1` sums are still the little-endian bytes of the received frame: they
    /// are reduced straight from there (no intermediate array).
    public mutating func accept(
        worker: UInt32, step s: UInt64, block: Range<Int>, leafCount m: Int, samples: Int,
        littleEndian bytes: UnsafeRawBufferPointer, now: Double
    ) -> Verdict {
        guard bytes.count % 4 == 0 else { return .invalid("\(bytes.count) bytes is not a whole number of floats") }
        return accept(worker: worker, step: s, block: block, leafCount: m, samples: samples, values: .littleEndian(bytes), now: now)
    }

    private mutating func accept(
        worker: UInt32, step s: UInt64, block: Range<Int>, leafCount m: Int, samples: Int,
        values: StreamingTree.Source, now: Double
    ) -> Verdict {
        let sums = values
        guard active, s == step else {
            if s < step || !active { lateOrDuplicate += 1; return .lateOrDuplicate }
            return .invalid("an answer for step \(s) while step \(step) runs")
        }
        guard m == leafCount else { return .invalid("an answer for \(m) leaves; step \(step) has \(leafCount)") }
        guard sums.count == width else { return .invalid("\(sums.count) values; expected \(width)") }
        let mine = assignments[worker] ?? []
        guard mine.contains(where: { CanonicalTree.blocks(of: $0.run, leafCount: leafCount).contains(block) }) || audit.involves(worker, block) else {
            if tree.overlapsInserted(block) { lateOrDuplicate += 1; return .lateOrDuplicate }
            return .invalid("leaves \(block) were not asked of worker \(worker)")
        }
        guard samples == self.samples(in: block) else {
            return .invalid("leaves \(block) hold \(self.samples(in: block)) windows, the answer says \(samples)")
        }
        recordAudit(worker: worker, block: block) { AuditBook.digest(values) }
        guard tree.insert(block: block, values: values) else {
            if !audit.involves(worker, block) { lateOrDuplicate += 1 }
            settle()
            return .lateOrDuplicate
        }
        settle()
        if firstDone == nil && !isBusy(worker) { firstDone = now }
        return .accepted
    }

    /// The digest of an answer whose sums went elsewhere (sharded aggregation: to the slices' owners):
    /// checked as ``accept(worker:step:block:leafCount:samples:sums:now:)`` checks an answer, then
    /// recorded for the audit. Nothing enters the tree; `.accepted` says the digest was taken.
    public mutating func acceptDigest(worker: UInt32, step s: UInt64, block: Range<Int>, leafCount m: Int, digest: UInt64) -> Verdict {
        guard active, s == step else {
            if s < step || !active { lateOrDuplicate += 1; return .lateOrDuplicate }
            return .invalid("a digest for step \(s) while step \(step) runs")
        }
        guard m == leafCount else { return .invalid("a digest for \(m) leaves; step \(step) has \(leafCount)") }
        let mine = assignments[worker] ?? []
        guard mine.contains(where: { CanonicalTree.blocks(of: $0.run, leafCount: leafCount).contains(block) }) || audit.involves(worker, block) else {
            return .invalid("leaves \(block) were not asked of worker \(worker)")
        }
        recordAudit(worker: worker, block: block) { digest }
        return .accepted
    }

    /// Forgets orders whose leaves are all in.
    private mutating func settle() {
        if tree.isComplete {
            assignments = [:]
            return
        }
        let missing = Set(tree.missingLeaves)
        for (w, list) in assignments {
            let open = list.filter { a in a.run.contains { missing.contains($0) } }
            assignments[w] = open.isEmpty ? nil : open
        }
    }

    /// A worker is gone: its unanswered leaves go to `live` workers.
    public mutating func lost(_ worker: UInt32, live: [UInt32], now: Double) -> [Order] {
        waiveAudits(of: worker)
        guard active, let list = assignments.removeValue(forKey: worker) else { return [] }
        let pieces = missingPieces(of: list.map(\.run))
        let orders = distribute(pieces, among: live.filter { $0 != worker }, now: now, speculative: false)
        reassigned += orders.count
        return orders
    }

    /// Orders unanswered for longer than `timeout` are given again (their answer was dropped or
    /// corrupted), preferably to another live worker.
    ///
    /// Missing leaves that no order covers at all (their worker was lost when nobody else was alive)
    /// are given out at once.
    public mutating func overdue(now: Double, timeout: Double, live: [UInt32]) -> [Order] {
        guard active, !live.isEmpty else { return [] }
        let auditsAgain = overdueAudits(now: now, timeout: timeout)
        var orphans = Set(tree.missingLeaves)
        for list in assignments.values { for a in list { for leaf in a.run { orphans.remove(leaf) } } }
        var adopted: [Order] = []
        if !orphans.isEmpty {
            adopted = distribute(contiguous(Array(orphans)), among: live, now: now, speculative: false)
            reassigned += adopted.count
        }
        // Each order is given again at most once; the copy waits twice as long before it is given
        // again in turn. Outstanding copies of a leaf thus grow by one per doubling of the step's
        // time (a legitimately slow step costs a handful of copies, never a doubling flood).
        var stale: [(UInt32, Range<Int>, Int)] = []
        for (w, list) in assignments {
            for (i, a) in list.enumerated() where !a.superseded && now - a.issued > timeout * min(Self.maxBackoff, Double(1 << min(a.attempt, 20))) {
                stale.append((w, a.run, a.attempt))
                assignments[w]?[i].superseded = true
            }
        }
        guard !stale.isEmpty else { return adopted + auditsAgain }
        var orders: [Order] = []
        for (k, (w, run, attempt)) in stale.sorted(by: { ($0.1.lowerBound, $0.0) < ($1.1.lowerBound, $1.0) }).enumerated() {
            let others = live.filter { $0 != w }
            let target = others.isEmpty ? w : others[k % others.count]
            for piece in missingPieces(of: [run]) {
                orders.append(issue(piece, to: target, now: now, speculative: target != w, attempt: attempt + 1))
            }
        }
        retried += orders.count
        return adopted + orders + auditsAgain
    }

    /// Straggler rule: once some worker has finished and the step has waited `factor` times as long as
    /// that took (at least `floor` seconds), idle workers get copies of the leaves still missing.
    public mutating func speculate(idle: [UInt32], now: Double, factor: Double = 3, floor: Double = 0.02) -> [Order] {
        // at --audit-rate 1 every run is already computed twice, and a copy would not be audited
        guard active, !idle.isEmpty, let first = firstDone, (audit.plan?.rate ?? 0) < 1 else { return [] }
        guard now - started > max(floor, factor * (first - started)) else { return [] }
        let missing = tree.missingLeaves.filter { !speculated.contains($0) }
        guard !missing.isEmpty else { return [] }
        let pieces = contiguous(missing)
        for p in pieces { for leaf in p { speculated.insert(leaf) } }
        let orders = distribute(pieces, among: idle, now: now, speculative: true)
        speculative += orders.count
        return orders
    }

    /// Drops the step in flight (its late answers are then counted as late).
    public mutating func abandon() {
        active = false
        assignments = [:]
    }

    /// The step's canonical sum (gradient sum then loss sum), once every leaf is in; a copy.
    /// See ``finish(_:)`` for the same without the copy.
    public mutating func reduce() -> [Float]? {
        guard isComplete, let root = tree.root() else { return nil }
        active = false
        assignments = [:]
        return root
    }

    /// Calls `body` with a complete step's canonical sum (in place) without ending the step; nil
    /// before every leaf is in.
    public func withRoot<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R? {
        guard isComplete else { return nil }
        return tree.withRoot(body)
    }

    /// Ends a complete step: calls `body` with its canonical sum (gradient sum then loss sum, in
    /// place: the tree was summed while the answers arrived). Nil (and nothing ends) before every
    /// leaf is in.
    public mutating func finish<R, E: Error>(_ body: (UnsafeBufferPointer<Float>) throws(E) -> R) throws(E) -> R? {
        guard isComplete else { return nil }
        active = false
        assignments = [:]
        return try tree.withRoot(body)
    }

    /// Per worker, the leaves it was asked for that are still missing (for the hang report).
    /// An audited run's answer still missing counts too: the step waits for both answers.
    public var pending: [PendingWork] {
        guard active else { return [] }
        var byWorker: [UInt32: PendingWork] = [:]
        for (w, list) in assignments {
            let open = missingPieces(of: list.map(\.run))
            guard !open.isEmpty else { continue }
            byWorker[w] = PendingWork(worker: w, leaves: open, since: list.map(\.issued).min() ?? started)
        }
        for a in audit.missingAnswers() {
            var p = byWorker[a.worker] ?? PendingWork(worker: a.worker, leaves: [], since: a.issued)
            if !p.leaves.contains(a.run) { p.leaves.append(a.run) }
            p.since = min(p.since, a.issued)
            byWorker[a.worker] = p
        }
        return byWorker.values.sorted { $0.worker < $1.worker }
    }

    // MARK: - helpers

    private mutating func issue(_ run: Range<Int>, to worker: UInt32, now: Double, speculative: Bool, attempt: Int = 0) -> Order {
        assignments[worker, default: []].append(Assignment(run: run, issued: now, speculative: speculative, attempt: attempt))
        return Order(worker: worker, run: run, speculative: speculative)
    }

    private mutating func distribute(_ pieces: [Range<Int>], among workers: [UInt32], now: Double, speculative: Bool) -> [Order] {
        guard !workers.isEmpty else { return [] }
        var orders: [Order] = []
        // split the pieces further so that every worker gets a share
        var parts: [Range<Int>] = []
        let total = pieces.reduce(0) { $0 + $1.count }
        let per = max(1, (total + workers.count - 1) / workers.count)
        for p in pieces {
            var lo = p.lowerBound
            while lo < p.upperBound {
                let hi = min(lo + per, p.upperBound)
                parts.append(lo..<hi)
                lo = hi
            }
        }
        for (k, part) in parts.enumerated() {
            orders.append(issue(part, to: workers[k % workers.count], now: now, speculative: speculative))
        }
        return orders
    }

    private func missingPieces(of runs: [Range<Int>]) -> [Range<Int>] {
        let missing = Set(tree.missingLeaves)
        var out: [Range<Int>] = []
        for run in runs { out += contiguous(run.filter { missing.contains($0) }) }
        return out
    }

    private func contiguous(_ leaves: [Int]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var lo: Int? = nil, prev = -2
        for leaf in leaves.sorted() {
            if let l = lo, leaf != prev + 1 { out.append(l..<(prev + 1)); lo = leaf } else if lo == nil { lo = leaf }
            prev = leaf
        }
        if let l = lo { out.append(l..<(prev + 1)) }
        return out
    }
}
