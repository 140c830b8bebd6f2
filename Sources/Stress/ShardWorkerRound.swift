#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import RNN
import Training
import Transport
import Wire

/// The rounds of a sharded stress worker: ORDERs, the node sums and the reduce-scatter (the
/// owner's side is in ShardWorkerOwner.swift).
extension ShardStressWorker {
    // MARK: - orders

    /// An ORDER: a new round or attempt begins, a repeated one sends everything again, an older one
    /// is moot.
    func order(_ o: StepOrder) -> WorkerExit? {
        guard let table, o.table >= table.version, let r = Int(exactly: o.step) else { return nil }
        if let s = state {
            if s.round == r && s.attempt == o.table {
                resend()
                return nil
            }
            if r < s.round || (r == s.round && o.table < s.attempt) { return nil }
        }
        if r > lastRound {
            let t = now
            if let s = lastRoundStart, t > s {
                recentIntervals.append(t - s)
                if recentIntervals.count > 15 { recentIntervals.removeFirst() }
            }
            lastRoundStart = t
            lastRound = r
            if config.killRate > 0 && uniform(config.seed, 1, UInt64(serial), UInt64(r)) < config.killRate {
                sink.record(.kill, round: r)
                if killSelf { kill(getpid(), SIGKILL) }
                return .killed(round: r)
            }
            if config.slowRate > 0 && uniform(config.seed, 2, UInt64(serial), UInt64(r)) < config.slowRate {
                sink.record(.slow, round: r)
                let end = now + min(10, config.slowFactor * typicalRound)
                while now < end {
                    if stop.isSet { return .stopped }
                    usleep(UInt32(max(100, min(5_000, (end - now) * 1e6))))
                    if now - lastSent > heartbeat { sendHeartbeat() }
                }
            }
        }
        return begin(round: r, attempt: o.table, leaves: o.leaves, table: table)
    }

    /// Starts attempt `attempt` of round `r`: the node sums cut by the table's plan (prepared, or
    /// generated now), the other owners' cuts sent, the own ones reduced here.
    private func begin(round r: Int, attempt: UInt32, leaves: Range<Int>, table: ShardTable) -> WorkerExit? {
        let plan = ShardPlan(parameterCount: p, owners: table.owners.count)
        var nodes: [ShardNode]
        var nanos: UInt64 = 0
        if let ready = prepared, ready.round == r, ready.leaves == leaves, ready.owners == plan.owners {
            nodes = ready.nodes
            prepared = nil
        } else {
            let start = now
            // the arrays of the last preparation or attempt are written again (moved out first, so
            // that only a message still in flight holds them; then the write copies)
            var reuse = prepared?.nodes ?? []
            prepared = nil
            if reuse.isEmpty, state != nil { swap(&reuse, &state!.nodes) }
            guard let made = generate(round: r, leaves: leaves, plan: plan, reusing: &reuse) else { return .stopped }
            nodes = made
            nanos = UInt64(max(0, (now - start) * 1e9))
            sink.generated(round: r, nanos: nanos)
        }
        // the last attempt's reductions are reused; the state lets go of them first, or the first
        // insert would copy each buffer (shared with the old state)
        var oldLoss: SliceReduction?
        if let old = state {
            state = nil
            for (k, o) in old.owned.enumerated() { if let red = old.reductions[k] { spareReductions[o] = red } }
            oldLoss = old.loss
        }
        let owned = table.owners.indices.filter { table.owners[$0] == workerID }
        var reductions: [SliceReduction?] = []
        for o in owned {
            let n = plan.range(ofOwner: o).count
            guard n > 0 else {
                reductions.append(nil)
                continue
            }
            var red = spareReductions.removeValue(forKey: o) ?? SliceReduction(elements: 0..<n, leafCount: m)
            if red.elements.count != n { red = SliceReduction(elements: 0..<n, leafCount: m) }
            red.reset(leafCount: m)
            reductions.append(red)
        }
        spareReductions = [:]
        var loss: SliceReduction?
        if owned.last == plan.owners - 1 {
            loss = oldLoss ?? SliceReduction(elements: 0..<1, leafCount: m)
            oldLoss = nil
            loss?.reset(leafCount: m)
        }
        var members: [UInt32] = []
        for peer in table.peers where !members.contains(peer.worker) { members.append(peer.worker) }
        state = ShardRoundState(round: r, attempt: attempt, leaves: leaves, plan: plan, owners: table.owners, members: members,
                                owned: owned, reductions: reductions, done: Array(repeating: false, count: owned.count), loss: loss,
                                nodes: nodes, generationNanos: nanos, held: Array(repeating: false, count: plan.owners),
                                digests: Array(repeating: 0, count: plan.owners))
        // --wrong-rate: per attempt, the worker sends one of its NODEs with a wrong sum (valid checksum)
        var sends: [(Int, Int)] = []
        for k in nodes.indices {
            for o in 0..<plan.owners where table.owners[o] != workerID && !nodes[k].slices[o].isEmpty { sends.append((k, o)) }
        }
        attempts &+= 1
        var wrong: Int?
        if config.wrongRate > 0 && !sends.isEmpty && uniform(config.seed, 8, UInt64(serial), attempts) < config.wrongRate {
            wrong = min(sends.count - 1, Int(uniform(config.seed, 9, UInt64(serial), attempts) * Double(sends.count)))
        }
        // the network first (the sends are queued to the I/O thread), then the own cuts
        logger.trace("shard-phase \(serial) r\(r) begin \(monotonicMicros())")
        for (i, (k, o)) in sends.enumerated() { sendNode(k, slice: o, wrong: i == wrong) }
        logger.trace("shard-phase \(serial) r\(r) sent \(monotonicMicros())")
        for k in nodes.indices {
            for (j, o) in owned.enumerated() where !nodes[k].slices[o].isEmpty {
                nodes[k].slices[o].withUnsafeBufferPointer { takeOwn(j, block: nodes[k].block, $0) }
            }
        }
        logger.trace("shard-phase \(serial) r\(r) own \(monotonicMicros())")
        let waiting = early
        early = []
        for d in waiting { peer(d) }
        for j in owned.indices { finishIfReduced(j) }
        reportIfHeld()
        return nil
    }

