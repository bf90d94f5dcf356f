import Multiformats
import PeerNet
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A block decoded enough to walk: raw bytes, or a dag-pb node with its UnixFS data if any.
public enum DecodedNode: Sendable {
    case raw([UInt8])
    case dagPB(DagPBNode, UnixFSData?)
    /// Another codec: bytes kept, links found (dag-cbor tag 42).
    case other([UInt8], links: [CID])

    public var links: [CID] {
        switch self {
        case .raw: return []
        case .dagPB(let node, _): return node.links.map(\.cid)
        case .other(_, let links): return links
        }
    }
}

/// A directory entry found by ``UnixFSExporter/list(_:)``.
public struct DirectoryEntry: Sendable, Hashable {
    public let name: String
    public let cid: CID
    public let tsize: UInt64?
}

/// Caps on what one `cat` or `get` may expand to. A DAG that shares subtrees is small in blocks
/// but can name the same subtree without end (a hundred links to one node, ten levels deep, is
/// 10²⁰ visits): every visit counts, not every distinct block.
public struct ExportLimits: Sendable, Hashable {
    /// File bytes written in all.
    public var maxBytes: UInt64
    /// Files, directories and symlinks `get` creates.
    public var maxEntries: Int
    /// Blocks visited (a block named twice counts twice).
    public var maxBlocks: Int

    public init(maxBytes: UInt64 = 1 << 40, maxEntries: Int = 1_000_000, maxBlocks: Int = 1 << 24) {
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
        self.maxBlocks = maxBlocks
    }
}

/// Reads UnixFS DAGs back out of a block source: resolves paths, streams files, lists
/// directories (plain and HAMT-sharded), writes trees to disk. Every block is checked against
/// its CID before it is used, so a corrupt or forged block stops the export with its CID named.
public struct UnixFSExporter: Sendable {
    public let source: any BlockSource
    public let limits: ExportLimits
    /// Deepest DAG followed (balanced trees of a petabyte are 6 levels; trickle trees grow deeper).
    public static let maxDepth = 4_096

    public init(source: any BlockSource, limits: ExportLimits = ExportLimits()) {
        self.source = source
        self.limits = limits
    }

    /// What one export has used of its limits.
    struct Budget {
        let limits: ExportLimits
        var bytes: UInt64 = 0
        var entries = 0
        var blocks = 0

        mutating func block() throws {
            blocks += 1
            guard blocks <= limits.maxBlocks else {
                throw IPFSError.limitExceeded(
                    "the DAG names more than \(limits.maxBlocks) blocks (the export's block limit)")
            }
        }

        mutating func add(bytes count: Int) throws {
            bytes += UInt64(count)
            guard bytes <= limits.maxBytes else {
                throw IPFSError.limitExceeded(
                    "the DAG holds more than \(limits.maxBytes) bytes (the export's byte limit)")
            }
        }

        mutating func entry() throws {
            entries += 1
            guard entries <= limits.maxEntries else {
                throw IPFSError.limitExceeded(
                    "the DAG has more than \(limits.maxEntries) entries (the export's entry limit)")
            }
        }
    }

    /// Fetches, verifies and decodes the block of `cid`.
    public func node(_ cid: CID) throws -> DecodedNode {
        let bytes = try source.verifiedBlock(cid)
        return try Self.decode(cid, bytes)
    }

    public static func decode(_ cid: CID, _ bytes: [UInt8]) throws -> DecodedNode {
        switch cid.codec {
        case .raw: return .raw(bytes)
        case .dagPB:
            let node = try DagPBNode(decoding: bytes)
            let unixfs = try node.data.map { try UnixFSData(decoding: $0) }
            return .dagPB(node, unixfs)
        case .dagCBOR:
            var offset = 0
            let value = try CBORValue.decode(bytes, at: &offset)
            var links: [CID] = []
            collectLinks(value, into: &links)
            return .other(bytes, links: links)
        default:
            return .other(bytes, links: [])
        }
    }

    private static func collectLinks(_ value: CBORValue, into links: inout [CID]) {
        switch value {
        case .cid(let cid): links.append(cid)
        case .array(let values): for value in values { collectLinks(value, into: &links) }
        case .map(let pairs): for (_, value) in pairs { collectLinks(value, into: &links) }
        default: break
        }
    }

    /// Splits `Qm…/a/b`, `/ipfs/Qm…/a/b` into the root CID and the names below it.
    public static func parsePath(_ text: String) throws -> (CID, [String]) {
        var parts = text.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if parts.first == "ipfs" { parts.removeFirst() }
        guard let first = parts.first else { throw IPFSError.badInput("empty path") }
        let cid: CID
        do {
            cid = try CID(first)
        } catch {
            throw IPFSError.badInput("'\(first)' is not a CID: \(error)")
        }
        return (cid, Array(parts.dropFirst()))
    }

