import Dispatch
import Foundation
import Logging
@testable import Observe
@testable import Training
import Support
import Wire
import Testing

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect((CRC32C.checksum(Array("123456789".utf8))) == 0xE306_9283)
        #expect((CRC32C.checksum([UInt8]())) == 0)
        #expect((CRC32C.checksum([UInt8](repeating: 0, count: 32))) == 0x8A91_36AA)
        #expect((CRC32C.checksum([UInt8](repeating: 0xFF, count: 32))) == 0x62A8_AB43)
    }
}

/// A TFRecord reader that checks both checksums, as TensorBoard's does.
func readRecords(_ bytes: [UInt8]) throws -> [[UInt8]] {
    struct Bad: Error { var what: String }
    var out: [[UInt8]] = []
    var i = 0
    func u32(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    while i < bytes.count {
        guard i + 12 <= bytes.count else { throw Bad(what: "truncated header at \(i)") }
        let len = Int(bytes[i..<i + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        guard CRC32C.masked(CRC32C.checksum(bytes[i..<i + 8])) == u32(i + 8) else { throw Bad(what: "length CRC at \(i)") }
        let data = Array(bytes[(i + 12)..<(i + 12 + len)])
        guard CRC32C.masked(CRC32C.checksum(data)) == u32(i + 12 + len) else { throw Bad(what: "data CRC at \(i)") }
        out.append(data)
        i += 16 + len
    }
    return out
}

@Suite struct TensorBoardWriterTests {
    @Test func eventEncodingByHand() {
        // wall_time 1.5, step 3, one value "a" = 2.0
        let e = EventProto.event(wallTime: 1.5, step: 3, scalars: [("a", 2)])
        let expected: [UInt8] = [0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 3,
                                 0x2A, 10, 0x0A, 8, 0x0A, 1, 0x61, 0x15, 0, 0, 0, 0x40]
        #expect(e == expected)
        let v = EventProto.event(wallTime: 0, step: 0, fileVersion: "brain.Event:2")
        #expect((Array(v.suffix(15))) == ([0x1A, 13] + Array("brain.Event:2".utf8)))
        var big: [UInt8] = []
        EventProto.varint(300, into: &big)
        #expect(big == ([0xAC, 0x02]))
    }

    @Test func directRecordIsTheSameBytes() {
        let scalars: [(tag: String, value: Float)] = [("step/loss", 0.25), ("a", -1), (String(repeating: "t", count: 200), 3)]
        for step: Int64 in [0, 1, 300, 1 << 40] {
            var framed: [UInt8] = []
            EventProto.record(EventProto.event(wallTime: 1.7e9 + 0.125, step: step, scalars: scalars), into: &framed)
            var direct: [UInt8] = [7]
            EventProto.appendScalarRecord(wallTime: 1.7e9 + 0.125, step: step, scalars: scalars, into: &direct)
            #expect((Array(direct.dropFirst())) == framed, "step \(step)")
        }
    }

    @Test func stepLineBytesMatchTheString() {
        var clock: (second: Int, text: String) = (-1, "")
        for (k, wall) in [1_795_835_822.25, 1_795_835_822.999, 1_795_835_823.001, 1_795_835_823.5].enumerated() {
            let r = StepRecord(step: k + 1, epoch: 1, loss: 0.1 * Double(k), learningRate: 0.01, gradNorm: .infinity, windows: 32,
                               samples: 32 * (k + 1), samplesPerSecond: 1e5,
                               timing: k % 2 == 0 ? StepTiming() : nil, bytesIn: k % 2 == 0 ? 10 : nil, bytesOut: k % 2 == 0 ? 20 : nil)
            var bytes: [UInt8] = []
            RunWatch.appendStepLine(r, wallTime: wall, clock: &clock, into: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == RunWatch.stepLine(r, wallTime: wall))
        }
    }

    /// Step lines use the files style with their snake_case names declared (no key conversion per
    /// line): the bytes must be those ``JSONStyle/files`` gives.
    @Test func stepLineStyleGivesTheFilesBytes() throws {
        var timing = StepTiming()
        timing.compute = 0.001
        timing.wait = 0.0002
        timing.reduce = 1e-5
        timing.optimizer = 2e-6
        timing.broadcast = .nan
        for r in [StepRecord(step: 3, epoch: 1, loss: 0.25, learningRate: 0.01, gradNorm: .infinity, windows: 64, samples: 192,
                             samplesPerSecond: 1e5, timing: timing, bytesIn: 1, bytesOut: 2),
                  StepRecord(step: 4, epoch: 2, loss: -.infinity, learningRate: 1e-3, gradNorm: 0.5, windows: 32, samples: 224, samplesPerSecond: 7)] {
            let line = RunWatch.StepLine(r, time: "2026-11-28T03:17:02.250Z")
            let fast = try RunWatch.stepLineStyle.encode(line)
            #expect(fast == (try JSONStyle.files.encode(line)))
            #expect(String(decoding: fast, as: UTF8.self).contains("\"samples_per_second\""))
        }
    }

    @Test func fileHasValidRecords() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try TensorBoardWriter(directory: dir.path, host: "test host/1")
        for s in 1...500 { w.add(step: s, scalars: [("step/loss", Float(s) / 1000), ("step/learning_rate", 0.01)]) }
        w.close()
        w.close()
        #expect(URL(fileURLWithPath: w.path).lastPathComponent.hasPrefix("events.out.tfevents."))
        #expect(!(URL(fileURLWithPath: w.path).lastPathComponent.contains("/")))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path)))
        let records = try readRecords(bytes)
        #expect(records.count == 501)
        #expect(w.records == 501)
    }

    @Test func unwritableFolderSaysWhatToDo() {
        let e = #expect(throws: TensorBoardError.self) { try TensorBoardWriter(directory: "/proc/no-such/tb", host: "h") }
        #expect("\(e.map { "\($0)" } ?? "")".contains("--tensorboard"), "\(String(describing: e))")
    }
}

/// GET over a plain socket (no HTTP client library needed): status line and body.
func httpGet(_ address: String, _ path: String, method: String = "GET") throws -> (status: String, body: String) {
    struct Bad: Error { var what: String }
    guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
        throw Bad(what: "address \(address)")
    }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    sin.sin_addr.s_addr = inet_addr(String(address[..<colon]))
    let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw Bad(what: "connect \(address): \(errno)") }
    let req = Array("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
    _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    let text = String(decoding: out, as: UTF8.self)
    let status = text.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}

@Suite struct MetricsEndpointTests {
    @Test func servesExpositionFormat() throws {
        let e = PrometheusExporter(version: "9.9.9", commit: "abc", mode: "test")
        let server = try MetricsServer(bind: "127.0.0.1:0", logger: Logger(label: "test")) { e.render() }
        defer { server.stop() }
        for s in 1...3 {
            e.record(step: StepRecord(step: s, epoch: 1, loss: 0.5, learningRate: 0.01, gradNorm: 1, windows: 64, samples: 64 * s, samplesPerSecond: 1000))
        }
        e.workerAnswered(worker: 2, seconds: 0.003)
        e.frameDropped(reason: dropReasonLabel(WireErrorSample.checksum))
        let (status, body) = try httpGet(server.address, "/metrics")
        #expect(status.contains("200"), "\(status)")
        #expect(body.contains("ztrain_steps_total 3"), "\(body)")
        #expect(body.contains("ztrain_samples_total 192"), "\(body)")
        #expect(body.contains("ztrain_build_info{version=\"9.9.9\",commit=\"abc\",mode=\"test\"} 1"), "\(body)")
        #expect(body.contains("ztrain_worker_step_seconds_bucket{worker=\"2\""), "\(body)")
        #expect(body.contains("ztrain_dropped_frames_total{reason=\"checksum\"} 1"), "\(body)")
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.hasPrefix("ztrain_"), "\(String(line))")
        }
        for line in body.split(separator: "\n") where line.hasPrefix("# TYPE") && line.hasSuffix(" counter") {
            #expect(line.split(separator: " ")[2].hasSuffix("_total"), "\(String(line))")
        }
        #expect(try httpGet(server.address, "/").status.contains("404"))
        #expect(try httpGet(server.address, "/metrics", method: "POST").status.contains("405"))
        #expect(try httpGet(server.address, "/metrics?x=1").status.contains("200"))
    }

    @Test func badBindSaysWhatToDo() {
        for bad in ["nonsense", "127.0.0.1:99999", "[::1"] {
            let e = #expect(throws: MetricsServerError.self) { try MetricsServer(bind: bad, logger: Logger(label: "t")) { [] } }
            #expect(e?.description.contains("--metrics-bind") == true, "\(String(describing: e))")
        }
    }

    @Test func silentClientDoesNotBlockScrapes() throws {
        let server = try MetricsServer(bind: "127.0.0.1:0", logger: Logger(label: "t")) { Array("ztrain_x 1\n".utf8) }
        defer { server.stop() }
        // a stranger that connects and says nothing holds the responder 2 s at most
        let port = UInt16(server.address.split(separator: ":").last.map(String.init) ?? "") ?? 0
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(try httpGet(server.address, "/metrics").body.contains("ztrain_x 1"))
    }
}

