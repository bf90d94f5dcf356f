import ArgumentParser
import BitTorrent
import Foundation

struct TorrentInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show what a .torrent file or magnet link holds."
    )

    @Argument(help: "A .torrent file or a magnet link.")
    var source: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        if source.lowercased().hasPrefix("magnet:") {
            let magnet: MagnetLink
            do {
                magnet = try MagnetLink(parsing: source)
            } catch {
                throw Terminal.badInput("magnet link", error)
            }
            try show(magnet)
            return
        }
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(contentsOf: .init(source))
        } catch {
            throw Terminal.badInput(source, error)
        }
        try show(metainfo)
    }

    private func show(_ metainfo: Metainfo) throws {
        let info = metainfo.info
        if json {
            let files = info.files.map { file in
                FileJSON(
                    path: info.relativePath(of: file).joined(separator: "/"), length: file.length,
                    offset: file.offset,
                    padding: file.isPadding, attributes: file.attributes.attr)
            }
            let document = TorrentJSON(
                name: info.name, infoHash: metainfo.infoHash.hex, metaVersion: info.version.rawValue,
                infoHashV1: metainfo.infoHashV1?.hex, infoHashV2: metainfo.infoHashV2?.hex,
                magnet: metainfo.magnetLink.uri,
                totalLength: info.totalLength, pieceLength: info.pieceLength, pieceCount: info.pieceCount,
                private: info.isPrivate, multiFile: info.isMultiFile, trackers: metainfo.trackerTiers,
                webSeeds: metainfo.webSeeds, comment: metainfo.comment, createdBy: metainfo.createdBy,
                creationDate: metainfo.creationDate, files: files)
            try printJSON(document)
            return
        }
        let dataFiles = info.files.filter { !$0.isPadding }
        print("name:         \(info.name)")
        print("version:      \(info.version.rawValue)")
        if let v1 = metainfo.infoHashV1 { print("info-hash:    \(v1.hex)") }
        if let v2 = metainfo.infoHashV2 {
            print(
                "info-hash v2: \(v2.hex)\(info.version == .v2 ? " (on the wire: \(v2.truncated.hex))" : "")")
        }
        print("magnet:       \(metainfo.magnetLink.uri)")
        print(
            "size:         \(Units.bytes(info.totalLength)) (\(info.totalLength) bytes) in \(dataFiles.count) file\(dataFiles.count == 1 ? "" : "s")"
        )
        print("pieces:       \(info.pieceCount) × \(Units.bytes(Int64(info.pieceLength)))")
        print("private:      \(info.isPrivate ? "yes" : "no")")
        for (index, tier) in metainfo.trackerTiers.enumerated() {
            print(index == 0 ? "trackers:     " : "              ", terminator: "")
            print("tier \(index + 1): " + tier.joined(separator: ", "))
        }
        for (index, seed) in metainfo.webSeeds.enumerated() {
            print(index == 0 ? "web seeds:    \(seed)" : "              \(seed)")
        }
        if let comment = metainfo.comment { print("comment:      \(comment)") }
        if let createdBy = metainfo.createdBy { print("created by:   \(createdBy)") }
        if let date = metainfo.creationDate {
            print(
                "created:      \(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(date))))"
            )
        }
        print("files:")
        for file in info.files {
            let size = Units.bytes(file.length).padding(toLength: 12, withPad: " ", startingAt: 0)
            let note = file.isPadding ? "  (padding)" : ""
            print("  \(size)\(info.relativePath(of: file).joined(separator: "/"))\(note)")
        }
    }

    private func show(_ magnet: MagnetLink) throws {
        if json {
            let document = MagnetJSON(
                infoHash: magnet.infoHash?.hex,
                infoHashV2: magnet.v2InfoHash?.hex,
                name: magnet.displayName, trackers: magnet.trackers, peers: magnet.peers,
                webSeeds: magnet.webSeeds,
                selectOnly: magnet.selectOnly.map { [$0.lowerBound, $0.upperBound] }, magnet: magnet.uri)
            try printJSON(document)
            return
        }
        if let hash = magnet.infoHash { print("info-hash:    \(hash.hex)") }
        if let v2 = magnet.v2InfoHash { print("info-hash v2: \(v2.hex)") }
        if let name = magnet.displayName { print("name:         \(name)") }
        for tracker in magnet.trackers { print("tracker:      \(tracker)") }
        for peer in magnet.peers { print("peer:         \(peer)") }
        for seed in magnet.webSeeds { print("web seed:     \(seed)") }
        print("magnet:       \(magnet.uri)")
    }
}

struct FileJSON: Codable {
    var path: String
    var length: Int64
    var offset: Int64
    var padding: Bool
    var attributes: String
}

struct TorrentJSON: Codable {
    var name: String
    /// The 20 bytes peers, trackers and the DHT know the torrent by.
    var infoHash: String
    /// `v1`, `v2` or `hybrid` (BEP 52).
    var metaVersion: String
    var infoHashV1: String?
    var infoHashV2: String?
    var magnet: String
    var totalLength: Int64
    var pieceLength: Int
    var pieceCount: Int
    var `private`: Bool
    var multiFile: Bool
    var trackers: [[String]]
    var webSeeds: [String]
    var comment: String?
    var createdBy: String?
    var creationDate: Int64?
    var files: [FileJSON]
}

struct MagnetJSON: Codable {
    var infoHash: String?
    var infoHashV2: String?
    var name: String?
    var trackers: [String]
    var peers: [String]
    var webSeeds: [String]
    var selectOnly: [[Int]]
    var magnet: String
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
