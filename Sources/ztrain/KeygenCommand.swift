import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Training
import ZeroMQ
import Support

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write CURVE key pairs for encrypted, authenticated traffic between coordinator and workers.",
        discussion: """
            For each NAME, writes NAME.key (the public key: share it) and NAME.key_secret (the pair: mode 600, \
            never overwritten), in the format of CZMQ's zcert and pyzmq's zmq.auth. Also copies every public \
            key except the coordinator's into allowed/, the allow-list the coordinator reads.

            The folder is what --curve-dir takes: the coordinator uses coordinator.key_secret and allowed/; \
            a worker uses coordinator.key and worker-RANK.key_secret when it exists, else worker.key_secret.

            Example: ztrain keygen --out keys coordinator worker
            """)

    @Option(help: "Folder to write to (created with mode 700 if missing).")
    var out: String = "keys"

    @Argument(help: "Names of the key pairs (default: coordinator worker).")
    var names: [String] = []

    func validate() throws {
        for n in names where n.isEmpty || n.contains("/") || n.hasPrefix(".") {
            throw ValidationError("'\(n)' is not a valid key name (no '/', not empty, not starting with '.')")
        }
    }

    func run() throws {
        let names = self.names.isEmpty ? ["coordinator", "worker"] : self.names
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: out + "/allowed", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw fail("cannot create \(out)/allowed: \(systemMessage(error))")
        }
        for name in names {
            let cert: CurveCertificate
            do { cert = try CurveCertificate.generate() } catch { throw fail("cannot generate a key pair: \(error)") }
            do { try cert.write(base: out + "/" + name) } catch { throw fail("\(error)") }
            if name != "coordinator" {
                let text = CurveCertificate.text(public: cert.publicKey, secret: nil)
                do { try text.write(toFile: "\(out)/allowed/\(name).key", atomically: true, encoding: .utf8) } catch {
                    throw fail("cannot write \(out)/allowed/\(name).key: \(systemMessage(error))")
                }
            }
            print("\(out)/\(name).key_secret  public key \(cert.publicKey)")
        }
    }
}
