import ArgumentParser
import Bench
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
import Stress
import Training
import Support

/// `ztrain bench`: the performance targets and their floors, in one invocation.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the performance targets (throughput, round latency, memory, time to target) against their floors and PyTorch.",
        discussion: """
            Runs, in this order: the floors (memcpy, single-thread float32 GEMM, bare ZeroMQ round \
            trips), then the performance targets. It starts its own worker, coordinator and echo \
            processes (this binary) and ends every one of them, also on Ctrl-C. Prints a table; \
            --json writes the report, --markdown writes BENCHMARKS.md (only the part between \
            <!-- bench:begin --> and <!-- bench:end --> is regenerated).

            PyTorch baselines come from --pytorch-json (written by scripts/pytorch_baseline.py; \
            scripts/bench --pytorch does both), else from the figures recorded on the reference machine, marked \
            "recorded". Target 10 measures gloo's all_reduce in the same run with \
            scripts/pytorch_baseline.py --allreduce under --python (default python3 on the PATH); \
            without torch its baseline reads "unavailable" with the reason. Targets 10 and 11 have a row \
            for the star and one for sharded aggregation (--aggregation picks one). --only crossover \
            (not in a default run) times star against sharded rounds over P = 10^4 ... 10^7 with 2 and 4 \
            worker processes.

            Examples:
              ztrain bench --json bench.json --markdown BENCHMARKS.md
              ztrain bench --only 1,2,gemm
              ztrain bench --quick
              ztrain bench --only round-vs-gloo,round-bytes --python /tmp/ztrain-torch/bin/python
              ztrain bench --only crossover
            """)

    @Flag(help: "Tiny sizes and few repetitions (for tests): the same table, figures that mean nothing.")
    var quick = false

    @Option(help: "Only these, comma-separated: target numbers 1-11 or names (single-h32, single-h256, workers-h32, round-h32, round-10m, scaling-h256, rss, time-to-target, observe, round-vs-gloo, round-bytes), real series (csv, many-series) and floors (memcpy, gemm, zmq).")
    var only: String?

    @Option(help: "Write the report as JSON to this file.")
    var json: String?

    @Option(help: "Write the table into this Markdown file (BENCHMARKS.md) between the bench markers.")
    var markdown: String?

    @Option(help: "PyTorch figures measured by scripts/pytorch_baseline.py (JSON).")
    var pytorchJson: String?

    @Option(help: ArgumentHelp("Target 10: the Python with torch that runs scripts/pytorch_baseline.py --allreduce (default: python3 on the PATH; without torch the gloo baseline is reported unavailable).", valueName: "path"))
    var python: String?

    @Option(help: ArgumentHelp("Target 10: scripts/pytorch_baseline.py (default: found in the checkout the binary was built in, or in the current folder).", valueName: "path"))
    var baselineScript: String?

    @Option(help: ArgumentHelp("Targets 10-11: measure only this mode (star or sharded; passed on as ztrain stress --aggregation MODE). Default: both, a row each.", valueName: "mode"))
    var aggregation: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let o = only {
            do throws(BenchError) { _ = try BenchGroup.parse(o) } catch { throw ValidationError(error.description) }
        }
        if let a = aggregation, StressAggregation(rawValue: a) == nil {
            throw ValidationError("--aggregation must be star or sharded (got '\(a)')")
        }
        if let p = pytorchJson {
            do throws(BenchError) { _ = try PyTorchFigures.load(path: p) } catch { throw ValidationError(error.description) }
        }
        for (flag, path) in [("--json", json), ("--markdown", markdown)] {
            guard let path else { continue }
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard isDirectory(dir) else {
                throw ValidationError("\(flag) \(path): the folder \(dir) does not exist")
            }
        }
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.bench")
        let selection: Set<BenchGroup>?
        let pytorch: PyTorchFigures
        do throws(BenchError) {
            selection = try only.map(BenchGroup.parse)
            pytorch = try pytorchJson.map { p throws(BenchError) in try PyTorchFigures.load(path: p) } ?? .recorded
        } catch {
            throw ValidationError(error.description)
        }
        let command = ProcessInfo.processInfo.environment["ZTRAIN_BENCH_COMMAND"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (["ztrain"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let quiet = global.quiet
        let stop = StopFlag()
        let trap = SignalTrap(stop)
        let runner = BenchRunner(
            executable: LocalWorkers.currentExecutable, quick: quick, only: selection, pytorch: pytorch, stop: stop,
            logger: logger,
            progress: { line in if !quiet { writeToStandardError("bench: \(line)\n") } })
        runner.python = python
        runner.baselineScript = baselineScript
        runner.aggregation = aggregation
        let report: BenchReport
        do throws(BenchError) {
            report = try runner.run(command: command, version: ZTrain.configuration.version)
        } catch {
            _ = trap
            if case .interrupted(let sig) = error {
                writeToStandardError("bench: interrupted by signal \(sig); every process it started has ended\n")
                throw ExitCode(128 + (sig == 0 ? SIGINT : sig))
            }
            throw fail("\(error)")
        }
        _ = trap
        print(Render.table(report))
        if let path = json {
            do throws(BenchError) {
                try write(try report.json(), to: path)
            } catch {
                throw fail("\(error)")
            }
        }
        if let path = markdown {
            let existing = FileManager.default.fileExists(atPath: path) ? try? String(contentsOfFile: path, encoding: .utf8) : nil
            do throws(BenchError) {
                let text = try Render.merge(existing: existing, block: Render.markdown(report))
                try write(Data(text.utf8), to: path)
            } catch {
                throw fail("\(error)")
            }
        }
        let failed = report.results.filter { $0.error != nil }
        if !failed.isEmpty {
            throw fail("\(failed.count) measurement(s) failed: \(failed.map(\.name).joined(separator: ", ")) (see the table)")
        }
    }

    private func write(_ data: Data, to path: String) throws(BenchError) {
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw .io("cannot write \(path): \(systemMessage(error))")
        }
    }
}

/// `ztrain bench-peer` (hidden): the echo end of the bench's bare ZeroMQ floor.
struct BenchPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-peer",
        abstract: "The echo peer of 'ztrain bench' (started by it).",
        shouldDisplay: false)

    @Option(help: "The bench's ROUTER endpoint.")
    var connect: String

    @Option(help: "Bytes of the reply's first frame.")
    var replyHeader: Int

    @Option(help: "Bytes of the reply's second frame.")
    var replyPayload: Int

    @Option(help: "Exit when this process is no longer the parent.")
    var parentPid: Int32?

    func validate() throws {
        guard replyHeader >= 0 && replyPayload >= 0 else { throw ValidationError("--reply-header and --reply-payload must be 0 or more") }
    }

    func run() throws {
        if let problem = EchoPeer.run(connect: connect, replyHeader: replyHeader, replyPayload: replyPayload, parentPID: parentPid) {
            throw fail("bench-peer: \(problem)")
        }
    }
}
