import Foundation
import Synchronization

/// A real program running beside a test: its output is collected as it comes, waited on with
/// deadlines, and it is killed when the test is done with it (or when this is deinitialised).
final class BackgroundProgram: Sendable {
    private let process: Process
    private let output = LockedText()
    private let stdin: Pipe
    let name: String

    init(_ executable: String, _ arguments: [String], in directory: URL? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw Interop.Failure(description: "\(executable) is not installed (scripts/test installs it)")
        }
        name = URL(fileURLWithPath: executable).lastPathComponent
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        stdin = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = stdin
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { output.append(String(decoding: data, as: UTF8.self)) }
        }
        try process.run()
    }

    deinit { stop() }

    var text: String { output.text }
    var pid: Int32 { process.processIdentifier }

    /// The most resident memory the program had while `body` ran, sampled every 100 ms.
    func peakResidentBytes(during body: @escaping @Sendable () async throws -> Void) async throws -> Int {
        let sampling = Task {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, residentBytes ?? 0)
                try? await Task.sleep(for: .milliseconds(100))
            }
            return peak
        }
        do {
            try await body()
        } catch {
            sampling.cancel()
            throw error
        }
        sampling.cancel()
        return max(await sampling.value, residentBytes ?? 0)
    }

    /// The program's resident memory now (VmRSS), in bytes; nil once it has exited.
    var residentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kilobytes * 1_024
    }
    var isRunning: Bool { process.isRunning }

    /// Waits until a line of output satisfies `match`, returning it; throws past the deadline.
    @discardableResult
    func waitForLine(timeout: Double, _ what: String, where match: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = text.split(separator: "\n").map(String.init).first(where: match) { return line }
            if !process.isRunning {
                // One last look: the output may have arrived with the exit.
                try await Task.sleep(for: .milliseconds(50))
                if let line = text.split(separator: "\n").map(String.init).first(where: match) { return line }
                throw Interop.Failure(description: "\(name) exited before \(what):\n\(text.suffix(2_000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Interop.Failure(description: "\(name): no \(what) within \(timeout) s:\n\(text.suffix(2_000))")
    }

    /// The first JSON object line holding `key`.
    func waitForJSON(_ key: String, timeout: Double) async throws -> [String: Any] {
        let line = try await waitForLine(timeout: timeout, "JSON with '\(key)'") { line in
            line.hasPrefix("{") && line.contains("\"\(key)\"")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw Interop.Failure(description: "\(name) printed bad JSON: \(line)")
        }
        return object
    }

    /// Waits for the program to exit by itself.
    func waitForExit(timeout: Double) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else {
            throw Interop.Failure(description: "\(name) still running after \(timeout) s")
        }
        return process.terminationStatus
    }

    /// Writes to the program's standard input.
    func send(_ text: String) {
        try? stdin.fileHandleForWriting.write(contentsOf: Data(text.utf8))
    }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }
}

/// Text appended from one thread and read from another.
final class LockedText: Sendable {
    private let storage = Mutex<String>("")
    func append(_ more: String) { storage.withLock { $0 += more } }
    var text: String { storage.withLock { $0 } }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test's own programs).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port` (a program that prints
/// nothing when it starts listening), or fails after `timeout` seconds.
func waitForListening(port: Int, timeout: Double) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        close(fd)
        if status == 0 { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw Interop.Failure(description: "nothing listened on port \(port) within \(timeout) s")
}
