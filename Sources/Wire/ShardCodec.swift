import Support

/// The codec of the sharded-aggregation messages (``ShardTable``, ``StepOrder``, ``NodeSlice``,
/// ``NormPart``, ``ApplyStep``, ``ParameterSlice``, ``FetchSlices``, ``AppliedStep``, ``NodeDigest``): one payload frame each (none for the last three).
///
/// | type | header fields | payload frame |
/// |---|---|---|
/// | TABLE | none | UTF-8 JSON |
/// | ORDER | step, leaves, leaf count, count = windows, aux = table version | `count` UInt32 window starts |
/// | NODE | step, node, leaf count, count = windows summed, aux = owner + table version (low 16 bits) << 16 + step windows << 32 | Float32 sums of the owner's elements |
/// | NORM | step, range = blocks, leaf count = generation, count = flags (1: finite, 2: has loss), aux = loss sum's Float32 bits | Float64 per block |
/// | APPLY | step, leaf count = table version, count = flags (1: a clip coefficient follows, 2: gather the optimizer state, 4: answer with APPLIED, not 2 with 4), aux = learning rate's Float64 bits | the coefficient's Float64, or nothing |
/// | SLICE | step = version, range = elements, leaf count = generation, count = 0, or 1 + k with k optimizer-state arrays | Float32 weights, then the k arrays (all finite) |
/// | FETCH | step, leaf count = table version | nothing |
/// | APPLIED | step, range = the owner's elements, leaf count = table version | nothing |
/// | DIGEST | step, node, leaf count, count = generation, aux = digest | none |
extension Wire {
    /// Writes a sharded message's header fields and returns its payload (nil: not such a message).
    static func encodeShard(_ message: Message, into h: inout Header) -> [UInt8]? {
        switch message {
        case .table(let t):
            return JSON.encode(t)
        case .order(let o):
            h.step = o.step
            h.rangeLower = field32(o.leaves.lowerBound, "order leaves.lowerBound")
            h.rangeUpper = field32(o.leaves.upperBound, "order leaves.upperBound")
            h.leafCount = field32(o.leafCount, "order leafCount")
            h.count = UInt64(o.windows.count)
            h.aux = UInt64(o.table)
            return o.windows.withUnsafeBufferPointer { windowsFrame($0) }
        case .node(let n):
            h.step = n.step
            h.rangeLower = field32(n.block.lowerBound, "node block.lowerBound")
            h.rangeUpper = field32(n.block.upperBound, "node block.upperBound")
            h.leafCount = field32(n.leafCount, "node leafCount")
            h.count = UInt64(n.samples)
            h.aux = UInt64(UInt16(n.owner)) | UInt64(n.table) << 16 | UInt64(UInt32(n.windows)) << 32
            return littleEndianFrame(n.values)
        case .norm(let p):
            h.step = p.step
            h.rangeLower = field32(p.blocks.lowerBound, "norm blocks.lowerBound")
            h.rangeUpper = field32(p.blocks.upperBound, "norm blocks.upperBound")
            h.count = (p.isFinite ? 1 : 0) | (p.lossSum != nil ? 2 : 0)
            h.leafCount = p.generation
            h.aux = UInt64(p.lossSum?.bitPattern ?? 0)
            var payload: [UInt8] = []
            payload.reserveCapacity(8 * p.sumsOfSquares.count)
            for s in p.sumsOfSquares { withUnsafeBytes(of: s.bitPattern.littleEndian) { payload.append(contentsOf: $0) } }
            return payload
        case .apply(let a):
            h.step = a.step
            h.leafCount = a.table
            h.aux = a.learningRate.bitPattern
            h.count = (a.gather ? 2 : 0) | (a.acknowledge ? 4 : 0)
            guard let c = a.clipCoefficient else { return [] }
            h.count |= 1
            return withUnsafeBytes(of: c.bitPattern.littleEndian) { Array($0) }
        case .slice(let s):
            h.step = s.version
            h.rangeLower = field32(s.range.lowerBound, "slice range.lowerBound")
            h.rangeUpper = field32(s.range.upperBound, "slice range.upperBound")
            h.leafCount = s.generation
            guard let state = s.state else { return littleEndianFrame(s.values) }
            h.count = UInt64(1 + state.count)
            return littleEndianFrame(s.values + state.flatMap { $0 })
        case .fetch(let f):
            h.step = f.step
            h.leafCount = f.table
            return []
        case .applied(let a):
            h.step = a.step
            h.rangeLower = field32(a.range.lowerBound, "applied range.lowerBound")
            h.rangeUpper = field32(a.range.upperBound, "applied range.upperBound")
            h.leafCount = a.table
            return []
        case .digest(let d):
            h.step = d.step
            h.rangeLower = field32(d.block.lowerBound, "digest block.lowerBound")
            h.rangeUpper = field32(d.block.upperBound, "digest block.upperBound")
            h.leafCount = field32(d.leafCount, "digest leafCount")
            h.count = UInt64(d.generation)
            h.aux = d.digest
            return []
        default:
            return nil
        }
    }

