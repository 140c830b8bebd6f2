import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Training

/// `ztrain`: train a recurrent network data-parallel over ZeroMQ.
@main
struct ZTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ztrain",
        abstract: "Train a vanilla RNN (Elman) on time series, in one process or data-parallel over ZeroMQ.",
        version: "0.1.0",
        subcommands: [Train.self, Coordinator.self, Worker.self, Launch.self, Keygen.self, Predict.self, ForecastCommand.self, Stress.self,
                      BenchCommand.self, BenchPeerCommand.self],
        defaultSubcommand: nil
    )
}

/// Flags every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .shortAndLong, help: "Only warnings and errors.")
    var quiet = false

    func bootstrap(label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical (got '\(logLevel)')")
        }
        let effective = quiet ? .warning : level
        LoggingSystem.bootstrap { name in
            var h = StreamLogHandler.standardError(label: name)
            h.logLevel = effective
            return h
        }
        var logger = Logger(label: label)
        logger.logLevel = effective
        return logger
    }
}

/// Prints `error: …` to stderr and exits with status 1: the way every command reports a failure that
/// is not a usage error.
func fail(_ message: String) -> ExitCode {
    writeToStandardError("error: \(message)\n")
    return ExitCode.failure
}
