#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a file in chunks of 1 MiB, handing each to `body` in order (the buffer is reused: copy what must
/// outlive the call). `begin` first receives the file's size (0 if unknown). Failures carry the system's message.
func forEachChunk(of path: String, begin: (Int) -> Void,
                  body: (UnsafeBufferPointer<UInt8>) throws(SeriesError) -> Void) throws(SeriesError) {
    func failure(_ code: Int32) -> SeriesError {
        .cannotRead(path: path, reason: String(cString: strerror(code)))
    }
    var fd: Int32
    repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
    guard fd >= 0 else { throw failure(errno) }
    defer { _ = close(fd) }
    var info = stat()
    begin(fstat(fd, &info) == 0 && info.st_size > 0 ? Int(info.st_size) : 0)
    let size = 1 << 20
    let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
    defer { chunk.deallocate() }
    while true {
        let n = read(fd, chunk.baseAddress, size)
        if n < 0 {
            if errno == EINTR { continue }
            throw failure(errno)
        }
        if n == 0 { break }
        try body(UnsafeBufferPointer(rebasing: chunk[0..<n]))
    }
}
