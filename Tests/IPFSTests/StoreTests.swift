import Foundation
import IPFS
import Multiformats
import SystemPackage
import TestSupport
import Testing

@Suite struct ExporterTests {
    @Test(
        "every layout and leaf kind reads back byte for byte",
        arguments: [
            (ImportOptions.Layout.balanced, 0, nil as Bool?), (.balanced, 1, nil), (.trickle, 0, nil),
            (.trickle, 1, nil),
            (.balanced, 0, true),
        ], [0, 1, 7, 100, 1_001])
    func roundTrip(shape: (layout: ImportOptions.Layout, version: Int, raw: Bool?), size: Int) throws {
        let (layout, version, raw) = shape
        let store = MemoryBlockstore()
        // Tiny chunks and few links, so that small files make deep trees.
        let options = importOptions {
            $0.layout = layout
            $0.cidVersion = version
            $0.rawLeaves = raw
            $0.chunkSize = 8
            $0.maxLinks = 3
        }
        let bytes = SeededGenerator.bytes(size, seed: UInt64(size))
        let root = try UnixFSImporter(options: options, sink: store).addFile(bytes: bytes)
        #expect(root.fileSize == UInt64(size))
        var out: [UInt8] = []
        let count = try UnixFSExporter(source: store).cat(root.cid) { out += $0 }
        #expect(out == bytes)
        #expect(count == UInt64(size))
        // Tsize counts every block once.
        var total: UInt64 = 0
        try UnixFSExporter(source: store).walk(root.cid) { total += UInt64($1.count) }
        #expect(total == root.tsize)
    }

    @Test("a trickle DAG has the go-unixfs shape: leaves, then 4 subtrees per depth")
    func trickleShape() throws {
        let store = MemoryBlockstore()
        let options = importOptions {
            $0.layout = .trickle
            $0.chunkSize = 1
            $0.maxLinks = 2
        }
        // 2 leaves at the root, then 4 subtrees of depth 1 (2 leaves each), then depth 2 subtrees.
        let root = try UnixFSImporter(options: options, sink: store).addFile(
            bytes: Array(repeating: 7, count: 12))
        guard case .dagPB(let node, _) = try UnixFSExporter(source: store).node(root.cid) else {
            Issue.record("root is not dag-pb")
            return
        }
        #expect(node.links.count == 7)
        let sizes = node.links.map { link -> UInt64 in
            var bytes: UInt64 = 0
            _ = try? UnixFSExporter(source: store).cat(link.cid) { bytes += UInt64($0.count) }
            return bytes
        }
        #expect(sizes == [1, 1, 2, 2, 2, 2, 2])
    }