    /// Follows `names` from `root` through directories.
    public func resolve(_ root: CID, _ names: [String]) throws -> CID {
        var current = root
        for name in names {
            guard let entry = try list(current).first(where: { $0.name == name }) else {
                throw IPFSError.noSuchLink(name, in: current)
            }
            current = entry.cid
        }
        return current
    }

    /// The entries of a directory, in link order; a HAMT shard's entries gathered from all its
    /// buckets (UnixFS spec: names prefixed by the bucket index in hex; prefix-only names are
    /// sub-shards).
    public func list(_ cid: CID) throws -> [DirectoryEntry] {
        guard case .dagPB(let node, let unixfs) = try node(cid), let unixfs else {
            throw IPFSError.wrongKind(cid, "not a UnixFS directory")
        }
        switch unixfs.kind {
        case .directory:
            return node.links.map { DirectoryEntry(name: $0.name ?? "", cid: $0.cid, tsize: $0.tsize) }
        case .hamtShard:
            var entries: [DirectoryEntry] = []
            try listShard(cid, node, unixfs, into: &entries, depth: 0)
            return entries
        default:
            throw IPFSError.wrongKind(cid, "not a directory")
        }
    }

    private func listShard(
        _ cid: CID, _ node: DagPBNode, _ unixfs: UnixFSData, into entries: inout [DirectoryEntry], depth: Int
    ) throws {
        guard depth < 64 else { throw IPFSError.tooDeep(cid) }
        guard let fanout = unixfs.fanout, fanout >= 2, fanout <= 1024, fanout & (fanout - 1) == 0 else {
            throw IPFSError.wrongKind(cid, "HAMT shard without a power-of-two fanout up to 1024")
        }
        let padding = String(fanout - 1, radix: 16).count
        for link in node.links {
            let name = link.name ?? ""
            guard name.utf8.count >= padding else {
                throw IPFSError.wrongKind(cid, "HAMT link name '\(name)' too short")
            }
            if name.utf8.count == padding {
                guard case .dagPB(let child, let childData) = try self.node(link.cid), let childData,
                    childData.kind == .hamtShard
                else { throw IPFSError.wrongKind(link.cid, "HAMT bucket is not a shard") }
                try listShard(link.cid, child, childData, into: &entries, depth: depth + 1)
            } else {
                entries.append(
                    DirectoryEntry(name: String(name.dropFirst(padding)), cid: link.cid, tsize: link.tsize))
            }
        }
    }

    /// Streams the content of the file at `cid` to `write`, block by block, in order.
    /// Returns the byte count, checked against the sizes the nodes declare. Stops at the
    /// ``limits``.
    @discardableResult
    public func cat(_ cid: CID, _ write: ([UInt8]) throws -> Void) throws -> UInt64 {
        var budget = Budget(limits: limits)
        return try catNode(cid, write, depth: 0, &budget)
    }

    private func catNode(
        _ cid: CID, _ write: ([UInt8]) throws -> Void, depth: Int, _ budget: inout Budget
    ) throws -> UInt64 {
        guard depth < Self.maxDepth else { throw IPFSError.tooDeep(cid) }
        try budget.block()
        switch try node(cid) {
        case .raw(let bytes):
            try budget.add(bytes: bytes.count)
            try write(bytes)
            return UInt64(bytes.count)
        case .other:
            throw IPFSError.wrongKind(cid, "not a UnixFS file")
        case .dagPB(let node, let unixfs):
            guard let unixfs else { throw IPFSError.wrongKind(cid, "dag-pb node without UnixFS data") }
            switch unixfs.kind {
            case .file, .raw:
                var total: UInt64 = 0
                if let data = unixfs.data, !data.isEmpty {
                    try budget.add(bytes: data.count)
                    try write(data)
                    total += UInt64(data.count)
                }
                guard unixfs.blockSizes.isEmpty || unixfs.blockSizes.count == node.links.count else {
                    throw IPFSError.wrongKind(
                        cid, "\(node.links.count) links but \(unixfs.blockSizes.count) blocksizes")
                }
                for (index, link) in node.links.enumerated() {
                    let written = try catNode(link.cid, write, depth: depth + 1, &budget)
                    if index < unixfs.blockSizes.count, unixfs.blockSizes[index] != written {
                        throw IPFSError.wrongKind(
                            link.cid, "holds \(written) bytes, its parent says \(unixfs.blockSizes[index])")
                    }
                    total += written
                }
                if let size = unixfs.fileSize, size != total {
                    throw IPFSError.wrongKind(cid, "holds \(total) bytes, its filesize says \(size)")
                }
                return total
            case .directory, .hamtShard: throw IPFSError.wrongKind(cid, "is a directory")
            case .symlink: throw IPFSError.wrongKind(cid, "is a symlink")
            case .metadata: throw IPFSError.wrongKind(cid, "is a metadata node")
            }
        }
    }

