import Wire

/// A step: orders out (ASSIGN), answers in (GRADIENT, decoded or still in its frame), the workers'
/// spans on the timeline.
extension CoordinatorCore {
    /// Starts the run once enough workers are ready, and the next step once the last is applied.
    func advance(now: Double) -> [CoordinatorEffect] {
        guard !isDone, parked == nil else { return [] }
        if !started {
            let ready = liveWorkers.count
            let waited = firstSeen.map { now - $0 } ?? 0
            let shardsIn = membership.liveShards.count >= options.shards
            guard (ready >= options.workers && shardsIn) || (ready >= options.minWorkers && waited > options.joinTimeout) else { return [] }
            started = true
            wallStart = now
            emit(.started(workers: ready))
            _ = startSharding(now: now)
        }
        if shard != nil {
            // a sharded step whose last awaited digest settled its audit (or whose audit was given up)
            let decided = decideShardedIfSettled(now: now)
            if !decided.isEmpty { return decided }
        }
        if shard?.busy == true { return [] }
        // a step whose last awaited answer was an audit given up (its worker lost) is complete now
        guard !stepActive else { return shard == nil && aggregator.isComplete ? finishStep(now: now) : [] }
        return startStep(now: now)
    }

    func startStep(now: Double) -> [CoordinatorEffect] {
        if auditStepStart(), checkpointEvery > 0 {
            // a checkpoint written since the snapshot may hold the steps just dropped: the restored run replaces it
            return checkpoint(RunCheckpoint(runID: runID, state: state, metrics: metrics, trainSeconds: trainSeconds), then: .startStep)
        }
        if shard != nil {
            takeSyncSnapshot()
            if let early = shardedStepStart(now: now) { return early }
        }
        guard let n = state.nextBatch(into: &windows) else {
            return settlePendingEpoch(then: .finishRun, now: now)
        }
        if weightsAreCurrent, let bad = state.parameters.firstIndex(where: { !$0.isFinite }) {
            // no worker takes non-finite weights (Wire refuses them): say it now, as in-process would
            // on the gradient these weights give, instead of asking again forever
            failure = .diverged("weight \(bad) is \(state.parameters[bad]) at step \(state.step + 1) (epoch \(state.epoch)); lower --lr or set --clip-norm")
            return shutdownAll(reason: "training diverged")
        }
        stepWindows = n
        stepStart = now
        stepCredits = [:]
        stepTiming = StepTiming()
        if shard != nil {
            let prepared = prepareShardedStep()
            return prepared + send(aggregator.begin(step: UInt64(state.step), windows: n, microBatch: microBatch,
                                                    workers: liveWorkers.map(\.id), now: now))
        }
        return send(aggregator.begin(step: UInt64(state.step), windows: n, microBatch: microBatch,
                                     workers: liveWorkers.map(\.id), now: now))
    }

    /// ASSIGN messages for orders.
    func send(_ orders: [Order]) -> [CoordinatorEffect] {
        guard !orders.isEmpty else { return [] }
        let stepWindows = windows[0..<self.stepWindows].map { UInt32($0) }
        var out: [CoordinatorEffect] = []
        for o in orders {
            guard let peer = membership.peer(of: o.worker), var w = membership.workers[peer] else { continue }
            w.steps += 1
            stepCredits[peer, default: (0, 0, 0, 0)].steps += 1
            membership.workers[peer] = w
            if shard != nil {
                let order = StepOrder(step: aggregator.step, leaves: o.run, leafCount: aggregator.leafCount, windows: stepWindows,
                                      table: shard?.table.version ?? 0)
                out.append(reply(peer, o.worker, .order(order)))
                continue
            }
            let a = Assign(step: aggregator.step, leaves: o.run, leafCount: aggregator.leafCount, weights: state.parameters,
                           windows: stepWindows)
            out.append(reply(peer, o.worker, .assign(a)))
        }
        return out
    }

    /// A GRADIENT that ``Wire/validate(header:payload:limits:)`` accepted, its sums still in the
    /// received frame: they are reduced straight from there (the transport's hot path; the same
    /// rules as a decoded GRADIENT).
    func gradient(header h: Header, payload: UnsafeRawBufferPointer, from peer: PeerID, bytes: Int, now: Double) -> [CoordinatorEffect] {
        guard h.type == .gradient, h.rangeLower < h.rangeUpper, let samples = Int(exactly: h.count),
              payload.count >= 4 * (parameterCount + 1) else {
            return sent(drop(peer, "a GRADIENT that does not match this run's model"), now: now)
        }
        noteHeard(peer, bytes: bytes, now: now)
        let (start, sendAt) = Wire.spanOffsets(payload, parameterCount: parameterCount)
        let info = GradientInfo(runID: h.runID, workerID: h.workerID, step: h.step,
                                block: Int(h.rangeLower)..<Int(h.rangeUpper), leafCount: Int(h.leafCount),
                                samples: samples, computeNanos: h.aux, startNanos: start, sendNanos: sendAt)
        let sums = UnsafeRawBufferPointer(rebasing: payload[0..<(4 * (parameterCount + 1))])
        var out = gradient(info, values: .littleEndian(sums), peer: peer, now: now)
        out += advance(now: now)
        return sent(out, now: now)
    }

    /// What the aggregation needs of a GRADIENT, decoded or still in its frame.
    struct GradientInfo {
        var runID: UInt64
        var workerID: UInt32
        var step: UInt64
        var block: Range<Int>
        var leafCount: Int
        var samples: Int
        var computeNanos: UInt64
        var startNanos: UInt64
        var sendNanos: UInt64

