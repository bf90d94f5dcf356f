import ArgumentParser

@main
struct PeerStackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peerstack",
        abstract:
            "Peer-to-peer protocols: BitTorrent today; DHT, IPFS, eDonkey, Gnutella and a blockchain to come.",
        version: "0.1.0",
        subcommands: [TorrentCommand.self]
    )
}
