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
import Series
import Stress

/// The real-series figures: CSV parsing on one core (rate against reading the bytes alone, peak memory
/// against the Float32 size of the data) and training on at least 10 million windows of many series.
extension BenchRunner {
    func templatesSeries() -> [BenchResult] {
        let shape = "\(Format.grouped(Double(sizes.seriesCount))) series × \(Format.grouped(Double(sizes.seriesPoints))) points"
        var out: [BenchResult] = []
        if selection.contains(.csv) {
            out.append(BenchResult(name: "csv-parse", target: "csv", title: "CSV parsing, one core, long format (\(shape))", value: nil,
                                   unit: "MB/s", baselineName: "read(2) of the same file in 1 MiB chunks", baselineSource: .sameRun,
                                   goal: Goal(on: .value, op: .atLeast, threshold: 100, text: "≥ 100 MB/s"), detail: ""))
            out.append(BenchResult(name: "csv-peak-memory", target: "csv", title: "CSV parsing: peak RSS growth ÷ Float32 size of the data",
                                   value: nil, unit: "×", goal: Goal(on: .value, op: .atMost, threshold: 1.5, text: "≤ 1.5×"), detail: ""))
        }
        if selection.contains(.manySeries) {
            let windows = sizes.seriesCount * (sizes.seriesPoints - 4)
            out.append(BenchResult(name: "many-series-workers2", target: "series",
                                   title: "train --workers 2 on \(Format.grouped(Double(windows))) windows of \(shape), H=\(sizes.seriesHidden), batch \(sizes.seriesBatch)",
                                   value: nil, unit: "samples/s", baselineName: "--in-process, same settings", baselineSource: .sameRun,
                                   goal: Goal(on: .ratio, op: .atLeast, threshold: 1.5, text: "≥ 1.5× in-process"), detail: ""))
        }
        return out
    }

