import CZeroMQ
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One message frame owning a `zmq_msg_t` (closed in `deinit`).
///
/// Use it for the zero-copy paths:
/// - ``Socket/receiveMessage(flags:)`` hands you the bytes libzmq received, read
///   in place with ``withUnsafeBytes(_:)`` (no copy into a Swift array);
/// - ``init(count:initializingWith:)`` lets you write a large payload directly into
///   libzmq-owned memory, and ``Socket/send(_:flags:)-(Message,_)`` sends it without
///   another copy. Sending does not consume the message: large payloads are
///   reference-counted by libzmq, so the same `Message` can be sent to many peers
///   without copying its bytes again.
///
/// A `Message` is immutable once created. It is not `Sendable` (libzmq updates the
/// shared reference count when the message is sent); copy the bytes out, or hand the
/// message over with `sending`, to move it to another concurrency domain.
public final class Message: ContiguousBytes {
    let pointer: UnsafeMutablePointer<zmq_msg_t>

    /// An empty (zero-length) message.
    public init() {
        pointer = .allocate(capacity: 1)
        zmq_msg_init(pointer)
    }

    /// A message of `count` bytes whose content is written by `body`, directly into
    /// libzmq's buffer (no intermediate Swift array).
    ///
    /// The buffer passed to `body` is uninitialized (its previous content is
    /// unspecified); `body` must write every byte it wants to send.
    ///
    /// - Throws: ``ZMQError`` (`EINVAL` for a negative count, `ENOMEM`), or whatever `body` throws.
    public init(
        count: Int,
        initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        guard count >= 0 else {
            throw ZMQError(errno: EINVAL, operation: "Message(count: \(count))")
        }
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        guard zmq_msg_init_size(message, count) == 0 else {
            let error = ZMQError.last("Message(count: \(count))")
            message.deallocate()
            throw error
        }
        pointer = message
        // From here on `deinit` closes the message, also if `body` throws.
        try body(UnsafeMutableRawBufferPointer(start: zmq_msg_data(message), count: count))
    }

    /// A message holding a copy of `bytes`.
    ///
    /// - Throws: ``ZMQError`` if libzmq cannot allocate the message (`ENOMEM`).
    public init(_ bytes: some ContiguousBytes) throws(ZMQError) {
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        let errno: Int32 = bytes.withUnsafeBytes { source in
            guard zmq_msg_init_size(message, source.count) == 0 else { return zmq_errno() }
            if let base = source.baseAddress, source.count > 0, let destination = zmq_msg_data(message) {
                destination.copyMemory(from: base, byteCount: source.count)
            }
            return 0
        }
        guard errno == 0 else {
            message.deallocate()
            throw ZMQError(errno: errno, operation: "Message(bytes)")
        }
        pointer = message
    }

    /// A message that sends the bytes of `array` without copying them (`zmq_msg_init_data`).
    ///
    /// libzmq reads the bytes straight from the array's storage, which the message keeps alive:
    /// it holds a reference to the storage until libzmq calls the free function (possibly on its
    /// I/O thread, once the last copy of the message is sent or dropped). The array stays a value:
    /// if the caller writes to its copy while libzmq still holds the storage, copy-on-write gives
    /// the caller a fresh buffer, and the bytes in flight never change. (This relies on a native
    /// Swift array's storage not moving while a reference to it is alive — true of every array
    /// made in Swift.)
    ///
    /// - Throws: ``ZMQError`` if libzmq cannot set the message up.
    public init<Element: BitwiseCopyable>(keeping array: [Element]) throws(ZMQError) {
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        let box = Unmanaged.passRetained(StorageBox(array) as AnyObject)
        let rc: Int32 = array.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return zmq_msg_init(message) }
            return zmq_msg_init_data(message, UnsafeMutableRawPointer(mutating: base), raw.count, releaseStorageBox, box.toOpaque())
        }
        guard rc == 0 else {
            let error = ZMQError.last("Message(keeping: \(array.count) elements)")
            box.release()
            message.deallocate()
            throw error
        }
        if array.isEmpty { box.release() }
        pointer = message
    }

    /// A message holding the UTF-8 bytes of `string`.
    public convenience init(_ string: String) throws(ZMQError) {
        try self.init(Array(string.utf8))
    }

    deinit {
        zmq_msg_close(pointer)
        pointer.deallocate()
    }

    /// The number of bytes in the frame.
    public var count: Int { zmq_msg_size(pointer) }

    /// Whether the frame has no bytes.
    public var isEmpty: Bool { count == 0 }

    /// Whether more frames of the same multipart message follow this one
    /// (`zmq_msg_more`; meaningful for received messages).
    public var more: Bool { zmq_msg_more(pointer) != 0 }

    /// Calls `body` with the frame's bytes, in place (no copy). The pointer must not
    /// escape `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(pointer), count: zmq_msg_size(pointer)))
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// The frame's bytes decoded as UTF-8 (invalid sequences are replaced with U+FFFD).
    public var string: String {
        withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
}

/// Keeps an array's storage alive while libzmq sends from it.
private final class StorageBox<Element> {
    let value: [Element]
    init(_ value: [Element]) { self.value = value }
}

/// libzmq's free function for ``Message/init(keeping:)``: drops the message's reference to the
/// storage (called once, from whichever thread releases the message last).
private func releaseStorageBox(_ data: UnsafeMutableRawPointer?, _ hint: UnsafeMutableRawPointer?) {
    guard let hint else { return }
    Unmanaged<AnyObject>.fromOpaque(hint).release()
}