enum WireErrorSample {
    static let checksum = WireError.checksumMismatch
}

@Suite struct ReportTextTests {
    @Test func hangNamesWorkersAndLeaves() {
        var w = WorkerRecord(id: 2, host: "node7", pid: 4242, threads: 1, phase: .ready)
        w.steps = 1
        let text = StragglerReport.hang(step: 41, waited: 12.04, pending: [PendingWork(worker: 2, leaves: [4..<8, 9..<10], since: 1)],
                                        workers: [w], now: 13)
        #expect(text.contains("step 41 has waited 12.0 s"), "\(text)")
        #expect(text.contains("worker 2 (node7 pid 4242"), "\(text)")
        #expect(text.contains("leaves 4-7,9"), "\(text)")
    }

    @Test func stragglersSlowestFirstAgainstMedian() {
        let a = WorkerRecord(id: 1, host: "a", pid: 1, threads: 1, phase: .ready)
        let b = WorkerRecord(id: 2, host: "b", pid: 2, threads: 1, phase: .ready)
        let c = WorkerRecord(id: 3, host: "c", pid: 3, threads: 1, phase: .ready)
        let text = StragglerReport.stragglers(stats: [1: (10, 0.010, 0.002), 2: (10, 0.050, 0.02)], workers: [a, b, c], seconds: 10)
        #expect(text.contains("slowest first: worker 2 (b pid 2) mean 5.00 ms"), "\(text)")
        #expect(text.contains("no answer from worker 3 (c pid 3)"), "\(text)")
    }

