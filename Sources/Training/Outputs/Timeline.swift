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
        var head = Array(Self.head.utf8)
        Self.appendMetadata(pid: 1, name: coordinatorName, to: &head, first: true)
        Self.append(TraceEvent(name: "thread_name", ph: "M", pid: 1, tid: 2, args: .init(name: "step wait")), to: &head)
        write(head)
    }

    deinit { close() }

    /// Names a worker's track (call before its first span): `worker ID (HOST pid PID)`.
    public func name(process: UInt32, host: String, pid: Int32) {
        names[process] = "worker \(process) (\(host) pid \(pid))"
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
        var tail: [UInt8] = []
        if omitted > 0 {
            let note = "\(omitted) spans after the first \(maxEvents) were left out"
            Self.append(TraceEvent(name: "note", ph: "M", pid: 1, tid: 1, args: .init(name: note)), to: &tail)
        }
        tail += Array(Self.tail.utf8)
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
            var bytes: [UInt8] = []
            bytes.reserveCapacity(spans.count * 120)
            let encoder = JSONStyle.canonical.encoder()
            for (id, name) in names { Self.appendMetadata(pid: Int(id) + 1, name: name, to: &bytes, encoder: encoder) }
            for s in spans {
                // start and duration are whole nanoseconds (``add(_:)``)
                let ts = Self.nanos(s.start), dur = Self.nanos(s.duration)
                let event = TraceEvent(
                    name: s.name, cat: "step", ph: "X", ts: Self.micros(ns: ts), dur: Self.micros(ns: max(0, dur)),
                    pid: Int(s.process) + 1, tid: Self.tid(s), args: .init(step: s.step))
                Self.append(event, to: &bytes, encoder: encoder)
            }
            try? file.write(bytes)
        }
    }

    private func write(_ bytes: [UInt8]) {
        queue.async { [file] in try? file.write(bytes) }
    }

    /// The file is one JSON object, `{"displayTimeUnit":"ms","traceEvents":[...]}`, written as it
    /// grows: this fixed text before the first event and ``tail`` after the last; each event is
    /// encoded by ``JSONStyle/canonical`` and preceded by `,\n` (the first by nothing).
    static let head = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n"
    static let tail = "\n]}\n"

    /// One Chrome trace event: metadata ("M": `args.name` or `args.sort_index`) or a complete span
    /// ("X": `ts` and `dur` in microseconds, `args.step`).
    struct TraceEvent: Encodable {
        var name: String
        var cat: String? = nil
        var ph: String
        var ts: Double? = nil
        var dur: Double? = nil
        var pid: Int
        var tid: Int
        var args: Args

        struct Args: Encodable {
            var name: String? = nil
            var sortIndex: Int? = nil
            var step: Int? = nil

            enum CodingKeys: String, CodingKey {
                case name
                case sortIndex = "sort_index"
                case step
            }
        }
    }

    /// Appends `,\n` (unless `first`) and the event. Every field is a string or a finite number, so
    /// encoding does not fail; an event that did would be left out.
    static func append(_ event: TraceEvent, to out: inout [UInt8], first: Bool = false,
                       encoder: JSONEncoder = JSONStyle.canonical.encoder()) {
        guard let data = try? encoder.encode(event) else { return }
        if !first { out += [0x2C, 0x0A] }
        out += data
    }

    /// The two metadata events that name and place a process track.
    private static func appendMetadata(pid: Int, name: String, to out: inout [UInt8], first: Bool = false,
                                       encoder: JSONEncoder = JSONStyle.canonical.encoder()) {
        append(TraceEvent(name: "process_name", ph: "M", pid: pid, tid: 1, args: .init(name: name)),
               to: &out, first: first, encoder: encoder)
        append(TraceEvent(name: "process_sort_index", ph: "M", pid: pid, tid: 1, args: .init(sortIndex: pid)),
               to: &out, encoder: encoder)
    }

    /// Seconds as whole nanoseconds.
    static func nanos(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }

    /// Nanoseconds as microseconds.
    private static func micros(ns: Int64) -> Double { Double(ns) / 1000 }
}
