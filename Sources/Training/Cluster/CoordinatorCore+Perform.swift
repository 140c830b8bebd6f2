import Dispatch
import Support
import Wire

/// The in-process effect interpreter: every ``CoordinatorEffect`` but `.send` is carried out here
/// (events to `onEvent`, spans to ``CoordinatorCore/onSpan``, observer notes to
/// ``CoordinatorCore/observer``, checkpoints to ``CoordinatorCore/onCheckpoint``, evaluations on a
/// thread or in place), their answers are fed back to the reducer, and the messages are returned
/// for the driver to send. Used by ``CoordinatorServer`` and by tests that drive a core in process.
extension CoordinatorCore {
    /// Carries out `effects` (and those of the answers it feeds back) and returns the messages to send.
    /// `now` is read whenever an answer is fed back (a real clock, or a simulation's time).
    ///
    /// ```swift
    /// let messages = core.perform(core.handle(.tick, now: t), now: t)
    /// ```
    public func perform(_ effects: [CoordinatorEffect], now: @autoclosure () -> Double) -> [Outgoing] {
        var out: [Outgoing] = []
        var list = effects
        var i = 0
        while i < list.count {
            let effect = list[i]
            i += 1
            switch effect {
            case .send(let peer, let envelope):
                out.append(Outgoing(peer: peer, envelope: envelope))
            case .event(let event):
                onEvent(event)
            case .span(let s):
                onSpan?(s)
            case .workerAnswered(let worker, let seconds):
                observer?.workerAnswered(worker: worker, seconds: seconds)
            case .frameDropped(let reason):
                observer?.frameDropped(reason: reason)
            case .evaluate(let request):
                let evaluation = EpochEvaluation(evaluator: evaluator, parameters: request.parameters)
                if request.background {
                    evaluationsInFlight[request.id] = evaluation
                    evaluation.start()
                } else {
                    list += handle(.evaluated(id: request.id, evaluation.result()), now: now())
                }
            case .awaitEvaluation(let id):
                if let evaluation = evaluationsInFlight.removeValue(forKey: id) {
                    list += handle(.evaluated(id: id, evaluation.result()), now: now())
                }
            case .checkpoint(let c):
                var failed: TrainingError?
                if let onCheckpoint {
                    do { try onCheckpoint(c) } catch { failed = error }
                }
                list += handle(.checkpointDone(failed), now: now())
            }
        }
        return out
    }

    /// Feeds back every evaluation still running (waiting for each).
    func awaitEvaluations(now: Double) {
        for id in evaluationsInFlight.keys.sorted() {
            _ = perform([.awaitEvaluation(id: id)], now: now)
        }
    }

    // MARK: - Inputs, interpreted in process

    /// A decoded message from `peer` (``CoordinatorInput/message(_:from:bytes:)``, interpreted).
    public func handle(_ env: Envelope, from peer: PeerID, bytes: Int, now: Double) -> [Outgoing] {
        perform(handle(.message(env, from: peer, bytes: bytes), now: now), now: now)
    }

    /// A validated GRADIENT still in its frame (``CoordinatorInput/gradient(header:payload:from:bytes:)``, interpreted).
    public func handleGradient(header: Header, payload: UnsafeRawBufferPointer, from peer: PeerID, bytes: Int, now: Double) -> [Outgoing] {
        perform(handle(.gradient(header: header, payload: payload, from: peer, bytes: bytes), now: now), now: now)
    }

    /// A frame from `peer` that did not decode (``CoordinatorInput/badFrame(from:error:)``, interpreted).
    public func rejectFrame(from peer: PeerID, error: WireError, now: Double) -> [Outgoing] {
        perform(handle(.badFrame(from: peer, error: error), now: now), now: now)
    }

    /// A frame from a peer that is not a worker, dropped unread (``CoordinatorInput/stranger(_:bytes:)``).
    public func dropStranger(_ peer: PeerID, bytes: Int, now: Double) {
        _ = perform(handle(.stranger(peer, bytes: bytes), now: now), now: now)
    }

    /// Time passes (``CoordinatorInput/tick``, interpreted).
    public func tick(now: Double) -> [Outgoing] {
        perform(handle(.tick, now: now), now: now)
    }

    /// Stop now: tell every worker to shut down (``CoordinatorInput/shutdown(reason:)``, interpreted).
    public func shutdown(reason: String, now: Double) -> [Outgoing] {
        perform(handle(.shutdown(reason: reason), now: now), now: now)
    }

    /// A peer heard after the run ended (``CoordinatorInput/farewell(_:)``, interpreted).
    public func farewell(to peer: PeerID, now: Double) -> [Outgoing] {
        perform(handle(.farewell(peer), now: now), now: now)
    }

    /// A message went out (``CoordinatorInput/sent(peer:bytes:seconds:isAssign:at:)``, interpreted).
    public func recordSent(peer: PeerID, bytes: Int, seconds: Double, isAssign: Bool, at: Double? = nil) {
        _ = perform(handle(.sent(peer: peer, bytes: bytes, seconds: seconds, isAssign: isAssign, at: at), now: at ?? 0), now: at ?? 0)
    }

    // MARK: - Queries

    /// Settles a pending epoch (waiting for its evaluation); the messages that would end the run are
    /// not sent (the run is over for whoever asks).
    private func settle(now: Double) {
        awaitEvaluations(now: now)
        _ = perform(settleForQuery(), now: now)
    }

    /// The outcome, for the outputs.
    public func result(now: Double) -> TrainingResult {
        settle(now: now)
        return settledResult(now: now)
    }

    /// The run as it stands between steps.
    public func checkpoint() -> RunCheckpoint {
        settle(now: 0)
        return settledCheckpoint()
    }

    /// Mean loss of the current weights over the training windows.
    public func meanLoss() -> Double {
        settle(now: 0)
        return settledMeanLoss()
    }
}

/// The evaluation of an epoch's weights (loss over the training windows, and over the validation
/// windows), computed on another thread or in place.
final class EpochEvaluation: @unchecked Sendable {
    // @unchecked: `evaluator` is used by one thread at a time: the evaluation thread between
    // `start()` and the end of its work, which `result()` waits for; `outcome` is guarded by
    // `condition`.
    private let evaluator: Evaluator
    private let parameters: [Float]
    private let condition = Condition()
    private var outcome: EpochLosses?
    private var started = false

    init(evaluator: Evaluator, parameters: [Float]) {
        self.evaluator = evaluator
        self.parameters = parameters
    }

    private func compute() -> EpochLosses {
        let split = evaluator.split
        return EpochLosses(loss: evaluator.meanLoss(parameters, windows: split.train),
                           valLoss: split.validation.isEmpty ? nil : evaluator.meanLoss(parameters, windows: split.validation))
    }

    /// Starts the evaluation on a background thread.
    func start() {
        condition.lock()
        started = true
        condition.unlock()
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let r = compute()
            condition.lock()
            outcome = r
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The losses: waits for a started evaluation, or computes them here.
    func result() -> EpochLosses {
        condition.lock()
        defer { condition.unlock() }
        if !started {
            started = true
            let r = compute()
            outcome = r
            return r
        }
        while outcome == nil { condition.wait() }
        return outcome ?? EpochLosses(loss: .nan, valLoss: nil)
    }
}
