import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RNN

/// The canonical reduction tree of a step (see `CanonicalTree`), summed *as the nodes arrive*.
///
/// `TreeReducer` stores every node and sums the tree at the end; this one merges a node with its
/// sibling as soon as both are in, so the reduction overlaps the receiving, and the last answer
/// of a step costs one pass over its values. Every addition is still `left + right` of the same
/// two nodes the tree prescribes (`node(lo, 2s) = node(lo, s) + node(lo + s, s)`; a node whose
/// right half is empty is its left half), so the root has the bits of `TreeReducer.reduce()`
/// whatever the arrival order.
///
/// Values can be inserted straight from a received frame's little-endian bytes: a node whose
/// sibling is already in is added to it from those bytes, without an intermediate array. For
/// large widths the element range is split across threads; each element's sum is unchanged, so
/// the bits are too.
///
/// Storage: one `width`-float buffer per node held at once (slot `i` holds the node starting at leaf
/// `i`): a node merged into its sibling gives its buffer back to a pool the next waiting node takes
/// from, and a node meeting its waiting right sibling is summed into that sibling's buffer, so a step
/// whose nodes arrive in order holds one buffer (the root), and the buffers are reused across steps.
public struct StreamingTree: Sendable {
    /// Values per node.
    public let width: Int
    /// Leaves of the current step, M.
    public private(set) var leafCount: Int
    /// The perfect tree's leaf count, the next power of two ≥ M.
    private var top: Int
    private var slots: [[Float]] = []
    /// Buffers of merged nodes, for the next node that waits.
    private var spare: [[Float]] = []
    /// `size[i]`: the size (a power of two) of the node held in slot `i`; 0 = empty.
    private var size: [Int] = []
    /// Leaves covered by inserted nodes.
    private var have: [Bool] = []
    private var missing = 0

    /// Widths from which a pass over the values is split across threads.
    public static let parallelWidth = 1 << 19

    /// A tree of `leafCount` leaves with `width` values per node.
    public init(leafCount: Int, width: Int) {
        precondition(leafCount >= 1 && width >= 0)
        self.width = width
        self.leafCount = leafCount
        top = CanonicalTree.paddedSize(leafCount)
        reset(leafCount: leafCount)
    }

    /// Forgets every inserted node and sets the leaf count (keeps the buffers).
    public mutating func reset(leafCount m: Int) {
        precondition(m >= 1)
        leafCount = m
        top = CanonicalTree.paddedSize(m)
        if slots.count < m { slots += [[Float]](repeating: [], count: m - slots.count) }
        for i in slots.indices { release(i) }
        size = [Int](repeating: 0, count: m)
        have = [Bool](repeating: false, count: m)
        missing = m
    }

    /// Node buffers allocated (held by a waiting node, or pooled for the next): the most nodes that
    /// waited at once in any step so far.
    public var buffersHeld: Int { slots.reduce(0) { $0 + ($1.isEmpty ? 0 : 1) } + spare.count }

    /// Is every leaf in (and the root summed)?
    public var isComplete: Bool { missing == 0 }

    /// Leaves not yet covered by an inserted node.
    public var missingLeaves: [Int] { (0..<leafCount).filter { !have[$0] } }

    /// Does an inserted node overlap `block`?
    public func overlapsInserted(_ block: Range<Int>) -> Bool {
        block.clamped(to: 0..<leafCount).contains { have[$0] }
    }

    /// Where a node's values come from.
    public enum Source {
        /// Floats in memory.
        case floats(UnsafeBufferPointer<Float>)
        /// `width` little-endian Float32 values at any alignment (a received frame).
        case littleEndian(UnsafeRawBufferPointer)

        var count: Int {
            switch self {
            case .floats(let f): f.count
            case .littleEndian(let b): b.count / 4
            }
        }
    }

