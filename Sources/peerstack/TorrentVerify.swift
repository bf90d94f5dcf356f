import ArgumentParser
import BitTorrent
import Foundation

struct TorrentVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check downloaded data against a .torrent's piece hashes.",
        discussion: """
            The data is looked for as a torrent client saves it: <dir>/<name> for a single
            file, <dir>/<name>/<path> for a directory. Exit status: 0 when every piece is good,
            1 when data is missing or wrong, 2 on bad input.
            """
    )

    @Argument(help: "The .torrent file.")
    var torrent: String

    @Argument(help: "The directory holding the torrent's data.")
    var directory: String

    @Option(help: "Hashing threads (default: one per core).")
    var threads: Int?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(contentsOf: .init(torrent))
        } catch {
            throw Terminal.badInput(torrent, error)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw Terminal.badInput(directory, "not a directory")
        }
        // v2 pieces are checked by merkle hashes (BEP 52); a file longer than a piece needs its
        // piece layer, which a torrent may leave out (a download fetches it from peers).
        if metainfo.info.version == .v2 {
            let merkle = MerklePieces(info: metainfo.info, pieceLayers: metainfo.pieceLayers)
            let missing = merkle.files.filter { $0.needsLayer && $0.layer == nil }.count
            guard missing == 0 else {
                throw Terminal.badInput(
                    torrent,
                    "a v2-only torrent without the piece layers of \(missing) file(s): their pieces cannot be checked"
                )
            }
        }
        let bar = ProgressBar(title: "checking")
        let report = await TorrentVerifier.verify(
            metainfo, in: .init(directory), workers: threads ?? Machine.coreCount
        ) { bar.update($0) }
        bar.finish()

        if json {
            let files = report.files.map {
                VerifiedFileJSON(
                    path: $0.path.joined(separator: "/"), length: $0.length, verifiedBytes: $0.verifiedBytes,
                    exists: $0.exists, complete: $0.isComplete)
            }
            try printJSON(
                VerifyJSON(
                    infoHash: metainfo.infoHash.hex, pieceCount: report.goodPieces.count,
                    goodPieces: report.goodPieceCount, complete: report.isComplete, files: files))
        } else {
            for file in report.files {
                let percent = file.length == 0 ? 100 : Double(file.verifiedBytes) * 100 / Double(file.length)
                let state = !file.exists && file.length > 0 ? "missing" : String(format: "%5.1f%%", percent)
                print(
                    "  \(state.padding(toLength: 8, withPad: " ", startingAt: 0)) \(Units.bytes(file.length).padding(toLength: 11, withPad: " ", startingAt: 0)) \(file.path.joined(separator: "/"))"
                )
            }
            print(
                "\(report.goodPieceCount) of \(report.goodPieces.count) pieces good: "
                    + (report.isComplete ? "complete" : "incomplete"))
        }
        if !report.isComplete { throw ExitCode(1) }
    }
}

struct VerifiedFileJSON: Codable {
    var path: String
    var length: Int64
    var verifiedBytes: Int64
    var exists: Bool
    var complete: Bool
}

struct VerifyJSON: Codable {
    var infoHash: String
    var pieceCount: Int
    var goodPieces: Int
    var complete: Bool
    var files: [VerifiedFileJSON]
}
