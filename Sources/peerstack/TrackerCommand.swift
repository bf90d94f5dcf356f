import ArgumentParser
import BitTorrentTracker
import Foundation
import NIOCore
import PeerNet

struct TrackerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracker",
        abstract: "Run a BitTorrent tracker (HTTP and UDP).",
        subcommands: [TrackerServe.self]
    )
}

struct TrackerServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve announces and scrapes over HTTP (BEP 3, 23, 7, 48) and UDP (BEP 15).",
        discussion: """
            Open by default: any info-hash is tracked. With --whitelist only the listed info-hashes \
            (40 hex digits a line) are; the file is read again on SIGHUP and whenever it changes. \
            Statistics are served at /stats (JSON) and /stats?format=prometheus.
            """
    )

    @Option(
        help: "HTTP address and port, or 'off' (default: [::]:6969, IPv4 and IPv6; 0.0.0.0 without IPv6).")
    var http = "[::]:6969"

    @Option(help: "UDP address and port, or 'off' (default: [::]:6969, IPv4 and IPv6; 0.0.0.0 without IPv6).")
    var udp = "[::]:6969"

    @Option(help: "File of allowed info-hashes (whitelist mode).")
    var whitelist: String?

    @Option(help: "Seconds between a client's regular announces.")
    var interval = 1_800

    @Option(help: "Seconds after its last announce that a peer is forgotten (default: 1.5 intervals).")
    var peerTimeout: Int?

    @Option(help: "Most peers in one reply.")
    var maxNumwant = 200

    @Flag(help: "Answer /scrape without info_hash with every torrent.")
    var fullScrape = false

    @Flag(help: "Use the address a client claims (ip=, or the UDP IP field) instead of its source.")
    var trustClaimedIP = false

    @Option(help: "A reverse proxy whose X-Forwarded-For is trusted (repeatable).")
    var trustedProxy: [String] = []

    @Option(help: "Seconds between status lines.")
    var logInterval = 60

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        var configuration = TrackerConfiguration()
        configuration.announceInterval = max(1, interval)
        configuration.minimumInterval = max(1, min(configuration.minimumInterval, interval / 2))
        configuration.peerTimeout = peerTimeout ?? (interval * 3 / 2)
        configuration.maxNumWant = max(0, maxNumwant)
        configuration.allowFullScrape = fullScrape
        configuration.trustClaimedIP = trustClaimedIP
        for proxy in trustedProxy {
            guard let ip = IPAddress(proxy) else {
                throw Terminal.badInput("--trusted-proxy \(proxy)", "not an IP address")
            }
            configuration.trustedProxies.insert(ip)
        }
        if let whitelist {
            configuration.admission = .whitelist(try Self.readWhitelist(whitelist))
        }
        let httpAddress = try Self.address(http, option: "--http")
        let udpAddress = try Self.address(udp, option: "--udp")
        guard httpAddress != nil || udpAddress != nil else {
            throw Terminal.badInput("--http off --udp off", "nothing to serve")
        }
        let server: TrackerServer
        do {
            server = try await TrackerServer.start(
                configuration: configuration, http: httpAddress, udp: udpAddress)
        } catch {
            Terminal.error("cannot listen: \(error)")
            throw ExitCode(1)
        }
        if let address = server.httpAddress {
            Terminal.status("HTTP tracker on \(address) (/announce, /scrape, /stats)")
        }
        if let address = server.udpAddress { Terminal.status("UDP tracker on \(address)") }
        if case .whitelist(let list) = configuration.admission {
            Terminal.status("whitelist: \(list.count) torrents from \(whitelist ?? "")")
        }

        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        let reload = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let hangups = Terminal.onSignal([SIGHUP]) { reload.continuation.yield() }
        defer { (interrupts + hangups).forEach { $0.cancel() } }

        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in stop.stream {} }
            group.addTask { await Self.report(server, every: max(1, logInterval)) }
            if let whitelist {
                group.addTask { await Self.watch(whitelist, server: server, reload: reload.stream) }
            }
            await group.next()
            group.cancelAll()
        }
        Terminal.status("stopping")
        await server.stop()
    }

    static func address(_ text: String, option: String) throws -> Endpoint? {
        if text == "off" { return nil }
        if let port = UInt16(text) { return Endpoint(ip: .anyV4, port: port) }
        do {
            return try Endpoint(parsing: text)
        } catch {
            throw Terminal.badInput(
                "\(option) \(text)", "\(error); want HOST:PORT, [IPv6]:PORT, a port, or 'off'")
        }
    }

    /// `127.0.0.1:6969` or `[::]:6969`.
    static func text(_ address: SocketAddress) -> String {
        let host = address.ipAddress ?? "?"
        return (host.contains(":") ? "[\(host)]" : host) + ":\(address.port ?? 0)"
    }

    static func readWhitelist(_ path: String) throws -> Set<InfoHashKey> {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Terminal.badInput(path, "cannot read the whitelist")
        }
        do {
            return try Whitelist.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw Terminal.badInput(path, error)
        }
    }

    /// One status line per period: request rates since the last line and the swarm sizes.
    static func report(_ server: TrackerServer, every seconds: Int) async {
        var last = try? await server.statistics()
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(seconds))
            guard !Task.isCancelled, let now = try? await server.statistics() else { return }
            let announces = Double(now.counters.announces - (last?.counters.announces ?? 0)) / Double(seconds)
            let scrapes =
                Double(
                    now.counters.httpScrapes + now.counters.udpScrapes - (last?.counters.httpScrapes ?? 0)
                        - (last?.counters.udpScrapes ?? 0)) / Double(seconds)
            Terminal.status(
                String(
                    format:
                        "%.1f announces/s, %.1f scrapes/s, %d torrents, %d peers (%d seeders, %d leechers)",
                    announces, scrapes, now.torrents, now.peers, now.seeders, now.leechers))
            last = now
        }
    }

    /// Reloads the whitelist on SIGHUP and when the file's modification time changes.
    static func watch(_ path: String, server: TrackerServer, reload: AsyncStream<Void>) async {
        func modified() -> Date? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        }
        var stamp = modified()
        let ticks = AsyncStream<Bool> { continuation in
            let timer = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(2))
                    continuation.yield(false)
                }
            }
            let signals = Task {
                for await _ in reload { continuation.yield(true) }
            }
            continuation.onTermination = { _ in
                timer.cancel()
                signals.cancel()
            }
        }
        for await forced in ticks {
            let current = modified()
            guard forced || current != stamp else { continue }
            stamp = current
            do {
                let list = try readWhitelist(path)
                try await server.setAdmission(.whitelist(list))
                Terminal.status("whitelist reloaded: \(list.count) torrents")
            } catch {
                Terminal.status("whitelist not reloaded (\(error)), keeping the previous one")
            }
        }
    }
}
