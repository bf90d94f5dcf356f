import ArgumentParser
import Logging
import Synchronization

/// `-v` and `--log-level`: how much the libraries' swift-log output shows, on standard error
/// (warnings and worse by default). Programs act on typed events, never on these lines.
struct LoggingOptions: ParsableArguments {
    @Flag(name: .customShort("v"), help: "Show debug logging (same as --log-level debug).")
    var debug = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level?

    private static let bootstrapped = Atomic<Bool>(false)

    /// Sends every library's log to standard error at the chosen level (`floor` when more
    /// detail was asked some other way, e.g. `dht --verbose`). Once per process.
    func bootstrap(floor: Logger.Level? = nil) {
        var level = logLevel ?? (debug ? .debug : .warning)
        if let floor, floor < level { level = floor }
        guard !Self.bootstrapped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
