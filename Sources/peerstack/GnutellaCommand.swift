import ArgumentParser
import Foundation
import Gnutella
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage

struct GnutellaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gnutella",
        abstract: "A Gnutella 0.6 servent: share, search, download over HTTP.",
        discussion: """
            Servents connect only to the hosts named with --connect: there are no built-in host \
            caches. An ultrapeer (--ultrapeer) floods queries to other ultrapeers and passes them \
            to its leaves by their QRP tables; a leaf connects to ultrapeers only.
            """,
        subcommands: [GnutellaServe.self, GnutellaSearch.self, GnutellaGet.self]
    )
}

/// Options of every `gnutella` verb.
struct GnutellaOptions: ParsableArguments {
    @Option(help: "An ultrapeer to connect to, host:port (repeatable).")
    var connect: [String] = []

    @Option(help: "Where to listen, host:port (port 0: any free one).")
    var listen = "0.0.0.0:0"

    func endpoints() throws -> [Endpoint] {
        try connect.map { text in
            guard let endpoint = Endpoint(text) else {
                throw Terminal.badInput("--connect \(text)", "not host:port")
            }
            return endpoint
        }
    }

    func listenEndpoint() throws -> Endpoint {
        guard let endpoint = Endpoint(listen) else {
            throw Terminal.badInput("--listen \(listen)", "not host:port")
        }
        return endpoint
    }
}

struct GnutellaServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Share a directory's files until Ctrl-C.")

    @OptionGroup var options: GnutellaOptions

    @Option(help: "Directory whose files are shared (hashed for their urn:sha1 first).")
    var share: String?

    @Flag(help: "Run as an ultrapeer (default: a leaf).")
    var ultrapeer = false

    func run() async throws {
        var shares: [ShareEntry] = []
        if let share {
            shares = try ShareEntry.scan(FilePath(share)) { Terminal.status("hashing \($0)") }
        }
        var configuration = ServentConfiguration()
        configuration.ultrapeer = ultrapeer
        let node = try await GnutellaNode.start(
            configuration: configuration, shares: shares, listen: try options.listenEndpoint(),
            group: MultiThreadedEventLoopGroup.singleton
        ) { event in
            switch event {
            case .listening(let endpoint):
                Terminal.status("listening on \(endpoint) as \(ultrapeer ? "an ultrapeer" : "a leaf")")
            case .connected(let endpoint, let kind): Terminal.status("connected to \(endpoint) (\(kind))")
            case .disconnected(let endpoint, let reason): Terminal.status("lost \(endpoint): \(reason)")
            case .refused(let endpoint, let code, let reason):
                Terminal.status("\(endpoint) refused: \(code) \(reason)")
            case .uploaded(let name, let bytes, let to):
                Terminal.status("sent \(name) (\(Units.bytes(bytes))) to \(to)")
            case .result: break
            }
        }
        Terminal.status("sharing \(shares.count) files; GUID \(node.guid)")
        for endpoint in try options.endpoints() { node.connect(to: endpoint) }
        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        defer { interrupts.forEach { $0.cancel() } }
        for await _ in stop.stream {}
        Terminal.status("stopping")
        await node.shutdown()
    }
}

/// A hit as the commands print it.
struct GnutellaHit: Codable, Sendable {
    var name: String
    var size: UInt32
    var sha1: String?
    var host: String
    var index: UInt32
    /// The responding servent's GUID, and whether it says it needs a Push to upload.
    var servent: String
    var push: Bool
}

/// Runs a leaf connected to `endpoints`, searches, and hands each hit to `onHit` until
/// `stop` says so or `timeout` passes.
@discardableResult
func gnutellaSearch(
    _ text: String, sha1: [UInt8]?, options: GnutellaOptions, timeout: Double, keepNode: Bool = false,
    onHit: @escaping @Sendable (GnutellaHit) -> Bool
) async throws -> GnutellaNode? {
    let endpoints = try options.endpoints()
    guard !endpoints.isEmpty else { throw Terminal.badInput("--connect", "name at least one ultrapeer") }
    let connected = AsyncStream<Void>.makeStream()
    let hits = AsyncStream<GnutellaHit>.makeStream()
    let node = try await GnutellaNode.start(
        configuration: ServentConfiguration(), shares: [], listen: try options.listenEndpoint(),
        group: MultiThreadedEventLoopGroup.singleton
    ) { event in
        switch event {
        case .connected: connected.continuation.yield()
        case .result(_, let hit):
            for result in hit.results {
                hits.continuation.yield(
                    GnutellaHit(
                        name: result.name, size: result.size,
                        sha1: result.extensions.sha1.map(SHA1URN.string),
                        host: hit.endpoint.description, index: result.index, servent: hit.servent.description,
                        push: hit.trailer?.push ?? false))
            }
        case .refused(let endpoint, let code, let reason):
            Terminal.status("\(endpoint) refused: \(code) \(reason)")
        default: break
        }
    }
    for endpoint in endpoints { node.connect(to: endpoint) }
    // Wait for the first ultrapeer, then search.
    let first = Task {
        for await _ in connected.stream { return true }
        return false
    }
    let timer = Task {
        try await Task.sleep(for: .seconds(10))
        first.cancel()
    }
    guard await first.value else {
        await node.shutdown()
        throw ValidationError("no ultrapeer accepted the connection within 10 s")
    }
    timer.cancel()
    _ = try await node.search(text, sha1: sha1)
    let deadline = Task {
        try await Task.sleep(for: .seconds(timeout))
        hits.continuation.finish()
    }
    defer { deadline.cancel() }
    for await hit in hits.stream where !onHit(hit) { break }
    if keepNode { return node }
    await node.shutdown()
    return nil
}

