import Wire

/// Messages in, and what the core does with ``Membership``'s answers: WELCOME or REJECT, a lost
/// worker's orders given to others, heartbeats, the join deadline.
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
            guard env.runID == runID, let w = membership.ready(ready, from: peer, workerID: env.workerID, fingerprint: fingerprint) else {
                return drop(peer, "READY from an unknown or not-welcomed worker")
            }
            emit(.joined(w))
            if w.shard != true, ready.numericsFingerprint != fingerprint { emit(.fingerprintMismatch(w)) }
        case .gradient(let g):
            out += g.sums.withUnsafeBufferPointer { sums in
                gradient(GradientInfo(g, runID: env.runID, workerID: env.workerID), values: .floats(sums), peer: peer, now: now)
            }
        case .heartbeat:
            guard workers[peer] != nil, env.runID == runID else { return drop(peer, "heartbeat from an unknown peer") }
        case .bye:
            guard workers[peer] != nil, env.runID == runID, let w = membership.left(peer) else { return drop(peer, "BYE from an unknown peer") }
            let orders = aggregator.lost(w.id, live: liveWorkers.map(\.id), now: now)
            emit(.workerLost(w, reassigned: orders.count))
            out += send(orders)
            if started, !isDone, let id = lostOwner() { out += recoverLostOwner(id, now: now) }
        case .traffic(let t):
            guard workers[peer]?.id == env.workerID, env.runID == runID else { return drop(peer, "TRAFFIC from an unknown peer") }
            noteTraffic(t, from: peer)
        case .norm(let part):
            out += shardNorm(part, from: peer, workerID: env.workerID, now: now)
        case .digest(let d):
            out += shardDigest(d, from: peer, runID: env.runID, workerID: env.workerID, now: now)
        case .slice(let slice):
            guard env.runID == runID else { return drop(peer, "SLICE for run \(env.runID), this run is \(runID)") }
            out += shardSlice(slice, from: peer, workerID: env.workerID, now: now)
        case .applied(let ack):
            guard env.runID == runID else { return drop(peer, "APPLIED for run \(env.runID), this run is \(runID)") }
            out += shardApplied(ack, from: peer, workerID: env.workerID, now: now)
        case .welcome, .reject, .assign, .shutdown, .table, .order, .node, .apply, .fetch:
            return drop(peer, "a worker sent a coordinator-only message (\(env.message.typeName))")
        }
        out += advance(now: now)
        return sent(out, now: now)
    }

    func noteHeard(_ peer: PeerID, bytes: Int, now: Double) {
        if firstSeen == nil { firstSeen = now }
        if wallStart == nil { wallStart = now }
        bytesIn += bytes
        membership.heard(peer, bytes: bytes, now: now)
    }

    /// Time passes: join deadline, liveness, heartbeats.
    func passTime(now: Double) -> [CoordinatorEffect] {
        if firstSeen == nil { firstSeen = now }
        if wallStart == nil { wallStart = now }
        var out: [CoordinatorEffect] = []
        for peer in Array(workers.keys) {
            switch membership.check(peer, now: now) {
            case .fine, .forgotten:
                break
            case .dead(let w):
                let orders = aggregator.lost(w.id, live: liveWorkers.map(\.id), now: now)
                emit(.workerLost(w, reassigned: orders.count))
                out += send(orders)
                if started, !isDone, let id = lostOwner() { return sent(out + recoverLostOwner(id, now: now), now: now) }
            case .heartbeatDue(let id):
                out.append(reply(peer, id, .heartbeat))
            }
        }
        if !started, let t0 = firstSeen, now - t0 > options.joinTimeout {
            let ready = liveWorkers.count
            if ready < options.minWorkers {
                let why = membership.whyTooFew
                failure = .invalidConfig("only \(ready) of \(options.workers) workers joined within \(Int(options.joinTimeout)) s (need at least --min-workers \(options.minWorkers)); \(why)")
                out += shutdownAll(reason: "no quorum")
                return sent(out, now: now)
            }
        }
        if started && !isDone && liveWorkers.isEmpty && stepActive {
            let since = membership.lastHeardFromAnyone ?? now
            if now - since > options.liveness {
                failure = .invalidConfig("every worker was lost; the run cannot go on (last good weights are kept)")
                return sent(out, now: now)
            }
        }
        if started, !isDone, parked == nil, let id = lostOwner() { out += recoverLostOwner(id, now: now) }
        // a dispute whose referee was lost or is late is decided by the coordinator
        if stepActive, aggregator.audit.hasDisputes { out += settleDisputes(now: now) }
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

    /// A HELLO: WELCOME, REJECT, or nothing (``Membership/hello(_:from:now:)``).
    func welcome(peer: PeerID, hello: Hello, now: Double) -> [CoordinatorEffect] {
        if hello.role == Hello.shardRole, options.aggregation != .sharded, membership.workers[peer] == nil {
            let reason = "a shard process takes part in sharded aggregation only: run the coordinator with --aggregation sharded, or stop this shard"
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        }
        if options.aggregation == .sharded && (hello.peer ?? "").isEmpty && membership.workers[peer] == nil {
            let reason = "this run aggregates sharded and the worker announced no peer endpoint: give it --peer-bind (an address the other workers reach), or run a ztrain that has it"
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        }
        if options.aggregation == .sharded, let allowed = options.peerKeys, !allowed.contains(hello.peerKey ?? ""), membership.workers[peer] == nil {
            // the table passes the key on to the other workers' peer routers: only allow-listed keys go there
            let reason = hello.peerKey == nil
                ? "this run aggregates sharded with CURVE and the worker announced no peer key: run a ztrain that has it, with --curve-dir"
                : "this run aggregates sharded with CURVE and the worker's peer key is not in the coordinator's allow-list: give it its own key pair from 'ztrain keygen'"
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        }
        switch membership.hello(hello, from: peer, now: now) {
        case .alreadyWelcomed:
            return []
        case .refused(let reason):
            emit(.rejected(peer: peer, reason: reason))
            return [reply(peer, 0, .reject(reason))]
        case .deferred(let open):
            emit(.dropped(peer: peer, reason: "HELLO deferred: \(open) handshakes are open"))
            return []
        case .welcome(let id):
            if let endpoint = hello.peer {
                shardEndpoints[id] = endpoint
                shard?.endpoints[id] = endpoint
            }
            if options.peerKeys != nil, let key = hello.peerKey { shardKeys[id] = key }
            let isShard = hello.role == Hello.shardRole
            if let key = hello.peerKey { auditing.keys[id] = key }
            let w = Welcome(
                protocolVersion: Int(Wire.protocolVersion), runID: runID, workerID: id, config: configObject,
                points: series.count, channels: series.channels, seriesHash: seriesHash,
                parameterCount: parameterCount, microBatch: microBatch,
                heartbeatMillis: Int(options.heartbeat * 1000), livenessMillis: Int(options.liveness * 1000),
                sharedData: options.sharedData || isShard ? true : nil,  // a shard process is sent no series
                aggregation: options.aggregation == .sharded ? Aggregation.sharded.rawValue : nil)
            return [reply(peer, id, .welcome(w, series: options.sharedData || isShard ? [] : series.values))]
        }
    }

    /// Why this worker cannot join, or nil (``Membership/mismatch(_:)``).
    func mismatch(_ hello: Hello) -> String? { membership.mismatch(hello) }

    func drop(_ peer: PeerID, _ reason: String) -> [CoordinatorEffect] {
        droppedFrames += 1
        notes.append(.frameDropped(reason: dropReasonLabel(reason)))
        emit(.dropped(peer: peer, reason: reason))
        return []
    }
}
