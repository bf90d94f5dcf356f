import ArgumentParser
import Foundation
import IPFS
import Libp2p
import Multiformats
import PeerCrypto
import PeerNet
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

struct IPFSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipfs",
        abstract:
            "Content addressing as IPFS does it: UnixFS DAGs with Kubo's CIDs, CAR files, a blockstore.",
        subcommands: [
            IPFSAdd.self, IPFSCat.self, IPFSGet.self, IPFSExport.self, IPFSImport.self, IPFSVerify.self,
            IPFSCIDCommand.self, IPFSGC.self, IPFSDaemon.self, IPFSRouting.self, IPFSSwarm.self,
        ]
    )
}

/// `--repo`, shared by the commands that use the blockstore.
struct RepoOptions: ParsableArguments {
    @Option(help: "The repository directory (default: ~/.peerstack/ipfs).")
    var repo: String?

    func open() throws -> FileBlockstore {
        let path: FilePath
        if let repo {
            path = FilePath(repo)
        } else {
            let home = ProcessInfo.processInfo.environment["HOME"] ?? "."
            let parent = FilePath(home).appending(".peerstack")
            if mkdir(parent.string, 0o755) != 0 && errno != EEXIST {
                throw Terminal.badInput(parent.string, "\(Errno(rawValue: errno))")
            }
            path = parent.appending("ipfs")
        }
        do {
            return try FileBlockstore(root: path)
        } catch {
            throw Terminal.badInput(path.string, "\(error)")
        }
    }
}

/// `--max-bytes`, `--max-entries`: what one `cat` or `get` may expand to (a DAG that shares
/// subtrees can name far more than it stores).
struct ExportLimitOptions: ParsableArguments {
    @Option(help: "Most bytes to write (K, M, G, T suffixes; default 1T).")
    var maxBytes = "1T"

    @Option(help: "Most files, directories and symlinks to create (default 1000000).")
    var maxEntries = 1_000_000

    func limits() throws -> ExportLimits {
        guard let bytes = P2PSend.size(maxBytes), bytes > 0 else {
            throw ValidationError("--max-bytes: '\(maxBytes)' is not a size")
        }
        guard maxEntries > 0 else { throw ValidationError("--max-entries must be positive") }
        return ExportLimits(maxBytes: UInt64(bytes), maxEntries: maxEntries)
    }
}

struct IPFSAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add files or directories; prints their CIDs as Kubo's `ipfs add` does.",
        discussion: """
            The DAG is the one Kubo builds with the same options: CIDv0 with 256 KiB chunks in a \
            balanced tree of 174 links by default; --cid-version 1 gives raw leaves and base32 CIDs. \
            Leaves are hashed (and stored) on all cores.
            """
    )

    @Argument(help: "Files, or directories with -r.")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Add directories recursively.")
    var recursive = false

    @Option(help: "CID version: 0 or 1 (1 implies raw leaves).")
    var cidVersion = 0

    @Flag(inversion: .prefixedNo, help: "Store file chunks as raw blocks (default: with --cid-version 1).")
    var rawLeaves: Bool?

    @Option(help: "Chunker: size-N, N bytes per chunk up to 1 MiB.")
    var chunker = "size-262144"

    @Flag(name: [.customShort("t"), .long], help: "Use the trickle layout instead of the balanced one.")
    var trickle = false

    @Flag(name: [.customShort("n"), .long], help: "Only compute the CIDs; store nothing.")
    var onlyHash = false

    @Flag(name: [.customShort("H"), .long], help: "Include files whose names start with a dot.")
    var hidden = false

    @Flag(name: .shortAndLong, help: "Print only the CIDs.")
    var quiet = false

    @Flag(name: [.customShort("Q"), .long], help: "Print only the root CID of each path.")
    var quieter = false

    @Option(help: "Threads hashing leaves (default: one per core).")
    var threads: Int?

    @OptionGroup var repo: RepoOptions

    func run() throws {
        var options = ImportOptions()
        options.cidVersion = cidVersion
        options.rawLeaves = rawLeaves
        options.layout = trickle ? .trickle : .balanced
        options.includeHidden = hidden
        options.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        do {
            options.chunkSize = try ImportOptions.chunkSize(fromChunker: chunker)
        } catch {
            throw Terminal.badInput("--chunker", "\(error)")
        }
        let store = onlyHash ? nil : try repo.open()
        let importer: UnixFSImporter
        do {
            importer = try UnixFSImporter(options: options, sink: store)
        } catch {
            throw Terminal.badInput("options", "\(error)")
        }
        var roots: [CID] = []
        for path in paths {
            let bar = ProgressBar(title: "adding")
            let entries: [ImportedEntry]
            do {
                entries = try importer.add(FilePath(path), recursive: recursive) { progress in
                    bar.update(done: Int64(progress.bytesDone), total: Int64(progress.bytesTotal))
                }
            } catch {
                bar.finish()
                throw Terminal.badInput(path, "\(error)")
            }
            bar.finish()
            try store?.sync()
            for entry in entries where !quieter {
                print(quiet ? "\(entry.cid)" : "added \(entry.cid) \(entry.path)")
            }
            if let root = entries.last {
                if quieter { print(root.cid) }
                roots.append(root.cid)
            }
        }
        if let store { try store.addRoots(roots) }
    }
}

