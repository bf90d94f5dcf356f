import ArgumentParser
import BitTorrent
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writing to the terminal: results on standard output, progress and errors on standard error.
enum Terminal {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    }

    static func status(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    /// Calls `handler` on the main queue for each of `signals` instead of the default action
    /// (for Ctrl-C and SIGTERM: a clean stop). Keep the returned sources alive.
    static func onSignal(_ signals: [Int32], _ handler: @escaping @Sendable () -> Void)
        -> [DispatchSourceSignal]
    {
        signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    /// Ctrl-C and SIGTERM.
    static func onInterrupt(_ handler: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
        onSignal([SIGINT, SIGTERM], handler)
    }

    /// Reports a problem with an input and ends the command with exit status 2.
    static func badInput(_ subject: String, _ problem: some CustomStringConvertible) -> ExitCode {
        error("\(subject): \(problem)")
        return ExitCode(2)
    }
}

/// Byte counts and rates in binary units, as `1.5 GiB`.
enum Units {
    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func rate(_ bytesPerSecond: Double) -> String {
        bytes(Int64(bytesPerSecond.isFinite ? min(max(bytesPerSecond, 0), 1e18) : 0)) + "/s"
    }

    /// `h:mm:ss` or `m:ss`; `--:--` for what is unknown or over 100 days (a rate decaying towards
    /// zero makes an ETA past `Int`'s range, which must not trap).
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 8_640_000 else { return "--:--" }
        let total = Int(seconds.rounded())
        return total >= 3600
            ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
            : String(format: "%d:%02d", total / 60, total % 60)
    }
}

/// Renders ``HashingProgress`` events: a redrawn bar with rate and ETA on a terminal, a plain
/// line every 10 % when standard error is a pipe or file. Safe to call from any thread.
final class ProgressBar: Sendable {
    private struct State {
        var lastDraw: ContinuousClock.Instant?
        var lastDecile = -1
        var drewBar = false
    }

    private let title: String
    private let interactive: Bool
    private let start = ContinuousClock.now
    private let state = Mutex(State())

    /// Counts things other than bytes (`unit` names them, as "blocks") when given.
    private let unit: String?

    init(title: String, unit: String? = nil, interactive: Bool = Terminal.standardErrorIsTerminal) {
        self.title = title
        self.unit = unit
        self.interactive = interactive
    }

    private func amount(_ count: Int64) -> String { unit.map { "\(count) \($0)" } ?? Units.bytes(count) }

    private func speed(_ perSecond: Double) -> String {
        unit.map { String(format: "%.0f %@/s", perSecond, $0) } ?? Units.rate(perSecond)
    }

    func update(_ progress: HashingProgress) {
        update(done: progress.bytesDone, total: progress.bytesTotal)
    }

    /// Progress in bytes (or in `unit`s); a total of 0 means unknown: the amount and rate only
    /// (and `note`, as "12 blocks"; piped, such a line every 5 s when there is a note).
    func update(done bytesDone: Int64, total: Int64, note: String? = nil) {
        let progress = (bytesDone: bytesDone, bytesTotal: max(total, bytesDone))
        let now = ContinuousClock.now
        if total <= 0 {
            guard interactive || note != nil else { return }
            state.withLock { state in
                let every: Duration = interactive ? .milliseconds(100) : .seconds(5)
                if now - (state.lastDraw ?? (interactive ? start - every : start)) < every { return }
                state.lastDraw = now
                let elapsed = Self.seconds(now - start)
                let rate = speed(elapsed > 0 ? Double(bytesDone) / elapsed : 0)
                let extra = note.map { "  (\($0))" } ?? ""
                guard interactive else {
                    return Terminal.status("\(title): \(amount(bytesDone))\(extra), \(rate)")
                }
                state.drewBar = true
                FileHandle.standardError.write(
                    Data("\r\(title) \(amount(bytesDone))\(extra)  \(rate)\u{1B}[K".utf8))
            }
            return
        }
        let elapsed = Self.seconds(now - start)
        let fraction = progress.bytesTotal > 0 ? Double(progress.bytesDone) / Double(progress.bytesTotal) : 1
        let rate = elapsed > 0 ? Double(progress.bytesDone) / elapsed : 0
        let remaining = rate > 0 ? Double(progress.bytesTotal - progress.bytesDone) / rate : .infinity
        state.withLock { state in
            if interactive {
                let finished = progress.bytesDone == progress.bytesTotal
                if let last = state.lastDraw, now - last < .milliseconds(100), !finished { return }
                state.lastDraw = now
                state.drewBar = true
                let width = 28
                let filled = min(width, Int(fraction * Double(width)))
                let bar =
                    String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
                let line = String(
                    format: "\r%@ [%@] %5.1f%%  %@ / %@  %@  ETA %@\u{1B}[K", title, bar, fraction * 100,
                    amount(progress.bytesDone), amount(progress.bytesTotal), speed(rate),
                    Units.duration(remaining))
                FileHandle.standardError.write(Data(line.utf8))
            } else {
                // A plain line per 10 % step, at most one a second; quick jobs print none.
                let decile = Int(fraction * 10)
                guard decile > state.lastDecile, decile < 10, now - (state.lastDraw ?? start) >= .seconds(1)
                else { return }
                state.lastDecile = decile
                state.lastDraw = now
                Terminal.status(
                    "\(title): \(decile * 10)% (\(amount(progress.bytesDone)) of \(amount(progress.bytesTotal)), \(speed(rate)))"
                )
            }
        }
    }

    /// Ends the bar's line and returns the elapsed time in seconds.
    @discardableResult
    func finish() -> Double {
        state.withLock { state in
            if state.drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
            state.drewBar = false
        }
        return Self.seconds(ContinuousClock.now - start)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
