import RNN

/// The canonical reduction of one element range `[a, b)` of a step's rows: the tree-node sums of the
/// step (``CanonicalTree``), restricted to those elements, summed in the tree's order as they arrive.
///
/// Every element of a row is summed on its own (a node's sum is `left + right` element by element), so
/// the slices' results laid end to end are the full reduction's root, bit for bit, however the row is cut
/// and in whatever order each slice's nodes arrive. This is a ``StreamingTree`` of the slice's width: an
/// owner of a slice of the parameters (sharded aggregation) reduces only its slice; the coordinator can
/// reduce the loss element `[P, P + 1)` the same way.
///
///     var slice = SliceReduction(elements: 4096..<8192, leafCount: 5)
///     slice.insert(block: 4..<5, row: .floats(fullRowOfNode4))      // takes elements 4096..<8192
///     slice.insert(block: 0..<4, values: .floats(sliceOfNode0to4))   // 4096 values: the slice alone
///     slice.withResult { sums in … }                                 // once every leaf is in
public struct SliceReduction: Sendable {
    /// The elements of a row this reduction sums.
    public let elements: Range<Int>
    private var tree: StreamingTree

    /// A reduction of `elements` over a step of `leafCount` leaves.
    public init(elements: Range<Int>, leafCount: Int) {
        precondition(elements.lowerBound >= 0, "elements \(elements)")
        self.elements = elements
        tree = StreamingTree(leafCount: leafCount, width: elements.count)
    }

    /// Leaves of the current step.
    public var leafCount: Int { tree.leafCount }

    /// Forgets the inserted nodes and sets the next step's leaf count (keeps the buffers).
    public mutating func reset(leafCount: Int) { tree.reset(leafCount: leafCount) }

    /// Is every leaf in?
    public var isComplete: Bool { tree.isComplete }

    /// Leaves not yet covered by an inserted node.
    public var missingLeaves: [Int] { tree.missingLeaves }

    /// Does an inserted node overlap `block`?
    public func overlapsInserted(_ block: Range<Int>) -> Bool { tree.overlapsInserted(block) }

    /// Inserts a node's values for this slice alone (`elements.count` values). Returns false (and
    /// changes nothing) for a block that is not a node, values of another width, or a node that
    /// overlaps one already in (see ``StreamingTree/insert(block:values:)``).
    @discardableResult
    public mutating func insert(block: Range<Int>, values: StreamingTree.Source) -> Bool {
        tree.insert(block: block, values: values)
    }

    /// Array convenience for ``insert(block:values:)``.
    @discardableResult
    public mutating func insert(block: Range<Int>, values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { tree.insert(block: block, values: .floats($0)) }
    }

    /// Inserts this slice of a node's whole row (`row` holds at least `elements.upperBound` values).
    /// Returns false, changing nothing, when the row is too short or ``insert(block:values:)`` refuses.
    @discardableResult
    public mutating func insert(block: Range<Int>, row: StreamingTree.Source) -> Bool {
        guard row.count >= elements.upperBound else { return false }
        switch row {
        case .floats(let f):
            return tree.insert(block: block, values: .floats(UnsafeBufferPointer(rebasing: f[elements])))
        case .littleEndian(let b):
            let bytes = (4 * elements.lowerBound)..<(4 * elements.upperBound)
            return tree.insert(block: block, values: .littleEndian(UnsafeRawBufferPointer(rebasing: b[bytes])))
        }
    }

    /// Calls `body` with the slice's reduced sums (`elements.count` values) once every leaf is in; nil before.
    public func withResult<R, E: Error>(_ body: (UnsafeBufferPointer<Float>) throws(E) -> R) throws(E) -> R? {
        try tree.withRoot(body)
    }

    /// Calls `body` with the slice's reduced sums to change in place (scratch until the next
    /// ``reset(leafCount:)``) once every leaf is in; nil before.
    public mutating func withMutableResult<R>(_ body: (UnsafeMutableBufferPointer<Float>) -> R) -> R? {
        tree.withMutableRoot(body)
    }

    /// A copy of the reduced sums, or nil if a leaf is missing.
    public func result() -> [Float]? { tree.root() }
}
