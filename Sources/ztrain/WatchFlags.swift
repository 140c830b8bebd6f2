import ArgumentParser
import Logging
import Observe
import Training

/// Flags for watching a run (Prometheus, TensorBoard, step lines, straggler and hang report).
struct WatchFlags: ParsableArguments {
    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 0.0.0.0:9464; 127.0.0.1:0 picks a free port, logged).", valueName: "host:port"))
    var metricsBind: String?

    @Option(help: ArgumentHelp("Write TensorBoard event files (scalars per step and per epoch) to this folder.", valueName: "dir"))
    var tensorboard: String?

    @Option(help: ArgumentHelp("Add a step line to metrics.jsonl every N steps (0: epoch lines only); TensorBoard's step scalars follow it.", valueName: "n"))
    var logEvery: Int = 0

    @Option(help: ArgumentHelp("Coordinator: log the slowest workers every S seconds (0: only on SIGUSR1).", valueName: "s"))
    var reportEvery: Double = 0

    @Option(help: ArgumentHelp("Coordinator: when a step has waited S seconds, name the workers and leaves it waits for (0: never).", valueName: "s"))
    var hangAfter: Double = 10

    var options: WatchOptions {
        WatchOptions(metricsBind: metricsBind, tensorboard: tensorboard, logEvery: logEvery, reportEvery: reportEvery, hangAfter: hangAfter)
    }

    func validate() throws {
        if logEvery < 0 { throw ValidationError("--log-every must be 0 or more (got \(logEvery))") }
        if !(reportEvery.isFinite && reportEvery >= 0) { throw ValidationError("--report-every must be 0 or a positive number of seconds") }
        if !(hangAfter.isFinite && hangAfter >= 0) { throw ValidationError("--hang-after must be 0 or a positive number of seconds") }
    }
}

/// Starts what `flags` ask for (nil when nothing: the run then pays nothing).
func startWatch(_ options: WatchOptions, directory: RunDirectory, mode: String, coordinator: Bool, logger: Logger) throws -> RunWatch? {
    let anything = options.metricsBind != nil || options.tensorboard != nil || options.logEvery > 0
        || (coordinator && (options.reportEvery > 0 || options.hangAfter > 0))
    guard anything else { return nil }
    do {
        return try RunWatch(options: options, directory: directory, mode: mode, coordinator: coordinator, logger: logger)
    } catch {
        throw fail("\(error)")
    }
}

/// Hands a coordinator's events to the watch (the core exists only after its event handler does).
final class WatchHub {
    var watch: RunWatch?
    var core: CoordinatorCore?
    var timeline: TimelineWriter?
    /// The last step whose `--hash-every` line was written (a lost owner's replay passes steps again),
    /// and the audit's rollbacks seen then (after one, the replayed steps' lines are written again).
    var hashedThrough = 0
    var auditRollbacks = 0
}
