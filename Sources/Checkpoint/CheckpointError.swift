/// Why a checkpoint or model file could not be written, read or used.
///
/// `description` is one line naming the file and saying what is wrong; the CLI prints it as is.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// A system call failed. Renders as `cannot <action> <path>: <reason>`, where `reason` is the
    /// system's message (`strerror`), possibly followed by the step that failed.
    case io(path: String, action: String, reason: String)
    /// The bytes are not a valid safetensors file (truncated, damaged, or something else).
    case malformed(source: String, reason: String)
    /// A valid safetensors file that does not hold the model that was asked for.
    case incompatible(source: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let action, let reason):
            return "cannot \(action) \(path): \(reason)"
        case .malformed(let source, let reason):
            return "\(source): not a valid safetensors file: \(reason)"
        case .incompatible(let source, let reason):
            return "\(source): \(reason)"
        }
    }
}
