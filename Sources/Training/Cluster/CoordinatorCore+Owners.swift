import Wire

/// Who owns the slices in sharded aggregation: the `ztrain shard` processes (dedicated owners, ps-lite's
/// servers) when any are live, else the workers themselves; and who is listed in the table.
extension CoordinatorCore {
    /// The ids that may own slices, by id: the live shard processes when there are any, else the live workers.
    var ownerCandidates: [UInt32] {
        let shards = membership.liveShards.map(\.id)
        return shards.isEmpty ? liveWorkers.map(\.id) : shards
    }

    /// The ids of every live process that can hold a slice (workers and shard processes).
    var liveHolders: Set<UInt32> { Set((liveWorkers + membership.liveShards).map(\.id)) }

    /// The table's peers: every live worker and shard process with its peer endpoint (and key), by id.
    func tablePeers(_ endpoints: [UInt32: String]) -> [ShardTable.Peer] {
        (liveWorkers + membership.liveShards).sorted { $0.id < $1.id }.map {
            ShardTable.Peer(worker: $0.id, endpoint: endpoints[$0.id] ?? "", key: shardKeys[$0.id], shard: $0.shard)
        }
    }
}
