import ArgumentParser
import Foundation
import IPFS
import Libp2p
import Multiformats
import PeerCrypto

/// `peerstack ipfs routing findprovs|findpeer|provide`: the IPFS DHT, as Kubo's verbs of that
/// name. With a daemon serving the repository (and no `--bootstrap`), the daemon's node does the
/// work; otherwise each runs a node of its own for the command's length that joins the DHT
/// through the `--bootstrap` peers (nothing else is contacted).
struct IPFSRouting: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing",
        abstract: "Find providers and peers on the IPFS DHT, or announce content there.",
        subcommands: [FindProviders.self, FindPeer.self, Provide.self])

    /// `--bootstrap`, `--identity`, `--listen`: the command's own DHT node.
    struct DHTOptions: ParsableArguments {
        @Option(help: "A DHT peer to join through (/ip4/…/tcp/…/p2p/<peer ID>), or `public`; repeatable.")
        var bootstrap: [String] = []

        @Option(help: "The node's identity file (default: ~/.peerstack/identity, as `p2p id` shows).")
        var identity: String?

        /// A host and a DHT node (a client unless `listen` is given), bootstrapped.
        func join(listen: [Multiaddr] = []) async throws -> (Libp2pHost, KadDHT) {
            let peers = try IPFSDaemon.bootstrapPeers(bootstrap)
            guard !peers.isEmpty else {
                throw ValidationError(
                    "name a DHT peer with --bootstrap <multiaddr> (or `--bootstrap public`)")
            }
            var options = try P2POptions.parse(identity.map { ["--identity", $0] } ?? [])
            options.json = false
            let host = try options.host()
            for address in listen { try await host.listen(address) }
            var settings = KadDHT.Configuration()
            settings.node.server = !listen.isEmpty
            let dht = KadDHT(host: host, configuration: settings, log: { Terminal.status($0) })
            await dht.start()
            let joined = await dht.bootstrap(peers)
            guard joined > 0 else {
                await host.close()
                throw IPFSError.badInput("none of the --bootstrap peers answered as a DHT server")
            }
            return (host, dht)
        }
    }

    struct FindProviders: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "findprovs", abstract: "Print the peer IDs of the DHT's providers of a CID.")

        @Argument(help: "The CID.")
        var cid: String

        @Option(name: [.customShort("n"), .customLong("num-providers")], help: "Stop after this many.")
        var count = 20

        @Flag(help: "Print each provider with its addresses, as JSON lines.")
        var json = false

        @OptionGroup var repo: RepoOptions
        @OptionGroup var dht: DHTOptions

        func run() async throws {
            let target = try CID(cid)
            if dht.bootstrap.isEmpty, !json,
                try await DaemonControl.run(
                    .init(verb: "routing.findprovs", arguments: [target.description, "\(count)"]),
                    store: try repo.open())
            {
                return
            }
            let (host, node) = try await dht.join()
            let providers = await node.findProviders(target.multihash, limit: max(1, count))
            await host.close()
            guard !providers.isEmpty else { throw IPFSError.badInput("no provider of \(target) was found") }
            for provider in providers {
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    let line = try encoder.encode(
                        ProviderLine(
                            id: provider.id.description, addresses: provider.addresses.map(\.description)))
                    print(String(decoding: line, as: UTF8.self))
                } else {
                    print(provider.id)
                }
            }
        }
    }

    struct ProviderLine: Encodable {
        var id: String
        var addresses: [String]
    }

    struct FindPeer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "findpeer", abstract: "Print the addresses of a peer, as the DHT knows them.")

        @Argument(help: "The peer ID (12D3Koo…, Qm…).")
        var peer: String

        @OptionGroup var repo: RepoOptions
        @OptionGroup var dht: DHTOptions

        func run() async throws {
            let id = try PeerID(peer)
            if dht.bootstrap.isEmpty,
                try await DaemonControl.run(
                    .init(verb: "routing.findpeer", arguments: [peer]), store: try repo.open())
            {
                return
            }
            let (host, node) = try await dht.join()
            defer { Task { await host.close() } }
            for address in try await node.findPeer(id) { print(address) }
        }
    }

    struct Provide: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "provide",
            abstract: "Announce on the DHT that this node provides a CID the repository holds.",
            discussion: """
                With a daemon serving the repository, the daemon announces it (and again every 22 \
                hours). Without, this command's own node does, naming its --listen addresses, and \
                the record lasts 48 hours; run `peerstack ipfs daemon` to serve the blocks.
                """)

        @Argument(help: "The CID.")
        var cid: String

        @Option(help: "Address to listen on while announcing (repeatable).")
        var listen: [Multiaddr] = [P2POptions.defaultListen]

        @OptionGroup var repo: RepoOptions
        @OptionGroup var dht: DHTOptions

        func run() async throws {
            let target = try CID(cid)
            let store = try repo.open()
            guard store.has(target) else {
                throw IPFSError.badInput(
                    "\(target) is not in \(store.root): only blocks held here can be provided")
            }
            if dht.bootstrap.isEmpty,
                try await DaemonControl.run(
                    .init(verb: "routing.provide", arguments: [target.description]), store: store)
            {
                return
            }
            let (host, node) = try await dht.join(listen: listen)
            let told = await node.provide(target.multihash)
            await host.close()
            guard told > 0 else { throw IPFSError.badInput("no DHT peer took the provider record") }
            Terminal.status("provided \(target) to \(told) DHT peer\(told == 1 ? "" : "s")")
        }
    }
}

/// `peerstack ipfs swarm connect|peers`: the running daemon's connections, as Kubo's verbs.
struct IPFSSwarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm", abstract: "Connect the running daemon to peers, or list its connections.",
        subcommands: [Connect.self, Peers.self])

    static func daemon(_ request: DaemonControl.Request, repo: RepoOptions) async throws {
        let store = try repo.open()
        guard try await DaemonControl.run(request, store: store) else {
            throw IPFSError.badInput("no daemon serves \(store.root): start `peerstack ipfs daemon` first")
        }
    }

    struct Connect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connect", abstract: "Have the daemon connect to peers (/ip4/…/tcp/…/p2p/<peer ID>)."
        )

        @Argument(help: "The peers' multiaddrs.")
        var addresses: [Multiaddr]

        @OptionGroup var repo: RepoOptions

        func run() async throws {
            try await IPFSSwarm.daemon(
                .init(verb: "swarm.connect", arguments: addresses.map(\.description)), repo: repo)
        }
    }

    struct Peers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "peers",
            abstract: "List the daemon's connections, one multiaddr with /p2p/<peer ID> a line.")

        @OptionGroup var repo: RepoOptions

        func run() async throws {
            try await IPFSSwarm.daemon(.init(verb: "swarm.peers"), repo: repo)
        }
    }
}
