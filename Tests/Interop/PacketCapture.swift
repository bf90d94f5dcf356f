import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A tshark capture for tests that check our bytes with a third-party dissector: started,
/// proven running (probe datagrams to `probe` until tshark shows one, since "Capturing on"
/// comes before the capture really runs; `-l` so the line is not held in a pipe's buffer),
/// stopped with SIGTERM so the file is finished, then read with the fields asked for.
final class PacketCapture: Sendable {
    let tshark: BackgroundProgram
    let file: URL

    /// Captures on `interface` what `filter` lets through (plus the probe), into `file`.
    init(interface: String, filter: String, file: URL, probe: (address: String, port: UInt16)) async throws {
        self.file = file
        // Through Python only to unblock SIGTERM first: the test process blocks it, children
        // inherit the mask, and tshark finishes its file only when it can receive the signal.
        let unblocked =
            "import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT]); "
            + "os.execv(sys.argv[1], sys.argv[1:])"
        tshark = try BackgroundProgram(
            Interop.python,
            [
                "-c", unblocked, Self.tsharkPath, "-i", interface, "-l", "-P", "-f",
                "(\(filter)) or udp port \(probe.port)", "-w", file.path,
            ])
        try await tshark.waitForLine(timeout: 20, "the capture to start") { $0.contains("Capturing on") }
        let sender = Task.detached {
            for _ in 0..<200 where !Task.isCancelled {
                Self.sendDatagram(to: probe.address, port: probe.port)
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { sender.cancel() }
        try await tshark.waitForLine(timeout: 20, "a captured probe") { $0.contains("UDP") }
    }

    static var tsharkPath: String { Interop.onPath("tshark") ?? "/usr/bin/tshark" }

    /// Stops the capture, letting the last segments reach the file first.
    func stop() async throws {
        try await Task.sleep(for: .milliseconds(500))
        tshark.signal(SIGTERM)
        _ = try await tshark.waitForExit(timeout: 20)
    }

    /// Each field's values over the packets `displayFilter` keeps, with `decodeAs` options
    /// (e.g. `tcp.port==4661,edonkey`).
    func fields(_ fields: [String], displayFilter: String, decodeAs: [String] = []) throws -> [String:
        [String]]
    {
        let output = try Interop.check(
            Self.tsharkPath,
            ["-r", file.path, "-Y", displayFilter, "-T", "fields", "-E", "aggregator=|"]
                + decodeAs.flatMap { ["-d", $0] } + fields.flatMap { ["-e", $0] })
        var values: [String: [String]] = [:]
        for line in output.split(separator: "\n") {
            for (field, value) in zip(fields, line.split(separator: "\t", omittingEmptySubsequences: false)) {
                values[field, default: []] += value.split(separator: "|").map(String.init)
            }
        }
        return values
    }

    static func sendDatagram(to address: String, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, address, &target.sin_addr)
        let bytes: [UInt8] = [0x70]
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}