    @Test func corruptAndMissingBlocksAreNamed() throws {
        let store = MemoryBlockstore()
        let options = importOptions { $0.chunkSize = 4 }
        let root = try UnixFSImporter(options: options, sink: store).addFile(bytes: Array(0..<20))
        guard case .dagPB(let node, _) = try UnixFSExporter(source: store).node(root.cid) else {
            Issue.record("root is not dag-pb")
            return
        }
        let leaf = node.links[2].cid
        store.corrupt(leaf, with: [1, 2, 3])
        #expect(throws: IPFSError.hashMismatch(leaf)) {
            try UnixFSExporter(source: store).cat(root.cid) { _ in }
        }
        let empty = MemoryBlockstore()
        #expect(throws: IPFSError.missingBlock(root.cid)) {
            try UnixFSExporter(source: empty).cat(root.cid) { _ in }
        }
    }

    @Test func pathsDirectoriesAndGet() throws {
        let tree = try TemporaryTree([
            "site/index.html": "<p>hi</p>\n", "site/css/a.css": "p{}", "site/.well-known": "x",
        ])
        defer { tree.remove() }
        let store = MemoryBlockstore()
        let root = try #require(
            try UnixFSImporter(options: importOptions { $0.includeHidden = true }, sink: store)
                .add(tree.path("site"), recursive: true).last
        ).cid
        let exporter = UnixFSExporter(source: store)
        let (parsed, names) = try UnixFSExporter.parsePath("/ipfs/\(root)/css/a.css")
        #expect(parsed == root && names == ["css", "a.css"])
        var out: [UInt8] = []
        try exporter.cat(try exporter.resolve(root, names)) { out += $0 }
        #expect(out == Array("p{}".utf8))
        #expect(throws: IPFSError.noSuchLink("nope", in: root)) { try exporter.resolve(root, ["nope"]) }
        #expect(throws: IPFSError.self) { try exporter.cat(root) { _ in } }
        #expect(try exporter.list(root).map(\.name) == [".well-known", "css", "index.html"])

        let destination = tree.path("copy")
        try exporter.get(root, to: destination)
        #expect(
            try String(contentsOfFile: destination.appending("css/a.css").string, encoding: .utf8) == "p{}")
        #expect(throws: (any Error).self) { try exporter.get(root, to: destination) }  // exists already
    }

    @Test("a directory past the sharding threshold is a HAMT and reads back whole")
    func importedHAMT() throws {
        var files: [String: String] = [:]
        for index in 0..<300 { files["big/entry-\(index).txt"] = "content \(index)" }
        let tree = try TemporaryTree(files)
        defer { tree.remove() }
        let store = MemoryBlockstore()
        let options = importOptions { $0.shardingThreshold = 2_000 }
        let root = try #require(
            try UnixFSImporter(options: options, sink: store).add(tree.path("big"), recursive: true).last)
        let exporter = UnixFSExporter(source: store)
        guard case .dagPB(_, let data) = try exporter.node(root.cid) else {
            Issue.record("root is not dag-pb")
            return
        }
        #expect(data?.kind == .hamtShard && data?.fanout == 256 && data?.hashType == 0x22)
        #expect(Set(try exporter.list(root.cid).map(\.name)) == Set((0..<300).map { "entry-\($0).txt" }))
        var out: [UInt8] = []
        try exporter.cat(try exporter.resolve(root.cid, ["entry-123.txt"])) { out += $0 }
        #expect(out == Array("content 123".utf8))
        var total: UInt64 = 0
        try exporter.walk(root.cid) { total += UInt64($1.count) }
        #expect(total == root.tsize)
    }

    /// A HAMT shard as go-unixfs writes one (fanout 256: two hex digits before each name).
    @Test func hamtDirectoryIsListed() throws {
        let store = MemoryBlockstore()
        let importer = try UnixFSImporter(sink: store)
        let a = try importer.addFile(bytes: Array("a".utf8))
        let b = try importer.addFile(bytes: Array("b".utf8))
        let c = try importer.addFile(bytes: Array("c".utf8))
        func shard(_ links: [DagPBLink]) throws -> CID {
            let data = UnixFSData(kind: .hamtShard, data: [0x01], hashType: 0x22, fanout: 256).encoded()
            let bytes = DagPBNode(links: links, data: data).encoded()
            let cid = try CID(v0: Multihash.hash(bytes))
            store.put(cid, bytes)
            return cid
        }
        let inner = try shard([DagPBLink(cid: c.cid, name: "07c.txt", tsize: c.tsize)])
        let outer = try shard([
            DagPBLink(cid: a.cid, name: "1Fa.txt", tsize: a.tsize),
            DagPBLink(cid: inner, name: "3A", tsize: 50),
            DagPBLink(cid: b.cid, name: "E0b.txt", tsize: b.tsize),
        ])
        let exporter = UnixFSExporter(source: store)
        #expect(try exporter.list(outer).map(\.name) == ["a.txt", "c.txt", "b.txt"])
        var out: [UInt8] = []
        try exporter.cat(try exporter.resolve(outer, ["c.txt"])) { out += $0 }
        #expect(out == Array("c".utf8))
    }
}

@Suite struct CARAndBlockstoreTests {
    func writeCAR(_ url: URL, roots: [CID], blocks: [(CID, [UInt8])]) throws {
        let descriptor = try FileDescriptor.open(
            FilePath(url.path), .writeOnly, options: [.create, .truncate], permissions: .ownerReadWrite)
        defer { try? descriptor.close() }
        let writer = try CARWriter(descriptor: descriptor, roots: roots)
        for (cid, block) in blocks { try writer.append(cid, block) }
        try writer.flush()
    }

    func readCAR(_ url: URL) throws -> (CARReader, [(CID, [UInt8])]) {
        let descriptor = try FileDescriptor.open(FilePath(url.path), .readOnly)
        defer { try? descriptor.close() }
        var reader = try CARReader(descriptor: descriptor)
        var blocks: [(CID, [UInt8])] = []
        while let (cid, block) = try reader.next() { blocks.append((cid, block)) }
        return (reader, blocks)
    }

    func sample() throws -> (CID, [(CID, [UInt8])]) {
        let store = MemoryBlockstore()
        let bytes = SeededGenerator.bytes(5_000, seed: 3)
        let root = try UnixFSImporter(options: importOptions { $0.chunkSize = 1_000 }, sink: store).addFile(
            bytes: bytes)
        var blocks: [(CID, [UInt8])] = []
        try UnixFSExporter(source: store).walk(root.cid) { blocks.append(($0, $1)) }
        return (root.cid, blocks)
    }