struct GnutellaSearch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Search through an ultrapeer and print hits as they arrive.")

    @Argument(help: "Words to search for (or a urn:sha1:…).")
    var words: String

    @OptionGroup var options: GnutellaOptions

    @Option(help: "Seconds to wait for hits.")
    var timeout = 10.0

    @Flag(help: "One JSON object per hit.")
    var json = false

    func run() async throws {
        let sha1 = SHA1URN.parse(words)
        let count = Mutex(0)
        try await gnutellaSearch(sha1 == nil ? words : "", sha1: sha1, options: options, timeout: timeout) {
            hit in
            count.withLock { $0 += 1 }
            var line = "\(hit.name)\t\(hit.size)\t\(hit.sha1 ?? "-")\t\(hit.host)"
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                line = (try? encoder.encode(hit)).map { String(decoding: $0, as: UTF8.self) } ?? line
            }
            // Unbuffered: hits show as they arrive, also through a pipe.
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
            return true
        }
        if !json { Terminal.status("\(count.withLock { $0 }) hits") }
    }
}

struct GnutellaGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Find a file by its urn:sha1 and download it, checked against the hash."
    )

    @Argument(help: "The file's urn:sha1:….")
    var urn: String

    @OptionGroup var options: GnutellaOptions

    @Option(name: .shortAndLong, help: "Directory to save into.")
    var output = "."

    @Option(help: "Seconds to wait for a hit.")
    var timeout = 20.0

    func run() async throws {
        guard let sha1 = SHA1URN.parse(urn) else {
            throw Terminal.badInput(urn, "not a urn:sha1:<32 base32 characters>")
        }
        let found = Mutex<GnutellaHit?>(nil)
        let node = try await gnutellaSearch(
            "", sha1: sha1, options: options, timeout: timeout, keepNode: true
        ) { hit in
            guard hit.sha1 == SHA1URN.string(sha1) else { return true }
            found.withLock { $0 = hit }
            return false
        }
        guard let hit = found.withLock({ $0 }), let host = Endpoint(hit.host) else {
            await node?.shutdown()
            throw ValidationError("no servent answered for \(SHA1URN.string(sha1)) within \(Int(timeout)) s")
        }
        let name = hit.name.split(separator: "/").last.map(String.init) ?? "download"
        let path = FilePath(output).appending(name.isEmpty || name == ".." ? "download" : name)
        let bar = ProgressBar(title: name)
        Terminal.status("downloading \(name) (\(Units.bytes(Int64(hit.size)))) from \(host)")
        let size: Int64
        do {
            guard !hit.push else { throw GnutellaError.handshake("the servent asks for a Push") }
            size = try await GnutellaDownload.fetch(
                sha1: sha1, from: host, to: path, group: MultiThreadedEventLoopGroup.singleton
            ) { done, total in bar.update(done: done, total: total) }
        } catch {
            // Unreachable, or firewalled: ask it to connect to us (Push, then GIV).
            guard let node, let servent = GUID(hexPrefix: hit.servent) else { throw error }
            Terminal.status("direct download failed (\(error)); sending a Push")
            do {
                size = try await node.pushDownload(servent: servent, index: hit.index, sha1: sha1, to: path) {
                    done, total in bar.update(done: done, total: total)
                }
            } catch {
                await node.shutdown()
                throw error
            }
        }
        await node?.shutdown()
        let seconds = bar.finish()
        Terminal.status(
            "complete: \(path) (\(Units.bytes(size)), SHA-1 checked, \(String(format: "%.1f", seconds)) s)")
    }
}
