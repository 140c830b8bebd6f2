/// Why a series could not be built, loaded or cut into windows.
///
/// Every case renders (through `description`) as one line that says what is wrong and,
/// where it helps, what to do about it; the CLI prints it as is.
public enum SeriesError: Error, Equatable, CustomStringConvertible {
    /// A parameter given by the user or the caller is out of range (points, bounds, fractions, lengths).
    case invalidArgument(String)
    /// A file could not be read at all. `reason` is the system's message (`strerror`).
    case cannotRead(path: String, reason: String)
    /// The content of a CSV file (or text) is malformed. `line` is 1-based (the header is line 1)
    /// and is `nil` for problems that concern the whole file.
    case csv(source: String, line: Int?, message: String)

    public var description: String {
        switch self {
        case .invalidArgument(let message):
            return message
        case .cannotRead(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .csv(let source, let line, let message):
            if let line { return "\(source):\(line): \(message)" }
            return "\(source): \(message)"
        }
    }
}
