extension Wire {
    /// The header of a SLICE without optimizer state whose payload is `s.values` as little-endian
    /// Float32, for a sender that sends the weights straight from the array (as an ASSIGN's): the
    /// frames `[sliceHeader(…), the values' bytes]` are those of ``encode(_:)``, without the copy.
    ///
    ///     let header = Wire.sliceHeader(runID: 7, workerID: 2, ParameterSlice(version: 3, range: 0..<4096, values: w))
    ///     // frames: header, then w's 16 KiB (little-endian hosts: the array's own bytes)
    public static func sliceHeader(runID: UInt64, workerID: UInt32, _ s: ParameterSlice) -> [UInt8] {
        #if _endian(little)
        let checksum = s.values.withUnsafeBytes { xxh64($0) }
        #else
        let checksum = xxh64(littleEndianFrame(s.values))
        #endif
        return Header(type: .slice, runID: runID, step: s.version, workerID: workerID,
                      rangeLower: field32(s.range.lowerBound, "slice range.lowerBound"),
                      rangeUpper: field32(s.range.upperBound, "slice range.upperBound"), leafCount: s.generation,
                      checksum: checksum).encode()
    }
}