    /// What a CID is, as far as `get` cares.
    public enum Kind: Sendable {
        case file, directory
        case symlink([UInt8])
    }

    public func kind(_ cid: CID) throws -> Kind {
        switch try node(cid) {
        case .raw: return .file
        case .other: throw IPFSError.wrongKind(cid, "not UnixFS")
        case .dagPB(_, let unixfs):
            guard let unixfs else { throw IPFSError.wrongKind(cid, "dag-pb node without UnixFS data") }
            switch unixfs.kind {
            case .file, .raw: return .file
            case .directory, .hamtShard: return .directory
            case .symlink: return .symlink(unixfs.data ?? [])
            case .metadata: throw IPFSError.wrongKind(cid, "is a metadata node")
            }
        }
    }

    /// Writes the file, directory tree or symlink at `cid` to `destination`, which must not exist
    /// yet. Nothing is ever written through or over an existing path: files are made under
    /// unpredictable temporary names with `O_EXCL|O_NOFOLLOW` and linked into place without
    /// replacing, a directory or symlink whose name exists is refused (``IPFSError/wouldReplace(_:)``).
    /// Entry names that could leave the destination (`..`, `/`, NUL) are refused, and so are
    /// symlinks that point outside the tree (absolute, or climbing above it). Stops at the
    /// ``limits``.
    public func get(_ cid: CID, to destination: FilePath, onBytes: (Int) -> Void = { _ in }) throws {
        var budget = Budget(limits: limits)
        try getNode(cid, destination, onBytes, depth: 0, &budget)
    }

    private func getNode(
        _ cid: CID, _ path: FilePath, _ onBytes: (Int) -> Void, depth: Int, _ budget: inout Budget
    ) throws {
        guard depth < 512 else { throw IPFSError.tooDeep(cid) }
        try budget.entry()
        switch try kind(cid) {
        case .file:
            do {
                try SmallFile.writeNew(to: path) { descriptor in
                    try catNode(
                        cid,
                        { bytes in
                            _ = try descriptor.writeAll(bytes)
                            onBytes(bytes.count)
                        }, depth: 0, &budget)
                }
            } catch is SmallFile.Exists {
                throw IPFSError.wouldReplace(path.string)
            }
        case .symlink(let target):
            let text = String(decoding: target, as: UTF8.self)
            guard !target.contains(0), Self.symlinkStaysInside(text, depth: depth) else {
                throw IPFSError.unsafeSymlink(path.string, target: text)
            }
            guard symlink(text, path.string) == 0 else {
                if errno == EEXIST { throw IPFSError.wouldReplace(path.string) }
                throw IPFSError.badInput("\(path): cannot make the symlink: \(Errno(rawValue: errno))")
            }
        case .directory:
            guard mkdir(path.string, 0o755) == 0 else {
                if errno == EEXIST { throw IPFSError.wouldReplace(path.string) }
                throw Errno(rawValue: errno)
            }
            for entry in try list(cid) {
                guard !entry.name.isEmpty, entry.name != ".", entry.name != "..", !entry.name.contains("/"),
                    !entry.name.utf8.contains(0)
                else { throw IPFSError.wrongKind(cid, "unsafe entry name '\(entry.name)'") }
                try getNode(entry.cid, path.appending(entry.name), onBytes, depth: depth + 1, &budget)
            }
        }
    }

    /// Whether a symlink `depth` directories below the top of the output tree stays inside it:
    /// relative, with `..` only as leading components and no more of them than `depth` (a `..`
    /// after another component could climb out through a symlink the tree holds; a symlink at
    /// the top may not climb at all). Every symlink in the tree obeys this, so following any
    /// chain of them stays inside too.
    static func symlinkStaysInside(_ target: String, depth: Int) -> Bool {
        guard !target.isEmpty, !target.hasPrefix("/") else { return false }
        var climbing = true
        var up = 0
        for component in target.split(separator: "/", omittingEmptySubsequences: true) {
            if component == ".." {
                guard climbing else { return false }
                up += 1
            } else if component != "." {
                climbing = false
            }
        }
        // Entries at depth 1 sit in the top directory, so they may climb depth − 1 levels; a
        // symlink that is the top entry itself may not climb at all.
        return up <= max(depth - 1, 0)
    }

    /// Every block of the DAG under `root`, depth first, each once, root first (the order of
    /// Kubo's `dag export`); `visit` gets the verified bytes.
    public func walk(_ root: CID, _ visit: (CID, [UInt8]) throws -> Void) throws {
        var seen: Set<CID> = []
        var stack: [CID] = [root]
        while let cid = stack.popLast() {
            guard seen.insert(cid).inserted else { continue }
            let bytes = try source.verifiedBlock(cid)
            try visit(cid, bytes)
            let links = try Self.decode(cid, bytes).links
            stack.append(contentsOf: links.reversed())
        }
    }
}
