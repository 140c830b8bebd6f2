import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One span of a step on the coordinator's clock, for `--timeline`.
public struct TimelineSpan: Sendable, Equatable {
    /// 0 for the coordinator, else the worker's id.
    public var process: UInt32
    /// `compute`, `send`, `wait`, `reduce` or `optimizer`.
    public var name: String
    /// Seconds on the coordinator's clock.
    public var start: Double
    public var duration: Double
    /// The optimizer step the span belongs to.
    public var step: Int

    public init(process: UInt32, name: String, start: Double, duration: Double, step: Int) {
        self.process = process
        self.name = name
        self.start = start
        self.duration = duration
        self.step = step
    }
}

/// Writes spans as a Chrome trace (`{"traceEvents": [...]}`, open it in `chrome://tracing` or
/// Perfetto): one process track per ztrain process (pid 1: the coordinator, pid 1 + id: worker
/// `id`), named by "M" metadata events, one "X" event per span (microseconds).
///
/// ``add(_:)`` only appends the span to a batch: batches of 4,096 are formatted and written by a
/// background queue, so the step path pays next to nothing and memory stays bounded however long
/// the run. After `maxEvents` spans the rest are counted, not written, and a final metadata event
/// says how many were left out. ``close()`` writes what is left and ends the JSON.
public final class TimelineWriter: @unchecked Sendable {
    // @unchecked: `batch`, `named`, `written`, `omitted`, `closed` belong to the thread that
    // calls `add`/`close`; the file is touched only on `queue` (serial).
    public let path: String
    public let maxEvents: Int
    private let file: OutputFile
    private let queue = DispatchQueue(label: "ztrain.timeline")
    private var batch: [TimelineSpan] = []
    private var named = Set<UInt32>()
    public private(set) var written = 0
    public private(set) var omitted = 0
    private var closed = false
    private static let batchSize = 4096

    /// Creates (or truncates) the file at `path`.
    public init(path: String, maxEvents: Int = 2_000_000) throws(TrainingError) {
        self.path = path
        self.maxEvents = maxEvents
        do {
            file = try OutputFile(path: path)
        } catch {
            throw .invalidConfig("cannot create the timeline file \(path); check that its folder exists and is writable")
        }
        batch.reserveCapacity(Self.batchSize)
        var head = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n"
        head += Self.metadata(pid: 1, name: "coordinator")
        write(head)
    }

    deinit { close() }

    /// Adds one span.
    public func add(_ span: TimelineSpan) {
        guard !closed else { return }
        guard written < maxEvents else { omitted += 1; return }
        written += 1
        batch.append(span)
        if batch.count >= Self.batchSize { hand() }
    }

    /// Writes what is left and ends the JSON (waits for the background writes); the file is closed
    /// with the writer.
    /// Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        hand()
        var tail = ""
        if omitted > 0 {
            tail += ",\n{\"name\":\"note\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"\(omitted) spans after the first \(maxEvents) were left out\"}}"
        }
        tail += "\n]}\n"
        write(tail)
        queue.sync {}
    }

    /// Gives the batch to the background queue, with the metadata of processes seen first.
    private func hand() {
        guard !batch.isEmpty else { return }
        let spans = batch
        batch.removeAll(keepingCapacity: true)
        var newNames: [UInt32] = []
        for s in spans where s.process != 0 && !named.contains(s.process) {
            named.insert(s.process)
            newNames.append(s.process)
        }
        let job = UncheckedSendable((spans, newNames))
        queue.async { [self] in
            let (spans, names) = job.value
            var text = ""
            text.reserveCapacity(spans.count * 120)
            for id in names { text += ",\n" + Self.metadata(pid: Int(id) + 1, name: "worker \(id)") }
            for s in spans {
                text += ",\n{\"name\":\"\(s.name)\",\"cat\":\"step\",\"ph\":\"X\",\"ts\":\(Self.micros(s.start)),\"dur\":\(Self.micros(max(0, s.duration))),\"pid\":\(Int(s.process) + 1),\"tid\":1,\"args\":{\"step\":\(s.step)}}"
            }
            try? file.write(Array(text.utf8))
        }
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        queue.async { [file] in try? file.write(bytes) }
    }

    private static func metadata(pid: Int, name: String) -> String {
        "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":1,\"args\":{\"name\":\"\(name)\"}},\n"
            + "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":1,\"args\":{\"sort_index\":\(pid)}}"
    }

    /// Seconds as microseconds with three decimals.
    private static func micros(_ seconds: Double) -> String {
        let ns = Int64((seconds * 1e9).rounded())
        let sign = ns < 0 ? "-" : ""
        let a = abs(ns)
        let frac = a % 1000
        return "\(sign)\(a / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
    }
}
