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

// Small stand-ins for the parts of full Foundation (`String(format:)`, `FileHandle`, `Thread`,
// `localizedDescription`) that this package used: the executable links only FoundationEssentials, so
// a process never maps CoreFoundation and ICU (the bench target for a worker's peak RSS).

/// `printf`-style text from the C library's `vsnprintf`, as `String(format:)` gave it: `"%.4e"`,
/// `"%.1f"`, `"%02x"`, `"%ld"` (an `Int` needs the `l`), `"%llu"` (`UInt64`). No `%@`.
public func cFormat(_ format: String, _ arguments: any CVarArg...) -> String {
    var buffer = [CChar](repeating: 0, count: 128)
    let count = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
    if count >= buffer.count {
        buffer = [CChar](repeating: 0, count: count + 1)
        _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
    }
    return String(decoding: buffer.prefix(max(0, count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Writes `text` to standard error (fd 2), unbuffered, all of it.
public func writeToStandardError(_ text: String) {
    _ = writeAll(STDERR_FILENO, Array(text.utf8))
}

/// Writes every byte to `fd`, retrying after EINTR and short writes; 0 or the failing `errno`.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { raw in
            raw.baseAddress.map { write(fd, $0 + done, raw.count - done) } ?? 0
        }
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        if n == 0 { return EIO }
        done += n
    }
    return 0
}

/// A readable message for an error from FoundationEssentials' file APIs (`FileManager`, `Data`):
/// the system's text for the underlying `errno` ("No such file or directory"), else the error itself.
public func systemMessage(_ error: any Error) -> String {
    if let e = error as? POSIXError { return String(cString: strerror(e.code.rawValue)) }
    if let e = error as? CocoaError {
        if let u = e.userInfo["NSUnderlyingError"] as? POSIXError { return String(cString: strerror(u.code.rawValue)) }
        return "file error \(e.code.rawValue)"
    }
    return "\(error)"
}

/// `s` without leading and trailing whitespace (spaces, tabs, newlines), as
/// `trimmingCharacters(in: .whitespacesAndNewlines)` gave it.
public func trimmingWhitespace(_ s: some StringProtocol) -> String {
    guard let first = s.firstIndex(where: { !$0.isWhitespace }), let last = s.lastIndex(where: { !$0.isWhitespace }) else { return "" }
    return String(s[first...last])
}

/// The current time in UTC as `strftime` writes it with `format` (`"%Y-%m-%dT%H:%M:%SZ"`).
public func utcTimestamp(_ format: String) -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 128)
    let count = strftime(&buffer, buffer.count, format, &parts)
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Whether `path` names a directory (stat(2), through symbolic links, as `FileManager`'s
/// `fileExists(atPath:isDirectory:)`).
public func isDirectory(_ path: String) -> Bool {
    var s = stat()
    return stat(path, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR
}

/// Starts a detached thread (`pthread`) that runs `body`, as `Thread.detachNewThread` did.
public func detachThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        guard let raw else { return nil }
        let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
        box.body()
        return nil
    }, box)
    // as `Thread.start()` does: a process that cannot start a thread cannot go on
    precondition(rc == 0, "cannot start a thread: \(String(cString: strerror(rc)))")
}

/// A file written with write(2): created (or truncated) by ``init(path:)``, closed on deinit.
final class OutputFile: Sendable {
    private let fd: Int32
    let path: String

    /// Creates or truncates `path` (mode 0644); throws `errno`'s text if it cannot.
    init(path: String) throws(SystemError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError(code: errno) }
    }

    deinit { _ = close(fd) }

    /// Appends `bytes`; throws with `errno`'s text.
    func write(_ bytes: [UInt8]) throws(SystemError) {
        let code = writeAll(fd, bytes)
        guard code == 0 else { throw SystemError(code: code) }
    }
}

/// A failed system call: its `errno`, described by the system's text ("No such file or directory").
public struct SystemError: Error, CustomStringConvertible {
    public var code: Int32
    public var description: String { String(cString: strerror(code)) }
}

/// Where a spawned process's stdout or stderr goes.
public enum SpawnOutput: Sendable {
    /// This process's own descriptor.
    case inherit
    /// /dev/null.
    case discard
    /// A file, created or truncated (mode 644).
    case file(String)
}

/// `posix_spawn` of `path args…` in a process group of its own, with stdin on /dev/null, SIGINT,
/// SIGTERM, SIGPIPE and SIGHUP at their defaults and nothing blocked, and no descriptor of this process
/// beyond 0–2 (a pipe a caller reads to its end must not be held open by the child).
public func spawnProcess(_ path: String, _ args: [String], stdout: SpawnOutput = .inherit,
                         stderr: SpawnOutput = .inherit) throws(SystemError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    for (fd, output) in [(Int32(1), stdout), (Int32(2), stderr)] {
        switch output {
        case .inherit: break
        case .discard: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
        case .file(let path): posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
    }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap({ Int32($0) }) where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attr, &mask)
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
    guard rc == 0 else { throw SystemError(code: rc) }
    return pid
}
