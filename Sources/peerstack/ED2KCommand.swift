import ArgumentParser
import EDonkey
import Foundation
import NIOPosix
import PeerNet
import SystemPackage

struct ED2KCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ed2k",
        abstract: "eDonkey/eMule: ed2k hashes and links.",
        subcommands: [ED2KHash.self, ED2KServe.self]
    )
}

struct ED2KHash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Print each file's ed2k link (MD4 over 9,728,000-byte parts, as eMule and aMule hash).",
        discussion: """
            The link has the file's name, size and ed2k hash: ed2k://|file|NAME|SIZE|HASH|/. \
            A file whose size is an exact multiple of the part size gets the extra empty part \
            hash eMule and aMule give it. Large files show a progress bar on a terminal.
            """
    )

    @Argument(help: "Files to hash.")
    var files: [String]

    @Flag(help: "Also print each part's hash.")
    var parts = false

    func run() throws {
        var failed = false
        for file in files {
            let path = FilePath(file)
            let bar = ProgressBar(title: path.lastComponent?.string ?? file)
            do {
                var size: UInt64 = 0
                if let attributes = try? FileManager.default.attributesOfItem(atPath: file),
                    let bytes = attributes[.size] as? NSNumber
                {
                    size = bytes.uint64Value
                }
                let result = try ED2KHasher.hashFile(path) { done in
                    if size > 64 << 20 { bar.update(done: Int64(done), total: Int64(size)) }
                }
                bar.finish()
                guard result.size > 0 else {
                    Terminal.error("\(file): empty files have no ed2k link")
                    failed = true
                    continue
                }
                let link = ED2KLink.file(
                    name: path.lastComponent?.string ?? file, size: result.size, hash: result.hash, aich: nil,
                    sources: [])
                print(link)
                if parts {
                    for (index, part) in result.parts.enumerated() {
                        print("  part \(index): \(part.map { String(format: "%02X", $0) }.joined())")
                    }
                }
            } catch {
                bar.finish()
                Terminal.error("\(file): \(error)")
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct ED2KServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run an eDonkey index server until Ctrl-C.",
        discussion: """
            Clients log in (a high ID when the server can connect to their port, a low ID \
            otherwise), offer their files and search the index; sources are the clients that \
            offered a file. Nothing is announced anywhere: clients come to it by its address.
            """
    )

    @Option(help: "Where to listen for clients, host:port.")
    var tcp = "0.0.0.0:4661"

    @Option(help: "The server's name, as clients show it.")
    var name = "PeerStack server"

    func run() async throws {
        guard let endpoint = Endpoint(tcp) else { throw Terminal.badInput("--tcp \(tcp)", "not host:port") }
        var configuration = ED2KServerConfiguration()
        configuration.name = name
        let server = try await ED2KServer.start(
            on: endpoint, configuration: configuration, group: MultiThreadedEventLoopGroup.singleton
        ) { event in
            switch event {
            case .listening(let address): Terminal.status("listening on \(address)")
            case .login(let address, let id, _):
                Terminal.status("\(address) logged in with \(id >= 1 << 24 ? "a high" : "a low") ID (\(id))")
            case .offered(let address, let files): Terminal.status("\(address) offers \(files) files")
            case .searched(let address, let results):
                Terminal.status("\(address) searched: \(results) results")
            case .disconnected(let address, let reason): Terminal.status("\(address) left: \(reason)")
            }
        }
        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        defer { interrupts.forEach { $0.cancel() } }
        for await _ in stop.stream {}
        Terminal.status("stopping")
        await server.shutdown()
    }
}
