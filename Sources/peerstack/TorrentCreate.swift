import ArgumentParser
import BitTorrent
import Foundation

struct TorrentCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make a .torrent (v1, or with --v2/--hybrid BEP 52) from a file or directory.",
        discussion: """
            Files in a directory are taken in byte order of their names, level by level, so the
            same tree always gives the same torrent. The piece length is chosen as libtorrent
            chooses it unless given. Hashing runs on all cores. Prints the info-hash(es) and a
            magnet link. A hybrid torrent is read by v1-only clients and by v2 ones alike; a
            v2-only torrent only by v2 clients (libtorrent 2, qBittorrent 4.4 and later).
            """
    )

    @Argument(help: "The file or directory to share.")
    var path: String

    @Option(
        name: [.customShort("t"), .customLong("tracker")],
        help: "Tracker announce URL; repeat for more (each its own tier).")
    var trackers: [String] = []

    @Option(
        help:
            "Piece length: 'auto', or bytes as a power of two from 16 KiB to 256 MiB (e.g. 262144, 256K, 1M)."
    )
    var pieceLength: String = "auto"

    @Flag(help: "Mark the torrent private (BEP 27): peers only from its trackers.")
    var `private` = false

    @Option(help: "A comment stored in the torrent.")
    var comment: String?

    @Option(name: .customLong("web-seed"), help: "A web seed URL (BEP 19); repeat for more.")
    var webSeeds: [String] = []

    @Option(
        name: .shortAndLong,
        help: "Where to write the torrent (default: <name>.torrent in the current directory).")
    var output: String?

    @Option(help: "Hashing threads (default: one per core).")
    var threads: Int?

    @Flag(help: "Leave out the creation date, so the same files always give the same bytes.")
    var noDate = false

    @Flag(name: .customLong("v2"), help: "Make a v2-only torrent (BEP 52: SHA-256 merkle trees per file).")
    var v2 = false

    @Flag(help: "Make a hybrid torrent: v1 and v2 views of the same files, pad files aligning each file.")
    var hybrid = false

    func run() async throws {
        let source: SourceFiles
        do {
            source = try TorrentCreator.scan(path)
        } catch {
            throw Terminal.badInput(path, error)
        }
        var options = TorrentCreationOptions()
        guard !(v2 && hybrid) else { throw Terminal.badInput("--v2 and --hybrid", "choose one") }
        options.version = v2 ? .v2 : hybrid ? .hybrid : .v1
        if pieceLength != "auto" {
            guard let length = Self.parseSize(pieceLength) else {
                throw Terminal.badInput(
                    "--piece-length", "'\(pieceLength)' is not 'auto' or a size such as 256K")
            }
            options.pieceLength = length
        }
        options.trackerTiers = trackers.map { [$0] }
        options.webSeeds = webSeeds
        options.isPrivate = `private`
        options.comment = comment
        options.createdBy = "PeerStack/0.1.0"
        options.creationDate = noDate ? nil : Int64(Date().timeIntervalSince1970)
        if let threads { options.workers = max(1, threads) }

        let total = source.totalLength
        let bar = ProgressBar(title: "hashing")
        let metainfo: Metainfo
        do {
            metainfo = try await TorrentCreator.create(from: source, options: options) { bar.update($0) }
        } catch {
            bar.finish()
            throw Terminal.badInput(path, error)
        }
        let seconds = bar.finish()

        let destination = output ?? (source.name + ".torrent")
        do {
            try Data(metainfo.encoded()).write(to: URL(fileURLWithPath: destination), options: .atomic)
        } catch {
            Terminal.error("\(destination): cannot write: \(error.localizedDescription)")
            throw ExitCode(1)
        }
        let info = metainfo.info
        Terminal.status(
            "hashed \(Units.bytes(total)) in \(source.files.count) file\(source.files.count == 1 ? "" : "s"), "
                + "\(info.pieceCount) pieces of \(Units.bytes(Int64(info.pieceLength))), "
                + "in \(String(format: "%.2f", seconds)) s (\(Units.rate(seconds > 0 ? Double(total) / seconds : 0)))"
        )
        print("torrent:   \(destination)")
        if let v1 = metainfo.infoHashV1 { print("info-hash: \(v1.hex)") }
        if let v2 = metainfo.infoHashV2 { print("info-hash v2: \(v2.hex)") }
        print("magnet:    \(metainfo.magnetLink.uri)")
    }

    /// `262144`, `256K`, `256KiB`, `1M`, `1MiB`, `2G` → bytes.
    static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased()
        let digits = lower.prefix { $0.isNumber }
        guard let value = Int(digits) else { return nil }
        switch lower.dropFirst(digits.count) {
        case "", "b": return value
        case "k", "kb", "kib": return value << 10
        case "m", "mb", "mib": return value << 20
        case "g", "gb", "gib": return value << 30
        default: return nil
        }
    }
}
