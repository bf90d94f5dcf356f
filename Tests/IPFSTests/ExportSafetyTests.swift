import Foundation
import IPFS
import Multiformats
import SystemPackage
import Testing

/// Hostile DAGs against `get`, `cat` and CAR import: nothing written through or over an
/// existing path, no symlink out of the tree, no expansion without end, no silent bad copy.
@Suite struct ExportSafetyTests {
    /// Builds hand-made DAGs in memory.
    struct Builder {
        let store = MemoryBlockstore()

        func put(_ node: DagPBNode) throws -> CID {
            let bytes = node.encoded()
            let cid = try CID(v0: Multihash.hash(bytes))
            store.put(cid, bytes)
            return cid
        }

        func file(_ text: String) throws -> CID {
            let bytes = Array(text.utf8)
            return try put(
                DagPBNode(data: UnixFSData(kind: .file, data: bytes, fileSize: UInt64(bytes.count)).encoded())
            )
        }

        func symlink(_ target: String) throws -> CID {
            try put(DagPBNode(data: UnixFSData(kind: .symlink, data: Array(target.utf8)).encoded()))
        }

        func directory(_ entries: [(String, CID)]) throws -> CID {
            try put(
                DagPBNode(
                    links: entries.map { DagPBLink(cid: $0.1, name: $0.0) },
                    data: UnixFSData(kind: .directory).encoded()))
        }
    }

    @Test(
        "a symlink listed before a file of its temporary name is not written through: the victim outside keeps its content"
    )
    func symlinkBeforeFile() throws {
        let tree = try TemporaryTree([:], directories: ["out"])
        defer { tree.remove() }
        let victim = tree.path("victim")
        try Data("precious".utf8).write(to: URL(fileURLWithPath: victim.string))
        let dag = Builder()
        // `x.partial` was the exporter's temporary name for `x`; it points at the victim by a
        // path that climbs out, so it is refused before anything is written.
        let root = try dag.directory([
            ("x.partial", try dag.symlink("../../victim")), ("x", try dag.file("evil")),
        ])
        let exporter = UnixFSExporter(source: dag.store)
        #expect(
            throws: IPFSError.unsafeSymlink(tree.path("out/copy/x.partial").string, target: "../../victim")
        ) {
            try exporter.get(root, to: tree.path("out/copy"))
        }
        #expect(try String(contentsOfFile: victim.string, encoding: .utf8) == "precious")