    @Test func stepLineIsJSONWithTime() throws {
        let r = StepRecord(step: 7, epoch: 2, loss: .nan, learningRate: 0.01, gradNorm: 0.5, windows: 32, samples: 224, samplesPerSecond: 1e5)
        let line = RunWatch.stepLine(r, wallTime: 1_795_835_822.25)
        let obj = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((obj["kind"] as? String) == "step")
        #expect((obj["time"] as? String) == ("2026-11-28T03:17:02.250Z"))
        #expect((obj["loss"] as? String) == "nan")
        #expect((obj["step"] as? Int) == 7)
        #expect(line.hasSuffix("}\n"))
    }
}

@Suite struct TimelineRowTests {
    @Test func noPartialOverlapOnARow() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-tl-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let w = try TimelineWriter(path: path, coordinatorName: "coordinator (h pid 1)")
        w.name(process: 1, host: "node\"1", pid: 77)
        // overlapping estimates, as worker spans placed by half round trips produce
        w.add(TimelineSpan(process: 1, name: "compute", start: 1.0, duration: 0.5, step: 0))
        w.add(TimelineSpan(process: 1, name: "send", start: 1.5, duration: 0.2, step: 0))
        w.add(TimelineSpan(process: 1, name: "wait", start: 1.6, duration: 0.3, step: 1))
        w.add(TimelineSpan(process: 1, name: "compute", start: 1.1, duration: 0.1, step: 1))
        w.add(TimelineSpan(process: 0, name: "reduce", start: 1.7, duration: 0.01, step: 0))
        w.add(TimelineSpan(process: 0, name: "wait", start: 1.0, duration: 0.7, step: 0))
        w.close()
        let obj = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let events = try #require(obj["traceEvents"] as? [[String: Any]])
        #expect(partialOverlaps(events) == 0)
        let names = events.filter { $0["name"] as? String == "process_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(names.contains("worker 1 (node\"1 pid 77)"), "\(names)")  // the quote is escaped, not dropped
        #expect(names.contains("coordinator (h pid 1)"), "\(names)")
    }
}

/// Pairs of spans on one (pid, tid) row that overlap without one containing the other.
func partialOverlaps(_ events: [[String: Any]]) -> Int {
    var rows: [String: [(Int64, Int64)]] = [:]
    func ns(_ v: Any?) -> Int64 {
        if let d = v as? Double { return Int64((d * 1000).rounded()) }
        if let n = v as? NSNumber { return Int64((n.doubleValue * 1000).rounded()) }
        return 0
    }
    for e in events where e["ph"] as? String == "X" {
        let start = ns(e["ts"]), end = start + ns(e["dur"])
        rows["\(e["pid"] ?? 0)/\(e["tid"] ?? 0)", default: []].append((start, end))
    }
    var bad = 0
    for (_, spans) in rows {
        let sorted = spans.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 > $1.1 }
        var open: [Int64] = []  // ends of the spans that contain the current point
        for (s, e) in sorted {
            while let last = open.last, last <= s { open.removeLast() }
            if let last = open.last, e > last { bad += 1 }
            open.append(e)
        }
    }
    return bad
}
