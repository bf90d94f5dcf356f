import Foundation
import PeerNet
import SystemPackage
import Testing

@testable import BitTorrent

/// Two PeerStack clients on loopback under each pair of `--encryption` policies: who reaches
/// whom is what the README's table says.
@Suite("MSE/PE between PeerStack peers", .serialized)
struct EncryptionDriverTests {
    static let cases: [(EncryptionPolicy, EncryptionPolicy, Bool)] = [
        (.require, .prefer, true), (.prefer, .require, true), (.allow, .require, true),
        (.prefer, .disable, true), (.require, .require, true),
        (.disable, .require, false), (.require, .allow, false), (.require, .disable, false),
    ]

    @Test(
        "seeder and leecher policies: a download completes exactly where both sides allow a common way",
        arguments: cases)
    func policies(seed: EncryptionPolicy, get: EncryptionPolicy, reaches: Bool) async throws {
        let (metainfo, root) = try DriverTests.seedData(size: 300_000)
        defer { try? FileManager.default.removeItem(at: root) }
        var seedOptions = TorrentClientOptions(directory: FilePath(root.appendingPathComponent("seed").path))
        seedOptions.listenHost = "127.0.0.1"
        seedOptions.listenPort = 0
        seedOptions.seed = true
        seedOptions.encryption = seed
        let port = PortBox()
        let seeder = TorrentClient(metainfo: metainfo, options: seedOptions)
        let seeding = Task { try await seeder.run(onListening: { port.set($0) }, onEvent: { _ in }) }
        defer { seeding.cancel() }
        var options = TorrentClientOptions(directory: FilePath(root.appendingPathComponent("get").path))
        options.listenHost = "127.0.0.1"
        options.listenPort = 0
        options.encryption = get
        options.peers = [Endpoint("127.0.0.1:\(try await port.wait())")!]
        let leecher = TorrentClient(metainfo: metainfo, options: options)
        // A download that can happen takes well under a second here; one that cannot has had
        // several dials (and the fallback to plaintext) by the deadline.
        let finished = try await finishes(leecher, within: reaches ? 30 : 4)
        #expect(finished == reaches, "seeder \(seed), leecher \(get)")
    }
}
