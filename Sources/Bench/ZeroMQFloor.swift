#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Training
import ZeroMQ
import Support

/// The bytes of one aggregation round on the wire, per worker: an ASSIGN (header frame and the
/// weights plus window starts) out, a GRADIENT (header frame and `P + 1` sums) back.
public struct RoundBytes: Sendable, Equatable {
    /// Bytes of the request's frames (ASSIGN header, payload) and of the reply's (GRADIENT).
    public var requestHeader: Int
    public var requestPayload: Int
    public var replyHeader: Int
    public var replyPayload: Int

    public init(requestHeader: Int, requestPayload: Int, replyHeader: Int, replyPayload: Int) {
        self.requestHeader = requestHeader
        self.requestPayload = requestPayload
        self.replyHeader = replyHeader
        self.replyPayload = replyPayload
    }

    /// What `ztrain stress` sends for `P` parameters and `M` leaves (one window per leaf): a 64-byte
    /// `Wire` header each way, `4·(P + M)` bytes of ASSIGN payload, `4·(P + 1)` of GRADIENT payload.
    public static func stress(parameters p: Int, leaves m: Int, headerSize: Int) -> RoundBytes {
        RoundBytes(requestHeader: headerSize, requestPayload: 4 * (p + m), replyHeader: headerSize, replyPayload: 4 * (p + 1))
    }

    /// Bytes each way per worker.
    public var out: Int { requestHeader + requestPayload }
    public var back: Int { replyHeader + replyPayload }
}

/// The bare ZeroMQ floor of an aggregation round: this process binds a ROUTER on tcp loopback,
/// `peers` echo processes (`ztrain bench-peer`) connect DEALERs; a round sends every peer a
/// request of the ASSIGN's size (two frames, sent zero-copy from one prepared message) and waits
/// for every peer's reply of the GRADIENT's size. Nothing is encoded, checked or reduced: this is
/// what libzmq alone costs for the same bytes and the same pattern.
public struct ZeroMQFloor {
    public let executable: URL
    public let peers: Int
    public let bytes: RoundBytes
    public let scratch: URL

    public init(executable: URL, peers: Int, bytes: RoundBytes, scratch: URL) {
        self.executable = executable
        self.peers = peers
        self.bytes = bytes
        self.scratch = scratch
    }

    /// Round times in seconds, after `warmup` rounds that are not recorded. Every peer is ended
    /// before it returns or throws.
    public func measure(rounds: Int, warmup: Int, stop: StopFlag) throws(BenchError) -> [Double] {
        let context: Context
        let socket: Socket
        let endpoint: String
        do {
            context = try Context(blocky: false)
            socket = try context.socket(.router)
            try socket.setRouterMandatory(true)
            try socket.setLinger(.zero)
            try socket.bind("tcp://127.0.0.1:*")
            endpoint = try socket.lastEndpoint
        } catch {
            throw .measurement("bare ZeroMQ floor: cannot bind tcp://127.0.0.1:*: \(error)")
        }
        var children: [ChildProcess] = []
        var identities: [[UInt8]] = []
        defer {
            // "stop" to every peer that connected, then a grace period, then signals
            for id in identities { _ = try? socket.send(parts: [id, Array("stop".utf8)], flags: .dontWait) }
            for c in children { if !c.wait(timeout: 3) { c.terminate(grace: 2) } }
            socket.close()
            try? context.terminate()
        }
        for i in 0..<peers {
            let args = ["bench-peer", "--connect", endpoint, "--reply-header", String(bytes.replyHeader),
                        "--reply-payload", String(bytes.replyPayload), "--parent-pid", String(getpid())]
            children.append(try ChildProcess(executable: executable.path, arguments: args, label: "bench-peer \(i)",
                                             stderrPath: scratch.appendingPathComponent("peer-\(i).stderr").path))
        }

        // every peer says "ready" once connected
        let joinStart = ContinuousClock.now
        while identities.count < peers {
            if stop.isSet { throw .interrupted(stop.signal) }
            if seconds(since: joinStart) > 30 {
                let why = children.compactMap { c in c.outcome.map { "\(c.label) \($0.text): \(c.stderrTail())" } }
                throw .measurement("bare ZeroMQ floor: \(identities.count) of \(peers) echo peers connected within 30 s \(why.joined(separator: "; "))")
            }
            do {
                if let frames = try socket.receiveMultipartMessages(timeout: .milliseconds(50)), frames.count == 2 {
                    identities.append(frames[0].bytes)
                }
            } catch {
                throw .measurement("bare ZeroMQ floor: receive: \(error)")
            }
        }

        let header: Message, payload: Message
        do {
            header = try Message(count: bytes.requestHeader) { $0.initializeMemory(as: UInt8.self, repeating: 7) }
            payload = try Message(count: bytes.requestPayload) { $0.initializeMemory(as: UInt8.self, repeating: 3) }
        } catch {
            throw .measurement("bare ZeroMQ floor: cannot allocate \(bytes.requestPayload) bytes: \(error)")
        }
        var times: [Double] = []
        times.reserveCapacity(rounds)
        for r in 0..<(warmup + rounds) {
            if stop.isSet { throw .interrupted(stop.signal) }
            let t0 = ContinuousClock.now
            do {
                for id in identities { try socket.send(parts: [id, header, payload]) }
                var replies = 0
                while replies < peers {
                    guard let frames = try socket.receiveMultipartMessages(timeout: .seconds(30)) else {
                        throw BenchError.measurement("bare ZeroMQ floor: no reply within 30 s in round \(r)")
                    }
                    guard frames.count == 3, frames[1].count == bytes.replyHeader, frames[2].count == bytes.replyPayload else {
                        throw BenchError.measurement("bare ZeroMQ floor: a reply of \(frames.count) frames (\(frames.map(\.count))) in round \(r)")
                    }
                    replies += 1
                }
            } catch let e as BenchError {
                throw e
            } catch {
                throw .measurement("bare ZeroMQ floor: \(error)")
            }
            if r >= warmup { times.append(seconds(since: t0)) }
        }
        return times
    }
}

/// The other end of ``ZeroMQFloor``: a DEALER that answers every request with a prepared reply of
/// `replyHeader` + `replyPayload` bytes (sent zero-copy), until it is told "stop" or its parent
/// is gone. `ztrain bench-peer` runs it.
public enum EchoPeer {
    /// Serves until "stop"; returns a problem, or nil.
    public static func run(connect endpoint: String, replyHeader: Int, replyPayload: Int, parentPID: Int32?) -> String? {
        do {
            let context = try Context(blocky: false)
            let socket = try context.socket(.dealer)
            defer {
                socket.close()
                try? context.terminate()
            }
            try socket.setLinger(.zero)
            try socket.connect(endpoint)
            let header = try Message(count: replyHeader) { $0.initializeMemory(as: UInt8.self, repeating: 9) }
            let payload = try Message(count: replyPayload) { $0.initializeMemory(as: UInt8.self, repeating: 5) }
            try socket.send(Array("ready".utf8))
            while true {
                if let p = parentPID, getppid() != p { return "the bench (pid \(p)) is gone" }
                guard try socket.poll(.readable, timeout: .milliseconds(200)).contains(.readable) else { continue }
                while true {
                    let frames: [Message]
                    do { frames = try socket.receiveMultipartMessages(flags: .dontWait) } catch {
                        if error.kind == .wouldBlock { break }
                        throw error
                    }
                    if frames.count == 1 { return nil }  // "stop"
                    try socket.send(parts: [header, payload])
                }
            }
        } catch {
            return "\(error)"
        }
    }
}
