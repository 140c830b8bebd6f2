#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Training
import Support

/// Injected and survived faults of one kind. A fault *survived* when its round still ended with
/// the exact aggregate.
public struct FaultCount: Sendable, Equatable, Codable {
    /// Faults injected.
    public var injected: Int
    /// Of those, faults in rounds that completed with the exact aggregate.
    public var survived: Int
}

/// Round latency percentiles in microseconds (from `StepAggregator.begin` to the exact aggregate).
public struct LatencySummary: Sendable, Equatable, Codable {
    /// Median.
    public var p50: UInt64
    /// 90th percentile.
    public var p90: UInt64
    /// 99th percentile.
    public var p99: UInt64
    /// Largest.
    public var max: UInt64
    /// Mean.
    public var mean: Double
}

/// The sharded rounds' counters (``StressAggregation/sharded``).
public struct ShardedCounters: Sendable, Equatable, Codable {
    /// TABLEs sent (the first, and one per change of the live workers).
    public var tables: Int
    /// Attempts of a round beyond its first: a member was lost (the round starts over under a new
    /// table), or (`--wrong-rate`) the digests were wrong.
    public var attemptsRedone: Int
    /// Times an attempt's ORDERs were sent again (it had not completed within `--retry-after`, at
    /// least 3 typical rounds: a NODE or SLICE was lost).
    public var ordersRepeated: Int
    /// Lost workers that owned a non-empty slice of the current table.
    public var ownersLost: Int
    /// Reports of an earlier attempt or round.
    public var staleReports: Int

    public init(tables: Int, attemptsRedone: Int, ordersRepeated: Int, ownersLost: Int, staleReports: Int) {
        self.tables = tables
        self.attemptsRedone = attemptsRedone
        self.ordersRepeated = ordersRepeated
        self.ownersLost = ownersLost
        self.staleReports = staleReports
    }
}

/// What a stress run measured and found.
public struct StressReport: Sendable, Equatable, Codable {
    /// The configuration.
    public var config: StressConfig
    /// `threads` or `processes`.
    public var mode: String
    /// The coordinator's endpoint.
    public var endpoint: String
    /// Rounds that completed (exactly or not).
    public var rounds: Int
    /// Rounds whose aggregate was bit-identical to the expected one.
    public var exactRounds: Int
    /// Rounds whose aggregate differed from the expected one.
    public var wrongAggregates: Int
    /// Rounds that did not complete within the round timeout.
    public var lostRounds: Int
    /// The first wrong aggregates, described.
    public var wrongDetails: [String]
    /// Wall-clock seconds of the rounds (after every initial worker joined).
    public var seconds: Double
    /// Rounds per second.
    public var roundsPerSecond: Double
    /// Latency of exact rounds, µs.
    public var latencyMicros: LatencySummary
    /// Bytes sent by the coordinator (header and payload frames).
    public var bytesSent: Int
    /// Bytes received by the coordinator (header and payload frames).
    public var bytesReceived: Int
    /// `bytesSent / seconds`.
    public var bytesSentPerSecond: Double
    /// `bytesReceived / seconds`.
    public var bytesReceivedPerSecond: Double
    /// This process's peak RSS (VmHWM), bytes: the coordinator's (and the worker threads' in thread
    /// mode; the stranger process is never counted).
    public var peakRSS: Int?
    /// VmRSS at the end of the first quarter of the rounds.
    public var rssFirstQuarter: Int?
    /// VmRSS at the end of the last quarter of the rounds.
    public var rssLastQuarter: Int?
    /// The largest peak RSS of a worker process (processes mode).
    public var workerPeakRSS: Int?
    /// Injected and survived faults per kind (every kind appears).
    public var faults: [String: FaultCount]
    /// Answers for leaves already in, or for an earlier round (`StepAggregator.lateOrDuplicate`).
    public var lateOrDuplicate: Int
    /// Frames `Wire` rejected (bad checksum, header, length…).
    public var invalidFrames: Int
    /// Of those, checksum mismatches.
    public var checksumMismatches: Int
    /// Well-formed answers the aggregator refused (`Verdict.invalid`), or with a wrong run/worker id.
    public var invalidAnswers: Int
    /// Orders given again after `--retry-after` (`StepAggregator.retried`).
    public var retried: Int
    /// Speculative copies for stragglers (`StepAggregator.speculative`).
    public var speculative: Int
    /// Orders of lost workers given to others (`StepAggregator.reassigned`).
    public var reassigned: Int
    /// Workers declared lost: after `--liveness` s of silence, a BYE, or their connection being
    /// gone (see ``disconnectedWorkers``).
    public var lostWorkers: Int
    /// Of ``lostWorkers``, those whose connection was gone when an ASSIGN was sent to them
    /// (EHOSTUNREACH from the ROUTER), declared lost at once.
    public var disconnectedWorkers: Int
    /// Lost workers that spoke again and were taken back.
    public var rejoinedWorkers: Int
    /// Workers that joined (initial ones and replacements).
    public var joinedWorkers: Int
    /// Replacements started for dead workers.
    public var replacements: Int
    /// Worker deaths that were not injected (crashes, errors), described.
    public var unexpectedDeaths: [String]
    /// Worker processes still alive after the run (or threads that did not end).
    public var leakedWorkers: Int
    /// The pid of every worker process started (processes mode), all reaped by the end.
    public var workerPids: [Int32]
    /// Stopped by this signal (0: ran to the end).
    public var interruptedBy: Int32
    /// What went wrong, one line each; empty when the run passed.
    public var problems: [String]
    /// Frames from peers that had not completed the handshake, dropped unread, and their bytes.
    public var strangerFramesDropped = 0
    public var strangerBytesDropped = 0
    /// Stranger HELLOs: welcomed but never confirmed (forgotten after `--liveness`), and left
    /// unanswered while the pending handshakes were at their cap.
    public var strangerHandshakesAbandoned = 0
    public var strangerHellosDeferred = 0
    /// Latency of exact rounds without the workers' generation, µs: each round's latency minus
    /// the longest generation a worker did on receipt of its ASSIGN (with
    /// ``StressConfig/pregenerate``, only the loss column: the rest was generated before the round
    /// began). Nil in reports of older versions.
    public var aggregationLatencyMicros: LatencySummary?
    /// Per round, the longest time one worker spent generating the node sums of one order
    /// (before the round with ``StressConfig/pregenerate``, or inside it), µs.
    public var generationMicros: LatencySummary?
    /// Bytes per round of the coordinator and of each worker, and the busiest process against
    /// the all-reduce floor `2·(N−1)/N·4P`.
    public var bytesPerRound: StressBytes?
    /// Wrong answers caught (`--wrong-rate`): with star, nodes whose two answers differed (the
    /// audit); sharded, attempts whose digests differed from the expectation (computed again).
    public var wrongDetected = 0
    /// The sharded rounds' counters (nil for star).
    public var sharded: ShardedCounters?

