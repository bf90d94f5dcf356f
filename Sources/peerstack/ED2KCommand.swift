import ArgumentParser
import EDonkey
import Foundation
import Multiformats
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage

struct ED2KCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ed2k",
        abstract: "eDonkey/eMule: ed2k hashes and links, an index server, sharing, searching and fetching.",
        subcommands: [ED2KHash.self, ED2KServe.self, ED2KShare.self, ED2KSearch.self, ED2KGet.self]
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

    @Flag(help: "Add the AICH root (h=…), as eMule's links carry it.")
    var aich = false

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
                    name: path.lastComponent?.string ?? file, size: result.size, hash: result.hash,
                    aich: aich ? AICHHasher.string(result.aich.root) : nil, sources: [])
                print(link)
                if parts {
                    for (index, part) in result.parts.enumerated() {
                        print("  part \(index): \(upperHex(part))")
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

    @Option(help: "A file to keep the index in across restarts (JSON; read at start, written every minute).")
    var snapshot: String?

    func run() async throws {
        guard let endpoint = Endpoint(tcp) else { throw Terminal.badInput("--tcp \(tcp)", "not host:port") }
        var configuration = ED2KServerConfiguration()
        configuration.name = name
        configuration.snapshot = snapshot
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
            case .datagram(let address, let opcode, let answers):
                Terminal.status("\(address) sent UDP 0x\(String(opcode, radix: 16)): \(answers) answers")
            case .sources(let address, let hash, let found):
                Terminal.status(
                    "\(address) asked for sources of \(upperHex(hash)): \(found)"
                )
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

/// A fresh eMule user hash: random, with the two bytes eMule sets to mark its clients (6th 14,
/// 15th 111), so eMule and aMule count us as one of theirs.
func ed2kUserHash() -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var hash = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    hash[5] = 14
    hash[14] = 111
    return hash
}

/// `host:port` of an index server, resolved to an IPv4 endpoint.
func ed2kServer(_ text: String) throws -> Endpoint {
    guard let endpoint = Endpoint(text) else { throw Terminal.badInput("--server \(text)", "not host:port") }
    return endpoint
}

/// The server's own address as a client ID (what hellos carry), from the address we reached.
func ed2kServerID(_ endpoint: Endpoint) -> (ip: UInt32, port: UInt16) {
    (ServerState.highID(endpoint.ip.bytes), endpoint.port)
}

struct ED2KShare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Share a directory's files through an index server until Ctrl-C.",
        discussion: """
            Hashes every regular file in DIR (not its subdirectories), listens for clients, logs \
            in to the server with that port (a high ID when the server can reach it) and offers \
            the files there. Clients that find them (eMule, aMule, PeerStack) download from here. \
            Prints each file's ed2k link. If the server drops the connection, logs in again.
            """
    )

    @Argument(help: "The directory to share.")
    var directory: String

    @Option(help: "The index server, host:port.")
    var server: String

    @Option(help: "Where to listen for clients, host:port (port 4662 is eMule's).")
    var listen = "0.0.0.0:4662"

    func run() async throws {
        let serverEndpoint = try ed2kServer(server)
        guard let listenEndpoint = Endpoint(listen) else {
            throw Terminal.badInput("--listen \(listen)", "not host:port")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        var files: [ED2KSharedFile] = []
        for name in names where !name.hasPrefix(".") && !name.hasSuffix(".part") {
            let path = (directory as NSString).appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
                !isDirectory.boolValue
            else { continue }
            do {
                let file = try ED2KSharedFile(path: FilePath(path))
                guard file.size > 0 else { continue }
                files.append(file)
                // Unbuffered: the links show at once, also through a pipe (the command runs on).
                FileHandle.standardOutput.write(Data("\(file.link)\n".utf8))
            } catch {
                Terminal.error("\(path): \(error)")
            }
        }
        guard !files.isEmpty else { throw Terminal.badInput(directory, "has no files to share") }
        let userHash = ed2kUserHash()
        let group = MultiThreadedEventLoopGroup.singleton
        let uploader = try await ED2KUploader.start(
            sharing: files, userHash: userHash, on: listenEndpoint, group: group)
        let port = uploader.localAddress?.port ?? listenEndpoint.port
        Terminal.status("sharing \(files.count) files; listening on port \(port)")

        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        defer { interrupts.forEach { $0.cancel() } }
        let session = Mutex<ED2KServerSession?>(nil)
        let keeper = Task {
            while !Task.isCancelled {
                do {
                    let current = try await ED2KServerSession.connect(
                        to: serverEndpoint, userHash: userHash, port: port, group: group)
                    session.withLock { $0 = current }
                    for text in current.serverMessages { Terminal.status("server: \(text)") }
                    try await uploader.announce(on: current, server: ed2kServerID(serverEndpoint))
                    Terminal.status(
                        "logged in to \(serverEndpoint) with \(current.clientID >= 1 << 24 ? "a high" : "a low") ID; "
                            + "offered \(files.count) files")
                    // With a low ID, clients reach us through the server: it asks us to call them.
                    let callbacks = Task {
                        while !Task.isCancelled {
                            guard let client = await current.nextCallback(timeout: .seconds(60)) else {
                                if !current.isOpen { break }
                                continue
                            }
                            Terminal.status("calling back \(client) (the server asked)")
                            uploader.callBack(to: client)
                        }
                    }
                    await current.closed()
                    callbacks.cancel()
                    Terminal.status("the server closed the connection; logging in again in 10 s")
                } catch {
                    Terminal.error("\(serverEndpoint): \(error); trying again in 10 s")
                }
                try? await Task.sleep(for: .seconds(10))
            }
        }
        for await _ in stop.stream {}
        Terminal.status("stopping")
        keeper.cancel()
        session.withLock { $0?.close() }
        await uploader.shutdown()
    }
}

struct ED2KSearch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search an index server and print what it lists.",
        discussion: """
            Every word must be in the name. Each result: name, size, sources (complete ones in \
            brackets) and its ed2k link; --json prints one JSON object per result.
            """
    )

    @Argument(help: "Words to search for.")
    var words: String

    @Option(help: "The index server, host:port.")
    var server: String

    @Option(help: "Only this type: Audio, Video, Image, Pro (programs), Doc, Arc (archives), Iso.")
    var type: String?

    @Option(help: "Only files with this extension (e.g. mp3).")
    var ext: String?

    @Option(help: "Only files of at least this many bytes.")
    var minSize: UInt64?

    @Option(help: "Only files of at most this many bytes.")
    var maxSize: UInt64?

    @Flag(help: "One JSON object per result.")
    var json = false

    struct Result: Encodable {
        let name: String
        let size: UInt64
        let hash: String
        let sources: UInt64
        let completeSources: UInt64
        let link: String
    }

    func run() async throws {
        guard var expression = SearchExpression.words(words) else {
            throw Terminal.badInput("\"\(words)\"", "no words to search for")
        }
        if let type { expression = .and(expression, .meta(value: type, tag: .id(Tag.fileType))) }
        if let ext { expression = .and(expression, .meta(value: ext, tag: .id(Tag.fileFormat))) }
        if let minSize {
            expression = .and(
                expression, .numeric(value: minSize, comparison: .greaterOrEqual, tag: .id(Tag.fileSize)))
        }
        if let maxSize {
            expression = .and(
                expression, .numeric(value: maxSize, comparison: .lessOrEqual, tag: .id(Tag.fileSize)))
        }
        let session = try await ED2KServerSession.connect(
            to: try ed2kServer(server), userHash: ed2kUserHash(), port: 0,
            group: MultiThreadedEventLoopGroup.singleton)
        defer { session.close() }
        let results = try await session.search(expression)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for entry in results {
            guard let name = entry.name, let size = entry.size else { continue }
            let result = Result(
                name: name, size: size, hash: upperHex(entry.hash),
                sources: entry.tags.uint(Tag.sources) ?? 0,
                completeSources: entry.tags.uint(Tag.completeSources) ?? 0,
                link: ED2KLink.file(name: name, size: size, hash: entry.hash, aich: nil, sources: [])
                    .description)
            if json {
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print(
                    "\(name)\t\(Units.bytes(Int64(size)))\t\(result.sources) [\(result.completeSources)]\t\(result.link)"
                )
            }
        }
        if !json { Terminal.status("\(results.count) results") }
    }
}

