import Foundation

/// The `ztrain` binary built next to this test bundle.
func ztrainBinary() -> URL {
    let exe = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    var dir = exe.deletingLastPathComponent()
    // macOS puts the bundle binary in X.xctest/Contents/MacOS; Linux runs X.xctest directly
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("ztrain").path) && dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("ztrain")
}

struct RunResult {
    var status: Int32
    var exitedNormally: Bool
    var stdout: String
    var stderr: String
}

/// Runs `ztrain` with `args`, killing it after `timeout` seconds; never leaves the process behind.
func runZtrain(_ args: [String], cwd: URL? = nil, timeout: Double = 120) throws -> RunResult {
    try runCommand(ztrainBinary().path, args, cwd: cwd, timeout: timeout)
}

/// Runs a command with `environment` added, in `cwd`, killing it after `timeout` seconds.
func runCommand(_ executable: String, _ args: [String], environment: [String: String] = [:], cwd: URL? = nil,
                timeout: Double = 300) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    if let cwd { p.currentDirectoryURL = cwd }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data(), errData = Data()
    group.enter()
    DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
        p.terminate()
        usleep(500_000)
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }
    p.waitUntilExit()
    // a grandchild that outlived a killed child may still hold the pipes: do not wait for it forever
    _ = group.wait(timeout: .now() + 10)
    return RunResult(status: p.terminationStatus, exitedNormally: p.terminationReason == .exit,
                     stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// A fresh temporary directory, removed by `cleanup()`.
struct TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ztrain-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func cleanup() { try? FileManager.default.removeItem(at: url) }
}