    /// Inserts the sum of one tree node and merges whatever it completes. Returns false (and
    /// changes nothing) if `block` is not a node, the values have the wrong width, or the block
    /// overlaps one already inserted (a late or duplicate answer).
    @discardableResult
    public mutating func insert(block: Range<Int>, values: Source) -> Bool {
        guard values.count == width, CanonicalTree.isNode(block, leafCount: leafCount),
              !overlapsInserted(block) else { return false }
        for k in block { have[k] = true }
        missing -= block.count
        var a = block.lowerBound
        var s = 1
        while s < block.count { s *= 2 }
        var pending: Source? = values  // the node's value while it is not in a slot yet
        while 2 * s <= top {
            if a % (2 * s) == 0 {
                let r = a + s
                if r >= leafCount { s *= 2; continue }  // empty right half: the parent is this node
                guard size[r] == s else { break }
                // node(a, 2s) = node(a, s) + node(r, s)
                combine(into: a, left: pending, right: r)
                pending = nil
                size[r] = 0
                release(r)
                s *= 2
            } else {
                let l = a - s
                guard size[l] == s else { break }
                // node(l, 2s) = node(l, s) + node(a, s)
                addRight(into: l, right: pending.map { .value($0) } ?? .slot(a))
                if pending == nil { size[a] = 0; release(a) }
                pending = nil
                a = l
                s *= 2
            }
        }
        if let p = pending {
            ensureSlot(a)
            copy(p, into: a)
        }
        size[a] = s
        return true
    }

    /// Array convenience for ``insert(block:values:)``.
    @discardableResult
    public mutating func insert(block: Range<Int>, values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { insert(block: block, values: .floats($0)) }
    }

