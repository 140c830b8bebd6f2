import Foundation
import RNN
import Series
import Testing
@testable import Training

/// Sharded aggregation, simulated in one process: N workers compute contiguous runs of leaves, S owners
/// each reduce, clip and update their slice from the nodes' slices arriving in any order, the coordinator
/// combines the owners' parts of the norm; the weights must be `--in-process` training's, bit for bit.
@Suite("ShardOwner: sharded aggregation without I/O")
struct ShardOwnerTests {
    /// P = 17 030 (five blocks: a slice for every owner up to five, and a short last block).
    func config(clip: Double?, optimizer: OptimizerConfig = OptimizerConfig(kind: .adam, learningRate: 1e-2)) -> TrainingConfig {
        TrainingConfig(
            model: ModelConfig(inputSize: 2, hiddenSize: 128, outputSize: 2, seqLen: 4),
            optimizer: optimizer, data: .sincos(points: 1000, from: 0, to: 100),
            batch: 40, microBatch: 6, epochs: nil, steps: 4, seed: 3, shuffle: true,
            clipNorm: clip, targetLoss: nil, validationFraction: 0)
    }

    func shuffle<T>(_ a: inout [T], _ rng: inout SplitMix) {
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    }

    /// Trains `config` with `workers` workers and `owners` owners; checks every step against the control
    /// plane's `RunState` fed the owners' reduced slices, and returns the final weights.
    /// `replay`: at step 2, owner 0 dies after half its nodes and a restored copy takes the step again.
    func simulate(_ config: TrainingConfig, workers: Int, owners s: Int, seed: UInt64, replay: Bool = false) throws -> [Float] {
        var rng = SplitMix(seed: seed)
        let series = try referenceSeries()
        let prepared = try PreparedRun(config: config, series: series, initialParameters: nil)
        var state = RunState(config: config, split: prepared.split, parameters: prepared.parameters)
        let p = prepared.parameters.count
        let plan = ShardPlan(parameterCount: p, owners: s)
        var owners = (0..<s).map { o in
            let r = plan.range(ofOwner: o)
            return ShardOwner(plan: plan, owner: o, parameters: Array(prepared.parameters[r]),
                              optimizer: Optimizer(config: config.optimizer, parameterCount: r.count))
        }
        let engines = (0..<workers).map { _ in GradientEngine(config: config.model, microBatch: prepared.microBatch, threads: 1) }
        let spare = GradientEngine(config: config.model, microBatch: prepared.microBatch, threads: 2)
        var weights = prepared.parameters  // every worker's copy: the all-gather of the owners' slices
        var loss = SliceReduction(elements: p..<(p + 1), leafCount: 1)
        var assembly = NormAssembly(plan: plan)
        var windows = [Int](repeating: 0, count: state.batch)
        let values = series.values
        while let n = state.nextBatch(into: &windows) {
            let step = state.step + 1
            let stepPlan = StepPlan(windows: n, microBatch: prepared.microBatch)
            let m = stepPlan.leafCount
            for o in owners.indices { try owners[o].begin(step: step, plan: stepPlan) }
            loss.reset(leafCount: m)
            assembly.begin(step: step)
            // the workers: contiguous runs of leaves, one message per tree node (rows are P + 1 wide)
            var messages: [(block: Range<Int>, row: [Float])] = []
            func compute(_ engine: GradientEngine, _ run: Range<Int>) {
                let nodes = weights.withUnsafeBufferPointer { w in
                    values.withUnsafeBufferPointer { v in
                        windows.withUnsafeBufferPointer { ws in
                            engine.compute(params: w, series: v, windows: UnsafeBufferPointer(rebasing: ws[0..<n]), run: run)
                        }
                    }
                }
                for node in nodes { messages.append((node.block, Array(node.sums))) }
            }
            for w in 0..<workers {
                let run = (w * m / workers)..<((w + 1) * m / workers)
                if !run.isEmpty { compute(engines[w], run) }
            }
            for message in messages { message.row.withUnsafeBufferPointer { _ = loss.insert(block: message.block, row: .floats($0)) } }
            let workerMessages = messages.count
            compute(spare, 0..<m)  // a speculative copy of the whole step: the root, as one node
            for o in owners.indices {
                // every owner gets every node's slice in its own order, with duplicates and maybe the copy first
                var order = Array(0..<workerMessages) + [Int(rng.next() % UInt64(workerMessages))]
                shuffle(&order, &rng)
                if rng.next() % 3 == 0 { order.insert(workerMessages, at: 0) } else { order.append(workerMessages) }
                let r = owners[o].range
                for (k, i) in order.enumerated() {
                    if replay && step == 2 && o == 0 && k == order.count / 2 {
                        // the owner dies mid-step; a fresh process restores its last snapshot and takes the step anew
                        let saved = try JSONDecoder().decode(ShardOwner.Snapshot.self, from: JSONEncoder().encode(owners[o].snapshot()))
                        owners[o] = try ShardOwner(plan: plan, restoring: saved, optimizer: config.optimizer)
                        try owners[o].begin(step: step, plan: stepPlan)
                        for again in order { _ = try owners[o].receive(step: step, block: messages[again].block, values: Array(messages[again].row[r])) }
                        break
                    }
                    let receipt = try owners[o].receive(step: step, block: messages[i].block, values: Array(messages[i].row[r]))
                    if k == 0 { #expect(receipt == (messages[i].block == 0..<m ? .completed : .accepted)) }
                }
                let part = try #require(owners[o].partialNorm)
                #expect(try assembly.add(part))
                if !part.blocks.isEmpty { #expect(try !assembly.add(part)) }  // a duplicate part is ignored
            }
            // the control plane: the reference update from the owners' reduced slices and the loss
            var root: [Float] = []
            for owner in owners { root += try #require(owner.withReducedSums { Array($0) }) }
            root += try #require(loss.result())
            let lr = state.scheduler.lr
            _ = try root.withUnsafeBufferPointer { try state.apply(root: $0, windows: n) }
            let norm = try #require(assembly.norm)
            #expect(assembly.isFinite)
            #expect(norm.bitPattern == state.lastGradNorm.bitPattern, "step \(step): the assembled norm")
            let coef = config.clipNorm.flatMap { GradientNorm.clipCoefficient(norm: norm, maxNorm: $0) }
            for o in owners.indices { try owners[o].apply(step: step, clipCoefficient: coef, learningRate: lr) }
            // a late node of the applied step is stale
            #expect(try owners[0].receive(step: step, block: messages[0].block, values: Array(messages[0].row[owners[0].range])) == .stale)
            weights = owners.flatMap(\.parameters)
            #expect(weights == state.parameters, "step \(step): \(workers) workers, \(s) owners")
            if state.epochEnded { state.closeEpoch(loss: 0) }
        }
        return weights
    }

    @Test(arguments: [nil, 0.05] as [Double?])
    func anyWorkerAndOwnerCountTrainsTheBitsOfInProcess(clip: Double?) throws {
        let config = config(clip: clip)
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run().parameters
        var seed: UInt64 = 1
        for workers in 1...4 {
            for owners in 1...4 {
                seed += 1
                let weights = try simulate(config, workers: workers, owners: owners, seed: seed, replay: owners > 1 && workers == 2)
                #expect(weights == reference, "\(workers) workers, \(owners) owners, clip \(String(describing: clip))")
            }
        }
    }

    @Test func sgdWithMomentumAndMoreOwnersThanBlocks() throws {
        let config = config(clip: 0.05, optimizer: OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9))
        let reference = try InProcessTrainer(config: config, series: try referenceSeries()).run().parameters
        #expect(try simulate(config, workers: 3, owners: 7, seed: 99) == reference)
    }

    /// The clipping must actually engage in the clipped runs above.
    @Test func theClippedRunClips() throws {
        let result = try InProcessTrainer(config: config(clip: 0.05), series: try referenceSeries()).run()
        let unclipped = try InProcessTrainer(config: config(clip: nil), series: try referenceSeries()).run()
        #expect(result.parameters != unclipped.parameters)
    }

    func smallOwner() -> ShardOwner {
        let plan = ShardPlan(parameterCount: 10, owners: 1)
        return ShardOwner(plan: plan, owner: 0, parameters: [Float](repeating: 0, count: 10),
                          optimizer: Optimizer(config: OptimizerConfig(kind: .adam, learningRate: 0.1), parameterCount: 10))
    }

    @Test func refusesWrongSizesNodesStepsAndCommandsWithTypedErrors() throws {
        var owner = smallOwner()
        let plan = StepPlan(windows: 10, microBatch: 4)  // 3 leaves
        #expect(throws: ShardError.wrongStep(step: 2, current: 1)) { try owner.begin(step: 2, plan: plan) }
        #expect(throws: ShardError.emptyStep(step: 1)) { try owner.begin(step: 1, plan: StepPlan(windows: 0, microBatch: 4)) }
        #expect(throws: ShardError.wrongStep(step: 1, current: 0)) { try owner.receive(step: 1, block: 0..<1, values: [Float](repeating: 1, count: 10)) }
        try owner.begin(step: 1, plan: plan)
        #expect(throws: ShardError.wrongSize(expected: 10, got: 9)) { try owner.receive(step: 1, block: 0..<1, values: [Float](repeating: 1, count: 9)) }
        #expect(throws: ShardError.notANode(block: 1..<3, leafCount: 3)) { try owner.receive(step: 1, block: 1..<3, values: [Float](repeating: 1, count: 10)) }
        #expect(throws: ShardError.wrongStep(step: 2, current: 1)) { try owner.receive(step: 2, block: 0..<1, values: [Float](repeating: 1, count: 10)) }
        #expect(throws: ShardError.notReady("apply(step: 1) while collecting(step: 1): every node of the step must be in first")) {
            try owner.apply(step: 1, clipCoefficient: nil, learningRate: 0.1)
        }
        #expect(try owner.receive(step: 1, block: 0..<2, values: [Float](repeating: 1, count: 10)) == .accepted)
        #expect(try owner.receive(step: 1, block: 0..<1, values: [Float](repeating: 1, count: 10)) == .duplicate)
        #expect(owner.partialNorm == nil)
        var bad = [Float](repeating: 1, count: 10)
        bad[3] = .nan
        #expect(try owner.receive(step: 1, block: 2..<3, values: bad) == .completed)
        #expect(owner.partialNorm?.isFinite == false)
        #expect(throws: ShardError.nonFinite(step: 1)) { try owner.apply(step: 1, clipCoefficient: nil, learningRate: 0.1) }
        owner.abandon()
        #expect(try owner.receive(step: 1, block: 2..<3, values: bad) == .stale)
        #expect(owner.stepsApplied == 0 && owner.parameters == [Float](repeating: 0, count: 10))
        try owner.begin(step: 1, plan: plan)
        try owner.receive(step: 1, block: 0..<3, values: [Float](repeating: 1, count: 10))
        try owner.apply(step: 1, clipCoefficient: nil, learningRate: 0.1)
        #expect(owner.stepsApplied == 1 && owner.parameters.allSatisfy { $0 < 0 })
    }

    @Test func restoringASnapshotOfAnotherSliceIsRefused() throws {
        let owner = smallOwner()
        var snap = owner.snapshot()
        let config = OptimizerConfig(kind: .adam, learningRate: 0.1)
        #expect(try ShardOwner(plan: owner.plan, restoring: snap, optimizer: config).snapshot() == snap)
        #expect(throws: ShardError.self) { try ShardOwner(plan: ShardPlan(parameterCount: 11, owners: 1), restoring: snap, optimizer: config) }
        #expect(throws: ShardError.self) { try ShardOwner(plan: owner.plan, restoring: snap, optimizer: OptimizerConfig(kind: .sgd, learningRate: 0.1)) }
        snap.owner = 1
        #expect(throws: ShardError.self) { try ShardOwner(plan: owner.plan, restoring: snap, optimizer: config) }
    }

    @Test func theNormAssemblyRefusesPartsOfAnotherStepOrSize() throws {
        var assembly = NormAssembly(plan: ShardPlan(parameterCount: 3 * ShardPlan.blockSize, owners: 2))
        assembly.begin(step: 4)
        let part = ShardOwner.PartialNorm(step: 3, blocks: 0..<1, sumsOfSquares: [1], isFinite: true)
        #expect(throws: ShardError.wrongStep(step: 3, current: 4)) { try assembly.add(part) }
        #expect(throws: ShardError.self) { try assembly.add(ShardOwner.PartialNorm(step: 4, blocks: 0..<2, sumsOfSquares: [1], isFinite: true)) }
        #expect(try assembly.add(ShardOwner.PartialNorm(step: 4, blocks: 0..<1, sumsOfSquares: [4], isFinite: true)))
        #expect(assembly.norm == nil)
        #expect(try assembly.add(ShardOwner.PartialNorm(step: 4, blocks: 1..<3, sumsOfSquares: [5, 7], isFinite: true)))
        #expect(assembly.norm == ((4.0 + 5) + 7).squareRoot())
    }
}
