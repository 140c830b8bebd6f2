import Foundation
import Testing

@testable import Series

@Suite struct SeededRNGTests {
    @Test func splitMix64ReferenceVector() {
        // Published SplitMix64 outputs for seed 1234567.
        var x: UInt64 = 1_234_567
        let out = (0..<5).map { _ in splitMix64(&x) }
        #expect(
            out == [
                6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                4_593_380_528_125_082_431, 16_408_922_859_458_223_821,
            ])
    }

    @Test func pinnedOutputsForSeed42() {
        // Computed once with an independent Python implementation of SplitMix64 + xoshiro256**.
        var rng = SeededRNG(seed: 42)
        #expect(
            rng.state
                == (
                    13_679_457_532_755_275_413, 2_949_826_092_126_892_291,
                    5_139_283_748_462_763_858, 6_349_198_060_258_255_764
                ))
        let out = (0..<6).map { _ in rng.next() }
        #expect(
            out == [
                1_546_998_764_402_558_742, 6_990_951_692_964_543_102, 12_544_586_762_248_559_009,
                17_057_574_109_182_124_193, 18_295_552_978_065_317_476, 14_199_186_830_065_750_584,
            ])
        #expect(
            rng.state
                == (
                    8_703_334_302_836_784_780, 8_367_389_496_430_257_469,
                    791_870_421_204_723_633, 11_359_521_777_047_445_604
                ))
    }

    @Test func stateRoundTripsThroughCodableAndInit() throws {
        var rng = SeededRNG(seed: 7)
        for _ in 0..<13 { _ = rng.next() }
        let data = try JSONEncoder().encode(rng)
        var restored = try JSONDecoder().decode(SeededRNG.self, from: data)
        #expect(restored == rng)
        var fromState = SeededRNG(state: rng.state)
        #expect(fromState == rng)
        let expected = (0..<100).map { _ in rng.next() }
        #expect((0..<100).map { _ in restored.next() } == expected)
        #expect((0..<100).map { _ in fromState.next() } == expected)
        // The JSON is a plain array of four integers; large words survive exactly.
        let words = try JSONDecoder().decode([UInt64].self, from: data)
        #expect(words.count == 4)
        #expect(words.contains { $0 > UInt64(1) << 53 })
    }

    @Test func rejectsBadEncodedState() {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(SeededRNG.self, from: Data("[0,0,0,0]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(SeededRNG.self, from: Data("[1,2,3]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(SeededRNG.self, from: Data("[1,2,3,4,5]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(SeededRNG.self, from: Data("[1,2,3,-4]".utf8)) }
    }

    @Test func boundedDrawIsInRangeAndRoughlyUniform() {
        var rng = SeededRNG(seed: 99)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 {
            let v = rng.draw(below: 7)
            #expect(v < 7)
            counts[Int(v)] += 1
        }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 500 }, "counts \(counts)")
        #expect(rng.draw(below: 1) == 0)
        _ = rng.draw(below: .max)
    }
}

@Suite struct EpochPermutationTests {
    @Test func isAPermutation() {
        for count in [0, 1, 2, 3, 10, 796, 1000] {
            for epoch in 0..<3 {
                let p = epochPermutation(count: count, seed: 1, epoch: epoch)
                #expect(p.sorted() == Array(0..<count))
            }
        }
    }

    @Test func deterministicPerSeedAndEpoch() {
        let a = epochPermutation(count: 796, seed: 1234, epoch: 5)
        #expect(a == epochPermutation(count: 796, seed: 1234, epoch: 5))
        // Recomputing epoch 5 does not depend on having computed epochs 0-4.
        for e in 0..<5 { _ = epochPermutation(count: 796, seed: 1234, epoch: e) }
        #expect(a == epochPermutation(count: 796, seed: 1234, epoch: 5))
    }

    @Test func pinnedOrder() {
        // Pinned once: guards against accidental changes of the mixing or the draw.
        #expect(epochPermutation(count: 10, seed: 42, epoch: 0) == pinnedSeed42Epoch0)
        #expect(epochPermutation(count: 10, seed: 42, epoch: 1) == pinnedSeed42Epoch1)
    }

    @Test func differsBetweenEpochsAndSeeds() {
        var seen = Set<[Int]>()
        for seed: UInt64 in [0, 1, 2, 42, .max] {
            for epoch in [0, 1, 2, 3, 100, -1] {
                seen.insert(epochPermutation(count: 50, seed: seed, epoch: epoch))
            }
        }
        #expect(seen.count == 30)
        #expect(!seen.contains(Array(0..<50)))
    }

    @Test func positionsAreRoughlyUniform() {
        // Each element lands in the first position about equally often across epochs.
        var firsts = [Int](repeating: 0, count: 5)
        for epoch in 0..<5000 { firsts[epochPermutation(count: 5, seed: 3, epoch: epoch)[0]] += 1 }
        #expect(firsts.allSatisfy { abs($0 - 1000) < 150 }, "first-position counts \(firsts)")
    }
}

/// Computed once by this implementation and confirmed with an independent Python transcription.
private let pinnedSeed42Epoch0 = [7, 4, 2, 3, 6, 5, 0, 1, 9, 8]
private let pinnedSeed42Epoch1 = [1, 2, 9, 6, 8, 4, 5, 3, 0, 7]
