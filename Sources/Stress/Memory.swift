#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Resident memory of a process from `/proc/PID/status`.
public struct MemoryUsage: Sendable, Equatable, Codable {
    /// `VmRSS`, bytes resident now.
    public var residentBytes: Int
    /// `VmHWM`, the peak resident bytes.
    public var peakResidentBytes: Int

    /// Reads `/proc/self/status` (or another process's); nil where there is no `/proc`.
    public static func read(pid: String = "self") -> MemoryUsage? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var rss: Int?, hwm: Int?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") { rss = kilobytes(line) }
            if line.hasPrefix("VmHWM:") { hwm = kilobytes(line) }
        }
        guard let rss, let hwm else { return nil }
        return MemoryUsage(residentBytes: rss * 1024, peakResidentBytes: hwm * 1024)
    }

    private static func kilobytes(_ line: Substring) -> Int? {
        line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
    }
}

