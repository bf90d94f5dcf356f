import Multiformats

/// Which blocks of a DAG are still to fetch, sans I/O: starts from a root, and each verified block
/// that arrives names its links (dag-pb, raw, dag-cbor) as the next wants; blocks already in the
/// store are walked without fetching. Every block counts against a cap, so a DAG that names
/// more blocks than the export would ever read cannot make the fetch run without end.
public struct DAGFetch: Sendable {
    public let root: CID
    public let maxBlocks: Int
    var seen: Set<CID> = []
    /// Blocks fetched or found in the store, and their bytes.
    public private(set) var blocks = 0
    public private(set) var bytes = 0

    public init(root: CID, maxBlocks: Int = ExportLimits().maxBlocks) {
        self.root = root
        self.maxBlocks = maxBlocks
    }

    /// The first wants: the root, or nothing when `store` has the whole DAG already (what it
    /// has is walked and what it lacks is returned).
    public mutating func start(store: some BlockSource) throws -> [CID] {
        try missing(from: [root], store: store)
    }

    /// A wanted block arrived (already its CID's): the blocks it links to that are still to
    /// fetch.
    public mutating func received(_ cid: CID, _ data: [UInt8], store: some BlockSource) throws -> [CID] {
        let links = try UnixFSExporter.decode(cid, data).links
        bytes += data.count
        return try missing(from: links, store: store)
    }

    /// Of `cids`, those not yet seen and not in the store; the ones in the store are walked
    /// (depth first, iteratively) for their own links.
    mutating func missing(from cids: [CID], store: some BlockSource) throws -> [CID] {
        var want: [CID] = []
        var stack = Array(cids.reversed())
        while let cid = stack.popLast() {
            guard seen.insert(cid).inserted else { continue }
            blocks += 1
            guard blocks <= maxBlocks else {
                throw IPFSError.limitExceeded("the DAG under \(root) names more than \(maxBlocks) blocks")
            }
            if cid.multihash.code == Multihash.Function.identity.rawValue || store.has(cid) {
                let data = try store.verifiedBlock(cid)
                bytes += data.count
                stack.append(contentsOf: try UnixFSExporter.decode(cid, data).links.reversed())
            } else {
                want.append(cid)
            }
        }
        return want
    }
}
