import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Observe
import Stress
import Training
import Support

/// `ztrain stress`: the gradient-aggregation stress harness.
struct Stress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stress the gradient aggregation: synthetic workers over ZeroMQ, injected faults, exact aggregates.",
        discussion: """
            A coordinator in this process runs --rounds rounds of the real StepAggregator and canonical \
            reduction tree over a ROUTER socket; --workers synthetic workers (threads, or with --processes \
            child processes) answer ASSIGNs with seeded node sums. Every round's aggregate must equal, bit \
            for bit, the canonical sum computed independently. Faults are injected by the workers with the \
            given probabilities; the summary reports them as injected and survived, with round latency \
            percentiles, bytes, memory, and the aggregator's retry/speculation/reassignment counters.

            Exit status: 0 if every aggregate was exact, no round was lost and no worker leaked; 1 \
            otherwise (the message says what went wrong); 128 + signal when interrupted.

            Example: ztrain stress --workers 64 --params 1000000 --rounds 200 --kill-rate 0.01 \
            --slow-rate 0.05 --drop-rate 0.01 --duplicate-rate 0.01 --corrupt-rate 0.01
            """)

    @Option(help: "Synthetic workers.")
    var workers: Int

    @Option(help: "Gradient values per leaf, P.")
    var params: Int

    @Option(help: "Rounds (aggregation steps).")
    var rounds: Int

    @Option(help: "Leaves per worker, L: the reduction tree has workers × L leaves.")
    var leavesPerWorker: Int = 1

    @Flag(help: "Workers as child processes (default: threads of this process).")
    var processes = false

    @Option(help: "Seed of the leaf gradients and of every fault decision.")
    var seed: UInt64 = 0

    @Option(help: "Per round and worker: probability that the worker dies (it is replaced).")
    var killRate: Double = 0

    @Option(help: "Per round and worker: probability that the worker is a straggler.")
    var slowRate: Double = 0

    @Option(help: "A straggler sleeps this many typical round times before answering.")
    var slowFactor: Double = 4

    @Option(help: "Per GRADIENT: probability that it is not sent.")
    var dropRate: Double = 0

    @Option(help: "Per GRADIENT: probability that it is sent twice.")
    var duplicateRate: Double = 0

    @Option(help: "Per GRADIENT: probability that bytes of its payload are flipped.")
    var corruptRate: Double = 0

    @Flag(help: "Workers send the GRADIENTs of each batch of work in a shuffled order.")
    var reorder = false

    @Option(help: "Per GRADIENT: probability that one of its sums is wrong with a valid checksum; every order is then audited (computed twice and compared) and a round with a mismatch is computed again.")
    var wrongRate: Double = 0

    @Option(help: "Seconds of silence after which a worker is lost.")
    var liveness: Double = 3

    @Option(help: "Seconds after which an unanswered order is given again (at least 3 typical rounds).")
    var retryAfter: Double = 0.5

    @Option(help: "Seconds after which an incomplete round counts as lost.")
    var roundTimeout: Double = 30

    @Option(help: "Where the coordinator listens: tcp (127.0.0.1, a free port) or ipc (a private temp folder).")
    var transport: StressTransport = .tcp

    @Option(help: "Also write the summary as JSON to this file.")
    var json: String?

    @Option(help: "Attack: a stranger process sends this many 1 MiB frames (never completing a handshake) during the rounds.")
    var strangerFrames: Int = 0

    @Option(help: "Attack: the stranger also says HELLO from this many new connections that never read.")
    var strangerHellos: Int = 0

    @Flag(help: "Measurement: workers generate each round's leaf gradients before the round begins (the round's clock then runs without the generation; for runs without faults).")
    var pregenerate = false

    @Option(help: "star: the coordinator reduces every worker's node sums; sharded: the workers own slices of the parameters, reduce-scatter their node sums to the owners and all-gather the reduced slices, and report digests of the whole vector (checked bit for bit).")
    var aggregation: StressAggregation = .star

    @Option(help: "With --aggregation sharded: about this many floats per slice; each worker owns ⌈P / (workers × this)⌉ slices, so that reducing and sending pipeline.")
    var sliceFloats: Int = 262_144

    @Option(help: .hidden)
    var perturbRound: Int?

    @Option(help: .hidden)
    var strangerConnect: String?

    @Option(help: .hidden)
    var workerConnect: String?

    @Option(help: .hidden)
    var workerSerial: Int = 0

    @Option(help: .hidden)
    var parentPid: Int32?

    @Option(help: .hidden)
    var workerLedger: String?

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics while it runs (rounds as ztrain_steps_total, bytes, median round latency).", valueName: "host:port"))
    var metricsBind: String?

    @OptionGroup var global: GlobalOptions

    var config: StressConfig {
        var c = StressConfig(workers: workers, parameterCount: params, rounds: rounds, leavesPerWorker: leavesPerWorker,
                             seed: seed, killRate: killRate, slowRate: slowRate, slowFactor: slowFactor, dropRate: dropRate,
                             duplicateRate: duplicateRate, corruptRate: corruptRate, reorder: reorder, liveness: liveness,
                             retryAfter: retryAfter, roundTimeout: roundTimeout, transport: transport, perturbRound: perturbRound)
        c.strangerFrames = strangerFrames
        c.wrongRate = wrongRate
        c.strangerHellos = strangerHellos
        c.pregenerate = pregenerate
        c.aggregation = aggregation
        c.sliceFloats = sliceFloats
        return c
    }

    func validate() throws {
        do throws(StressError) { try config.validate() } catch {
            if case .invalidConfig(let text) = error { throw ValidationError(text) }
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        if let endpoint = workerConnect {
            try runWorker(endpoint: endpoint)
            return
        }
        if let endpoint = strangerConnect {
            _ = StrangerAttack.run(endpoint: endpoint, frames: strangerFrames, hellos: strangerHellos, parentPID: parentPid)
            return
        }
        let logger = try global.bootstrap(label: "ztrain.stress")
        let mode: WorkerMode = processes ? .processes(executable: LocalWorkers.currentExecutable) : .threads
        let harness: StressHarness
        do { harness = try StressHarness(config: config, mode: mode, logger: logger) } catch { throw fail("\(error)") }
        let live = !global.quiet && isatty(STDERR_FILENO) == 1
        var exporter: PrometheusExporter? = nil
        var metricsServer: MetricsServer? = nil
        if let bind = metricsBind {
            let e = PrometheusExporter(version: ztrainVersion, commit: RunIdentity.gitCommit ?? "unknown", mode: "stress")
            do { metricsServer = try MetricsServer(bind: bind, logger: logger) { e.render() } } catch { throw fail("\(error)") }
            exporter = e
            logger.info("metrics at http://\(metricsServer?.address ?? bind)/metrics")
        }
        defer { metricsServer?.stop() }
        if live || exporter != nil {
            harness.onProgress = { progress in
                exporter?.record(stressRounds: progress.round, bytesSent: progress.bytesSent, bytesReceived: progress.bytesReceived,
                                 p50Seconds: Double(progress.p50Micros) / 1e6)
                if live { writeToStandardError("\r\u{1B}[2K\(cutToTerminalWidth(progress.line))") }
            }
        }
        let stop = StopFlag()
        let trap = SignalTrap(stop)
        let report: StressReport
        do { report = try harness.run(stop: stop) } catch {
            if live { writeToStandardError("\n") }
            throw fail("\(error)")
        }
        _ = trap
        if live { writeToStandardError("\n") }
        print(report.summary)
        if let path = json {
            do {
                try report.json().write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw fail("cannot write \(path): \(error)")
            }
        }
        if report.interruptedBy != 0 { throw ExitCode(report.exitStatus) }
        if !report.passed { throw fail(report.problems.joined(separator: "; ")) }
    }

    /// The hidden worker-process mode: `ztrain stress --worker-connect ENDPOINT …` (started by
    /// `--processes`; same flags as the harness).
    private func runWorker(endpoint: String) throws {
        var logger = Logger(label: "ztrain.stress.worker")
        logger.logLevel = .warning
        guard let path = workerLedger else { throw ValidationError("--worker-connect needs --worker-ledger") }
        let sink: FaultFile
        do { sink = try FaultFile(path: path) } catch { throw fail("\(error)") }
        let exit: WorkerExit
        if aggregation == .sharded {
            exit = ShardStressWorker(config: config, serial: workerSerial, sink: sink, stop: StopFlag(),
                                     parentPID: parentPid, killSelf: true, logger: logger).run(endpoint: endpoint)
        } else {
            exit = StressWorker(config: config, serial: workerSerial, sink: sink, stop: StopFlag(),
                                parentPID: parentPid, killSelf: true, logger: logger).run(endpoint: endpoint)
        }
        switch exit {
        case .shutdown, .stopped, .killed:
            return
        case .failed(let why):
            throw fail("stress worker \(workerSerial): \(why)")
        }
    }
}

extension StressTransport: ExpressibleByArgument {}
extension StressAggregation: ExpressibleByArgument {}