/// `--peer`, `--identity`: where `cat`, `get` and `export` fetch what the repository lacks
/// (Bitswap), and who this node is to them.
struct IPFSNetworkOptions: ParsableArguments {
    @Option(
        name: .customLong("peer"),
        help: "A node to fetch missing blocks from (/ip4/…/tcp/…/p2p/<peer ID>); repeat for more.")
    var peers: [Multiaddr] = []

    @Option(
        help: "A DHT peer to find providers through (/ip4/…/tcp/…/p2p/<peer ID>), or `public`; repeatable.")
    var bootstrap: [String] = []

    @Option(help: "The node's identity file (default: ~/.peerstack/identity, as `p2p id` shows).")
    var identity: String?

    /// Resolves `path` (CID/name/…) in `store` and runs `body` on the CID it names, with the
    /// blocks to read: the store itself when it holds the whole DAG; otherwise what the store
    /// lacks is fetched over Bitswap from the peers (the path's directories first, then the DAG
    /// under the target), and `body` runs on its own thread meanwhile, reading blocks as they
    /// arrive, so the export overlaps the fetch. `body`'s second argument says whether the
    /// network is used (the fetch shows the progress then).
    func export(
        _ path: String, store: FileBlockstore, limits: ExportLimits = ExportLimits(),
        _ body: @escaping @Sendable (CID, any BlockSource, Bool) throws -> Void
    ) async throws {
        let (target, fetch) = try await resolve(path, store: store, limits: limits)
        guard let fetch else { return try body(target, store, false) }
        let arriving = ArrivingBlocks(store)
        let exported: Task<Void, any Error> = Task {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    continuation.resume(with: Result { try body(target, arriving, true) })
                }
                thread.start()
            }
        }
        do {
            try await fetch { arriving.arrived() }
            arriving.finish(nil)
        } catch {
            arriving.finish(error)
            _ = try? await exported.value
            throw error
        }
        try await exported.value
    }

    /// The CID `path` names and, when the store lacks some of the DAG under it, the fetch of the
    /// rest (its argument is called as blocks are stored).
    private func resolve(_ path: String, store: FileBlockstore, limits: ExportLimits) async throws -> (
        CID, (@Sendable (@escaping @Sendable () -> Void) async throws -> Void)?
    ) {
        let exporter = UnixFSExporter(source: store, limits: limits)
        let (root, names) = try UnixFSExporter.parsePath(path)
        let dhtPeers = try IPFSDaemon.bootstrapPeers(bootstrap)
        guard !peers.isEmpty || !dhtPeers.isEmpty else { return (try exporter.resolve(root, names), nil) }
        // Everything here already: no network.
        if let target = try? exporter.resolve(root, names) {
            var dag = DAGFetch(root: target, maxBlocks: limits.maxBlocks)
            if (try? dag.start(store: store))?.isEmpty == true { return (target, nil) }
        }
        var options = try P2POptions.parse(identity.map { ["--identity", $0] } ?? [])
        options.json = false
        let host = try options.host()
        var configuration = BitswapNode.Configuration()
        configuration.maxBlocks = limits.maxBlocks
        let node = BitswapNode(
            host: host, store: store, configuration: configuration, log: { Terminal.status($0) })
        node.start()
        do {
            var connections: [Libp2pConnection] = []
            for peer in peers {
                do {
                    connections.append(try await host.connect(peer))
                } catch {
                    Terminal.status("could not connect to \(peer): \(error)")
                }
            }
            if !dhtPeers.isEmpty {
                // Providers of the root, found through the DHT (as a client: this node does not
                // serve the DHT while it fetches).
                var settings = KadDHT.Configuration()
                settings.node.server = false
                let dht = KadDHT(host: host, configuration: settings, log: { Terminal.status($0) })
                await dht.start()
                await dht.bootstrap(dhtPeers)
                let providers = await dht.findProviders(root.multihash)
                Terminal.status(
                    "DHT: \(providers.count) provider\(providers.count == 1 ? "" : "s") of \(root)")
                for provider in providers where provider.id != host.peerID {
                    for address in provider.addresses where (try? address.tcpEndpoint()) != nil {
                        let dialled = Multiaddr(
                            address.withoutPeer.components + [.p2p(provider.id.multihash.bytes)])
                        if let connection = try? await host.connect(dialled) {
                            connections.append(connection)
                            break
                        }
                    }
                }
                await dht.stop()
            }
            guard !connections.isEmpty else {
                throw IPFSError.badInput(
                    peers.isEmpty
                        ? "no provider of \(root) could be found or reached through the DHT"
                        : "none of the --peer nodes could be reached")
            }
            // The path's directories first, a block at a time, as resolving meets them.
            var target: CID?
            for _ in 0..<100_000 {
                do {
                    target = try exporter.resolve(root, names)
                    break
                } catch IPFSError.missingBlock(let cid) {
                    _ = try await node.fetch(cid, from: connections, follow: false)
                }
            }
            guard let target else { throw IPFSError.limitExceeded("resolving \(path) took 100000 fetches") }
            let sources = connections
            let fetch: @Sendable (@escaping @Sendable () -> Void) async throws -> Void = { arrived in
                do {
                    let bar = ProgressBar(title: "fetching")
                    let progress = try await node.fetch(target, from: sources) { progress in
                        bar.update(
                            done: Int64(progress.bytes), total: 0,
                            note:
                                "\(progress.blocks) blocks, \(progress.peers) peer\(progress.peers == 1 ? "" : "s")"
                        )
                        arrived()
                    }
                    bar.finish()
                    try store.sync()
                    if progress.fetchedBlocks > 0 {
                        Terminal.status(
                            "fetched \(progress.fetchedBlocks) blocks (\(Units.bytes(Int64(progress.fetchedBytes)))) "
                                + "of \(target) from \(progress.peers) peer\(progress.peers == 1 ? "" : "s")")
                    }
                    await host.close()
                } catch {
                    try? store.sync()
                    await host.close()
                    throw error
                }
            }
            return (target, fetch)
        } catch {
            try? store.sync()
            await host.close()
            throw error
        }
    }
}

