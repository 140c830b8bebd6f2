import Prometheus
import Training

/// The run's Prometheus metrics (`--metrics-bind`), every name starting with `ztrain_`, counters
/// ending in `_total`.
///
/// Steps, epochs, samples, losses, learning rate and gradient norm come from ``record(step:)`` and
/// ``record(epoch:)`` (every trainer); the coordinator's counters, the workers' last-heard ages and
/// their answer latencies from its loop (``CoordinatorObserver``). Updates are atomic adds and
/// stores; rendering the page happens on the HTTP thread.
public final class PrometheusExporter: CoordinatorObserver, @unchecked Sendable {
    // @unchecked: the dictionaries and `last*` counters belong to the thread that trains (the
    // coordinator's loop or the in-process trainer); the metrics themselves are thread-safe.
    public let registry = PrometheusCollectorRegistry()
    private let steps, epochs, samples: Counter
    private let loss, epochLoss, validationLoss, learningRate, gradNorm, samplesPerSecond, workersLive, stepSeconds: Gauge
    private let reassigned, retried, speculative, lateOrDuplicate, refused, bytesIn, bytesOut, unsent: Counter
    private var dropped: [String: Counter] = [:]
    private var latency: [UInt32: ValueHistogram] = [:]
    private var lastHeard: [UInt32: Gauge] = [:]
    private var seen = Counts()
    private var lastTick = -1.0
    private var roundP50: Gauge?

