import ArgumentParser

struct TorrentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "torrent",
        abstract: "Create, inspect and check BitTorrent metainfo (.torrent files and magnet links).",
        subcommands: [
            TorrentCreate.self, TorrentInfo.self, TorrentVerify.self, TorrentGet.self, TorrentSeed.self,
        ]
    )
}
