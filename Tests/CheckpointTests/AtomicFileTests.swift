import Foundation
import Testing

@testable import Checkpoint

@Suite struct AtomicFileTests {
    private func listing(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    }

    @Test func writesNewFileAndLeavesNoTemporary() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/out.bin"
            let bytes: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try AtomicFile.write(bytes, to: path)
            #expect(try AtomicFile.read(path) == bytes)
            #expect(try listing(dir) == ["out.bin"])
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode & 0o600 == 0o600)
        }
    }

    @Test func replacesExistingContent() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/model.safetensors"
            try Data(repeating: 0xAB, count: 5000).write(to: URL(fileURLWithPath: path))
            try AtomicFile.write([1, 2, 3], to: path)
            #expect(try AtomicFile.read(path) == [1, 2, 3])
            try AtomicFile.write([], to: path)
            #expect(try AtomicFile.read(path) == [])
            #expect(try listing(dir) == ["model.safetensors"])
        }
    }

    @Test func relativeDirectoryPathsWork() throws {
        try withTemporaryDirectory { dir in
            // A path with a directory part and a trailing name; the temporary file goes beside it.
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            try AtomicFile.write([9], to: dir + "/sub/f")
            #expect(try listing(dir + "/sub") == ["f"])
        }
    }

    @Test func errorsNamePathAndReason() throws {
        try withTemporaryDirectory { dir in
            let missingDir = dir + "/missing/out.bin"
            #expect(
                checkpointMessage { try AtomicFile.write([1], to: missingDir) }
                    == "cannot write \(missingDir): No such file or directory (creating a temporary file in \(dir)/missing)")
            // The target is a directory: the rename fails and the temporary file is removed.
            let sub = dir + "/target"
            try FileManager.default.createDirectory(atPath: sub + "/inner", withIntermediateDirectories: true)
            let message = checkpointMessage { try AtomicFile.write([1], to: sub) }
            #expect(message?.hasPrefix("cannot write \(sub): ") == true)
            #expect(message?.contains("renaming") == true)
            #expect(try listing(dir) == ["target"])
            #expect(
                checkpointMessage { try AtomicFile.write([1], to: dir + "/") }
                    == "cannot write \(dir)/: the path names a directory, not a file")
            #expect(checkpointMessage { try AtomicFile.read(sub) } == "cannot read \(sub): Is a directory")
        }
    }

    @Test func concurrentWritersLeaveOneCompleteVersion() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/shared.bin"
            let versions: [[UInt8]] = (0..<8).map { [UInt8](repeating: UInt8($0), count: 20_000 + $0) }
            DispatchQueue.concurrentPerform(iterations: versions.count) { k in
                for _ in 0..<5 { try? AtomicFile.write(versions[k], to: path) }
            }
            let final = try AtomicFile.read(path)
            #expect(versions.contains(final))
            #expect(try listing(dir) == ["shared.bin"])
        }
    }
}

@Suite("AtomicFile reads only regular files, within a limit")
struct AtomicFileReadLimitTests {
    @Test func devicesAndFIFOsAreRefusedAtOnce() throws {
        #expect(checkpointMessage { try AtomicFile.read("/dev/zero") } == "cannot read /dev/zero: it is a character device, not a regular file; give a file")
        try withTemporaryDirectory { dir in
            let fifo = dir + "/pipe"
            #expect(mkfifo(fifo, 0o644) == 0)
            // no writer: a blocking open would wait forever
            #expect(checkpointMessage { try AtomicFile.read(fifo) } == "cannot read \(fifo): it is a FIFO (named pipe), not a regular file; give a file")
        }
    }

    @Test func aFileOverTheLimitIsRefusedUnread() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/big"
            try Data(repeating: 1, count: 1000).write(to: URL(fileURLWithPath: path))
            #expect(try AtomicFile.read(path, maxBytes: 1000).count == 1000)
            #expect(checkpointMessage { try AtomicFile.read(path, maxBytes: 999) }
                == "cannot read \(path): it has 1000 bytes, more than the limit of 999; is it the right file?")
        }
    }

    @Test func staleTemporariesOfOneTargetAreRemoved() throws {
        try withTemporaryDirectory { dir in
            for name in [".a.bin.tmp-1-ff", ".b.bin.tmp-2-ee", "a.bin", ".hidden"] {
                try Data([1]).write(to: URL(fileURLWithPath: dir + "/" + name))
            }
            #expect(AtomicFile.removeStaleTemporaries(in: dir) { $0 == "a.bin" } == [".a.bin.tmp-1-ff"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == [".b.bin.tmp-2-ee", ".hidden", "a.bin"])
        }
    }
}
