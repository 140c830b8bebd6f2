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

/// Writes `text` to standard error (fd 2), unbuffered, all of it.
public func writeToStandardError(_ text: String) {
    _ = writeAll(STDERR_FILENO, Array(text.utf8))
}

/// Writes every byte to `fd`, retrying after EINTR and short writes; 0 or the failing `errno`.
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
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

/// Whether `path` names a directory (stat(2), through symbolic links, as `FileManager`'s
/// `fileExists(atPath:isDirectory:)`).
public func isDirectory(_ path: String) -> Bool {
    var s = stat()
    return stat(path, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR
}

/// A file written with write(2): created (or truncated) by ``init(path:)``, closed on deinit.
public final class OutputFile: Sendable {
    private let fd: Int32
    public let path: String

    /// Creates or truncates `path` (mode 0644); throws `errno`'s text if it cannot.
    public init(path: String) throws(SystemError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError(code: errno) }
    }

    deinit { _ = close(fd) }

    /// Appends `bytes`; throws with `errno`'s text.
    public func write(_ bytes: [UInt8]) throws(SystemError) {
        let code = writeAll(fd, bytes)
        guard code == 0 else { throw SystemError(code: code) }
    }
}

/// A failed system call: its `errno`, described by the system's text ("No such file or directory").
public struct SystemError: Error, CustomStringConvertible {
    public var code: Int32

    public init(code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
}
