/// What a receiver accepts. Checked by ``Wire/decode(header:frames:limits:)`` before the
/// checksum is computed, so an oversized payload costs nothing to reject.
public struct Limits: Sendable, Equatable {
    /// Largest payload accepted, in bytes.
    public var maxPayloadBytes: Int
    /// When known, the model's P: assign must carry exactly P weights and gradient P + 1 sums.
    public var parameterCount: Int?
    /// Accept NaN and ±infinity in gradient sums (weights and series must always be finite).
    public var allowNonFinite: Bool

    /// Limits.
    public init(maxPayloadBytes: Int, parameterCount: Int? = nil, allowNonFinite: Bool = false) {
        self.maxPayloadBytes = maxPayloadBytes
        self.parameterCount = parameterCount
        self.allowNonFinite = allowNonFinite
    }

    /// Largest JSON body (hello, ready, the JSON part of welcome): 1 MiB.
    public static let maxJSONBytes = 1 << 20
    /// Largest reason text (reject, shutdown, bye): 64 KiB.
    public static let maxReasonBytes = 64 << 10
    /// The series allowance of ``handshake``: 256 MiB, i.e. 64 Mi Float32 values.
    public static let handshakeSeriesBytes = 256 << 20

    /// For a connection before the run's P is known (hello, welcome, ready, reject):
    /// 8 + 1 MiB of JSON + ``handshakeSeriesBytes`` of series.
    public static let handshake = Limits(
        maxPayloadBytes: 8 + maxJSONBytes + handshakeSeriesBytes)

    /// For a connection during training with P parameters and at most `maxWindows` windows in a
    /// global batch: room for the larger of an assign (4P + 4n), a gradient (4(P + 1) + 16) and a
    /// reason text, with `parameterCount` pinned to P.
    public static func training(
        parameterCount: Int, maxWindows: Int, allowNonFinite: Bool = false
    ) -> Limits {
        let p = max(0, parameterCount)
        let n = max(0, maxWindows)
        let (pn, o1) = p.addingReportingOverflow(max(n, 1))
        let (bytes, o2) = pn.multipliedReportingOverflow(by: 4)
        let (withTrailer, o3) = bytes.addingReportingOverflow(Wire.gradientTrailerBytes)
        let payload = o1 || o2 || o3 ? Int.max : max(withTrailer, maxReasonBytes)
        return Limits(
            maxPayloadBytes: payload, parameterCount: parameterCount,
            allowNonFinite: allowNonFinite)
    }
}