    /// Buckets of the per-worker answer latency, in seconds: 100 µs to 30 s.
    public static let latencyBuckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25, 0.5, 1, 2.5, 5, 10, 30]

    private struct Counts {
        var rounds = 0, reassigned = 0, retried = 0, speculative = 0, lateOrDuplicate = 0, refused = 0, bytesIn = 0, bytesOut = 0, unsent = 0
    }

    public init(version: String, commit: String, mode: String) {
        let r = registry
        r.makeGauge(descriptor: metric("ztrain_build_info", "ztrain's version and git commit (value 1)"), labels: [("version", version), ("commit", commit), ("mode", mode)]).set(1.0)
        steps = r.makeCounter(descriptor: metric("ztrain_steps_total", "Optimizer steps applied"))
        epochs = r.makeCounter(descriptor: metric("ztrain_epochs_total", "Epochs completed and evaluated"))
        samples = r.makeCounter(descriptor: metric("ztrain_samples_total", "Windows that entered a gradient"))
        loss = r.makeGauge(descriptor: metric("ztrain_loss", "Mean loss of the last step's windows"))
        epochLoss = r.makeGauge(descriptor: metric("ztrain_epoch_loss", "MSE over all windows at the end of the last epoch"))
        validationLoss = r.makeGauge(descriptor: metric("ztrain_validation_loss", "MSE over the validation windows at the end of the last epoch"))
        learningRate = r.makeGauge(descriptor: metric("ztrain_learning_rate", "Learning rate of the last step"))
        gradNorm = r.makeGauge(descriptor: metric("ztrain_gradient_norm", "Global gradient norm of the last step, before clipping"))
        samplesPerSecond = r.makeGauge(descriptor: metric("ztrain_samples_per_second", "Training windows per second of step time this epoch"))
        stepSeconds = r.makeGauge(descriptor: metric("ztrain_step_wait_seconds", "Data-parallel: the last step's wait for its slowest answer"))
        workersLive = r.makeGauge(descriptor: metric("ztrain_workers", "Data-parallel: workers taking part"))
        reassigned = r.makeCounter(descriptor: metric("ztrain_reassigned_total", "Orders of lost workers given to others"))
        retried = r.makeCounter(descriptor: metric("ztrain_retried_total", "Orders given again after their answer did not come"))
        speculative = r.makeCounter(descriptor: metric("ztrain_speculative_total", "Straggler micro-batches copied to idle workers"))
        lateOrDuplicate = r.makeCounter(descriptor: metric("ztrain_late_or_duplicate_total", "Late or duplicate answers ignored"))
        refused = r.makeCounter(descriptor: metric("ztrain_refused_connections_total", "Connections the CURVE allow-list refused"))
        bytesIn = r.makeCounter(descriptor: metric("ztrain_received_bytes_total", "Bytes the coordinator received"))
        bytesOut = r.makeCounter(descriptor: metric("ztrain_sent_bytes_total", "Bytes the coordinator sent"))
        unsent = r.makeCounter(descriptor: metric("ztrain_unsent_messages_total", "Messages the coordinator could not send (peer gone or not reading)"))
    }

    /// The exposition text (what `GET /metrics` returns).
    public func render() -> [UInt8] { registry.emitToBuffer() }

    /// After each optimizer step.
    public func record(step r: StepRecord) {
        steps.increment()
        samples.increment(by: Int64(r.windows))
        loss.set(r.loss)
        learningRate.set(r.learningRate)
        gradNorm.set(r.gradNorm)
        samplesPerSecond.set(r.samplesPerSecond)
        if let t = r.timing { stepSeconds.set(t.wait) }
    }

    /// `ztrain stress` progress (about once a second): rounds count as steps.
    public func record(stressRounds rounds: Int, bytesSent: Int, bytesReceived: Int, p50Seconds: Double) {
        var r = seen.rounds
        if rounds > r { steps.increment(by: Int64(rounds - r)) }
        r = rounds
        seen.rounds = r
        var b = seen.bytesIn
        if bytesReceived > b { bytesIn.increment(by: Int64(bytesReceived - b)) }
        b = bytesReceived
        seen.bytesIn = b
        var o = seen.bytesOut
        if bytesSent > o { bytesOut.increment(by: Int64(bytesSent - o)) }
        o = bytesSent
        seen.bytesOut = o
        if roundP50 == nil {
            roundP50 = registry.makeGauge(descriptor: metric("ztrain_stress_round_p50_seconds", "ztrain stress: median round latency so far"))
        }
        roundP50?.set(p50Seconds)
    }

    /// At each epoch's end.
    public func record(epoch m: EpochMetrics) {
        epochs.increment()
        epochLoss.set(m.loss)
        if let v = m.valLoss { validationLoss.set(v) }
    }

    public func workerAnswered(worker: UInt32, seconds: Double) {
        let h: ValueHistogram
        if let existing = latency[worker] {
            h = existing
        } else {
            h = registry.makeValueHistogram(descriptor: metric("ztrain_worker_step_seconds", "Per worker: from its ASSIGN sent to its answer received"), labels: [("worker", String(worker))], buckets: Self.latencyBuckets)
            latency[worker] = h
        }
        h.record(seconds)
    }

    public func frameDropped(reason: String) {
        let c: Counter
        if let existing = dropped[reason] {
            c = existing
        } else {
            c = registry.makeCounter(descriptor: metric("ztrain_dropped_frames_total", "Frames dropped by the coordinator, by reason"), labels: [("reason", reason)])
            dropped[reason] = c
        }
        c.increment()
    }

    /// Counters from the coordinator's loop, about four times a second.
    public func tick(_ server: CoordinatorServer, now: Double) {
        guard now - lastTick >= 0.25 else { return }
        lastTick = now
        let core = server.core
        func add(_ counter: Counter, _ value: Int, _ last: inout Int) {
            if value > last { counter.increment(by: Int64(value - last)) }
            last = value
        }
        add(reassigned, core.reassigned, &seen.reassigned)
        add(retried, core.retried, &seen.retried)
        add(speculative, core.speculative, &seen.speculative)
        add(lateOrDuplicate, core.lateOrDuplicate, &seen.lateOrDuplicate)
        add(refused, server.refusedConnections, &seen.refused)
        add(bytesIn, core.bytesIn, &seen.bytesIn)
        add(bytesOut, core.bytesOut, &seen.bytesOut)
        add(unsent, server.unsent, &seen.unsent)
        let live = core.liveWorkers
        workersLive.set(Double(live.count))
        var current = Set<UInt32>()
        for w in live {
            current.insert(w.id)
            let g: Gauge
            if let existing = lastHeard[w.id] {
                g = existing
            } else {
                g = registry.makeGauge(descriptor: metric("ztrain_worker_last_heard_seconds", "Per live worker: seconds since the coordinator last heard from it"), labels: [("worker", String(w.id)), ("host", w.host), ("pid", String(w.pid))])
                lastHeard[w.id] = g
            }
            g.set(max(0, now - w.lastHeardAt))
        }
        for (id, g) in lastHeard where !current.contains(id) {
            registry.unregisterGauge(g)
            lastHeard[id] = nil
        }
    }
}

/// A metric's full name and help text (every name here is already complete: `ztrain_…`).
func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
