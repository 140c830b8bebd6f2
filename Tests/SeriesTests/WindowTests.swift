import Testing

@testable import Series

private func splitMessage(_ n: Int, _ t: Int, _ f: Double) -> String? {
    seriesMessage {
        try WindowSplit.make(pointCount: n, seqLen: t, validationFraction: f)
    }
}

@Suite struct WindowSplitTests {
    @Test func noValidation() throws {
        let s = try WindowSplit.make(pointCount: 1000, seqLen: 4, validationFraction: 0)
        #expect(s.all == Array(0..<996))
        #expect(s.train == Array(0..<996))
        #expect(s.train.count == 996)
        #expect(s.validation.isEmpty)
        #expect(s.trainPoints == 1000)
    }

    @Test func twentyPercentValidation() throws {
        let s = try WindowSplit.make(pointCount: 1000, seqLen: 4, validationFraction: 0.2)
        #expect(s.all.count == 996)
        #expect(s.trainPoints == 800)
        // Training windows: w + 4 < 800 (targets inside the first 800 points).
        #expect(s.train == Array(0..<796))
        #expect(s.train.count == 796)
        #expect(s.train.allSatisfy { $0 + 4 < 800 })
        // Validation windows: every window whose target is one of the last 200 points; the first
        // four (796..<800) take inputs from before the cut.
        #expect(s.validation == Array(796..<996))
        #expect(s.validation.count == 200)
        #expect(s.validation.map { $0 + 4 } == Array(800..<1000))
        #expect(Set(s.train).isDisjoint(with: s.validation))
        #expect(s.train + s.validation == s.all)
    }

    @Test func countsAgreeWithDefinitionOverManySizes() throws {
        for n in [5, 10, 37, 100] {
            for t in [1, 2, 3] {
                for f in [0.0, 0.1, 0.25, 0.5] {
                    guard let s = try? WindowSplit.make(pointCount: n, seqLen: t, validationFraction: f) else {
                        continue
                    }
                    let nTrain = n - Int((f * Double(n)).rounded(.toNearestOrEven))
                    let all = Array(0..<(n - t))
                    #expect(s.all == all)
                    #expect(s.train == all.filter { $0 + t < nTrain })
                    #expect(s.validation == (f > 0 ? all.filter { $0 + t >= nTrain } : []))
                    #expect(s.train.allSatisfy { $0 + t < s.trainPoints })
                    // validation targets are exactly the held-out points
                    #expect(s.validation.map { $0 + t } == (f > 0 ? Array(nTrain..<n) : []))
                }
            }
        }
    }

    @Test func roundsHalfToEvenLikePython() throws {
        // round(0.25 * 10) == 2 in Python (2.5 rounds to even).
        let s = try WindowSplit.make(pointCount: 10, seqLen: 1, validationFraction: 0.25)
        #expect(s.trainPoints == 8)
        #expect(s.train == Array(0..<7))
        #expect(s.validation == [7, 8])
    }

    @Test func errors() throws {
        #expect(splitMessage(100, 0, 0) == "--seq-len must be at least 1 (got 0)")
        #expect(
            splitMessage(4, 4, 0)
                == "series of 4 points is too short for windows of 4 points; it needs at least 5 points (a window plus its target)")
        #expect(splitMessage(3, 10, 0)?.hasPrefix("series of 3 points is too short for windows of 10 points") == true)
        #expect(splitMessage(100, 4, 1) == "--val-fraction must be at least 0 and less than 1 (got 1.0)")
        #expect(splitMessage(100, 4, -0.1) == "--val-fraction must be at least 0 and less than 1 (got -0.1)")
        #expect(splitMessage(100, 4, .nan) != nil)
        // Training part of 2 points cannot hold a window of 4 plus a target.
        #expect(
            splitMessage(10, 4, 0.8)
                == "the training part (first 2 of 10 points, validation fraction 0.8) is too short for windows of 4 points; lower --val-fraction or --seq-len, or use a longer series")
        // A fraction so small that it rounds to no validation point.
        #expect(
            splitMessage(100, 4, 0.001)
                == "the validation part (last 0 of 100 points, validation fraction 0.001) holds no point; raise --val-fraction or use --val-fraction 0")
        // One held-out point is a validation part: one window, its inputs from before the cut.
        #expect(splitMessage(100, 4, 0.01) == nil)
        #expect(try WindowSplit.make(pointCount: 100, seqLen: 4, validationFraction: 0.01).validation == [95])
    }
}

