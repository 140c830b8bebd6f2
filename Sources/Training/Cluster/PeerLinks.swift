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
import ZeroMQ

/// A worker's links to the other workers in sharded aggregation: a ROUTER bound where the others reach
/// it (its endpoint goes to the coordinator in HELLO, and from there into every ``ShardTable``), and one
/// DEALER per other worker of the table, connected to that worker's router. Sends never block (a peer
/// that is gone loses the message; the coordinator's retries and the owners' dedup keep the bits).
///
/// With CURVE (`curve`: the worker's own key pair, the one it authenticates with at the coordinator)
/// the router is a CURVE server with that key pair whose ZAP handler admits exactly the keys of the
/// current table (the coordinator puts there only keys of its allow-list); each DEALER is a CURVE
/// client with the same pair and the peer's key from the table as server key, so it reaches only the
/// holder of that key's secret. A connection refused because this router had not read the table yet
/// is made again (``maintain()``), and what was sent on it before its handshake succeeded is sent
/// again (a refused handshake ends the connection with its queue: the messages would be lost and the
/// step would wait for them); refusals are counted (``refusedConnections``) and logged at most
/// once per 5 s per kind.
///
///     let links = try PeerLinks(bind: "tcp://127.0.0.1:*", curve: security?.certificate, logger: logger)
///     hello.peer = links.endpoint
///     links.connect(table, selfID: 3)
///     links.send(node, to: 1)
final class PeerLinks {
    let router: RouterEndpoint
    /// Where the others connect (the bound address; a `*` port resolved).
    let endpoint: String
    /// The worker's key pair in a CURVE run (nil: plaintext links).
    let curve: CurveCertificate?
    /// One DEALER to a peer: where, the peer's key, since when, and whether its router refused it.
    private struct Link {
        var endpoint: String
        var key: String?
        var dealer: DealerEndpoint
        var since: Double
        var refused = false
        /// Dials after a refusal in a row (the wait before the next one doubles: 0.1 s up to 2 s).
        var redials = 0
        /// CURVE: what was sent before the peer's router admitted this link (a refused handshake ends
        /// the connection and its queue), sent again on the next dial; emptied once a handshake succeeded.
        var unconfirmed: [Envelope] = []
        var confirmed = false
    }
    /// Messages kept per link until its handshake succeeded (the oldest go first beyond it).
    static let maxUnconfirmed = 256
    private var dealers: [UInt32: Link] = [:]
    private let logger: Logger
    private let t0 = ContinuousClock.now
    /// Bytes sent to and received from other workers.
    private(set) var bytesOut = 0
    private(set) var bytesIn = 0
    /// Links made again after the peer's router refused them (it had not read the table yet).
    private(set) var redials = 0

    /// - Parameter curve: this worker's key pair (with its secret key): CURVE links; nil: plaintext.
    init(bind: String, curve: CurveCertificate? = nil, logger: Logger) throws(TrainingError) {
        self.logger = logger
        self.curve = curve
        var options = EndpointOptions()
        options.linger = .milliseconds(200)
        // the largest frame a peer sends is an owner's slice (P floats); the socket refuses anything
        // bigger than the handshake bound before allocating it
        options.maxMessageBytes = Limits.handshake.maxPayloadBytes + 4096
        if let curve {
            guard let secret = curve.secretKey else {
                throw .invalidConfig("the worker's CURVE key pair has no secret key: give it its .key_secret file (see 'ztrain keygen')")
            }
            let log = logger
            // anyone who can reach the port can make these happen: at most one line per kind per 5 s
            let limited = SharedRateLimitedLog(interval: 5)
            // nobody is admitted before the first table names the run's workers
            options.curve = .server(secretKey: secret, allowed: []) { event in
                switch event {
                case .accepted(let key, let address):
                    log.debug("peer key \(key) from \(address) admitted")
                case .refusedKey(let key, let address):
                    limited.log(log, key: "key", "peer router refused a connection from \(address): CURVE key \(key) is not in the run's table")
                case .refusedMechanism(let m, let address):
                    limited.log(log, key: "mechanism", "peer router refused a \(m) connection from \(address): CURVE required")
                case .handshakeFailed(let endpoint, let reason):
                    limited.log(log, key: "handshake", "peer router refused a connection on \(endpoint): \(reason)")
                }
            }
        }
        do {
            router = try RouterEndpoint(bind: [bind], options: options, logger: logger)
        } catch {
            throw .invalidConfig("cannot bind the peer endpoint \(bind): \(error); give the worker another --peer-bind")
        }
        endpoint = router.endpoint
    }

