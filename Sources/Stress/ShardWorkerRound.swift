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

/// The rounds of a sharded stress worker: ORDERs, the reduce-scatter and the all-gather.
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

    // MARK: - the owner

    /// The worker's own cut of owned slice `j` (of `owned`) of one of its nodes.
    ///
    /// The state is changed in place (`state!…`): a copy of it would share the reductions' buffers,
    /// and the insert would then copy a whole slice's buffer.
    private func takeOwn(_ j: Int, block: Range<Int>, _ values: UnsafeBufferPointer<Float>) {
        guard state != nil else { return }
        let n = state!.reductions[j]?.elements.count ?? 0
        var taken = true
        if n > 0 { taken = state!.reductions[j]?.insert(block: block, values: .floats(UnsafeBufferPointer(rebasing: values[0..<n]))) ?? false }
        if taken, state!.owned[j] == state!.plan.owners - 1, values.count == n + 1 {
            state!.loss?.insert(block: block, values: .floats(UnsafeBufferPointer(rebasing: values[n..<(n + 1)])))
        }
    }

    /// Reads what the other workers sent.
    func drainPeers(_ router: RouterEndpoint) {
        for _ in 0..<10_000 {
            guard let d = router.next() else { return }
            peerBytesIn += d.bytes
            peer(d)
        }
    }

    /// A NODE for this owner or a SLICE of another owner, read in place; one of a later round or
    /// attempt is kept for then.
    func peer(_ d: Delivery) {
        d.openPayload(limits: limits) { checked, payload in
            let v: Wire.Validated
            switch checked {
            case .success(let valid): v = valid
            case .failure(let error):
                peerInvalid += 1
                if error == .checksumMismatch { peerChecksum += 1 }
                logger.debug("worker serial \(serial): dropped a peer frame: \(error)")
                return
            }
            let h = v.header
            guard h.runID == runID else { return }
            let round: UInt64, attempt: UInt32
            switch h.type {
            case .node:
                round = h.step
                attempt = UInt32((h.aux >> 16) & 0xFFFF)
            case .slice:
                round = h.step & 0xFFFF_FFFF
                attempt = UInt32(h.step >> 32)
            default:
                return
            }
            // (no copy of the state is held while node() and slice() change it in place)
            guard let currentRound = state?.round, let currentAttempt = state?.attempt else {
                keepEarly(d)
                return
            }
            let current = h.type == .node ? currentAttempt & 0xFFFF : currentAttempt
            if round > UInt64(currentRound) || (round == UInt64(currentRound) && attempt != current && isNewer(attempt, than: current, wide: h.type == .slice)) {
                keepEarly(d)
                return
            }
            guard round == UInt64(currentRound) && attempt == current else { return }
            if h.type == .node { node(h, payload) } else { slice(h, payload) }
        }
    }

    private func isNewer(_ a: UInt32, than b: UInt32, wide: Bool) -> Bool {
        wide ? a > b : Int16(bitPattern: UInt16(truncatingIfNeeded: a &- b)) > 0
    }

    private func keepEarly(_ d: Delivery) {
        if early.count < Self.maxEarly { early.append(d) }
    }

    /// A NODE of the current attempt: its cut into the owned slice's reduction, straight from the frame.
    private func node(_ h: Header, _ payload: UnsafeRawBufferPointer) {
        guard state != nil, Int(h.leafCount) == m, let j = state!.owned.firstIndex(of: Int(h.aux & 0xFFFF)) else { return }
        let n = state!.reductions[j]?.elements.count ?? 0
        let isLast = state!.owned[j] == state!.plan.owners - 1
        guard payload.count == 4 * (n + (isLast ? 1 : 0)) else { return }
        let block = Int(h.rangeLower)..<Int(h.rangeUpper)
        var taken = true
        if n > 0 {
            taken = state!.reductions[j]?.insert(block: block, values: .littleEndian(UnsafeRawBufferPointer(rebasing: payload[0..<(4 * n)]))) ?? false
        }
        if taken, isLast {
            state!.loss?.insert(block: block, values: .littleEndian(UnsafeRawBufferPointer(rebasing: payload[(4 * n)..<(4 * n + 4)])))
        }
        finishIfReduced(j)
        reportIfHeld()
    }

    /// Once owned slice `j` (and, for the last slice, the loss) is reduced: into the whole vector
    /// and to every other worker.
    private func finishIfReduced(_ j: Int) {
        guard let s = state, !s.done[j] else { return }
        let o = s.owned[j]
        if let r = s.reductions[j], !r.isComplete { return }
        if o == s.plan.owners - 1 {
            guard let l = s.loss, l.isComplete else { return }
            state!.lossSum = l.withResult { $0[0] }
        }
        state!.done[j] = true
        if let reduction = s.reductions[j] {
            let range = s.plan.range(ofOwner: o)
            var out = sliceOut.removeValue(forKey: o) ?? []
            if out.count != range.count { out = [Float](repeating: 0, count: range.count) }
            out.withUnsafeMutableBufferPointer { dst in
                _ = reduction.withResult { sums in _ = dst.update(fromContentsOf: sums) }
            }
            full.withUnsafeMutableBufferPointer { f in
                out.withUnsafeBufferPointer { src in
                    _ = UnsafeMutableBufferPointer(rebasing: f[range]).update(fromContentsOf: src)
                }
            }
            state!.digests[o] = ShardDigest.slice(out[...])
            state!.held[o] = true
            sliceOut[o] = out
        }
        sendSlice(j)
        logger.trace("shard-phase \(serial) r\(s.round) slice\(o) \(monotonicMicros())")
    }

    /// Owned slice `j`'s reduced sums to every other worker of the table (SLICE, version =
    /// attempt << 32 | round).
    private func sendSlice(_ j: Int) {
        guard let s = state, s.reductions[j] != nil, let values = sliceOut[s.owned[j]] else { return }
        let o = s.owned[j]
        let version = UInt64(s.attempt) << 32 | UInt64(s.round)
        let h = header(.slice(ParameterSlice(version: version, range: s.plan.range(ofOwner: o), values: [])), checksum: s.digests[o])
        for id in s.members where id != workerID { sendPeer(id, header: h, values: values, round: s.round) }
    }

    /// Another owner's SLICE of the current attempt: into the whole vector (its digest is the
    /// frame's verified checksum).
    private func slice(_ h: Header, _ payload: UnsafeRawBufferPointer) {
        guard let s = state, h.rangeLower < h.rangeUpper, Int(h.rangeUpper) <= p else { return }
        let range = Int(h.rangeLower)..<Int(h.rangeUpper)
        let o = s.plan.owner(ofElement: range.lowerBound)
        guard s.plan.range(ofOwner: o) == range, !s.held[o], payload.count == 4 * range.count else { return }
        let ok = full.withUnsafeMutableBufferPointer { f in
            (try? Wire.readFloats(payload, offset: 0, count: range.count, into: UnsafeMutableBufferPointer(rebasing: f[range]))) != nil
        }
        guard ok else { return }
        state!.held[o] = true
        state!.digests[o] = h.checksum
        reportIfHeld()
    }

    /// Once every slice is held and every owned one sent: the report, and
    /// (``StressConfig/pregenerate``) the next round's sums.
    private func reportIfHeld() {
        guard let s = state, !s.reported, s.done.allSatisfy({ $0 }) else { return }
        let holders = ShardDigest.holders(s.plan)
        guard holders.allSatisfy({ s.held[$0] }) else { return }
        state!.reported = true
        logger.trace("shard-phase \(serial) r\(s.round) held \(monotonicMicros())")
        report()
        // the next round's sums once the coordinator says this one is over (a heartbeat): generated
        // now, they would take the CPU from workers still in the round
        if config.pregenerate && s.round < config.rounds { prepareAfterRound = (s.round + 1, s.leaves, s.plan.owners) }
    }

    /// Sends the report of the current attempt (with the peer bytes since the last report).
    private func report() {
        guard let s = state else { return }
        let digest = ShardDigest.whole(ShardDigest.holders(s.plan).map { s.digests[$0] })
        let mine = s.owned.filter { !s.plan.range(ofOwner: $0).isEmpty }.map { s.digests[$0] }
        let r = ShardReport(round: s.round, attempt: s.attempt, digest: digest, sliceDigest: mine.isEmpty ? nil : ShardDigest.whole(mine), loss: s.lossSum,
                            peerBytesIn: peerBytesIn, peerBytesOut: peerBytesOut, generationNanos: s.generationNanos)
        var out = r
        out.invalidFrames = peerInvalid
        out.checksumMismatches = peerChecksum
        peerBytesIn = 0
        peerBytesOut = 0
        peerInvalid = 0
        peerChecksum = 0
        sendToCoordinator(.norm(out.norm))
    }

    // MARK: - encoding

    func sendToCoordinator(_ message: Message) {
        guard let coordinator else { return }
        if coordinator.send(Envelope(runID: runID, workerID: workerID, message: message)).bytes != nil { lastSent = now }
    }

    /// The header frame of `message` (encoded with no values) with `checksum`, that of the values
    /// sent behind it: the codec's header, the payload sent straight from its array.
    func header(_ message: Message, checksum: UInt64) -> [UInt8] {
        let frames = Wire.encode(Envelope(runID: runID, workerID: workerID, message: message))
        guard var h = try? Header.decode(frames[0]) else { return frames[0] }
        h.checksum = checksum
        return h.encode()
    }
}

/// CLOCK_MONOTONIC in µs (the same clock in every process of the machine): trace lines of the
/// sharded workers' phases line up across processes.
func monotonicMicros() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int(ts.tv_sec) * 1_000_000 + Int(ts.tv_nsec) / 1_000
}