    /// The node sums of `leaves` for round `r`, cut into `plan`'s slices with their checksums
    /// (arrays of `reusing` are written again where their sizes fit). Nil when stopped.
    func generate(round r: Int, leaves: Range<Int>, plan: ShardPlan, reusing old: inout [ShardNode]) -> [ShardNode]? {
        var out: [ShardNode] = []
        for (k, block) in CanonicalTree.blocks(of: leaves, leafCount: m).enumerated() {
            var slices: [[Float]] = []
            var checksums: [UInt64] = []
            for o in 0..<plan.owners {
                let range = plan.range(ofOwner: o)
                let last = o == plan.owners - 1
                guard !range.isEmpty || last else {
                    slices.append([])
                    checksums.append(0)
                    continue
                }
                let columns = range.lowerBound..<(range.upperBound + (last ? 1 : 0))
                var values: [Float] = []
                if k < old.count && o < old[k].slices.count && old[k].slices[o].count == columns.count {
                    swap(&values, &old[k].slices[o])
                } else {
                    values = [Float](repeating: 0, count: columns.count)
                }
                let finished = values.withUnsafeMutableBufferPointer { v in
                    gen.nodeSum(round: UInt64(r), block: block, columns: columns, weights: nil, matrix: matrix, into: v.baseAddress!,
                                tick: { [self] in
                                    if now - lastSent > config.liveness / 2 { sendHeartbeat() }
                                    return !stop.isSet
                                })
                }
                if !finished { return nil }
                if config.perturbRound == r && block.contains(0) && range.contains(0) { values[0] += 1 }
                checksums.append(values.withUnsafeBufferPointer { ShardDigest.slice($0) })
                slices.append(values)
            }
            out.append(ShardNode(block: block, slices: slices, checksums: checksums))
        }
        return out
    }

    /// ``StressConfig/pregenerate``: the next round's node sums for the same run and owners, then a
    /// heartbeat to say so. False when stopped.
    func prepare(_ r: Int, leaves: Range<Int>, owners: Int) -> Bool {
        let plan = ShardPlan(parameterCount: p, owners: owners)
        let start = now
        // the current round's arrays are kept (a repeated ORDER sends them again); those of a
        // preparation this one replaces are written again
        var reuse = prepared?.nodes ?? []
        prepared = nil
        guard let nodes = generate(round: r, leaves: leaves, plan: plan, reusing: &reuse) else { return false }
        let nanos = UInt64(max(0, (now - start) * 1e9))
        sink.generated(round: r, nanos: nanos)
        prepared = (r, leaves, owners, nodes, nanos)
        sendHeartbeat()
        return true
    }

    /// Sends node `k`'s cut of slice `o` to its owner (`wrong`: with a wrong value, on a copy).
    private func sendNode(_ k: Int, slice o: Int, wrong: Bool = false) {
        guard let s = state else { return }
        let node = s.nodes[k]
        var values = node.slices[o]
        var checksum = node.checksums[o]
        if wrong {
            values[0] = Float(bitPattern: values[0].bitPattern ^ (1 << UInt32(serial % 20)))
            checksum = values.withUnsafeBufferPointer { ShardDigest.slice($0) }
            sink.record(.wrong, round: s.round)
        }
        let message = Message.node(NodeSlice(step: UInt64(s.round), block: node.block, leafCount: m, samples: node.block.count,
                                             windows: m, owner: o, values: [], table: UInt16(truncatingIfNeeded: s.attempt)))
        sendPeer(s.owners[o], header: header(message, checksum: checksum), values: values, round: s.round)
    }

    /// A repeated ORDER: the nodes to the other owners, the reduced slices to every worker, the report.
    private func resend() {
        guard let s = state else { return }
        for k in s.nodes.indices {
            for o in 0..<s.plan.owners where s.owners[o] != workerID && !s.nodes[k].slices[o].isEmpty { sendNode(k, slice: o) }
        }
        for j in s.owned.indices where s.done[j] { sendSlice(j) }
        if s.reported { report() }
    }
}
