import Wire

/// The weights hash: XXH64 (seed 0) of the parameters as little-endian Float32 bytes, in the order of
/// the parameter table (``RNN/ParameterLayout``). Two runs whose weights hash the same at a step hold
/// the same bits there (up to XXH64's 2^-64 chance of a collision), so a run's hashes chain its
/// history: `metrics.jsonl` records them (each epoch line's `weights_hash`, and with `--hash-every K`
/// a hash line every K steps), checkpoints and `summary.json` carry them, and `ztrain diff` compares
/// two runs with them.
///
/// ```swift
/// let h = WeightsHash.of([1, 2, 3])          // UInt64
/// let text = WeightsHash.hex(h)              // 16 lowercase hex digits
/// WeightsHash.parse(text) == h               // true
/// ```
public enum WeightsHash {
    /// The hash of `parameters`: one pass over their bytes.
    public static func of(_ parameters: [Float]) -> UInt64 {
        #if _endian(big)
        let bytes = parameters.flatMap { v -> [UInt8] in
            let b = v.bitPattern.littleEndian
            return [UInt8(truncatingIfNeeded: b), UInt8(truncatingIfNeeded: b >> 8), UInt8(truncatingIfNeeded: b >> 16), UInt8(truncatingIfNeeded: b >> 24)]
        }
        return Wire.xxh64(bytes)
        #else
        return parameters.withUnsafeBytes { Wire.xxh64($0) }
        #endif
    }

    /// `hash` as 16 lowercase hex digits (leading zeros kept), as the files write it.
    public static func hex(_ hash: UInt64) -> String {
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The hash that ``hex(_:)`` wrote, or nil if `text` is not 16 hex digits.
    public static func parse(_ text: String) -> UInt64? {
        guard text.utf8.count == 16, text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 102) }) else {
            return nil
        }
        return UInt64(text, radix: 16)
    }
}

extension RunState {
    /// ``WeightsHash`` of the weights as they stand (after the last step's update).
    public var weightsHash: UInt64 { WeightsHash.of(parameters) }

    /// Is a `--hash-every every` hash line due at the step just taken? (0: never; never before the first step.)
    public func hashDue(every: Int) -> Bool { every > 0 && step > 0 && step % every == 0 }
}

extension RunCheckpoint {
    /// ``WeightsHash`` of the checkpoint's weights.
    public var weightsHash: UInt64 { WeightsHash.of(parameters) }
}
