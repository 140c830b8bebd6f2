#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Transport
import Wire

/// A worker's links to the other workers in sharded aggregation: a ROUTER bound where the others reach
/// it (its endpoint goes to the coordinator in HELLO, and from there into every ``ShardTable``), and one
/// DEALER per other worker of the table, connected to that worker's router. Sends never block (a peer
/// that is gone loses the message; the coordinator's retries and the owners' dedup keep the bits).
///
///     let links = try PeerLinks(bind: "tcp://127.0.0.1:*", logger: logger)
///     hello.peer = links.endpoint
///     links.connect(table, selfID: 3)
///     links.send(node, to: 1)
final class PeerLinks {
    let router: RouterEndpoint
    /// Where the others connect (the bound address; a `*` port resolved).
    let endpoint: String
    private var dealers: [UInt32: (endpoint: String, dealer: DealerEndpoint)] = [:]
    private let logger: Logger
    /// Bytes sent to and received from other workers.
    private(set) var bytesOut = 0
    private(set) var bytesIn = 0

    init(bind: String, logger: Logger) throws(TrainingError) {
        self.logger = logger
        var options = EndpointOptions()
        options.linger = .milliseconds(200)
        // the largest frame a peer sends is an owner's slice (P floats); the socket refuses anything
        // bigger than the handshake bound before allocating it
        options.maxMessageBytes = Limits.handshake.maxPayloadBytes + 4096
        do {
            router = try RouterEndpoint(bind: [bind], options: options, logger: logger)
        } catch {
            throw .invalidConfig("cannot bind the peer endpoint \(bind): \(error); give the worker another --peer-bind")
        }
        endpoint = router.endpoint
    }

    /// Connects to every worker of `table` but `selfID` not connected yet (or moved).
    func connect(_ table: ShardTable, selfID: UInt32) {
        for peer in table.peers where peer.worker != selfID && !peer.endpoint.isEmpty {
            if dealers[peer.worker]?.endpoint == peer.endpoint { continue }
            dealers[peer.worker]?.dealer.close()
            var options = EndpointOptions()
            options.linger = .milliseconds(200)
            options.reconnectInterval = .milliseconds(100)
            options.reconnectIntervalMax = .seconds(2)
            do {
                dealers[peer.worker] = (peer.endpoint, try DealerEndpoint(connect: [peer.endpoint], options: options, logger: logger))
            } catch {
                logger.warning("cannot connect to worker \(peer.worker) at \(peer.endpoint): \(error)")
            }
        }
        let live = Set(table.peers.map(\.worker))
        for id in dealers.keys where !live.contains(id) {
            dealers[id]?.dealer.close()
            dealers[id] = nil
        }
    }

    /// Sends `envelope` to worker `id` (dropped, and logged at debug level, when it has no link).
    func send(_ envelope: Envelope, to id: UInt32) {
        guard let d = dealers[id]?.dealer else {
            logger.debug("no link to worker \(id): \(envelope.message.type) dropped")
            return
        }
        if let b = d.send(envelope).bytes { bytesOut += b }
    }

    /// Reads what the other workers sent (bad frames are logged by the endpoint and dropped).
    func receive(limits: Limits, _ body: (Envelope) -> Void) {
        router.receive(limits: limits) { inbound in
            if case .message(_, let env, let bytes) = inbound {
                bytesIn += bytes
                body(env)
            }
        }
    }

    func close() {
        for (_, d) in dealers { d.dealer.close() }
        dealers = [:]
        router.close()
    }
}

/// Where a worker binds its peer router when `--peer-bind` is not given, from its coordinator
/// endpoint: next to the coordinator's socket for `ipc://` (`ipc://DIR/peer-PID.sock`), else a free
/// port on the address of this host that reaches the coordinator (the source address the kernel picks
/// for it; loopback for a loopback coordinator).
///
///     defaultPeerBind(connect: "ipc:///tmp/run/coordinator.sock", pid: 42)  // "ipc:///tmp/run/peer-42.sock"
///     defaultPeerBind(connect: "tcp://127.0.0.1:5555", pid: 42)             // "tcp://127.0.0.1:*"
public func defaultPeerBind(connect: String, pid: Int32) -> String {
    if connect.hasPrefix("ipc://") {
        let path = String(connect.dropFirst(6))
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return "ipc://\(dir.isEmpty ? "." : dir)/peer-\(pid).sock"
    }
    guard connect.hasPrefix("tcp://"), let colon = connect.lastIndex(of: ":"), colon > connect.index(connect.startIndex, offsetBy: 6) else {
        return "tcp://127.0.0.1:*"
    }
    var host = String(connect[connect.index(connect.startIndex, offsetBy: 6)..<colon])
    if host.hasPrefix("[") { return "tcp://\(host):*" }  // IPv6: bind the coordinator's family on its own address form
    if host == "localhost" || host.hasPrefix("127.") { return "tcp://127.0.0.1:*" }
    if host == "*" || host == "0.0.0.0" { host = "127.0.0.1" }
    return "tcp://\(sourceAddress(toward: host) ?? "0.0.0.0"):*"
}

/// The local IPv4 address the kernel would send from to reach `host` (a connected UDP socket; nothing
/// is sent), or nil.
private func sourceAddress(toward host: String) -> String? {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    #if canImport(Glibc)
    hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
    #else
    hints.ai_socktype = SOCK_DGRAM
    #endif
    var result: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, "9", &hints, &result) == 0, let info = result else { return nil }
    defer { freeaddrinfo(result) }
    let fd = socket(AF_INET, hints.ai_socktype, 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return nil }
    var local = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &local) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { return nil }
    var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
    var address = local.sin_addr
    guard inet_ntop(AF_INET, &address, &buffer, socklen_t(INET_ADDRSTRLEN)) != nil else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
