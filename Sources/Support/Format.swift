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