    /// Writes `id,value`: `seriesCount` random walks of `seriesPoints` points, 4 decimals.
    private func writeLongFormat(_ url: URL) throws(BenchError) -> Int {
        guard let f = fopen(url.path, "w") else { throw .io("cannot write \(url.path): \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var rng = SeededRNG(seed: 1)
        var bytes = 0
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        func digits(_ v: Int, width: Int) {  // v >= 0, zero-padded to width
            var p = 1, n = 1
            while p <= v / 10 { p *= 10; n += 1 }
            for _ in n..<max(n, width) { buffer.append(0x30) }
            var v = v
            while p > 0 {
                buffer.append(UInt8(0x30 + v / p))
                v %= p
                p /= 10
            }
        }
        fputs("id,value\n", f)
        for s in 0..<sizes.seriesCount {
            var x = Double(rng.next() % 10_000) / 100
            for _ in 0..<sizes.seriesPoints {
                x += Double(Int64(rng.next() % 2001) - 1000) / 1000
                let v = Int((x * 10_000).rounded())
                buffer.append(0x73)  // s
                digits(s, width: 5)
                buffer.append(0x2C)
                if v < 0 { buffer.append(0x2D) }
                digits(abs(v) / 10_000, width: 1)
                buffer.append(0x2E)
                digits(abs(v) % 10_000, width: 4)
                buffer.append(0x0A)
                if buffer.count > (1 << 20) - 64 {
                    bytes += buffer.count
                    _ = buffer.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
                    buffer.removeAll(keepingCapacity: true)
                }
            }
        }
        bytes += buffer.count
        _ = buffer.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        return bytes + 9
    }

    func seriesBenchmarks() throws(BenchError) -> [BenchResult] {
        let file = nextScratch("long").appendingPathExtension("csv")
        defer { try? FileManager.default.removeItem(at: file) }
        let bytes = try writeLongFormat(file)
        var out: [BenchResult] = []
        let templates = templatesSeries()
        if selection.contains(.csv) {
            let reps = quick ? 2 : 5
            var rates: [Double] = [], floorRates: [Double] = [], growth: [Double] = []
            var points = 0
            for _ in 0..<reps {
                if stop.isSet { throw .interrupted(stop.signal) }
                // the floor: the same bytes read, nothing parsed
                var t = ContinuousClock.now
                var sum = 0
                guard let fd = Optional(open(file.path, O_RDONLY)), fd >= 0 else { throw .io("cannot open \(file.path)") }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
                while true {
                    let n = read(fd, buffer.baseAddress, 1 << 20)
                    if n <= 0 { break }
                    sum &+= Int(buffer[n - 1])
                }
                buffer.deallocate()
                close(fd)
                floorRates.append(Double(bytes) / seconds(since: t) / 1e6)
                // the parse, with the peak resident memory reset first (Linux: 5 > clear_refs)
                let reset = (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
                let before = MemoryUsage.read()?.residentBytes ?? 0
                t = ContinuousClock.now
                let series: Series
                do {
                    series = try Series.csv(path: file.path, options: CSVOptions(seriesColumn: "id"))
                } catch {
                    throw .measurement("parsing \(file.path): \(error)")
                }
                rates.append(Double(bytes) / seconds(since: t) / 1e6)
                if reset, let peak = MemoryUsage.read()?.peakResidentBytes {
                    growth.append(Double(peak - before) / Double(series.values.count * 4))
                }
                points = series.count
                _ = sum
            }
            let detail = "Series.csv(path:options: --series-column id) of a \(Format.number(Double(bytes) / 1e6)) MB file (\(Format.grouped(Double(points))) rows of `sNNNNN,x.xxxx`), the file in the page cache; median of \(reps), range \(Stats.spread(rates, Format.number)) MB/s"
            out.append(BenchResult(name: templates[0].name, target: templates[0].target, title: templates[0].title, value: Stats.median(rates),
                                   unit: templates[0].unit, baseline: Stats.median(floorRates), baselineName: templates[0].baselineName,
                                   baselineSource: .sameRun, goal: templates[0].goal, detail: detail))
            out.append(BenchResult(name: templates[1].name, target: templates[1].target, title: templates[1].title,
                                   value: growth.isEmpty ? nil : growth.max(), unit: templates[1].unit, goal: templates[1].goal,
                                   detail: growth.isEmpty ? "no /proc/self/clear_refs here" : "VmHWM after the parse minus VmRSS before it (peak reset by writing 5 to /proc/self/clear_refs), over \(Format.number(Double(points * 4) / 1e6)) MB of Float32 values; largest of \(growth.count)",
                                   error: growth.isEmpty ? "cannot reset the peak RSS" : nil))
        }
        if selection.contains(.manySeries), let t = templates.last, t.name == "many-series-workers2" {
            func args(_ mode: [String], _ steps: Int) -> [String] {
                mode + ["--data", file.path, "--series-column", "id", "--difference", "0", "--seq-len", "4", "--threads", "1",
                        "--hidden", String(sizes.seriesHidden), "--batch", String(sizes.seriesBatch), "--micro-batch", "64", "--steps", String(steps)]
            }
            var steps = 20
            if !quick {
                let probe = try train(args(["--in-process"], 50), label: "many", sampleMemory: false, timeout: 1200)
                steps = min(100_000, max(50, Int(3 * probe.samplesPerSecond / Double(sizes.seriesBatch))))
            }
            var one: [Double] = [], two: [Double] = []
            for _ in 0..<sizes.seriesRuns {
                one.append(try train(args(["--in-process"], steps), label: "many-1", sampleMemory: false, timeout: 1200).samplesPerSecond)
                two.append(try train(args(["--workers", "2"], steps), label: "many-2", sampleMemory: false, timeout: 1200).samplesPerSecond)
            }
            out.append(BenchResult(name: t.name, target: t.target, title: t.title, value: Stats.median(two), unit: t.unit,
                                   baseline: Stats.median(one), baselineName: t.baselineName, baselineSource: .sameRun, goal: t.goal,
                                   detail: "ztrain train --data LONG.csv --series-column id --difference 0 --seq-len 4 --threads 1 --hidden \(sizes.seriesHidden) --batch \(sizes.seriesBatch) --micro-batch 64 --steps \(steps), --workers 2 vs --in-process, summary.json samples_per_second (the training steps; loading, per-series scaling and the final evaluation excluded); medians of \(two.count) alternating runs; 2 workers \(Stats.spread(two, Format.number)), in-process \(Stats.spread(one, Format.number))"))
        }
        return out
    }
}
