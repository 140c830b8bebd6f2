import Foundation
import Logging
import Testing
import ZeroMQ
@testable import Training
import Support

/// Log lines kept in memory.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [(Logger.Level, String)] = []
    func add(_ level: Logger.Level, _ line: String) { lock.lock(); lines.append((level, line)); lock.unlock() }
    func count(_ level: Logger.Level, containing text: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        return lines.filter { $0.0 == level && $0.1.contains(text) }.count
    }
    var logger: Logger {
        Logger(label: "captured") { _ in CapturingHandler(log: self) }
    }
}

struct CapturingHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        log.add(event.level, event.message.description)
    }
}

@Suite("CURVE refusals: the worker is told why, the coordinator logs at a limited rate")
struct RefusalTests {
    @Test func refusedWorkersAreToldWhyAndTheCoordinatorLogsAtALimitedRate() throws {
        let serverCert = try CurveCertificate.generate()
        let workerCert = try CurveCertificate.generate()
        let rogueCert = try CurveCertificate.generate()
        let otherServer = try CurveCertificate.generate()
        let captured = CapturedLog()
        let core = try CoordinatorCore(config: parallelConfig(steps: 5), series: try referenceSeries(),
                                       options: CoordinatorOptions(workers: 1, joinTimeout: 60), runID: 5)
        let server = try CoordinatorServer(core: core, bind: "tcp://127.0.0.1:*",
                                           security: CurveServerSecurity(certificate: serverCert, allowed: [workerCert.publicKey]),
                                           logger: captured.logger)
        let endpoint = server.endpoint
        let serverStop = StopFlag()
        let serverDone = DispatchSemaphore(value: 0)
        let box = UncheckedSendable(server)
        Thread.detachNewThread {
            box.value.run(stop: serverStop)
            serverDone.signal()
        }
        defer {
            serverStop.set()
            serverDone.wait()
            server.close()
        }
        func outcome(_ security: CurveClientSecurity?) throws -> String {
            let client = try WorkerClient(core: WorkerCore(options: WorkerOptions(threads: 1, host: "t", pid: 1)),
                                          connect: endpoint, security: security, logger: Logger(label: "worker"))
            defer { client.close() }
            return client.run(stop: StopFlag(), connectTimeout: 30) ?? "no failure"
        }
        let wrongClientKey = try outcome(CurveClientSecurity(serverKey: serverCert.publicKey, certificate: rogueCert))
        #expect(wrongClientKey.contains("refused this worker"), "\(wrongClientKey)")
        let plaintext = try outcome(nil)
        #expect(plaintext.contains("security handshake") && plaintext.contains("give this worker --curve-dir"), "\(plaintext)")
        let wrongServerKey = try outcome(CurveClientSecurity(serverKey: otherServer.publicKey, certificate: workerCert))
        #expect(wrongServerKey.contains("security handshake") && wrongServerKey.contains("coordinator.key"), "\(wrongServerKey)")

        // a crowd of plaintext clients: every one refused and counted, a few lines logged
        let context = try Context()
        var crowd: [Socket] = []
        for _ in 0..<40 {
            let s = try context.socket(.dealer)
            try s.setLinger(.zero)
            try s.connect(endpoint)
            try s.send([UInt8](repeating: 1, count: 64), flags: .dontWait)
            crowd.append(s)
        }
        let end = Date().addingTimeInterval(30)
        while server.refusedConnections < 40 && Date() < end { usleep(20_000) }
        for s in crowd { s.close() }
        try context.terminate()
        #expect(server.refusedConnections >= 40)
        let lines = captured.count(.warning, containing: "refused a connection")
        #expect(lines >= 1 && lines <= 8, "\(lines) warnings for \(server.refusedConnections) refusals")
    }
}
