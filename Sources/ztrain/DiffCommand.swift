import ArgumentParser
import Checkpoint
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Series
import Support
import Training

/// `ztrain diff RUN_A RUN_B`: proves two runs equal over the steps both hashed, or names where they part.
struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two runs by their weights hashes: identical (exit 0), or the first hashed step where they differ (exit 1).",
        discussion: """
            Reads both runs' metrics.jsonl (the epoch lines' weights_hash, and the hash lines of --hash-every K), \
            and summary.json's final weights_hash, aligns them by step and compares; also compares the final \
            model.safetensors when both have one. Nothing is known about steps only one run hashed, nor beyond \
            the last hashed step both have. Exit 2: a folder cannot be read, or holds no hashes.

            With --narrow and checkpoints in both runs (--checkpoint-every), the runs are replayed in this \
            process from the last checkpoint step where their weights agree, hashing every step, to name the \
            first step whose weights differ.

            Examples:
              ztrain diff runs/a runs/b
              ztrain diff --narrow runs/a runs/b
            """)

    @Argument(help: "The first run's output folder.")
    var runA: String

    @Argument(help: "The second run's output folder.")
    var runB: String

    @Flag(help: "When the runs differ, replay both from their last agreeing checkpoint (in this process) to name the first differing step.")
    var narrow = false

    @Option(help: "Compute threads for --narrow's replays (the bits do not depend on it).")
    var threads: Int = 1

    func validate() throws {
        if !(1...1024).contains(threads) { throw ValidationError("--threads must be in 1...1024 (got \(threads))") }
    }

    func run() throws {
        let a = try readRun(runA)
        let b = try readRun(runB)
        for (name, r) in [(runA, a), (runB, b)] {
            if !r.hashes.conflicts.isEmpty {
                print("warning: \(name) records different hashes for step(s) \(r.hashes.conflicts.sorted().prefix(5).map(String.init).joined(separator: ", ")) (two runs wrote into one metrics.jsonl?); the first of each is used")
            }
        }
        let alignment = HashAlignment.compare(a.hashes.byStep, b.hashes.byStep)
        let models = compareModels()
        switch alignment {
        case .noCommonStep:
            throw diffError("the runs hashed no step in common (\(runA): \(describe(a.hashes.byStep)); \(runB): \(describe(b.hashes.byStep))); train both with the same --hash-every, or compare runs of the same length")
        case .identical(let n, let upTo):
            if models == false {
                print("differ: \(n) hashed step\(n == 1 ? "" : "s") agree, up to step \(upTo), but the final model.safetensors differ: the runs part after step \(upTo) (or their model files were written from other weights)")
                throw ExitCode(1)
            }
            print("identical: \(n) hashed step\(n == 1 ? "" : "s") agree, up to step \(upTo) (the last hashed step common to both; beyond it unknown)\(modelNote(models))")
            if narrow { print("narrow: nothing to narrow") }
        case .differ(let at, let last, let n):
            let from = (last ?? 0) + 1
            print("differ: first differing hashed step \(at) (\(last.map { "last agreeing step \($0), \(n) hashed step\(n == 1 ? "" : "s") agreeing" } ?? "no earlier common hashed step agrees")); the runs part somewhere in steps \(from)...\(at)\(modelNote(models))")
            if narrow { try narrowDown(before: at, a: a, b: b) }
            throw ExitCode(1)
        }
    }

    /// A run's recorded hashes: its metrics.jsonl, and summary.json's final hash when the run ended without error.
    struct RecordedRun {
        var hashes: RunHashes
    }

    func readRun(_ path: String) throws -> RecordedRun {
        var hashes: RunHashes
        do { hashes = try RunHashes.read(runDirectory: path) } catch { throw diffError("\(error)") }
        let summaryPath = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("summary.json").path
        if let data = FileManager.default.contents(atPath: summaryPath),
           let s = try? JSONStyle.files.decode(SummaryHash.self, from: [UInt8](data)),
           s.error == nil, let text = s.weightsHash, let steps = s.steps, steps > 0 {
            guard let h = WeightsHash.parse(text) else { throw diffError("\(summaryPath): weights_hash \"\(text)\" is not 16 hex digits") }
            if let old = hashes.byStep[steps], old != h {
                hashes.conflicts.append(steps)
            } else {
                hashes.byStep[steps] = h
            }
        }
        if hashes.byStep.isEmpty {
            throw diffError("\(path) records no weights hashes (\(hashes.lines) line(s) in metrics.jsonl, none with weights_hash): it was trained by a ztrain from before them, or ended before its first epoch; train again (add --hash-every K for a hash every K steps)")
        }
        return RecordedRun(hashes: hashes)
    }

    /// The fields of `summary.json` the comparison reads.
    struct SummaryHash: Decodable {
        var steps: Int?
        var weightsHash: String?
        var error: String?
    }

    /// Compares the final `model.safetensors` of both runs: nil when either has none (or cannot be read).
    func compareModels() -> Bool? {
        func load(_ dir: String) -> LoadedModel? {
            try? loadModel(path: URL(fileURLWithPath: dir, isDirectory: true).appendingPathComponent("model.safetensors").path)
        }
        guard let a = load(runA), let b = load(runB) else { return nil }
        return a.config == b.config && a.parameters.count == b.parameters.count
            && zip(a.parameters, b.parameters).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    func modelNote(_ same: Bool?) -> String {
        switch same {
        case true?: return "; model.safetensors identical"
        case false?: return "; model.safetensors differ"
        case nil: return ""
        }
    }

    func describe(_ steps: [Int: UInt64]) -> String {
        let s = steps.keys.sorted()
        guard let first = s.first, let last = s.last else { return "none" }
        return "\(s.count) hashed step\(s.count == 1 ? "" : "s") in \(first)...\(last)"
    }

    func diffError(_ message: String) -> ExitCode {
        writeToStandardError("error: \(message)\n")
        return ExitCode(2)
    }

    // MARK: - --narrow

    /// Checkpoint files by step (from their names).
    func checkpointSteps(_ dir: String) -> [Int: URL] {
        let store = CheckpointStore(runDirectory: URL(fileURLWithPath: dir, isDirectory: true), keep: 1)
        var out: [Int: URL] = [:]
        for url in store.files() {
            let name = url.deletingPathExtension().lastPathComponent
            if name.hasPrefix("step-"), let s = Int(name.dropFirst(5)) { out[s] = url }
        }
        return out
    }

    /// Where a run's hash after each step from a start step on comes from: a replay of its
    /// checkpoint there, or its own hash lines when they cover every step.
    enum Source {
        case replay(RunCheckpoint)
        case recorded
    }

    /// Names the first step whose weights differ, before `end` (the first differing hashed step):
    /// from the last step `c < end` where both runs' weights are known to agree (a checkpoint's
    /// weights, or a recorded hash) and each run's hashes over `c+1...end` can be had (a replay of
    /// its checkpoint at `c`, or its hash lines of `--hash-every 1`), compares them step by step.
    func narrowDown(before end: Int, a: RecordedRun, b: RecordedRun) throws {
        let ca = checkpointSteps(runA), cb = checkpointSteps(runB)
        let ra = a.hashes.byStep, rb = b.hashes.byStep
        func covers(_ r: [Int: UInt64], from c: Int) -> Bool { ((c + 1)...max(c + 1, end)).allSatisfy { r[$0] != nil } }
        func loaded(_ url: URL?) -> RunCheckpoint? { url.flatMap { try? CheckpointStore.load($0) } }
        var start: (step: Int, a: Source, b: Source)? = nil
        for c in Set(ca.keys).union(cb.keys).filter({ $0 > 0 && $0 < end }).sorted(by: >) {
            let x = loaded(ca[c]), y = loaded(cb[c])
            guard x != nil || y != nil else { continue }
            guard let ha = x?.weightsHash ?? ra[c], let hb = y?.weightsHash ?? rb[c], ha == hb else { continue }
            let sa: Source? = x.map { .replay($0) } ?? (covers(ra, from: c) ? .recorded : nil)
            let sb: Source? = y.map { .replay($0) } ?? (covers(rb, from: c) ? .recorded : nil)
            if let sa, let sb {
                start = (c, sa, sb)
                break
            }
        }
        guard let (c, sa, sb) = start else {
            print("narrow: no step before \(end) where both runs' weights are known to agree and each can be followed step by step (\(runA): \(ca.count), \(runB): \(cb.count) checkpoint(s)); give the runs --checkpoint-every and a --keep that keeps one before the divergence (or one of them --hash-every 1)")
            return
        }
        var replayed: [String] = []
        func hashes(_ name: String, _ source: Source, _ recorded: [Int: UInt64]) throws -> [Int: UInt64] {
            guard case .replay(let checkpoint) = source else { return recorded }
            replayed.append(name)
            do {
                return try Replay.stepHashes(from: checkpoint, series: try series(checkpoint), through: end, threads: threads)
            } catch let e as ExitCode {
                throw e
            } catch {
                throw diffError("--narrow cannot replay \(name) from step \(c): \(error)")
            }
        }
        let ha = try hashes(runA, sa, ra)
        let hb = try hashes(runB, sb, rb)
        // a replay is trusted where it reproduces what its run recorded
        var checked = 0
        for (name, source, series, recorded) in [(runA, sa, ha, ra), (runB, sb, hb, rb)] {
            guard case .replay = source else { continue }
            for s in recorded.keys.sorted() where s > c && s <= end {
                guard let h = series[s] else { continue }
                if h != recorded[s] {
                    print("narrow: the replay of \(name) gives \(WeightsHash.hex(h)) at step \(s) but the run recorded \(recorded[s].map(WeightsHash.hex) ?? "?"): the replay does not reproduce the run (another build or machine?), so it cannot narrow the divergence")
                    return
                }
                checked += 1
            }
        }
        let how = "replayed \(replayed.joined(separator: " and ")) in this process from \(replayed.count == 1 ? "its checkpoint" : "their checkpoints") at step \(c), where the weights agree"
            + (replayed.count == 1 ? ", against the other run's hash lines" : "")
            + "; the replays reproduce \(checked) recorded hash\(checked == 1 ? "" : "es") in \(c + 1)...\(end)"
        for s in (c + 1)...max(c + 1, end) {
            guard let p = ha[s], let q = hb[s] else {
                print("narrow: \(how); nothing is known beyond step \(s - 1) (a replay ended there)")
                return
            }
            if p != q {
                print("narrowed: step \(s) is the first whose weights differ (\(how); steps \(c + 1)...\(s - 1) agree)")
                return
            }
        }
        print("narrow: \(how); they agree through step \(end), yet the runs recorded different hashes there: the replays do not reproduce the runs; nothing narrower is known")
    }

    func series(_ c: RunCheckpoint) throws -> Series {
        do { return try c.config.loadSeries().model } catch { throw diffError("--narrow cannot reload the data \(c.config.data) of the run: \(error)") }
    }
}
