import Foundation

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
/// Events are streamed to the file through a 64 KiB buffer, so memory stays bounded however long
/// the run; after `maxEvents` spans the rest are counted, not written, and a final metadata event
/// says how many were left out. ``close()`` ends the JSON (an unclosed file is still loaded by
/// Perfetto, which tolerates a missing `]}`).
public final class TimelineWriter {
    public let path: String
    public let maxEvents: Int
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var first = true
    private var named = Set<UInt32>()
    public private(set) var written = 0
    public private(set) var omitted = 0
    private var closed = false

    /// Creates (or truncates) the file at `path`.
    public init(path: String, maxEvents: Int = 2_000_000) throws(TrainingError) {
        self.path = path
        self.maxEvents = maxEvents
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let h = FileHandle(forWritingAtPath: path) else {
            throw .invalidConfig("cannot create the timeline file \(path); check that its folder exists and is writable")
        }
        handle = h
        buffer.reserveCapacity(1 << 16)
        append("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")
        metadata(pid: 1, name: "coordinator")
    }

    deinit { close() }

    /// Adds one span (names its process on first sight).
    public func add(_ span: TimelineSpan) {
        guard !closed else { return }
        let pid = Int(span.process) + 1
        if !named.contains(span.process) {
            named.insert(span.process)
            if span.process != 0 { metadata(pid: pid, name: "worker \(span.process)") }
        }
        guard written < maxEvents else { omitted += 1; return }
        written += 1
        let ts = span.start * 1e6, dur = max(0, span.duration * 1e6)
        event("{\"name\":\"\(span.name)\",\"cat\":\"step\",\"ph\":\"X\",\"ts\":\(fmt(ts)),\"dur\":\(fmt(dur)),\"pid\":\(pid),\"tid\":1,\"args\":{\"step\":\(span.step)}}")
    }

    /// Ends the JSON and closes the file. Idempotent.
    public func close() {
        guard !closed else { return }
        if omitted > 0 {
            event("{\"name\":\"note\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"\(omitted) spans after the first \(maxEvents) were left out\"}}")
        }
        closed = true
        append("\n]}\n")
        flush()
        try? handle.close()
    }

    private func metadata(pid: Int, name: String) {
        event("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":1,\"args\":{\"name\":\"\(name)\"}}")
        event("{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":1,\"args\":{\"sort_index\":\(pid)}}")
    }

    private func event(_ json: String) {
        if !first { append(",\n") }
        first = false
        append(json)
    }

    private func append(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    private func flush() {
        guard !buffer.isEmpty else { return }
        try? handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    private func fmt(_ v: Double) -> String { String(format: "%.3f", v) }
}
