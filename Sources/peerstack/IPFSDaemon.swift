import ArgumentParser
import Foundation
import IPFS
import Libp2p
import Multiformats
import PeerCrypto

/// `peerstack ipfs daemon`: a long-running IPFS node that serves the repository over Bitswap,
/// takes part in the IPFS DHT as a server and provides the repository's roots there.
struct IPFSDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract:
            "Run an IPFS node until Ctrl-C: serve the repository's blocks over Bitswap and provide its roots on the DHT.",
        discussion: """
            Nothing is contacted that was not named: --bootstrap dials the given peers, and \
            `--bootstrap public` names the public IPFS bootstrap peers.
            """)

    /// The public bootstrap peers of Kubo's default configuration that have a fixed address
    /// (the `/dnsaddr/bootstrap.libp2p.io` ones need DNS TXT lookups, which PeerStack does not do).
    static let publicBootstrap = [
        "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ"
    ]

    /// The `--bootstrap` values as multiaddrs (`public`: ``publicBootstrap``).
    static func bootstrapPeers(_ entries: [String]) throws -> [Multiaddr] {
        var peers: [Multiaddr] = []
        for entry in entries {
            if entry == "public" {
                peers += try publicBootstrap.map { try Multiaddr($0) }
            } else {
                guard let address = try? Multiaddr(entry) else {
                    throw ValidationError("--bootstrap: '\(entry)' is not a multiaddr (or `public`)")
                }
                peers.append(address)
            }
        }
        return peers
    }

    @OptionGroup var repo: RepoOptions
    @OptionGroup var options: P2POptions

    @Option(help: "Address to listen on (repeatable; port 0: any free port).")
    var listen: [Multiaddr] = [P2POptions.defaultListen]

    @Option(help: "A peer to dial at start (/ip4/…/tcp/…/p2p/<peer ID>), or `public`; repeatable.")
    var bootstrap: [String] = []

    func run() async throws {
        let store = try repo.open()
        let peers = try Self.bootstrapPeers(bootstrap)
        let host = try options.host()
        let node = BitswapNode(host: host, store: store, log: { Terminal.status($0) })
        node.start()
        for address in listen {
            do {
                try await host.listen(address)
            } catch {
                throw Terminal.badInput("--listen \(address)", "\(error)")
            }
        }
        // One write, so that a program reading the pipe sees whole lines at once.
        let lines =
            "peer \(host.peerID)\n" + host.listenAddresses.map { "listening on \($0)\n" }.joined()
        FileHandle.standardOutput.write(Data(lines.utf8))
        Terminal.status(
            "serving \(store.root) over Bitswap (\(BitswapNode.protocolIDs.joined(separator: ", ")))")
        // The DHT: served (server mode), bootstrapped from the named peers only.
        let dht = KadDHT(host: host, log: { Terminal.status($0) })
        await dht.start()
        if !peers.isEmpty {
            let joined = await dht.bootstrap(peers)
            Terminal.status("DHT: \(joined) peer\(joined == 1 ? "" : "s") in the routing table")
        }
        let roots = (try? store.roots()) ?? []
        let provider = Task {
            var told = 0
            for root in roots where !Task.isCancelled { told = max(told, await dht.provide(root.multihash)) }
            if !roots.isEmpty {
                Terminal.status(
                    "provided \(roots.count) root\(roots.count == 1 ? "" : "s") to \(told) DHT peers")
            }
        }
        let control = try await DaemonControl.serve(at: DaemonControl.path(store)) { request in
            await Self.control(request, host: host, dht: dht)
        }
        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        defer { interrupts.forEach { $0.cancel() } }
        for await _ in stop.stream {}
        provider.cancel()
        control.cancel()
        await dht.stop()
        Terminal.status("stopping (served \(await node.servedBlocks) blocks)")
        await host.close()
    }

    /// Answers `ipfs swarm` and `ipfs routing` for this node (``DaemonControl``).
    static func control(_ request: DaemonControl.Request, host: Libp2pHost, dht: KadDHT) async
        -> DaemonControl.Response
    {
        var response = DaemonControl.Response()
        do {
            switch request.verb {
            case "swarm.connect":
                for text in request.arguments {
                    let connection = try await host.connect(try Multiaddr(text))
                    response.lines.append("connect \(connection.remotePeer) success")
                }
            case "swarm.peers":
                response.lines = host.connections.compactMap { connection in
                    connection.remoteAddress.map { "\($0.withoutPeer)/p2p/\(connection.remotePeer)" }
                }.sorted()
            case "routing.findprovs":
                let cid = try CID(request.arguments.first ?? "")
                let count = request.arguments.dropFirst().first.flatMap { Int($0) } ?? 20
                let providers = await dht.findProviders(cid.multihash, limit: max(1, count))
                guard !providers.isEmpty else { throw IPFSError.badInput("no provider of \(cid) was found") }
                response.lines = providers.map(\.id.description)
            case "routing.findpeer":
                let peer = try PeerID(request.arguments.first ?? "")
                response.lines = try await dht.findPeer(peer).map(\.description)
            case "routing.provide":
                let cid = try CID(request.arguments.first ?? "")
                let told = await dht.provide(cid.multihash)
                guard told > 0 else { throw IPFSError.badInput("no DHT peer took the provider record") }
                response.lines = ["provided \(cid) to \(told) DHT peer\(told == 1 ? "" : "s")"]
            default:
                throw IPFSError.badInput("the daemon does not know '\(request.verb)'")
            }
        } catch {
            response.error = "\(error)"
        }
        return response
    }
}
