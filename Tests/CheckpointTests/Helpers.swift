import Foundation
import Testing

@testable import Checkpoint

/// A fresh directory under the system temp dir, removed when `body` returns.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("ztrain-checkpoint-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// The description of the `CheckpointError` thrown by `body`, nil if it did not throw; any other
/// error type comes back as a message that no test expects.
func checkpointMessage<R>(_ body: () throws -> R) -> String? {
    do {
        _ = try body()
        return nil
    } catch let error as CheckpointError {
        return error.description
    } catch {
        return "unexpected error type: \(error)"
    }
}

/// A safetensors byte string with the given header text (padded with spaces to a multiple of 8
/// unless `pad` is false) and data buffer.
func rawSafeTensors(header: String, data: [UInt8], pad: Bool = true) -> [UInt8] {
    var h = Array(header.utf8)
    if pad { while h.count % 8 != 0 { h.append(0x20) } }
    var out: [UInt8] = []
    var n = UInt64(h.count)
    for _ in 0..<8 {
        out.append(UInt8(truncatingIfNeeded: n))
        n >>= 8
    }
    return out + h + data
}

func le32(_ values: [Float]) -> [UInt8] {
    values.flatMap { v -> [UInt8] in
        let u = v.bitPattern
        return [UInt8(u & 0xFF), UInt8((u >> 8) & 0xFF), UInt8((u >> 16) & 0xFF), UInt8(u >> 24)]
    }
}

func le64(_ values: [Double]) -> [UInt8] {
    values.flatMap { v -> [UInt8] in
        let u = v.bitPattern
        return (0..<8).map { UInt8(truncatingIfNeeded: u >> (8 * UInt64($0))) }
    }
}

/// SplitMix64, for seeded test inputs.
struct TestRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
}