        init(runID: UInt64, workerID: UInt32, step: UInt64, block: Range<Int>, leafCount: Int, samples: Int,
             computeNanos: UInt64, startNanos: UInt64, sendNanos: UInt64) {
            self.runID = runID; self.workerID = workerID; self.step = step; self.block = block
            self.leafCount = leafCount; self.samples = samples; self.computeNanos = computeNanos
            self.startNanos = startNanos; self.sendNanos = sendNanos
        }

        init(_ g: Gradient, runID: UInt64, workerID: UInt32) {
            self.init(runID: runID, workerID: workerID, step: g.step, block: g.block, leafCount: g.leafCount,
                      samples: g.samples, computeNanos: g.computeNanos, startNanos: g.startNanos, sendNanos: g.sendNanos)
        }
    }

    func gradient(_ g: GradientInfo, values: StreamingTree.Source, peer: PeerID, now: Double) -> [CoordinatorEffect] {
        guard var w = membership.workers[peer], w.phase == .ready, g.workerID == w.id else {
            return drop(peer, "GRADIENT from an unknown or not-ready worker")
        }
        guard g.runID == runID else { return drop(peer, "GRADIENT for run \(g.runID), this run is \(runID)") }
        let t0 = mark()
        let verdict: Verdict
        switch values {
        case .floats(let f):
            verdict = aggregator.accept(worker: w.id, step: g.step, block: g.block, leafCount: g.leafCount, samples: g.samples, sums: f, now: now)
        case .littleEndian(let b):
            verdict = aggregator.accept(worker: w.id, step: g.step, block: g.block, leafCount: g.leafCount, samples: g.samples, littleEndian: b, now: now)
        }
        let reduceSeconds = measured(since: t0)
        if aggregator.audit.hasDisputes { return settleDisputes(now: now) }
        switch verdict {
        case .invalid(let reason):
            return drop(peer, "GRADIENT from worker \(w.id): \(reason)")
        case .lateOrDuplicate:
            w.lateOrDuplicate += 1
            membership.workers[peer] = w
            // an audit's second answer can be the one the step waited for
            guard aggregator.isComplete, parked == nil else { return [] }
        case .accepted:
            noteContribution(worker: w.id, block: g.block)
            w.blocks += 1
            w.samples += g.samples
            let compute = Double(g.computeNanos) / 1e9
            w.computeSeconds += compute
            stepCredits[peer, default: (0, 0, 0, 0)].blocks += 1
            stepCredits[peer, default: (0, 0, 0, 0)].samples += g.samples
            stepCredits[peer, default: (0, 0, 0, 0)].compute += compute
            stepTiming.compute = max(stepTiming.compute, compute)
            stepTiming.reduce += reduceSeconds
            membership.workers[peer] = w
            if recordsSpans { workerSpans(g, worker: w.id, peer: peer, received: now, reduce: reduceSeconds) }
            if let sentAt = assignSentAt[peer] { notes.append(.workerAnswered(worker: w.id, seconds: max(0, now - sentAt))) }
        }
        guard aggregator.isComplete, parked == nil else { return [] }
        return finishStep(now: now)
    }

    /// The spans of a worker's answer, placed on this clock: the worker reports its offsets from
    /// its receipt of the ASSIGN; the rest of the round trip is split evenly between the two
    /// directions.
    func workerSpans(_ g: GradientInfo, worker: UInt32, peer: PeerID, received now: Double, reduce: Double) {
        let step = Int(g.step)
        guard let sentAt = assignSentAt[peer] else { return }
        let rtt = max(0, now - sentAt)
        let inner = min(rtt, Double(g.sendNanos) / 1e9)
        let oneWay = (rtt - inner) / 2
        let received = sentAt + oneWay
        let start = received + min(inner, Double(g.startNanos) / 1e9)
        let computeEnd = min(start + Double(g.computeNanos) / 1e9, received + inner)
        let idleFrom = workerIdleSince[peer] ?? received
        if received > idleFrom {
            span(TimelineSpan(process: worker, name: "wait", start: idleFrom, duration: received - idleFrom, step: step))
        }
        if start > received {
            span(TimelineSpan(process: worker, name: "wait", start: received, duration: start - received, step: step))
        }
        span(TimelineSpan(process: worker, name: "compute", start: start, duration: computeEnd - start, step: step))
        span(TimelineSpan(process: worker, name: "send", start: computeEnd, duration: max(0, now - computeEnd), step: step))
        span(TimelineSpan(process: 0, name: "reduce", start: now, duration: reduce, step: step))
        workerIdleSince[peer] = now - oneWay
    }

    /// Book-keeping for messages about to be sent (the transport reports the encoded size).
    func sent(_ out: [CoordinatorEffect], now: Double) -> [CoordinatorEffect] {
        for case .send(let peer, let envelope) in out {
            membership.sent(to: peer, now: now)
            // a step's first ASSIGNs go out after the previous step's update (stepStart), which
            // the `now` of the message that finished that step predates
            switch envelope.message {
            case .assign, .order: lastAssignSentAt = max(now, stepStart)
            default: break
            }
        }
        return out
    }

    /// The transport tells how many bytes a message took on the wire, how long sending took, and
    /// (on this core's clock) when it was handed to the socket.
    func noteSent(peer: PeerID, bytes: Int, seconds: Double, isAssign: Bool, at: Double?) {
        bytesOut += bytes
        if var w = membership.workers[peer] { w.bytesOut += bytes; membership.workers[peer] = w }
        if isAssign {
            stepTiming.broadcast += seconds
            if let at {
                assignSentAt[peer] = at
                lastAssignSentAt = max(lastAssignSentAt, at)
                span(TimelineSpan(process: 0, name: "send", start: at - seconds, duration: seconds, step: Int(aggregator.step)))
            }
        }
    }
}