    /// Connections the peer router refused (keys not in the table, plaintext clients, failed handshakes).
    var refusedConnections: Int { router.refusedConnections }

    /// Admits the keys of `table` at the router and connects to every worker of it but `selfID` not
    /// connected yet (or moved, or with another key). In a CURVE run a worker without a key is not
    /// reached (its messages are dropped: a coordinator of this version always sends the keys).
    func connect(_ table: ShardTable, selfID: UInt32) {
        if curve != nil { router.allowedKeys = Set(table.peers.compactMap(\.key)) }
        for peer in table.peers where peer.worker != selfID && !peer.endpoint.isEmpty {
            if let d = dealers[peer.worker], d.endpoint == peer.endpoint, d.key == peer.key { continue }
            dealers[peer.worker]?.dealer.close()
            dealers[peer.worker] = nil
            dial(peer)
        }
        let live = Set(table.peers.map(\.worker))
        for id in dealers.keys where !live.contains(id) {
            dealers[id]?.dealer.close()
            dealers[id] = nil
        }
    }

    private func dial(_ peer: ShardTable.Peer, redials: Int = 0, resend: [Envelope] = []) {
        var options = EndpointOptions()
        options.linger = .milliseconds(200)
        options.reconnectInterval = .milliseconds(100)
        options.reconnectIntervalMax = .seconds(2)
        if let curve {
            guard let key = peer.key else {
                logger.warning("the table names no CURVE key for worker \(peer.worker): not connecting to it in clear")
                return
            }
            options.curve = .client(serverKey: key, publicKey: curve.publicKey, secretKey: curve.secretKey ?? "")
        }
        do {
            let dealer = try DealerEndpoint(connect: [peer.endpoint], options: options, monitorHandshakes: curve != nil, logger: logger)
            dealers[peer.worker] = Link(endpoint: peer.endpoint, key: peer.key, dealer: dealer, since: seconds(since: t0), redials: redials,
                                        confirmed: curve == nil)
            for envelope in resend { send(envelope, to: peer.worker) }
        } catch {
            logger.warning("cannot connect to worker \(peer.worker) at \(peer.endpoint): \(error)")
        }
    }

    /// Makes again the links a peer's router refused (it admits the keys of a table only once it has
    /// read it, and ZeroMQ need not retry a connection refused in its handshake): 0.1 s after the refusal, then
    /// waiting twice as long after each refusal in a row, up to 2 s. Call it from the worker's loop.
    func maintain() {
        guard curve != nil else { return }
        let now = seconds(since: t0)
        for id in Array(dealers.keys) {
            guard var d = dealers[id] else { continue }
            if let failures = d.dealer.handshakes?.poll(), !failures.isEmpty, !d.refused {
                d.refused = true
                dealers[id] = d
            }
            if !d.confirmed, !d.refused, d.dealer.handshakes?.succeeded == true {
                d.confirmed = true
                d.unconfirmed = []
                dealers[id] = d
            }
            guard d.refused, now - d.since >= min(2, 0.1 * Double(1 << min(d.redials, 5))) else { continue }
            logger.debug("worker \(id) at \(d.endpoint) refused this worker's peer link; connecting again")
            d.dealer.close()
            dealers[id] = nil
            redials += 1
            dial(ShardTable.Peer(worker: id, endpoint: d.endpoint, key: d.key), redials: d.redials + 1, resend: d.unconfirmed)
        }
    }

    /// Sends `envelope` to worker `id` (dropped, and logged at debug level, when it has no link).
    func send(_ envelope: Envelope, to id: UInt32) {
        guard var link = dealers[id] else {
            logger.debug("no link to worker \(id): \(envelope.message.type) dropped")
            return
        }
        if !link.confirmed {
            // until the peer's router admitted this link, a refusal would lose what it queued
            if link.unconfirmed.count >= Self.maxUnconfirmed { link.unconfirmed.removeFirst() }
            link.unconfirmed.append(envelope)
            dealers[id] = link
        }
        if let b = link.dealer.send(envelope).bytes { bytesOut += b }
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
