import Foundation
import Testing

@Suite("peerstack ipfs add|cat|get|export|import|verify|cid|gc")
struct IPFSCommandTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-ipfs-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("planets"), withIntermediateDirectories: true)
        try Data("Hello Mars!\n".utf8).write(to: root.appendingPathComponent("planets/mars.txt"))
        try Data("Hello Venus!\n".utf8).write(to: root.appendingPathComponent("planets/venus.txt"))
        try Data((0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(
            to: root.appendingPathComponent("planets/big.bin"))
    }

    func run(_ arguments: [String]) throws -> CommandResult {
        try peerstack(["ipfs"] + arguments, in: root)
    }

    @Test("add prints Kubo's lines; cat, get, export and import move the same bytes; verify finds damage")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let added = try run(["add", "-r", "--repo", "repo", "planets/mars.txt", "planets"])
        #expect(added.status == 0, "\(added.stderr)")
        let lines = added.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "added QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN mars.txt")
        #expect(lines.contains("added QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4 planets/venus.txt"))
        let rootCID = try #require(lines.last?.split(separator: " ")[1]).description
        #expect(lines.last?.hasSuffix(" planets") == true)

        let only = try run(["add", "-Q", "-n", "--cid-version", "1", "planets/mars.txt"])
        #expect(only.stdout == "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4\n")

        let cat = try run(["cat", "--repo", "repo", "/ipfs/\(rootCID)/venus.txt"])
        #expect(cat.status == 0 && cat.stdout == "Hello Venus!\n", "\(cat.stderr)")

        let get = try run(["get", "--repo", "repo", rootCID, "-o", "copy"])
        #expect(get.status == 0, "\(get.stderr)")
        #expect(
            try Data(contentsOf: root.appendingPathComponent("copy/big.bin"))
                == Data(contentsOf: root.appendingPathComponent("planets/big.bin")))

        let export = try run(["export", "--repo", "repo", rootCID, "-o", "planets.car"])
        #expect(export.status == 0, "\(export.stderr)")
        let imported = try run(["import", "--repo", "other", "planets.car"])
        #expect(
            imported.status == 0 && imported.stdout.contains("imported root \(rootCID)"), "\(imported.stderr)"
        )
        let again = try run(["cat", "--repo", "other", "\(rootCID)/mars.txt"])
        #expect(again.stdout == "Hello Mars!\n")

        let clean = try run(["verify", "--repo", "other"])
        #expect(clean.status == 0 && clean.stdout.contains("0 corrupt"), "\(clean.stdout)")

        // Damage one block file: verify reports it and exits 1; cat names the CID.
        let blocks = root.appendingPathComponent("other/blocks")
        let files = try FileManager.default.subpathsOfDirectory(atPath: blocks.path).filter {
            $0.hasSuffix(".data")
        }
        let victim = try #require(files.first)
        try Data("not the block".utf8).write(to: blocks.appendingPathComponent(victim))
        let damaged = try run(["verify", "--repo", "other"])
        #expect(damaged.status == 1 && damaged.stdout.contains("corrupt "), "\(damaged.stdout)")

        // A CAR with a changed byte is refused, naming the block.
        var car = try Data(contentsOf: root.appendingPathComponent("planets.car"))
        car[car.count - 3] ^= 0x55
        try car.write(to: root.appendingPathComponent("bad.car"))
        let refused = try run(["import", "--repo", "third", "bad.car"])
        #expect(
            refused.status != 0 && refused.stderr.contains("does not match its hash"), "\(refused.stderr)")

        // gc keeps what add recorded, drops the rest when told to keep only one root.
        let kept = try run(["gc", "--repo", "repo"])
        #expect(kept.status == 0 && kept.stdout.contains("removed 0 blocks"), "\(kept.stdout)")
        let pruned = try run([
            "gc", "--repo", "repo", "--only", "--keep", "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN",
        ])
        #expect(pruned.stdout.contains("kept 1"), "\(pruned.stdout)")
    }

    @Test func cidExplains() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let result = try run(["cid", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("version    0"))
        #expect(result.stdout.contains("codec      dag-pb (0x70)"))
        #expect(result.stdout.contains("multihash  sha2-256 (0x12), 32 bytes"))
        #expect(result.stdout.contains("CIDv1      bafybei"))
        let bad = try run(["cid", "Qmnope"])
        #expect(bad.status == 2 && bad.stderr.contains("Qmnope"))
    }
}
