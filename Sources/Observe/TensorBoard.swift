import Dispatch
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

/// The few protobuf fields of TensorFlow's `Event` and `Summary` that scalars need, encoded by hand.
public enum EventProto {
    static func varint(_ v: UInt64, into out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func lengthDelimited(field: UInt64, _ bytes: [UInt8], into out: inout [UInt8]) {
        varint(field << 3 | 2, into: &out)
        varint(UInt64(bytes.count), into: &out)
        out += bytes
    }

    /// `Event{wall_time: 1 (double), step: 2 (int64), file_version: 3 (string) | summary: 5 (Summary)}`;
    /// `Summary{value: 1 (repeated Value)}`; `Value{tag: 1 (string), simple_value: 2 (float)}`.
    public static func event(wallTime: Double, step: Int64, fileVersion: String? = nil, scalars: [(tag: String, value: Float)] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + scalars.count * 32)
        out.append(0x09)  // field 1, fixed64
        withUnsafeBytes(of: wallTime.bitPattern.littleEndian) { out += $0 }
        if step != 0 {
            out.append(0x10)  // field 2, varint
            varint(UInt64(bitPattern: step), into: &out)
        }
        if let v = fileVersion { lengthDelimited(field: 3, Array(v.utf8), into: &out) }
        if !scalars.isEmpty {
            var summary: [UInt8] = []
            for s in scalars {
                var value: [UInt8] = []
                lengthDelimited(field: 1, Array(s.tag.utf8), into: &value)
                value.append(0x15)  // field 2, fixed32
                withUnsafeBytes(of: s.value.bitPattern.littleEndian) { value += $0 }
                lengthDelimited(field: 1, value, into: &summary)
            }
            lengthDelimited(field: 5, summary, into: &out)
        }
        return out
    }

    static func varintSize(_ v: UInt64) -> Int {
        var n = 1, v = v
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// Appends one whole TFRecord holding an `Event` of scalars to `out`, without intermediate arrays
    /// (the same bytes as ``record(_:into:)`` of ``event(wallTime:step:fileVersion:scalars:)``).
    public static func appendScalarRecord(wallTime: Double, step: Int64, scalars: [(tag: String, value: Float)], into out: inout [UInt8]) {
        var summaryLength = 0
        for s in scalars {
            let t = s.tag.utf8.count
            let v = 1 + varintSize(UInt64(t)) + t + 5
            summaryLength += 1 + varintSize(UInt64(v)) + v
        }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 12))
        out.append(0x09)
        withUnsafeBytes(of: wallTime.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        if step != 0 {
            out.append(0x10)
            varint(UInt64(bitPattern: step), into: &out)
        }
        if !scalars.isEmpty {
            out.append(0x2A)
            varint(UInt64(summaryLength), into: &out)
            for s in scalars {
                let t = s.tag.utf8.count
                out.append(0x0A)
                varint(UInt64(1 + varintSize(UInt64(t)) + t + 5), into: &out)
                out.append(0x0A)
                varint(UInt64(t), into: &out)
                out.append(contentsOf: s.tag.utf8)
                out.append(0x15)
                withUnsafeBytes(of: s.value.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        let length = out.count - start - 12
        out.withUnsafeMutableBufferPointer { b in
            var n = UInt64(length)
            for i in 0..<8 { b[start + i] = UInt8(truncatingIfNeeded: n); n >>= 8 }
            var c = CRC32C.masked(CRC32C.checksum(UnsafeBufferPointer(rebasing: b[start..<(start + 8)])))
            for i in 0..<4 { b[start + 8 + i] = UInt8(truncatingIfNeeded: c); c >>= 8 }
        }
        let dataCRC = out.withUnsafeBufferPointer { CRC32C.masked(CRC32C.checksum(UnsafeBufferPointer(rebasing: $0[(start + 12)...]))) }
        withUnsafeBytes(of: dataCRC.littleEndian) { out.append(contentsOf: $0) }
    }

    /// One TFRecord: length (UInt64 LE), masked CRC-32C of the length, the data, masked CRC-32C of the data.
    public static func record(_ data: [UInt8], into out: inout [UInt8]) {
        var header: [UInt8] = []
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { header += $0 }
        out += header
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(header)).littleEndian) { out += $0 }
        out += data
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(data)).littleEndian) { out += $0 }
    }
}

/// A failure to write TensorBoard's event file.
public struct TensorBoardError: Error, CustomStringConvertible {
    public var description: String
}

/// Writes TensorBoard scalars to `DIR/events.out.tfevents.<time>.<host>.<pid>` (`--tensorboard DIR`).
///
/// ``add(step:scalars:)`` encodes into a buffer; the buffer goes to the file on a background queue
/// once it holds 64 KiB or a second has passed, so TensorBoard sees a live run and the training
/// thread never waits for the disk. ``close()`` writes the rest.
public final class TensorBoardWriter: @unchecked Sendable {
    // @unchecked: `buffer`, `lastFlush`, `closed` belong to the thread that calls add/flush/close;
    // `fd` is written only on `queue` (serial) and closed after it drains.
    public let path: String
    private let fd: Int32
    private let queue = DispatchQueue(label: "ztrain.tensorboard")
    private var buffer: [UInt8] = []
    private var lastFlush = ContinuousClock.now
    private var closed = false
    /// Records written (the file-version record included).
    public private(set) var records = 0

    /// Creates the folder if needed and starts a new event file in it.
    public init(directory: String, host: String) throws(TensorBoardError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorBoardError(description: "cannot create --tensorboard folder \(directory): check that its parent exists and is writable")
        }
        let now = Date().timeIntervalSince1970
        let safeHost = String(host.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" })
        path = "\(directory)/events.out.tfevents.\(Int(now)).\(safeHost).\(getpid())"
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TensorBoardError(description: "cannot create \(path): \(String(cString: strerror(errno))); check --tensorboard's permissions")
        }
        EventProto.record(EventProto.event(wallTime: now, step: 0, fileVersion: "brain.Event:2"), into: &buffer)
        records = 1
        flush()
    }

    deinit { close() }

    /// Adds one event with these scalars at `step`.
    public func add(step: Int, wallTime: Double = Date().timeIntervalSince1970, scalars: [(tag: String, value: Float)]) {
        guard !closed, !scalars.isEmpty else { return }
        EventProto.appendScalarRecord(wallTime: wallTime, step: Int64(step), scalars: scalars, into: &buffer)
        records += 1
        if buffer.count >= 1 << 16 || ContinuousClock.now - lastFlush >= .seconds(1) { flush() }
    }

    /// Hands the buffer to the background writer.
    public func flush() {
        lastFlush = ContinuousClock.now
        guard !buffer.isEmpty else { return }
        let bytes = buffer
        buffer.removeAll(keepingCapacity: true)
        let fd = self.fd
        queue.async {
            bytes.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var off = 0
                while off < raw.count {
                    let n = write(fd, base + off, raw.count - off)
                    if n < 0 { if errno == EINTR { continue }; return }
                    off += n
                }
            }
        }
    }

    /// Writes what is left and closes the file (waits for the background writes). Idempotent.
    public func close() {
        guard !closed else { return }
        flush()
        closed = true
        queue.sync {}
        closeDescriptor(fd)
    }
}

/// `close(2)`, reachable where a method named `close` shadows it.
func closeDescriptor(_ fd: Int32) { _ = close(fd) }
