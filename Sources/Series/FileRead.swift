#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a whole file with POSIX calls so that a failure carries the system's own message
/// (`No such file or directory`, `Is a directory`, `Permission denied`, ...).
func readWholeFile(_ path: String) throws(SeriesError) -> [UInt8] {
    func failure(_ code: Int32) -> SeriesError {
        .cannotRead(path: path, reason: String(cString: strerror(code)))
    }
    var fd: Int32
    repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
    guard fd >= 0 else { throw failure(errno) }
    defer { _ = close(fd) }

    var out: [UInt8] = []
    var info = stat()
    if fstat(fd, &info) == 0, info.st_size > 0 {
        out.reserveCapacity(Int(info.st_size))
    }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { buf in read(fd, buf.baseAddress, buf.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw failure(errno)
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}
