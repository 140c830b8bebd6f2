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
import Training
import Support

/// `ztrain`: train a recurrent network data-parallel over ZeroMQ.
@main
struct ZTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ztrain",
        abstract: "Train a vanilla RNN (Elman) on time series, in one process or data-parallel over ZeroMQ.",
        version: ztrainVersion,
        subcommands: [Train.self, Coordinator.self, Worker.self, ShardCommand.self, Launch.self, Keygen.self, Predict.self, ForecastCommand.self, Diff.self, Stress.self,
                      BenchCommand.self, BenchPeerCommand.self],
        defaultSubcommand: nil
    )

    /// Parses and runs, reporting every failure the same way: `error: …` on stderr; a usage error also
    /// names the command's help and exits with 64 (EX_USAGE), any other failure with 1.
    static func main() {
        let arguments = joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))
        var command: (any ParsableCommand)? = nil
        do {
            command = try parseAsRoot(arguments)
            try command?.run()
            terminate(0)
        } catch let e as ExitCode {
            terminate(e.rawValue)
        } catch let e as ValidationError where command != nil {
            // found while running, after parsing: name the command's help, not the top level's
            let type = command.map { Swift.type(of: $0) } ?? ZTrain.self
            let name = type.configuration.commandName ?? String(describing: type).lowercased()
            writeToStandardError("error: \(e.message)\n  See 'ztrain \(name) --help' for more information.\n")
            terminate(ExitCode.validationFailure.rawValue)
        } catch {
            // parse errors, help, version and completion requests, anything else
            let code = exitCode(for: error)
            let text = fullMessage(for: error)
            if code == .success {
                print(text)
            } else if !text.isEmpty {
                writeToStandardError(lowercasingErrorPrefix(text) + "\n")
            }
            terminate(code.rawValue)
        }
    }
}

/// ArgumentParser's messages start with `Error: `; ours with `error: `, as compilers and git do.
func lowercasingErrorPrefix(_ text: String) -> String {
    text.hasPrefix("Error: ") ? "error: " + text.dropFirst(7) : text
}

/// `--lr -1` as `--lr=-1`: ArgumentParser takes a value that starts with `-` for a flag, so a negative
/// number after an option is joined to it (`--range -10:10` too). Nothing after `--` is touched.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        let a = arguments[i]
        if a == "--" { out += arguments[i...]; break }
        if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count, looksNegative(arguments[i + 1]) {
            out.append(a + "=" + arguments[i + 1])
            i += 2
            continue
        }
        out.append(a)
        i += 1
    }
    return out
}

/// `-1`, `-0.5`, `-.5`, `-1e-3`, `-10:10`: a minus sign and then a digit (or a point and a digit).
func looksNegative(_ s: String) -> Bool {
    let u = Array(s.utf8)
    func digit(_ i: Int) -> Bool { i < u.count && u[i] >= 0x30 && u[i] <= 0x39 }
    guard u.count >= 2, u[0] == 0x2D else { return false }
    return digit(1) || (u[1] == 0x2E && digit(2))
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
        let terminal = ProgressReporter.stderrIsTerminal
        LoggingSystem.bootstrap { name in LineLogHandler(label: name, level: effective, clearsLine: terminal) }
        var logger = Logger(label: label)
        logger.logLevel = effective
        return logger
    }
}

/// One log line on stderr: `2026-11-28T02:50:00Z info ztrain.train: message key=value`, written
/// with one write(2) so that lines of several threads do not interleave. On a terminal it first erases
/// the line (a live progress line, redrawn below at its next update).
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let clearsLine: Bool

    init(label: String, level: Logger.Level, clearsLine: Bool) {
        self.label = label
        self.logLevel = level
        self.clearsLine = clearsLine
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let tail = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let error = event.error.map { " (\($0))" } ?? ""
        writeToStandardError("\(clearsLine ? "\r\u{1B}[K" : "")\(isoTimestamp()) \(event.level) \(label): \(event.message)\(error)\(tail)\n")
    }
}

/// Prints `error: …` to stderr and exits with status 1: the way every command reports a failure that
/// is not a usage error.
func fail(_ message: String) -> ExitCode {
    writeToStandardError("error: \(message)\n")
    return ExitCode.failure
}

/// Ends the process with `status` (libc's exit, which a `ParsableCommand`'s own `exit` hides).
func terminate(_ status: Int32) -> Never {
    exit(status)
}
