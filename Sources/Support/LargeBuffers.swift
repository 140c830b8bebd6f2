#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Large message buffers reused instead of mapped afresh.
///
/// libzmq allocates every received message with `malloc`; glibc serves blocks above its mmap
/// threshold (at most 32 MiB) with a fresh `mmap`, so each multi-megabyte frame costs page faults
/// and zeroed pages, and its `free` unmaps them again. With mmap off and a high trim threshold the
/// blocks come from, and return to, the heap: the next round's frames reuse the same pages. For
/// runs whose frames are large (``threshold`` bytes and up); glibc only (elsewhere a no-op).
public enum LargeBuffers {
    /// Frames of this many bytes and more are "large".
    public static let threshold = 4 << 20

    /// Switches the process to reusing large blocks (idempotent).
    public static func reuse() {
        #if canImport(Glibc)
        // `mallopt` is not in Swift's Glibc module (malloc.h is not part of it): found by name.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let M_TRIM_THRESHOLD: Int32 = -1, M_MMAP_MAX: Int32 = -4  // <malloc.h>
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }

    /// Switches the process to mapping every large block on its own and unmapping it when freed
    /// (idempotent): a fixed mmap threshold of ``threshold`` bytes, so glibc's rising dynamic threshold
    /// never moves blocks of tens of MB into the heap, where freed ones stay resident. For a process
    /// whose large buffers come and go (a shard process: a node's slice in, the updated slice out),
    /// its resident memory is then what it holds. Elsewhere than glibc a no-op.
    public static func release() {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let M_MMAP_THRESHOLD: Int32 = -3  // <malloc.h>
        _ = mallopt(M_MMAP_THRESHOLD, Int32(threshold))
        #endif
    }

    /// Hands free heap pages back to the system (`malloc_trim(0)`; glibc only, elsewhere a no-op).
    public static func trim() {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        typealias MallocTrim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        #endif
    }
}