    @Test func carV1RoundTripAndV2() throws {
        let tree = try TemporaryTree([:])
        defer { tree.remove() }
        let (root, blocks) = try sample()
        #expect(blocks.count == 6)
        let v1 = tree.root.appendingPathComponent("a.car")
        try writeCAR(v1, roots: [root], blocks: blocks)
        let (reader, read) = try readCAR(v1)
        #expect(reader.version == 1 && reader.roots == [root])
        #expect(read.map(\.0) == blocks.map(\.0) && read.map(\.1) == blocks.map(\.1))

        // CARv2: pragma, header (characteristics, data offset, data size, index offset), padding, payload.
        let payload = try [UInt8](Data(contentsOf: v1))
        var v2 = CAR.v2Pragma + [UInt8](repeating: 0, count: 16)
        func le(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let dataOffset: UInt64 = 51 + 13
        v2 += le(dataOffset) + le(UInt64(payload.count)) + le(0)
        v2 += [UInt8](repeating: 0, count: 13) + payload + [0xde, 0xad]  // trailing index bytes ignored
        let v2URL = tree.root.appendingPathComponent("b.car")
        try Data(v2).write(to: v2URL)
        let (reader2, read2) = try readCAR(v2URL)
        #expect(reader2.version == 2 && reader2.roots == [root] && read2.count == blocks.count)
    }

    @Test func corruptCARNamesTheBlock() throws {
        let tree = try TemporaryTree([:])
        defer { tree.remove() }
        var (root, blocks) = try sample()
        let victim = blocks[3].0
        blocks[3].1[10] ^= 0xff
        let url = tree.root.appendingPathComponent("bad.car")
        try writeCAR(url, roots: [root], blocks: blocks)
        #expect(throws: IPFSError.hashMismatch(victim)) { try readCAR(url) }
        // Cut short in the middle of a section.
        let good = tree.root.appendingPathComponent("cut.car")
        let (_, fine) = try sample()
        try writeCAR(good, roots: [root], blocks: fine)
        let bytes = try Data(contentsOf: good)
        try bytes.prefix(bytes.count - 5).write(to: good)
        #expect {
            try readCAR(good)
        } throws: { error in
            guard case IPFSError.badCAR(let why, _) = error else { return false }
            return why.contains("cut short")
        }
        // Not a CAR at all.
        try Data("hello".utf8).write(to: good)
        #expect(throws: IPFSError.self) { try readCAR(good) }
    }

    @Test func blockstoreVerifyAndGarbageCollection() throws {
        let tree = try TemporaryTree(["keep.txt": "keep this!", "drop.txt": "DROP THAT?"])
        defer { tree.remove() }
        let store = try FileBlockstore(root: tree.path("repo"))
        let importer = try UnixFSImporter(options: importOptions { $0.chunkSize = 3 }, sink: store)
        let keep = try #require(try importer.add(tree.path("keep.txt"), recursive: false).last).cid
        let drop = try #require(try importer.add(tree.path("drop.txt"), recursive: false).last).cid
        try store.sync()
        let before = try store.allBlocks().count
        #expect(before == 10)  // 4 leaves and a root each
        #expect(try store.verify().corrupt.isEmpty)

        // The file names are Kubo's flatfs keys.
        #expect(store.path(keep.multihash).string.hasSuffix(".data"))
        #expect(FileBlockstore.key(keep.multihash).hasPrefix("CIQ"))

        // Corrupt one block on disk: verify names its file, cat names its CID.
        guard case .dagPB(let node, _) = try UnixFSExporter(source: store).node(keep) else {
            Issue.record("not dag-pb")
            return
        }
        let leafPath = store.path(node.links[0].cid.multihash)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: leafPath.string))
        #expect(try store.verify().corrupt == [leafPath])
        #expect(throws: IPFSError.hashMismatch(node.links[0].cid)) {
            try UnixFSExporter(source: store).cat(keep) { _ in }
        }

        // A stray temporary file and the unreachable file are collected; the kept DAG stays.
        try Data().write(
            to: URL(fileURLWithPath: leafPath.removingLastComponent().appending(".x.tmp").string))
        let report = try store.collectGarbage(keeping: [keep])
        #expect(report.kept == 5)
        #expect(report.removed == 6)
        #expect(report.unreadable == [node.links[0].cid])
        #expect(!store.has(drop) && store.has(keep))

        try store.addRoots([keep, drop, keep])
        #expect(try store.roots() == [keep, drop])
    }
}
