import RNN
import Series
import Wire

/// Which leaf runs of a step are computed twice, by two different workers, so their answers can
/// be compared bit for bit (`--audit-rate`).
///
/// The choice is a pure function of the run's seed, the step and the run's index: the same run
/// audits the same leaves whoever joins and whenever answers arrive.
///
/// ```swift
/// let plan = AuditPlan(rate: 0.05, seed: 42)
/// plan.audits(step: 7, run: 0)   // true for about 1 run in 20
/// AuditPlan(rate: 1, seed: 42).audits(step: 7, run: 0)   // always true
/// ```
public struct AuditPlan: Sendable, Equatable {
    /// The fraction of a step's leaf runs that are audited, in 0...1.
    public var rate: Double
    /// The run's seed (``TrainingConfig/seed``).
    public var seed: UInt64

    public init(rate: Double, seed: UInt64) {
        self.rate = min(1, max(0, rate))
        self.seed = seed
    }

    /// Is run number `run` (in the order of the step's first orders) of step `step` audited?
    public func audits(step: UInt64, run: Int) -> Bool {
        guard rate > 0 else { return false }
        guard rate < 1 else { return true }
        var rng = SeededRNG(seed: seed ^ 0xA0D1_7000_0000_0000 ^ (step &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(run))
        return Double(rng.next() >> 11) / Double(1 << 53) < rate
    }
}

/// Two answers for the same tree node that differ: at least one worker computed it wrong.
public struct AuditDispute: Sendable, Equatable {
    public var step: UInt64
    /// The tree node (as a run of leaves: computing it alone gives that one node).
    public var block: Range<Int>
    /// Each answering worker's digest of the node's sums (``AuditBook/digest(_:)``), the referee's too
    /// once it answered.
    public var digests: [UInt32: UInt64]
    /// A third worker asked for the node to break the tie (nil: none asked), and when.
    public var referee: UInt32?
    public var referred = 0.0
}

/// The audit of the step in flight, kept by ``StepAggregator``: the audited runs, who answers
/// them, the digest of every answer for an audited node, and the run's totals.
public struct AuditBook: Sendable {
    struct AuditedRun: Sendable {
        var run: Range<Int>
        var primary: UInt32
        var auditor: UInt32
        var issued: Double
        var attempt = 0
        var blocks: [Range<Int>]
        var matched = false
    }

    /// Nil: no audit (`--audit-rate 0`).
    public var plan: AuditPlan?
    var runs: [AuditedRun] = []
    /// Audited node → worker → digest of its answer.
    var digests: [Range<Int>: [UInt32: UInt64]] = [:]
    /// Mismatches not yet settled by the coordinator.
    public internal(set) var disputes: [AuditDispute] = []
    /// Runs whose two answers agreed, over the run.
    public internal(set) var audited = 0
    /// Nodes whose answers differed, over the run.
    public internal(set) var mismatches = 0
    /// Runs whose audit was given up (a worker of the pair was lost), over the run.
    public internal(set) var waived = 0

    public init() {}

    /// XXH64 of a node's `P + 1` sums as little-endian Float32 bytes, xor their byte count: two
    /// answers with the same digest hold the same bits (up to a 2^-64 chance).
    public static func digest(_ values: StreamingTree.Source) -> UInt64 {
        switch values {
        case .littleEndian(let bytes):
            return Wire.xxh64(bytes) ^ UInt64(bytes.count)
        case .floats(let f):
            #if _endian(big)
            var le = [UInt8]()
            le.reserveCapacity(4 * f.count)
            for v in f { let b = v.bitPattern.littleEndian; withUnsafeBytes(of: b) { le += $0 } }
            return Wire.xxh64(le) ^ UInt64(le.count)
            #else
            let raw = UnsafeRawBufferPointer(f)
            return Wire.xxh64(raw) ^ UInt64(raw.count)
            #endif
        }
    }

    /// Is every audited run of the step answered twice and without a dispute?
    public var settled: Bool { disputes.isEmpty && runs.allSatisfy(\.matched) }

    /// The audited runs' answers still missing, by worker (what the step waits for besides its
    /// missing leaves: the hang report names these workers too).
    func missingAnswers() -> [(worker: UInt32, run: Range<Int>, issued: Double)] {
        var out: [(worker: UInt32, run: Range<Int>, issued: Double)] = []
        for r in runs where !r.matched {
            for w in [r.primary, r.auditor] where !r.blocks.allSatisfy({ digests[$0]?[w] != nil }) {
                out.append((w, r.run, r.issued))
            }
        }
        return out
    }