struct IPFSCat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat", abstract: "Write a file's content to standard output, verifying every block.")

    @Argument(help: "CID or CID/path/in/directories.")
    var paths: [String]

    @OptionGroup var repo: RepoOptions
    @OptionGroup var limits: ExportLimitOptions
    @OptionGroup var network: IPFSNetworkOptions

    func run() async throws {
        let store = try repo.open()
        let limits = try limits.limits()
        for path in paths {
            do {
                try await network.export(path, store: store, limits: limits) { cid, blocks, _ in
                    try UnixFSExporter(source: blocks, limits: limits).cat(cid) { bytes in
                        _ = try FileDescriptor.standardOutput.writeAll(bytes)
                    }
                }
            } catch {
                throw Terminal.badInput(path, "\(error)")
            }
        }
    }
}

struct IPFSGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Write a file or directory tree to disk, verifying every block.")

    @Argument(help: "CID or CID/path/in/directories.")
    var path: String

    @Option(name: .shortAndLong, help: "Where to write it (default: its name, or the CID, here).")
    var output: String?

    @OptionGroup var repo: RepoOptions
    @OptionGroup var limits: ExportLimitOptions
    @OptionGroup var network: IPFSNetworkOptions

    func run() async throws {
        let store = try repo.open()
        let limits = try limits.limits()
        do {
            let (root, names) = try UnixFSExporter.parsePath(path)
            let destination = FilePath(output ?? names.last ?? root.description)
            try await network.export(path, store: store, limits: limits) { cid, blocks, fetching in
                // While a fetch runs, its bar shows the progress.
                let bar = fetching ? nil : ProgressBar(title: "getting")
                var done: Int64 = 0
                try UnixFSExporter(source: blocks, limits: limits).get(cid, to: destination) { count in
                    done += Int64(count)
                    bar?.update(done: done, total: 0)
                }
                bar?.finish()
                Terminal.status("saved \(cid) to \(destination)")
            }
        } catch {
            throw Terminal.badInput(path, "\(error)")
        }
    }
}

