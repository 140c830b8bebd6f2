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

/// The owner's side of a sharded stress worker: NODEs reduced into its slices, SLICEs sent and
/// received (the all-gather), the report; and the encoding of what it sends.
extension ShardStressWorker {
    // MARK: - the owner

    /// The worker's own cut of owned slice `j` (of `owned`) of one of its nodes.
    ///
    /// The state is changed in place (`state!…`): a copy of it would share the reductions' buffers,
    /// and the insert would then copy a whole slice's buffer.
    func takeOwn(_ j: Int, block: Range<Int>, _ values: UnsafeBufferPointer<Float>) {
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
    func finishIfReduced(_ j: Int) {
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
    func sendSlice(_ j: Int) {
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
    func reportIfHeld() {
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
    func report() {
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
