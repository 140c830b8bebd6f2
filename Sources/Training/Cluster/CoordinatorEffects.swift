import Wire

/// Everything that can happen to a ``CoordinatorCore``: the one input of its reducer,
/// ``CoordinatorCore/handle(_:now:)``.
///
/// The driver (``CoordinatorServer``, or a test's simulated network) turns what it sees into
/// inputs, with the time it saw them; the core answers with ``CoordinatorEffect``s.
///
/// ```swift
/// let effects = core.handle(.message(envelope, from: peer, bytes: 120), now: 1.5)
/// ```
public enum CoordinatorInput {
    /// A decoded message from a peer, and its size on the wire.
    case message(Envelope, from: PeerID, bytes: Int)
    /// A GRADIENT that ``Wire/validate(header:payload:limits:)`` accepted, its sums still in the
    /// received frame (the hot path: reduced straight from there). Valid for this call only.
    case gradient(header: Header, payload: UnsafeRawBufferPointer, from: PeerID, bytes: Int)
    /// A frame from a worker that did not decode.
    case badFrame(from: PeerID, error: WireError)
    /// A frame from a peer that is not a worker, dropped unread (too big, or not a HELLO).
    case stranger(PeerID, bytes: Int)
    /// Time passes: join deadline, liveness, heartbeats, retries, speculation.
    case tick
    /// Stop now: every worker is told to shut down.
    case shutdown(reason: String)
    /// A peer heard after the run ended: told once that the run is over.
    case farewell(PeerID)
    /// A message of a `.send` effect went out: its size, how long sending took, and (ASSIGNs) when it
    /// was handed to the socket.
    case sent(peer: PeerID, bytes: Int, seconds: Double, isAssign: Bool, at: Double?)
    /// The answer to an ``CoordinatorEffect/evaluate(_:)`` effect.
    case evaluated(id: Int, EpochLosses)
    /// The answer to a ``CoordinatorEffect/checkpoint(_:)`` effect: written (nil) or not.
    case checkpointDone(TrainingError?)
}

/// What a ``CoordinatorCore`` asks its driver to do, in order.
///
/// ```swift
/// for effect in core.handle(.tick, now: 3) {
///     if case .send(let peer, let envelope) = effect { socket.send(envelope, to: peer) }
/// }
/// ```
/// ``CoordinatorCore/perform(_:now:)`` interprets every effect but `.send` in-process.
public enum CoordinatorEffect {
    /// Send this message to this peer (an ASSIGN's weights are framed zero-copy by the driver).
    case send(PeerID, Envelope)
    /// Something worth reporting (logs, progress).
    case event(CoordinatorEvent)
    /// A span for `--timeline`.
    case span(TimelineSpan)
    /// Evaluate an epoch's weights (on a thread if `request.background`); answer with
    /// ``CoordinatorInput/evaluated(id:_:)``.
    case evaluate(EvaluationRequest)
    /// The core cannot go on before the evaluation with this id is answered (the driver waits for it).
    case awaitEvaluation(id: Int)
    /// Write this checkpoint, then answer with ``CoordinatorInput/checkpointDone(_:)``; the core does
    /// nothing before the answer (always the batch's last effect).
    case checkpoint(RunCheckpoint)
    /// For the ``CoordinatorObserver``: an accepted answer came `seconds` after its ASSIGN went out.
    case workerAnswered(worker: UInt32, seconds: Double)
    /// For the ``CoordinatorObserver``: a frame was dropped (one of ``dropReasonLabel(_:)``'s labels).
    case frameDropped(reason: String)
}

/// An epoch's weights to evaluate over the training and validation windows.
public struct EvaluationRequest: Sendable {
    public var id: Int
    public var parameters: [Float]
    /// May run on another thread while the next step computes (else the core waits for it).
    public var background: Bool
}

/// An epoch's losses: over the training windows, and over the validation windows (nil: none).
public struct EpochLosses: Sendable, Equatable {
    public var loss: Double
    public var valLoss: Double?
    public init(loss: Double, valLoss: Double?) { self.loss = loss; self.valLoss = valLoss }
}
