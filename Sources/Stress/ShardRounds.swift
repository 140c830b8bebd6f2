import Logging
import RNN
import Training
import Transport
import Wire
import Support

/// The coordinator's side of a sharded stress run (``StressAggregation/sharded``).
struct ShardCoordination {
    /// Grows with every attempt of a round (the ORDERs' table version; a TABLE is sent when the
    /// members change).
    var attempt: UInt32 = 0
    /// The workers of the current table, in id order.
    var members: [UInt32] = []
    /// The worker of each slice (round-robin over the members).
    var owners: [UInt32] = []
    /// Version of the last TABLE sent.
    var tableVersion: UInt32?
    /// The current attempt's reports.
    var reports: [UInt32: ShardReport] = [:]
    /// A member of the current table was lost: the attempt is moot.
    var memberLost = false
    /// When the last report of the current attempt arrived.
    var completedAt: Double?
    /// Expected digests of a round under a plan: the slices' (by owner) and the whole vector's.
    var expected: (round: Int, owners: Int, slices: [UInt64], whole: UInt64)?
    /// Attempts beyond each round's first (a member lost, or a wrong digest with `--wrong-rate`).
    var redone = 0
    /// Tables sent.
    var tables = 0
    /// ORDERs repeated because the attempt had not completed in time.
    var repeated = 0
    /// Members lost that owned a non-empty slice.
    var ownersLost = 0
    /// Reports of an earlier attempt or round.
    var staleReports = 0
    /// The round in progress.
    var currentRound = 0
    /// Attempts whose digests were wrong and that were computed again (`--wrong-rate`).
    var wrongDetected = 0
}

extension StressRun {
    /// Runs round `r` sharded until every member of an attempt reported the exact vector: returns
    /// the outcome and when the last report arrived, or nil when stopped or the checker stopped.
    func shardedRound(_ r: Int, begun: Double, stop: StopFlag) -> (Outcome, Double)? {
        var lastOrders = begun
        var attempts = 0
        newAttempt(r)
        while true {
            if stop.isSet { return nil }
            service(wait: .milliseconds(2))
            if shard.memberLost || (shard.members.isEmpty && !liveIDs.isEmpty) {
                shard.memberLost = false
                shard.redone += 1
                newAttempt(r)
                lastOrders = now
                continue
            }
            if !shard.members.isEmpty, let end = shard.completedAt {
                attempts += 1
                guard let wrong = checkShard(round: r) else { return nil }
                guard let detail = wrong else {
                    roundOver()
                    return (.exact, end)
                }
                if config.wrongRate > 0 && attempts < 256 {
                    shard.wrongDetected += 1
                    shard.redone += 1
                    logger.debug("round \(r): \(detail); computed again")
                    newAttempt(r)
                    lastOrders = now
                    continue
                }
                logger.error("wrong aggregate in \(detail)")
                if wrongDetails.count < 10 { wrongDetails.append(detail) }
                roundOver()
                return (.wrong, end)
            }
            if now - lastOrders > repeatAfter {
                shard.repeated += 1
                sendOrders(round: r)
                lastOrders = now
            }
            if now - begun > config.roundTimeout {
                let missing = shard.members.filter { shard.reports[$0] == nil }.map { "#\($0)" }
                logger.error("round \(r) lost: no report from \(missing.joined(separator: ", ")) after \(config.roundTimeout) s")
                return (.lost, now)
            }
        }
    }

    /// With ``StressConfig/pregenerate``: tells the members that the round is over (a heartbeat),
    /// so that they generate the next one's sums now, outside every round.
    func roundOver() {
        guard config.pregenerate else { return }
        for id in shard.members { sendControl(.heartbeat, to: id) }
    }

    /// Seconds after which an attempt's ORDERs are sent again: `--retry-after`, at least 3 typical
    /// rounds; when no message can be lost by an injected fault (no drops, no corruption), at least
    /// 2 s and 10 typical rounds too, so that a slow first round (its generation inside, connections
    /// being made) on a busy machine does not make every worker send everything again.
    var repeatAfter: Double {
        let base = max(config.retryAfter, 3 * typicalRound)
        return config.dropRate > 0 || config.corruptRate > 0 ? base : max(base, 2, 10 * typicalRound)
    }

    /// A new attempt of round `r` by the live workers: a TABLE if they changed, then the ORDERs.
    func newAttempt(_ r: Int) {
        let live = Array(liveIDs.filter { peers[$0]?.peerEndpoint != nil }.prefix(m))
        shard.attempt &+= 1
        shard.currentRound = r
        shard.memberLost = false
        shard.reports = [:]
        shard.completedAt = nil
        if live != shard.members || shard.tableVersion == nil {
            shard.members = live
            shard.tableVersion = shard.attempt
            shard.tables += 1
            let slices = live.isEmpty ? 0 : live.count * config.slicesPerWorker(workers: live.count)
            shard.owners = (0..<slices).map { live[$0 % live.count] }
            let table = ShardTable(version: shard.attempt, parameterCount: p, owners: shard.owners,
                                   peers: live.map { ShardTable.Peer(worker: $0, endpoint: peers[$0]?.peerEndpoint ?? "") })
            for id in live { sendControl(.table(table), to: id) }
        }
        logger.trace("round \(r): attempt \(shard.attempt) by \(live.count) worker(s)")
        sendOrders(round: r)
    }

