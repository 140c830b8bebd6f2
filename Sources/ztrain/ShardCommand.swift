import ArgumentParser
import Wire

/// `ztrain shard`: a dedicated owner of a slice of the parameters in sharded aggregation.
struct ShardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Run a shard: a dedicated owner of a slice of the parameters in a sharded run (it computes nothing).",
        discussion: """
            A shard joins the coordinator like a worker, but takes no orders and never holds the whole \
            weights: it reduces its slice of every worker's tree nodes, reports its part of the norm, \
            applies the optimizer to its slice (its optimizer state stays here) and sends the updated slice \
            to every worker and the coordinator. Shards that joined before the run starts own the slices \
            (else the workers do); give the coordinator --aggregation sharded and --shards N to wait for them.

            Example: ztrain shard --connect tcp://10.0.0.1:5555 --peer-bind tcp://10.0.0.3:6000
            """)

    @Option(help: "The coordinator's endpoint.")
    var connect: String

    @Option(help: "Seconds to wait for the coordinator's first welcome.")
    var connectTimeout: Double = 60

    @Option(help: "Seconds to keep saying HELLO to a coordinator that went silent (restarted, or resuming).")
    var reconnectTimeout: Double = 600

    @Option(help: "Where this shard's peer endpoint binds (the workers connect there; its address goes to the coordinator in HELLO). Default: next to the coordinator's socket for ipc://, else a free port on the address that reaches the coordinator.")
    var peerBind: String?

    @Option(help: .hidden)
    var parentPid: Int32?

    @OptionGroup(title: "Security") var security: SecurityOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard connectTimeout.isFinite && connectTimeout > 0 else { throw ValidationError("--connect-timeout must be positive") }
        guard reconnectTimeout.isFinite && reconnectTimeout > 0 else { throw ValidationError("--reconnect-timeout must be positive") }
    }

    func run() throws {
        let logger = try global.bootstrap(label: "ztrain.shard")
        try runWorker(connect: connect, threads: 1, expect: nil, parentPID: parentPid, connectTimeout: connectTimeout,
                      reconnectTimeout: reconnectTimeout, security: security.client(), healthFile: security.health(),
                      peerBind: peerBind, isShard: true, logger: logger)
    }
}
