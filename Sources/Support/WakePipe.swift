#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pipe a compute thread writes one byte to when it is done, polled by the poll loop together
/// with the socket (so the loop wakes at once instead of at its next timeout).
public final class WakePipe: @unchecked Sendable {
    // @unchecked: the descriptors are immutable; `signal` is a write(2), safe from any thread.
    public let readFD: Int32
    public let writeFD: Int32

    public init?() {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    public func signal() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    /// Empties the pipe (non-blocking).
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buffer, buffer.count) > 0 {}
    }

    public func close() {
        closeDescriptor(readFD)
        closeDescriptor(writeFD)
    }
}

/// close(2) (a free function: inside a type with a `close()` method the name means the method).
private func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}
