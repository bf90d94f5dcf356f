import Multiformats

/// Builds the DAG of one file from its leaves, in the shapes go-unixfs makes (its
/// `importer/balanced` and `importer/trickle`), and the nodes of directories and symlinks.
enum DagBuilder {
    static func dagPBCID(_ multihash: Multihash, version: Int) -> CID {
        if version == 0, let cid = try? CID(v0: multihash) { return cid }
        return CID(v1: .dagPB, multihash)
    }

    /// Encodes and stores a dag-pb node; returns its CID and block size.
    static func store(_ node: DagPBNode, version: Int, sink: (any BlockSink)?) throws -> (CID, Int) {
        let bytes = node.encoded()
        let cid = dagPBCID(Multihash.hash(bytes), version: version)
        try sink?.put(cid, bytes)
        return (cid, bytes.count)
    }

    /// A file node under construction (go-unixfs `FSNodeOverDag`).
    struct FileNode {
        var links: [DagPBLink] = []
        var blockSizes: [UInt64] = []
        var fileSize: UInt64 = 0
        var tsizes: UInt64 = 0

        var count: Int { links.count }

        mutating func add(_ child: FileChild) {
            links.append(DagPBLink(cid: child.cid, name: "", tsize: child.tsize))
            blockSizes.append(child.fileSize)
            fileSize += child.fileSize
            tsizes += child.tsize
        }
    }

    static func commit(_ node: FileNode, version: Int, sink: (any BlockSink)?) throws -> FileChild {
        let data = UnixFSData(kind: .file, fileSize: node.fileSize, blockSizes: node.blockSizes)
        let (cid, size) = try store(
            DagPBNode(links: node.links, data: data.encoded()), version: version, sink: sink)
        return FileChild(cid: cid, fileSize: node.fileSize, tsize: UInt64(size) + node.tsizes)
    }

    /// go-unixfs `balanced.Layout`: the first leaf is the root until a second arrives; then the
    /// root is wrapped in a node one level deeper, which is filled with full subtrees.
    static func balanced<R>(_ source: inout LeafSource<R>, options: ImportOptions) throws -> FileChild {
        if try source.isDone() { return try emptyLeaf(options: options, sink: source.sink) }
        var root = try source.nextLeaf()
        var depth = 1
        while try !source.isDone() {
            var node = FileNode()
            node.add(root)
            root = try fillBalanced(&source, node, depth: depth, options: options)
            depth += 1
        }
        return root
    }

    private static func fillBalanced<R>(
        _ source: inout LeafSource<R>, _ start: FileNode, depth: Int, options: ImportOptions
    ) throws -> FileChild {
        var node = start
        while node.count < options.maxLinks, try !source.isDone() {
            if depth == 1 {
                node.add(try source.nextLeaf())
            } else {
                node.add(try fillBalanced(&source, FileNode(), depth: depth - 1, options: options))
            }
        }
        return try commit(node, version: options.cidVersion, sink: source.sink)
    }

    /// go-unixfs `trickle.Layout`: each node takes up to `maxLinks` leaves, then 4 subtrees of
    /// depth 1, 4 of depth 2, … (below its own depth limit).
    static func trickle<R>(_ source: inout LeafSource<R>, options: ImportOptions) throws -> FileChild {
        try fillTrickle(&source, maxDepth: nil, options: options)
    }

    private static let depthRepeat = 4

    private static func fillTrickle<R>(
        _ source: inout LeafSource<R>, maxDepth: Int?, options: ImportOptions
    ) throws -> FileChild {
        var node = FileNode()
        while node.count < options.maxLinks, try !source.isDone() {
            node.add(try source.nextLeaf())
        }
        var depth = 1
        while maxDepth.map({ depth < $0 }) ?? true, try !source.isDone() {
            var repeats = 0
            while repeats < depthRepeat, try !source.isDone() {
                node.add(try fillTrickle(&source, maxDepth: depth, options: options))
                repeats += 1
            }
            depth += 1
        }
        return try commit(node, version: options.cidVersion, sink: source.sink)
    }

    /// The leaf of an empty file: an empty raw block, or a UnixFS file node with no data.
    static func emptyLeaf(options: ImportOptions, sink: (any BlockSink)?) throws -> FileChild {
        if options.usesRawLeaves {
            let cid = CID(v1: .raw, Multihash.hash([]))
            try sink?.put(cid, [])
            return FileChild(cid: cid, fileSize: 0, tsize: 0)
        }
        return try commit(FileNode(), version: options.cidVersion, sink: sink)
    }

    /// A UnixFS directory node over named children (links sorted by name when encoded), or a
    /// HAMT shard when the estimated size reaches the threshold (boxo's `DynamicDirectory`).
    static func directory(
        _ entries: [(name: String, child: FileChild)], options: ImportOptions, sink: (any BlockSink)?
    ) throws -> FileChild {
        let estimate = entries.reduce(0) { $0 + $1.name.utf8.count + $1.child.cid.bytes.count }
        if options.shardingThreshold > 0, estimate >= options.shardingThreshold {
            return try HAMTBuilder.build(entries, options: options, sink: sink)
        }
        let links = entries.map { DagPBLink(cid: $0.child.cid, name: $0.name, tsize: $0.child.tsize) }
        let data = UnixFSData(kind: .directory).encoded()
        let (cid, size) = try store(
            DagPBNode(links: links, data: data), version: options.cidVersion, sink: sink)
        let total = entries.reduce(UInt64(size)) { $0 + $1.child.tsize }
        return FileChild(cid: cid, fileSize: 0, tsize: total)
    }

    /// A UnixFS symlink node holding the target path.
    static func symlink(_ target: [UInt8], options: ImportOptions, sink: (any BlockSink)?) throws -> FileChild
    {
        let data = UnixFSData(kind: .symlink, data: target).encoded()
        let (cid, size) = try store(DagPBNode(data: data), version: options.cidVersion, sink: sink)
        return FileChild(cid: cid, fileSize: 0, tsize: UInt64(size))
    }
}
