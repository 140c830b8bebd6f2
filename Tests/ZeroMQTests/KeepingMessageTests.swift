import Foundation
import Testing
import ZeroMQ

/// `Message(keeping:)` sends an array's bytes without copying them: the bytes in flight never
/// change, and libzmq lets go of the storage once the message is gone.
@Suite("Zero-copy messages from arrays")
struct KeepingMessageTests {
    @Test("the bytes arrive as they were when sent, whatever the sender does next", arguments: Transport.allCases)
    func bytesInFlightNeverChange(transport: Transport) throws {
        try withTemporaryDirectory { directory in
            let context = try makeContext()
            let a = try context.socket(.pair)
            let b = try context.socket(.pair)
            let endpoint = try bindEndpoint(a, transport, directory: directory)
            try b.connect(endpoint)
            var values: [Float] = (0..<100_000).map { Float($0) * 0.5 }
            let expected = values.withUnsafeBytes { Array($0) }
            let message = try Message(keeping: values)
            #expect(message.count == 4 * values.count)
            try b.send(message)
            values[0] = 42  // copy-on-write: the message keeps the old storage
            values[99_999] = -1
            let got = try #require(try a.receive(timeout: .seconds(10)))
            #expect(got == expected)
            let empty = try Message(keeping: [UInt32]())
            #expect(empty.isEmpty)
        }
    }

    @Test("libzmq lets go of the storage once the message is gone")
    func storageIsReleased() throws {
        let context = try makeContext()
        let a = try context.socket(.pair)
        let b = try context.socket(.pair)
        let endpoint = uniqueInproc("keeping")
        try a.bind(endpoint)
        try b.connect(endpoint)
        var values = [Float](repeating: 1, count: 1 << 16)
        let before = values.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        do {
            let m = try Message(keeping: values)
            try b.send(m)
            let got = try #require(try a.receiveMessage(timeout: .seconds(10)))
            #expect(got.count == 4 << 16)
        }
        // over inproc the message is passed by reference and freed with the last Message: nothing
        // holds the storage any more, so writing to the array does not copy it
        values[0] = 2
        let after = values.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        #expect(after == before)
    }
}
