import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Support

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
/// `id`), named by "M" metadata events with the host and pid when known (``name(process:host:pid:)``),
/// one "X" event per span (microseconds). The coordinator's step `wait` spans have a thread row of
/// their own (tid 2); everything else is on tid 1.
///
/// Spans on one row never partially overlap: the worker spans are placed on the coordinator's
/// clock from estimates (half the round trip each way), so a span that would begin before the
/// previous one on its row ended starts at that end instead (and one wholly before it is kept with
/// zero length there). Times are rounded to whole nanoseconds once, end and start alike, so rows
/// that touch stay touching.
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
    /// Per row (process, tid): where its last span ended, in nanoseconds.
    private var rowEnd: [UInt64: Int64] = [:]
    /// Track names given before their first span (host and pid of a worker).
    private var names: [UInt32: String] = [:]

    /// Creates (or truncates) the file at `path`.
    public init(path: String, maxEvents: Int = 2_000_000, coordinatorName: String = "coordinator") throws(TrainingError) {
        self.path = path
        self.maxEvents = maxEvents
        do {
            file = try OutputFile(path: path)
        } catch {
            throw .invalidConfig("cannot create the timeline file \(path); check that its folder exists and is writable")
        }
        batch.reserveCapacity(Self.batchSize)
        var head = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n"
        head += Self.metadata(pid: 1, name: coordinatorName)
        head += ",\n" + Self.threadName(pid: 1, tid: 2, name: "step wait")
        write(head)
    }

    deinit { close() }

    /// Names a worker's track (call before its first span): `worker ID (HOST pid PID)`.
    public func name(process: UInt32, host: String, pid: Int32) {
        names[process] = "worker \(process) (\(Self.escaped(host)) pid \(pid))"
    }

    /// The row a span goes on: the coordinator's step wait on tid 2, the rest on tid 1.
    static func tid(_ span: TimelineSpan) -> Int { span.process == 0 && span.name == "wait" ? 2 : 1 }

    /// Adds one span.
    public func add(_ span: TimelineSpan) {
        guard !closed else { return }
        guard written < maxEvents else { omitted += 1; return }
        written += 1
        var span = span
        let row = UInt64(span.process) << 8 | UInt64(Self.tid(span))
        var start = Self.nanos(span.start)
        var end = max(start, Self.nanos(span.start + max(0, span.duration)))
        if let last = rowEnd[row], start < last {
            start = last
            end = max(end, last)
        }
        rowEnd[row] = end
        span.start = Double(start) / 1e9
        span.duration = Double(end - start) / 1e9
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
        var newNames: [(UInt32, String)] = []
        for s in spans where s.process != 0 && !named.contains(s.process) {
            named.insert(s.process)
            newNames.append((s.process, names[s.process] ?? "worker \(s.process)"))
        }
        let job = UncheckedSendable((spans, newNames))
        queue.async { [self] in
            let (spans, names) = job.value
            var text = ""
            text.reserveCapacity(spans.count * 120)
            for (id, name) in names { text += ",\n" + Self.metadata(pid: Int(id) + 1, name: name) }
            for s in spans {
                // start and duration are whole nanoseconds (``add(_:)``): the printed end is exactly the next start
                let ts = Self.nanos(s.start), dur = Self.nanos(s.duration)
                text += ",\n{\"name\":\"\(s.name)\",\"cat\":\"step\",\"ph\":\"X\",\"ts\":\(Self.micros(ns: ts)),\"dur\":\(Self.micros(ns: max(0, dur))),\"pid\":\(Int(s.process) + 1),\"tid\":\(Self.tid(s)),\"args\":{\"step\":\(s.step)}}"
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

    static func threadName(pid: Int, tid: Int, name: String) -> String {
        "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\"\(name)\"}}"
    }

    /// Seconds as whole nanoseconds.
    static func nanos(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }

    /// A host name fit for a JSON string (quotes, backslashes and control characters dropped).
    static func escaped(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0 != "\"" && $0 != "\\" && $0.value >= 0x20 }.map(Character.init))
    }

    /// Nanoseconds as microseconds with three decimals.
    private static func micros(ns: Int64) -> String {
        let sign = ns < 0 ? "-" : ""
        let a = abs(ns)
        let frac = a % 1000
        return "\(sign)\(a / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
    }
}
