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
import Training
import Support

/// The machine a report was measured on.
public struct MachineInfo: Sendable, Codable, Equatable {
    /// `model name` of `/proc/cpuinfo`.
    public var cpu: String
    /// Logical cores available to this process.
    public var cores: Int
    /// CPU flags of interest: `avx2`, `avx512f`, `fma`.
    public var flags: [String: Bool]
    /// `PRETTY_NAME` of `/etc/os-release`, and the kernel release.
    public var os: String
    /// `uname -r`.
    public var kernel: String
    /// `swift --version` when `scripts/bench` passed it (`ZTRAIN_SWIFT_VERSION`), else the compiler
    /// version this binary was built with, as far as `#if compiler` tells.
    public var swift: String
    /// `ztrain --version`.
    public var ztrainVersion: String
    /// `ZTRAIN_COMMIT` (set by `scripts/bench`), nil when unknown.
    public var ztrainCommit: String?
    /// `openblas_get_config()` (OpenBLAS is loaded to ask).
    public var blas: String
    /// Total memory, bytes.
    public var memoryBytes: Int?

    public init(cpu: String, cores: Int, flags: [String: Bool], os: String, kernel: String, swift: String,
                ztrainVersion: String, ztrainCommit: String?, blas: String, memoryBytes: Int?) {
        self.cpu = cpu
        self.cores = cores
        self.flags = flags
        self.os = os
        self.kernel = kernel
        self.swift = swift
        self.ztrainVersion = ztrainVersion
        self.ztrainCommit = ztrainCommit
        self.blas = blas
        self.memoryBytes = memoryBytes
    }

    /// The flags this report looks for.
    public static let flagsOfInterest = ["avx2", "avx512f", "fma"]

    /// This machine.
    public static func current(version: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var model = "unknown"
        var present = Set<String>()
        for line in cpuinfo.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { trimmingWhitespace($0) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name" && model == "unknown" { model = parts[1] }
            if parts[0] == "flags" && present.isEmpty { present = Set(parts[1].split(separator: " ").map(String.init)) }
        }
        var flags: [String: Bool] = [:]
        for f in flagsOfInterest { flags[f] = present.contains(f) }
        let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        var os = "unknown"
        for line in release.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            os = String(line.dropFirst("PRETTY_NAME=".count).drop(while: { $0 == "\"" }).reversed().drop(while: { $0 == "\"" }).reversed())
        }
        var u = utsname()
        uname(&u)
        let kernel = withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let blas = (try? OpenBLAS.shared.get())?.config ?? "OpenBLAS not loaded"
        let commit = environment["ZTRAIN_COMMIT"].flatMap { $0.isEmpty ? nil : $0 }
        let swift = environment["ZTRAIN_SWIFT_VERSION"].flatMap { $0.isEmpty ? nil : $0 } ?? compilerVersion
        return MachineInfo(cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount, flags: flags, os: os,
                           kernel: kernel, swift: swift, ztrainVersion: version, ztrainCommit: commit, blas: blas,
                           memoryBytes: Int(exactly: ProcessInfo.processInfo.physicalMemory))
    }

    /// The compiler this binary was built with, to the minor version `#if compiler` can tell.
    static var compilerVersion: String {
        #if compiler(>=6.4)
        return "Swift compiler 6.4 or newer"
        #elseif compiler(>=6.3)
        return "Swift compiler 6.3"
        #elseif compiler(>=6.2)
        return "Swift compiler 6.2"
        #elseif compiler(>=6.1)
        return "Swift compiler 6.1"
        #else
        return "Swift compiler 6.0"
        #endif
    }

    /// `avx2 avx512f` (the flags present).
    public var flagSummary: String {
        let on = flags.filter(\.value).map(\.key).sorted()
        return on.isEmpty ? "none of \(MachineInfo.flagsOfInterest.joined(separator: ", "))" : on.joined(separator: " ")
    }
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages (nil without `/proc`).
public func loadAverage() -> [Double]? {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ").prefix(3).compactMap { Double($0) }
    return fields.count == 3 ? fields : nil
}
