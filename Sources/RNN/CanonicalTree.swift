/// The canonical reduction of a step's gradient: a fixed binary tree over micro-batch indices `0..<M`.
///
/// The tree is the perfect binary tree over the next power of two `S >= M`, with the leaves `>= M` absent.
/// A node covers the aligned block `[k·2^j, min((k+1)·2^j, M))`; its value is `left + right`, or just `left`
/// when the right half is empty. Who computed which block, and in what order blocks arrived, cannot change
/// the result: the same bits for 1 or 7 workers, for retries and for speculative copies.
public enum CanonicalTree {
    /// The number of leaves of the perfect tree: the next power of two `>= m`.
    public static func paddedSize(_ m: Int) -> Int {
        var s = 1
        while s < m { s *= 2 }
        return s
    }

    /// Splits a contiguous run of leaves into maximal tree nodes (segment-tree style), left to right.
    /// A worker that owns the run sends one partial sum per block.
    public static func blocks(of run: Range<Int>, leafCount m: Int) -> [Range<Int>] {
        precondition(run.lowerBound >= 0 && run.upperBound <= m, "run \(run) outside 0..<\(m)")
        let top = paddedSize(m)
        var out: [Range<Int>] = []
        var a = run.lowerBound
        while a < run.upperBound {
            var size = 1
            while size * 2 <= top && a % (size * 2) == 0 && min(a + size * 2, m) <= run.upperBound {
                size *= 2
            }
            let end = min(a + size, m)
            out.append(a..<end)
            a = end
        }
        return out
    }

    /// Is `block` a node of the tree over `m` leaves?
    public static func isNode(_ block: Range<Int>, leafCount m: Int) -> Bool {
        guard block.lowerBound >= 0, block.lowerBound < block.upperBound, block.upperBound <= m else { return false }
        let top = paddedSize(m)
        var size = 1
        while size <= top {
            if block.lowerBound % size == 0 && min(block.lowerBound + size, m) == block.upperBound { return true }
            size *= 2
        }
        return false
    }
}

/// Accumulates node sums of the canonical tree and combines them in the fixed order.
///
/// Each slot `i` holds the sum of a node starting at leaf `i`; `level[i]` is that node's size. Inserting a
/// block puts its sum into its first leaf's slot; ``reduce()`` then merges bottom-up exactly as the tree says.
/// Buffers are allocated once; `reset()` reuses them for the next step.
public struct TreeReducer<Scalar: RNNScalar>: Sendable {
    public let leafCount: Int
    public let width: Int
    var slots: [[Scalar]]
    var covered: [Int]  // covered[i] = number of leaves summed in slot i (0 = empty)

    public init(leafCount: Int, width: Int) {
        precondition(leafCount >= 1 && width >= 0)
        self.leafCount = leafCount
        self.width = width
        slots = [[Scalar]](repeating: [], count: leafCount)
        covered = [Int](repeating: 0, count: leafCount)
    }

    /// Forgets every inserted block (keeps the buffers).
    public mutating func reset() {
        for i in covered.indices { covered[i] = 0 }
    }

    /// The inserted blocks, left to right.
    public var blocks: [Range<Int>] {
        var out: [Range<Int>] = []
        for i in 0..<leafCount where covered[i] > 0 { out.append(i..<(i + covered[i])) }
        return out
    }

    /// Is every leaf covered by an inserted block?
    public var isComplete: Bool {
        var i = 0
        while i < leafCount {
            guard covered[i] > 0 else { return false }
            i += covered[i]
        }
        return true
    }

    /// Leaves not yet covered by any inserted block.
    public var missingLeaves: [Int] {
        var mark = [Bool](repeating: false, count: leafCount)
        for b in blocks { for k in b { mark[k] = true } }
        return (0..<leafCount).filter { !mark[$0] }
    }

    /// Does an inserted block overlap `block`?
    public func overlapsInserted(_ block: Range<Int>) -> Bool {
        blocks.contains { $0.overlaps(block) }
    }

    /// Inserts the sum of one tree node. Returns false (and changes nothing) if `block` is not a node of
    /// the tree, the value has the wrong width, or the block overlaps one already inserted (a late or
    /// duplicate answer).
    @discardableResult
    public mutating func insert(block: Range<Int>, values: UnsafeBufferPointer<Scalar>) -> Bool {
        guard values.count == width, CanonicalTree.isNode(block, leafCount: leafCount),
              !overlapsInserted(block) else { return false }
        let a = block.lowerBound
        if slots[a].count != width { slots[a] = [Scalar](repeating: 0, count: width) }
        slots[a].withUnsafeMutableBufferPointer { dst in
            for k in 0..<width { dst[k] = values[k] }
        }
        covered[a] = block.count
        return true
    }

    /// Array convenience for ``insert(block:values:)``.
    @discardableResult
    public mutating func insert(block: Range<Int>, values: [Scalar]) -> Bool {
        values.withUnsafeBufferPointer { insert(block: block, values: $0) }
    }

    /// Combines the inserted nodes bottom-up into the root, in the canonical order.
    /// Returns nil if a leaf is missing. Leaves the reducer consumed (call `reset()` before reuse).
    public mutating func reduce() -> [Scalar]? {
        guard isComplete else { return nil }
        var s = 1
        while s < leafCount {
            var lo = 0
            var coveredUntil = 0  // leaves before this are inside a larger node already combined
            while lo < leafCount {
                defer { lo += 2 * s }
                if lo < coveredUntil { continue }
                let whole = min(lo + 2 * s, leafCount) - lo
                coveredUntil = lo + max(covered[lo], whole)
                if covered[lo] < whole {
                    // node(lo, 2s) = node(lo, s) + node(lo+s, s); both children must be present whole
                    let r = lo + s
                    precondition(covered[lo] == min(lo + s, leafCount) - lo && r < leafCount
                                 && covered[r] == min(r + s, leafCount) - r, "tree slots out of order")
                    let right = slots[r]
                    right.withUnsafeBufferPointer { rp in
                        slots[lo].withUnsafeMutableBufferPointer { left in
                            for k in 0..<width { left[k] += rp[k] }
                        }
                    }
                    covered[r] = 0
                    covered[lo] = whole
                }
            }
            s *= 2
        }
        return slots[0]
    }
}

extension CanonicalTree {
    /// Sums the leaves of one tree node in place, in the canonical order, leaving the node's sum in the
    /// row of its first leaf.
    ///
    /// - Parameters:
    ///   - rows: the leaf matrix `(M, width)`, row `i` holding leaf `i`.
    ///   - block: a node of the tree over `leafCount` leaves (see ``isNode(_:leafCount:)``).
    @_specialize(exported: true, where S == Float)
    @_specialize(exported: true, where S == Double)
    public static func reduceInPlace<S: RNNScalar>(
        _ rows: UnsafeMutablePointer<S>, width: Int, block: Range<Int>, leafCount: Int
    ) {
        precondition(isNode(block, leafCount: leafCount), "\(block) is not a node of the tree over \(leafCount) leaves")
        var s = 1
        while s < block.count {
            var lo = block.lowerBound
            while lo + s < block.upperBound {
                let left = rows + lo * width, right = rows + (lo + s) * width
                for k in 0..<width { left[k] += right[k] }
                lo += 2 * s
            }
            s *= 2
        }
    }
}
