#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Support

/// A `--hash-every` line of `metrics.jsonl` (``JSONStyle/files``, sorted keys):
///
/// ```json
/// {"kind":"hash","step":12,"time":"2026-11-28T06:00:00Z","weights_hash":"9f2c…(16 hex digits)"}
/// ```
///
/// `weights_hash` is ``WeightsHash`` of the weights after step `step`'s update. Epoch lines carry the
/// same field for the epoch's last step.
public struct HashLine: Sendable, Codable, Equatable {
    public var kind = "hash"
    public var step: Int
    /// ``WeightsHash/hex(_:)`` of the weights after the step.
    public var weightsHash: String
    /// When the line was written (ISO 8601, UTC; ``RunDirectory/append(hash:)`` sets it).
    public var time: String?

    public init(step: Int, hash: UInt64, time: String? = nil) {
        self.step = step
        weightsHash = WeightsHash.hex(hash)
        self.time = time
    }
}

extension HashLine {
    /// The hash lines of the `metrics.jsonl` in run folder `path`, in file order (none when it has no
    /// readable file): a resumed run keeps those up to its checkpoint's step.
    public static func lines(inRunDirectory path: String) -> [HashLine] {
        let file = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("metrics.jsonl").path
        guard let data = FileManager.default.contents(atPath: file) else { return [] }
        let decoder = JSONStyle.files.decoder()
        let marker = Array(#""kind":"hash""#.utf8)
        var out: [HashLine] = []
        for line in [UInt8](data).split(separator: 0x0A) where line.count >= marker.count {
            // only the lines that say they are hash lines are decoded
            guard line.indices.contains(where: { line[$0...].starts(with: marker) }),
                  let h = try? decoder.decode(HashLine.self, from: Data(line)), h.kind == "hash", WeightsHash.parse(h.weightsHash) != nil
            else { continue }
            out.append(h)
        }
        return out
    }
}

extension RunDirectory {
    /// Appends a hash line to `metrics.jsonl`, stamped with the time now unless it has one.
    public func append(hash line: HashLine) throws(TrainingError) {
        var l = line
        if l.time == nil { l.time = isoTimestamp() }
        let bytes: [UInt8]
        do { bytes = try JSONStyle.files.line(l) } catch { throw .output("cannot encode the hash line of step \(l.step): \(error)") }
        try appendLines(bytes)
    }
}

/// The weights hashes a run recorded in its `metrics.jsonl`: the epoch lines' `weights_hash` and the
/// hash lines, by step.
///
/// ```swift
/// let a = try RunHashes.read(runDirectory: "runs/a")
/// a.byStep[12]   // the hash after step 12, if recorded
/// ```
public struct RunHashes: Sendable, Equatable {
    /// Step → hash after that step.
    public var byStep: [Int: UInt64] = [:]
    /// Steps recorded twice with different hashes (a file two runs wrote into); the first is kept.
    public var conflicts: [Int] = []
    /// Lines that are not JSON objects (a line cut short by a kill), left out.
    public var unreadable = 0
    /// Lines read, hashed or not.
    public var lines = 0

    public init() {}

    /// The fields a hashed line has (any other line is read and left out).
    private struct Record: Decodable {
        var step: Int?
        var weightsHash: String?
    }

    /// Reads the hashes of `metrics.jsonl`'s text (`source` names it in errors). A line whose
    /// `weights_hash` is not 16 hex digits is an error; a line that is not JSON is counted in ``unreadable``.
    public static func read(metricsJSONL bytes: [UInt8], source: String) throws(TrainingError) -> RunHashes {
        var h = RunHashes()
        let decoder = JSONStyle.files.decoder()
        var number = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            number += 1
            guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
            h.lines += 1
            guard let r = try? decoder.decode(Record.self, from: Data(line)) else {
                h.unreadable += 1
                continue
            }
            guard let text = r.weightsHash else { continue }
            guard let step = r.step, step >= 0, let hash = WeightsHash.parse(text) else {
                throw .data("\(source):\(number): weights_hash \"\(text)\" is not 16 hex digits with a step")
            }
            if let old = h.byStep[step] {
                if old != hash && !h.conflicts.contains(step) { h.conflicts.append(step) }
            } else {
                h.byStep[step] = hash
            }
        }
        return h
    }

    /// Reads `DIR/metrics.jsonl`.
    public static func read(runDirectory path: String) throws(TrainingError) -> RunHashes {
        let file = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("metrics.jsonl").path
        guard isDirectory(path) else { throw .data("\(path) is not a run folder (no such directory)") }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw .data("\(path) has no readable metrics.jsonl: is it a ztrain run folder?")
        }
        return try read(metricsJSONL: [UInt8](data), source: file)
    }
}

/// How two runs' recorded hashes compare, step by step over the steps both recorded
/// (``compare(_:_:)``). Nothing is known about steps only one run hashed, nor beyond the last common one.
public enum HashAlignment: Sendable, Equatable {
    /// Every common hashed step agrees: `agreeing` of them, the last being `upTo`.
    case identical(agreeing: Int, upTo: Int)
    /// The first common hashed step whose hashes differ is `at`; before it `agreeing` common steps
    /// agree, the last being `lastAgreeing` (nil: none). The runs part somewhere in
    /// `(lastAgreeing ?? 0) + 1 ... at`.
    case differ(at: Int, lastAgreeing: Int?, agreeing: Int)
    /// The runs hashed no step in common.
    case noCommonStep

    /// Aligns `a` and `b` (step → hash) by step.
    ///
    /// ```swift
    /// HashAlignment.compare([1: 7, 2: 8, 3: 9], [2: 8, 3: 5])   // .differ(at: 3, lastAgreeing: 2, agreeing: 1)
    /// ```
    public static func compare(_ a: [Int: UInt64], _ b: [Int: UInt64]) -> HashAlignment {
        let common = a.keys.filter { b[$0] != nil }.sorted()
        guard let last = common.last else { return .noCommonStep }
        var agreeing = 0
        var lastAgreeing: Int? = nil
        for s in common {
            if a[s] != b[s] { return .differ(at: s, lastAgreeing: lastAgreeing, agreeing: agreeing) }
            agreeing += 1
            lastAgreeing = s
        }
        return .identical(agreeing: agreeing, upTo: last)
    }
}
