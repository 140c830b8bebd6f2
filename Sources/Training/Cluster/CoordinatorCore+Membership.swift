import Wire

/// Messages in, the handshake (HELLO, WELCOME, READY, refusals) and liveness (heard-from times,
/// dead workers, heartbeats, the join deadline).
extension CoordinatorCore {
    /// A frame from `peer` that did not decode: dropped and counted.
    func rejectFrame(from peer: PeerID, error: WireError) -> [CoordinatorEffect] {
        droppedFrames += 1
        notes.append(.frameDropped(reason: dropReasonLabel(error)))
        if case .unsupportedVersion(let v) = error {
            let reason = "worker speaks protocol version \(v); this coordinator speaks \(Wire.protocolVersion). Run the same ztrain version on both."
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        }
        emit(.dropped(peer: peer, reason: error.description))
        return []
    }

    /// A decoded message from `peer`.
    func message(_ env: Envelope, from peer: PeerID, bytes: Int, now: Double) -> [CoordinatorEffect] {
        noteHeard(peer, bytes: bytes, now: now)
        var out: [CoordinatorEffect] = []
        switch env.message {
        case .hello(let hello):
            out += welcome(peer: peer, hello: hello, now: now)
        case .ready(let ready):
            guard var w = workers[peer], w.phase == .welcomed, env.runID == runID, env.workerID == w.id else {
                return drop(peer, "READY from an unknown or not-welcomed worker")
            }
            w.phase = .ready
            w.threads = ready.threads
            w.fingerprintMatches = ready.numericsFingerprint == fingerprint
            workers[peer] = w
            emit(.joined(w))
            if ready.numericsFingerprint != fingerprint { emit(.fingerprintMismatch(w)) }
        case .gradient(let g):
            out += g.sums.withUnsafeBufferPointer { sums in
                gradient(GradientInfo(g, runID: env.runID, workerID: env.workerID), values: .floats(sums), peer: peer, now: now)
            }
        case .heartbeat:
            guard workers[peer] != nil, env.runID == runID else { return drop(peer, "heartbeat from an unknown peer") }
        case .bye:
            guard var w = workers[peer], env.runID == runID else { return drop(peer, "BYE from an unknown peer") }
            w.phase = .left
            workers[peer] = w
            let orders = aggregator.lost(w.id, live: liveWorkers.map(\.id), now: now)
            emit(.workerLost(w, reassigned: orders.count))
            out += send(orders)
        case .welcome, .reject, .assign, .shutdown:
            return drop(peer, "a worker sent a coordinator-only message (\(env.message.typeName))")
        }
        out += advance(now: now)
        return sent(out, now: now)
    }

    func noteHeard(_ peer: PeerID, bytes: Int, now: Double) {
        if firstSeen == nil { firstSeen = now }
        if wallStart == nil { wallStart = now }
        bytesIn += bytes
        if var w = workers[peer], w.phase != .dead, w.phase != .left {
            w.lastHeard = now
            w.bytesIn += bytes
            workers[peer] = w
        }
    }

    /// Time passes: join deadline, liveness, heartbeats.
    func passTime(now: Double) -> [CoordinatorEffect] {
        if firstSeen == nil { firstSeen = now }
        if wallStart == nil { wallStart = now }
        var out: [CoordinatorEffect] = []
        for peer in Array(workers.keys) {
            guard var w = workers[peer], w.phase == .ready || w.phase == .welcomed else { continue }
            if w.phase == .welcomed && (now - w.welcomedAt > options.handshakeTimeout || now - w.lastHeard > options.liveness) {
                // never became a worker: forgotten, it holds nothing (no record, no slot)
                workers[peer] = nil
                abandonedHandshakes += 1
                continue
            }
            if now - w.lastHeard > options.liveness {
                w.phase = .dead
                workers[peer] = w
                let orders = aggregator.lost(w.id, live: liveWorkers.map(\.id), now: now)
                emit(.workerLost(w, reassigned: orders.count))
                out += send(orders)
            } else if now - w.lastSent > options.heartbeat {
                out.append(reply(peer, w.id, .heartbeat))
            }
        }
        if !started, let t0 = firstSeen, now - t0 > options.joinTimeout {
            let ready = liveWorkers.count
            if ready < options.minWorkers {
                var why = "check that the workers can reach the coordinator's --bind address"
                if refusedFull > 0 || abandonedHandshakes > 0 || deferredHellos > 0 {
                    why = "\(refusedFull) HELLO(s) refused by --max-workers, \(abandonedHandshakes) peer(s) welcomed but never READY within \(Int(options.handshakeTimeout)) s, \(deferredHellos) HELLO(s) deferred while \(maxPendingHandshakes) handshakes were open; if those were your workers, check their logs"
                }
                failure = .invalidConfig("only \(ready) of \(options.workers) workers joined within \(Int(options.joinTimeout)) s (need at least --min-workers \(options.minWorkers)); \(why)")
                out += shutdownAll(reason: "no quorum")
                return sent(out, now: now)
            }
        }
        if started && !isDone && liveWorkers.isEmpty && stepActive {
            let since = workers.values.map(\.lastHeard).max() ?? now
            if now - since > options.liveness {
                failure = .invalidConfig("every worker was lost; the run cannot go on (last good weights are kept)")
                return sent(out, now: now)
            }
        }
        if stepActive {
            let live = liveWorkers.map(\.id)
            out += send(aggregator.overdue(now: now, timeout: options.retryAfter, live: live))
            if options.speculate {
                out += send(aggregator.speculate(idle: live.filter { !aggregator.isBusy($0) }, now: now))
            }
        }
        out += advance(now: now)
        return sent(out, now: now)
    }

