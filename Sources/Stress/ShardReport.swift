import RNN
import Wire

/// What a sharded stress worker tells the coordinator once it holds a round's whole reduced vector:
/// the vector's digest, its own slice's digest and (the last owner) the loss sum, and the bytes it
/// moved to and from the other workers since its previous report.
///
/// It travels as the owners' report message of sharded training, a NORM (owner→coordinator): `step`
/// is the round, the loss sum rides in `lossSum`, and the `sumsOfSquares` array carries the
/// ``fieldCount`` integer fields below (each below 2^53, so exact in a Float64) with `blocks` =
/// `0..<fieldCount`.
///
/// ```swift
/// let report = ShardReport(round: 3, attempt: 5, digest: d, sliceDigest: s, loss: nil,
///                          peerBytesIn: 40_000_128, peerBytesOut: 40_000_128, generationNanos: 0)
/// let frames = Wire.encode(Envelope(runID: run, workerID: id, message: .norm(report.norm)))
/// ShardReport(frames-decoded norm) == report
/// ```
public struct ShardReport: Sendable, Equatable {
    /// The round.
    public var round: Int
    /// The coordinator's attempt (the ORDER's table version) the vector belongs to.
    public var attempt: UInt32
    /// ``ShardDigest/whole(_:)`` of the vector the worker holds.
    public var digest: UInt64
    /// The digest of the worker's own reduced slice (nil: it owns no elements).
    public var sliceDigest: UInt64?
    /// The round's loss sum (the last owner only).
    public var loss: Float?
    /// Bytes received from and sent to other workers since the previous report.
    public var peerBytesIn: Int
    public var peerBytesOut: Int
    /// Time spent generating the round's node sums on receipt of its ORDER (0 when they were
    /// generated before the round, ``StressConfig/pregenerate``).
    public var generationNanos: UInt64
    /// Peer frames it dropped since the previous report because they failed validation (a
    /// corrupted NODE or SLICE: checksum), and of those, checksum mismatches.
    public var invalidFrames = 0
    public var checksumMismatches = 0

    /// Integer fields in the NORM's payload.
    public static let fieldCount = 11

    public init(round: Int, attempt: UInt32, digest: UInt64, sliceDigest: UInt64?, loss: Float?,
                peerBytesIn: Int, peerBytesOut: Int, generationNanos: UInt64) {
        self.round = round
        self.attempt = attempt
        self.digest = digest
        self.sliceDigest = sliceDigest
        self.loss = loss
        self.peerBytesIn = peerBytesIn
        self.peerBytesOut = peerBytesOut
        self.generationNanos = generationNanos
    }

    /// The report as a NORM.
    public var norm: NormPart {
        let s = sliceDigest ?? 0
        let fields: [UInt64] = [digest >> 32, digest & 0xFFFF_FFFF, sliceDigest == nil ? 0 : 1, s >> 32, s & 0xFFFF_FFFF,
                                UInt64(attempt), UInt64(max(0, peerBytesIn)), UInt64(max(0, peerBytesOut)),
                                min(generationNanos, 1 << 52), UInt64(max(0, invalidFrames)), UInt64(max(0, checksumMismatches))]
        return NormPart(step: UInt64(round), blocks: 0..<Self.fieldCount, sumsOfSquares: fields.map { Double($0) },
                        isFinite: true, lossSum: loss)
    }

    /// The report a NORM carries, or nil when it is not one (wrong shape or fields).
    public init?(_ n: NormPart) {
        guard n.blocks == 0..<Self.fieldCount, n.sumsOfSquares.count == Self.fieldCount, let round = Int(exactly: n.step) else { return nil }
        var f: [UInt64] = []
        for d in n.sumsOfSquares {
            guard d >= 0, d < 0x1p53, let v = UInt64(exactly: d) else { return nil }
            f.append(v)
        }
        guard f[0] <= 0xFFFF_FFFF, f[1] <= 0xFFFF_FFFF, f[3] <= 0xFFFF_FFFF, f[4] <= 0xFFFF_FFFF, f[2] <= 1,
              let attempt = UInt32(exactly: f[5]) else { return nil }
        self.init(round: round, attempt: attempt, digest: f[0] << 32 | f[1], sliceDigest: f[2] == 1 ? f[3] << 32 | f[4] : nil,
                  loss: n.lossSum, peerBytesIn: Int(f[6]), peerBytesOut: Int(f[7]), generationNanos: f[8])
        invalidFrames = Int(f[9])
        checksumMismatches = Int(f[10])
    }
}

/// The digests the sharded stress checks: a slice's is the XXH64 (seed 0) of its little-endian
/// Float32 bytes, which is the checksum of the SLICE that carries it (so a worker gets the digest of
/// every slice it receives from the frame's verified header, at no cost); the whole vector's is the
/// XXH64 of the non-empty slices' digests, as little-endian UInt64s in owner order.
///
/// ```swift
/// let plan = ShardPlan(parameterCount: p, owners: 3)
/// let whole = ShardDigest.whole((0..<3).filter { !plan.range(ofOwner: $0).isEmpty }.map { ShardDigest.slice(sums[plan.range(ofOwner: $0)]) })
/// ```
public enum ShardDigest {
    /// The digest of a slice of floats.
    public static func slice(_ values: UnsafeBufferPointer<Float>) -> UInt64 {
        #if _endian(little)
        Wire.xxh64(UnsafeRawBufferPointer(values))
        #else
        Wire.xxh64(Wire.littleEndianFrame(Array(values)))
        #endif
    }

    /// The digest of a slice of an array.
    public static func slice(_ values: ArraySlice<Float>) -> UInt64 {
        values.withUnsafeBufferPointer { slice($0) }
    }

    /// The digest of the whole vector from its non-empty slices' digests in owner order.
    public static func whole(_ sliceDigests: [UInt64]) -> UInt64 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 * sliceDigests.count)
        for d in sliceDigests { withUnsafeBytes(of: d.littleEndian) { bytes.append(contentsOf: $0) } }
        return Wire.xxh64(bytes)
    }

    /// The owners of `plan` whose slice is not empty (whose slices make up the vector).
    public static func holders(_ plan: ShardPlan) -> [Int] {
        (0..<plan.owners).filter { !plan.range(ofOwner: $0).isEmpty }
    }
}
