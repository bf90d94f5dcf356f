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

/// Reads UnixFS DAGs back out of a block source: resolves paths, streams files, lists
/// directories (plain and HAMT-sharded), writes trees to disk. Every block is checked against
/// its CID before it is used, so a corrupt or forged block stops the export with its CID named.
public struct UnixFSExporter: Sendable {
    public let source: any BlockSource
    /// Deepest DAG followed (balanced trees of a petabyte are 6 levels; trickle trees grow deeper).
    public static let maxDepth = 4_096

    public init(source: any BlockSource) { self.source = source }

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
    /// Returns the byte count, checked against the sizes the nodes declare.
    @discardableResult
    public func cat(_ cid: CID, _ write: ([UInt8]) throws -> Void) throws -> UInt64 {
        try catNode(cid, write, depth: 0)
    }

    private func catNode(_ cid: CID, _ write: ([UInt8]) throws -> Void, depth: Int) throws -> UInt64 {
        guard depth < Self.maxDepth else { throw IPFSError.tooDeep(cid) }
        switch try node(cid) {
        case .raw(let bytes):
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
                    try write(data)
                    total += UInt64(data.count)
                }
                guard unixfs.blockSizes.isEmpty || unixfs.blockSizes.count == node.links.count else {
                    throw IPFSError.wrongKind(
                        cid, "\(node.links.count) links but \(unixfs.blockSizes.count) blocksizes")
                }
                for (index, link) in node.links.enumerated() {
                    let written = try catNode(link.cid, write, depth: depth + 1)
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

    /// Writes the file, directory tree or symlink at `cid` to `destination` (which must not
    /// exist yet). Entry names that could leave the destination (`..`, `/`, NUL) are refused.
    public func get(_ cid: CID, to destination: FilePath, onBytes: (Int) -> Void = { _ in }) throws {
        try getNode(cid, destination, onBytes, depth: 0)
    }

    private func getNode(_ cid: CID, _ path: FilePath, _ onBytes: (Int) -> Void, depth: Int) throws {
        guard depth < 512 else { throw IPFSError.tooDeep(cid) }
        switch try kind(cid) {
        case .file:
            try SmallFile.writeAtomically(to: path) { descriptor in
                try cat(cid) { bytes in
                    _ = try descriptor.writeAll(bytes)
                    onBytes(bytes.count)
                }
            }
        case .symlink(let target):
            let text = String(decoding: target, as: UTF8.self)
            guard !target.contains(0), symlink(text, path.string) == 0 else {
                throw IPFSError.badInput("\(path): cannot make the symlink: \(Errno(rawValue: errno))")
            }
        case .directory:
            guard mkdir(path.string, 0o755) == 0 else { throw Errno(rawValue: errno) }
            for entry in try list(cid) {
                guard !entry.name.isEmpty, entry.name != ".", entry.name != "..", !entry.name.contains("/"),
                    !entry.name.utf8.contains(0)
                else { throw IPFSError.wrongKind(cid, "unsafe entry name '\(entry.name)'") }
                try getNode(entry.cid, path.appending(entry.name), onBytes, depth: depth + 1)
            }
        }
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
