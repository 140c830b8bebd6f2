#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Wire
import ZeroMQ

/// The attacks of `ztrain stress --stranger-frames N --stranger-hellos M`, run in a process of their
/// own (so that what the attacker holds never counts in the coordinator's memory): a peer that never
/// completes a handshake floods the coordinator with big frames over 4 connections, then says HELLO
/// from `M` new connections that never read.
public enum StrangerAttack {
    /// Runs the attacks against `endpoint`; returns how many frames and HELLOs went to the sockets.
    /// Stops early when `parentPID` is no longer this process's parent.
    public static func run(endpoint: String, frames: Int, hellos: Int, parentPID: Int32?) -> (frames: Int, hellos: Int) {
        guard let context = try? Context(blocky: false) else { return (0, 0) }
        defer { try? context.terminate() }
        func orphaned() -> Bool { parentPID.map { getppid() != $0 } ?? false }
        var sentFrames = 0, sentHellos = 0
        var floods: [Socket] = []
        for _ in 0..<4 {
            guard let s = try? context.socket(.dealer) else { continue }
            try? s.setLinger(.zero)
            try? s.connect(endpoint)
            floods.append(s)
        }
        let header = Header(type: .gradient, runID: 1, step: 1, workerID: 1, rangeLower: 0, rangeUpper: 1, leafCount: 1, count: 1).encode()
        let big = [UInt8](repeating: 0x5A, count: StressConfig.strangerFrameBytes)
        var k = 0
        var stalls = 0
        while sentFrames < frames && !floods.isEmpty && !orphaned() && stalls < 20_000 {
            if (try? floods[k % floods.count].send(parts: [header, big], flags: .dontWait)) != nil {
                sentFrames += 1
                stalls = 0
            } else {
                stalls += 1
                usleep(500)
            }
            k += 1
        }
        for s in floods { s.close() }
        let hello = Wire.encode(Envelope(runID: 0, workerID: 0, message: .hello(Hello(
            host: "stranger", pid: getpid(), threads: 1, ztrainVersion: "stranger", expect: nil))))
        var batch: [Socket] = []
        while sentHellos < hellos && !orphaned() {
            for _ in 0..<min(128, hellos - sentHellos) {
                guard let s = try? context.socket(.dealer) else { break }
                try? s.setLinger(.zero)
                try? s.setReceiveHighWaterMark(1)
                try? s.connect(endpoint)
                if (try? s.send(parts: hello, flags: .dontWait)) != nil { sentHellos += 1 }
                batch.append(s)
            }
            // the connections stay open a while (long enough to connect and say HELLO), never
            // reading, then make room for the next ones
            usleep(300_000)
            for s in batch { s.close() }
            batch = []
        }
        return (sentFrames, sentHellos)
    }
}