    /// Was `worker` asked for an audited run holding `block` (as its first worker or its auditor), or
    /// for a disputed `block` as its referee?
    func involves(_ worker: UInt32, _ block: Range<Int>) -> Bool {
        runs.contains { ($0.auditor == worker || $0.primary == worker) && $0.blocks.contains(block) }
            || disputes.contains { $0.referee == worker && $0.block == block }
    }
}

extension StepAggregator {
    /// The audit copies of a step's first orders: each chosen run (``AuditPlan``) also goes to the
    /// next worker in the list (never the same one: with one worker nothing is audited).
    mutating func issueAudits(_ orders: [Order], workers: [UInt32], now: Double) -> [Order] {
        audit.runs = []
        audit.digests = [:]
        audit.disputes = []
        guard let plan = audit.plan, workers.count >= 2 else { return [] }
        var out: [Order] = []
        for (k, o) in orders.enumerated() where plan.audits(step: step, run: k) {
            guard let i = workers.firstIndex(of: o.worker) else { continue }
            let auditor = workers[(i + 1) % workers.count]
            let blocks = CanonicalTree.blocks(of: o.run, leafCount: leafCount)
            audit.runs.append(AuditBook.AuditedRun(run: o.run, primary: o.worker, auditor: auditor, issued: now, blocks: blocks))
            for b in blocks { audit.digests[b] = [:] }
            out.append(Order(worker: auditor, run: o.run, speculative: true))
        }
        return out
    }

    /// Notes the digest of an answer for an audited node (computed only for those); a second,
    /// different digest is a dispute (a referee's answer joins it).
    mutating func recordAudit(worker: UInt32, block: Range<Int>, digest: () -> UInt64) {
        guard var seen = audit.digests[block], seen[worker] == nil else { return }
        seen[worker] = digest()
        audit.digests[block] = seen
        if let k = audit.disputes.firstIndex(where: { $0.block == block }) {
            audit.disputes[k].digests = seen
        } else if Set(seen.values).count > 1 {
            audit.mismatches += 1
            audit.disputes.append(AuditDispute(step: step, block: block, digests: seen))
        }
        for i in audit.runs.indices where !audit.runs[i].matched {
            let r = audit.runs[i]
            if r.blocks.allSatisfy({ (audit.digests[$0]?.count ?? 0) >= 2 && Set(audit.digests[$0]!.values).count == 1 }) {
                audit.runs[i].matched = true
                audit.audited += 1
            }
        }
    }

    /// A worker is gone: the audits it takes part in are given up (counted as waived).
    mutating func waiveAudits(of worker: UInt32) {
        let before = audit.runs.count
        audit.runs.removeAll { !$0.matched && ($0.primary == worker || $0.auditor == worker) }
        audit.waived += before - audit.runs.count
    }

    /// An audited run still not answered twice after `timeout` (doubling per attempt) is asked
    /// again of whichever of its two workers has not answered it (a dropped order or answer).
    mutating func overdueAudits(now: Double, timeout: Double) -> [Order] {
        var out: [Order] = []
        for i in audit.runs.indices where !audit.runs[i].matched {
            let r = audit.runs[i]
            guard now - r.issued > timeout * min(Self.maxBackoff, Double(1 << min(r.attempt, 20))) else { continue }
            audit.runs[i].issued = now
            audit.runs[i].attempt += 1
            for w in [r.primary, r.auditor] where !r.blocks.allSatisfy({ audit.digests[$0]?[w] != nil }) {
                out.append(Order(worker: w, run: r.run, speculative: w == r.auditor))
            }
        }
        return out
    }

    /// Which runs are audited (nil: none, the default).
    public var auditPlan: AuditPlan? {
        get { audit.plan }
        set { audit.plan = newValue }
    }

    /// The disputes found so far this step, handed to the caller (and forgotten here).
    public mutating func takeDisputes() -> [AuditDispute] {
        defer { audit.disputes = [] }
        return audit.disputes
    }

    /// Asks `referee`, a worker that answered neither side, to compute disputed node `block` too (its
    /// digest joins the dispute: the majority of three breaks the tie).
    mutating func refer(_ block: Range<Int>, to referee: UInt32, now: Double) -> Order? {
        guard let k = audit.disputes.firstIndex(where: { $0.block == block }), audit.disputes[k].referee == nil else { return nil }
        audit.disputes[k].referee = referee
        audit.disputes[k].referred = now
        return Order(worker: referee, run: block, speculative: true)
    }
}