        // A symlink that stays inside, named as any temporary name might be, is made as a
        // symlink, and the file beside it is written to its own name only.
        let inside = try dag.directory([
            ("x.partial", try dag.symlink("y")), ("y", try dag.file("one")), ("x", try dag.file("two")),
        ])
        try exporter.get(inside, to: tree.path("out/inside"))
        #expect(try String(contentsOfFile: tree.path("out/inside/x").string, encoding: .utf8) == "two")
        #expect(try String(contentsOfFile: tree.path("out/inside/y").string, encoding: .utf8) == "one")
        #expect(
            try FileManager.default.destinationOfSymbolicLink(
                atPath: tree.path("out/inside/x.partial").string) == "y")
        // No temporary file is left behind.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: tree.path("out/inside").string).sorted() == [
                "x", "x.partial", "y",
            ])
    }

    @Test("symlinks that are absolute or climb out of the tree are refused; ones that stay inside are made")
    func symlinkTargets() throws {
        let dag = Builder()
        let exporter = UnixFSExporter(source: dag.store)
        let tree = try TemporaryTree([:])
        defer { tree.remove() }
        // Entries of the top directory may not climb at all.
        for (index, target) in ["/etc/passwd", "..", "../x", "./../x", "a/../../x", "sub/../..", ""]
            .enumerated()
        {
            let root = try dag.directory([("link", try dag.symlink(target))])
            let destination = tree.path("bad-\(index)")
            #expect(throws: IPFSError.self, "target '\(target)'") { try exporter.get(root, to: destination) }
        }
        // One level down, one `..` climbs to the top and no further; `..` after a name never.
        let deeper = try dag.directory([("d", try dag.directory([("link", try dag.symlink("d/../../x"))]))])
        #expect(throws: IPFSError.self) { try exporter.get(deeper, to: tree.path("deeper")) }
        let twoUp = try dag.directory([("d", try dag.directory([("link", try dag.symlink("../../x"))]))])
        #expect(throws: IPFSError.self) { try exporter.get(twoUp, to: tree.path("two-up")) }
        let root = try dag.directory([
            ("d", try dag.directory([("up", try dag.symlink("../top")), ("here", try dag.symlink("./f"))])),
            ("top", try dag.file("t")),
        ])
        try exporter.get(root, to: tree.path("good"))
        #expect(try String(contentsOfFile: tree.path("good/d/up").string, encoding: .utf8) == "t")
    }

    @Test("an entry that would replace an existing path is refused with the path named")
    func duplicateNames() throws {
        let dag = Builder()
        let exporter = UnixFSExporter(source: dag.store)
        let tree = try TemporaryTree([:])
        defer { tree.remove() }
        let twice = try dag.directory([("a", try dag.file("first")), ("a", try dag.file("second"))])
        #expect(throws: IPFSError.wouldReplace(tree.path("twice/a").string)) {
            try exporter.get(twice, to: tree.path("twice"))
        }
        #expect(try String(contentsOfFile: tree.path("twice/a").string, encoding: .utf8) == "first")
        let dirThenLink = try dag.directory([("a", try dag.directory([])), ("a", try dag.symlink("b"))])
        #expect(throws: IPFSError.wouldReplace(tree.path("mixed/a").string)) {
            try exporter.get(dirThenLink, to: tree.path("mixed"))
        }
        // A file whose name is already a (dangling) symlink is not written through it.
        let linkThenFile = try dag.directory([("a", try dag.symlink("gone")), ("a", try dag.file("x"))])
        #expect(throws: IPFSError.wouldReplace(tree.path("through/a").string)) {
            try exporter.get(linkThenFile, to: tree.path("through"))
        }
        #expect(!FileManager.default.fileExists(atPath: tree.path("through/gone").string))
    }

    @Test("a DAG that shares subtrees cannot expand past the byte, entry and block limits")
    func expansion() throws {
        let dag = Builder()
        // 2^k copies of one 1 KiB file through k levels of two links to the same node.
        var node = try dag.file(String(repeating: "x", count: 1024))
        var size: UInt64 = 1024
        for _ in 0..<30 {
            node = try dag.put(
                DagPBNode(
                    links: [DagPBLink(cid: node), DagPBLink(cid: node)],
                    data: UnixFSData(kind: .file, fileSize: size * 2, blockSizes: [size, size]).encoded()))
            size *= 2
        }
        let small = UnixFSExporter(source: dag.store, limits: ExportLimits(maxBytes: 1 << 20))
        var written = 0
        #expect(throws: IPFSError.self) { try small.cat(node) { written += $0.count } }
        #expect(written <= 1 << 20)
        let fewBlocks = UnixFSExporter(source: dag.store, limits: ExportLimits(maxBlocks: 1_000))
        #expect(throws: IPFSError.self) { try fewBlocks.cat(node) { _ in } }

        // A directory that names one subdirectory twice at every level.
        var directory = try dag.directory([("f", try dag.file("x"))])
        for _ in 0..<30 { directory = try dag.directory([("a", directory), ("b", directory)]) }
        let tree = try TemporaryTree([:])
        defer { tree.remove() }
        let fewEntries = UnixFSExporter(source: dag.store, limits: ExportLimits(maxEntries: 500))
        #expect(
            throws: IPFSError.limitExceeded("the DAG has more than 500 entries (the export's entry limit)")
        ) {
            try fewEntries.get(directory, to: tree.path("wide"))
        }
    }

    /// A store that keeps a damaged copy of every block (a failing disk).
    final class DamagingStore: BlockSink, BlockSource {
        let inner = MemoryBlockstore()
        func put(_ cid: CID, _ bytes: [UInt8]) {
            inner.put(cid, bytes.isEmpty ? bytes : [bytes[0] ^ 1] + bytes.dropFirst())
        }
        func block(_ cid: CID) throws -> [UInt8] { try inner.block(cid) }
        func has(_ cid: CID) -> Bool { inner.has(cid) }
    }

    @Test("a CAR import refuses a block the store does not read back, naming it")
    func importReadBack() throws {
        let dag = Builder()
        let root = try dag.directory([("a", try dag.file("hello"))])
        let tree = try TemporaryTree([:])
        defer { tree.remove() }
        let car = tree.path("x.car")
        let descriptor = try FileDescriptor.open(
            car, .writeOnly, options: [.create], permissions: .ownerReadWrite)
        let writer = try CARWriter(descriptor: descriptor, roots: [root])
        try UnixFSExporter(source: dag.store).walk(root) { try writer.append($0, $1) }
        try writer.flush()
        try descriptor.close()

        func load(into store: some BlockSink & BlockSource) throws -> Int {
            let input = try FileDescriptor.open(car, .readOnly)
            defer { try? input.close() }
            var reader = try CARReader(descriptor: input)
            return try reader.importBlocks(into: store)
        }
        #expect(try load(into: MemoryBlockstore()) == 2)
        #expect(throws: IPFSError.self) { try load(into: DamagingStore()) }
        do {
            _ = try load(into: DamagingStore())
        } catch let IPFSError.unreadable(cid, _) {
            #expect(cid == root)
        }
    }
}
