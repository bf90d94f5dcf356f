import Foundation

/// The built `peerstack` command: `PEERSTACK_BIN`, or beside the running test bundle.
public func peerstackExecutable() throws -> URL {
    if let override = ProcessInfo.processInfo.environment["PEERSTACK_BIN"] {
        return URL(fileURLWithPath: override)
    }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("peerstack")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory.deleteLastPathComponent()
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "peerstack executable (build it first)"])
}