    /// Checks a sharded message's rules and, when `materialize`, builds it.
    static func shardBody(_ h: Header, _ payload: UnsafeRawBufferPointer, _ limits: Limits, materialize: Bool)
        throws(WireError) -> Message?
    {
        func zero(_ value: UInt64, _ name: String) throws(WireError) {
            guard value == 0 else {
                throw .unexpectedField("\(h.type) has \(name) = \(value); \(h.type) does not use it, it must be 0")
            }
        }
        switch h.type {
        case .table:
            for (v, name) in [(h.step, "step"), (UInt64(h.rangeLower), "rangeLower"), (UInt64(h.rangeUpper), "rangeUpper"),
                              (UInt64(h.leafCount), "leafCount"), (h.count, "count"), (h.aux, "aux")] {
                try zero(v, name)
            }
            let t = try JSON.decode(ShardTable.self, payload, what: "table")
            guard t.parameterCount >= 1, !t.owners.isEmpty, t.owners.count <= 1 << 16, t.peers.count <= 1 << 16 else {
                throw .badJSON("table has \(t.parameterCount) parameters and \(t.owners.count) owners; needs at least 1 of each")
            }
            return materialize ? .table(t) : nil

        case .order:
            guard h.aux <= UInt64(UInt32.max) else { throw .badRange("order table version \(h.aux) does not fit 32 bits") }
            let (leaves, m) = try leafRange(h, "leaves")
            guard h.count >= 1, UInt64(h.leafCount) <= h.count else {
                throw .badRange("order has \(h.leafCount) leaves for \(h.count) windows; every leaf holds at least 1 window")
            }
            guard payload.count % 4 == 0, UInt64(payload.count / 4) == h.count else {
                throw .badLength("order payload is \(payload.count) bytes, the header says \(h.count) window starts")
            }
            guard materialize else { return nil }
            return .order(StepOrder(step: h.step, leaves: leaves, leafCount: m, windows: uint32s(payload, offset: 0, count: payload.count / 4),
                                    table: UInt32(h.aux)))

        case .node:
            let (block, m) = try leafRange(h, "block")
            guard h.count >= 1, let samples = Int(exactly: h.count) else {
                throw .badRange("node count is \(h.count), a tree node sums at least 1 window")
            }
            let stepWindows = Int(h.aux >> 32)
            guard stepWindows >= Int(h.leafCount), stepWindows >= samples else {
                throw .badRange("node says the step has \(stepWindows) windows, fewer than its \(h.leafCount) leaves or the node's \(samples) windows")
            }
            guard payload.count >= 4, payload.count % 4 == 0 else {
                throw .badLength("node payload is \(payload.count) bytes, not a whole number (≥ 1) of Float32")
            }
            let n = payload.count / 4
            if !limits.allowNonFinite, let i = firstNonFinite(payload, offset: 0, count: n) {
                throw .nonFinite("node sum[\(i)] from worker \(h.workerID) at step \(h.step) is \(float(payload, offset: 0, index: i))")
            }
            guard materialize else { return nil }
            return .node(NodeSlice(step: h.step, block: block, leafCount: m, samples: samples, windows: stepWindows, owner: Int(h.aux & 0xFFFF),
                                   values: floats(payload, offset: 0, count: n), table: UInt16(truncatingIfNeeded: h.aux >> 16)))

        case .norm:
            guard h.rangeLower <= h.rangeUpper else { throw .badRange("norm blocks [\(h.rangeLower), \(h.rangeUpper)) are reversed") }
            guard h.count <= 3 else { throw .unexpectedField("norm flags are \(h.count); only 1 (finite) and 2 (has loss) exist") }
            let hasLoss = h.count & 2 != 0
            if !hasLoss { try zero(h.aux, "aux") }
            guard h.aux <= UInt64(UInt32.max) else { throw .badRange("norm loss bits \(h.aux) do not fit a Float32") }
            let blocks = Int(h.rangeLower)..<Int(h.rangeUpper)
            guard payload.count == 8 * blocks.count else {
                throw .badLength("norm payload is \(payload.count) bytes for \(blocks.count) blocks (8 each)")
            }
            guard materialize else { return nil }
            let sums = (0..<blocks.count).map { Double(bitPattern: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
            return .norm(NormPart(step: h.step, blocks: blocks, sumsOfSquares: sums, isFinite: h.count & 1 != 0,
                                  lossSum: hasLoss ? Float(bitPattern: UInt32(h.aux)) : nil, generation: h.leafCount))

        case .apply:
            for (v, name) in [(UInt64(h.rangeLower), "rangeLower"), (UInt64(h.rangeUpper), "rangeUpper")] {
                try zero(v, name)
            }
            guard h.count <= 7, h.count & 6 != 6, payload.count == 8 * Int(h.count & 1) else {
                throw .badLength("apply payload is \(payload.count) bytes with flags \(h.count); a clip coefficient is one Float64, and only flags 1, 2 and 4 exist (not 2 with 4)")
            }
            let lr = Double(bitPattern: h.aux)
            guard lr.isFinite else { throw .nonFinite("apply learning rate is \(lr)") }
            let c = h.count & 1 == 1 ? Double(bitPattern: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self))) : nil
            if let c, !c.isFinite { throw .nonFinite("apply clip coefficient is \(c)") }
            guard materialize else { return nil }
            return .apply(ApplyStep(step: h.step, learningRate: lr, clipCoefficient: c, table: h.leafCount, gather: h.count & 2 != 0,
                                    acknowledge: h.count & 4 != 0))

        case .slice:
            try zero(h.aux, "aux")
            guard h.count <= 3 else { throw .unexpectedField("slice count is \(h.count); 0 (weights), or 1 + up to 2 optimizer-state arrays") }
            guard h.rangeLower < h.rangeUpper else { throw .badRange("slice [\(h.rangeLower), \(h.rangeUpper)) is empty") }
            let range = Int(h.rangeLower)..<Int(h.rangeUpper)
            if let p = limits.parameterCount, range.upperBound > p {
                throw .badRange("slice \(range) is outside this receiver's \(p) parameters")
            }
            let arrays = h.count == 0 ? 0 : Int(h.count) - 1
            guard payload.count == 4 * range.count * (1 + arrays) else {
                throw .badLength("slice payload is \(payload.count) bytes for \(range.count) weights and \(arrays) optimizer-state arrays")
            }
            if let i = firstNonFinite(payload, offset: 0, count: range.count * (1 + arrays)) {
                throw .nonFinite("slice value \(i) (element \(range.lowerBound + i % range.count)) is \(float(payload, offset: 0, index: i))")
            }
            guard materialize else { return nil }
            let state = h.count == 0 ? nil : (0..<arrays).map { floats(payload, offset: 4 * range.count * (1 + $0), count: range.count) }
            return .slice(ParameterSlice(version: h.step, range: range, values: floats(payload, offset: 0, count: range.count), state: state,
                                         generation: h.leafCount))

        case .digest:
            let (block, m) = try leafRange(h, "block")
            guard h.count <= UInt64(UInt32.max) else { throw .badRange("digest generation \(h.count) does not fit 32 bits") }
            guard payload.isEmpty else { throw .badLength("digest payload is \(payload.count) bytes, must be empty") }
            guard materialize else { return nil }
            return .digest(NodeDigest(step: h.step, block: block, leafCount: m, digest: h.aux, generation: UInt32(h.count)))

        case .fetch:
            for (v, name) in [(UInt64(h.rangeLower), "rangeLower"), (UInt64(h.rangeUpper), "rangeUpper"), (h.count, "count"), (h.aux, "aux")] {
                try zero(v, name)
            }
            guard payload.isEmpty else { throw .badLength("fetch payload is \(payload.count) bytes; FETCH has none") }
            return materialize ? .fetch(FetchSlices(step: h.step, table: h.leafCount)) : nil

        case .applied:
            for (v, name) in [(h.count, "count"), (h.aux, "aux")] { try zero(v, name) }
            guard h.rangeLower <= h.rangeUpper else { throw .badRange("applied range [\(h.rangeLower), \(h.rangeUpper)) is reversed") }
            guard payload.isEmpty else { throw .badLength("applied payload is \(payload.count) bytes; APPLIED has none") }
            return materialize ? .applied(AppliedStep(step: h.step, range: Int(h.rangeLower)..<Int(h.rangeUpper), table: h.leafCount)) : nil

        default:
            return nil
        }
    }
}
