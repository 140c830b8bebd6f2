#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a regular file of at most `maxBytes` in chunks of 1 MiB, handing each to `body` in order (the buffer
/// is reused: copy what must outlive the call). `begin` first receives the file's size. Failures carry the
/// system's own message (`No such file or directory`, `Is a directory`, `Permission denied`, ...); a FIFO, a
/// device such as `/dev/zero`, a socket or a directory is refused at once (the open does not wait for a
/// FIFO's writer).
func forEachChunk(of path: String, maxBytes: Int, begin: (Int) -> Void,
                  body: (UnsafeBufferPointer<UInt8>) throws(SeriesError) -> Void) throws(SeriesError) {
    func failure(_ code: Int32) -> SeriesError {
        .cannotRead(path: path, reason: String(cString: strerror(code)))
    }
    var fd: Int32
    repeat { fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) } while fd < 0 && errno == EINTR
    guard fd >= 0 else { throw failure(errno) }
    defer { _ = close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw failure(errno) }
    switch info.st_mode & S_IFMT {
    case S_IFREG: break
    case S_IFDIR: throw failure(EISDIR)
    case S_IFIFO: throw .cannotRead(path: path, reason: "it is a FIFO (named pipe), not a regular file; give a file")
    case S_IFCHR, S_IFBLK: throw .cannotRead(path: path, reason: "it is a device, not a regular file; give a file")
    default: throw .cannotRead(path: path, reason: "it is not a regular file; give a file")
    }
    func tooLarge() -> SeriesError {
        .cannotRead(path: path, reason: "it has more than \(maxBytes) bytes, the limit for a data file; use a smaller file")
    }
    guard info.st_size <= maxBytes else { throw tooLarge() }
    begin(Int(info.st_size))
    let size = 1 << 20
    let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
    defer { chunk.deallocate() }
    var total = 0
    while true {
        let n = read(fd, chunk.baseAddress, size)
        if n < 0 {
            if errno == EINTR { continue }
            throw failure(errno)
        }
        if n == 0 { break }
        total += n
        guard total <= maxBytes else { throw tooLarge() }
        try body(UnsafeBufferPointer(rebasing: chunk[0..<n]))
    }
}

/// `text` for an error message: as is when short, else its first 32 characters, an ellipsis and its
/// length, so that a message never echoes a huge cell or name in full.
func excerpt(_ text: String, limit: Int = 40) -> String {
    guard text.count > limit else { return text }
    return String(text.prefix(32)) + "… (\(text.count) characters)"
}
