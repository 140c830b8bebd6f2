/// Initialisation like PyTorch's `nn.Linear`: every weight and bias uniform in `±1/sqrt(fan_in)`.
///
/// `fan_in` is `H+I` for `get_ht` and `H+I` (seed) or `H` (elman) for `get_yt`. The draw order is the flat
/// parameter order, one 64-bit draw per scalar, so the same generator state gives the same weights on every
/// machine (PyTorch's own bits cannot be reproduced; its distribution is).
public func initializeParameters<G: RandomNumberGenerator>(
    config: ModelConfig, using rng: inout G
) -> [Float] {
    let layout = ParameterLayout(config)
    var p = [Float](repeating: 0, count: layout.count)
    let fanIn: [Int] = [config.concatSize, config.concatSize, config.outputFanIn, config.outputFanIn]
    for (tensor, fan) in zip(layout.tensors, fanIn) {
        let bound = 1.0 / Double(fan).squareRoot()
        for i in tensor.range {
            let u = Double(rng.next() >> 11) * 0x1p-53  // [0, 1)
            p[i] = Float((2 * u - 1) * bound)
        }
    }
    return p
}