    /// Every aggregate exact, no round lost, nothing leaked, not interrupted: `problems` is empty.
    public var passed: Bool

    /// The process exit status for this outcome: 0 passed, 128 + signal when interrupted, else 1.
    public var exitStatus: Int32 {
        if interruptedBy != 0 { return 128 + interruptedBy }
        return passed ? 0 : 1
    }

    /// The JSON of the report (``JSONStyle/files``, pretty-printed: sorted keys, snake_case).
    public func json() throws(StressError) -> Data {
        do { return Data(try JSONStyle.files.pretty.encode(self)) } catch { throw .io("cannot encode the report: \(error)") }
    }

    /// The human-readable summary, one fact per line.
    public var summary: String {
        func mb(_ b: Int?) -> String { b.map { cFormat("%.1f MiB", Double($0) / 1_048_576) } ?? "n/a" }
        func rate(_ b: Double) -> String { cFormat("%.1f MiB/s", b / 1_048_576) }
        let c = config
        var lines: [String] = []
        lines.append("ztrain stress: \(c.workers) worker \(mode), \(c.aggregation.rawValue), P = \(c.parameterCount), M = \(c.leafCount) leaves (\(c.leavesPerWorker) per worker), \(c.rounds) rounds, seed \(c.seed), \(endpoint)")
        lines.append(cFormat("rounds        %ld completed (%ld exact, %ld wrong), %ld lost, in %.2f s = %.2f rounds/s",
                            rounds, exactRounds, wrongAggregates, lostRounds, seconds, roundsPerSecond))
        let l = latencyMicros
        lines.append(cFormat("latency (µs)  p50 %llu  p90 %llu  p99 %llu  max %llu  mean %.0f",
                            l.p50, l.p90, l.p99, l.max, l.mean))
        if let a = aggregationLatencyMicros {
            lines.append(cFormat("aggregation   without generation (µs)  p50 %llu  p90 %llu  p99 %llu  max %llu  mean %.0f",
                                a.p50, a.p90, a.p99, a.max, a.mean))
        }
        if let g = generationMicros {
            lines.append(cFormat("generation    per round, longest order (µs)  p50 %llu  p90 %llu  p99 %llu  max %llu",
                                g.p50, g.p90, g.p99, g.max) + (c.pregenerate ? " (before each round: --pregenerate)" : " (inside the rounds)"))
        }
        lines.append("bytes         sent \(mb(bytesSent)) (\(rate(bytesSentPerSecond))), received \(mb(bytesReceived)) (\(rate(bytesReceivedPerSecond)))")
        if let b = bytesPerRound {
            func kb(_ x: Double) -> String { cFormat("%.1f KiB", x / 1024) }
            let each = ([b.coordinator] + b.workers).map { "\($0.process) in \(kb($0.bytesIn)) out \(kb($0.bytesOut))" }
            lines.append("bytes/round   " + each.joined(separator: "; "))
            lines.append("busiest       \(b.busiest): \(kb(b.busiestBytes)) per round"
                + (b.busiestToFloor.map { cFormat(" = %.2f× the all-reduce floor 2·(N−1)/N·4P = ", $0) + kb(b.floorBytes) } ?? " (one worker: no all-reduce floor)"))
        }
        var memory = "memory        peak RSS \(mb(peakRSS)); RSS after first quarter \(mb(rssFirstQuarter)), after last quarter \(mb(rssLastQuarter))"
        if let w = workerPeakRSS { memory += "; worker processes' peak RSS \(mb(w))" }
        lines.append(memory)
        if config.strangerFrames > 0 || config.strangerHellos > 0 {
            lines.append("strangers     attacked with \(config.strangerFrames) frame(s) of \(mb(StressConfig.strangerFrameBytes)) (over the frame limit: refused by the socket unread) "
                + "and \(config.strangerHellos) HELLO(s); \(strangerFramesDropped) frame(s) (\(mb(strangerBytesDropped))) dropped unread, "
                + "\(strangerHandshakesAbandoned) handshake(s) abandoned, \(strangerHellosDeferred) HELLO(s) deferred")
        }
        let kinds = FaultKind.allCases.map { k -> String in
            let f = faults[k.rawValue] ?? FaultCount(injected: 0, survived: 0)
            return "\(k.rawValue) \(f.survived)/\(f.injected)"
        }
        lines.append("faults        survived/injected: " + kinds.joined(separator: ", "))
        if config.wrongRate > 0 {
            let how = config.aggregation == .sharded ? "attempts whose digests were wrong, computed again" : "nodes whose two answers differed"
            lines.append("audit         wrong answers injected \(faults[FaultKind.wrong.rawValue]?.injected ?? 0), detected \(wrongDetected) (\(how)), rounds still exact \(exactRounds)")
        }
        if let s = sharded {
            lines.append("sharded       tables \(s.tables), attempts redone \(s.attemptsRedone), orders repeated \(s.ordersRepeated), owners lost \(s.ownersLost), stale reports \(s.staleReports)")
        }
        lines.append("answers       late/duplicate \(lateOrDuplicate), invalid frames \(invalidFrames) (checksum \(checksumMismatches)), invalid answers \(invalidAnswers)")
        lines.append("orders        retried \(retried), speculative \(speculative), reassigned \(reassigned)")
        lines.append("workers       joined \(joinedWorkers), lost \(lostWorkers) (\(disconnectedWorkers) disconnected, \(lostWorkers - disconnectedWorkers) silent), rejoined \(rejoinedWorkers), replaced \(replacements), unexpected deaths \(unexpectedDeaths.count), leaked \(leakedWorkers)")
        for w in wrongDetails { lines.append("wrong         \(w)") }
        for d in unexpectedDeaths.prefix(5) { lines.append("death         \(d)") }
        lines.append(passed ? "result        PASS: every aggregate exact, no round lost, nothing leaked"
                            : "result        FAIL: " + problems.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }
}

/// A snapshot for the live progress line.
public struct StressProgress: Sendable {
    /// Rounds completed.
    public var round: Int
    /// Rounds to run.
    public var rounds: Int
    /// Seconds since the first round began.
    public var seconds: Double
    /// Median round latency so far, µs.
    public var p50Micros: UInt64
    /// Bytes sent and received so far.
    public var bytesSent: Int
    /// Bytes received so far.
    public var bytesReceived: Int
    /// Faults injected so far (thread mode; processes report at the end).
    public var faults: Int
    /// Wrong aggregates so far.
    public var wrong: Int
    /// Lost workers so far.
    public var lostWorkers: Int

    /// One line: `round 120/200  41.2 rounds/s  p50 12.3 ms  in 1.2 GB/s …`.
    public var line: String {
        let rps = seconds > 0 ? Double(round) / seconds : 0
        return cFormat("round %ld/%ld  %.1f rounds/s  p50 %.1f ms  out %.0f MiB/s  in %.0f MiB/s  faults %ld  lost workers %ld  wrong %ld",
                      round, rounds, rps, Double(p50Micros) / 1000,
                      seconds > 0 ? Double(bytesSent) / seconds / 1_048_576 : 0,
                      seconds > 0 ? Double(bytesReceived) / seconds / 1_048_576 : 0, faults, lostWorkers, wrong)
    }
}
