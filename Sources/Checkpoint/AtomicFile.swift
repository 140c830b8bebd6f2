#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whole-file reads and crash-safe whole-file writes.
public enum AtomicFile {
    /// Replaces the file at `path` with `bytes` so that a reader (or a crash) sees either the old
    /// content or the new one, never a mix: the bytes go to a temporary file in the same directory,
    /// which is flushed (`fsync`), renamed over `path`, and then the directory is flushed.
    ///
    /// The new file gets the usual permissions (`0666` minus the umask). On failure the temporary
    /// file is removed and the error names `path`, the system's message and the failing step.
    public static func write(_ bytes: [UInt8], to path: String) throws(CheckpointError) {
        func failure(_ step: String, _ code: Int32) -> CheckpointError {
            .io(path: path, action: "write", reason: "\(systemMessage(code)) (\(step))")
        }
        guard !path.isEmpty else {
            throw .io(path: "\"\"", action: "write", reason: "the file name is empty")
        }
        guard !path.hasSuffix("/") else {
            throw .io(path: path, action: "write", reason: "the path names a directory, not a file")
        }
        let (directory, base) = splitPath(path)

        // A fresh temporary file next to the target.
        var fd: Int32 = -1
        var temporary = ""
        for _ in 0..<16 {
            let tag = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            temporary = "\(directory)/.\(base).tmp-\(getpid())-\(tag)"
            repeat {
                fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            } while fd < 0 && errno == EINTR
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw failure("creating a temporary file in \(directory)", errno) }

        var closed = false
        var renamed = false
        defer {
            if !closed { _ = close(fd) }
            if !renamed { _ = unlink(temporary) }
        }
        if let code = writeAll(fd, bytes) { throw failure("writing \(temporary)", code) }
        if fsync(fd) != 0 { throw failure("flushing \(temporary) to disk", errno) }
        closed = true
        if close(fd) != 0 { throw failure("closing \(temporary)", errno) }
        if rename(temporary, path) != 0 { throw failure("renaming \(temporary) over it", errno) }
        renamed = true

        // Make the rename itself durable.
        var dirFD: Int32
        repeat { dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } while dirFD < 0 && errno == EINTR
        guard dirFD >= 0 else { throw failure("opening directory \(directory) to flush it", errno) }
        defer { _ = close(dirFD) }
        if fsync(dirFD) != 0, errno != EINVAL, errno != EROFS {
            throw failure("flushing directory \(directory)", errno)
        }
    }

    /// The most bytes ``read(_:maxBytes:)`` reads unless told otherwise: 8 GiB, more than the
    /// largest checkpoint of the largest model the configuration allows.
    public static let defaultReadLimit = 8 << 30

    /// Reads the whole file at `path`. Errors read `cannot read <path>: <system message>`.
    ///
    /// Only a regular file is read: a FIFO, a device (`/dev/zero`), a socket or a directory is refused
    /// at once (the open does not wait for a FIFO's writer), and so is a file of more than `maxBytes`.
    public static func read(_ path: String, maxBytes: Int = defaultReadLimit) throws(CheckpointError) -> [UInt8] {
        func failure(_ code: Int32) -> CheckpointError {
            .io(path: path, action: "read", reason: systemMessage(code))
        }
        var fd: Int32
        // O_NONBLOCK: opening a FIFO without a writer would otherwise block forever
        repeat { fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw failure(errno) }
        defer { _ = close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure(errno) }
        if info.st_mode & S_IFMT == S_IFDIR { throw failure(EISDIR) }
        if let kind = nonRegularKind(info.st_mode) {
            throw .io(path: path, action: "read", reason: "it is \(kind), not a regular file; give a file")
        }
        guard info.st_size <= maxBytes else {
            throw .io(path: path, action: "read", reason: "it has \(info.st_size) bytes, more than the limit of \(maxBytes); is it the right file?")
        }
        switch readAll(fd, maxBytes: maxBytes) {
        case .success(let bytes): return bytes
        case .failure(let code):
            if code.value == EFBIG {
                throw .io(path: path, action: "read", reason: "it grew past the limit of \(maxBytes) bytes while being read")
            }
            throw failure(code.value)
        }
    }

    /// Removes the temporary files that ``write(_:to:)`` leaves when its process is killed before the
    /// rename (`.NAME.tmp-PID-TAG` in the target's folder), for every name that `matching` accepts.
    /// Call it only where no other process writes into `directory`. Returns the removed names.
    @discardableResult
    public static func removeStaleTemporaries(in directory: String, matching: (String) -> Bool = { _ in true }) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasPrefix("."), let r = name.firstRange(of: ".tmp-"), r.lowerBound > name.index(after: name.startIndex) else { continue }
            let target = String(name[name.index(after: name.startIndex)..<r.lowerBound])
            if matching(target) { names.append(name) }
        }
        closedir(dir)
        return names.filter { unlink("\(directory)/\($0)") == 0 }
    }
}

/// "a FIFO", "a directory", … for a `st_mode` that is not a regular file; nil for a regular file.
func nonRegularKind(_ mode: mode_t) -> String? {
    switch mode & S_IFMT {
    case S_IFREG: return nil
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO (named pipe)"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    default: return "not a plain file"
    }
}

/// `("dir", "name")` for `dir/name`; `(".", name)` for a bare name; `("/", name)` for `/name`.
private func splitPath(_ path: String) -> (directory: String, base: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let base = String(path[path.index(after: slash)...])
    let directory = String(path[..<slash])
    return (directory.isEmpty ? "/" : directory, base)
}

private func systemMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Writes every byte, retrying short writes and interruptions. Returns `errno` on failure.
private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
    bytes.withUnsafeBytes { buffer -> Int32? in
        guard let base = buffer.baseAddress else { return nil }
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return nil
    }
}

private struct Errno: Error { let value: Int32 }

/// Reads `fd` to its end, retrying interruptions; `EFBIG` once more than `maxBytes` came.
private func readAll(_ fd: Int32, maxBytes: Int) -> Result<[UInt8], Errno> {
    var out: [UInt8] = []
    var info = stat()
    if fstat(fd, &info) == 0, info.st_size > 0 { out.reserveCapacity(min(Int(info.st_size), maxBytes)) }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(Errno(value: errno))
        }
        if n == 0 { return .success(out) }
        if out.count + n > maxBytes { return .failure(Errno(value: EFBIG)) }
        out.append(contentsOf: chunk[0..<n])
    }
}
