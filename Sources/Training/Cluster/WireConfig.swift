import Support
import Wire

extension TrainingConfig {
    /// The configuration as WELCOME's nested `config` object (``JSONStyle/canonical``: the keys as
    /// `TrainingConfig` declares them, the same document a checkpoint records). A configuration
    /// holds no non-finite number (``validate()``), so this does not fail in practice; an empty
    /// object, which no worker decodes, stands in if it did.
    ///
    /// ```swift
    /// let w = Welcome(runID: id, workerID: 1, config: config.wireObject, ...)
    /// let back = try TrainingConfig(wireObject: w.config)   // == config
    /// ```
    var wireObject: [String: JSONTree] {
        guard case .object(let members)? = try? JSONTree(encoding: self) else { return [:] }
        return members
    }

    /// The configuration a WELCOME carries. Throws `DecodingError` when the coordinator's
    /// configuration is not one this build reads.
    init(wireObject: [String: JSONTree]) throws {
        self = try JSONTree.object(wireObject).decode(TrainingConfig.self)
    }
}