struct ED2KGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Download the file an ed2k link names, from the sources a server knows.",
        discussion: """
            Sources come from the link (|sources,…|) and from --server; each part is checked by \
            its MD4 before it counts, and a source whose data fails twice is banned. The file \
            grows as NAME.part in the output directory, renamed when whole; run the same command \
            again after a stop and the verified parts are kept.
            """
    )

    @Argument(help: "ed2k://|file|NAME|SIZE|HASH|/")
    var link: String

    @Option(help: "The index server, host:port.")
    var server: String?

    @Option(name: .shortAndLong, help: "Directory to save into.")
    var output = "."

    func run() async throws {
        let parsed: ED2KLink
        do { parsed = try ED2KLink(parsing: link) } catch { throw Terminal.badInput(link, error) }
        guard case .file(let name, let size, let hash, let aich, let sources) = parsed else {
            throw Terminal.badInput(link, "not a file link")
        }
        guard server != nil || !sources.isEmpty else {
            throw Terminal.badInput(link, "has no sources: give --server")
        }
        // The name comes from whoever wrote the link: only its last component, never a path.
        let safeName = FilePath(name).lastComponent?.string ?? ""
        guard !safeName.isEmpty, safeName != "..", safeName != "." else {
            throw Terminal.badInput(name, "not a usable file name")
        }
        let target = FilePath(output).appending(safeName)
        let group = MultiThreadedEventLoopGroup.singleton
        let userHash = ed2kUserHash()
        var session: ED2KServerSession?
        if let server {
            session = try await ED2KServerSession.connect(
                to: try ed2kServer(server), userHash: userHash, port: 0, group: group)
        }
        defer { session?.close() }
        let bar = ProgressBar(title: safeName)
        do {
            _ = try await ED2KDownload.fetch(
                hash: hash, size: size, sources: sources, server: session, to: target, userHash: userHash,
                group: group,
                aich: aich.flatMap { try? Multibase.base32Upper.decode(digits: Array($0.utf8)) },
                progress: { done, total in bar.update(done: Int64(done), total: Int64(total)) },
                note: { note in
                    switch note {
                    case .trying(let source): Terminal.status("fetching from \(source)")
                    case .failed(let source, let error): Terminal.status("\(source): \(error)")
                    case .banned(let source, let part):
                        Terminal.status("\(source) sent part \(part) corrupt twice: banned")
                    case .skippedLowID(let id):
                        Terminal.status("source \(id) has a low ID: not reachable from here")
                    }
                })
        } catch {
            bar.finish()
            throw Terminal.badInput(safeName, "\(error)")
        }
        let seconds = bar.finish()
        Terminal.status("\(target) (\(Units.bytes(Int64(size))) in \(Units.duration(seconds)))")
    }
}

/// Bytes as upper-case hex, as ed2k links and aMule write MD4 hashes.
private func upperHex(_ bytes: [UInt8]) -> String {
    String(decoding: Multibase.base16Upper.digits(of: bytes), as: UTF8.self)
}
