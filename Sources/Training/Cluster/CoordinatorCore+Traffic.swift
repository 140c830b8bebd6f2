import Wire

/// One process's bytes per step over an epoch (an entry of ``EpochMetrics/processes``).
public struct ProcessTraffic: Sendable, Codable, Equatable {
    /// `coordinator`, `worker` or `shard`.
    public var role: String
    /// The worker id (0: the coordinator).
    public var id: UInt32
    /// Bytes received and sent per step: the mean over the epoch's steps (headers included).
    public var bytesInPerStep: Double
    public var bytesOutPerStep: Double

    public init(role: String, id: UInt32, bytesInPerStep: Double, bytesOutPerStep: Double) {
        self.role = role
        self.id = id
        self.bytesInPerStep = bytesInPerStep
        self.bytesOutPerStep = bytesOutPerStep
    }
}

/// Bytes accounted per process: the workers' and shards' counters (``Traffic``, sent with their
/// heartbeats and after their steps) and the coordinator's own, as means per step on each epoch line.
extension CoordinatorCore {
    /// A worker's TRAFFIC: its newest counters.
    func noteTraffic(_ t: Traffic, from peer: PeerID) {
        guard var w = membership.workers[peer] else { return }
        w.processBytesIn = Int(clamping: t.bytesIn)
        w.processBytesOut = Int(clamping: t.bytesOut)
        membership.workers[peer] = w
    }

    /// Every process's bytes per step since the last epoch's end (the coordinator first, then the
    /// workers and shards that reported, by id), and the marks moved to now.
    func epochTraffic(steps: Int) -> [ProcessTraffic] {
        let n = Double(max(1, steps))
        var out: [ProcessTraffic] = []
        func add(_ role: String, _ id: UInt32, _ bytesIn: Int, _ bytesOut: Int) {
            let (i0, o0) = trafficMark[id] ?? (0, 0)
            out.append(ProcessTraffic(role: role, id: id, bytesInPerStep: Double(bytesIn - i0) / n,
                                      bytesOutPerStep: Double(bytesOut - o0) / n))
            trafficMark[id] = (bytesIn, bytesOut)
        }
        add("coordinator", 0, bytesIn, bytesOut)
        for w in membership.workers.values.sorted(by: { $0.id < $1.id }) where w.phase == .ready {
            guard let i = w.processBytesIn, let o = w.processBytesOut else { continue }
            add(w.shard == true ? "shard" : "worker", w.id, i, o)
        }
        return out
    }
}
