import Dispatch
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
import Logging
import Support

/// Why `--metrics-bind` could not be served.
public struct MetricsServerError: Error, CustomStringConvertible {
    public var description: String
}

/// A tiny HTTP/1.x responder for `GET /metrics` on a thread of its own (`--metrics-bind HOST:PORT`).
///
/// One connection at a time, `Connection: close`, a request of at most 8 KiB read within 2 s: a
/// scraper needs no more, and a stranger that connects and says nothing holds the thread 2 s at
/// most. It never touches the training path: the page is rendered from thread-safe metrics.
public final class MetricsServer: @unchecked Sendable {
    // @unchecked: `listener` is set once; `stopped` is guarded by `lock`.
    /// What was bound, as `HOST:PORT` (the real port when `:0` was asked).
    public let address: String
    private let listener: Int32
    private let render: @Sendable () -> [UInt8]
    private let logger: Logger
    private let lock = Lock()
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)

    /// Binds `bind` (`HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for every interface) and starts serving.
    public init(bind: String, logger: Logger, render: @escaping @Sendable () -> [UInt8]) throws(MetricsServerError) {
        self.render = render
        self.logger = logger
        let (host, port) = try Self.split(bind)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw MetricsServerError(description: "--metrics-bind \(bind): cannot resolve '\(host)' (\(String(cString: gai_strerror(rc)))); give an address such as 127.0.0.1:9464 or 0.0.0.0:9464")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MetricsServerError(description: "--metrics-bind \(bind): socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        guard posixBind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let e = errno
            closeDescriptor(fd)
            throw MetricsServerError(description: "--metrics-bind \(bind): cannot listen (\(String(cString: strerror(e)))); pick a free port or :0")
        }
        listener = fd
        address = Self.boundAddress(fd) ?? bind
        let thread = UncheckedBox(self)
        DispatchQueue(label: "ztrain.metrics-http").async { thread.value.serve() }
    }

    deinit { stop() }

    /// Stops serving and closes the socket (waits for the serving thread). Idempotent.
    public func stop() {
        lock.lock()
        let was = stopped
        stopped = true
        lock.unlock()
        guard !was else { return }
        done.wait()
        closeDescriptor(listener)
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func serve() {
        var warned = 0
        while !isStopped {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, 200)
            guard n > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            let problem = handle(client)
            closeDescriptor(client)
            if let problem, warned < 10 {
                warned += 1
                logger.warning("metrics endpoint: \(problem)\(warned == 10 ? " (further such messages suppressed)" : "")")
            }
        }
        done.signal()
    }

    /// Answers one request; returns a problem worth logging (rate-limited by the caller), or nil.
    private func handle(_ fd: Int32) -> String? {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request += chunk[0..<n]
            if request.firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
        guard let lineEnd = request.firstIndex(of: 13) ?? request.firstIndex(of: 10) else {
            return request.isEmpty ? nil : "a request without a request line (\(request.count) bytes) was ignored"
        }
        let parts = String(decoding: request[0..<lineEnd], as: UTF8.self).split(separator: " ")
        guard parts.count >= 2 else { respond(fd, status: "400 Bad Request", body: Array("bad request\n".utf8)); return "a malformed request line was refused" }
        let method = parts[0], target = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard method == "GET" || method == "HEAD" else {
            respond(fd, status: "405 Method Not Allowed", body: Array("only GET /metrics\n".utf8), extra: "Allow: GET, HEAD\r\n")
            return nil
        }
        guard target == "/metrics" else {
            respond(fd, status: "404 Not Found", body: Array("ztrain serves /metrics only\n".utf8))
            return nil
        }
        let body = render()
        respond(fd, status: "200 OK", body: body, type: "text/plain; version=0.0.4; charset=utf-8", head: method == "HEAD")
        return nil
    }

    private func respond(_ fd: Int32, status: String, body: [UInt8], type: String = "text/plain; charset=utf-8",
                         extra: String = "", head: Bool = false) {
        var out = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n".utf8)
        if !head { out += body }
        out.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var off = 0
            while off < raw.count {
                let n = send(fd, base + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    /// `HOST:PORT`, `[V6]:PORT`, `:PORT`.
    static func split(_ bind: String) throws(MetricsServerError) -> (String, UInt16) {
        let hostPart: Substring, portPart: Substring
        if bind.hasPrefix("["), let close = bind.firstIndex(of: "]") {
            hostPart = bind[bind.index(after: bind.startIndex)..<close]
            let rest = bind[bind.index(after: close)...]
            guard rest.hasPrefix(":") else { throw MetricsServerError(description: "--metrics-bind \(bind): expected [ADDRESS]:PORT") }
            portPart = rest.dropFirst()
        } else if let colon = bind.lastIndex(of: ":") {
            hostPart = bind[..<colon]
            portPart = bind[bind.index(after: colon)...]
        } else {
            throw MetricsServerError(description: "--metrics-bind \(bind): expected HOST:PORT (e.g. 0.0.0.0:9464, or 127.0.0.1:0 for a free port)")
        }
        guard let port = UInt16(portPart) else {
            throw MetricsServerError(description: "--metrics-bind \(bind): the port must be a number in 0...65535")
        }
        return (String(hostPart), port)
    }

    static func boundAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return nil }
        let h = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let s = String(decoding: serv.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return h.contains(":") ? "[\(h)]:\(s)" : "\(h):\(s)"
    }
}

/// A value handed to another thread under a rule stated where it is used.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// `bind(2)`, reachable where a parameter named `bind` shadows it.
func posixBind(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 { bind(fd, address, length) }