    /// Calls `body` with the root (`width` values) once every leaf is in; nil before.
    public func withRoot<R, E: Error>(_ body: (UnsafeBufferPointer<Float>) throws(E) -> R) throws(E) -> R? {
        guard isComplete else { return nil }
        let root = slots[0]
        let result: Result<R, E> = root.withUnsafeBufferPointer { p in
            do throws(E) { return .success(try body(p)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// A copy of the root, or nil if a leaf is missing.
    public func root() -> [Float]? { isComplete ? slots[0] : nil }

    // MARK: - the passes over the values

    private mutating func ensureSlot(_ i: Int) {
        if slots[i].count != width { slots[i] = spare.popLast() ?? [Float](repeating: 0, count: width) }
    }

    /// Slot `i`'s buffer back to the pool.
    private mutating func release(_ i: Int) {
        guard !slots[i].isEmpty else { return }
        spare.append(slots[i])
        slots[i] = []
    }

    /// Calls `body` with the root's values to change in place (the caller's scratch for the rest of the
    /// step: the next ``reset(leafCount:)`` forgets them) once every leaf is in; nil before.
    public mutating func withMutableRoot<R>(_ body: (UnsafeMutableBufferPointer<Float>) -> R) -> R? {
        guard isComplete else { return nil }
        return slots[0].withUnsafeMutableBufferPointer { body($0) }
    }

    private enum Right {
        case value(Source)
        case slot(Int)
    }

    /// `slot[a] = left + slot[r]`, `left` being `pending` or `slot[a]` itself. A pending left is summed
    /// into slot `r`'s buffer (the same `left + right` of each element), which then becomes slot `a`'s;
    /// slot `r` is left holding slot `a`'s old buffer, if any, for the caller to release.
    private mutating func combine(into a: Int, left: Source?, right r: Int) {
        guard let left else {
            let rightValues = slots[r]  // a reference, not a copy: slot r is not written below
            rightValues.withUnsafeBufferPointer { rp in
                slots[a].withUnsafeMutableBufferPointer { dst in
                    let d = UncheckedPointer(dst.baseAddress), rr = UncheckedPointer(UnsafeMutablePointer(mutating: rp.baseAddress))
                    Self.chunked(width) { lo, hi in
                        guard let d = d.p, let rr = rr.p else { return }
                        for k in lo..<hi { d[k] = d[k] + rr[k] }
                    }
                }
            }
            return
        }
        slots[r].withUnsafeMutableBufferPointer { dst in
            let rr = UncheckedPointer(dst.baseAddress)
            switch left {
            case .floats(let f):
                let src = UncheckedPointer(UnsafeMutablePointer(mutating: f.baseAddress))
                Self.chunked(width) { lo, hi in
                    guard let rr = rr.p, let f = src.p else { return }
                    for k in lo..<hi { rr[k] = f[k] + rr[k] }
                }
            case .littleEndian(let b):
                let src = UncheckedRaw(b.baseAddress)
                Self.chunked(width) { lo, hi in
                    guard let rr = rr.p, let b = src.p else { return }
                    for k in lo..<hi { rr[k] = Self.load(b, k) + rr[k] }
                }
            }
        }
        slots.swapAt(a, r)
    }

    /// `slot[l] = slot[l] + right`.
    private mutating func addRight(into l: Int, right: Right) {
        switch right {
        case .slot(let a):
            let rightValues = slots[a]
            rightValues.withUnsafeBufferPointer { rp in
                addRight(into: l, right: .value(.floats(rp)))
            }
        case .value(let source):
            slots[l].withUnsafeMutableBufferPointer { dst in
                let d = UncheckedPointer(dst.baseAddress)
                switch source {
                case .floats(let f):
                    let src = UncheckedPointer(UnsafeMutablePointer(mutating: f.baseAddress))
                    Self.chunked(width) { lo, hi in
                        guard let d = d.p, let f = src.p else { return }
                        for k in lo..<hi { d[k] = d[k] + f[k] }
                    }
                case .littleEndian(let b):
                    let src = UncheckedRaw(b.baseAddress)
                    Self.chunked(width) { lo, hi in
                        guard let d = d.p, let b = src.p else { return }
                        for k in lo..<hi { d[k] = d[k] + Self.load(b, k) }
                    }
                }
            }
        }
    }

    /// `slot[a] = source`.
    private mutating func copy(_ source: Source, into a: Int) {
        slots[a].withUnsafeMutableBufferPointer { dst in
            let d = UncheckedPointer(dst.baseAddress)
            switch source {
            case .floats(let f):
                let src = UncheckedPointer(UnsafeMutablePointer(mutating: f.baseAddress))
                Self.chunked(width) { lo, hi in
                    guard let d = d.p, let f = src.p else { return }
                    (d + lo).update(from: f + lo, count: hi - lo)
                }
            case .littleEndian(let b):
                let src = UncheckedRaw(b.baseAddress)
                Self.chunked(width) { lo, hi in
                    guard let d = d.p, let b = src.p else { return }
                    #if _endian(little)
                    UnsafeMutableRawPointer(d + lo).copyMemory(from: b + 4 * lo, byteCount: 4 * (hi - lo))
                    #else
                    for k in lo..<hi { d[k] = Self.load(b, k) }
                    #endif
                }
            }
        }
    }

    @inline(__always)
    private static func load(_ b: UnsafeRawPointer, _ k: Int) -> Float {
        Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
    }

    /// Runs `body(lo, hi)` over `0..<count`: in one piece, or for large counts in pieces on
    /// several threads (each element is touched by exactly one piece).
    private static func chunked(_ count: Int, _ body: @Sendable (Int, Int) -> Void) {
        guard count >= parallelWidth else {
            body(0, count)
            return
        }
        let threads = min(max(1, activeProcessors), 8)
        guard threads > 1 else {
            body(0, count)
            return
        }
        let pieces = threads * 2
        let per = (count + pieces - 1) / pieces
        DispatchQueue.concurrentPerform(iterations: pieces) { i in
            let lo = i * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo, hi) }
        }
    }

    private static let activeProcessors = ProcessInfo.processInfo.activeProcessorCount
}

/// A pointer handed to the pieces of ``StreamingTree``'s parallel passes, which write disjoint
/// element ranges.
private struct UncheckedPointer: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>?
    init(_ p: UnsafeMutablePointer<Float>?) { self.p = p }
}

private struct UncheckedRaw: @unchecked Sendable {
    let p: UnsafeRawPointer?
    init(_ p: UnsafeRawPointer?) { self.p = p }
}
