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
import ZeroMQ

/// CURVE for the coordinator: its key pair and the worker public keys it admits.
///
/// With it, the coordinator's socket is a CURVE server and a ZAP handler (``Authenticator``) admits only
/// the allow-listed keys: a worker with another key, or a plaintext one, is refused before it can send a
/// message, and the refusal is logged. Key files come from `ztrain keygen` (or CZMQ's `zcert`, pyzmq's
/// `zmq.auth.create_certificates`).
public struct CurveServerSecurity: Sendable, Equatable {
    public var certificate: CurveCertificate
    /// Z85 public keys admitted.
    public var allowed: Set<String>

    public init(certificate: CurveCertificate, allowed: Set<String>) {
        self.certificate = certificate
        self.allowed = allowed
    }

    /// `secretFile` (a `.key_secret`, mode 600) and every `*.key` in `allowDirectory`.
    public init(secretFile: String, allowDirectory: String) throws(TrainingError) {
        do {
            certificate = try CurveCertificate.load(secretFile: secretFile)
            allowed = Set(try CurveCertificate.loadDirectory(allowDirectory).values)
        } catch {
            throw .invalidConfig("\(error)")
        }
        guard !allowed.isEmpty else {
            throw .invalidConfig("no worker keys (*.key) in \(allowDirectory): every worker would be refused; run 'ztrain keygen'")
        }
    }

    /// The `ztrain keygen` layout: `DIR/coordinator.key_secret` and `DIR/allowed/`.
    public init(directory: String) throws(TrainingError) {
        try checkKeyFolder(directory)
        try self.init(secretFile: directory + "/coordinator.key_secret", allowDirectory: directory + "/allowed")
    }
}

/// CURVE for a worker: the coordinator's public key and the worker's own key pair.
public struct CurveClientSecurity: Sendable, Equatable {
    public var serverKey: String
    public var certificate: CurveCertificate

    public init(serverKey: String, certificate: CurveCertificate) {
        self.serverKey = serverKey
        self.certificate = certificate
    }

    /// The coordinator's public `serverFile` and this worker's `secretFile` (mode 600).
    public init(serverFile: String, secretFile: String) throws(TrainingError) {
        do {
            serverKey = try CurveCertificate.load(publicFile: serverFile).publicKey
            certificate = try CurveCertificate.load(secretFile: secretFile)
        } catch {
            throw .invalidConfig("\(error)")
        }
    }

    /// The `ztrain keygen` layout: `DIR/coordinator.key`, and `DIR/worker-RANK.key_secret` when it exists
    /// (one pair per rank), else `DIR/worker.key_secret` (one pair the workers share).
    public init(directory: String, rank: Int? = nil) throws(TrainingError) {
        try checkKeyFolder(directory)
        var secret = directory + "/worker.key_secret"
        if let rank, FileManager.default.fileExists(atPath: "\(directory)/worker-\(rank).key_secret") {
            secret = "\(directory)/worker-\(rank).key_secret"
        }
        try self.init(serverFile: directory + "/coordinator.key", secretFile: secret)
    }
}

/// A `--curve-dir` that is not a readable folder, said plainly.
public func checkKeyFolder(_ directory: String) throws(TrainingError) {
    var st = stat()
    guard stat(directory, &st) == 0 else {
        let why = String(cString: strerror(errno))
        throw .invalidConfig("--curve-dir \(directory): \(why); create the keys with 'ztrain keygen --out \(directory)'")
    }
    guard st.st_mode & S_IFMT == S_IFDIR else {
        throw .invalidConfig("--curve-dir \(directory) is a file, not the folder 'ztrain keygen --out DIR' makes")
    }
}

/// Is `endpoint` reachable only from this machine (loopback TCP, ipc, inproc)?
public func isLocalEndpoint(_ endpoint: String) -> Bool {
    if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
    guard endpoint.hasPrefix("tcp://") else { return false }
    var host = String(endpoint.dropFirst(6))
    if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
        host = String(host[host.index(after: host.startIndex)..<close])
    } else if let colon = host.lastIndex(of: ":") {
        host = String(host[..<colon])
    }
    return host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "lo"
}

/// A file whose modification time a loop refreshes about once a second while it is healthy, for liveness
/// probes (Kubernetes `exec` probes, systemd watchdogs scripts): `find FILE -newermt '-30 seconds'`.
public final class HealthFile {
    public let path: String
    private var last = -Double.infinity

    /// Creates (or truncates) `path` now.
    public init(path: String) throws(TrainingError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .output("cannot create the health file \(path): \(String(cString: strerror(errno)))") }
        close(fd)
    }

    /// Refreshes the file's times if a second has passed since the last refresh (`now` in seconds).
    public func beat(now: Double) {
        guard now - last >= 1 else { return }
        last = now
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }
}