struct IPFSExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the DAG under a CID to a CARv1 file (root first, depth first).")

    @Argument(help: "The root CID.")
    var cid: String

    @Option(name: .shortAndLong, help: "The CAR file to write (default: <cid>.car).")
    var output: String?

    @OptionGroup var repo: RepoOptions
    @OptionGroup var network: IPFSNetworkOptions

    func run() async throws {
        let store = try repo.open()
        let output = self.output
        do {
            try await network.export(cid, store: store) { target, source, _ in
                let path = FilePath(output ?? "\(target).car")
                var blocks = 0
                try SmallFile.writeAtomically(to: path) { descriptor in
                    let writer = try CARWriter(descriptor: descriptor, roots: [target])
                    try UnixFSExporter(source: source).walk(target) { try writer.append($0, $1) }
                    try writer.flush()
                    blocks = writer.blocks
                }
                Terminal.status("exported \(blocks) blocks under \(target) to \(path)")
            }
        } catch let code as ExitCode {
            throw code
        } catch {
            throw Terminal.badInput(cid, "\(error)")
        }
    }
}

struct IPFSImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read CAR files (v1 or v2) into the repository; every block is checked against its CID.")

    @Argument(help: "CAR files.")
    var files: [String]

    @OptionGroup var repo: RepoOptions

    func run() throws {
        let store = try repo.open()
        for file in files {
            do {
                let descriptor = try FileDescriptor.open(FilePath(file), .readOnly, options: [.closeOnExec])
                defer { try? descriptor.close() }
                var reader = try CARReader(descriptor: descriptor)
                let count = try reader.importBlocks(into: store)
                try store.sync()
                try store.addRoots(reader.roots)
                for root in reader.roots {
                    print("imported root \(root) (\(count) blocks, CARv\(reader.version))")
                }
                if reader.roots.isEmpty { print("imported \(count) blocks (no roots)") }
            } catch {
                throw Terminal.badInput(file, "\(error)")
            }
        }
    }
}

struct IPFSVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Re-hash every block in the repository and report the corrupt ones.")

    @OptionGroup var repo: RepoOptions

    func run() throws {
        let store = try repo.open()
        let bar = ProgressBar(title: "verifying", unit: "blocks")
        let report = try store.verify { done, total in bar.update(done: Int64(done), total: Int64(total)) }
        bar.finish()
        for path in report.corrupt { print("corrupt \(path)") }
        for path in report.strays { print("stray \(path)") }
        print("\(report.checked) blocks checked, \(report.corrupt.count) corrupt")
        if !report.corrupt.isEmpty { throw ExitCode(1) }
    }
}

struct IPFSGC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove blocks not reachable from the recorded roots (those of add and import) or --keep.")

    @Option(help: "Another root to keep; repeat for more.")
    var keep: [String] = []

    @Flag(help: "Keep only --keep roots, and record them as the repository's roots.")
    var only = false

    @OptionGroup var repo: RepoOptions

    func run() throws {
        let store = try repo.open()
        var roots: [CID] = []
        for text in keep {
            do {
                roots.append(try CID(text))
            } catch {
                throw Terminal.badInput(text, "\(error)")
            }
        }
        if only {
            try store.setRoots(roots)
        } else {
            roots += try store.roots()
        }
        let report = try store.collectGarbage(keeping: roots)
        for cid in report.unreadable { print("unreadable \(cid)") }
        print("removed \(report.removed) blocks, kept \(report.kept)")
    }
}

struct IPFSCIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cid",
        abstract: "Explain a CID: version, codec, multihash, and its forms in other bases.")

    @Argument(help: "A CID in any multibase (or a v0 Qm… string).")
    var cids: [String]

    func run() throws {
        for text in cids {
            let cid: CID
            do {
                cid = try CID(text)
            } catch {
                throw Terminal.badInput(text, "\(error)")
            }
            let codec = cid.codec?.name ?? "unknown"
            let hash = cid.multihash.function?.name ?? "unknown"
            print("CID        \(text)")
            print("version    \(cid.version)")
            print("codec      \(codec) (0x\(String(cid.codecCode, radix: 16)))")
            print(
                "multihash  \(hash) (0x\(String(cid.multihash.code, radix: 16))), \(cid.multihash.digest.count) bytes"
            )
            print("digest     \(Multibase.base16.encode(cid.multihash.digest).dropFirst())")
            if let v0 = cid.v0 { print("CIDv0      \(v0)") }
            print("CIDv1      \(cid.v1.string(in: .base32)) (base32)")
            print("base36     \(cid.v1.string(in: .base36))")
            print("base58btc  \(cid.v1.string(in: .base58btc))")
        }
    }
}