    func welcome(peer: PeerID, hello: Hello, now: Double) -> [CoordinatorEffect] {
        if let w = workers[peer], w.phase == .welcomed, now - w.welcomedAt <= options.handshakeTimeout {
            // its WELCOME is on the way (a worker says HELLO again while it waits): one per handshake
            return []
        }
        let ready = liveWorkers.filter { $0.id != workers[peer]?.id }
        if let cap = options.maxWorkers, ready.count >= cap {
            refusedFull += 1
            let holders = ready.prefix(8).map { "worker \($0.id) (\($0.host) pid \($0.pid))" }.joined(separator: ", ")
            let reason = "the run already has --max-workers \(cap) ready workers: \(holders)\(ready.count > 8 ? ", …" : "")"
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        }
        let pending = workers.values.reduce(0) { $0 + ($1.phase == .welcomed ? 1 : 0) }
        if pending >= maxPendingHandshakes {
            // strangers cannot make us hold more open handshakes (and WELCOMEs in flight) than this;
            // a real worker says HELLO again and gets in once a slot frees
            deferredHellos += 1
            emit(.dropped(peer: peer, reason: "HELLO deferred: \(pending) handshakes are open"))
            return []
        }
        if let reason = mismatch(hello) {
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        }
        let id = nextWorkerID
        nextWorkerID += 1
        var record = WorkerRecord(id: id, host: hello.host, pid: hello.pid, threads: hello.threads, phase: .welcomed)
        record.lastHeard = now
        record.welcomedAt = now
        workers[peer] = record
        let w = Welcome(
            protocolVersion: Int(Wire.protocolVersion), runID: runID, workerID: id, config: configJSON,
            points: series.count, channels: series.channels, seriesHash: seriesHash,
            parameterCount: parameterCount, microBatch: microBatch,
            heartbeatMillis: Int(options.heartbeat * 1000), livenessMillis: Int(options.liveness * 1000),
            sharedData: options.sharedData ? true : nil)
        return [reply(peer, id, .welcome(w, series: options.sharedData ? [] : series.values))]
    }

    /// Why this worker cannot join, or nil.
    func mismatch(_ hello: Hello) -> String? {
        if hello.protocolVersion != Int(Wire.protocolVersion) {
            return "worker speaks protocol version \(hello.protocolVersion); this coordinator speaks \(Wire.protocolVersion). Run the same ztrain version on both."
        }
        guard let e = hello.expect else { return nil }
        let m = config.model
        var diffs: [String] = []
        if let h = e.hidden, h != m.hiddenSize { diffs.append("worker expects --hidden \(h) but the run has hidden \(m.hiddenSize)") }
        if let i = e.input, i != m.inputSize { diffs.append("worker expects \(i) inputs but the run has \(m.inputSize)") }
        if let o = e.output, o != m.outputSize { diffs.append("worker expects \(o) outputs but the run has \(m.outputSize)") }
        if let t = e.seqLen, t != m.seqLen { diffs.append("worker expects --seq-len \(t) but the run has \(m.seqLen)") }
        if let c = e.cell, c != m.cell.rawValue { diffs.append("worker expects --cell \(c) but the run has \(m.cell.rawValue)") }
        if let a = e.activation, a != m.activation.rawValue { diffs.append("worker expects --activation \(a) but the run has \(m.activation.rawValue)") }
        if let mb = e.microBatch, mb != microBatch { diffs.append("worker expects --micro-batch \(mb) but the run has \(microBatch)") }
        return diffs.isEmpty ? nil : "configuration mismatch: " + diffs.joined(separator: "; ")
    }

    func drop(_ peer: PeerID, _ reason: String) -> [CoordinatorEffect] {
        droppedFrames += 1
        notes.append(.frameDropped(reason: dropReasonLabel(reason)))
        emit(.dropped(peer: peer, reason: reason))
        return []
    }
}