@Suite struct BatchArithmeticTests {
    @Test func stepsAndBatchRanges() {
        #expect(stepsPerEpoch(windows: 996, batch: 32) == 32)
        #expect(stepsPerEpoch(windows: 992, batch: 32) == 31)
        #expect(stepsPerEpoch(windows: 0, batch: 8) == 0)
        #expect(stepsPerEpoch(windows: 1, batch: 8) == 1)
        #expect(batchRange(step: 0, windows: 996, batch: 32) == 0..<32)
        #expect(batchRange(step: 31, windows: 996, batch: 32) == 992..<996)
        for windows in 1...70 {
            for batch in 1...12 {
                let steps = stepsPerEpoch(windows: windows, batch: batch)
                let ranges = (0..<steps).map { batchRange(step: $0, windows: windows, batch: batch) }
                #expect(ranges.flatMap { Array($0) } == Array(0..<windows))
                #expect(ranges.dropLast().allSatisfy { $0.count == batch })
                #expect((ranges.last?.count ?? 0) >= 1)
            }
        }
    }

    @Test func microBatchProperties() {
        #expect(microBatches(count: 10, size: 4) == [0..<4, 4..<8, 8..<10])
        #expect(microBatches(count: 8, size: 4) == [0..<4, 4..<8])
        #expect(microBatches(count: 0, size: 3).isEmpty)
        #expect(microBatches(count: 2, size: 5) == [0..<2])
        for count in 0...90 {
            for size in 1...13 {
                let runs = microBatches(count: count, size: size)
                #expect(runs.count == (count + size - 1) / size)
                #expect(runs.flatMap { Array($0) } == Array(0..<count), "count \(count) size \(size)")
                #expect(runs.dropLast().allSatisfy { $0.count == size })
                #expect(runs.allSatisfy { !$0.isEmpty })
            }
        }
    }

    @Test func shardProperties() {
        #expect(shard(items: 10, workers: 3) == [0..<4, 4..<7, 7..<10])
        #expect(shard(items: 2, workers: 4) == [0..<1, 1..<2, 2..<2, 2..<2])
        #expect(shard(items: 0, workers: 2) == [0..<0, 0..<0])
        for items in 0...80 {
            for workers in 1...11 {
                let parts = shard(items: items, workers: workers)
                #expect(parts.count == workers)
                // Every item exactly once, in order (so contiguous and rank-ordered).
                #expect(parts.flatMap { Array($0) } == Array(0..<items), "items \(items) workers \(workers)")
                for r in 1..<workers { #expect(parts[r].lowerBound == parts[r - 1].upperBound) }
                // Balanced; earlier ranks get the extra one.
                let sizes = parts.map(\.count)
                #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1)
                #expect(sizes == sizes.sorted(by: >))
                #expect(sizes.filter { $0 == 0 }.count == max(0, workers - items))
            }
        }
    }
}

@Suite("Windows of several series")
struct MultiSeriesWindowTests {
    @Test func windowsNeverCrossSeriesAndEachSeriesHoldsOutItsOwnEnd() throws {
        let lengths = [10, 7, 25]
        var starts = [0]
        for n in lengths { starts.append(starts.last! + n) }
        let values = (0..<starts.last!).map { Float($0) }
        let s = try Series(names: ["v"], values: values, segments: SeriesSegments(ids: ["a", "b", "c"], starts: starts))
        let T = 3
        let split = try WindowSplit.make(series: s, seqLen: T, validationFraction: 0.2)
        #expect(split.seriesTrainPoints == [8, 6, 20])
        for w in split.all {
            let k = starts.lastIndex { $0 <= w }!
            #expect(w + T < starts[k + 1], "window \(w) crosses into the next series")
        }
        #expect(split.all.count == lengths.reduce(0) { $0 + $1 - T })
        #expect((split.train + split.validation).sorted() == split.all)
        // validation targets: exactly the last round(0.2 N) points of each series
        let targets = Set(split.validation.map { $0 + T })
        let held = Set([8, 9] + [16] + [37, 38, 39, 40, 41])
        #expect(targets == held)
        #expect(split.train.allSatisfy { w in !held.contains(w + T) })
        // one series is split as before
        #expect(try WindowSplit.make(series: s.part(2), seqLen: T, validationFraction: 0.2)
            == WindowSplit.make(pointCount: 25, seqLen: T, validationFraction: 0.2))
    }

    @Test func aShortSeriesIsNamed() throws {
        let s = try Series(names: ["v"], values: (0..<12).map(Float.init), segments: SeriesSegments(ids: ["long", "tiny"], starts: [0, 9, 12]))
        #expect(throws: SeriesError.self) { try WindowSplit.make(series: s, seqLen: 3, validationFraction: 0) }
        do {
            _ = try WindowSplit.make(series: s, seqLen: 3, validationFraction: 0)
        } catch {
            #expect(error.description.contains("series \"tiny\""))
        }
    }
}
