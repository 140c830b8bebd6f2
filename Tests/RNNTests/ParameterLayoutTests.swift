import Testing
@testable import RNN

@Suite("ParameterLayout mirrors the kernels' one table")
struct ParameterLayoutTests {
    @Test(arguments: Cell.allCases)
    func layoutMatchesTheKernelTable(cell: Cell) throws {
        let c = ModelConfig(inputSize: 3, hiddenSize: 5, outputSize: 2, seqLen: 4, cell: cell)
        let sizes = try #require(kernelParameterSizes(c))
        let layout = ParameterLayout(c)
        #expect(layout.tensors.map(\.range.count) == sizes)
        #expect(layout.tensors.map { $0.shape.reduce(1, *) } == sizes)
        #expect(layout.count == sizes.reduce(0, +))
        #expect(layout.wy.shape == [2, cell == .seed ? 8 : 5])
    }

    @Test func aShapeTheKernelsCannotTakeHasNoTable() {
        let c = ModelConfig(inputSize: 1, hiddenSize: Int(Int32.max), outputSize: 1, seqLen: 2)
        #expect(kernelParameterSizes(c) == nil)
    }
}