    /// The current attempt's ORDERs: member `k` of `n` computes leaves `⌊k·M/n⌋ ..< ⌊(k+1)·M/n⌋`.
    func sendOrders(round r: Int) {
        let n = shard.members.count
        for (k, id) in shard.members.enumerated() {
            let order = StepOrder(step: UInt64(r), leaves: (k * m / n)..<((k + 1) * m / n), leafCount: m, windows: windows,
                                  table: shard.attempt)
            sendControl(.order(order), to: id)
        }
        while let id = unreachable.popFirst() {
            if peers[id]?.live == true {
                disconnected += 1
                declareLost(id, because: "its connection is gone (EHOSTUNREACH)")
            }
        }
    }

    /// Sends a small message to worker `id`, counting its bytes.
    func sendControl(_ message: Message, to id: UInt32) {
        guard let peer = peers[id] else { return }
        let outcome = router.send(Envelope(runID: runID, workerID: id, message: message), to: peer.identity)
        if let b = outcome.bytes {
            bytesSent += b
            measure.sent(b, to: id)
        } else {
            sendFailures += 1
            if case .unreachable = outcome { unreachable.insert(id) }
        }
    }

    /// A worker's report (a NORM, ``ShardReport``).
    func shardReport(from id: UInt32, _ n: NormPart) {
        guard let report = ShardReport(n) else {
            invalidAnswers += 1
            warn("report", "a NORM from worker #\(id) that is no stress report")
            return
        }
        // the bytes of every report count: each covers the peer traffic since the worker's previous one
        if measure.counting {
            measure.peers[id, default: (0, 0)].in += report.peerBytesIn
            measure.peers[id, default: (0, 0)].out += report.peerBytesOut
        }
        invalidFrames += report.invalidFrames
        checksumMismatches += report.checksumMismatches
        measure.ready.remove(id)
        guard report.round == shard.currentRound, report.attempt == shard.attempt, shard.members.contains(id) else {
            shard.staleReports += 1
            return
        }
        guard shard.reports[id] == nil else { return }
        shard.reports[id] = report
        measure.roundCompute = max(measure.roundCompute, report.generationNanos)
        if shard.members.allSatisfy({ shard.reports[$0] != nil }) { shard.completedAt = now }
    }

    /// A member was lost: the attempt is moot when it belonged to it.
    func shardMemberLost(_ id: UInt32) {
        guard shard.members.contains(id) else { return }
        let plan = ShardPlan(parameterCount: p, owners: max(1, shard.owners.count))
        if shard.owners.indices.contains(where: { shard.owners[$0] == id && !plan.range(ofOwner: $0).isEmpty }) { shard.ownersLost += 1 }
        shard.memberLost = true
    }

    /// Checks the current attempt's reports against the expectation: nil when the checker was
    /// stopped, `.some(nil)` when exact, else what is wrong.
    func checkShard(round r: Int) -> String?? {
        let plan = ShardPlan(parameterCount: p, owners: shard.owners.count)
        if shard.expected.map({ $0.round != r || $0.owners != plan.owners }) ?? true {
            let made: (slices: [UInt64], whole: UInt64)? = checker.withExpected(r) { e in
                let slices = (0..<plan.owners).map { o in ShardDigest.slice(UnsafeBufferPointer(rebasing: e[plan.range(ofOwner: o)])) }
                return (slices, ShardDigest.whole(ShardDigest.holders(plan).map { slices[$0] }))
            }
            guard let made else { return nil }
            shard.expected = (r, plan.owners, made.slices, made.whole)
        }
        guard let expected = shard.expected else { return nil }
        var loss: Float = 0
        _ = gen.nodeSum(round: UInt64(r), block: 0..<m, columns: p..<(p + 1), weights: nil, matrix: lossMatrix, into: &loss)
        func hex(_ x: UInt64) -> String { String(x, radix: 16) }
        for id in shard.members {
            guard let report = shard.reports[id] else { return .some("round \(r): no report from worker #\(id)") }
            if report.digest != expected.whole {
                return .some("round \(r): worker #\(id) holds a vector of digest \(hex(report.digest)), expected \(hex(expected.whole))")
            }
            let mine = shard.owners.indices.filter { shard.owners[$0] == id && !plan.range(ofOwner: $0).isEmpty }
            let want = mine.isEmpty ? nil : ShardDigest.whole(mine.map { expected.slices[$0] })
            if report.sliceDigest != want {
                return .some("round \(r): worker #\(id) reduced its slices \(mine) to digest \(report.sliceDigest.map(hex) ?? "none"), expected \(want.map(hex) ?? "none")")
            }
            if shard.owners.last == id && report.loss?.bitPattern != loss.bitPattern {
                return .some("round \(r): the loss sum is \(report.loss.map { "\($0)" } ?? "missing"), expected \(loss) (0x\(String(loss.bitPattern, radix: 16)))")
            }
        }
        return .some(nil)
    }
}
