import Observe
import Training

extension PreparedCLIRun {
    /// After each step: when `--hash-every` makes one due, appends the step's hash line to
    /// `metrics.jsonl` (through the watch when it writes that file's lines, so they stay in order).
    /// The in-process trainer and the coordinator both call it with their ``RunState``.
    func recordHash(_ state: RunState, watch: RunWatch?) throws(TrainingError) {
        guard state.hashDue(every: hashEvery) else { return }
        let line = HashLine(step: state.step, hash: state.weightsHash)
        if let watch, watch.writesEpochLines {
            watch.hash(line)
        } else {
            try dir.append(hash: line)
        }
    }
}
