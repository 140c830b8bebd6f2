internal import CKernels

/// Which variant of the SIMD kernels runs. Every variant gives the same bits (see `Sources/CKernels/kernels.c`);
/// the choice only changes speed. Tests force each one to check that.
public enum KernelISA: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case baseline = 0
    case avx2 = 1
    case avx512 = 2

    /// The fastest variant this CPU runs.
    public static var best: KernelISA { KernelISA(rawValue: ck_isa_best()) ?? .baseline }
    /// Does this CPU run the variant?
    public var isSupported: Bool { ck_isa_supported(rawValue) != 0 }
    public var description: String {
        switch self {
        case .baseline: return "baseline"
        case .avx2: return "avx2+fma"
        case .avx512: return "avx512"
        }
    }
}

/// Which kernel computes a micro-batch: own SIMD code, or OpenBLAS GEMMs.
///
/// ``forShape(_:batch:)`` is the static rule every process applies, so a leaf of a given shape is computed by
/// the same kernel (and so to the same bits) wherever it runs. The measurements behind it are in
/// `Sources/CKernels/kernels.c` (`ck_path_for`).
public enum KernelPath: Int32, Sendable, CaseIterable {
    case simd = 0
    case blas = 1

    /// Is OpenBLAS installed (`libopenblas.so.0`)? It is loaded on the first call, and the BLAS path needs
    /// it; without it every shape runs on the SIMD path.
    public static var isBLASAvailable: Bool { ck_blas_available() != 0 }

    /// The kernel for `batch` windows of a model of this shape: a pure function of the shape.
    public static func forShape(_ config: ModelConfig, batch: Int) -> KernelPath {
        var m = ck_model(config)
        return KernelPath(rawValue: ck_path_for(&m, batch)) ?? .simd
    }
}

/// The sizes of the four tensors of the flat parameter block as the kernels' one table
/// (`ck_parameter_layout`) gives them: ``ParameterLayout`` mirrors it. Nil for a shape the kernels
/// cannot take (a dimension beyond `Int32`: a configuration from a stranger, refused later).
func kernelParameterSizes(_ c: ModelConfig) -> [Int]? {
    let fits = { (n: Int) in Int32(exactly: n) != nil }
    guard [c.seqLen, c.inputSize, c.hiddenSize, c.outputSize].allSatisfy(fits), fits(c.hiddenSize + c.inputSize) else { return nil }
    var m = ck_model(c)
    var sizes = [Int](repeating: 0, count: Int(CK_NUM_PARAMS))
    _ = sizes.withUnsafeMutableBufferPointer { ck_parameter_layout(&m, $0.baseAddress, nil) }
    return sizes
}

extension ck_model {
    init(_ c: ModelConfig) {
        // Exhaustive switches: a new case of any of these enums must be given a kernel code here.
        let cell: Int32 = switch c.cell { case .seed: 0; case .elman: 1 }
        let act: Int32 = switch c.activation { case .tanh: 0; case .relu: 1 }
        let loss: Int32 = switch c.loss { case .last: 0; case .all: 1 }
        let head: Int32 = switch c.head { case .tanh: 0; case .linear: 1 }
        self.init(T: Int32(c.seqLen), I: Int32(c.inputSize), H: Int32(c.hiddenSize), O: Int32(c.outputSize),
                  cell: cell, act: act, loss: loss, head: head)
    }
}

/// The weights of one parameter block rearranged for the SIMD kernels (transposed, zero-padded to
/// multiples of 16). Packing once per step and sharing the result between threads saves each micro-batch
/// the rearrangement.
///
/// `@unchecked Sendable`: ``pack(_:)`` writes; the kernels only read, on any number of threads, between packs.
public final class PackedWeights<Scalar: RNNScalar>: @unchecked Sendable {
    public let config: ModelConfig
    let count: Int
    let storage: UnsafeMutableRawPointer
    /// Has ``pack(_:)`` run?
    public private(set) var isPacked = false

    public init(config: ModelConfig) {
        self.config = config
        var m = ck_model(config)
        count = ck_packed_count(&m)
        storage = .allocate(byteCount: max(count, 1) * MemoryLayout<Scalar>.stride, alignment: 64)
        storage.initializeMemory(as: Scalar.self, repeating: 0, count: max(count, 1))
    }

    deinit { storage.deallocate() }

    /// Rearranges `params` (laid out as ``ParameterLayout``).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func pack(_ params: UnsafeBufferPointer<Scalar>) {
        precondition(params.count == ParameterLayout(config).count, "parameter block has \(params.count) values, model needs \(ParameterLayout(config).count)")
        guard let base = params.baseAddress else { return }
        var m = ck_model(config)
        if Scalar.self == Float.self {
            ck_pack_f32(&m, UnsafeRawPointer(base).assumingMemoryBound(to: Float.self), storage.assumingMemoryBound(to: Float.self))
        } else {
            ck_pack_f64(&m, UnsafeRawPointer(base).assumingMemoryBound(to: Double.self), storage.assumingMemoryBound(to: Double.self))
        }
        isPacked = true
    }
}

/// The kernels' vector tanh on `x` (tests compare it with libm).
public func kernelTanh(_ x: [Float], isa: KernelISA = .best) -> [Float] {
    var out = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBufferPointer { op in
            if let a = xp.baseAddress, let b = op.baseAddress { ck_tanh_f32(isa.rawValue, a, b, x.count) }
        }
    }
    return out
}
